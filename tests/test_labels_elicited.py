"""Soft labels from one elicited response (docs/protocol.md#labels-redistribution): worked examples, edge
cases, properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels import CLASSES
from softlabels.labels import PATHS, VARIETIES, response_label, response_labels

C = {name: k for k, name in enumerate(CLASSES)}
WORKED_IMPOSSIBLE = [C[n] for n in ("frog", "automobile", "truck", "bird", "airplane", "ship")]


def vec(**mass) -> np.ndarray:
    out = np.zeros(len(CLASSES))
    for name, value in mass.items():
        out[C[name]] = value
    return out


def worked(variety: str) -> np.ndarray:
    return response_label(C["deer"], 80, C["horse"], 10, WORKED_IMPOSSIBLE, variety=variety, gamma=0.1)


# ----------------------------------------------------------- worked example (docs/protocol.md#worked-example)


def test_worked_example_t2_clamp():
    np.testing.assert_allclose(worked("t2_clamp"), vec(cat=0.05, deer=0.80, dog=0.05, horse=0.10), atol=1e-12)


def test_worked_example_t2_unif():
    expected = np.full(10, 0.0125)
    expected[C["deer"]], expected[C["horse"]] = 0.80, 0.10
    np.testing.assert_allclose(worked("t2_unif"), expected, atol=1e-12)


def test_worked_example_t1_clamp():
    np.testing.assert_allclose(worked("t1_clamp"), vec(deer=0.8, cat=0.2 / 3, dog=0.2 / 3, horse=0.2 / 3), atol=1e-12)
    assert worked("t1_clamp")[C["cat"]] == pytest.approx(0.0667, abs=1e-4)


def test_worked_example_t1_unif():
    label = worked("t1_unif")
    assert label[C["deer"]] == pytest.approx(0.80)
    others = np.delete(label, C["deer"])
    np.testing.assert_allclose(others, 0.2 / 9)
    assert others[0] == pytest.approx(0.0222, abs=1e-4)


@pytest.mark.parametrize("variety", ["t2_clamp", "t2_unif", "t2_semantic"])
def test_all_impossible_keeps_the_two_answers(variety):
    label = response_label(C["deer"], 95, C["horse"], 5, range(10), variety=variety, similarity=np.eye(10))
    np.testing.assert_allclose(label, vec(deer=0.95, horse=0.05), atol=1e-12)


def test_second_equal_to_first_with_zero_prob_overwrites_top():
    impossible = [k for k in range(10) if k != C["automobile"]]
    label = response_label(C["automobile"], 100, C["automobile"], 0, impossible, variety="t2_clamp")
    np.testing.assert_allclose(label, vec(automobile=1.0))


def test_second_equal_to_first_overwrites_not_adds():
    # s[deer] = 30 (overwritten), A = 0.3, leftover 0.7 over the 9 other possible classes.
    label = response_label(C["deer"], 60, C["deer"], 30, [], variety="t2_clamp")
    assert label[C["deer"]] == pytest.approx(0.3)
    np.testing.assert_allclose(np.delete(label, C["deer"]), 0.7 / 9)


def test_sum_over_100_is_normalised_then_clamp_reinjects_gamma():
    label = response_label(C["deer"], 80, C["horse"], 30, [], variety="t2_clamp", gamma=0.1)
    assert label[C["deer"]] == pytest.approx(0.9 * 80 / 110)
    assert label[C["horse"]] == pytest.approx(0.9 * 30 / 110)
    np.testing.assert_allclose(np.delete(label, [C["deer"], C["horse"]]), 0.1 / 8)


def test_sum_over_100_unif_only_normalises():
    label = response_label(C["deer"], 80, C["horse"], 30, [], variety="t2_unif", gamma=0.1)
    np.testing.assert_allclose(label, vec(deer=80 / 110, horse=30 / 110))


def test_missing_second_prob_ignores_the_second_class():
    with_class = response_label(C["deer"], 80, C["horse"], None, WORKED_IMPOSSIBLE, variety="t2_clamp")
    np.testing.assert_allclose(with_class, worked("t1_clamp"))


def test_top_class_marked_impossible_still_gets_its_mass():
    # c1 impossible: n_free counts c1's non-zero entry, so the 9 possible classes get 0.5/8 each before the
    # final renormalisation (the documented quirk, kept).
    label = response_label(C["cat"], 50, None, None, [C["cat"]], variety="t1_clamp")
    raw = np.full(10, 0.5 / 8)
    raw[C["cat"]] = 0.5
    np.testing.assert_allclose(label, raw / raw.sum())


def test_negative_n_free_does_not_give_negative_mass():
    # c1 and c2 impossible and exactly one other class possible: the original code would add r / (1 - 2) < 0.
    impossible = [k for k in range(10) if k != C["dog"]]
    label = response_label(C["cat"], 40, C["deer"], 30, impossible, variety="t2_clamp")
    np.testing.assert_allclose(label, vec(cat=4 / 7, deer=3 / 7))


# ------------------------------------------------------------------------------------------ released path


def test_released_code_path_t1_is_one_hot():
    for variety in ("t1_unif", "t1_clamp", "t1_semantic"):
        label = response_label(C["deer"], 80, C["horse"], 10, WORKED_IMPOSSIBLE, variety, path="released_code")
        np.testing.assert_allclose(label, vec(deer=1.0))


def test_released_code_path_t2_is_renormalised_top2():
    label = response_label(C["deer"], 80, C["horse"], 10, WORKED_IMPOSSIBLE, "t2_clamp", path="released_code")
    np.testing.assert_allclose(label, vec(deer=8 / 9, horse=1 / 9))
    assert np.array_equal(label, response_label(C["deer"], 80, C["horse"], 10, [], "t2_unif", path="released_code"))


def test_released_code_zero_over_zero_falls_back_to_one_hot():
    # Image 1633 in the released data: Automobile 100 / Automobile 0 gives 0/0 (NaN) in the released dataloader.
    label = response_label(C["automobile"], 100, C["automobile"], 0, [], "t2_clamp", path="released_code")
    np.testing.assert_array_equal(label, vec(automobile=1.0))


# -------------------------------------------------------------------------------------------------- semantic


def _similarity_to_deer() -> np.ndarray:
    sim = np.eye(10)
    sim[C["deer"], C["cat"]] = 0.3
    sim[C["deer"], C["dog"]] = 0.1
    sim[C["deer"], C["horse"]] = -0.5  # clipped to 0
    sim[C["deer"], C["truck"]] = 0.2  # marked impossible: used by the default (Unif-based) semantic spread
    return sim


def test_semantic_is_unif_weighted_by_similarity_and_ignores_impossible():
    """Tables B.2/B.3: Semantic replaces Unif's uniform spread; the impossible answers are not used."""
    label = response_label(C["deer"], 80, None, None, WORKED_IMPOSSIBLE, "t1_semantic", similarity=_similarity_to_deer())
    np.testing.assert_allclose(label, vec(deer=0.8, cat=0.1, dog=0.2 / 6, truck=0.2 / 3), atol=1e-12)


