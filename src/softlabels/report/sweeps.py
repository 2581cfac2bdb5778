"""The table of one hyperparameter sweep and the value it selects (thesis §3.3, §5.2, appendix B.2).

Each sweep run (`softlabels.experiments.sweeps`) is evaluated on the validation split (its accuracy and CE).
Selection: the value with the highest mean validation accuracy (`criterion: accuracy`) or the lowest mean
validation CE (`criterion: ce`) over the seeds; ties go to the value listed first. The selection is written
beside the table (`selected.json`), and with `sweeps.apply` the runs of the tables and claims use it
(`softlabels.experiments.selections`).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.config import ConfigError
from softlabels.data.io import write_csv, write_json, write_text
from softlabels.experiments.selections import apply_keys
from softlabels.experiments.sweeps import grid, value_name
from softlabels.numerics import mean_ci
from softlabels.report.html import html_page, markdown_to_html
from softlabels.report.tables import approximate_notes, row_provenance
from softlabels.report.thesis import load_thesis_values


#: How the sweep tables name each validation source (config `sweeps.validation.source`).
VALIDATION_SOURCES = {"cifar10_train": "part of the CIFAR-10 training set",
                      "unused_split": "training-split images no run trains on"}
#: Metrics of the validation set, with the direction that is better.
CRITERIA = {"accuracy": max, "ce": min}


def thesis_choice(sweep: str, values=None) -> float:
    """The value the thesis selected (thesis_values.csv: table sweep_<name>, metric selected_value); NaN if none."""
    values = load_thesis_values() if values is None else values
    rows = values[(values["table"] == f"sweep_{sweep}") & (values["metric"] == "selected_value")]
    return float(rows["value"].iloc[0]) if len(rows) else float("nan")


def select(means: Mapping[str, float], criterion: str) -> str:
    """The value name with the best mean under `criterion` (accuracy: highest, ce: lowest); the first listed
    wins a tie; values without a finite mean are not candidates."""
    if criterion not in CRITERIA:
        raise ConfigError(f"key 'sweeps.criterion': {criterion!r} is not one of {', '.join(CRITERIA)}")
    finite = [(v, m) for v, m in means.items() if m is not None and math.isfinite(m)]
    if not finite:
        raise ValueError("no value of the sweep has a finite validation metric")
    best = CRITERIA[criterion](m for _, m in finite)
    return next(v for v, m in finite if m == best)


def build_sweep_table(config: Mapping, sweep: str, runs: Sequence[Mapping], thesis=None):
    """One row per swept value: mean ± 95 % CI over seeds of validation accuracy and CE, the selected value
    (`sweeps.criterion`), the thesis' choice, and how the runs were made."""
    g = grid(config, sweep)
    level = config.get("summaries", {}).get("ci_level", 0.95)
    criterion = config["sweeps"]["criterion"]
    by_value: dict[str, list] = {value_name(v): [] for v in g["values"]}
    for run in runs:
        point = run["spec"].get("sweep") or {}
        if point.get("name") != sweep:
            raise ValueError(f"metrics of {run.get('scheme')}/{run.get('model')}/seed{run.get('seed')} "
                             f"are not of sweep {sweep}")
        name = value_name(point["value"])
        if name not in by_value:
            raise ValueError(f"sweep {sweep}: value {name} is not in sweeps.grids.{sweep}.values")
        by_value[name].append(run)
    rows = []
    for name, value_runs in by_value.items():
        if not value_runs:
            raise ValueError(f"sweep {sweep}: no run of value {name}")
        row = {"sweep": sweep, "key": g["key"], "value": name, "n_runs": len(value_runs)}
        for metric in ("accuracy", "ce"):
            m, ci = mean_ci([r["validation"][metric] for r in value_runs], level)
            row[f"val_{metric}_mean"], row[f"val_{metric}_ci"] = m, ci
        first = value_runs[0]
        row.update({
            "n_validation": first["validation"]["n"],
            "validation_source": first["spec"].get("validation", {}).get("source", "cifar10_train"),
            "scheme": first["scheme"],
            "model": first["model"],
            "seeds": " ".join(str(r["seed"]) for r in sorted(value_runs, key=lambda r: r["seed"])),
            "scale": first.get("scale"),
            "epochs": first["train"]["epochs"],
            **row_provenance(value_runs),
        })
        rows.append(row)
    frame = pd.DataFrame(rows)
    chosen = select(dict(zip(frame["value"], frame[f"val_{criterion}_mean"])), criterion)
    thesis_value = thesis_choice(sweep, thesis)
    frame.insert(4, "selected", frame["value"] == chosen)
    frame.insert(5, "thesis_choice", [
        (not math.isnan(thesis_value)) and math.isclose(float(v), thesis_value) for v in frame["value"]])
    frame["criterion"] = criterion
    frame["thesis_value"] = thesis_value
    notes = approximate_notes(runs)
    frame["approximate_notes"] = "; ".join(f"{k}: {v}" for k, v in sorted(notes.items())) or "none"
    return frame


