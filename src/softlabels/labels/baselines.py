"""Baseline label schemes of chapter 3 and appendix B.2
(docs/protocol.md#labels-baselines-and-label-smoothing)."""

from __future__ import annotations

import numpy as np

from softlabels import NUM_CLASSES
from softlabels.labels.pools import LabelPools
from softlabels.numerics import one_hot


def random_labels(n: int, seed: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """K independent U[0, 1) draws per image, normalised to sum to 1 (the released `random` labels)."""
    draws = np.random.default_rng(seed).random((n, num_classes))
    draws[draws.sum(axis=1) == 0] = 1.0  # measure-zero case, kept finite
    return draws / draws.sum(axis=1, keepdims=True)


def smoothed_labels(y, beta: float, normalised: bool = True) -> np.ndarray:
    """Label smoothing (appendix B.2): (1 − β)·y + β/K, or the thesis-era (1 − β)·y + β when not normalised
    (which sums to 1 + (K − 1)β; docs/protocol.md#labels-baselines-and-label-smoothing)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"label smoothing beta must lie in [0, 1], got {beta}")
    hard = one_hot(y)
    return (1.0 - beta) * hard + (beta / NUM_CLASSES if normalised else beta)


def hard_pools(y) -> LabelPools:
    """The hard CIFAR-10 label of each image."""
    return LabelPools.single(one_hot(y))


def uniform_pools(n: int) -> LabelPools:
    """1/K on every class."""
    return LabelPools.single(np.full((n, NUM_CLASSES), 1.0 / NUM_CLASSES))


def random_pools(n: int, seed: int) -> LabelPools:
    """A random normalised vector per image (fixed for the run)."""
    return LabelPools.single(random_labels(n, seed))


def label_smoothing_pools(y, beta: float, normalised: bool = True) -> LabelPools:
    """Label-smoothed hard labels (see `smoothed_labels`)."""
    return LabelPools.single(smoothed_labels(y, beta, normalised))
