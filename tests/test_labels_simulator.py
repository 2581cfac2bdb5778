"""Appendix-B.5 simulator and the GloVe semantic similarity, on small hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from softlabels import CLASSES
from softlabels.labels import SimulatorParams, fit_simulator, semantic_similarity, simulate_labels
from softlabels.labels.simulator import BetaFit, GroupParams, beta_fit, label_statistics
from softlabels.numerics import entropy


def test_label_statistics_second_is_second_largest_unique_value():
    labels = np.array(
        [
            [0.8, 0.1, 0.1, 0, 0, 0, 0, 0, 0, 0],  # second unique value 0.1
            [1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # second 0
            [0.1] * 10,  # all equal: second = top
            [0.45, 0.45, 0.1, 0, 0, 0, 0, 0, 0, 0],  # tie at the top: second = 0.1
        ]
    )
    stats = label_statistics(labels)
    np.testing.assert_allclose(stats["top"], [0.8, 1.0, 0.1, 0.45])
    np.testing.assert_allclose(stats["second"], [0.1, 0.0, 0.1, 0.1])
    assert stats["n_also_possible"].tolist() == [2, 0, 9, 2]


def test_beta_fit_maps_ones_and_zeros_and_fixes_loc():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.beta(4.0, 2.0, 2000), np.ones(5), np.zeros(5)])
    fit = beta_fit(x)
    assert fit.loc == 0.0
    assert np.isfinite([fit.a, fit.b, fit.scale]).all()
    assert fit.a * fit.scale / (fit.a + fit.b) == pytest.approx(x.mean(), abs=0.03)


def test_entropy_natural_log():
    assert entropy(np.array([0.5, 0.5] + [0] * 8)) == pytest.approx(np.log(2))
    assert entropy(np.eye(10)[3]) == 0


def toy_data():
    """Two images: a one-hot CIFAR-10H image (low entropy) and a split one (high entropy)."""
    probs = np.zeros((10000, 10))
    probs[0, 3] = 1.0
    probs[1, [3, 5]] = 0.5
    rows = []
    for r in range(12):
        rows.append({"image": 0, "top_class": "cat", "top_prob": 90.0 + r % 5, "second_class": "",
                     "second_prob": np.nan, "impossible": "|".join(c for c in CLASSES if c not in ("cat", "dog"))})
        rows.append({"image": 1, "top_class": "dog", "top_prob": 50.0 + r, "second_class": "cat",
                     "second_prob": 30.0 - r, "impossible": ""})
    return pd.DataFrame(rows), probs


def test_fit_routes_by_entropy():
    df, probs = toy_data()
    params = fit_simulator(df, probs, threshold=0.25, gamma=0.1)
    assert params.low.n_responses == 12 and params.high.n_responses == 12
    assert params.low.n_also_possible == [0, 12] + [0] * 8  # cat + dog possible
    assert params.high.n_also_possible == [0] * 9 + [12]  # all possible
    assert params.low.top_mean > params.high.top_mean
    assert SimulatorParams.from_dict(params.to_dict()) == params


def fixed_params(hist_low, hist_high, gamma=0.1) -> SimulatorParams:
    group = lambda hist: GroupParams(10, 0.8, 0.1, BetaFit(8.0, 2.0, 0.0, 0.99), BetaFit(2.0, 8.0, 0.0, 0.5), hist)
    return SimulatorParams(0.25, gamma, group(hist_low), group(hist_high))


def test_simulated_labels_are_probability_vectors_on_the_hard_label():
    params = fixed_params([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 5, 0, 0, 0, 0, 0, 0])
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=500)
    sim = np.corrcoef(rng.normal(size=(10, 50)))
    labels = simulate_labels(params, probs, sim, seed=1)
    assert labels.shape == (500, 10)
    assert np.all(np.isfinite(labels)) and labels.min() >= 0
    np.testing.assert_allclose(labels.sum(1), 1)
    np.testing.assert_array_equal(labels, simulate_labels(params, probs, sim, seed=1))
    assert not np.array_equal(labels, simulate_labels(params, probs, sim, seed=2))


def test_k_p_zero_gives_one_hot_on_a_class_cifar10h_saw():
    params = fixed_params([1] + [0] * 9, [1] + [0] * 9)
    probs = np.zeros((50, 10))
    probs[:, 2] = 0.6
    probs[:, 7] = 0.4
    labels = simulate_labels(params, probs, np.eye(10), seed=0)
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert set(labels.argmax(1)) == {2, 7}


def test_k_p_spreads_over_the_closest_classes():
    # Low-entropy image of class cat; K_p = 3 always; the three closest to cat by similarity get the mass.
    params = fixed_params([0, 0, 0, 1, 0, 0, 0, 0, 0, 0], [0] * 10)
    probs = np.zeros((20, 10))
    probs[:, 3] = 1.0
    sim = np.eye(10)
    sim[3, [5, 6, 2]] = [0.9, 0.8, 0.7]
    labels = simulate_labels(params, probs, sim, seed=0)
    assert set(np.flatnonzero(labels.sum(0))) == {2, 3, 5, 6}
    # p2 on dog (the closest); the remainder is shared equally by frog and bird.
    np.testing.assert_allclose(labels[:, 6], labels[:, 2])
    assert np.all(labels[:, 5] > 0) and np.all(labels[:, 2] > 0)


def write_glove(path, rows):
    path.write_text("".join(f"{word} {' '.join(map(str, vec))}\n" for word, vec in rows))


def test_semantic_similarity_is_cosine(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(10, 5))
    glove = tmp_path / "glove.txt"
    write_glove(glove, [("the", np.ones(5))] + list(zip(CLASSES[::-1], vectors[::-1])))
    sim = semantic_similarity(glove)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(sim, unit @ unit.T)
    np.testing.assert_allclose(np.diag(sim), 1)


def test_semantic_similarity_names_a_missing_class(tmp_path):
    glove = tmp_path / "glove.txt"
    write_glove(glove, [(c, np.ones(3)) for c in CLASSES if c != "frog"])
    with pytest.raises(ValueError, match="frog"):
        semantic_similarity(glove)


def test_use_beta_scale_changes_the_draws():
    """labels.simulator_use_beta_scale: true samples scale·Beta(a, b); it must not be ignored."""
    group = GroupParams(10, 0.8, 0.1, BetaFit(8.0, 2.0, 0.0, 0.5), BetaFit(2.0, 8.0, 0.0, 0.1), [0, 1] + [0] * 8)
    params = SimulatorParams(0.25, 0.1, group, group)
    probs = np.zeros((200, 10))
    probs[:, 3] = 1.0  # low entropy, hard label cat, K_p = 1: the label is (p1, p2) renormalised
    plain = simulate_labels(params, probs, np.eye(10), seed=0)
    scaled = simulate_labels(params, probs, np.eye(10), seed=0, use_beta_scale=True)
    second = plain[:, np.arange(10) != 3].sum(1)
    assert np.all(second > 0)
    # same Beta draws; the second answer is scaled by 0.1 and the top by 0.5, so the top share grows
    assert np.all(scaled[:, 3] > plain[:, 3])
    ratio_plain = plain[:, 3] / second
    ratio_scaled = scaled[:, 3] / scaled[:, np.arange(10) != 3].sum(1)
    np.testing.assert_allclose(ratio_scaled, ratio_plain * 5.0, rtol=1e-9)


# ---------------------------------------------------------------------------------- by hand (issue 19)
def sharp(mean: float, scale: float = 1.0) -> BetaFit:
    """A Beta so concentrated (a + b = 10⁶) that every draw is `mean` to within about 1e-3."""
    return BetaFit(mean * 1e6, (1 - mean) * 1e6, 0.0, scale)


def test_simulated_labels_by_hand_with_sharp_betas():
    """Low entropy (one-hot cat): p1 = 0.7, K_p = 2, p2 = 0.2 on the closest class (dog), the Clamp remainder 0.1
    on the next (frog). High entropy (airplane/truck 50:50): p1 = 0.4, K_p = 1, p2 = 0.5 on the closest class,
    nothing left to spread, so renormalised by 0.9. The hard label is drawn from the CIFAR-10H probs: both
    airplane and truck occur."""
    low = GroupParams(10, 0.7, 0.0, sharp(0.7), sharp(0.2), [0, 0, 1] + [0] * 7)
    high = GroupParams(10, 0.4, 0.0, sharp(0.4), sharp(0.5), [0, 1] + [0] * 8)
    params = SimulatorParams(0.25, 0.1, low, high)
    probs = np.zeros((400, 10))
    probs[:200, 3] = 1.0
    probs[200:, [0, 9]] = 0.5
    sim = np.eye(10)
    sim[3, [5, 6]] = [0.9, 0.8]
    sim[0, 8] = sim[9, 1] = 0.9
    labels = simulate_labels(params, probs, sim, seed=3)
    expected_low = np.zeros(10)
    expected_low[[3, 5, 6]] = [0.7, 0.2, 0.1]
    np.testing.assert_allclose(labels[:200], np.tile(expected_low, (200, 1)), atol=5e-3)
    hard = np.where(labels[200:, 0] > 0, 0, 9)  # p2 = 0.5 > p1 = 0.4: the argmax is the closest class
    assert 70 < (hard == 0).sum() < 130
    closest = np.where(hard == 0, 8, 1)
    rows = np.arange(200, 400)
    np.testing.assert_allclose(labels[rows, hard], 0.4 / 0.9, atol=5e-3)
    np.testing.assert_allclose(labels[rows, closest], 0.5 / 0.9, atol=5e-3)
    np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-9)


def test_simulated_k_p_follows_the_unnormalised_histogram_and_the_last_class_is_drawn():
    """n_also_possible counts [1, 0, 3]: K_p = 0 for a quarter of the rows (one-hot labels), 2 for the rest.
    A CIFAR-10H row with all its mass on the last class (truck) always draws truck."""
    group = GroupParams(10, 0.7, 0.0, sharp(0.7), sharp(0.2), [1, 0, 3] + [0] * 7)
    params = SimulatorParams(0.25, 0.1, group, group)
    probs = np.zeros((800, 10))
    probs[:, 9] = 1.0
    labels = simulate_labels(params, probs, np.eye(10), seed=0)
    assert set(labels.argmax(1)) == {9}
    one_hot = (labels.max(1) == 1.0).mean()
    assert 0.19 < one_hot < 0.31


def test_scaled_betas_are_clipped_at_100_percent():
    """use_beta_scale with scale 2: p1 = 2·0.7 = 1.4 is clipped to 1.0 before the label is built; with
    p2 = 0.2 on the closest class (K_p = 1), A = 1.2 and nothing is free: (1, 0.2) / 1.2."""
    group = GroupParams(10, 0.7, 0.0, sharp(0.7, scale=2.0), sharp(0.2), [0, 1] + [0] * 8)
    params = SimulatorParams(0.25, 0.1, group, group)
    probs = np.zeros((200, 10))
    probs[:, 3] = 1.0
    sim = np.eye(10)
    sim[3, 5] = 0.9
    labels = simulate_labels(params, probs, sim, seed=0, use_beta_scale=True)
    assert labels[:, 3].mean() == pytest.approx(1 / 1.2, abs=3e-4)
    assert labels[:, 5].mean() == pytest.approx(0.2 / 1.2, abs=3e-4)


def test_beta_fit_maps_exact_ones_to_0_95_and_zeros_to_1e_5():
    """The mapping is applied before the fit: the fit of data with exact 1s and 0s is the fit of the data with
    0.95 and 1e-5 in their place."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.beta(3.0, 3.0, 300), [1.0, 1.0, 0.0]])
    mapped = np.concatenate([x[:300], [0.95, 0.95, 1e-5]])
    assert beta_fit(x) == beta_fit(mapped)
    assert beta_fit(x) != beta_fit(x[:300])


