"""CIFAR-10 test set and the Uma et al. 70/30 split of it (docs/protocol.md#image-indices-and-the-split).

`cifar10_test.npz`: `images` uint8 [10000, 32, 32, 3] (HWC, official test order), `labels` int64 [10000].
`splits.npz`: `train` int64 [7000], `test` int64 [3000], the index files' order kept.
"""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from softlabels import CLASSES
from softlabels.data.io import DataError, save_npz

TEST_MEMBER = "cifar-10-batches-py/test_batch"
META_MEMBER = "cifar-10-batches-py/batches.meta"
TEST_SIZE = 10000


def _unpickle_member(archive: tarfile.TarFile, name: str, path: Path) -> dict:
    try:
        handle = archive.extractfile(name)
    except KeyError:
        raise DataError(f"{path}: archive has no member {name}") from None
    return pickle.load(handle, encoding="bytes")


def read_test_batch(archive_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3], labels int64 [N]) from the python-format archive's `test_batch`.

    The batch stores each image as 3072 bytes, channel-major (R plane, G plane, B plane, each row-major)."""
    path = Path(archive_path)
    try:
        with tarfile.open(path, "r:gz") as archive:
            batch = _unpickle_member(archive, TEST_MEMBER, path)
            meta = _unpickle_member(archive, META_MEMBER, path)
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 python archive ({exc})") from None
    names = tuple(n.decode() for n in meta.get(b"label_names", []))
    if names != CLASSES:
        raise DataError(f"{path}: label_names {names} differ from the CIFAR-10 class order {CLASSES}")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.shape != (TEST_SIZE, 3072) or labels.shape != (TEST_SIZE,):
        raise DataError(f"{path}: test_batch has data {data.shape} and labels {labels.shape}, "
                        f"expected ({TEST_SIZE}, 3072) and ({TEST_SIZE},)")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise DataError(f"{path}: test_batch labels outside 0..{len(CLASSES) - 1}")
    images = data.reshape(TEST_SIZE, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def write_cifar10_test(archive_path, out_path) -> None:
    images, labels = read_test_batch(archive_path)
    save_npz(out_path, {"images": images, "labels": labels})


def load_cifar10_test(path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["images"], data["labels"]


def read_index_file(path, n_images: int = TEST_SIZE) -> np.ndarray:
    """A 1-D array of distinct test-set indices (int64), order kept."""
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{path}: expected a 1-D integer array, got {values.dtype} {values.shape}")
    if values.size and (values.min() < 0 or values.max() >= n_images):
        raise DataError(f"{path}: indices outside 0..{n_images - 1}")
    if np.unique(values).size != values.size:
        raise DataError(f"{path}: repeated indices")
    return values.astype(np.int64)


def write_splits(train_path, test_path, out_path) -> None:
    """`splits.npz` from the released index files; they must be disjoint."""
    train, test = read_index_file(train_path), read_index_file(test_path)
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise DataError(f"{train_path} and {test_path} share {overlap.size} indices (first: {overlap[0]})")
    save_npz(out_path, {"train": train, "test": test})
