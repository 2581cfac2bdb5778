"""Semantic similarity of the CIFAR-10 classes (appendix B.4): cosine similarity of GloVe 6B 50-d vectors of
the class names (docs/protocol.md#labels-semantic-redistribution), read from the ten-row file kept at
`resources/glove/glove.6B.50d.cifar10.txt` (the `glove.6B.50d.txt` text format: a word, then its values)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from softlabels import CLASSES


def read_glove_vectors(glove_path: str | Path) -> np.ndarray:
    """Vectors [K, d] of the class names in CLASSES order; errors name the file, line and missing class."""
    path = Path(glove_path)
    vectors: dict[str, np.ndarray] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            word = fields[0].lower()
            if word not in CLASSES:
                continue
            try:
                vectors[word] = np.array([float(x) for x in fields[1:]], dtype=np.float64)
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: bad GloVe value for {word!r}: {exc}") from None
    missing = [name for name in CLASSES if name not in vectors]
    if missing:
        raise ValueError(f"{path}: no GloVe vector for class(es) {', '.join(missing)}")
    dims = {v.shape[0] for v in vectors.values()}
    if len(dims) != 1 or 0 in dims:
        raise ValueError(f"{path}: GloVe vectors have differing or empty dimensions {sorted(dims)}")
    return np.stack([vectors[name] for name in CLASSES])


def cosine_similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """sim[i, j] = v_i·v_j / (|v_i| |v_j|)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit @ unit.T


def semantic_similarity(glove_path: str | Path) -> np.ndarray:
    """Cosine similarity [10, 10] of the GloVe vectors of the class names (alphabetical CIFAR-10 order)."""
    return cosine_similarity_matrix(read_glove_vectors(glove_path))