def test_glove_reader_skips_blank_lines_and_other_words(tmp_path):
    """Blank lines and words that are no class name are skipped, wherever they are in the file."""
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(10, 4))
    glove = tmp_path / "glove.txt"
    text = "\n\nthe 1 2 3 4\n" + "".join(f"{c} {' '.join(map(str, v))}\n\n" for c, v in zip(CLASSES, vectors))
    glove.write_text(text)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(semantic_similarity(glove), unit @ unit.T)


def test_fit_simulator_defaults_checks_and_spread_by_hand():
    """Defaults γ = 0.1 and threshold 0.25; γ reaches the labels the fit is made on (dog 100 is damped to 1 − γ);
    top_sd is the sample standard deviation; an image index past the CIFAR-10H rows, or a group with fewer
    than two responses, is refused with its message."""
    import statistics

    df, probs = toy_data()
    params = fit_simulator(df, probs)
    assert (params.threshold, params.gamma) == (0.25, 0.1)
    low_tops = [(90.0 + r % 5) / 100 for r in range(12)]  # cat 90..94 + one free class (dog): A < 1
    assert params.low.top_sd == pytest.approx(statistics.stdev(low_tops), rel=1e-9)
    hundred = df.assign(top_prob=np.where(df["image"] == 0, 100.0, df["top_prob"]))
    assert fit_simulator(hundred, probs, gamma=0.3).low.top_mean == pytest.approx(0.7, abs=1e-12)
    with pytest.raises(ValueError, match="^response image index outside the 2 CIFAR-10H rows$"):
        fit_simulator(df.assign(image=np.where(df["image"] == 1, 2, df["image"])), probs[:2])
    with pytest.raises(ValueError, match=r"^too few responses in the high-entropy group \(1\) to fit the simulator$"):
        fit_simulator(df[(df["image"] == 0) | (df.index == 1)], probs)


