"""Chapter-4 labels of mixed images and the appendix-C logistic τ."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.labels import (
    HMIX_VARIANTS,
    class_pair_tau,
    confidence_smoothed_label,
    fit_class_pair_taus,
    hmix_pools,
    mixup_label,
    tau,
)
from softlabels.labels.mixed import parse_stimulus_name

STIMULI = ["mixed_0.25_Cat_336_Truck_2817.png", "mixed_0.5_Dog_2205_Frog_6908.png"]


def judgments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stimulus": [STIMULI[0], STIMULI[0], STIMULI[1], "mixed_0.1_Airplane_4126_Frog_5936.png"],
            "lambda_h": [0.2, 0.4, 0.9, 0.0],
            "confidence": [1.0, 0.0, 0.5, 1.0],
        }
    )


def test_mixup_label_two_hot():
    label = mixup_label(3, 9, 0.25)
    assert label[3] == pytest.approx(0.25) and label[9] == pytest.approx(0.75) and label.sum() == pytest.approx(1)
    np.testing.assert_allclose(mixup_label(4, 4, 0.3), np.eye(10)[4])
    batch = mixup_label(np.array([0, 1]), np.array([2, 3]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(batch, np.eye(10)[[0, 3]])


def test_confidence_smoothing_endpoints():
    np.testing.assert_allclose(confidence_smoothed_label(3, 9, 0.25, 0.0, gamma=0.005), np.full(10, 0.1))
    full = confidence_smoothed_label(3, 9, 0.25, 1.0, gamma=0.005)
    np.testing.assert_allclose(full, 0.995 * mixup_label(3, 9, 0.25) + 0.0005)
    half = confidence_smoothed_label(3, 9, 0.25, 0.5, gamma=0.01)
    np.testing.assert_allclose(half, 0.9 * mixup_label(3, 9, 0.25) + 0.01)


def test_parse_stimulus_name():
    info = parse_stimulus_name(STIMULI[0])
    assert info == {"lambda_f": 0.25, "class1": 3, "image1": 336, "class2": 9, "image2": 2817}
    with pytest.raises(ValueError, match="mixed_"):
        parse_stimulus_name("cat.png")


def test_hmix_pools_variants():
    j = judgments()
    mix = hmix_pools(j, STIMULI, "mixup")
    np.testing.assert_allclose(mix.labels[0, 0], mixup_label(3, 9, 0.25))
    agg = hmix_pools(j, STIMULI, "agg")
    np.testing.assert_allclose(agg.labels[0, 0], mixup_label(3, 9, 0.3), rtol=1e-6)
    sep = hmix_pools(j, STIMULI, "sep")
    assert sep.sizes.tolist() == [2, 1]
    np.testing.assert_allclose(sep.labels[0, 1], mixup_label(3, 9, 0.4), rtol=1e-6)
    agg_conf = hmix_pools(j, STIMULI, "agg_conf", conf_gamma=0.005)
    np.testing.assert_allclose(agg_conf.labels[0, 0], confidence_smoothed_label(3, 9, 0.3, 0.5), rtol=1e-6)
    sep_conf = hmix_pools(j, STIMULI, "sep_conf", conf_gamma=0.005)
    np.testing.assert_allclose(sep_conf.labels[0, 1], np.full(10, 0.1), rtol=1e-6)  # confidence 0
    np.testing.assert_allclose(hmix_pools(None, STIMULI, "uniform").labels, 0.1)
    rand = hmix_pools(None, STIMULI, "random", seed=4)
    np.testing.assert_array_equal(rand.labels, hmix_pools(None, STIMULI, "random", seed=4).labels)


def test_hmix_pools_accepts_the_stimuli_arrays():
    arrays = {"names": np.array(STIMULI), "lambda_f": np.array([0.25, 0.5]), "class1": np.array([3, 5]),
              "class2": np.array([9, 6])}
    np.testing.assert_array_equal(hmix_pools(judgments(), arrays, "sep").labels,
                                  hmix_pools(judgments(), STIMULI, "sep").labels)


@pytest.mark.parametrize("variant", HMIX_VARIANTS)
def test_every_variant_gives_probability_pools(variant):
    pools = hmix_pools(judgments(), STIMULI, variant, seed=0)
    assert len(pools) == 2
    for n in range(2):
        np.testing.assert_allclose(pools.labels[n, : pools.sizes[n]].sum(-1), 1, rtol=1e-6)


def test_hmix_stimulus_without_judgments_is_an_error():
    with pytest.raises(ValueError, match="mixed_0.9_Cat_1_Dog_2.png"):
        hmix_pools(judgments(), ["mixed_0.9_Cat_1_Dog_2.png"], "agg")
    with pytest.raises(ValueError, match="variant"):
        hmix_pools(judgments(), STIMULI, "median")


# ----------------------------------------------------------------------------------------------------------- τ


def test_tau_endpoints_monotone_and_linear_limit():
    lam = np.linspace(0, 1, 101)
    for k, x0 in ((10, 0.5), (3, 0.2), (0.5, 0.9)):
        values = tau(lam, k, x0)
        assert values[0] == pytest.approx(0, abs=1e-12) and values[-1] == pytest.approx(1)
        assert np.all(np.diff(values) >= 0)
    np.testing.assert_allclose(tau(lam, 1e-9, 0.5), lam, atol=1e-6)
    assert tau(0.5, 10, 0.5) == pytest.approx(0.5)


def synthetic_judgments(k: float, x0: float, n_each: int = 30, seed: int = 0) -> pd.DataFrame:
    """cat/dog stimuli in both orientations whose λ_h follows τ_cat,dog with (k, x0) plus a little noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for lam_f in (0.1, 0.25, 0.5, 0.75, 0.9):
        for _ in range(n_each):
            noise = rng.normal(0, 0.01)
            rows.append(("cat", "dog", lam_f, float(tau(lam_f, k, x0)) + noise))  # λ relative to cat
            rows.append(("dog", "cat", lam_f, 1 - float(tau(1 - lam_f, k, x0)) + noise))  # relative to dog
    return pd.DataFrame(rows, columns=["class1", "class2", "lambda_f", "lambda_h"])


