"""CIFAR-10 test set and the Uma et al. 70/30 split of it (docs/protocol.md#image-indices-and-the-split).

`cifar10_test.npz`: `images` uint8 [10000, 32, 32, 3] (HWC, official test order), `labels` int64 [10000].
`splits.npz`: `train` int64 [7000], `test` int64 [3000], the index files' order kept.
`cifar10_train.npz` (hyperparameter sweeps only): `images` uint8 [50000, 32, 32, 3], `labels` int64 [50000], the
official training batches data_batch_1..5 in order.
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
TRAIN_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
TEST_SIZE = 10000


def _unpickle_member(archive: tarfile.TarFile, name: str, path: Path) -> dict:
    try:
        handle = archive.extractfile(name)
    except KeyError:
        raise DataError(f"{path}: archive has no member {name}") from None
    return pickle.load(handle, encoding="bytes")


def _batch_arrays(batch: dict, member: str, path: Path, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3], labels int64 [N]) of one unpickled batch. The batch stores each image as
    3072 bytes, channel-major (R plane, G plane, B plane, each row-major). `size`: the required N (None = any)."""
    name = member.rsplit("/", 1)[-1]
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    n = len(labels)
    if data.shape != (n, 3072) or labels.ndim != 1 or (size is not None and n != size):
        expected = size if size is not None else "N"
        raise DataError(f"{path}: {name} has data {data.shape} and labels {labels.shape}, "
                        f"expected ({expected}, 3072) and ({expected},)")
    if n and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{path}: {name} labels outside 0..{len(CLASSES) - 1}")
    return data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _read_batches(archive_path, members: tuple[str, ...], sizes: tuple[int | None, ...]) -> list:
    """The arrays of `members` of the python-format archive, after checking batches.meta's class order.
    Every absent member is named in one DataError."""
    path = Path(archive_path)
    try:
        with tarfile.open(path, "r:gz") as archive:
            present = set(archive.getnames())
            missing = [m for m in members if m not in present]
            if missing:
                raise DataError(f"{path}: archive has no member(s) {', '.join(missing)}")
            meta = _unpickle_member(archive, META_MEMBER, path)
            batches = [_unpickle_member(archive, m, path) for m in members]
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 python archive ({exc})") from None
    names = tuple(n.decode() for n in meta.get(b"label_names", []))
    if names != CLASSES:
        raise DataError(f"{path}: label_names {names} differ from the CIFAR-10 class order {CLASSES}")
    return [_batch_arrays(b, m, path, n) for b, m, n in zip(batches, members, sizes)]


def read_test_batch(archive_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3], labels int64 [N]) from the python-format archive's `test_batch`."""
    return _read_batches(archive_path, (TEST_MEMBER,), (TEST_SIZE,))[0]


def read_train_batches(archive_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3], labels int64 [N]) of data_batch_1..5 concatenated in order (N = 50000 in
    the official archive). An archive without them (e.g. a mirror holding the test batch only) is a DataError
    naming the missing members."""
    parts = _read_batches(archive_path, TRAIN_MEMBERS, (None,) * len(TRAIN_MEMBERS))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def write_cifar10_train(archive_path, out_path) -> None:
    images, labels = read_train_batches(archive_path)
    save_npz(out_path, {"images": images, "labels": labels})


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
