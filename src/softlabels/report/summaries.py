"""Dataset summaries that need no training, each statistic beside the value the thesis states.

- `cifar10s_summary`: the CIFAR-10S elicitation (thesis §3.2.1) and how its labels differ from CIFAR-10H (§3.2.3).
- `hmix_summary`: the H-Mix mixing-factor study (§4.2) and the soft labels over mixed images (§5.1).

The functions here take arrays and tidy DataFrames (the agreed files of the data stage) and return a DataFrame
with columns `SUMMARY_COLUMNS`; `register_summaries` adds the subcommands that read the files and write the CSVs.
Entropy is in nats throughout (thesis §3.2.1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from softlabels import CLASSES, NUM_CLASSES
from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.config import select
from softlabels.data.cifar10s import read_responses  # the one tidy-responses reader (figures use it too)
from softlabels.data.hmix import load_judgments  # the one judgments reader
from softlabels.data.io import write_csv
from softlabels.labels import response_labels
from softlabels.numerics import entropy, mean_ci
from softlabels.report.thesis import thesis_statistics

#: Columns of a summary CSV: the statistic, our value, the thesis value (NaN when the thesis states none), the
#: thesis ± (NaN when none), the CI half-width of our value (NaN when not a mean) and a note saying what was computed.
SUMMARY_COLUMNS = ("statistic", "reproduced", "reproduced_ci", "thesis", "thesis_ci", "note")
#: The config keys each summary reads, and no others (the subcommand sees only these; the workflow declares
#: them as the rule's params, so that editing one of them reruns the summary).
SUMMARY_SETTINGS = {
    "cifar10s_summary": ("labels.gamma", "labels.redistribution_path", "summaries.ci_level",
                         "summaries.low_entropy_max", "summaries.high_entropy_min",
                         "evaluation.cifar10s_holdout.max_responses"),
    "hmix_summary": ("labels.gamma", "labels.hmix_redistribution_path", "summaries.ci_level",
                     "summaries.low_entropy_max", "summaries.endpoint_high_entropy_min"),
}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# Small measures
# --------------------------------------------------------------------------------------------------------------
def classes_with_mass(p: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """Number of classes holding more than `tol` probability, per row."""
    return (np.asarray(p) > tol).sum(axis=-1)


def wasserstein_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise `scipy.stats.wasserstein_distance(a_n, b_n)` with the K probabilities taken as sample *values*
    (as the authors' analysis did; docs/protocol.md#dataset-summaries). For two equal-size samples
    with equal weights the 1-Wasserstein distance is the mean absolute difference of the sorted values."""
    a = np.sort(np.asarray(a, dtype=float), axis=-1)
    b = np.sort(np.asarray(b, dtype=float), axis=-1)
    return np.abs(a - b).mean(axis=-1)


def total_variation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """½ Σ_k |a_k − b_k| per row."""
    return 0.5 * np.abs(np.asarray(a, float) - np.asarray(b, float)).sum(axis=-1)


def class_indices(values) -> np.ndarray:
    """Class indices from a column holding indices or (any-case) class names."""
    values = pd.Series(values)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.int64)
    lookup = {name.lower(): i for i, name in enumerate(CLASSES)}
    unknown = sorted(set(values.str.lower()) - set(lookup))
    if unknown:
        raise ValueError(f"unknown class name(s) {unknown}; expected one of {list(lookup)}")
    return values.str.lower().map(lookup).to_numpy(dtype=np.int64)


# --------------------------------------------------------------------------------------------------------------
# Building the summary table
# --------------------------------------------------------------------------------------------------------------
class _Summary:
    """Collects statistics in order and pairs each with its thesis value by name."""

    def __init__(self, thesis: dict[str, tuple[float, float]] | None):
        self.thesis = thesis or {}
        self.rows: list[dict] = []

    def add(self, statistic: str, value, note: str, ci=float("nan"), thesis_name: str | None = None) -> None:
        thesis_value, thesis_ci = self.thesis.get(thesis_name or statistic, (float("nan"), float("nan")))
        self.rows.append(
            dict(
                statistic=statistic,
                reproduced=float(value),
                reproduced_ci=float(ci),
                thesis=thesis_value,
                thesis_ci=thesis_ci,
                note=note,
            )
        )

    def add_mean(self, statistic: str, x, note: str, level: float, thesis_name: str | None = None) -> None:
        mean, half = mean_ci(x, level)
        self.add(statistic, mean, f"{note} (mean ± {level:.0%} t-interval, n = {np.isfinite(x).sum()})", half,
                 thesis_name)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(SUMMARY_COLUMNS))


