"""Data figures, drawn from the parsed human data without training (figures from training runs:
`softlabels.report.run_figures`): CIFAR-10S vs CIFAR-10H labels (thesis chapter 3, appendix B) and the H-Mix
human judgments over mixed images (chapters 4 and 5).

Each `fig*` function takes the loaded inputs and returns `(figure, data)`, where `data` is the tidy table of what
is drawn (written beside the figure as CSV). Where the thesis shows hand-picked examples, the docstring states
the rule that picks ours. Labels: CIFAR-10H = counts / row sum; CIFAR-10S = mean T2-Clamp label over all of an
image's responses (softlabels.labels, γ and path from the config). Colours follow the thesis: CIFAR-10S and
mixup blue, CIFAR-10H and human red.

`softlabels figure NAME --data-dir results/data --out results/figures/NAME.png` writes NAME.png, NAME.pdf and
NAME.csv.
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from softlabels import CLASSES, NUM_CLASSES
from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.config import select
from softlabels.data import io as data_io
from softlabels.data.hmix import load_judgments
from softlabels.labels import fit_class_pair_taus, mixup_label, response_labels, tau
from softlabels.numerics import entropy
from softlabels.report.summaries import (
    endpoint_entropy_groups,
    judgment_table,
    mean_labels_by_image,
    read_responses,
    total_variation,
    wasserstein_rows,
)
from softlabels.report.thesis import thesis_statistics

BLUE, RED = "#3b6fb6", "#c8423b"
VARIETY_TITLES = {
    "t1_unif": "A) Top 1, Uniform",
    "t1_clamp": "B) Top 1, Clamp",
    "t2_unif": "C) Top 2, Uniform",
    "t2_clamp": "D) Top 2, Clamp",
}
#: fig3_3 / figB_2: a CIFAR-10H label counts as (nearly) hard when its largest probability reaches this.
NEAR_HARD = 0.95
#: fig3_4: both labels count as "rich" when their entropy reaches this many nats.
RICH_ENTROPY = 1.0


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------
@dataclass
class LabelSet:
    """The CIFAR-10S images with both labels: `images` (test ids, sorted), `cifar10s` and `cifar10h` [n, K]
    labels, `hard` CIFAR-10 labels and `pixels` uint8 [n, 32, 32, 3]."""

    images: np.ndarray
    cifar10s: np.ndarray
    cifar10h: np.ndarray
    hard: np.ndarray
    pixels: np.ndarray


def variety_labels(responses: pd.DataFrame, variety: str, cfg: dict, path_key: str = "redistribution_path") -> np.ndarray:
    """Label of every response in `variety` (softlabels.labels.response_labels), with the redistribution path at
    `labels.<path_key>` (H-Mix responses use `hmix_redistribution_path`)."""
    return np.asarray(
        response_labels(responses, variety, gamma=cfg["labels"]["gamma"], path=cfg["labels"][path_key]),
        dtype=float,
    )


def load_label_set(data_dir: Path, cfg: dict) -> LabelSet:
    responses = read_responses(data_dir / "cifar10s_responses.csv")
    images, cifar10s = mean_labels_by_image(responses, variety_labels(responses, "t2_clamp", cfg))
    probs = np.load(data_dir / "cifar10h.npz")["probs"]
    test = np.load(data_dir / "cifar10_test.npz")
    return LabelSet(images, cifar10s, probs[images], test["labels"][images], test["images"][images])


# --------------------------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------------------------
def _pyplot():
    """(matplotlib.pyplot, seaborn) with the non-interactive backend and this module's theme; imported only when
    drawing so that building the `softlabels` parser stays fast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
    return plt, sns