def test_fit_recovers_parameters_from_both_orientations():
    taus = fit_class_pair_taus(synthetic_judgments(8.0, 0.35))
    assert len(taus) == 1
    row = taus.iloc[0]
    assert (row["class_i"], row["class_j"], row["name_i"], row["name_j"]) == (3, 5, "cat", "dog")
    assert row["k"] == pytest.approx(8.0, rel=0.05)
    assert row["x0"] == pytest.approx(0.35, abs=0.01)
    assert row["n"] == 300
    assert row["rmse"] < row["rmse_linear"]


def test_fit_accepts_class_indices():
    j = synthetic_judgments(8.0, 0.35)
    j["class1"] = j["class1"].map({"cat": 3, "dog": 5})
    j["class2"] = j["class2"].map({"cat": 3, "dog": 5})
    assert fit_class_pair_taus(j).iloc[0]["k"] == pytest.approx(8.0, rel=0.05)


def test_symmetric_fit_centres_the_midpoint():
    taus = fit_class_pair_taus(synthetic_judgments(8.0, 0.35), symmetric=True)
    assert taus.iloc[0]["x0"] == pytest.approx(0.5, abs=0.01)
    assert taus.iloc[0]["n"] == 300


@settings(max_examples=100, deadline=None)
@given(lam=st.floats(0, 1), k=st.floats(0.01, 50), x0=st.floats(0, 1), pair=st.permutations(range(10)))
def test_class_pair_tau_orders_agree(lam, k, x0, pair):
    i, j = pair[0], pair[1]
    taus = pd.DataFrame({"class_i": [min(i, j)], "class_j": [max(i, j)], "k": [k], "x0": [x0]})
    forward = class_pair_tau(lam, i, j, taus)
    backward = class_pair_tau(1 - lam, j, i, taus)
    assert forward == pytest.approx(1 - backward, abs=1e-9)
    assert 0 <= forward <= 1 + 1e-12


