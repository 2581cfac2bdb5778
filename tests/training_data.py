"""Tiny synthetic training data shared by the trainer tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def make_data(n=96, max_pool=4, seed=0):
    """Random images and padded one-hot pools of 1..max_pool annotators (pads are NaN: never drawn)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    sizes = rng.integers(1, max_pool + 1, n)
    labels = np.full((n, max_pool, 10), np.nan, dtype=np.float32)
    for i in range(n):
        labels[i, : sizes[i]] = np.eye(10, dtype=np.float32)[rng.integers(0, 10, sizes[i])]
    return images, SimpleNamespace(labels=labels, sizes=sizes.astype(np.int64))


def quiet(_line):
    """A log callback that drops every line."""