def test_semantic_at_full_stated_mass_equals_unif():
    sim = _similarity_to_deer()
    for tops, p1 in (("t1", 100), ("t2", 70)):
        label = response_label(C["deer"], p1, C["horse"], 30, WORKED_IMPOSSIBLE, f"{tops}_semantic", similarity=sim)
        unif = response_label(C["deer"], p1, C["horse"], 30, WORKED_IMPOSSIBLE, f"{tops}_unif")
        np.testing.assert_allclose(label, unif, atol=1e-12)


def test_semantic_on_clamp_spreads_in_proportion_to_clipped_similarity():
    label = response_label(C["deer"], 80, None, None, WORKED_IMPOSSIBLE, "t1_semantic", similarity=_similarity_to_deer(),
                           semantic_base="clamp")
    np.testing.assert_allclose(label, vec(deer=0.8, cat=0.15, dog=0.05))


def test_semantic_with_all_zero_similarity_is_uniform():
    sim = -np.ones((10, 10))
    label = response_label(C["deer"], 80, None, None, WORKED_IMPOSSIBLE, "t1_semantic", similarity=sim)
    np.testing.assert_allclose(label, worked("t1_unif"))
    label = response_label(C["deer"], 80, None, None, WORKED_IMPOSSIBLE, "t1_semantic", similarity=sim,
                           semantic_base="clamp")
    np.testing.assert_allclose(label, worked("t1_clamp"))