def selection_record(config: Mapping, sweep: str, frame) -> dict:
    """What `softlabels.experiments.selections` reads: the value the sweep selected and how it was chosen."""
    g = grid(config, sweep)
    chosen = frame.loc[frame["selected"], "value"].iloc[0]
    value = next(v for v in g["values"] if value_name(v) == chosen)
    first = frame.iloc[0]
    return {"sweep": sweep, "key": g["key"], "apply_to": apply_keys(g), "value": value,
            "criterion": config["sweeps"]["criterion"], "values": list(g["values"]), "scheme": g["scheme"],
            "model": first["model"], "seeds": first["seeds"], "validation_source": first["validation_source"],
            "n_validation": int(first["n_validation"])}


def sweep_markdown(frame) -> str:
    def fmt(m, ci):
        return "n/a" if not math.isfinite(m) else (f"{m:.4f}" if not math.isfinite(ci) else f"{m:.4f} ± {ci:.4f}")

    first = frame.iloc[0]
    thesis = first["thesis_value"]
    lines = [
        f"# Sweep {first['sweep']}: {first['key']}",
        "",
        f"Scheme {first['scheme']}, model {first['model']}; validation split: "
        f"{VALIDATION_SOURCES[first['validation_source']]} ({first['n_validation']} images); mean ± 95 % CI over "
        f"seeds. Selected by validation "
        f"{first['criterion']} ({'highest' if first['criterion'] == 'accuracy' else 'lowest'} mean): "
        f"**{frame.loc[frame['selected'], 'value'].iloc[0]}**; the thesis chose "
        f"{'n/a' if not math.isfinite(thesis) else f'{thesis:g}'}.",
        "",
        "| value | validation accuracy | validation CE | runs | selected | thesis' choice |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in frame.iterrows():
        lines.append(f"| {r['value']} | {fmt(r['val_accuracy_mean'], r['val_accuracy_ci'])} | "
                     f"{fmt(r['val_ce_mean'], r['val_ce_ci'])} | {r['n_runs']} | {'**selected**' if r['selected'] else ''} | "
                     f"{'thesis' if r['thesis_choice'] else ''} |")
    lines += ["", f"Settings: scale {first['scale']}, {first['epochs']} epochs, seeds {first['seeds']}, "
              f"precision {first['precision']}, device {first['device']}. Inputs: {first['inputs']}.", ""]
    if first["approximate_notes"] != "none":
        lines += [f"**Approximate inputs: these numbers were computed from an approximation of the original data "
                  f"({first['approximate_notes']}).**", ""]
    elif first["approximate_inputs"] != "none":
        lines += ["**Input provenance unrecorded: the runs do not say whether their inputs were exact.**", ""]
    return "\n".join(lines)


def _cmd_sweep_table(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    runs = []
    for path in args.metrics:
        try:
            runs.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable metrics.json ({exc})") from None
    try:
        frame = build_sweep_table(config, args.sweep, runs)
    except (KeyError, ValueError) as exc:
        raise UserError(f"sweep {args.sweep}: {exc}") from None
    markdown = sweep_markdown(frame)
    if args.out_selection:
        write_json(args.out_selection, selection_record(config, args.sweep, frame))
    write_csv(args.out_csv, frame)
    write_text(args.out_md, markdown)
    if args.out_html:
        write_text(args.out_html, html_page(f"Sweep {args.sweep}", markdown_to_html(markdown)))
    return 0


def register_sweep_table(subparsers) -> None:
    """The `sweep-table` subcommand (called by softlabels.report.cli.register)."""
    p = subparsers.add_parser("sweep-table", help="table of one hyperparameter sweep, the selected value marked",
                              description="Validation accuracy and CE per swept value (mean ± 95 %% CI over "
                              "seeds), the value selected by sweeps.criterion, the thesis' choice beside it.")
    p.add_argument("--sweep", required=True)
    p.add_argument("--metrics", nargs="+", required=True, help="metrics.json of every run of the sweep")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-html", default=None, help="the .md layout as a self-contained HTML page")
    p.add_argument("--out-selection", default=None,
                   help="JSON of the selected value, which the runs use when config sweeps.apply is true")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_sweep_table)
