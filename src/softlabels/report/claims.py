"""The thesis' findings as claims, each with a verdict at the scale that was run (docs/protocol.md#claims-and-verdicts).

A claim (a line of softlabels/report/claims.tsv, or of config `claims.file`) compares two cells of one table or
figure: row B against row A on one evaluation set and metric, and says which way the thesis found B to lie
(`expect: lower | higher`). Differences are oriented so that a positive value is the thesis' direction:

    d = A − B   when expect is lower,        d = B − A   when expect is higher.

Where both cells were run on the same (model, seed) pairs, d is taken per pair and summarised by its mean and the
t-interval mean ± t_{(1+level)/2, n−1} · s / √n over the n pairs. Where they were not, Welch's unpaired interval
is used (`paired` false). The verdict (`verdict`) follows from the mean and the interval:

    reproduced       mean > 0 and the interval excludes 0
    same direction   mean ≥ 0, interval includes 0
    other direction  mean < 0, interval includes 0
    opposite         the interval lies below 0
    not run          the claim's table is not in the target, or a cell has no runs at this scale

With fewer than 3 pairs the verdict says so; with 1 pair there is no interval (only the sign counts).

The thesis side comes from thesis_values.csv only: both cells, their oriented difference, and whether the thesis'
own intervals (value ± ci) overlap (`unknown` where a value or its ci is missing).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data.io import save_figure, write_csv, write_text
from softlabels.experiments.runs import result_group, result_set, runs_of
from softlabels.report.html import html_page, markdown_table, markdown_to_html
from softlabels.report.tables import (
    approximate_notes,
    metrics_paths,
    provenance_markdown,
    read_metrics,
    row_provenance,
)
from softlabels.report.thesis import load_thesis_values, thesis_value
from softlabels.vocabulary import EVAL_SETS, metric_title, metrics_on

#: Columns of results/tables/<target>.csv, in order.
CLAIM_COLUMNS = (
    "claim", "section", "chapter", "text", "table", "row_a", "row_b", "eval_set", "metric", "expect",
    "thesis_a", "thesis_b", "thesis_diff", "thesis_overlap", "a_mean", "b_mean", "diff", "ci_low", "ci_high",
    "seeds", "n_pairs", "paired", "verdict", "scale", "precision", "device", "inputs", "approximate_inputs",
)  # fmt: skip
#: Verdicts, in the order the Markdown counts them.
VERDICTS = ("reproduced", "same direction", "other direction", "opposite", "not run")
#: Fewest pairs for which the verdict is stated without a caveat.
MIN_RELIABLE_PAIRS = 3
#: Chapters in display order and their titles.
CHAPTER_TITLES = {"3": "Chapter 3", "4": "Chapter 4", "5": "Chapter 5", "B": "Appendix B", "C": "Appendix C"}
ORIENTATION = ("Orientation: `diff` and `thesis_diff` are positive in the thesis' direction: A − B where the thesis "
               "reports B lower than A, B − A where it reports B higher.")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Which claims and tables a target covers
# ----------------------------------------------------------------------------------------------------------
def chapter_of(section: str) -> str:
    """The thesis part of a section: its first character ("3.3.2" -> "3", "B.4" -> "B", "C" -> "C")."""
    return str(section)[0]


def target_tables(config: Mapping, target: str) -> list[str]:
    """Tables/figures whose runs the claims target `target` reads: its list, or for `all` every table or figure
    a claim names (in claim order)."""
    tables = config["claims"]["targets"][target]
    if tables == "all":
        return list(dict.fromkeys(c["table"] for c in config["claims"]["list"]))
    return list(tables)


def claim_setting_keys(config: Mapping, target: str) -> list[str]:
    """The config keys the claims command reads for `target`: the claims list, the target and the tables of the
    target (their rows decide which runs form each cell)."""
    tables = target_tables(config, target)
    return ["claims.list", f"claims.targets.{target}", *(f"{result_group(n)}.{n}" for n in tables),
            *(f"protocols.{p}.models" for p in config["protocols"]), *(f"protocols.{p}.seeds" for p in config["protocols"]),
            *(f"protocols.{p}.seeds_extra" for p in config["protocols"]), "single_model", "summaries.ci_level"]  # fmt: skip


def claims_setting_keys(config: Mapping) -> list[str]:
    """The config keys the claims rule reads over all its targets: the whole `claims` block and, for every
    target, the keys of `claim_setting_keys` (so editing a claim reruns only the claims outputs)."""
    keys = {"claims": None}
    for target in config.get("claims", {}).get("targets", {}):
        keys.update(dict.fromkeys(k for k in claim_setting_keys(config, target) if not k.startswith("claims")))
    return list(keys)


# ----------------------------------------------------------------------------------------------------------
# Cells and their comparison
# ----------------------------------------------------------------------------------------------------------
def cell_values(runs: Sequence[Mapping], row: str, eval_set: str, metric: str, wanted=None) -> dict:
    """{(model, seed): value} of the runs of `row` on one eval set and metric; `wanted` (a set of
    (scheme, model, seed)) keeps only the runs of the claim's table."""
    out = {}
    for run in runs:
        if run["scheme"] != row or (wanted is not None and (run["scheme"], run["model"], int(run["seed"])) not in wanted):
            continue
        value = (run.get(eval_set) or {}).get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[(run["model"], int(run["seed"]))] = float(value)
    return out