def test_unknown_semantic_base_is_refused():
    with pytest.raises(ValueError, match="semantic base"):
        response_label(C["deer"], 80, None, None, [], "t1_semantic", similarity=np.eye(10), semantic_base="clmp")


def test_semantic_needs_similarity():
    with pytest.raises(ValueError, match="similarity"):
        response_label(C["deer"], 80, None, None, [], "t2_semantic")


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variety": "t3_clamp"}, "variety"),
        ({"path": "notebook"}, "path"),
        ({"p1": 101}, "top probability"),
        ({"p1": float("nan")}, "top probability"),
        ({"p2": -1}, "second probability"),
        ({"top": 10}, "top class"),
        ({"impossible": [12]}, "impossible"),
        ({"gamma": 1.5}, "gamma"),
    ],
)
def test_bad_input_is_a_value_error(kwargs, match):
    args = {"top": 4, "p1": 80, "second": 7, "p2": 10, "impossible": [], **kwargs}
    with pytest.raises(ValueError, match=match):
        response_label(**args)


# --------------------------------------------------------------------------------------------- DataFrames


def responses_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": [5, 5, 9],
            "top_class": ["deer", "automobile", "cat"],
            "top_prob": [80.0, 100.0, 60.0],
            "second_class": ["horse", "automobile", ""],
            "second_prob": [10.0, 0.0, np.nan],
            "impossible": ["frog|automobile|truck|bird|airplane|ship", "", np.nan],
        }
    )


def test_response_labels_from_a_table_match_single_responses():
    labels = response_labels(responses_frame(), "t2_clamp", gamma=0.1)
    np.testing.assert_allclose(labels[0], worked("t2_clamp"))
    np.testing.assert_allclose(labels[1], response_label(1, 100, 1, 0, [], "t2_clamp"))
    np.testing.assert_allclose(labels[2], response_label(3, 60, None, None, [], "t2_clamp"))


def test_response_labels_name_the_row_of_an_unknown_class():
    df = responses_frame()
    df.loc[2, "impossible"] = "cat|unicorn"
    with pytest.raises(ValueError, match="row 2.*unicorn"):
        response_labels(df, "t2_clamp")


# ------------------------------------------------------------------------------------------------ properties

classes = st.integers(min_value=0, max_value=9)
probs = st.one_of(st.integers(0, 100).map(float), st.floats(0, 100, allow_nan=False))
responses = st.fixed_dictionaries(
    {
        "top": classes,
        "p1": st.one_of(st.integers(1, 100).map(float), st.floats(1e-6, 100)),
        "second": st.one_of(st.none(), classes),
        "p2": st.one_of(st.none(), probs),
        "impossible": st.frozensets(classes),
    }
)
similarities = st.lists(st.floats(-1, 1), min_size=100, max_size=100).map(lambda v: np.array(v).reshape(10, 10))


@settings(max_examples=200, deadline=None)
@given(response=responses, variety=st.sampled_from(VARIETIES), path=st.sampled_from(PATHS),
       gamma=st.floats(0, 1), sim=similarities)
def test_every_variety_gives_a_probability_vector(response, variety, path, gamma, sim):
    label = response_label(**response, variety=variety, gamma=gamma, similarity=sim, path=path)
    assert label.shape == (10,)
    assert np.all(np.isfinite(label))
    assert np.all(label >= 0)
    assert label.sum() == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(response=responses, gamma=st.floats(0, 1), tops=st.sampled_from(["t1", "t2"]))
