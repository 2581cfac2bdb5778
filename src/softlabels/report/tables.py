"""Result tables built from training runs (generic over `tables:`; the figures from runs are in
`softlabels.report.run_figures`).

A table (config `tables.<name>`) lists rows (schemes) and evaluation sets. Each cell is the mean over runs and
the half-width of its 95% confidence interval from the t-distribution,

    mean = (1/n) Σ_i v_i,   ci = t_{0.975, n-1} · s / √n,   s² = Σ_i (v_i − mean)² / (n − 1),

over the runs of the row (every model of the protocol when `all_models`, else `single_model`; the protocol's
seeds, or `seeds_extra` for `seeds: extra`), shown beside the thesis value and CI
(`softlabels.report.thesis.load_thesis_values`). Each row also records the settings that produced it
(scale, models, seeds, epochs, γ, redistribution path, augmentation), taken from the runs' own specs.

The per-label elicitation time (thesis §3.3.4-3.3.5) is `annotation_time.cifar10h_s` for CIFAR-10H labels and
bits × `annotation_time.per_bit_s` for a CIFAR-10S variety (top class + its probability = 2 bits, the second
class + probability 2 more, the impossible set 1 more: T1U 12.8 s, T1C 19.2 s, T2U 25.6 s, T2C 32 s). The
annotation cost of a training label pool is M · t_per (figure 3.5, with t_per = cifar10h_s or cifar10s_s).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data.io import write_text
from softlabels.experiments.runs import result_group, result_set
from softlabels.numerics import mean_ci
from softlabels.report.html import csv_to_html_page, html_page, markdown_table, markdown_to_html
from softlabels.report.thesis import load_thesis_values, thesis_value
from softlabels.vocabulary import (
    AUGMENTS,
    ELICITATION_TIME,
    EVAL_SETS,
    FORMER_METRIC_NAMES,
    LABEL_SOURCES,
    METRICS,
    OBJECTIVES,
    metric_title,
)

#: Columns of results/tables/<name>.csv, in order.
TABLE_COLUMNS = (
    "table", "eval_set", "row", "label", "metric", "mean", "ci", "n_runs", "thesis_value", "thesis_ci",
    "time_per_label_s", "thesis_time_s", "scale", "models", "seeds", "epochs", "gamma", "redistribution_path",
    "augmentation", "variety", "M", "aggregate", "n_soft", "own_responses", "precision", "device",
    "corruption_source", "inputs", "approximate_inputs", "diverged",
)  # fmt: skip
#: What a table writes for a provenance field that its runs' metrics.json do not record (never a guess).
UNRECORDED = "unrecorded"


def table_setting_keys(config: Mapping, name: str) -> list[str]:
    """The config keys the table (or run figure) `name` reads: its own entry, the schemes of its rows and the
    annotation times. Everything else it shows comes from the runs' metrics.json (their spec and provenance)."""
    rows = dict.fromkeys(result_set(config, name)["rows"])
    return [f"{result_group(name)}.{name}", *(f"schemes.{row}" for row in rows), "annotation_time"]