def test_class_pair_tau_same_class_and_missing_pair():
    taus = pd.DataFrame({"class_i": [3], "class_j": [5], "k": [8.0], "x0": [0.35]})
    np.testing.assert_allclose(class_pair_tau(np.array([0.3, 0.3]), np.array([2, 3]), np.array([2, 5]), taus),
                               [0.3, tau(0.3, 8.0, 0.35)])
    with pytest.raises(ValueError, match="airplane, bird"):
        class_pair_tau(0.3, 2, 0, taus)


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_tau_hand_value_and_ordered_pair():
    # τ(0.25; k=2, λ0=0.4) = [σ(2·(0.25−0.4)) − σ(−0.8)] / [σ(1.2) − σ(−0.8)]
    want = (_logistic(-0.3) - _logistic(-0.8)) / (_logistic(1.2) - _logistic(-0.8))
    assert float(tau(0.25, 2.0, 0.4)) == pytest.approx(want, rel=1e-12)
    taus = pd.DataFrame({"class_i": [3], "class_j": [5], "k": [2.0], "x0": [0.4]})
    assert float(class_pair_tau(0.25, 3, 5, taus)) == pytest.approx(want, rel=1e-12)
    back = 1 - (_logistic(2 * (0.75 - 0.4)) - _logistic(-0.8)) / (_logistic(1.2) - _logistic(-0.8))
    assert float(class_pair_tau(0.25, 5, 3, taus)) == pytest.approx(back, rel=1e-12)  # 1 − τ_{3,5}(1 − λ)
    assert float(class_pair_tau(0.25, 5, 5, taus)) == 0.25
    assert float(tau(0.3, 0.0, 0.5)) == 0.3  # a flat logistic (k = 0) is the identity


def test_fit_table_by_hand_on_exact_points():
    """Points exactly on τ(·; 6, 0.3) for cat/dog (one shown as dog/cat), plus judgments that are dropped (same
    class, non-finite): the fit recovers the curve, n counts the judgments used, rmse_linear is |λ − τ(λ)|'s."""
    lams = [0.1, 0.3, 0.5, 0.7, 0.9]
    rows = [("cat", "dog", lam, float(tau(lam, 6.0, 0.3))) for lam in lams]
    rows.append(("dog", "cat", 0.2, 1 - float(tau(0.8, 6.0, 0.3))))  # (0.8, τ(0.8)) in cat's orientation
    rows += [("cat", "cat", 0.5, 0.9), ("cat", "dog", float("nan"), 0.5), ("cat", "dog", 0.5, float("inf"))]
    table = fit_class_pair_taus(pd.DataFrame(rows, columns=["class1", "class2", "lambda_f", "lambda_h"]))
    assert list(table.columns) == ["class_i", "class_j", "name_i", "name_j", "k", "x0", "n", "rmse", "rmse_linear"]
    row = table.iloc[0]
    assert (row["class_i"], row["class_j"], row["n"]) == (3, 5, 6)
    assert row["k"] == pytest.approx(6.0, rel=1e-4) and row["x0"] == pytest.approx(0.3, abs=1e-5)
    assert row["rmse"] == pytest.approx(0.0, abs=1e-6)
    xs = lams + [0.8]
    linear = math.sqrt(sum((x - float(tau(x, 6.0, 0.3))) ** 2 for x in xs) / len(xs))
    assert row["rmse_linear"] == pytest.approx(linear, rel=1e-9)


def test_tau_inputs_are_checked():
    with pytest.raises(ValueError, match=r"^judgments table lacks column\(s\) lambda_h$"):
        fit_class_pair_taus(pd.DataFrame({"class1": ["cat"], "class2": ["dog"], "lambda_f": [0.5]}))
    one_factor = pd.DataFrame({"class1": ["cat", "dog"], "class2": ["dog", "cat"], "lambda_f": [0.5, 0.5],
                               "lambda_h": [0.4, 0.6]})  # fmt: skip
    with pytest.raises(ValueError, match=r"class pair \(cat, dog\) has judgments at fewer than 2 mixing factors"):
        fit_class_pair_taus(one_factor)
    bad_index = pd.DataFrame({"class1": [3, 10], "class2": [5, 3], "lambda_f": [0.1, 0.5], "lambda_h": [0.1, 0.5]})
    with pytest.raises(ValueError, match="^class index out of range in judgments table$"):
        fit_class_pair_taus(bad_index)
    with pytest.raises(ValueError, match="class index out of range"):
        fit_class_pair_taus(bad_index.assign(class1=[3, -1]))
    reversed_rows = pd.DataFrame({"class_i": [5], "class_j": [3], "k": [2.0], "x0": [0.5]})
    with pytest.raises(ValueError, match="^τ table rows must have class_i < class_j$"):
        class_pair_tau(0.5, 3, 5, reversed_rows)
    with pytest.raises(ValueError, match="^τ table rows must have class_i < class_j$"):
        class_pair_tau(0.5, 3, 5, reversed_rows.assign(class_i=[3], class_j=[3]))