def cifar10s_summary(
    responses: pd.DataFrame,
    cifar10h_counts: np.ndarray,
    cifar10s_labels: np.ndarray,
    thresholds: dict,
    thesis: dict[str, tuple[float, float]] | None = None,
    m_cifar10s: int = 6,
) -> pd.DataFrame:
    """Statistics of thesis §3.2.1 and §3.2.3.

    responses        tidy CIFAR-10S responses (data stage `cifar10s_responses.csv`)
    cifar10h_counts  [10000, K] CIFAR-10H counts (all test images)
    cifar10s_labels  [n_images, K] CIFAR-10S T2-Clamp mean label of each image of `sorted(responses.image)`
    thresholds       `summaries` block of the config (low_entropy_max, high_entropy_min, ci_level)
    m_cifar10s       responses per image the thesis uses (M = 6; the evaluation labels' max_responses)
    """
    level = thresholds["ci_level"]
    out = _Summary(thesis)
    images = np.sort(responses["image"].unique())
    if len(cifar10s_labels) != len(images):
        raise ValueError(f"{len(cifar10s_labels)} CIFAR-10S labels for {len(images)} images")
    counts = np.asarray(cifar10h_counts, dtype=float)
    _add_cifar10s_design(out, responses, images)
    _add_entropy_groups(out, counts, images, thresholds["low_entropy_max"], thresholds["high_entropy_min"])
    _add_annotation_effort(out, responses, counts, images, m_cifar10s)
    _add_label_comparison(out, cifar10s_labels, counts[images] / counts[images].sum(axis=1, keepdims=True), level)
    return out.frame()


def _add_cifar10s_design(out: _Summary, responses: pd.DataFrame, images: np.ndarray) -> None:
    """Participants, images, responses per image and per batch, repeat trials (thesis §3.2.1)."""
    per_image = responses.groupby("image").size()
    per_subject = responses.groupby("subject").size()
    repeats = responses["task"].eq("rerun_spec_conf")
    out.add("participants", responses["subject"].nunique(), "distinct subjects in the responses")
    out.add("images", len(images), "distinct CIFAR-10 test images with a response")
    out.add("responses", len(responses), "responses, repeat trials included (an annotator is a response)")
    out.add("responses_per_image_min", per_image.min(), "fewest responses of an image")
    out.add("responses_per_image_max", per_image.max(), "most responses of an image")
    out.add("responses_per_image_mean", per_image.mean(), "mean responses per image")
    out.add("repeat_responses", repeats.sum(), "responses from repeat (rerun_spec_conf) trials")
    out.add("images_per_batch", per_subject.median(),
            "median responses per participant (one batch: unique images + repeats)")
    out.add("repeats_per_batch", responses[repeats].groupby("subject").size().reindex(per_subject.index,
            fill_value=0).median(), "median repeat trials per participant")


def _add_entropy_groups(out: _Summary, counts: np.ndarray, images: np.ndarray, low: float, high: float) -> None:
    """Low/high CIFAR-10H entropy images among the CIFAR-10S images, and the disagreement of all CIFAR-10H labels."""
    probs_all = counts / counts.sum(axis=1, keepdims=True)
    h = entropy(probs_all[images])
    out.add("low_entropy_images", (h <= low).sum(), f"CIFAR-10H entropy <= {low} nats among these images")
    out.add("high_entropy_images", (h > high).sum(), f"CIFAR-10H entropy > {high} nats among these images")
    out.add("between_entropy_images", ((h > low) & (h <= high)).sum(),
            f"CIFAR-10H entropy in ({low}, {high}] (the thesis implies none)")
    out.add("cifar10h_share_mass_at_most_two_classes", (classes_with_mass(probs_all) <= 2).mean(),
            f"share of all {len(probs_all)} CIFAR-10H labels with mass on at most two classes")
    out.add("cifar10h_share_low_disagreement", (entropy(probs_all) <= low).mean(),
            f"share of all CIFAR-10H labels with entropy <= {low} nats (the cited 70% states no threshold)")


