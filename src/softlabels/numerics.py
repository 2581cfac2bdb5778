"""Small numerical helpers shared by every stage: one definition each."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats

from softlabels import NUM_CLASSES


def entropy(p) -> np.ndarray:
    """H(p) = −Σ_k p_k log p_k in nats over the last axis, with 0·log 0 = 0 (thesis §3.2.1)."""
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)


def one_hot(y, num_classes: int = NUM_CLASSES, dtype=np.float64) -> np.ndarray:
    """One-hot rows [N, K] of integer class indices y [N]; ValueError for an index outside 0..K−1."""
    y = np.asarray(y, dtype=np.int64)
    if y.ndim != 1 or np.any((y < 0) | (y >= num_classes)):
        raise ValueError(f"labels must be a 1-d array of class indices 0..{num_classes - 1}")
    out = np.zeros((y.shape[0], num_classes), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the two-sided `level` t-interval) over the non-missing values:
    x̄ ± t_{(1+level)/2, n−1} · s/√n. The half-width is NaN for fewer than two values."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(float(x))], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan")
    half = stats.t.ppf(0.5 + level / 2, df=v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return mean, float(half)
