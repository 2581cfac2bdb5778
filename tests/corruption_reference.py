"""Seeded reference values of the corruptions whose tests otherwise check only loose bounds (snow, elastic
transform, the plasma fractal behind fog): block means of their output on fixed inputs and seeds, stored in
corruption_reference.json and compared by tests/test_corruptions.py with a tolerance (`TOLERANCE`).

The file was generated once from the implementation that matched the published CIFAR-10-C properties, with

    PYTHONPATH=src python tests/corruption_reference.py

Regenerate it only for an intended change of a corruption, and say so in the commit message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from softlabels.evaluate import corruptions as C

REFERENCE = Path(__file__).with_name("corruption_reference.json")
SEVERITY = 3
BLOCK = 4  # 32x32 -> 8x8 block means
#: On the 0-255 scale for images, 0-1 for the plasma maps: far below what another seed or parameter changes.
TOLERANCE = {"snow": 0.75, "elastic_transform": 0.75, "plasma_fractal": 0.005}


def reference_images(n: int = 2, seed: int = 0) -> np.ndarray:
    """Blurred-noise colour images (as tests/test_corruptions.py's random_images)."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random((n, 32, 32, 3)), sigma=(0, 2, 2, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 255).astype(np.uint8)


def block_means(x: np.ndarray) -> np.ndarray:
    """[n, 32, 32(, c)] -> [n, 8, 8(, c)] means over 4x4 blocks (float64)."""
    n, h, w = x.shape[:3]
    rest = x.shape[3:]
    return x.astype(np.float64).reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK, *rest).mean(axis=(2, 4))


def summaries() -> dict[str, np.ndarray]:
    """What is pinned: snow and elastic transform of reference_images() at severity 3 with seed 0 (the
    pipeline's `corruption_rng`), and plasma_fractal(2, 32, 2.5) from default_rng(0)."""
    images = reference_images()
    out = {name: block_means(C.corrupt(images, name, SEVERITY, C.corruption_rng(0, name, SEVERITY), None))
           for name in ("snow", "elastic_transform")}  # fmt: skip
    out["plasma_fractal"] = block_means(C.plasma_fractal(2, 32, 2.5, np.random.default_rng(0)))
    return out


def load_reference() -> dict[str, np.ndarray]:
    return {name: np.asarray(values) for name, values in json.loads(REFERENCE.read_text()).items()}


if __name__ == "__main__":
    REFERENCE.write_text(json.dumps({k: np.round(v, 4).tolist() for k, v in summaries().items()}) + "\n")
    print(f"wrote {REFERENCE}")