def _add_annotation_effort(out: _Summary, responses: pd.DataFrame, counts: np.ndarray, images: np.ndarray,
                           m_cifar10s: int) -> None:
    """Annotators per image of both datasets, their ratio, and seconds per label (thesis §3.2.3)."""
    out.add("cifar10h_annotators_per_image", counts.sum(axis=1).mean(),
            "mean CIFAR-10H annotators per image, all images")
    out.add("cifar10s_annotators_per_image", responses.groupby("image").size().min(),
            "fewest responses of an image: every image has at least the thesis' M")
    out.add("annotator_ratio", counts[images].sum(axis=1).mean() / m_cifar10s,
            f"mean CIFAR-10H annotators of these images / M = {m_cifar10s} CIFAR-10S responses")
    out.add("cifar10s_seconds_per_label", responses["rt_ms"].median() / 1000.0,
            "median response time in seconds")
    out.add("cifar10h_seconds_per_label", float("nan"),
            "not reproduced: needs the CIFAR-10H per-trial reaction times, which are not an input")


def _add_label_comparison(out: _Summary, cifar10s_labels: np.ndarray, probs: np.ndarray, level: float) -> None:
    """CIFAR-10S mean labels against the CIFAR-10H labels of the same images: entropy, support, distances."""
    h, h_s = entropy(probs), entropy(cifar10s_labels)
    out.add_mean("cifar10h_mean_entropy", h, "CIFAR-10H label entropy over these images (nats)", level)
    out.add_mean("cifar10s_mean_entropy", h_s, "CIFAR-10S T2-Clamp mean-label entropy (nats)", level)
    out.add_mean("cifar10h_mean_classes_with_mass", classes_with_mass(probs), "CIFAR-10H classes with mass > 0",
                 level)
    out.add_mean("cifar10s_mean_classes_with_mass", classes_with_mass(cifar10s_labels),
                 "CIFAR-10S mean-label classes with mass > 0", level)
    out.add("share_cifar10s_higher_entropy", (h_s > h).mean(), "share of images whose CIFAR-10S label has the higher entropy")
    out.add_mean("mean_wasserstein", wasserstein_rows(cifar10s_labels, probs),
                 "scipy wasserstein_distance between the two labels' 10 probabilities as values", level)
    out.add_mean("mean_total_variation", total_variation(cifar10s_labels, probs),
                 "total-variation distance between CIFAR-10S and CIFAR-10H labels", level)
    out.add("share_same_argmax", (cifar10s_labels.argmax(1) == probs.argmax(1)).mean(),
            "share of images whose two labels agree on the most probable class")


def judgment_table(judgments: pd.DataFrame) -> pd.DataFrame:
    """Judgments with integer class columns `c1`, `c2` and the unordered pair `pair` ("i-j", i < j)."""
    table = judgments.copy()
    table["c1"] = class_indices(table["class1"])
    table["c2"] = class_indices(table["class2"])
    lo, hi = np.minimum(table["c1"], table["c2"]), np.maximum(table["c1"], table["c2"])
    table["pair"] = [f"{a}-{b}" for a, b in zip(lo, hi)]
    return table


def endpoint_entropy_groups(judgments: pd.DataFrame, cifar10h_probs: np.ndarray, low: float, high: float) -> pd.Series:
    """Group of each judgment by the CIFAR-10H entropy of its two endpoint images (thesis §4.2.2, Fig. 4.5):
    "both high" when both have H >= `high`, "both low" when both have H <= `low`, "mixed" otherwise."""
    h = entropy(np.asarray(cifar10h_probs, dtype=float))
    h1 = h[judgments["image1"].to_numpy(dtype=np.int64)]
    h2 = h[judgments["image2"].to_numpy(dtype=np.int64)]
    group = np.where((h1 >= high) & (h2 >= high), "both high", np.where((h1 <= low) & (h2 <= low), "both low", "mixed"))
    return pd.Series(group, index=judgments.index, name="endpoint_entropy")


