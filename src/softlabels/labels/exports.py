"""Exports in the layouts of the released processed files (the pipeline rebuilds them
from the raw data).

- `cifar10s_t2clamp_redist10.json`: {test index as a string: [per-response 10-vector, ...]} (CIFAR-10S).
- `hmix_individ_soft_labels.json`: {stimulus filename: [per-annotator 10-vector, ...]} (H-Mix soft labels).
Vectors are in the alphabetical CIFAR-10 class order; keys and responses keep the order of the responses table
(the released files' within-key order came from a Python set and is arbitrary; docs/protocol.md#exports).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from softlabels.labels.elicited import response_labels


def grouped_labels(keys: pd.Series, labels: np.ndarray) -> dict[str, list[list[float]]]:
    """{str(key): [label rows of that key, in table order]}, keys in order of first appearance."""
    out: dict[str, list[list[float]]] = {}
    for key, label in zip(keys.astype(str), labels.tolist()):
        out.setdefault(key, []).append(label)
    return out


def cifar10s_export(responses: pd.DataFrame, variety: str, gamma: float, similarity=None, path="documented",
                    semantic_base: str = "unif") -> dict:
    """{test index: per-response labels} for the CIFAR-10S responses table."""
    labels = response_labels(responses, variety, gamma=gamma, similarity=similarity, path=path,
                             semantic_base=semantic_base)
    return grouped_labels(responses["image"], labels)


def hmix_soft_export(soft_responses: pd.DataFrame, variety: str = "t2_clamp", gamma: float = 0.1, similarity=None,
                     path="hmix_release", semantic_base: str = "unif") -> dict:
    """{stimulus filename: per-annotator labels} for the H-Mix categorical soft-label responses (the release's
    construction is `path="hmix_release"`)."""
    if "stimulus" not in soft_responses.columns:
        raise ValueError("H-Mix soft responses table lacks column 'stimulus'")
    labels = response_labels(soft_responses, variety, gamma=gamma, similarity=similarity, path=path,
                             semantic_base=semantic_base)
    return grouped_labels(soft_responses["stimulus"], labels)