def _show_image(ax, pixels: np.ndarray, title: str) -> None:
    ax.imshow(pixels, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _label_bars(ax, labels: dict[str, np.ndarray], palette: dict[str, str], legend: bool = True) -> None:
    """Grouped bars of one or more K-class labels."""
    _, sns = _pyplot()
    data = pd.DataFrame(
        [(name, CLASSES[k], float(p[k])) for name, p in labels.items() for k in range(NUM_CLASSES)],
        columns=["label", "class", "probability"],
    )
    sns.barplot(data=data, x="class", y="probability", hue="label", palette=palette, ax=ax, legend=legend)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    if legend and ax.get_legend() is not None:
        ax.legend(fontsize=7, title=None)


def _long_labels(meta: dict, labels: dict[str, np.ndarray]) -> list[dict]:
    """Rows of a figure's data table: `meta` plus one row per (label, class)."""
    return [
        {**meta, "label": name, "class": CLASSES[k], "probability": float(p[k])}
        for name, p in labels.items()
        for k in range(NUM_CLASSES)
    ]


def _comparison_figure(ls: LabelSet, picks: list[int], reasons: list[str], title: str):
    """Image above a CIFAR-10H (red) vs CIFAR-10S (blue) bar chart for each picked row of `ls`."""
    plt, sns = _pyplot()
    n = len(picks)
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n, 4.6), gridspec_kw={"height_ratios": [1, 1.4]}, squeeze=False)
    data = []
    for col, (i, reason) in enumerate(zip(picks, reasons)):
        _show_image(axes[0, col], ls.pixels[i], f"test image {ls.images[i]} (CIFAR-10: {CLASSES[ls.hard[i]]})")
        labels = {"CIFAR-10H": ls.cifar10h[i], "CIFAR-10S": ls.cifar10s[i]}
        _label_bars(axes[1, col], labels, {"CIFAR-10H": RED, "CIFAR-10S": BLUE}, legend=col == 0)
        meta = {"panel": col, "image": int(ls.images[i]), "cifar10_label": CLASSES[ls.hard[i]], "rule": reason}
        data += _long_labels(meta, labels)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig, pd.DataFrame(data)


# --------------------------------------------------------------------------------------------------------------
# Chapter 3 and appendix B
# --------------------------------------------------------------------------------------------------------------
def pick_variety_example(responses: pd.DataFrame, labels: dict[str, np.ndarray], min_l1: float = 0.05) -> int:
    """Position of the first response with a thesis-like form (a second class different from the top class,
    top + second < 100, neither ruled out, and at least one, not all, of the other classes ruled out) whose four
    varieties differ pairwise by more than `min_l1` in L1 distance; raises ValueError when none does."""
    second = responses["second_class"].fillna("").astype(str)
    impossible = responses["impossible"].fillna("").astype(str).str.split("|")
    ruled_out = impossible.map(lambda names: {n for n in names if n})
    top = responses["top_class"].astype(str)
    n_out = ruled_out.map(len).to_numpy()
    ok = (
        (second != "").to_numpy()
        & (second != top).to_numpy()
        & (responses["top_prob"].to_numpy(float) + pd.to_numeric(responses["second_prob"]).fillna(np.inf).to_numpy() < 100)
        & np.array([t not in r and c not in r for t, c, r in zip(top, second, ruled_out)])
        & (n_out >= 1)
        & (n_out <= NUM_CLASSES - 3)
    )
    names = list(labels)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            ok &= np.abs(labels[names[a]] - labels[names[b]]).sum(axis=1) > min_l1
    if not ok.any():
        raise ValueError("no response yields four different label varieties")
    return int(np.argmax(ok))


