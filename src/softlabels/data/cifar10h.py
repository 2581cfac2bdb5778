"""CIFAR-10H (Peterson et al. 2019; docs/protocol.md#cifar-10h-pools).

`cifar10h.npz`: `counts` int64 [10000, 10], `probs` float64 [10000, 10] (= counts / row sum).
`cifar10h_annotators.csv`: the per-annotator pool rebuilt from the counts, `image,annotator,label`, labels
expanded class by class (class 0 repeated counts[0] times, then class 1, ...) as the released dataloader does;
annotator = 0..n-1 within the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from softlabels import NUM_CLASSES
from softlabels.data.io import DataError, atomic_outputs


def _load_matrix(path) -> np.ndarray:
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    if values.ndim != 2 or values.shape[1] != NUM_CLASSES:
        raise DataError(f"{path}: expected shape [N, {NUM_CLASSES}], got {values.shape}")
    return values


def read_cifar10h(counts_path, probs_path) -> tuple[np.ndarray, np.ndarray]:
    """(counts int64, probs float64), checked: counts are non-negative integers with a positive row sum, and
    probs equal counts / row sum."""
    counts, probs = _load_matrix(counts_path), _load_matrix(probs_path)
    if not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0:
        raise DataError(f"{counts_path}: counts must be non-negative integers")
    totals = counts.sum(axis=1)
    if (totals <= 0).any():
        raise DataError(f"{counts_path}: image {int(np.argmax(totals <= 0))} has no annotations")
    if probs.shape != counts.shape:
        raise DataError(f"{probs_path}: shape {probs.shape} differs from the counts' {counts.shape}")
    expected = counts / totals[:, None]
    bad = np.abs(probs - expected).max(axis=1) > 1e-9
    if bad.any():
        raise DataError(f"{probs_path}: row {int(np.argmax(bad))} differs from counts / row sum ({counts_path})")
    return counts.astype(np.int64), probs.astype(np.float64)


def annotator_table(counts: np.ndarray) -> pd.DataFrame:
    """One row per (image, annotator): labels expanded class by class from the counts."""
    n_images, n_classes = counts.shape
    per_image = counts.sum(axis=1)
    label = np.repeat(np.tile(np.arange(n_classes), n_images), counts.ravel())
    image = np.repeat(np.arange(n_images), per_image)
    starts = np.concatenate([[0], np.cumsum(per_image)[:-1]])
    annotator = np.arange(label.size) - np.repeat(starts, per_image)
    return pd.DataFrame({"image": image, "annotator": annotator, "label": label})


def write_cifar10h(counts_path, probs_path, out_npz, out_csv) -> None:
    counts, probs = read_cifar10h(counts_path, probs_path)
    table = annotator_table(counts)
    with atomic_outputs(out_npz, out_csv) as (tmp_npz, tmp_csv):
        with open(tmp_npz, "wb") as handle:
            np.savez(handle, counts=counts, probs=probs)
        table.to_csv(tmp_csv, index=False)
