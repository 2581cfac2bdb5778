"""Subsets of the Uma et al. 70/30 split that keep every class (used by the quick and smoke scales).

The split files list their images grouped by class, so "the first n" must be read per class.
"""

from __future__ import annotations

import numpy as np


def balanced_prefix(indices: np.ndarray, labels: np.ndarray, n: int | None, first=None) -> np.ndarray:
    """The first ⌈n/K⌉ images of every class of `indices` (file order within a class; the classes with the
    lowest index fill any remainder), kept in file order; all of `indices` when n is None or ≥ its length.
    Images listed in `first` come before the others of their class (each group in file order), so a subset
    can be asked to contain them (the endpoint images of the chapter-4 augmenting set).

    The split files list the images grouped by class, so a plain prefix `indices[:n]` would hold only the
    first few classes; this is the class-balanced reading of "use only the first n" (`hard_image_limit`,
    `cifar10h_holdout_limit`)."""
    indices = np.asarray(indices)
    if n is None or n >= len(indices):
        return indices
    y = np.asarray(labels)[indices]
    later = np.zeros(len(indices), dtype=np.int64) if first is None else (~np.isin(indices, first)).astype(np.int64)
    rank = np.zeros(len(indices), dtype=np.int64)
    for k in np.unique(y):
        members = np.flatnonzero(y == k)
        rank[members[np.argsort(later[members], kind="stable")]] = np.arange(len(members))
    chosen = np.lexsort((y, rank))[:n]  # by within-class rank, then class
    return indices[np.sort(chosen)]