def fig3_2(responses: pd.DataFrame, pixels: np.ndarray, cfg: dict):
    """Thesis Fig. 3.2: the four label varieties (T1/T2 × Unif/Clamp) built from ONE response.

    Rule: the first response, in raw-file order, with a distinct second class, top + second < 100, neither of
    them ruled out and between 1 and 7 other classes ruled out, whose four varieties differ pairwise by more than
    0.05 in L1 distance (`pick_variety_example`)."""
    labels = {v: variety_labels(responses, v, cfg) for v in VARIETY_TITLES}
    r = pick_variety_example(responses, labels)
    row = responses.iloc[r]
    plt, sns = _pyplot()
    fig = plt.figure(figsize=(9, 4.2))
    grid = fig.add_gridspec(2, 3, width_ratios=[0.8, 1, 1])
    second = f", 2nd: {row['second_class']} {row['second_prob']:g}" if str(row["second_class"]) else ""
    impossible = "\n".join(textwrap.wrap(str(row["impossible"]).replace("|", ", ") or "none", 40))
    _show_image(fig.add_subplot(grid[:, 0]), pixels[int(row["image"])],
                f"test image {int(row['image'])}\n1st: {row['top_class']} {row['top_prob']:g}{second}\n"
                f"impossible: {impossible}")
    data = []
    for n, (variety, title) in enumerate(VARIETY_TITLES.items()):
        ax = fig.add_subplot(grid[n // 2, 1 + n % 2])
        _label_bars(ax, {title: labels[variety][r]}, {title: BLUE}, legend=False)
        ax.set_title(title, fontsize=8)
        ax.set_ylabel("")
        data += _long_labels({"response_row": r, "image": int(row["image"])}, {variety: labels[variety][r]})
    fig.tight_layout()
    return fig, pd.DataFrame(data)


def fig3_3(ls: LabelSet, cfg: dict):
    """Thesis Fig. 3.3: a CIFAR-10S soft variant of a (nearly) hard CIFAR-10H automobile label that puts mass on
    the similar class truck.

    Rule: among the CIFAR-10S images labelled automobile in CIFAR-10 whose CIFAR-10H label puts >= 0.95 on
    automobile, the one whose CIFAR-10S label puts the most mass on truck (ties: lowest test index)."""
    auto, truck = CLASSES.index("automobile"), CLASSES.index("truck")
    ok = (ls.hard == auto) & (ls.cifar10h[:, auto] >= NEAR_HARD)
    if not ok.any():
        raise ValueError("no automobile image with a near-hard CIFAR-10H label")
    i = int(np.flatnonzero(ok)[np.argmax(ls.cifar10s[ok, truck])])
    return _comparison_figure(ls, [i], ["largest CIFAR-10S truck mass, CIFAR-10H automobile >= 0.95"],
                              "CIFAR-10S vs CIFAR-10H: automobile/truck")


def wasserstein_order(ls: LabelSet) -> np.ndarray:
    """Rows of `ls` by decreasing Wasserstein distance between the two labels (ties: lowest test index)."""
    w = wasserstein_rows(ls.cifar10s, ls.cifar10h)
    return np.lexsort((ls.images, -w))


def fig3_4(ls: LabelSet, cfg: dict):
    """Thesis Fig. 3.4: two examples with high Wasserstein distance between the CIFAR-10S and CIFAR-10H labels,
    and one where CIFAR-10S recovers a similarly rich, high-entropy label from ~8.5x fewer annotators
    (thesis images: frog, airplane, frog).

    Rule: the two largest Wasserstein distances (scipy, probabilities as values); then, among the images whose
    two labels both have entropy >= 1 nat, the one with the smallest total-variation distance between them
    (none: the image with the largest smaller entropy)."""
    order = wasserstein_order(ls)
    h_s, h_h = entropy(ls.cifar10s), entropy(ls.cifar10h)
    rich = np.flatnonzero((h_s >= RICH_ENTROPY) & (h_h >= RICH_ENTROPY))
    if len(rich):
        third = int(rich[np.argmin(total_variation(ls.cifar10s[rich], ls.cifar10h[rich]))])
        why = "both entropies >= 1 nat, smallest total variation"
    else:
        third = int(np.argmax(np.minimum(h_s, h_h)))
        why = "largest smaller entropy"
    return _comparison_figure(
        ls, [int(order[0]), int(order[1]), third], ["Wasserstein rank 1", "Wasserstein rank 2", why],
        "CIFAR-10S vs CIFAR-10H: high Wasserstein distance (left) and a rich label from fewer annotators (right)",
    )


def figB_1(ls: LabelSet, cfg: dict):
    """Thesis Fig. B.1: the three highest Wasserstein-distance examples between CIFAR-10S (blue) and CIFAR-10H
    (red) labels (thesis images: dog, frog, bird).

    Rule: the three largest `scipy.stats.wasserstein_distance` values over the 10 probabilities taken as
    values (as the original analysis), ties by lowest test index."""
    order = wasserstein_order(ls)[:3]
    return _comparison_figure(ls, [int(i) for i in order], [f"Wasserstein rank {r + 1}" for r in range(3)],
                              "Highest Wasserstein distance between CIFAR-10S and CIFAR-10H labels")


def figB_2(ls: LabelSet, cfg: dict):
    """Thesis Fig. B.2: "softening" of CIFAR-10H labels by our elicitation (thesis images: truck, dog, airplane).

    Rule: among images whose CIFAR-10H label puts >= 0.95 on one class, the three whose CIFAR-10S label has the
    largest entropy (ties: lowest test index)."""
    ok = np.flatnonzero(ls.cifar10h.max(axis=1) >= NEAR_HARD)
    h = entropy(ls.cifar10s[ok])
    picks = ok[np.lexsort((ls.images[ok], -h))][:3]
    return _comparison_figure(ls, [int(i) for i in picks],
                              [f"CIFAR-10H max >= 0.95, CIFAR-10S entropy rank {r + 1}" for r in range(len(picks))],
                              "Softening of near-hard CIFAR-10H labels by CIFAR-10S")


# --------------------------------------------------------------------------------------------------------------
# Chapters 4 and 5
# --------------------------------------------------------------------------------------------------------------
def first_collection_judgments(judgments: pd.DataFrame) -> pd.DataFrame:
    """The chapter-4 judgments: those of the 810 first-collection stimuli."""
    return judgment_table(judgments[judgments["first_collection"].astype(bool)]).reset_index(drop=True)


def fig4_2(judgments: pd.DataFrame, cfg: dict, seed: int = 0):
    """Thesis Fig. 4.2: every human-inferred mixing coefficient λ_h against the generating λ_f of the 810
    chapter-4 stimuli, with the identity line (red) and the median per λ_f. No selection; the horizontal jitter
    (±0.02, seeded) only separates the points."""
    ch4 = first_collection_judgments(judgments)
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    jitter = np.random.default_rng(seed).uniform(-0.02, 0.02, len(ch4))
    ax.scatter(ch4["lambda_f"] + jitter, ch4["lambda_h"], s=6, alpha=0.25, color=BLUE, label="judgment")
    median = ch4.groupby("lambda_f")["lambda_h"].agg(["median", lambda x: x.quantile(0.25), lambda x: x.quantile(0.75)])
    median.columns = ["median", "q25", "q75"]
    ax.errorbar(median.index, median["median"], yerr=[median["median"] - median["q25"], median["q75"] - median["median"]],
                fmt="o", color="black", capsize=3, label="median (IQR)")
    ax.plot([0, 1], [0, 1], color=RED, label="λ_h = λ_f")
    ax.set(xlabel="generating mixing coefficient λ_f", ylabel="human-inferred λ_h", xlim=(-0.05, 1.05),
           ylim=(-0.05, 1.05), title="Human-inferred vs generating mixing coefficient")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    data = ch4[["stimulus", "subject", "lambda_f", "lambda_h", "confidence"]]
    return fig, data


#: Fig. 4.3's examples: (class a, class b, generating λ_f as the share of a), as the thesis shows them.
FIG4_3_EXAMPLES = (("dog", "airplane", 0.25), ("bird", "cat", 0.5), ("automobile", "bird", 0.5))


def fig4_3(judgments: pd.DataFrame, stimuli: dict, cfg: dict, examples=FIG4_3_EXAMPLES):
    """Thesis Fig. 4.3: example average human relabelings, mean λ_h (share of class a) beside the generating λ_f,
    for the thesis' three examples (dog/airplane at λ_f = 0.25, bird/cat and automobile/bird at 0.5), with the
    thesis' stated mean λ_h (thesis_values.csv, `fig4_3`).

    Rule: for each (a, b, λ_f), among the chapter-4 stimuli mixing a and b with share λ_f of a, the one whose
    mean λ_h over its annotators deviates most from λ_f (ties: first stimulus name); the thesis shows examples
    of marked deviation. A pair without such a stimulus is an error (no substitute is drawn)."""
    ch4 = first_collection_judgments(judgments)
    thesis = thesis_statistics("fig4_3")
    names = [str(n) for n in stimuli["names"]]
    plt, sns = _pyplot()
    fig, axes = plt.subplots(2, len(examples), figsize=(3.3 * len(examples), 5.2),
                             gridspec_kw={"height_ratios": [1, 1]}, squeeze=False)
    data = []
    for col, (a, b, lam) in enumerate(examples):
        ia, ib = CLASSES.index(a), CLASSES.index(b)
        rows = ch4[((ch4["c1"] == ia) & (ch4["c2"] == ib)) | ((ch4["c1"] == ib) & (ch4["c2"] == ia))].copy()
        flip = rows["c1"].to_numpy() != ia
        rows["share_f"] = np.where(flip, 1 - rows["lambda_f"], rows["lambda_f"])
        rows["share_h"] = np.where(flip, 1 - rows["lambda_h"], rows["lambda_h"])
        rows = rows[np.isclose(rows["share_f"].to_numpy(float), lam)]
        if rows.empty:
            raise ValueError(f"no chapter-4 stimulus mixes {a} and {b} with lambda_f = {lam} of {a}")
        means = rows.groupby("stimulus")["share_h"].agg(["mean", "count"]).sort_index()
        deviation = (means["mean"] - lam).abs()
        name = str(deviation.idxmax())
        mean_h, n = float(means.loc[name, "mean"]), int(means.loc[name, "count"])
        t_value, _ = thesis.get(f"lambda_h_{a}_{b}_{lam:g}", (float("nan"), float("nan")))
        _show_image(axes[0, col], stimuli["images"][names.index(name)], f"{a.capitalize()}, {b.capitalize()}\n{name}")
        bars = {"generating λ_f": lam, f"human mean λ_h (n={n})": mean_h, "thesis λ_h": t_value}
        ax = axes[1, col]
        ax.bar(range(len(bars)), [v if not np.isnan(v) else 0.0 for v in bars.values()],
               color=["#888888", RED, "#e8a09a"])
        ax.set_xticks(range(len(bars)), list(bars), rotation=20, fontsize=7)
        ax.set(ylim=(0, 1), ylabel=f"share of {a}")
        for x, v in enumerate(bars.values()):
            if not np.isnan(v):
                ax.text(x, v + 0.02, f"{v:.2f} / {1 - v:.2f}", ha="center", fontsize=7)
        data.append({"panel": col, "class_a": a, "class_b": b, "stimulus": name, "lambda_f": lam,
                     "lambda_h_mean": mean_h, "n_annotators": n, "deviation": abs(mean_h - lam),
                     "thesis_lambda_h": t_value, "rule": "largest |mean lambda_h - lambda_f| of the pair"})
    fig.suptitle("Example average human relabelings of the generating mixing coefficient", fontsize=9)
    fig.tight_layout()
    return fig, pd.DataFrame(data)


def fig4_4(judgments: pd.DataFrame, cfg: dict, pair: tuple[str, str] = ("deer", "airplane")):
    """Thesis Fig. 4.4: the "category boundary" of one class pair, deer/airplane: λ_h against λ_f, both as the
    share of deer, with the identity line (red), the mean per λ_f and the fitted appendix-C logistic τ.

    Rule: the pair named in the thesis; every chapter-4 judgment of that pair, put in deer's orientation
    (a stimulus shown as (airplane, deer) gives (1 − λ_f, 1 − λ_h))."""
    ch4 = first_collection_judgments(judgments)
    a, b = CLASSES.index(pair[0]), CLASSES.index(pair[1])
    rows = ch4[((ch4["c1"] == a) & (ch4["c2"] == b)) | ((ch4["c1"] == b) & (ch4["c2"] == a))].copy()
    if rows.empty:
        raise ValueError(f"no chapter-4 judgment of the pair {pair}")
    flip = rows["c1"].to_numpy() != a
    rows["x"] = np.where(flip, 1 - rows["lambda_f"], rows["lambda_f"])
    rows["y"] = np.where(flip, 1 - rows["lambda_h"], rows["lambda_h"])
    fit = fit_class_pair_taus(rows).iloc[0]
    grid = np.linspace(0, 1, 101)
    curve = tau(grid, fit["k"], fit["x0"])
    if int(fit["class_i"]) != a:  # τ is fitted in the orientation of the lower class index
        curve = 1 - tau(1 - grid, fit["k"], fit["x0"])
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(rows["x"], rows["y"], s=14, alpha=0.5, color=BLUE, label="judgment")
    means = rows.groupby("x")["y"].mean()
    ax.plot(means.index, means.values, "o-", color="black", label="mean λ_h")
    ax.plot(grid, curve, "--", color="gray", label=f"logistic τ (k={fit['k']:.2g}, λ0={fit['x0']:.2f})")
    ax.plot([0, 1], [0, 1], color=RED, label="λ_h = λ_f")
    ax.set(xlabel=f"generating λ_f (share of {pair[0]})", ylabel=f"human-inferred λ_h (share of {pair[0]})",
           xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), title=f"{pair[0]} / {pair[1]} category boundary")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    data = rows[["stimulus", "subject", "lambda_f", "lambda_h", "x", "y"]].rename(
        columns={"x": f"lambda_f_{pair[0]}", "y": f"lambda_h_{pair[0]}"})
    return fig, data


def fig4_5(judgments: pd.DataFrame, cifar10h_probs: np.ndarray, cfg: dict):
    """Thesis Fig. 4.5: confidence in the inferred λ by the CIFAR-10H entropy of the two mixed endpoints:
    both H <= low_entropy_max ("both low"), both H >= endpoint_high_entropy_min ("both high"), else "mixed"
    (thresholds from `summaries` in the config). Bars: mean with 95% CI; no selection."""
    ch4 = first_collection_judgments(judgments)
    s = cfg["summaries"]
    ch4["endpoint_entropy"] = endpoint_entropy_groups(ch4, cifar10h_probs, s["low_entropy_max"],
                                                      s["endpoint_high_entropy_min"])
    order = ["both low", "mixed", "both high"]
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.barplot(data=ch4, x="endpoint_entropy", y="confidence", order=order, color=BLUE, errorbar=("ci", 95),
                seed=0, ax=ax)
    counts = ch4["endpoint_entropy"].value_counts()
    ax.set_xticks(range(len(order)), [f"{g}\n(n = {counts.get(g, 0)})" for g in order])
    ax.set(xlabel=f"endpoint CIFAR-10H entropy (low <= {s['low_entropy_max']}, high >= "
                  f"{s['endpoint_high_entropy_min']} nats)", ylabel="confidence ω", ylim=(0, 1),
           title="Confidence by endpoint entropy")
    fig.tight_layout()
    return fig, ch4[["stimulus", "subject", "lambda_f", "confidence", "endpoint_entropy"]]


def fig5_1(soft: pd.DataFrame, stimuli: dict, cfg: dict, pair: tuple[str, str] = ("horse", "ship")):
    """Thesis Fig. 5.1: a λ = 0.5 horse/ship mixed image with the humans' soft label (red; mean T2-Clamp label
    of its responses) and the label mixup would use (blue).

    Rule: among the soft-labelled stimuli with λ_f = 0.5 and endpoints {horse, ship}, the one whose mean human
    label puts the most mass outside the two endpoints (none such: all λ_f = 0.5 stimuli)."""
    table = judgment_table(soft)
    labels = variety_labels(soft, "t2_clamp", cfg, "hmix_redistribution_path")
    frame = pd.DataFrame(labels, columns=range(NUM_CLASSES))
    frame["stimulus"] = table["stimulus"].to_numpy()
    means = frame.groupby("stimulus").mean()
    keys = table.drop_duplicates("stimulus").set_index("stimulus").loc[means.index]
    want = {CLASSES.index(pair[0]), CLASSES.index(pair[1])}
    half = np.isclose(keys["lambda_f"].to_numpy(float), 0.5)
    match = half & np.array([{a, b} == want for a, b in zip(keys["c1"], keys["c2"])])
    candidates = np.flatnonzero(match if match.any() else half)
    if not len(candidates):
        raise ValueError("no soft-labelled stimulus with lambda_f = 0.5")
    m = means.to_numpy(float)
    rows = np.arange(len(m))
    outside = 1 - m[rows, keys["c1"].to_numpy()] - m[rows, keys["c2"].to_numpy()]
    pick = int(candidates[np.argmax(outside[candidates])])
    name = means.index[pick]
    key = keys.iloc[pick]
    human = m[pick]
    mix = np.asarray(mixup_label(int(key["c1"]), int(key["c2"]), float(key["lambda_f"])), dtype=float)
    names = [str(n) for n in stimuli["names"]]
    pixels = stimuli["images"][names.index(name)]
    plt, sns = _pyplot()
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(7.2, 3.2), gridspec_kw={"width_ratios": [0.8, 2]})
    n_resp = int((table["stimulus"] == name).sum())
    _show_image(ax_img, pixels, f"{name}\n(λ_f = {key['lambda_f']:g}; {n_resp} human labels)")
    labels_drawn = {"human (mean)": human, "mixup": mix}
    _label_bars(ax_bar, labels_drawn, {"human (mean)": RED, "mixup": BLUE})
    fig.tight_layout()
    data = pd.DataFrame(_long_labels({"stimulus": name, "n_responses": n_resp}, labels_drawn))
    return fig, data