# ---------------------------------------------------------------------------------- edges, by hand (issue 19)
def test_class_indices_read_as_floats_index_the_same_classes():
    """A class column read from a CSV with a gap is float: 3.0 and 9.0 still name cat and truck."""
    np.testing.assert_array_equal(mixup_label(np.array([3.0]), np.array([9.0]), np.array([0.25])),
                                  mixup_label(np.array([3]), np.array([9]), np.array([0.25])))
    np.testing.assert_allclose(mixup_label(3, 9, 0.25)[[3, 9]], [0.25, 0.75])


def test_confidence_and_gamma_ranges_are_checked_at_their_bounds():
    with pytest.raises(ValueError, match=r"confidence must lie in \[0, 1\]"):
        confidence_smoothed_label(3, 9, 0.5, 1.5)
    with pytest.raises(ValueError, match=r"confidence must lie in \[0, 1\]"):
        confidence_smoothed_label(3, 9, 0.5, -0.1)
    for gamma in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"confidence gamma must lie in \(0, 1\], got"):
            confidence_smoothed_label(3, 9, 0.5, 1.0, gamma=gamma)
    # γ = 1 is allowed: s = 1 at any confidence, the uniform label
    np.testing.assert_allclose(confidence_smoothed_label(3, 9, 0.5, 0.7, gamma=1.0), np.full(10, 0.1))


def test_hmix_pools_take_the_arrays_of_the_stimuli_file_over_the_names():
    """With λ_f and classes in the stimuli arrays, the names need not parse (their fields are not read)."""
    arrays = {"names": np.array(["s0", "s1"]), "lambda_f": np.array([0.25, 0.5]), "class1": np.array([3, 5]),
              "class2": np.array([9, 6])}
    mix = hmix_pools(None, arrays, "mixup").labels[:, 0]
    np.testing.assert_allclose(mix[0, [3, 9]], [0.25, 0.75])
    np.testing.assert_allclose(mix[1, [5, 6]], [0.5, 0.5])
    with pytest.raises(ValueError, match="stimulus name 's0'"):
        hmix_pools(None, {"names": arrays["names"], "lambda_f": arrays["lambda_f"]}, "mixup")


def test_hmix_pools_confidence_gamma_default_seed_and_input_errors():
    j = judgments()
    # STIMULI[0]: λ_h 0.2 and 0.4 at confidence 1 and 0; γ = 0.1: s = 0.1^ω
    agg = hmix_pools(j, STIMULI, "agg_conf", conf_gamma=0.1).labels[0, 0]
    s = 0.1**0.5
    np.testing.assert_allclose(agg[[3, 9, 0]], [(1 - s) * 0.3 + s / 10, (1 - s) * 0.7 + s / 10, s / 10], rtol=1e-6)
    sep = hmix_pools(j, STIMULI, "sep_conf", conf_gamma=0.1).labels[0]
    np.testing.assert_allclose(sep[0, [3, 9]], [0.9 * 0.2 + 0.01, 0.9 * 0.8 + 0.01], rtol=1e-6)
    np.testing.assert_allclose(sep[1], np.full(10, 0.1), rtol=1e-6)
    from softlabels.labels.baselines import random_labels

    np.testing.assert_allclose(hmix_pools(None, STIMULI, "random").labels[:, 0], random_labels(2, 0), rtol=1e-6)
    with pytest.raises(ValueError, match="H-Mix variant 'agg' needs the judgments table"):
        hmix_pools(None, STIMULI, "agg")
    with pytest.raises(ValueError, match=r"judgments table lacks column\(s\) confidence"):
        hmix_pools(j.drop(columns="confidence"), STIMULI, "sep")
    with pytest.raises(ValueError, match="expected one of uniform, random, mixup, agg, sep, agg_conf, sep_conf"):
        hmix_pools(j, STIMULI, "median")