def test_semantic_with_constant_similarity_equals_its_base(response, gamma, tops):
    semantic = response_label(**response, variety=f"{tops}_semantic", gamma=gamma, similarity=np.ones((10, 10)))
    unif = response_label(**response, variety=f"{tops}_unif", gamma=gamma)
    np.testing.assert_allclose(semantic, unif, atol=1e-12)
    semantic = response_label(**response, variety=f"{tops}_semantic", gamma=gamma, similarity=np.ones((10, 10)),
                              semantic_base="clamp")
    clamp = response_label(**response, variety=f"{tops}_clamp", gamma=gamma)
    np.testing.assert_allclose(semantic, clamp, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(response=responses, gamma=st.floats(0, 1))
def test_clamp_puts_mass_only_on_possible_or_answered_classes(response, gamma):
    label = response_label(**response, variety="t2_clamp", gamma=gamma)
    answered = {response["top"]}
    if response["second"] is not None and response["p2"] is not None:
        answered.add(response["second"])
    allowed = (set(range(10)) - set(response["impossible"])) | answered
    assert set(np.flatnonzero(label)) <= allowed


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(responses, min_size=1, max_size=20), variety=st.sampled_from(VARIETIES))
def test_table_labels_equal_single_labels(batch, variety):
    sim = np.eye(10) + 0.1
    df = pd.DataFrame(
        {
            "top_class": [CLASSES[r["top"]] for r in batch],
            "top_prob": [r["p1"] for r in batch],
            "second_class": ["" if r["second"] is None else CLASSES[r["second"]] for r in batch],
            "second_prob": [np.nan if r["p2"] is None else r["p2"] for r in batch],
            "impossible": ["|".join(CLASSES[k] for k in sorted(r["impossible"])) for r in batch],
        }
    )
    table = response_labels(df, variety, gamma=0.1, similarity=sim)
    single = np.stack([response_label(**r, variety=variety, gamma=0.1, similarity=sim) for r in batch])
    np.testing.assert_allclose(table, single, atol=1e-12)


# ------------------------------------------------------------------- H-Mix release path (hmix_individ_soft_labels)
# Expected values taken from the released hmix_individ_soft_labels.json (cambridge-mlg/hill-mixup, h_mix/).
ALL_BUT = lambda *keep: [k for k in range(10) if CLASSES[k] not in keep]  # noqa: E731


def test_hmix_release_top_at_100_adds_gamma_on_top():
    # mixed_0.25_Ship_8717_Truck_8922.png: truck 100, no second, free airplane and automobile
    label = response_label(C["truck"], 100, None, None, ALL_BUT("truck", "airplane", "automobile"), "t2_clamp",
                           gamma=0.1, path="hmix_release")
    np.testing.assert_allclose(label, vec(truck=1 / 1.1, airplane=0.05 / 1.1, automobile=0.05 / 1.1), atol=1e-12)
    np.testing.assert_allclose(label, vec(airplane=0.045454545454545456, automobile=0.045454545454545456,
                                          truck=0.9090909090909091), atol=1e-12)
    # the documented path damps instead: 0.9, 0.05, 0.05
    documented = response_label(C["truck"], 100, None, None, ALL_BUT("truck", "airplane", "automobile"), "t2_clamp")
    np.testing.assert_allclose(documented, vec(truck=0.9, airplane=0.05, automobile=0.05), atol=1e-12)


def test_hmix_release_two_answers_at_100():
    # mixed_0.25_Ship_8717_Truck_8922.png: truck 75, automobile 25, free ship
    label = response_label(C["truck"], 75, C["automobile"], 25, ALL_BUT("truck", "automobile", "ship"), "t2_clamp",
                           gamma=0.1, path="hmix_release")
    np.testing.assert_allclose(label, vec(truck=0.75 / 1.1, automobile=0.25 / 1.1, ship=0.1 / 1.1), atol=1e-12)
    np.testing.assert_allclose(label, vec(automobile=0.22727272727272727, ship=0.09090909090909091,
                                          truck=0.6818181818181818), atol=1e-12)


def test_hmix_release_over_100_takes_gamma_from_the_answers():
    # mixed_0.25_Horse_4183_Truck_394.png: truck 98, automobile 10, free airplane and ship
    label = response_label(C["truck"], 98, C["automobile"], 10, ALL_BUT("truck", "automobile", "airplane", "ship"),
                           "t2_clamp", gamma=0.1, path="hmix_release")
    np.testing.assert_allclose(label, vec(airplane=0.046296296296, automobile=0.046296296296, ship=0.046296296296,
                                          truck=0.861111111111), atol=1e-9)


