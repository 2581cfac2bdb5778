"""Label pools: the one training-label representation shared by every scheme (thesis §3.2.3;
docs/protocol.md#labels-annotators-and-m-subsampling).

Image n's candidate labels are `labels[n, :sizes[n]]`. De-aggregated training draws one candidate uniformly
per example per use; aggregated schemes are pools of size 1 (`LabelPools.mean()`).

Annotator subsampling (M per image) keeps a FIXED subset for the whole run. The subset of an image depends only
on (seed, image index): a permutation drawn from `numpy.random.default_rng([seed, image])`, of which the first
M are kept. So the same image gets the same annotators whichever list of images is asked for, and the subsets
are nested in M (M = 1 ⊂ M = 2 ⊂ ...). The released code drew them from one global `np.random.seed(0)` stream
in JSON order instead; that stream is not reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from softlabels import NUM_CLASSES
from softlabels.labels.elicited import response_labels


@dataclass
class LabelPools:
    """labels float32 [N, P, K] (padded with zeros), sizes int64 [N] (1 <= sizes[n] <= P)."""

    labels: np.ndarray
    sizes: np.ndarray

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.float32)
        self.sizes = np.asarray(self.sizes, dtype=np.int64)
        if self.labels.ndim != 3:
            raise ValueError(f"LabelPools.labels must be [N, P, K], got shape {self.labels.shape}")
        n, p, _ = self.labels.shape
        if self.sizes.shape != (n,):
            raise ValueError(f"LabelPools.sizes must have shape [{n}], got {self.sizes.shape}")
        if n and (self.sizes.min() < 1 or self.sizes.max() > p):
            raise ValueError(f"LabelPools.sizes must lie in 1..{p}")

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def num_classes(self) -> int:
        return self.labels.shape[2]

    @classmethod
    def from_lists(cls, pools: Sequence[np.ndarray]) -> "LabelPools":
        """Pools from a list of [size_n, K] arrays (each size_n >= 1)."""
        sizes = np.array([len(p) for p in pools], dtype=np.int64)
        if len(pools) == 0:
            return cls(np.zeros((0, 1, NUM_CLASSES), np.float32), sizes)
        k = np.asarray(pools[0]).shape[-1]
        labels = np.zeros((len(pools), max(int(sizes.max()), 1), k), dtype=np.float32)
        for n, pool in enumerate(pools):
            labels[n, : len(pool)] = pool
        return cls(labels, sizes)

    @classmethod
    def single(cls, labels: np.ndarray) -> "LabelPools":
        """Size-1 pools from labels [N, K]."""
        labels = np.asarray(labels, dtype=np.float32)
        return cls(labels[:, None, :], np.ones(labels.shape[0], dtype=np.int64))

    def concat(self, other: "LabelPools") -> "LabelPools":
        """These pools followed by `other`'s (padded to the larger P)."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot concatenate pools with different numbers of classes")
        p = max(self.labels.shape[1], other.labels.shape[1])
        return LabelPools(
            np.concatenate([_pad(self.labels, p), _pad(other.labels, p)]),
            np.concatenate([self.sizes, other.sizes]),
        )

    def take(self, indices) -> "LabelPools":
        """The pools at `indices` (an int array or boolean mask), trimmed to their largest size."""
        indices = np.asarray(indices)
        sizes = self.sizes[indices]
        p = int(sizes.max()) if sizes.size else 1
        return LabelPools(self.labels[indices, :p], sizes)

    def mean(self) -> "LabelPools":
        """Aggregate: the mean of each pool's candidates, as size-1 pools."""
        total = self.labels.astype(np.float64).sum(axis=1)
        return LabelPools.single(total / self.sizes[:, None])


def _pad(labels: np.ndarray, p: int) -> np.ndarray:
    if labels.shape[1] == p:
        return labels
    out = np.zeros((labels.shape[0], p, labels.shape[2]), dtype=labels.dtype)
    out[:, : labels.shape[1]] = labels
    return out


