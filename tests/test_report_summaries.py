"""Dataset summaries and no-training figures on small hand-made fixtures (numbers computed by hand)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from softlabels import CLASSES
from softlabels.report import summaries as S

THRESHOLDS = {"low_entropy_max": 0.1, "high_entropy_min": 0.25, "endpoint_high_entropy_min": 0.5, "ci_level": 0.95}
CFG = {"labels": {"gamma": 0.1, "redistribution_path": "documented"}, "summaries": THRESHOLDS}


def onehot(k, n=10):
    v = np.zeros(n)
    v[k] = 1.0
    return v


def stat(table: pd.DataFrame, name: str) -> pd.Series:
    return table.set_index("statistic").loc[name]


# ----------------------------------------------------------------------------------------------------------------
def test_entropy_classes_and_distances():
    p = np.array([onehot(3), np.r_[0.5, 0.5, np.zeros(8)], np.full(10, 0.1)])
    assert S.entropy(p) == pytest.approx([0.0, math.log(2), math.log(10)])
    assert S.classes_with_mass(p).tolist() == [1, 2, 10]
    # Wasserstein over the probabilities as values: one-hot vs uniform -> sorted |0.1-0|*9 + |0.1-1| = 1.8 / 10.
    assert S.wasserstein_rows(p[:1], p[2:]) == pytest.approx([0.18])
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(10), 5), rng.dirichlet(np.ones(10), 5)
    assert S.wasserstein_rows(a, b) == pytest.approx([wasserstein_distance(x, y) for x, y in zip(a, b)])
    assert S.total_variation(p[:1], p[1:2]) == pytest.approx([1.0])


def test_mean_ci_by_hand():
    mean, half = S.mean_ci([1.0, 2.0, 3.0])
    # sd = 1, sem = 1/sqrt(3), t_{0.975, 2} = 4.302653
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(S.mean_ci([5.0])[1])


def test_class_indices_accepts_names_and_ints():
    assert S.class_indices(pd.Series(["Deer", "airplane"])).tolist() == [4, 0]
    assert S.class_indices(pd.Series([3, 9])).tolist() == [3, 9]
    with pytest.raises(ValueError, match="unknown class"):
        S.class_indices(pd.Series(["zebra"]))


# ----------------------------------------------------------------------------------------------------------------
def cifar10s_fixture():
    """Images 0, 1, 2; subjects a (3 responses, one repeat) and b (2 responses)."""
    responses = pd.DataFrame(
        {
            "image": [0, 1, 2, 0, 2],
            "subject": ["a", "a", "a", "b", "b"],
            "task": ["spec_conf", "spec_conf", "rerun_spec_conf", "spec_conf", "spec_conf"],
            "rt_ms": [10000.0, 20000.0, 30000.0, 40000.0, 50000.0],
        }
    )
    counts = np.zeros((4, 10), dtype=np.int64)
    counts[0, 0] = 50  # H = 0 (low)
    counts[1, [1, 2]] = [25, 25]  # H = log 2 (high), mass on two classes
    counts[2, [3, 4, 5]] = [20, 20, 20]  # H = log 3 (high), three classes
    counts[3, [6]] = [48]  # not a CIFAR-10S image
    labels = np.array([np.r_[0.5, 0.5, np.zeros(8)], onehot(1), np.full(10, 0.1)])
    return responses, counts, labels


def test_cifar10s_summary_by_hand():
    responses, counts, labels = cifar10s_fixture()
    thesis = {"participants": (248.0, float("nan")), "low_entropy_images": (114.0, float("nan"))}
    t = S.cifar10s_summary(responses, counts, labels, THRESHOLDS, thesis, m_cifar10s=2)
    assert list(t.columns) == list(S.SUMMARY_COLUMNS)
    assert stat(t, "participants")["reproduced"] == 2 and stat(t, "participants")["thesis"] == 248
    assert stat(t, "images")["reproduced"] == 3
    assert stat(t, "responses")["reproduced"] == 5
    assert stat(t, "responses_per_image_min")["reproduced"] == 1
    assert stat(t, "responses_per_image_max")["reproduced"] == 2
    assert stat(t, "repeat_responses")["reproduced"] == 1
    assert stat(t, "images_per_batch")["reproduced"] == 2.5  # median of 3 and 2 responses
    assert stat(t, "repeats_per_batch")["reproduced"] == 0.5  # median of 1 and 0 repeats
    assert stat(t, "low_entropy_images")["reproduced"] == 1
    assert stat(t, "high_entropy_images")["reproduced"] == 2
    assert stat(t, "between_entropy_images")["reproduced"] == 0
    assert math.isnan(stat(t, "high_entropy_images")["thesis"])
    # all 4 CIFAR-10H rows: classes with mass 1, 2, 3, 1 -> 3 of 4 have at most two
    assert stat(t, "cifar10h_share_mass_at_most_two_classes")["reproduced"] == 0.75
    assert stat(t, "cifar10h_annotators_per_image")["reproduced"] == pytest.approx((50 + 50 + 60 + 48) / 4)
    assert stat(t, "annotator_ratio")["reproduced"] == pytest.approx((50 + 50 + 60) / 3 / 2)
    assert stat(t, "cifar10s_seconds_per_label")["reproduced"] == 30.0
    assert stat(t, "cifar10h_mean_entropy")["reproduced"] == pytest.approx((0 + math.log(2) + math.log(3)) / 3)
    assert stat(t, "cifar10s_mean_entropy")["reproduced"] == pytest.approx((math.log(2) + 0 + math.log(10)) / 3)
    assert stat(t, "cifar10s_mean_classes_with_mass")["reproduced"] == pytest.approx((2 + 1 + 10) / 3)
    # argmax: image 0 airplane/airplane, image 1 automobile (first of the tie)/automobile, image 2 cat/airplane
    assert stat(t, "share_same_argmax")["reproduced"] == pytest.approx(2 / 3)
    assert stat(t, "share_cifar10s_higher_entropy")["reproduced"] == pytest.approx(2 / 3)


def test_cifar10s_summary_rejects_misaligned_labels():
    responses, counts, labels = cifar10s_fixture()
    with pytest.raises(ValueError, match="2 CIFAR-10S labels for 3 images"):
        S.cifar10s_summary(responses, counts, labels[:2], THRESHOLDS)


# ----------------------------------------------------------------------------------------------------------------
def hmix_fixture():
    """Two first-collection stimuli (deer/airplane at 0.25 and 0.5) and one outside the first collection."""
    rows = [
        # stimulus, lambda_f, class1, image1, class2, image2, first, subject, lambda_h, confidence
        ("s1", 0.25, "deer", 0, "airplane", 1, True, "a", 0.45, 0.8),
        ("s1", 0.25, "deer", 0, "airplane", 1, True, "b", 0.25, 1.0),
        ("s2", 0.5, "airplane", 2, "deer", 3, True, "a", 0.5, 0.2),
        ("s2", 0.5, "airplane", 2, "deer", 3, True, "b", 0.9, 0.4),
        ("s3", 0.9, "cat", 0, "dog", 2, False, "c", 0.0, 0.0),
    ]
    judgments = pd.DataFrame(rows, columns=["stimulus", "lambda_f", "class1", "image1", "class2", "image2",
                                            "first_collection", "subject", "lambda_h", "confidence"])
    probs = np.array([onehot(4), onehot(0), np.full(10, 0.1), np.full(10, 0.1)])  # images 0,1 low; 2,3 high
    soft = pd.DataFrame(
        [("m1", 0.25, "horse", 5, "ship", 6, "x"), ("m1", 0.25, "horse", 5, "ship", 6, "y"),
         ("m2", 0.75, "ship", 6, "horse", 5, "x")],
        columns=["stimulus", "lambda_f", "class1", "image1", "class2", "image2", "subject"],
    )
    horse, ship, frog = CLASSES.index("horse"), CLASSES.index("ship"), CLASSES.index("frog")
    labels = np.zeros((3, 10))
    labels[0, [horse, ship, frog]] = [0.1, 0.5, 0.4]
    labels[1, [horse, ship, frog]] = [0.3, 0.7, 0.0]  # m1 mean: horse 0.2, ship 0.6
    labels[2, [ship, horse, frog]] = [0.6, 0.2, 0.2]  # m2: ship (endpoint 1) 0.6, horse 0.2
    return judgments, probs, soft, labels


def test_hmix_summary_by_hand():
    judgments, probs, soft, labels = hmix_fixture()
    t = S.hmix_summary(judgments, soft, labels, probs, THRESHOLDS, {"ch4_stimuli": (810.0, float("nan"))})
    assert stat(t, "ch4_stimuli")["reproduced"] == 2 and stat(t, "ch4_stimuli")["thesis"] == 810
    assert stat(t, "ch4_participants")["reproduced"] == 2
    assert stat(t, "ch4_judgments")["reproduced"] == 4
    assert stat(t, "ch4_class_pairs")["reproduced"] == 1  # deer/airplane in both orders is one pair
    assert stat(t, "ch4_min_judgments_per_stimulus")["reproduced"] == 2
    # |λ_h − λ_f| = 0.2, 0, 0, 0.4
    assert stat(t, "ch4_mean_abs_relabel")["reproduced"] == pytest.approx(0.15)
    assert stat(t, "ch4_median_lambda_h_at_0.5")["reproduced"] == pytest.approx(0.7)
    assert stat(t, "ch4_confidence_at_0.25")["reproduced"] == pytest.approx(0.9)
    assert stat(t, "ch4_confidence_argmin_lambda_f")["reproduced"] == 0.5
    # s1 endpoints (images 0, 1) both low entropy; s2 endpoints (2, 3) both high (log 10 >= 0.5)
    assert stat(t, "ch4_confidence_both_low_entropy")["reproduced"] == pytest.approx(0.9)
    assert stat(t, "ch4_confidence_both_high_entropy")["reproduced"] == pytest.approx(0.3)
    assert stat(t, "ch4_abs_relabel_both_high_entropy")["reproduced"] == pytest.approx(0.2)
    assert stat(t, "ch5_stimuli")["reproduced"] == 2 and stat(t, "ch5_labels")["reproduced"] == 3
    assert stat(t, "ch5_participants")["reproduced"] == 2
    # per-stimulus means: m1 (λ 0.25): horse 0.2, ship 0.6 -> points (0.2, 0.25), (0.6, 0.75);
    # m2 (λ 0.75 for ship): ship 0.6, horse 0.2 -> (0.6, 0.75), (0.2, 0.25): perfectly correlated
    assert stat(t, "ch5_pearson_r_endpoint_mass_lambda")["reproduced"] == pytest.approx(1.0)
    # non-endpoint mass per label: 0.4, 0.0, 0.2
    assert stat(t, "ch5_non_endpoint_mass")["reproduced"] == pytest.approx(0.2)
    assert stat(t, "ch5_non_endpoint_mass_sem")["reproduced"] == pytest.approx(0.2 / math.sqrt(3))
    assert stat(t, "ch5_non_endpoint_mass_per_stimulus")["reproduced"] == pytest.approx((0.2 + 0.2) / 2)


def test_endpoint_entropy_groups():
    judgments, probs, _, _ = hmix_fixture()
    table = judgments.assign(image2=[1, 1, 3, 0, 2])
    groups = S.endpoint_entropy_groups(table, probs, 0.1, 0.5)
    assert groups.tolist() == ["both low", "both low", "both high", "mixed", "mixed"]


# ----------------------------------------------------------------------------------------------------------------
def variety_fixture():
    """Response 0: second == top (excluded); 1: top + second = 100 (excluded); 2: thesis-like."""
    return pd.DataFrame(
        {
            "image": [0, 0, 1],
            "top_class": ["deer", "deer", "deer"],
            "top_prob": [75.0, 80.0, 80.0],
            "second_class": ["deer", "horse", "horse"],
            "second_prob": [25.0, 20.0, 10.0],
            "impossible": ["frog", "frog", "frog|automobile|truck|bird|airplane|ship"],
        }
    )


def test_pick_variety_example_follows_the_rule():
    from softlabels.report.data_figures import VARIETY_TITLES, pick_variety_example, variety_labels

    responses = variety_fixture()
    labels = {v: variety_labels(responses, v, CFG) for v in VARIETY_TITLES}
    assert pick_variety_example(responses, labels) == 2
    # docs/protocol.md#worked-example: T2-Clamp = cat 0.05, deer 0.80, dog 0.05, horse 0.10
    expected = np.zeros(10)
    expected[[3, 4, 5, 7]] = [0.05, 0.80, 0.05, 0.10]
    assert labels["t2_clamp"][2] == pytest.approx(expected)
    with pytest.raises(ValueError, match="four different"):
        pick_variety_example(responses.iloc[:2], {v: x[:2] for v, x in labels.items()})


def test_chapter4_figures_write_png_pdf_csv(tmp_path):
    from softlabels.report.data_figures import fig4_2, fig4_5, write_figure_and_data

    judgments, probs, _, _ = hmix_fixture()
    fig, data = fig4_2(judgments, CFG)
    written = write_figure_and_data(fig, data, tmp_path / "fig4_2.png")
    assert [p.name for p in written] == ["fig4_2.png", "fig4_2.pdf", "fig4_2.csv"]
    assert all(p.stat().st_size > 0 for p in written)
    assert len(pd.read_csv(tmp_path / "fig4_2.csv")) == 4  # first-collection judgments only
    fig, data = fig4_5(judgments, probs, CFG)
    assert data["endpoint_entropy"].tolist() == ["both low", "both low", "both high", "both high"]
    write_figure_and_data(fig, data, tmp_path / "fig4_5.png")
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_figure_command_names_missing_inputs(tmp_path, capsys):
    from softlabels.cli import main

    status = main(["figure", "fig4_2", "--data-dir", str(tmp_path), "--out", str(tmp_path / "f.png")])
    assert status == 2
    assert "hmix_judgments.csv" in capsys.readouterr().err
    status = main(["cifar10s-summary", "--responses", str(tmp_path / "r.csv"), "--cifar10h", str(tmp_path / "h.npz"),
                   "--out", str(tmp_path / "s.csv")])
    assert status == 2
    err = capsys.readouterr().err
    assert "r.csv" in err and "h.npz" in err
    assert not (tmp_path / "s.csv").exists()


# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.mirror
def test_smoke_build_of_summary_and_figure(data_mirror, smoke_workdir, snakemake_runner):
    """The real pipeline at smoke scale builds cifar10s_summary.csv and a figure from the mirror."""
    targets = ["results/tables/cifar10s_summary.csv", "results/figures/fig4_5.png"]
    result = snakemake_runner(smoke_workdir, "--cores", "2", *targets, "--config", "scale=smoke",
                              f"data_mirror={data_mirror}")
    assert result.returncode == 0, result.stderr[-3000:]
    t = pd.read_csv(smoke_workdir / targets[0])
    assert stat(t, "participants")["reproduced"] == 248 == stat(t, "participants")["thesis"]
    assert stat(t, "images")["reproduced"] == 1000
    assert stat(t, "responses")["reproduced"] == 6723
    assert stat(t, "low_entropy_images")["reproduced"] == 114
    assert stat(t, "high_entropy_images")["reproduced"] == 886
    assert stat(t, "cifar10h_share_mass_at_most_two_classes")["reproduced"] == pytest.approx(0.772, abs=0.001)
    for ext in ("png", "pdf", "csv"):
        assert (smoke_workdir / f"results/figures/fig4_5.{ext}").stat().st_size > 0


def test_fig4_3_picks_the_largest_deviation_per_thesis_example(tmp_path):
    from softlabels.report.data_figures import fig4_3, write_figure_and_data

    rows = [
        # stimulus, lambda_f (of class1), class1, image1, class2, image2, first, subject, lambda_h (of class1)
        ("p1", 0.25, "dog", 0, "airplane", 1, True, "a", 0.30),
        ("p1", 0.25, "dog", 0, "airplane", 1, True, "b", 0.20),  # mean 0.25: deviation 0
        ("p2", 0.75, "airplane", 2, "dog", 3, True, "a", 0.40),  # dog share 0.25; λ_h of dog 0.60: deviation 0.35
        ("p3", 0.75, "airplane", 2, "dog", 3, False, "a", 0.0),  # not first collection: never picked
        ("q1", 0.5, "bird", 4, "cat", 5, True, "a", 0.9),
        ("r1", 0.5, "bird", 4, "automobile", 6, True, "a", 0.3),  # automobile share 0.5; λ_h of automobile 0.7
    ]
    judgments = pd.DataFrame([(*r, 1.0) for r in rows], columns=[
        "stimulus", "lambda_f", "class1", "image1", "class2", "image2", "first_collection", "subject", "lambda_h",
        "confidence"])  # fmt: skip
    stimuli = {"names": np.array(["p1", "p2", "p3", "q1", "r1"]), "images": np.zeros((5, 32, 32, 3), np.uint8)}
    fig, data = fig4_3(judgments, stimuli, CFG)
    assert data["stimulus"].tolist() == ["p2", "q1", "r1"]
    assert data["lambda_h_mean"].tolist() == pytest.approx([0.6, 0.9, 0.7])
    assert data["thesis_lambda_h"].tolist() == pytest.approx([0.42, 0.99, 0.87])  # thesis_values.csv
    written = write_figure_and_data(fig, data, tmp_path / "fig4_3.png")
    assert [p.name for p in written] == ["fig4_3.png", "fig4_3.pdf", "fig4_3.csv"]
    with pytest.raises(ValueError, match="bird and cat"):
        fig4_3(judgments[judgments["stimulus"] != "q1"], stimuli, CFG)