# --------------------------------------------------------------------------------------------------------------
# Subcommand
# --------------------------------------------------------------------------------------------------------------
#: Figure name -> the files of the data stage it reads (under --data-dir). Snakemake declares the same inputs.
FIGURE_INPUTS = {
    "fig3_2": ["cifar10s_responses.csv", "cifar10_test.npz"],
    "fig3_3": ["cifar10s_responses.csv", "cifar10h.npz", "cifar10_test.npz"],
    "fig3_4": ["cifar10s_responses.csv", "cifar10h.npz", "cifar10_test.npz"],
    "figB_1": ["cifar10s_responses.csv", "cifar10h.npz", "cifar10_test.npz"],
    "figB_2": ["cifar10s_responses.csv", "cifar10h.npz", "cifar10_test.npz"],
    "fig4_2": ["hmix_judgments.csv"],
    "fig4_3": ["hmix_judgments.csv", "hmix_stimuli.npz"],
    "fig4_4": ["hmix_judgments.csv"],
    "fig4_5": ["hmix_judgments.csv", "cifar10h.npz"],
    "fig5_1": ["hmix_soft_responses.csv", "hmix_stimuli.npz"],
}

#: Figure name -> the config keys it reads, and no others (the command sees only these; the workflow declares
#: them as the rule's params, so that editing one of them redraws the figure).
_LABEL_SETTINGS = ("labels.gamma", "labels.redistribution_path")
FIGURE_SETTINGS = {
    "fig3_2": _LABEL_SETTINGS,
    "fig3_3": _LABEL_SETTINGS,
    "fig3_4": _LABEL_SETTINGS,
    "figB_1": _LABEL_SETTINGS,
    "figB_2": _LABEL_SETTINGS,
    "fig4_2": (),
    "fig4_3": (),
    "fig4_4": (),
    "fig4_5": ("summaries.low_entropy_max", "summaries.endpoint_high_entropy_min"),
    "fig5_1": ("labels.gamma", "labels.hmix_redistribution_path"),
}