def test_simulated_labels_threshold_gamma_and_clipping_by_hand():
    """An image whose entropy equals the threshold is high-entropy (≥). γ of the fitted parameters makes the
    labels: p1 0.8 + p2 0.3 (A = 1.1 > 1) is scaled by 1/A, damped by 1 − γ (γ = 0.3) and γ goes to the one
    free class. A tiny p1 (0.5 %) is not raised (p1 + p2 renormalised); a scaled p2 above 100 % is clipped."""
    probs = np.zeros((100, 10))
    probs[:, [3, 5]] = 0.5
    threshold = float(entropy(probs[:1])[0])
    low = GroupParams(10, 0.0, 0.0, sharp(0.1), sharp(0.1), [0, 1] + [0] * 8)
    high = GroupParams(10, 0.0, 0.0, sharp(0.8), sharp(0.3), [0, 0, 1] + [0] * 7)
    sim = np.eye(10)
    sim[3, [0, 1]] = sim[5, [0, 1]] = [0.9, 0.8]
    labels = simulate_labels(SimulatorParams(threshold, 0.3, low, high), probs, sim, seed=0)
    hard = np.where(labels[:, 3] > labels[:, 5], 3, 5)
    assert 30 < (hard == 3).sum() < 70
    np.testing.assert_allclose(labels[np.arange(100), hard], 0.8 / 1.1 * 0.7, atol=3e-3)
    np.testing.assert_allclose(labels[:, 0], 0.3 / 1.1 * 0.7, atol=3e-3)
    np.testing.assert_allclose(labels[:, 1], 0.3, atol=3e-3)
    tiny = GroupParams(10, 0.0, 0.0, sharp(0.005), sharp(0.5), [0, 1] + [0] * 8)
    one_hot = np.zeros((50, 10))
    one_hot[:, 3] = 1.0
    small = simulate_labels(SimulatorParams(0.25, 0.1, tiny, tiny), one_hot, sim, seed=0)
    np.testing.assert_allclose(small[:, 3], 0.005 / 0.505, atol=1e-3)
    scaled = GroupParams(10, 0.0, 0.0, sharp(0.7), sharp(0.5, scale=3.0), [0, 1] + [0] * 8)
    clipped = simulate_labels(SimulatorParams(0.25, 0.1, scaled, scaled), one_hot, sim, seed=0, use_beta_scale=True)
    np.testing.assert_allclose(clipped[:, 0], 1.0 / 1.7, atol=1e-3)  # p2 1.5 → 1.0, then (0.7, 1.0) / 1.7
    with pytest.raises(ValueError, match=r"^CIFAR-10H probs must be \[n, 10\], got \(50, 9\)$"):
        simulate_labels(SimulatorParams(0.25, 0.1, tiny, tiny), one_hot[:, :9], sim, seed=0)
    with pytest.raises(ValueError, match=r"^similarity must be \[10, 10\], got \(9, 9\)$"):
        simulate_labels(SimulatorParams(0.25, 0.1, tiny, tiny), one_hot, np.eye(9), seed=0)
