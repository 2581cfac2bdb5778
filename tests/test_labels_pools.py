"""LabelPools, the baseline schemes and the CIFAR-10H / CIFAR-10S pool builders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.labels import (
    LabelPools,
    cifar10h_pools,
    cifar10s_pools,
    hard_pools,
    label_smoothing_pools,
    random_pools,
    response_label,
    uniform_pools,
)


def pools_of(*lists) -> LabelPools:
    return LabelPools.from_lists([np.asarray(p, dtype=np.float32) for p in lists])


def onehot(k):
    v = np.zeros(10)
    v[k] = 1
    return v


# ------------------------------------------------------------------------------------------------ LabelPools


def test_pools_layout_and_length():
    pools = pools_of([onehot(1), onehot(2)], [onehot(3)])
    assert len(pools) == 2
    assert pools.labels.shape == (2, 2, 10) and pools.labels.dtype == np.float32
    assert pools.sizes.tolist() == [2, 1] and pools.sizes.dtype == np.int64
    np.testing.assert_array_equal(pools.labels[1, 1], 0)  # padding


def test_pools_reject_bad_sizes():
    with pytest.raises(ValueError, match="sizes"):
        LabelPools(np.zeros((2, 3, 10)), np.array([0, 2]))
    with pytest.raises(ValueError, match="sizes"):
        LabelPools(np.zeros((2, 3, 10)), np.array([1, 4]))
    with pytest.raises(ValueError, match=r"\[N, P, K\]"):
        LabelPools(np.zeros((2, 10)), np.array([1, 1]))


def test_concat_pads_to_the_larger_pool():
    a = pools_of([onehot(0)])
    b = pools_of([onehot(1), onehot(2), onehot(3)])
    both = a.concat(b)
    assert both.labels.shape == (2, 3, 10)
    assert both.sizes.tolist() == [1, 3]
    np.testing.assert_array_equal(both.labels[1, 2], onehot(3))


def test_take_selects_and_trims():
    pools = pools_of([onehot(0)], [onehot(1), onehot(2), onehot(3)], [onehot(4), onehot(5)])
    sub = pools.take([2, 0])
    assert sub.sizes.tolist() == [2, 1]
    assert sub.labels.shape == (2, 2, 10)
    np.testing.assert_array_equal(sub.labels[0, 1], onehot(5))


def test_mean_averages_only_the_real_candidates():
    pools = pools_of([onehot(0), onehot(1)], [onehot(2)])
    mean = pools.mean()
    assert mean.sizes.tolist() == [1, 1]
    np.testing.assert_allclose(mean.labels[0, 0], 0.5 * (onehot(0) + onehot(1)))
    np.testing.assert_allclose(mean.labels[1, 0], onehot(2))


# --------------------------------------------------------------------------------------------------- baselines


def test_hard_and_uniform_pools():
    hard = hard_pools(np.array([3, 0]))
    np.testing.assert_array_equal(hard.labels[:, 0], [onehot(3), onehot(0)])
    uni = uniform_pools(4)
    np.testing.assert_allclose(uni.labels, 0.1)
    assert uni.sizes.tolist() == [1] * 4


def test_random_pools_are_seeded_normalised_and_varied():
    a, b, c = random_pools(50, seed=1), random_pools(50, seed=1), random_pools(50, seed=2)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.allclose(a.labels, c.labels)
    np.testing.assert_allclose(a.labels.sum(-1), 1, rtol=1e-6)
    assert a.labels.min() >= 0 and a.labels[:, 0].std() > 0.01


def test_label_smoothing_normalised_and_unnormalised():
    ls = label_smoothing_pools(np.array([2]), beta=0.05).labels[0, 0]
    assert ls[2] == pytest.approx(0.95 + 0.005) and ls[0] == pytest.approx(0.005)
    assert ls.sum() == pytest.approx(1.0)
    raw = label_smoothing_pools(np.array([2]), beta=0.05, normalised=False).labels[0, 0]
    assert raw[2] == pytest.approx(1.0) and raw[0] == pytest.approx(0.05)
    assert raw.sum() == pytest.approx(1.45)


# ------------------------------------------------------------------------------------------------- CIFAR-10H

COUNTS = np.array([[2, 0, 1, 0, 0, 0, 0, 0, 0, 3], [0, 5, 0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])


def test_cifar10h_all_expands_counts_class_by_class():
    pools = cifar10h_pools(COUNTS, "all", seed=0)
    assert pools.sizes.tolist() == [6, 5, 10]
    classes = pools.labels[0, :6].argmax(axis=1)
    assert classes.tolist() == [0, 0, 2, 9, 9, 9]
    np.testing.assert_allclose(pools.mean().labels[:, 0], COUNTS / COUNTS.sum(1, keepdims=True), rtol=1e-6)


def test_cifar10h_m_larger_than_available_names_the_image():
    with pytest.raises(ValueError, match=r"image 1001 has only 5"):
        cifar10h_pools(COUNTS, 6, seed=0, image_ids=[1000, 1001, 1002])


def test_cifar10h_subset_is_fixed_nested_and_keyed_by_image():
    ids = [7, 8, 9]
    m2 = cifar10h_pools(COUNTS, 2, seed=3, image_ids=ids)
    again = cifar10h_pools(COUNTS, 2, seed=3, image_ids=ids)
    np.testing.assert_array_equal(m2.labels, again.labels)
    assert m2.sizes.tolist() == [2, 2, 2]
    m3 = cifar10h_pools(COUNTS, 3, seed=3, image_ids=ids)
    # The 10-annotator image: the M = 2 subset is inside the M = 3 subset.
    two = set(m2.labels[2].argmax(1).tolist())
    assert two <= set(m3.labels[2].argmax(1).tolist())
    # Asking for one image alone gives it the same annotators.
    alone = cifar10h_pools(COUNTS[2:], 2, seed=3, image_ids=[9])
    np.testing.assert_array_equal(alone.labels[0], m2.labels[2])


def test_cifar10h_different_seeds_differ_somewhere():
    counts = np.tile(np.arange(1, 11), (20, 1))
    a = cifar10h_pools(counts, 3, seed=0).labels
    b = cifar10h_pools(counts, 3, seed=1).labels
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("M", [0, -1, 2.5, "some"])
def test_cifar10h_bad_m(M):
    with pytest.raises(ValueError, match="M must"):
        cifar10h_pools(COUNTS, M, seed=0)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.lists(st.integers(0, 6), min_size=10, max_size=10).filter(lambda r: sum(r) > 0),
                       min_size=1, max_size=8), M=st.integers(1, 6), seed=st.integers(0, 100))
def test_cifar10h_subsets_only_hold_real_votes(counts, M, seed):
    counts = np.array(counts)
    if M > counts.sum(1).min():
        with pytest.raises(ValueError):
            cifar10h_pools(counts, M, seed)
        return
    pools = cifar10h_pools(counts, M, seed)
    votes = pools.labels.sum(axis=1)
    assert np.all(votes <= counts) and np.all(votes.sum(1) == M)


# ------------------------------------------------------------------------------------------------- CIFAR-10S


def responses() -> pd.DataFrame:
    rows = []
    for image, n in ((11, 3), (12, 7), (13, 1)):
        for r in range(n):
            rows.append({"image": image, "top_class": "cat", "top_prob": 50.0 + r, "second_class": "dog",
                         "second_prob": 10.0, "impossible": "frog"})
    return pd.DataFrame(rows)


def test_cifar10s_pools_follow_the_requested_order():
    pools = cifar10s_pools(responses(), [13, 11], "t2_clamp", "all", seed=0, gamma=0.1)
    assert pools.sizes.tolist() == [1, 3]
    np.testing.assert_allclose(pools.labels[1, 2], response_label(3, 52, 5, 10, [6]), rtol=1e-6)


def test_cifar10s_m_larger_than_available_keeps_all():
    pools = cifar10s_pools(responses(), [11, 12, 13], "t2_clamp", 6, seed=0, gamma=0.1)
    assert pools.sizes.tolist() == [3, 6, 1]


def test_cifar10s_subset_is_fixed_and_a_subset():
    df = responses()
    a = cifar10s_pools(df, [12], "t1_unif", 4, seed=5, gamma=0.1)
    b = cifar10s_pools(df, [11, 12], "t1_unif", 4, seed=5, gamma=0.1)
    np.testing.assert_array_equal(a.labels[0], b.labels[1])
    everything = cifar10s_pools(df, [12], "t1_unif", "all", seed=5, gamma=0.1).labels[0]
    for label in a.labels[0]:
        assert any(np.array_equal(label, row) for row in everything)


def test_cifar10s_unknown_image_is_an_error():
    with pytest.raises(ValueError, match="image 99"):
        cifar10s_pools(responses(), [11, 99], "t2_clamp", "all", seed=0, gamma=0.1)


# ---------------------------------------------------------------------------------- edges, by hand (issue 19)
def test_no_pools_and_pools_of_one_candidate_keep_their_shape():
    empty = LabelPools.from_lists([])
    assert empty.labels.shape == (0, 1, 10) and empty.sizes.shape == (0,)
    ones = pools_of([onehot(4)], [onehot(7)])
    assert ones.labels.shape == (2, 1, 10)  # P is the largest pool, not padded beyond it


def test_concat_pads_the_smaller_pool_with_zeros_whatever_p_is():
    """P = 10 equals K: the padding must follow the pool axis, never the class axis."""
    ten = pools_of([onehot(k) for k in range(10)])
    two = pools_of([onehot(5), onehot(6)], [onehot(7)], [onehot(8)])
    both = two.concat(ten)
    assert both.labels.shape == (4, 10, 10) and both.sizes.tolist() == [2, 1, 1, 10]
    np.testing.assert_array_equal(both.labels[0, :2], [onehot(5), onehot(6)])
    np.testing.assert_array_equal(both.labels[:3, 2:], 0)
    np.testing.assert_array_equal(both.labels[1, 1:], 0)
    np.testing.assert_array_equal(both.labels[3], np.eye(10))
    with pytest.raises(ValueError, match="cannot concatenate pools with different numbers of classes"):
        two.concat(LabelPools.single(np.full((1, 4), 0.25)))


def test_cifar10s_pools_pass_gamma_path_similarity_and_base_to_every_label():
    """Image 11's first response is cat 50, dog 10, frog impossible: A = 0.6, 7 free classes get 0.4/7 each
    (both paths agree below 100). A truck 75 + automobile 25 response (A = 1) shows γ and the path:
    documented: damped by 1 − γ, γ over the free classes; hmix_release: γ/n_free on top, / (1 + γ)."""
    df = pd.DataFrame([{"image": 20, "top_class": "truck", "top_prob": 75.0, "second_class": "automobile",
                        "second_prob": 25.0, "impossible": "airplane|bird|cat|deer|dog|frog|horse"}])
    truck, auto, ship = 9, 1, 8
    documented = cifar10s_pools(df, [20], "t2_clamp", "all", seed=0, gamma=0.2).labels[0, 0]
    np.testing.assert_allclose(documented[[truck, auto, ship]], [0.75 * 0.8, 0.25 * 0.8, 0.2], rtol=1e-6)
    release = cifar10s_pools(df, [20], "t2_clamp", "all", seed=0, gamma=0.2, path="hmix_release").labels[0, 0]
    np.testing.assert_allclose(release[[truck, auto, ship]], np.array([0.75, 0.25, 0.2]) / 1.2, rtol=1e-6)
    # Semantic on Unif: the leftover 0.4 of cat 50 + dog 10 goes to the zero entries by similarity to cat
    similarity = np.eye(10)
    similarity[3, 0] = similarity[0, 3] = 1.0  # airplane is the only class similar to cat
    semantic = cifar10s_pools(responses(), [11], "t2_semantic", "all", seed=0, gamma=0.1,
                              similarity=similarity).labels[0, 0]
    np.testing.assert_allclose(semantic[[3, 5, 0]], [0.5, 0.1, 0.4], rtol=1e-6)
    # Semantic on Clamp: the same mass, only over the possible zero-valued classes (frog is impossible)
    similarity[3, 6] = similarity[6, 3] = 1.0
    on_clamp = cifar10s_pools(responses(), [11], "t2_semantic", "all", seed=0, gamma=0.1, similarity=similarity,
                              semantic_base="clamp").labels[0, 0]
    np.testing.assert_allclose(on_clamp[[3, 5, 0, 6]], [0.5, 0.1, 0.4, 0.0], atol=1e-6)
    t1 = cifar10s_pools(responses(), [11], "t1_unif", "all", seed=0, gamma=0.1).labels[0, 0]
    np.testing.assert_allclose(t1[[3, 5]], [0.5, 0.5 / 9], rtol=1e-6)  # T1 ignores the second class
    with pytest.raises(ValueError, match="responses table lacks column 'image'"):
        cifar10s_pools(df.drop(columns="image"), [20], "t2_clamp", "all", seed=0, gamma=0.1)


def test_cifar10h_counts_are_checked_with_exact_messages():
    with pytest.raises(ValueError, match=r"^counts must be \[N, 10\], got shape \(2, 9\)$"):
        cifar10h_pools(np.ones((2, 9)), "all", seed=0)
    with pytest.raises(ValueError, match=r"^counts must be \[N, 10\], got shape \(10,\)$"):
        cifar10h_pools(np.ones(10), "all", seed=0)
    for bad in (-1.0, 0.5):
        counts = np.ones((2, 10))
        counts[1, 3] = bad
        with pytest.raises(ValueError, match="^counts must be non-negative integers$"):
            cifar10h_pools(counts, "all", seed=0)
    with pytest.raises(ValueError, match="^image_ids must have length 2$"):
        cifar10h_pools(np.ones((2, 10)), "all", seed=0, image_ids=[7])
    empty = np.ones((3, 10))
    empty[[1, 2]] = 0
    with pytest.raises(ValueError, match="^CIFAR-10H image 41 has no annotations$"):
        cifar10h_pools(empty, "all", seed=0, image_ids=[40, 41, 42])


def test_cifar10h_pools_pad_unequal_counts_with_zero_rows():
    """Image 0 has 3 votes (cat, cat, dog), image 1 one (truck): image 1's pool holds one one-hot and zero rows."""
    counts = np.zeros((2, 10))
    counts[0, [3, 5]] = [2, 1]
    counts[1, 9] = 1
    pools = cifar10h_pools(counts, "all", seed=0)
    assert pools.sizes.tolist() == [3, 1] and pools.labels.dtype == np.float32
    np.testing.assert_array_equal(pools.labels[0], np.eye(10)[[3, 3, 5]])
    np.testing.assert_array_equal(pools.labels[1], np.vstack([np.eye(10)[9], np.zeros((2, 10))]))


def test_pool_messages_are_exact_and_an_empty_take_keeps_one_slot():
    with pytest.raises(ValueError, match="^cannot concatenate pools with different numbers of classes$"):
        pools_of([onehot(1)]).concat(LabelPools.single(np.full((1, 4), 0.25)))
    with pytest.raises(ValueError, match="^responses table lacks column 'image'$"):
        cifar10s_pools(responses().drop(columns="image"), [11], "t2_clamp", "all", seed=0, gamma=0.1)
    with pytest.raises(ValueError, match=r"^LabelPools.sizes must have shape \[2\], got \(3,\)$"):
        LabelPools(np.zeros((2, 3, 10)), np.array([1, 1, 1]))
    none = pools_of([onehot(1), onehot(2)], [onehot(3)]).take(np.array([], dtype=np.int64))
    assert none.labels.shape == (0, 1, 10) and len(none) == 0