#: Figure name -> the thesis part it belongs to (the category of the Snakemake report).
FIGURE_CHAPTER = {name: "Appendix B" if name.startswith("figB") else f"Chapter {name[3]}" for name in FIGURE_INPUTS}


def build_figure(name: str, data_dir: Path, cfg: dict):
    """(figure, data) of figure `name` from the data-stage files in `data_dir`."""
    if name in ("fig3_3", "fig3_4", "figB_1", "figB_2"):
        return globals()[name](load_label_set(data_dir, cfg), cfg)
    if name == "fig3_2":
        return fig3_2(read_responses(data_dir / "cifar10s_responses.csv"),
                      np.load(data_dir / "cifar10_test.npz")["images"], cfg)
    if name in ("fig4_2", "fig4_4"):
        return globals()[name](load_judgments(data_dir / "hmix_judgments.csv"), cfg)
    if name == "fig4_3":
        return fig4_3(load_judgments(data_dir / "hmix_judgments.csv"), dict(np.load(data_dir / "hmix_stimuli.npz")), cfg)
    if name == "fig4_5":
        return fig4_5(load_judgments(data_dir / "hmix_judgments.csv"), np.load(data_dir / "cifar10h.npz")["probs"], cfg)
    if name == "fig5_1":
        stimuli = dict(np.load(data_dir / "hmix_stimuli.npz"))
        return fig5_1(read_responses(data_dir / "hmix_soft_responses.csv"), stimuli, cfg)
    raise ValueError(f"unknown figure {name!r}; expected one of {sorted(FIGURE_INPUTS)}")