def fixed_subset(n_available: int, M: int | str, seed: int, image: int) -> np.ndarray:
    """Sorted positions of the M kept annotators of `image` (all when M is "all" or M >= n_available)."""
    if M == "all" or int(M) >= n_available:
        return np.arange(n_available)
    order = np.random.default_rng([int(seed), int(image)]).permutation(n_available)
    return np.sort(order[: int(M)])


def _check_M(M) -> None:
    if M == "all":
        return
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1:
        raise ValueError(f"M must be a positive integer or 'all', got {M!r}")


def cifar10h_pools(counts_rows: np.ndarray, M: int | str, seed: int, image_ids: Sequence[int] | None = None) -> LabelPools:
    """Per-annotator one-hot pools rebuilt from CIFAR-10H counts [N, K] (docs/protocol.md#cifar-10h-pools).

    Annotators are expanded class by class (all votes for class 0, then class 1, ...), as the released code
    does. M = "all" keeps every annotator; M larger than an image's count is a ValueError naming the image.
    `image_ids` (default: row positions) name the images in errors and key the fixed subsets.
    """
    _check_M(M)
    counts = np.asarray(counts_rows)
    if counts.ndim != 2 or counts.shape[1] != NUM_CLASSES:
        raise ValueError(f"counts must be [N, {NUM_CLASSES}], got shape {counts.shape}")
    if np.any(counts < 0) or not np.all(counts == np.round(counts)):
        raise ValueError("counts must be non-negative integers")
    counts = counts.astype(np.int64)
    ids = np.arange(len(counts)) if image_ids is None else np.asarray(image_ids)
    if ids.shape != (len(counts),):
        raise ValueError(f"image_ids must have length {len(counts)}")
    totals = counts.sum(axis=1)
    if np.any(totals == 0):
        row = int(np.flatnonzero(totals == 0)[0])
        raise ValueError(f"CIFAR-10H image {ids[row]} has no annotations")
    if M != "all" and np.any(totals < M):
        row = int(np.flatnonzero(totals < M)[0])
        raise ValueError(
            f"M = {M} annotators asked for, but CIFAR-10H image {ids[row]} has only {totals[row]} "
            f"(counts {counts[row].tolist()}); use M: all or M <= {totals.min()}"
        )
    # Annotator votes, expanded class by class and padded with -1: votes[n, a] is annotator a's class.
    position = np.arange(int(totals.max()))
    ends = np.cumsum(counts, axis=1)
    class_at = (position[None, None, :] >= ends[:, :, None]).sum(axis=1)
    votes = np.where(position[None, :] < totals[:, None], class_at, -1)
    if M == "all":
        kept, sizes = votes, totals
    else:
        kept = np.stack([votes[n, fixed_subset(int(totals[n]), M, seed, int(ids[n]))] for n in range(len(counts))])
        sizes = np.full(len(counts), int(M), dtype=np.int64)
    labels = np.zeros((*kept.shape, NUM_CLASSES), dtype=np.float32)
    valid = kept >= 0
    labels[valid, kept[valid]] = 1.0
    return LabelPools(labels, sizes)


def cifar10s_pools(
    responses_df: pd.DataFrame,
    images: Sequence[int],
    variety: str,
    M: int | str,
    seed: int,
    gamma: float,
    similarity: np.ndarray | None = None,
    path: str = "documented",
    semantic_base: str = "unif",
) -> LabelPools:
    """Per-response pools of CIFAR-10S labels, one per image in `images`, in that order.

    A response's label is `response_label(...)` of its row; an image's responses keep the file order.
    M larger than the responses available keeps them all (as the released code).
    """
    _check_M(M)
    if "image" not in responses_df.columns:
        raise ValueError("responses table lacks column 'image'")
    labels = response_labels(responses_df, variety, gamma=gamma, similarity=similarity, path=path,
                             semantic_base=semantic_base)
    rows_of = pd.Series(np.arange(len(responses_df))).groupby(responses_df["image"].to_numpy()).apply(np.asarray)
    pools = []
    for image in images:
        image = int(image)
        if image not in rows_of.index:
            raise ValueError(f"image {image} has no CIFAR-10S responses")
        rows = rows_of[image]
        pools.append(labels[rows[fixed_subset(len(rows), M, seed, image)]])
    return LabelPools.from_lists(pools)