# ----------------------------------------------------------------------------------------------------------
# Reading runs
# ----------------------------------------------------------------------------------------------------------
def read_metrics(paths: Iterable[str | Path]) -> list[dict]:
    """The runs' metrics.json files, with the metric names of earlier releases renamed
    (`vocabulary.FORMER_METRIC_NAMES`: a run built before keeps its results)."""
    runs = []
    for path in paths:
        try:
            runs.append(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        for key in ("scheme", "model", "seed"):
            if key not in runs[-1]:
                raise ValueError(f"{path}: metrics file lacks key '{key}'")
        for (eval_set, former), name in FORMER_METRIC_NAMES.items():
            block = runs[-1].get(eval_set)
            if isinstance(block, dict) and former in block and name not in block:
                block[name] = block.pop(former)
    return runs


def long_metrics(runs: Sequence[Mapping], eval_sets: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (run, eval set, numeric metric): scheme, model, seed, eval_set, metric, value."""
    records = []
    for run in runs:
        for eval_set, block in run.items():
            if not isinstance(block, Mapping) or eval_set in ("spec", "train"):
                continue
            if eval_sets is not None and eval_set not in eval_sets:
                continue
            for metric, value in block.items():
                if metric == "n" or isinstance(value, (Mapping, list, str, bool)) or value is None:
                    continue
                records.append(
                    {"scheme": run["scheme"], "model": run["model"], "seed": int(run["seed"]), "eval_set": eval_set,
                     "metric": metric, "value": float(value)}
                )  # fmt: skip
    return pd.DataFrame.from_records(records, columns=["scheme", "model", "seed", "eval_set", "metric", "value"])


def _metric_rank(metric: str) -> tuple:
    """Metrics in `vocabulary.METRICS` order; others found in metrics.json follow alphabetically."""
    order = list(METRICS)
    return (order.index(metric), "") if metric in order else (len(order), metric)


def _joined(values: Iterable) -> str:
    unique = []
    for v in values:
        text = "" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v))
        if text not in unique:
            unique.append(text)
    return "|".join(unique)


# ----------------------------------------------------------------------------------------------------------
# Rows: labels, elicitation time, settings
# ----------------------------------------------------------------------------------------------------------
def row_label(scheme: Mapping) -> str:
    """Human-readable name of a scheme, derived from its spec."""
    if scheme.get("protocol") in ("chapter4", "chapter5"):
        return mixing_row_label(scheme)
    kind = scheme["labels"]
    base = LABEL_SOURCES[kind].title if kind in LABEL_SOURCES else kind
    if kind == "cifar10s":
        top, redist = scheme.get("variety", "t2_clamp").split("_", 1)
        base = f"{base} ({top.upper()}, {redist.capitalize()})"
    details = []
    if kind in ("cifar10h", "cifar10s"):
        details.append("agg" if scheme.get("aggregate", "none") == "mean" else "sep")
        details.append(f"M={scheme.get('M', 'all')}")
    if "n_soft" in scheme:
        details.append(f"N'={scheme['n_soft']}")
    return f"{base} [{', '.join(details)}]" if details else base


def elicitation_bits(variety: str) -> int:
    """Bits of human knowledge in a CIFAR-10S variety: top class + prob (2), second class + prob (2), the
    impossible set (1; used by Clamp and Semantic redistribution). T2-Clamp = 5."""
    top, redist = variety.split("_", 1)
    return 2 + (2 if top == "t2" else 0) + (1 if redist in ("clamp", "semantic") else 0)


def time_per_label(scheme: Mapping, annotation_time: Mapping) -> float:
    """Seconds one annotator spends on one label of this scheme (NaN for non-human labels)."""
    if scheme["labels"] == "cifar10h":
        return float(annotation_time["cifar10h_s"])
    if scheme["labels"] == "cifar10s":
        return elicitation_bits(scheme.get("variety", "t2_clamp")) * float(annotation_time["per_bit_s"])
    return float("nan")


def is_diverged(run: Mapping) -> bool:
    """A run whose training loss became non-finite: its metrics.json says `diverged: true` (and the epoch)
    and holds no metric values (`softlabels.train.cli.train_runs`)."""
    return bool(run.get("diverged"))


def diverged_text(runs: Sequence[Mapping]) -> str:
    """The diverged runs of a row, e.g. 'resnet34a seed 3 (epoch 12)', comma-joined; '' when none."""
    return ", ".join(f"{r['model']} seed {int(r['seed'])} (epoch {r.get('diverged_epoch', '?')})"
                     for r in runs if is_diverged(r))


def row_settings(runs: Sequence[Mapping]) -> dict:
    """The settings behind a row, read from its runs' specs ('|'-joined when runs differ)."""
    specs = [run.get("spec", {}) for run in runs]
    return {
        "scale": _joined(run.get("scale") for run in runs),
        "models": _joined(sorted({run["model"] for run in runs})),
        "seeds": _joined(sorted({int(run["seed"]) for run in runs})),
        "epochs": _joined(s.get("protocol", {}).get("epochs") for s in specs),
        "gamma": _joined(s.get("labels", {}).get("gamma") for s in specs),
        "redistribution_path": _joined(s.get("labels", {}).get("redistribution_path") for s in specs),
        "augmentation": _joined(s.get("protocol", {}).get("augmentation") for s in specs),
        "own_responses": _joined(s.get("own_responses", "") for s in specs),  # own labels in place of CIFAR-10S
    }


def _recorded(run: Mapping, field: str):
    """A run's provenance field: `provenance.<field>`, else `train.<field>` (precision, device); None if absent."""
    provenance = run.get("provenance")
    if isinstance(provenance, Mapping) and provenance.get(field) is not None:
        return provenance[field]
    train = run.get("train")
    if field in ("precision", "device") and isinstance(train, Mapping):
        return train.get(field)
    return None


def _input_text(key: str, record: Mapping) -> str:
    origin = record.get("origin") or UNRECORDED
    return f"{key} ({origin}{', APPROXIMATION' if record.get('approximate') else ''})"


def row_provenance(runs: Sequence[Mapping]) -> dict:
    """How the runs of a row were made, from their metrics.json: training precision, device, corruption source,
    the inputs (`key (origin[, APPROXIMATION])`) and the inputs the data source marks as approximations ("none";
    `UNRECORDED` where any run does not record it). Runs that differ are '|'-joined."""
    out = {}
    for field in ("precision", "device", "corruption_source"):
        values = [_recorded(run, field) for run in runs]
        out[field] = UNRECORDED if not values or any(v is None for v in values) else _joined(values)
    inputs = [(_recorded(run, "inputs")) for run in runs]
    if not inputs or any(not isinstance(i, Mapping) for i in inputs):
        out["inputs"] = out["approximate_inputs"] = UNRECORDED
        return out
    out["inputs"] = _joined("; ".join(_input_text(k, i[k]) for k in sorted(i)) for i in inputs)
    approximate = sorted({k for i in inputs for k, record in i.items() if record.get("approximate")})
    out["approximate_inputs"] = ", ".join(approximate) or "none"
    return out


def approximate_notes(runs: Sequence[Mapping]) -> dict[str, str]:
    """{input key: the data source's note} of every input a run marks as approximate."""
    notes = {}
    for run in runs:
        inputs = _recorded(run, "inputs")
        if isinstance(inputs, Mapping):
            for key, record in inputs.items():
                if isinstance(record, Mapping) and record.get("approximate"):
                    notes.setdefault(key, str(record.get("note") or record.get("file") or ""))
    return notes


def load_thesis() -> pd.DataFrame | None:
    """The thesis values (`softlabels.report.thesis`)."""
    return load_thesis_values()


def mixing_row_label(scheme: Mapping) -> str:
    """Name of a chapter-4 (augmenting-set labels) or chapter-5 / appendix-C (mixing objective) scheme."""
    if scheme["protocol"] == "chapter4":
        return AUGMENTS.get(scheme.get("augment"), str(scheme.get("augment")))
    objective = scheme.get("objective", "ce")
    name = OBJECTIVES[objective].title if objective in OBJECTIVES else objective
    if scheme.get("target_mix") == "tau":
        name = f"τ mixing{' + Ent-WC' if objective == 'entwc' else ''}"
    details = [f"{scheme.get('endpoints', 'hard')} endpoints"]
    if "alpha" in scheme:
        details.append(f"α={scheme['alpha']:g}")
    if "kappa" in scheme:
        details.append(f"κ={scheme['kappa']:g}")
    return f"{name} [{', '.join(details)}]"


def _thesis_lookup(thesis: pd.DataFrame | None, table: str, eval_set: str, row: str, metric: str) -> tuple[float, float]:
    """`thesis_value` of the cell; (NaN, NaN) for a table built without thesis values."""
    return (float("nan"), float("nan")) if thesis is None else thesis_value(table, eval_set, row, metric, thesis)


# ----------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------
def build_table(name: str, config: Mapping, runs: Sequence[Mapping], thesis: pd.DataFrame | None = None) -> pd.DataFrame:
    """The long table `name`: one line per (eval set, row, metric) with our mean ± CI beside the thesis'."""
    table = result_set(config, name)
    rows, eval_sets = table["rows"], table["eval_sets"]
    data = long_metrics([r for r in runs if r["scheme"] in rows], eval_sets)
    metrics = sorted(set(data["metric"]), key=_metric_rank)
    annotation_time = config.get("annotation_time", {})
    out = []
    for eval_set in eval_sets:
        # only the metrics this eval set has (corruption: its mean CE), all of them while no run has any
        present = set(data.loc[data["eval_set"] == eval_set, "metric"])
        set_metrics = [m for m in metrics if m in present] or metrics
        for row in rows:
            scheme = config["schemes"][row]
            row_runs = [r for r in runs if r["scheme"] == row]
            settings = {**row_settings(row_runs), **row_provenance(row_runs), "diverged": diverged_text(row_runs)}
            time_s = time_per_label(scheme, annotation_time) if annotation_time else float("nan")
            thesis_time, _ = _thesis_lookup(thesis, name, "", row, ELICITATION_TIME)
            for metric in set_metrics:
                cell = data[(data["eval_set"] == eval_set) & (data["scheme"] == row) & (data["metric"] == metric)]
                mean, ci = mean_ci(cell["value"].tolist())
                t_value, t_ci = _thesis_lookup(thesis, name, eval_set, row, metric)
                out.append(
                    {"table": name, "eval_set": eval_set, "row": row, "label": row_label(scheme), "metric": metric,
                     "mean": mean, "ci": ci, "n_runs": int(len(cell)), "thesis_value": t_value, "thesis_ci": t_ci,
                     "time_per_label_s": time_s, "thesis_time_s": thesis_time, **settings,
                     "variety": scheme.get("variety", ""), "M": scheme.get("M", ""),
                     "aggregate": scheme.get("aggregate", ""), "n_soft": scheme.get("n_soft", "")}
                )  # fmt: skip
    return pd.DataFrame.from_records(out, columns=list(TABLE_COLUMNS))


def _fmt(value: float, ci: float = float("nan"), digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:.{digits}f}"
    if ci is not None and not (isinstance(ci, float) and math.isnan(ci)):
        text += f" ± {ci:.{digits}f}"
    return text


def provenance_markdown(frame: pd.DataFrame, notes: Mapping[str, str] | None = None) -> list[str]:
    """Lines saying how the table's runs were made (precision, device, corruption source, inputs) and, in plain
    words, whether any input was an approximation of the original data."""
    corruption = f"; corruption source `{_joined(frame['corruption_source'])}`" if "corruption" in set(
        frame["eval_set"]) else ""
    lines = [f"Runs: training precision `{_joined(frame['precision'])}`; device `{_joined(frame['device'])}`"
             f"{corruption}. Inputs: {_joined(frame['inputs'])}.", ""]
    approximate = [a for a in dict.fromkeys(frame["approximate_inputs"]) if a not in ("none", UNRECORDED)]
    if approximate:
        keys = sorted({k.strip() for a in approximate for k in a.split(",")})
        detail = "; ".join(f"{k}: {notes[k]}" if notes and notes.get(k) else k for k in keys)
        lines += [f"**Approximate inputs: these numbers were computed from an approximation of the original data "
                  f"({detail}). They can differ from the thesis for that reason alone.**", ""]
    elif UNRECORDED in set(frame["approximate_inputs"]):
        lines += ["**Input provenance unrecorded: the runs do not say whether their inputs were exact.**", ""]
    return lines


def _eval_set_block(block: pd.DataFrame, metrics: list[str], show_time: bool) -> pd.DataFrame:
    """One eval set of a long table as rows × ('ours', 'thesis') metric columns; a "(thesis)" column only for a
    metric the thesis reports in this block (it gives no accuracies)."""
    with_thesis = {m: bool(block.loc[block["metric"] == m, "thesis_value"].notna().any()) for m in metrics}
    records = []
    for row, cells in block.groupby("row", sort=False):
        by_metric, first = cells.set_index("metric"), cells.iloc[0]
        record = {"Labels": f"{first['label']} (`{row}`)"}
        if show_time:
            record["Time/label (s)"] = _fmt(first["time_per_label_s"], digits=1)
            record["Thesis time (s)"] = _fmt(first["thesis_time_s"], digits=1)
        diverged = first.get("diverged") or ""
        for m in metrics:
            c, title = by_metric.loc[m], metric_title(m)
            record[title] = "diverged" if diverged and int(c["n_runs"]) == 0 else _fmt(c["mean"], c["ci"])
            if with_thesis[m]:
                record[f"{title} (thesis)"] = _fmt(c["thesis_value"], c["thesis_ci"])
        record["runs"] = f"{int(first['n_runs'])}" + (f" (diverged: {diverged})" if diverged else "")
        records.append(record)
    return pd.DataFrame.from_records(records)


def table_markdown(frame: pd.DataFrame, title: str = "", notes: Mapping[str, str] | None = None) -> str:
    """Readable form of a long table: per eval set, rows × metrics as 'ours' and 'thesis' columns, after the
    settings and provenance of its runs (`notes`: {input key: note} of the approximate inputs)."""
    lines = []
    if title:
        lines += [f"## {title}", ""]
    if frame.empty:
        return "\n".join(lines + ["(no rows)", ""])
    first = frame.iloc[0]
    lines.append(
        f"Scale `{_joined(frame['scale'])}`; models {_joined(frame['models'])}; seeds {_joined(frame['seeds'])}; "
        f"epochs {_joined(frame['epochs'])}; γ = {_joined(frame['gamma'])}; redistribution "
        f"`{_joined(frame['redistribution_path'])}`; augmentation `{_joined(frame['augmentation'])}`. "
        f"Cells: mean ± 95% CI (t) over runs; thesis value beside it."
    )
    own = _joined(v for v in frame.get("own_responses", pd.Series(dtype=str)).fillna("") if v)
    if own:
        lines.append(f"Soft labels: own responses from `{own}` in place of CIFAR-10S (config key own_responses).")
    lines.append("")
    lines += provenance_markdown(frame, notes)
    show_time = frame["time_per_label_s"].notna().any() and frame["thesis_time_s"].notna().any()
    for eval_set, block in frame.groupby("eval_set", sort=False):
        metrics = list(dict.fromkeys(block["metric"]))  # eval sets may differ (CIFAR-10-C: corruption CE only)
        lines += [f"**{EVAL_SETS.get(eval_set, eval_set)}** (table {first['table']})", ""]
        lines += [markdown_table(_eval_set_block(block, metrics, show_time)), ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Files and command line
# ----------------------------------------------------------------------------------------------------------
def metrics_paths(args) -> list[str]:
    """The --metrics files of a command, each of which must exist (a UserError names the missing ones)."""
    paths = list(args.metrics or [])
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UserError(f"metrics file(s) not found: {', '.join(missing[:5])}")
    return paths


def _cmd_table(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.name not in config.get("tables", {}):
        raise UserError(f"table '{args.name}' is not defined under 'tables' (known: {', '.join(sorted(config['tables']))})")
    try:
        runs = read_metrics(metrics_paths(args))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    frame = build_table(args.name, config, runs, load_thesis())
    out_csv = Path(args.out_csv or f"results/tables/{args.name}.csv")
    out_md = Path(args.out_md) if args.out_md else out_csv.with_suffix(".md")
    out_html = Path(args.out_html) if args.out_html else out_csv.with_suffix(".html")
    markdown = table_markdown(frame, title=args.title or args.name, notes=approximate_notes(runs))
    write_text(out_csv, frame.to_csv(index=False))
    write_text(out_md, markdown)
    write_text(out_html, html_page(args.name, markdown_to_html(markdown)))
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    parts = [f"# {args.title}", ""] if args.title else []
    for path in args.tables:
        parts.append(Path(path).read_text().rstrip() + "\n")
    markdown = "\n".join(parts)
    write_text(args.out, markdown)
    if args.out_html:
        write_text(args.out_html, html_page(args.title or Path(args.out).stem, markdown_to_html(markdown)))
    return 0


def _cmd_csv_html(args: argparse.Namespace) -> int:
    write_text(args.out, csv_to_html_page(args.csv, args.title or Path(args.csv).stem))
    return 0


def register_tables(sub) -> None:
    """The `table`, `collect-tables` and `csv-html` subcommands (called by softlabels.report.cli.register)."""
    p = sub.add_parser("table", help="build a result table (CSV + Markdown) from run metrics",
                       description="Aggregate metrics.json files into results/tables/<name>.csv and .md.")  # fmt: skip
    p.add_argument("name", help="table name under config `tables` (e.g. table3_1)")
    p.add_argument("--metrics", nargs="+", required=True, help="metrics.json files of the runs")
    p.add_argument("--out-csv", default=None)
    p.add_argument("--out-md", default=None)
    p.add_argument("--out-html", default=None, help="HTML rendering for the report (default: beside the CSV)")
    p.add_argument("--title", default=None)
    add_config_arguments(p)
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("collect-tables", help="concatenate table Markdown files into one document")
    p.add_argument("tables", nargs="+", help="Markdown files, in order")
    p.add_argument("--out", required=True)
    p.add_argument("--out-html", default=None, help="also write an HTML rendering (for the report)")
    p.add_argument("--title", default="")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("csv-html", help="render a CSV table as a self-contained HTML page (for the report)")
    p.add_argument("csv")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_csv_html)