def test_tau_fit_edges_by_hand():
    """Class index 0 (airplane) is a valid index; an unknown class name names the judgments table; the
    symmetric fit counts whole judgments; the fit stays inside its bounds (k ≤ 200, x0 in [0, 1]) where the
    unbounded least squares leaves them (a step at λ = 0.5: k ≈ 473; λ_h = 0 up to 0.8: k < 0, x0 ≈ 1.6)."""
    lams = [0.1, 0.3, 0.7, 0.9]
    by_index = pd.DataFrame({"class1": [0] * 4, "class2": [8] * 4, "lambda_f": lams, "lambda_h": lams})
    row = fit_class_pair_taus(by_index).iloc[0]
    assert (row["name_i"], row["name_j"], row["n"]) == ("airplane", "ship", 4)
    with pytest.raises(ValueError, match="judgments table"):
        fit_class_pair_taus(by_index.astype({"class1": str}).assign(class1="kitten"))
    symmetric = fit_class_pair_taus(by_index, symmetric=True)
    assert symmetric["n"].tolist() == [4] and symmetric["n"].dtype.kind == "i"
    step = pd.DataFrame({"class1": ["cat"] * 6, "class2": ["dog"] * 6, "lambda_f": [0.1, 0.2, 0.45, 0.55, 0.8, 0.9],
                         "lambda_h": [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]})  # fmt: skip
    steep = fit_class_pair_taus(step).iloc[0]
    assert 1.0 < steep["k"] <= 200.0 and 0.45 < steep["x0"] < 0.55
    flat = step.iloc[:4].assign(lambda_f=[0.2, 0.4, 0.6, 0.8], lambda_h=0.0)
    late = fit_class_pair_taus(flat).iloc[0]
    assert 0.0 < late["k"] <= 200.0 and 0.5 < late["x0"] <= 1.0
    with pytest.raises(ValueError, match=r"judgments table lacks column\(s\) lambda_f, lambda_h"):
        fit_class_pair_taus(pd.DataFrame({"class1": ["cat"], "class2": ["dog"]}))


def test_hmix_pools_read_the_stimuli_npz_file(tmp_path):
    np.savez(tmp_path / "stimuli.npz", names=np.array(["s0", "s1"]), lambda_f=np.array([0.25, 0.5]),
             class1=np.array([3, 5]), class2=np.array([9, 6]))
    with np.load(tmp_path / "stimuli.npz") as arrays:
        mix = hmix_pools(None, arrays, "mixup").labels[:, 0]
    np.testing.assert_allclose(mix[0, [3, 9]], [0.25, 0.75])
    np.testing.assert_allclose(mix[1, [5, 6]], [0.5, 0.5])


def test_mixed_label_messages_are_exact():
    for lam in (1.5, -0.1):
        with pytest.raises(ValueError, match=r"^mixing factor must lie in \[0, 1\]$"):
            mixup_label(3, 9, lam)
    with pytest.raises(ValueError, match=r"^confidence must lie in \[0, 1\]$"):
        confidence_smoothed_label(3, 9, 0.5, 1.5)
    with pytest.raises(ValueError, match=r"^judgments table lacks column\(s\) lambda_h, confidence$"):
        hmix_pools(judgments().drop(columns=["lambda_h", "confidence"]), STIMULI, "sep")
    for name in ("mixed_0.5_Kitten_1_Dog_2.png", "mixed_0.5_Dog_1_Kitten_2.png"):
        with pytest.raises(ValueError, match=rf"^stimulus {name}: unknown class name 'Kitten'; expected one of"):
            parse_stimulus_name(name)


def test_tau_messages_name_the_table_and_the_pair():
    with pytest.raises(ValueError, match="^judgments table: unknown class name 'kitten'"):
        fit_class_pair_taus(pd.DataFrame({"class1": ["kitten", "cat"], "class2": ["dog", "dog"],
                                          "lambda_f": [0.2, 0.8], "lambda_h": [0.2, 0.8]}))
    taus = pd.DataFrame({"class_i": [3], "class_j": [5], "k": [2.0], "x0": [0.5]})
    # the first pair is a same class (no τ needed), the second has no fit: the error names the second
    with pytest.raises(ValueError, match=r"^no fitted τ for class pair \(automobile, bird\)$"):
        class_pair_tau(np.array([0.5, 0.5]), np.array([3, 1]), np.array([3, 2]), taus)