def oriented(a: float, b: float, expect: str) -> float:
    """The difference that is positive in the thesis' direction: a − b for `lower`, b − a for `higher`."""
    return a - b if expect == "lower" else b - a


def paired_interval(d: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the paired differences d: mean ± t_{(1+level)/2, n−1} · s / √n, s the sample
    standard deviation; (mean, NaN, NaN) for n = 1."""
    d = np.asarray(d, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


def welch_interval(a: Sequence[float], b: Sequence[float], expect: str, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the oriented difference of two unpaired samples: Welch's interval
    diff ± t_{(1+level)/2, ν} · √(s_a²/n_a + s_b²/n_b), ν by Welch–Satterthwaite; no interval when either sample
    has a single value."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    mean = oriented(float(a.mean()), float(b.mean()), expect)
    if len(a) < 2 or len(b) < 2:
        return mean, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return mean, mean, mean
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf((1 + level) / 2, dof) * se)
    return mean, mean - half, mean + half


def compare_cells(a: Mapping, b: Mapping, expect: str, level: float = 0.95) -> dict:
    """Compare the cells {(model, seed): value} A and B: paired over their common (model, seed) when both have
    exactly the same runs, else Welch's unpaired interval. Returns diff, ci_low, ci_high, n_pairs, paired."""
    if set(a) == set(b):
        keys = sorted(a)
        d = [oriented(a[k], b[k], expect) for k in keys]
        mean, low, high = paired_interval(d, level)
        return {"diff": mean, "ci_low": low, "ci_high": high, "n_pairs": len(keys), "paired": True}
    mean, low, high = welch_interval(list(a.values()), list(b.values()), expect, level)
    return {"diff": mean, "ci_low": low, "ci_high": high, "n_pairs": min(len(a), len(b)), "paired": False}


def verdict(diff: float, low: float, high: float, n: int) -> str:
    """The verdict of an oriented difference with its interval [low, high] over n pairs (module docstring);
    with no interval (n = 1) the sign alone decides between same and other direction."""
    if n == 0 or diff is None or math.isnan(diff):
        return "not run"
    if math.isnan(low) or math.isnan(high):
        word = "same direction" if diff >= 0 else "other direction"
        return f"{word} ({n} seed{'s' if n != 1 else ''}, no interval)"
    if low > 0:
        word = "reproduced"
    elif high < 0:
        word = "opposite"
    else:
        word = "same direction" if diff >= 0 else "other direction"
    if n < MIN_RELIABLE_PAIRS:
        word += f" ({n} seeds: too few for a reliable interval)"
    return word


def thesis_side(claim: Mapping, thesis: pd.DataFrame) -> dict:
    """thesis_a, thesis_b, their oriented difference and whether the thesis' intervals value ± ci overlap
    (yes / no; unknown where a value or ci is missing), all from thesis_values.csv."""
    a, ca = thesis_value(claim["table"], claim["eval_set"], claim["row_a"], claim["metric"], thesis)
    b, cb = thesis_value(claim["table"], claim["eval_set"], claim["row_b"], claim["metric"], thesis)
    diff = oriented(a, b, claim["expect"]) if not (math.isnan(a) or math.isnan(b)) else math.nan
    if any(math.isnan(x) for x in (a, b, ca, cb)):
        overlap = "unknown"
    else:
        overlap = "yes" if max(a - ca, b - cb) <= min(a + ca, b + cb) else "no"
    return {"thesis_a": a, "thesis_b": b, "thesis_diff": diff, "thesis_overlap": overlap}


def evaluate_claim(claim: Mapping, config: Mapping, runs: Sequence[Mapping], tables: Sequence[str],
                   thesis: pd.DataFrame, level: float = 0.95) -> dict:
    """One output row: the claim, its thesis side, and the reproduced comparison over the runs of its table
    (`not run` when the table is not in `tables` or a cell lacks any of its runs)."""
    row = {"claim": claim["id"], "chapter": chapter_of(claim["section"]),
           **{k: claim[k] for k in ("section", "text", "table", "row_a", "row_b", "eval_set", "metric", "expect")},
           **thesis_side(claim, thesis)}  # fmt: skip
    empty = {"a_mean": math.nan, "b_mean": math.nan, "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
             "seeds": "", "n_pairs": 0, "paired": False, "verdict": "not run"}  # fmt: skip
    if claim["table"] not in tables:
        return {**row, **empty}
    spec = result_set(config, claim["table"])
    cells, used = [], []
    for key in ("row_a", "row_b"):
        wanted = set(runs_of(config, claim[key], spec["all_models"], spec.get("seeds", "main")))
        values = cell_values(runs, claim[key], claim["eval_set"], claim["metric"], wanted)
        if len(values) < len(wanted):
            return {**row, **empty}
        cells.append(values)
        used += [r for r in runs if (r["scheme"], r["model"], int(r["seed"])) in wanted]
    a, b = cells
    result = compare_cells(a, b, claim["expect"], level)
    seeds = sorted({s for _, s in a} | {s for _, s in b})
    provenance = row_provenance(used)
    return {**row, "a_mean": float(np.mean(list(a.values()))), "b_mean": float(np.mean(list(b.values()))),
            **result, "seeds": "|".join(map(str, seeds)),
            "verdict": verdict(result["diff"], result["ci_low"], result["ci_high"], result["n_pairs"]),
            **{k: provenance[k] for k in ("precision", "device", "inputs", "approximate_inputs")}}  # fmt: skip


def build_claims(config: Mapping, target: str, runs: Sequence[Mapping], thesis: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per configured claim (columns `CLAIM_COLUMNS`), evaluated for the claims target `target`."""
    thesis = load_thesis_values() if thesis is None else thesis
    tables = target_tables(config, target)
    level = config.get("summaries", {}).get("ci_level", 0.95)
    rows = [evaluate_claim(c, config, runs, tables, thesis, level) for c in config["claims"]["list"]]
    frame = pd.DataFrame.from_records(rows)
    for column in CLAIM_COLUMNS:  # a column only the claims that ran have (provenance): none ran
        if column not in frame:
            frame[column] = ""
    frame["scale"] = config.get("scale", "")
    for column in ("precision", "device", "inputs", "approximate_inputs"):
        frame[column] = frame[column].fillna("").replace("", "none run")
    return frame[list(CLAIM_COLUMNS)]


# ----------------------------------------------------------------------------------------------------------
# Markdown, HTML, figure
# ----------------------------------------------------------------------------------------------------------
def verdict_word(text: str) -> str:
    """The verdict without its caveat ("reproduced (2 seeds: ...)" -> "reproduced")."""
    return str(text).split(" (")[0]


def verdict_counts(frame: pd.DataFrame) -> dict[str, int]:
    """{verdict: number of claims} over `VERDICTS`."""
    words = frame["verdict"].map(verdict_word)
    return {v: int((words == v).sum()) for v in VERDICTS}


def _num(value, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _claim_cells(r: Mapping) -> dict[str, str]:
    """One claim as a row of the claims table."""
    cells = (f"{r['table']}: `{r['row_a']}` → `{r['row_b']}`, {EVAL_SETS.get(r['eval_set'], r['eval_set'])}, "
             f"{metric_title(r['metric'])}, B {r['expect']}")  # fmt: skip
    interval = f" [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if _num(r["ci_low"]) else ""
    return {
        "Claim": f"`{r['claim']}`", "Section": str(r["section"]), "Finding": str(r["text"]), "Cells (A → B)": cells,
        "Thesis A / B": f"{_num(r['thesis_a'])} / {_num(r['thesis_b'])}" if _num(r["thesis_a"]) else "",
        "Thesis diff": _num(r["thesis_diff"]), "Thesis CIs overlap": str(r["thesis_overlap"]),
        "Diff (95% CI)": _num(r["diff"]) + interval,
        "Pairs": f"{int(r['n_pairs'])}{'' if r['paired'] else ' (unpaired)'}" if r["n_pairs"] else "",
        "Verdict": str(r["verdict"]),
    }  # fmt: skip


def claims_markdown(frame: pd.DataFrame, target: str, notes: Mapping[str, str] | None = None) -> str:
    """Header (scale, target, verdict counts, orientation rule, approximate-inputs banner), then one table per
    chapter: claim, cells, thesis difference, reproduced difference with its 95% interval, verdict."""
    counts = verdict_counts(frame)
    lines = [f"## Claims of the thesis: target `{target}`", "",
             f"Scale `{'|'.join(dict.fromkeys(frame['scale']))}`; {len(frame)} claims. "
             "Verdicts: " + "; ".join(f"{v} {n}" for v, n in counts.items()) + ".", "",
             ORIENTATION + " Reproduced: mean of the per-(model, seed) differences with its 95% t-interval "
             "(Welch's unpaired interval where the cells' runs differ). Verdicts: reproduced (interval above 0), "
             "same direction (mean ≥ 0, interval includes 0), other direction (mean < 0, interval includes 0), "
             "opposite (interval below 0), not run (table not in this target, or runs missing).", ""]  # fmt: skip
    ran = frame[frame["verdict"] != "not run"]
    if not ran.empty:
        lines += provenance_markdown(ran.assign(corruption_source="", eval_set=ran["eval_set"].where(
            ran["eval_set"] != "corruption", "")), notes)
    groups = [(title, frame[frame["thesis_overlap"] == key]) for key, title in OVERLAP_GROUPS]
    groups = [(title, block) for title, block in groups if not block.empty]
    lines += ["### Verdicts by the thesis' own intervals", "",
              "A claim is *strong* when the thesis' 95% intervals of its two cells do not overlap, *weak* when they "
              "do: a weak claim is one the thesis itself could not separate from noise.", "",
              markdown_table(overlap_counts(frame)), ""]
    for title, block in groups:
        counts = verdict_counts(block)
        lines += [f"### {title}", "", f"{len(block)} claim{'' if len(block) == 1 else 's'}. Verdicts: "
                  + "; ".join(f"{v} {n}" for v, n in counts.items()) + ".", ""]
        for chapter, part in block.groupby("chapter", sort=False):
            lines += [f"#### {CHAPTER_TITLES.get(chapter, chapter)}", ""]
            lines += [markdown_table(pd.DataFrame([_claim_cells(r) for _, r in part.iterrows()])), ""]
    return "\n".join(lines)


#: The claims page's groups: the value of `thesis_overlap` and the group's heading.
OVERLAP_GROUPS = (("no", "Strong claims: the thesis' intervals do not overlap"),
                  ("yes", "Weak claims: the thesis' intervals overlap"),
                  ("unknown", "Claims without thesis intervals"))


def overlap_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Verdict counts per chapter and overlap group (strong, weak, no intervals), with each group's total."""
    names = {"no": "strong", "yes": "weak", "unknown": "no intervals"}
    rows = []
    for key, _ in OVERLAP_GROUPS:
        block = frame[frame["thesis_overlap"] == key]
        if block.empty:
            continue
        parts = [(CHAPTER_TITLES.get(c, c), part) for c, part in block.groupby("chapter", sort=False)]
        for chapter, part in parts + [("all", block)]:
            rows.append({"Claims": names[key], "Part": chapter, "n": len(part), **verdict_counts(part)})
    return pd.DataFrame(rows)


def plot_claims(frame: pd.DataFrame, png: str | Path) -> None:
    """Forest plot: one row per claim grouped by chapter, one panel column per metric; the reproduced oriented
    difference with its 95% interval (black) and the thesis difference (red diamond), a vertical line at 0.
    `not run` claims are listed without a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics_on("*", compared=True) if m in set(frame["metric"])] or ["ce"]
    labels = [f"{CHAPTER_TITLES.get(c, c)} · {i}" for c, i in zip(frame["chapter"], frame["claim"])]
    y = np.arange(len(frame))[::-1]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics) + 4, 0.22 * len(frame) + 1.5),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], metrics):
        ax.axvline(0, color="grey", lw=0.8)
        chapters = list(frame["chapter"])
        for i in range(1, len(chapters)):  # a line between chapters
            if chapters[i] != chapters[i - 1]:
                ax.axhline(y[i] + 0.5, color="lightgrey", lw=0.8)
        for yi, (_, r) in zip(y, frame.iterrows()):
            if r["metric"] != metric:
                continue
            if r["verdict"] != "not run" and not math.isnan(r["diff"]):
                low, high = r["ci_low"], r["ci_high"]
                if not (math.isnan(low) or math.isnan(high)):
                    ax.plot([low, high], [yi, yi], color="black", lw=1)
                ax.plot(r["diff"], yi, "o", color="black", ms=3)
            if not math.isnan(r["thesis_diff"]):
                ax.plot(r["thesis_diff"], yi, "D", color="tab:red", ms=3)
        ax.set_title(f"{metric_title(metric)} (positive = thesis' direction)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels, fontsize=6)
    axes[0][0].set_ylim(-1, len(frame))
    axes[0][-1].plot([], [], "o-", color="black", label="reproduced (95% CI)")
    axes[0][-1].plot([], [], "D", color="tab:red", label="thesis")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def _cmd_claims(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    targets = config.get("claims", {}).get("targets", {})
    if args.name not in targets:
        raise UserError(f"claims target '{args.name}' is not defined under 'claims.targets' "
                        f"(known: {', '.join(sorted(targets))})")
    try:
        runs = read_metrics(metrics_paths(args)) if args.metrics else []
    except ValueError as exc:
        raise UserError(str(exc)) from None
    frame = build_claims(config, args.name, runs)
    out_csv = Path(args.out_csv or f"results/tables/{args.name}.csv")
    markdown = claims_markdown(frame, args.name, approximate_notes(runs))
    write_csv(out_csv, frame)
    write_text(Path(args.out_md) if args.out_md else out_csv.with_suffix(".md"), markdown)
    write_text(Path(args.out_html) if args.out_html else out_csv.with_suffix(".html"),
               html_page(args.name, markdown_to_html(markdown)))
    plot_claims(frame, Path(args.out_png or f"results/figures/{args.name}.png"))
    return 0


def register_claims(sub) -> None:
    """The `claims` subcommand (called by softlabels.report.cli.register)."""
    p = sub.add_parser("claims", help="verdicts on the thesis' findings (config `claims`) from run metrics",
                       description="Evaluate every claim (softlabels/report/claims.tsv or config claims.file) for one "
                       "claims target: CSV, "
                       "Markdown, HTML and a forest plot.")  # fmt: skip
    p.add_argument("name", help="claims target under config `claims.targets` (e.g. claims)")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics.json files of the target's runs")
    p.add_argument("--out-csv", default=None)
    p.add_argument("--out-md", default=None)
    p.add_argument("--out-html", default=None)
    p.add_argument("--out-png", default=None, help="forest plot (default results/figures/<name>.png)")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_claims)
