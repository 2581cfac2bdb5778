"""Corruption cross-entropy of chapter 5 (thesis Tables 5.1, 5.2; docs/protocol.md#corruption-cross-entropy).

For each corruption c of `evaluation.corruption.corruptions` (severity `evaluation.corruption.severity`),
CE_c = −(1/n) Σ_i Σ_k y_ik log softmax(f(x_i^c))_k over the CIFAR-10H hold-out images, with the CIFAR-10H
distribution y_i as the target; the reported corruption CE is the mean of CE_c over the corruptions. Both
go into metrics.json["corruption"] = {"corruption_ce": mean, "per_corruption": {c: CE_c}, "n": n}: the metric
`corruption_ce` of `softlabels.vocabulary`, "Corruption CE" in the tables.

The corrupted hold-out is the corruption stage's npz (`softlabels.evaluate.corruptions`): one uint8
[n, 32, 32, 3] array per corruption plus `indices`, the CIFAR-10 test index of each row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from softlabels.evaluate.metrics import model_logits, soft_cross_entropy


def load_corrupted_holdout(path: str | Path, indices: np.ndarray, corruptions: Sequence[str]) -> dict[str, np.ndarray]:
    """{corruption: uint8 [len(indices), 32, 32, 3]}: the rows of `path` for the CIFAR-10 test `indices`, in
    that order. Errors name the file and the missing corruption or image."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing corrupted hold-out {path} (built by the corruption stage)")
    with np.load(path, allow_pickle=False) as f:
        if "indices" not in f.files:
            raise ValueError(f"{path}: no 'indices' array (CIFAR-10 test index of each row)")
        stored = f["indices"].astype(np.int64)
        missing = [c for c in corruptions if c not in f.files]
        if missing:
            raise ValueError(f"{path}: no array for corruption(s) {', '.join(missing)} "
                             f"(config key evaluation.corruption.corruptions)")
        row_of = {int(i): r for r, i in enumerate(stored)}
        absent = [int(i) for i in indices if int(i) not in row_of]
        if absent:
            raise ValueError(f"{path}: hold-out image(s) {absent[:5]} are not among its rows")
        rows = np.asarray([row_of[int(i)] for i in indices], dtype=np.int64)
        return {c: f[c][rows] for c in corruptions}


def corruption_metrics(model: torch.nn.Module, corrupted: Mapping[str, np.ndarray], targets: np.ndarray,
                       device: str | torch.device = "cpu") -> dict:
    """{"corruption_ce": CE averaged over corruptions, "per_corruption": {c: CE_c}, "n": images per corruption}; CE_c is
    `soft_cross_entropy` of the model's logits on corruption c against `targets`."""
    targets = np.asarray(targets, dtype=np.float32)
    per = {name: float(soft_cross_entropy(model_logits(model, images, device), targets))
           for name, images in corrupted.items()}
    mean = float(np.mean(list(per.values())))
    return {"corruption_ce": mean, "per_corruption": per, "n": int(len(targets))}