def endpoint_masses(labels: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mass each label puts on its first and on its second endpoint class."""
    rows = np.arange(len(labels))
    return labels[rows, c1], labels[rows, c2]


def endpoint_lambda_correlation(labels: np.ndarray, c1, c2, lambda_f) -> float:
    """Pearson r between the mass a soft label puts on a generating endpoint and that endpoint's mixing
    coefficient: each label gives two points, (mass on class 1, λ_f) and (mass on class 2, 1 − λ_f), so the
    result does not depend on which endpoint is called first."""
    m1, m2 = endpoint_masses(labels, np.asarray(c1), np.asarray(c2))
    lam = np.asarray(lambda_f, dtype=float)
    return float(stats.pearsonr(np.concatenate([m1, m2]), np.concatenate([lam, 1 - lam]))[0])


def mean_label_per_stimulus(soft: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """One row per stimulus: c1, c2, lambda_f and the mean human label (columns 0..K-1), stimuli sorted."""
    frame = pd.DataFrame(labels, columns=range(NUM_CLASSES))
    frame["stimulus"] = soft["stimulus"].to_numpy()
    means = frame.groupby("stimulus").mean()
    keys = soft.drop_duplicates("stimulus").set_index("stimulus")[["c1", "c2", "lambda_f"]]
    return keys.join(means).sort_index()


def non_endpoint_mass(labels: np.ndarray, c1, c2) -> np.ndarray:
    """Mass a label puts on classes other than the two generating endpoints (thesis §5.1.2: 38.3%)."""
    m1, m2 = endpoint_masses(labels, np.asarray(c1), np.asarray(c2))
    return 1.0 - m1 - m2


def hmix_summary(
    judgments: pd.DataFrame,
    soft_responses: pd.DataFrame,
    soft_labels: np.ndarray,
    cifar10h_probs: np.ndarray,
    thresholds: dict,
    thesis: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Statistics of thesis §4.2 (mixing-factor inferences of the 810 chapter-4 stimuli) and §5.1 (soft labels
    over mixed images).

    judgments       data stage `hmix_judgments.csv` (all stimuli; the first-collection rows are used)
    soft_responses  data stage `hmix_soft_responses.csv`
    soft_labels     [len(soft_responses), K] T2-Clamp label of each soft response, in its row order
    cifar10h_probs  [10000, K] CIFAR-10H labels (endpoint entropy)
    thresholds      `summaries` block of the config
    """
    level = thresholds["ci_level"]
    out = _Summary(thesis)
    ch4 = judgment_table(judgments[judgments["first_collection"].astype(bool)])
    _add_ch4_design(out, ch4)
    _add_ch4_relabeling(out, ch4, level)
    _add_ch4_endpoint_entropy(out, ch4, cifar10h_probs, thresholds)
    soft = judgment_table(soft_responses)
    if len(soft_labels) != len(soft):
        raise ValueError(f"{len(soft_labels)} soft labels for {len(soft)} soft responses")
    _add_ch5_soft_labels(out, soft, soft_labels, level)
    return out.frame()


def _add_ch4_design(out: _Summary, ch4: pd.DataFrame) -> None:
    """Participants, stimuli, class pairs, judgments per stimulus and per participant (thesis §4.2.1)."""
    per_stimulus = ch4.groupby("stimulus").size()
    per_subject = ch4.groupby("subject").size()
    stimuli = ch4.drop_duplicates("stimulus")
    out.add("ch4_participants", ch4["subject"].nunique(), "distinct subjects judging the first-collection stimuli")
    out.add("ch4_stimuli", ch4["stimulus"].nunique(), "first-collection stimuli with a judgment")
    out.add("ch4_judgments", len(ch4), "mixing-factor judgments of those stimuli, repeats included")
    out.add("ch4_class_pairs", stimuli["pair"].nunique(), "distinct unordered endpoint class pairs")
    out.add("ch4_stimuli_per_class_pair", stimuli.groupby("pair").size().median(), "median stimuli per class pair")
    out.add("ch4_min_judgments_per_stimulus", per_stimulus.min(), "fewest judgments of a stimulus")
    out.add("ch4_max_judgments_per_stimulus", per_stimulus.max(), "most judgments of a stimulus")
    out.add("ch4_min_trials_per_participant", per_subject.min(), "fewest first-collection trials of a participant")
    out.add("ch4_max_trials_per_participant", per_subject.max(), "most first-collection trials of a participant")
    for value, n in stimuli["lambda_f"].value_counts().sort_index().items():
        out.add(f"ch4_stimuli_lambda_f_{value:g}", n, f"stimuli generated with lambda_f = {value:g}")


def _add_ch4_relabeling(out: _Summary, ch4: pd.DataFrame, level: float) -> None:
    """How far the inferred λ_h is from the generating λ_f, and the confidence at each λ_f (Fig. 4.2)."""
    lam_f, lam_h = ch4["lambda_f"].to_numpy(float), ch4["lambda_h"].to_numpy(float)
    out.add_mean("ch4_mean_abs_relabel", np.abs(lam_h - lam_f), "|lambda_h - lambda_f| per judgment", level)
    out.add("ch4_pearson_r_lambda_h_lambda_f", stats.pearsonr(lam_h, lam_f)[0], "Pearson r, per judgment")
    by_lambda = ch4.groupby("lambda_f")
    for value, group in by_lambda:
        out.add(f"ch4_median_lambda_h_at_{value:g}", group["lambda_h"].median(),
                f"median lambda_h of the judgments at lambda_f = {value:g} (Fig. 4.2: close to lambda_f)")
    for value, group in by_lambda:
        out.add_mean(f"ch4_confidence_at_{value:g}", group["confidence"].to_numpy(float),
                     f"confidence at lambda_f = {value:g}", level)
    out.add("ch4_confidence_argmin_lambda_f", by_lambda["confidence"].mean().idxmin(),
            "lambda_f with the lowest mean confidence")


def _add_ch4_endpoint_entropy(out: _Summary, ch4: pd.DataFrame, cifar10h_probs: np.ndarray, thresholds: dict) -> None:
    """Confidence and relabeling when both endpoint images have high vs low CIFAR-10H entropy (Fig. 4.5)."""
    level = thresholds["ci_level"]
    groups = endpoint_entropy_groups(ch4, cifar10h_probs, thresholds["low_entropy_max"],
                                     thresholds["endpoint_high_entropy_min"])
    high, low = groups.eq("both high").to_numpy(), groups.eq("both low").to_numpy()
    rule = f"both endpoints H >= {thresholds['endpoint_high_entropy_min']}"
    rule_low = f"both endpoints H <= {thresholds['low_entropy_max']}"
    conf = ch4["confidence"].to_numpy(float)
    out.add_mean("ch4_confidence_both_high_entropy", conf[high], f"confidence, {rule}", level)
    out.add_mean("ch4_confidence_both_low_entropy", conf[low], f"confidence, {rule_low}", level)
    out.add("ch4_confidence_entropy_welch_p", _welch_p(conf[high], conf[low]),
            "Welch t-test p, confidence both-high vs both-low (thesis: markedly lower when both high)")
    relabel = np.abs(ch4["lambda_h"].to_numpy(float) - ch4["lambda_f"].to_numpy(float))
    out.add_mean("ch4_abs_relabel_both_high_entropy", relabel[high], f"|lambda_h - lambda_f|, {rule}", level)
    out.add_mean("ch4_abs_relabel_both_low_entropy", relabel[low], f"|lambda_h - lambda_f|, {rule_low}", level)
    out.add("ch4_abs_relabel_entropy_welch_p", _welch_p(relabel[high], relabel[low]),
            "Welch t-test p, relabeling both-high vs both-low (thesis: no significant effect)")


def _add_ch5_soft_labels(out: _Summary, soft: pd.DataFrame, soft_labels: np.ndarray, level: float) -> None:
    """Soft labels over mixed images (thesis §5.1.2): endpoint mass against λ_f, mass off the endpoints."""
    c1, c2 = soft["c1"].to_numpy(), soft["c2"].to_numpy()
    lam = soft["lambda_f"].to_numpy(float)
    out.add("ch5_participants", soft["subject"].nunique(), "distinct subjects of the soft-label study")
    out.add("ch5_stimuli", soft["stimulus"].nunique(), "mixed images with a soft label")
    out.add("ch5_labels", len(soft), "soft-label responses")
    stim = mean_label_per_stimulus(soft, soft_labels)
    stim_labels = stim[list(range(NUM_CLASSES))].to_numpy(float)
    out.add("ch5_pearson_r_endpoint_mass_lambda",
            endpoint_lambda_correlation(stim_labels, stim["c1"], stim["c2"], stim["lambda_f"]),
            "Pearson r of (mass of the stimulus' mean human label on an endpoint, that endpoint's mixing "
            "coefficient), both endpoints of every stimulus pooled")
    out.add("ch5_pearson_r_endpoint_mass_lambda_per_label", endpoint_lambda_correlation(soft_labels, c1, c2, lam),
            "the same over individual labels instead of per-stimulus means")
    out.add("ch5_pearson_r_first_endpoint_mass_lambda_per_label",
            float(stats.pearsonr(endpoint_masses(soft_labels, c1, c2)[0], lam)[0]),
            "Pearson r of (mass on the first endpoint, lambda_f), one point per individual label")
    other = non_endpoint_mass(soft_labels, c1, c2)
    out.add_mean("ch5_non_endpoint_mass", other, "mass on classes other than the two endpoints, per label", level)
    sem = other.std(ddof=1) / np.sqrt(len(other)) if len(other) > 1 else float("nan")
    out.add("ch5_non_endpoint_mass_sem", sem, "standard error of that mean (the thesis' ± may be a SEM)")
    per_stimulus_other = pd.Series(other).groupby(soft["stimulus"].to_numpy()).mean().to_numpy()
    out.add_mean("ch5_non_endpoint_mass_per_stimulus", per_stimulus_other,
                 "the same, averaged per stimulus first", level)


def _welch_p(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


# --------------------------------------------------------------------------------------------------------------
# File glue and subcommands
# --------------------------------------------------------------------------------------------------------------
def t2_clamp_labels(responses: pd.DataFrame, cfg: dict, path_key: str = "redistribution_path") -> np.ndarray:
    """T2-Clamp label of every response (softlabels.labels, γ and path from `labels` in the config)."""
    return np.asarray(
        response_labels(responses, "t2_clamp", gamma=cfg["labels"]["gamma"], path=cfg["labels"][path_key]),
        dtype=float,
    )


def mean_labels_by_image(responses: pd.DataFrame, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted image ids, mean label of each image's responses)."""
    frame = pd.DataFrame(labels, columns=range(NUM_CLASSES))
    frame["image"] = responses["image"].to_numpy()
    means = frame.groupby("image").mean().sort_index()
    return means.index.to_numpy(dtype=np.int64), means.to_numpy(dtype=float)


def _thresholds(cfg: dict) -> dict:
    return dict(cfg["summaries"])


def _require(*paths) -> None:
    """Raise the CLI's UserError naming every input file that does not exist."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise UserError(f"missing input file(s): {', '.join(missing)}")


def run_cifar10s_summary(args: argparse.Namespace) -> int:
    cfg = select(config_from_args(args), SUMMARY_SETTINGS["cifar10s_summary"])
    _require(args.responses, args.cifar10h)
    responses = read_responses(args.responses)
    counts = np.load(args.cifar10h)["counts"]
    _, labels = mean_labels_by_image(responses, t2_clamp_labels(responses, cfg))
    table = cifar10s_summary(responses, counts, labels, _thresholds(cfg), thesis_statistics("cifar10s_summary"),
                             m_cifar10s=cfg["evaluation"]["cifar10s_holdout"]["max_responses"])
    write_csv(args.out, table, float_format="%.6g")
    print(table.to_string(index=False))
    return 0


def run_hmix_summary(args: argparse.Namespace) -> int:
    cfg = select(config_from_args(args), SUMMARY_SETTINGS["hmix_summary"])
    _require(args.judgments, args.soft_responses, args.cifar10h)
    judgments = load_judgments(args.judgments)
    soft = read_responses(args.soft_responses)
    probs = np.load(args.cifar10h)["probs"]
    table = hmix_summary(judgments, soft, t2_clamp_labels(soft, cfg, "hmix_redistribution_path"), probs, _thresholds(cfg),
                         thesis_statistics("hmix_summary"))
    write_csv(args.out, table, float_format="%.6g")
    print(table.to_string(index=False))
    return 0


def register_summaries(sub) -> None:
    """Add `cifar10s-summary` and `hmix-summary` to the `softlabels` parser."""
    p = sub.add_parser("cifar10s-summary", help="CIFAR-10S dataset statistics beside the thesis (§3.2)")
    p.add_argument("--responses", required=True, help="results/data/cifar10s_responses.csv")
    p.add_argument("--cifar10h", required=True, help="results/data/cifar10h.npz")
    p.add_argument("--out", required=True, help="output CSV")
    add_config_arguments(p)
    p.set_defaults(func=run_cifar10s_summary)

    p = sub.add_parser("hmix-summary", help="H-Mix study statistics beside the thesis (§4.2, §5.1)")
    p.add_argument("--judgments", required=True, help="results/data/hmix_judgments.csv")
    p.add_argument("--soft-responses", required=True, help="results/data/hmix_soft_responses.csv")
    p.add_argument("--cifar10h", required=True, help="results/data/cifar10h.npz")
    p.add_argument("--out", required=True, help="output CSV")
    add_config_arguments(p)
    p.set_defaults(func=run_hmix_summary)
