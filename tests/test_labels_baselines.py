"""Baseline label schemes (appendix B.2) and the GloVe class similarity (appendix B.4) against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softlabels import CLASSES
from softlabels.labels import baselines as B
from softlabels.labels import semantic as S


def test_smoothed_labels_by_hand():
    normalised = B.smoothed_labels([2, 0], 0.1)
    assert normalised[0].tolist() == pytest.approx([0.01, 0.01, 0.91] + [0.01] * 7, abs=1e-15)
    assert normalised[1, 0] == pytest.approx(0.91, abs=1e-15)
    thesis_era = B.smoothed_labels([2, 0], 0.1, normalised=False)  # (1 − β)·y + β: sums to 1 + 9β
    assert thesis_era[0].tolist() == pytest.approx([0.1, 0.1, 1.0] + [0.1] * 7, abs=1e-15)
    assert B.smoothed_labels([1], 0.0).tolist() == [[0.0, 1.0] + [0.0] * 8]
    np.testing.assert_allclose(B.smoothed_labels([1], 1.0), np.full((1, 10), 0.1), rtol=0, atol=1e-15)
    for beta in (-0.01, 1.5):
        with pytest.raises(ValueError, match=rf"label smoothing beta must lie in \[0, 1\], got {beta}"):
            B.smoothed_labels([1], beta)
    pools = B.label_smoothing_pools([2, 0], 0.1, normalised=False)
    assert pools.sizes.tolist() == [1, 1] and pools.labels[0, 0, 2] == pytest.approx(1.0)


def test_random_labels_are_normalised_seeded_draws():
    draws = np.random.default_rng(7).random((3, 10))
    labels = B.random_labels(3, 7)
    np.testing.assert_allclose(labels, draws / draws.sum(axis=1, keepdims=True), rtol=1e-15)
    assert B.random_labels(2, 7, num_classes=4).shape == (2, 4)
    pools = B.random_pools(3, 7)
    assert pools.sizes.tolist() == [1, 1, 1]
    np.testing.assert_allclose(pools.labels[:, 0], labels, rtol=1e-6)


def test_hard_and_uniform_pools():
    hard = B.hard_pools([3, 9])
    assert hard.sizes.tolist() == [1, 1] and hard.labels.shape == (2, 1, 10)
    assert hard.labels[0, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0] and hard.labels[1, 0, 9] == 1
    uniform = B.uniform_pools(2)
    assert uniform.sizes.tolist() == [1, 1] and uniform.labels.shape == (2, 1, 10)
    np.testing.assert_allclose(uniform.labels, np.full((2, 1, 10), 0.1), rtol=1e-7)


def _glove(path, rows):
    path.write_text("".join(f"{w} " + " ".join(str(v) for v in vec) + "\n" for w, vec in rows))
    return path


def _unit_rows():
    """Class k gets e_(k mod 3) in 3-d, except bird = (1, 1, 0) and cat = (0, 0, −2)."""
    vectors = {name: [1.0 if j == k % 3 else 0.0 for j in range(3)] for k, name in enumerate(CLASSES)}
    vectors["bird"] = [1.0, 1.0, 0.0]
    vectors["cat"] = [0.0, 0.0, -2.0]
    return vectors


def test_glove_similarity_by_hand(tmp_path):
    vectors = _unit_rows()
    rows = [("the", [9, 9, 9]), *[(name.upper() if name == "ship" else name, v) for name, v in vectors.items()]]
    path = _glove(tmp_path / "g.txt", rows)
    with path.open("a") as f:
        f.write("\n")  # a blank line is skipped
    sim = S.semantic_similarity(path)
    c = {name: k for k, name in enumerate(CLASSES)}
    assert sim.shape == (10, 10) and np.allclose(np.diag(sim), 1.0)
    assert sim[c["airplane"], c["bird"]] == pytest.approx(1 / math.sqrt(2))  # (1,0,0)·(1,1,0)/√2
    assert sim[c["airplane"], c["automobile"]] == pytest.approx(0.0)
    assert sim[c["cat"], c["automobile"]] == pytest.approx(0.0)
    assert sim[c["cat"], c["bird"]] == pytest.approx(0.0)
    assert sim[c["cat"], c["dog"]] == pytest.approx(-1.0)  # dog (k = 5) is e_2, cat is −2·e_2
    np.testing.assert_allclose(S.read_glove_vectors(path)[c["ship"]], vectors["ship"])


def test_glove_errors_name_the_file_line_and_class(tmp_path):
    vectors = _unit_rows()
    bad = _glove(tmp_path / "bad.txt", [(n, v) for n, v in vectors.items()] + [("truck", ["0.1", "x", "0"])])
    with pytest.raises(ValueError, match=r"bad.txt:11: bad GloVe value for 'truck': could not convert"):
        S.read_glove_vectors(bad)
    missing = _glove(tmp_path / "missing.txt", [(n, v) for n, v in vectors.items() if n not in ("cat", "truck")])
    with pytest.raises(ValueError, match=r"missing.txt: no GloVe vector for class\(es\) cat, truck$"):
        S.read_glove_vectors(missing)
    ragged = _glove(tmp_path / "ragged.txt", [(n, v if n != "dog" else v[:2]) for n, v in vectors.items()])
    with pytest.raises(ValueError, match=r"ragged.txt: GloVe vectors have differing or empty dimensions \[2, 3\]"):
        S.read_glove_vectors(ragged)
    empty = _glove(tmp_path / "empty.txt", [(n, []) for n in vectors])
    with pytest.raises(ValueError, match=r"empty.txt: GloVe vectors have differing or empty dimensions \[0\]"):
        S.read_glove_vectors(empty)