def write_figure_and_data(fig, data: pd.DataFrame, out_png: str | Path) -> list[Path]:
    """Write `<stem>.png`, `<stem>.pdf` and `<stem>.csv` (the plotted data), each through a temp file + rename."""
    plt, _ = _pyplot()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf"):
        final = out_png.with_suffix(suffix)
        data_io.save_figure(fig, final, dpi=200)
        written.append(final)
    data_io.write_csv(out_png.with_suffix(".csv"), data, float_format="%.6g")
    written.append(out_png.with_suffix(".csv"))
    plt.close(fig)
    return written


def _cmd_figure(args: argparse.Namespace) -> int:
    cfg = select(config_from_args(args), FIGURE_SETTINGS[args.name])
    data_dir = Path(args.data_dir)
    missing = [f for f in FIGURE_INPUTS[args.name] if not (data_dir / f).exists()]
    if missing:
        raise UserError(f"figure {args.name}: missing input(s) {', '.join(str(data_dir / f) for f in missing)}")
    fig, data = build_figure(args.name, data_dir, cfg)
    for path in write_figure_and_data(fig, data, args.out):
        print(f"wrote {path}")
    return 0


def register_figures(sub) -> None:
    """Add `figure NAME` to the `softlabels` parser."""
    p = sub.add_parser("figure", help="draw a figure that needs no training (thesis figs 3.2-3.4, 4.2-4.5, 5.1, B.1-B.2)")
    p.add_argument("name", choices=sorted(FIGURE_INPUTS), help="figure name")
    p.add_argument("--data-dir", default="results/data", help="folder of the data-stage files (default results/data)")
    p.add_argument("--out", required=True, help="output .png; .pdf and .csv (plotted data) are written beside it")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_figure)
