"""Labels of mixed images (chapter 4; docs/protocol.md#labels-h-mix-mixed-images).

For a stimulus x̃ = λ_f·img1 + (1 − λ_f)·img2 with endpoint classes c1, c2 (one-hots y1, y2, uniform u):
- mixup:     λ_f·y1 + (1 − λ_f)·y2
- uniform:   u;  random: K uniform draws, normalised
- agg:       two-hot at λ̄_h, the mean of the annotators' λ_h (λ_h is relative to img1, like λ_f)
- sep:       one two-hot per judgment (a pool; one is drawn per use)
- agg_conf:  confidence-smoothed at (λ̄_h, ω̄); sep_conf: per judgment (λ_h, ω)
Confidence smoothing: s = γ^ω, label = (1 − s)·[λ_h·y1 + (1 − λ_h)·y2] + s·u (ω = 0: uniform; ω = 1: s = γ).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from softlabels import NUM_CLASSES
from softlabels.labels.baselines import random_labels
from softlabels.labels.elicited import class_index
from softlabels.labels.pools import LabelPools

HMIX_VARIANTS = ("uniform", "random", "mixup", "agg", "sep", "agg_conf", "sep_conf")

_STIMULUS = re.compile(r"^mixed_(?P<lam>[0-9.]+)_(?P<c1>[A-Za-z]+)_(?P<i1>\d+)_(?P<c2>[A-Za-z]+)_(?P<i2>\d+)\.png$")


def mixup_label(c1, c2, lam) -> np.ndarray:
    """λ·y1 + (1 − λ)·y2; scalars give [K], arrays of n give [n, K]."""
    c1, c2, lam = np.broadcast_arrays(np.asarray(c1, np.int64), np.asarray(c2, np.int64), np.asarray(lam, np.float64))
    if np.any((lam < 0) | (lam > 1)):
        raise ValueError("mixing factor must lie in [0, 1]")
    out = np.zeros((*lam.shape, NUM_CLASSES))
    np.put_along_axis(out, c1[..., None], lam[..., None], axis=-1)
    np.put_along_axis(out, c2[..., None], np.take_along_axis(out, c2[..., None], -1) + (1 - lam)[..., None], axis=-1)
    return out


def confidence_smoothed_label(c1, c2, lam, omega, gamma: float = 0.005) -> np.ndarray:
    """(1 − s)·[λ·y1 + (1 − λ)·y2] + s·u with s = γ^ω (ω, the confidence, in [0, 1])."""
    omega = np.asarray(omega, np.float64)
    if np.any((omega < 0) | (omega > 1)):
        raise ValueError("confidence must lie in [0, 1]")
    if not 0 < gamma <= 1:
        raise ValueError(f"confidence gamma must lie in (0, 1], got {gamma}")
    s = np.power(gamma, omega)[..., None]
    return (1 - s) * mixup_label(c1, c2, lam) + s / NUM_CLASSES


def parse_stimulus_name(name: str) -> dict:
    """λ_f, class indices and image ids of `mixed_{λ}_{Class1}_{id1}_{Class2}_{id2}.png`."""
    match = _STIMULUS.match(str(name))
    if not match:
        raise ValueError(f"stimulus name {name!r} is not of the form mixed_{{λ}}_{{Class1}}_{{id1}}_{{Class2}}_{{id2}}.png")
    return {
        "lambda_f": float(match["lam"]),
        "class1": class_index(match["c1"], f"stimulus {name}"),
        "image1": int(match["i1"]),
        "class2": class_index(match["c2"], f"stimulus {name}"),
        "image2": int(match["i2"]),
    }


def _stimulus_table(stimuli) -> pd.DataFrame:
    """name, lambda_f, class1, class2 of each stimulus: from a mapping with those arrays (hmix_stimuli.npz)
    or from the names alone."""
    if isinstance(stimuli, Mapping):  # a dict, or the NpzFile of hmix_stimuli.npz (a Mapping too)
        names = [str(n) for n in np.asarray(stimuli["names"])]
        if all(k in stimuli for k in ("lambda_f", "class1", "class2")):
            return pd.DataFrame(
                {
                    "name": names,
                    "lambda_f": np.asarray(stimuli["lambda_f"], np.float64),
                    "class1": np.asarray(stimuli["class1"], np.int64),
                    "class2": np.asarray(stimuli["class2"], np.int64),
                }
            )
    else:
        names = [str(n) for n in stimuli]
    rows = [parse_stimulus_name(n) for n in names]
    return pd.DataFrame(
        {
            "name": names,
            "lambda_f": [r["lambda_f"] for r in rows],
            "class1": [r["class1"] for r in rows],
            "class2": [r["class2"] for r in rows],
        }
    )


def hmix_pools(
    judgments_df: pd.DataFrame | None,
    stimuli: Sequence[str] | Mapping,
    variant: str,
    seed: int = 0,
    conf_gamma: float = 0.005,
) -> LabelPools:
    """One pool per stimulus (in `stimuli` order) for the chapter-4 augmenting set.

    judgments_df: the `hmix_judgments.csv` table (stimulus, lambda_h, confidence; extra columns ignored);
    needed for agg, sep, agg_conf, sep_conf. stimuli: names, or the `hmix_stimuli.npz` arrays.
    """
    if variant not in HMIX_VARIANTS:
        raise ValueError(f"unknown H-Mix label variant {variant!r}; expected one of {', '.join(HMIX_VARIANTS)}")
    table = _stimulus_table(stimuli)
    n = len(table)
    c1, c2, lam_f = table["class1"].to_numpy(), table["class2"].to_numpy(), table["lambda_f"].to_numpy()
    if variant == "uniform":
        return LabelPools.single(np.full((n, NUM_CLASSES), 1.0 / NUM_CLASSES))
    if variant == "random":
        return LabelPools.single(random_labels(n, seed))
    if variant == "mixup":
        return LabelPools.single(mixup_label(c1, c2, lam_f))

    if judgments_df is None:
        raise ValueError(f"H-Mix variant {variant!r} needs the judgments table")
    missing = [c for c in ("stimulus", "lambda_h", "confidence") if c not in judgments_df.columns]
    if missing:
        raise ValueError(f"judgments table lacks column(s) {', '.join(missing)}")
    groups = {name: g for name, g in judgments_df.groupby("stimulus", sort=False)}
    pools = []
    for k, name in enumerate(table["name"]):
        if name not in groups:
            raise ValueError(f"stimulus {name} has no mixing-factor judgments (needed by variant {variant!r})")
        lam_h = groups[name]["lambda_h"].to_numpy(np.float64)
        omega = groups[name]["confidence"].to_numpy(np.float64)
        if variant == "agg":
            pool = mixup_label(c1[k], c2[k], lam_h.mean())[None]
        elif variant == "sep":
            pool = mixup_label(np.full(len(lam_h), c1[k]), c2[k], lam_h)
        elif variant == "agg_conf":
            pool = confidence_smoothed_label(c1[k], c2[k], lam_h.mean(), omega.mean(), conf_gamma)[None]
        else:  # sep_conf
            pool = confidence_smoothed_label(np.full(len(lam_h), c1[k]), c2[k], lam_h, omega, conf_gamma)
        pools.append(pool)
    return LabelPools.from_lists(pools)


__all__ = [
    "HMIX_VARIANTS",
    "mixup_label",
    "confidence_smoothed_label",
    "parse_stimulus_name",
    "hmix_pools",
]