def test_hmix_release_below_100_equals_documented():
    # mixed_0.5_Ship_7502_Truck_9060.png: truck 70, automobile 20, free airplane, horse, ship
    args = (C["truck"], 70, C["automobile"], 20, ALL_BUT("truck", "automobile", "airplane", "horse", "ship"), "t2_clamp")
    label = response_label(*args, gamma=0.1, path="hmix_release")
    np.testing.assert_allclose(label, response_label(*args, gamma=0.1), atol=1e-15)
    np.testing.assert_allclose(label, vec(airplane=0.1 / 3, automobile=0.2, horse=0.1 / 3, ship=0.1 / 3, truck=0.7),
                               atol=1e-12)


def test_hmix_export_uses_the_release_path_by_default():
    from softlabels.labels.exports import hmix_soft_export

    df = pd.DataFrame({"stimulus": ["s.png"], "top_class": ["truck"], "top_prob": [100.0], "second_class": [""],
                       "second_prob": [np.nan], "impossible": ["|".join(CLASSES[k] for k in
                                                                        ALL_BUT("truck", "airplane", "automobile"))]})
    out = hmix_soft_export(df)
    assert out["s.png"][0][C["truck"]] == pytest.approx(1 / 1.1)


def test_exports_pass_every_label_option_through_by_hand():
    """One truck 75 + automobile 25 response with one free class (ship), the rest impossible (A = 1).
    Documented T2-Clamp (the CIFAR-10S export's default): (0.75, 0.25)·(1 − γ), γ on ship. hmix_release (the H-Mix
    export's default): (0.75, 0.25, γ) / (1 + γ). T1 keeps only the top class: 0.75, and the 0.25 left goes to the two possible zero classes, automobile and
    ship."""
    from softlabels.labels.exports import cifar10s_export, hmix_soft_export

    row = {"top_class": "truck", "top_prob": 75.0, "second_class": "automobile", "second_prob": 25.0,
           "impossible": "airplane|bird|cat|deer|dog|frog|horse"}
    table = pd.DataFrame([{"image": 7, **row}])
    truck, auto, ship = 9, 1, 8
    pick = lambda data, key: np.array(data[key][0])[[truck, auto, ship]]
    np.testing.assert_allclose(pick(cifar10s_export(table, "t2_clamp", 0.2), "7"), [0.6, 0.2, 0.2], atol=1e-12)
    np.testing.assert_allclose(pick(cifar10s_export(table, "t1_clamp", 0.2), "7"), [0.75, 0.125, 0.125], atol=1e-12)
    np.testing.assert_allclose(pick(cifar10s_export(table, "t2_clamp", 0.2, path="hmix_release"), "7"),
                               np.array([0.75, 0.25, 0.2]) / 1.2, atol=1e-12)
    stimuli = table.drop(columns="image").assign(stimulus="mixed_0.5_Cat_1_Dog_2.png")
    np.testing.assert_allclose(pick(hmix_soft_export(stimuli), "mixed_0.5_Cat_1_Dog_2.png"),
                               np.array([0.75, 0.25, 0.1]) / 1.1, atol=1e-12)
    np.testing.assert_allclose(pick(hmix_soft_export(stimuli, "t2_clamp", 0.3, path="documented"),
                                    "mixed_0.5_Cat_1_Dog_2.png"), [0.525, 0.175, 0.3], atol=1e-12)
    # semantic: cat 50 (A = 0.5) spreads 0.5 by similarity to cat; Unif base over every zero class, Clamp base
    # over the possible ones only (frog impossible)
    cat = pd.DataFrame([{"image": 3, "top_class": "cat", "top_prob": 50.0, "second_class": "", "second_prob": np.nan,
                         "impossible": "frog"}])
    similarity = np.eye(10)
    similarity[3, [0, 6]] = similarity[[0, 6], 3] = 1.0
    unif = np.array(cifar10s_export(cat, "t1_semantic", 0.1, similarity=similarity)["3"][0])
    np.testing.assert_allclose(unif[[3, 0, 6]], [0.5, 0.25, 0.25], atol=1e-12)
    clamp = np.array(cifar10s_export(cat, "t1_semantic", 0.1, similarity=similarity, semantic_base="clamp")["3"][0])
    np.testing.assert_allclose(clamp[[3, 0, 6]], [0.5, 0.5, 0.0], atol=1e-12)
    hmix_unif = hmix_soft_export(cat.drop(columns="image").assign(stimulus="s"), "t1_semantic", 0.1,
                                 similarity=similarity, path="documented")
    np.testing.assert_allclose(np.array(hmix_unif["s"][0])[[3, 0, 6]], [0.5, 0.25, 0.25], atol=1e-12)
    hmix_clamp = hmix_soft_export(cat.drop(columns="image").assign(stimulus="s"), "t1_semantic", 0.1,
                                  similarity=similarity, path="documented", semantic_base="clamp")
    np.testing.assert_allclose(np.array(hmix_clamp["s"][0])[[3, 0, 6]], [0.5, 0.5, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="^H-Mix soft responses table lacks column 'stimulus'$"):
        hmix_soft_export(table)


def test_response_table_errors_name_the_row_column_and_classes():
    from softlabels.labels.elicited import class_index

    names = ", ".join(CLASSES)
    with pytest.raises(ValueError, match=rf"^unknown class name 'kitten'; expected one of {names}$"):
        class_index("kitten")
    base = {"top_class": "cat", "top_prob": 60.0, "second_class": "dog", "second_prob": 20.0, "impossible": "frog"}
    table = pd.DataFrame([base, base, base])
    with pytest.raises(ValueError, match=r"^responses table lacks column\(s\) top_prob, impossible$"):
        response_labels(table.drop(columns=["top_prob", "impossible"]))
    for column in ("top_class", "second_class", "impossible"):
        bad = table.copy()
        bad.loc[1, column] = "kitten"
        with pytest.raises(ValueError, match=rf"^responses row 1: unknown class name 'kitten'; expected one of {names}$"):
            response_labels(bad)
    bad = table.astype({"top_prob": object})
    bad.loc[1, "top_prob"] = "sixty"
    bad.loc[2, "top_prob"] = "seventy"
    with pytest.raises(ValueError, match=r"^responses row 1: top_prob 'sixty' is not a number$"):
        response_labels(bad)
    # a second probability that is no number counts as not given (as an empty cell)
    unreadable = table.astype({"second_prob": object})
    unreadable.loc[0, "second_prob"] = "n/a"
    empty = table.copy()
    empty.loc[0, "second_prob"] = np.nan
    np.testing.assert_array_equal(response_labels(unreadable), response_labels(empty))


def test_response_labels_defaults_and_options_by_hand():
    """cat 60 + dog 20, frog impossible (A = 0.8): T2-Clamp leaves 0.2 for the 7 free classes, whatever γ
    (the default, 0.1, and 0.3 agree). truck 100 (A = 1): documented Clamp damps it to 1 − γ."""
    table = pd.DataFrame([
        {"top_class": "cat", "top_prob": 60.0, "second_class": "dog", "second_prob": 20.0, "impossible": "frog"},
        {"top_class": "truck", "top_prob": 100.0, "second_class": "", "second_prob": np.nan, "impossible": ""},
    ])
    default = response_labels(table)
    np.testing.assert_allclose(default[0, [3, 5, 6, 0]], [0.6, 0.2, 0.0, 0.2 / 7], atol=1e-12)
    np.testing.assert_allclose(default[1, [9, 0]], [0.9, 0.1 / 9], atol=1e-12)
    np.testing.assert_allclose(response_labels(table, gamma=0.3)[1, [9, 0]], [0.7, 0.3 / 9], atol=1e-12)
    similarity = np.eye(10)
    similarity[9, [1, 8]] = 1.0  # truck ~ automobile, ship
    unif = response_labels(table, "t2_semantic", gamma=0.3, similarity=similarity)
    np.testing.assert_allclose(unif[1, [9, 1, 8]], [1.0, 0.0, 0.0], atol=1e-12)  # Unif: nothing left at A = 1
    clamp = response_labels(table, "t2_semantic", gamma=0.3, similarity=similarity, semantic_base="clamp")
    np.testing.assert_allclose(clamp[1, [9, 1, 8]], [0.7, 0.15, 0.15], atol=1e-12)


def test_elicited_inputs_are_checked_with_exact_messages():
    import re

    from softlabels.labels.elicited import elicited_labels

    def call(top=(0, 9), p1=(0.0, 100.0), second=(-1, 0), p2=(np.nan, 100.0), possible=None, **options):
        possible = np.ones((len(top), 10), bool) if possible is None else possible
        return elicited_labels(np.array(top), np.array(p1), np.array(second), np.array(p2), possible, **options)

    assert call().shape == (2, 10)  # class 0 and 9, p1 0 and 100, second -1 (none) and 0, p2 100: all valid
    shape = "^top, p1, second, p2 must have shape \\[n\\] and possible \\[n, 10\\]$"
    for bad in ({"p1": (50.0,)}, {"second": (-1,)}, {"p2": (np.nan,)}, {"possible": np.ones((2, 9), bool)}):
        with pytest.raises(ValueError, match=shape):
            call(**bad)
    top = (0, 10, -1, 3, 11, 12, 13, 14)
    n = len(top)
    with pytest.raises(ValueError, match=re.escape(f"top class index out of range 0..9: {np.array([10, -1, 11, 12, 13])}")):
        call(top=top, p1=(50.0,) * n, second=(-1,) * n, p2=(np.nan,) * n)
    for second in (10, -2):
        with pytest.raises(ValueError, match=r"^second class index out of range \(use -1 for none\)$"):
            call(second=(-1, second))
    p1 = (0.0, 100.0, 101.0, 150.0, np.nan, -1.0, 200.0, 300.0)
    bad = np.array([101.0, 150.0, np.nan, -1.0, 200.0])
    with pytest.raises(ValueError, match=re.escape(f"top probability must be a number in [0, 100], got {bad}")):
        call(top=(0,) * 8, p1=p1, second=(-1,) * 8, p2=(np.nan,) * 8)
    for p2 in (100.5, np.inf, -0.5):
        with pytest.raises(ValueError, match=r"^second probability must lie in \[0, 100\] \(or be missing\)$"):
            call(p2=(np.nan, p2))
    with pytest.raises(ValueError, match="^unknown redistribution path 'x'; expected one of documented, released_code, hmix_release$"):
        call(path="x")
    with pytest.raises(ValueError, match="^unknown semantic base 'x'; expected one of unif, clamp$"):
        call(semantic_base="x")
    with pytest.raises(ValueError, match=r"^semantic varieties need `similarity` \(see softlabels.labels.semantic_similarity\)$"):
        call(variety="t2_semantic")
    for similarity in (np.eye(9), np.full((10, 10), np.nan)):
        with pytest.raises(ValueError, match=r"^similarity must be a finite \[10, 10\] matrix, got shape"):
            call(variety="t2_semantic", similarity=similarity)


def test_elicited_defaults_and_stated_mass_just_above_100_by_hand():
    """Defaults: T2-Clamp, γ = 0.1, the documented path (truck 100 → 0.9). truck 80 + automobile 20.5 (A = 1.005
    > 1) on the H-Mix release path: each stated class gives up γ/2, ship (the one free class) gets γ, then / A."""
    from softlabels.labels.elicited import elicited_labels

    possible = np.zeros((1, 10), bool)
    possible[0, [9, 1, 8]] = True
    default = elicited_labels(np.array([9]), np.array([100.0]), np.array([-1]), np.array([np.nan]), possible)
    np.testing.assert_allclose(default[0, [9, 1, 8]], [0.9, 0.05, 0.05], atol=1e-12)
    over = elicited_labels(np.array([9]), np.array([80.0]), np.array([1]), np.array([20.5]), possible,
                           path="hmix_release")
    np.testing.assert_allclose(over[0, [9, 1, 8]], np.array([0.75, 0.155, 0.1]) / 1.005, atol=1e-12)


def test_variety_and_impossible_index_messages_are_exact():
    names = ", ".join(VARIETIES)
    with pytest.raises(ValueError, match=rf"^unknown label variety 't3_unif'; expected one of {names}$"):
        response_label(3, 50, -1, None, variety="t3_unif")
    for k in (10, -1):
        with pytest.raises(ValueError, match=rf"^impossible class index out of range 0..9: \[{k}\]$"):
            response_label(3, 50, -1, None, impossible=[k])
    label = response_label(3, 50, -1, None, impossible=[9])  # 9 is the last valid index: truck impossible
    assert label[9] == 0.0 and label[0] > 0.0
