"""Hyperparameter sweeps on a validation split (thesis §3.3, §5.2, appendix B.2).

A sweep (`sweeps.grids.<name>` of the configuration) varies one dotted config key over a list of values; a sweep
point is the run spec of the sweep's scheme (`softlabels.train.runs.run_spec`, with the configured values of
every other setting) computed from the configuration with that key set to the value, plus a `validation` block.
The run trains as the scheme's runs do and is also evaluated on the validation split (`validation.npz`, made by
`softlabels validation-split` from `sweeps.validation`: part of the CIFAR-10 training set, or the split images no
run trains on; `softlabels.train.run_data.validation_eval_set`: its accuracy and CE). Selection: the value with
the highest mean validation accuracy (`criterion: accuracy`) or the lowest mean validation CE (`criterion: ce`)
over the seeds; ties go to the value listed first. The selection is written beside the table
(`selected.json`), and with `sweeps.apply` the runs of the tables and claims use it
(`softlabels.train.selections`).

Runs live under `results/sweeps/{sweep}/{value}/{model}/seed{seed}/`."""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.config import ConfigError, setting
from softlabels.data.cifar10s import read_responses
from softlabels.data.io import save_npz, write_csv, write_json, write_text
from softlabels.numerics import mean_ci
from softlabels.report.html import html_page, markdown_to_html
from softlabels.report.tables import approximate_notes, row_provenance
from softlabels.report.thesis import load_thesis_values
from softlabels.train import run_data as R
from softlabels.train.runs import run_spec
from softlabels.train.selections import active_grids, apply_keys

#: How the sweep tables name each validation source (config `sweeps.validation.source`).
VALIDATION_SOURCES = {"cifar10_train": "part of the CIFAR-10 training set",
                      "unused_split": "training-split images no run trains on"}
#: Metrics of the validation set, with the direction that is better.
CRITERIA = {"accuracy": max, "ce": min}


# ----------------------------------------------------------------------------------------------------------
# Sweep points
# ----------------------------------------------------------------------------------------------------------
def grid(config: Mapping, sweep: str) -> Mapping:
    grids = active_grids(config)
    if sweep not in grids:
        raise ConfigError(f"key 'sweeps.grids.{sweep}' is not set (known: {', '.join(sorted(grids)) or 'none'})")
    return grids[sweep]


def value_name(value) -> str:
    """Folder name of a swept value (`str` of the configured number: 0.001, 10, 0.0)."""
    return str(value)


def sweep_model(config: Mapping, sweep: str) -> str:
    """The sweep's model: `model`, or `single_model` of its scheme's protocol when null."""
    g = grid(config, sweep)
    scheme = config["schemes"].get(g["scheme"])
    if scheme is None:
        raise ConfigError(f"key 'sweeps.grids.{sweep}.scheme': scheme '{g['scheme']}' is not defined under 'schemes'")
    return g.get("model") or config["single_model"][scheme["protocol"]]


def sweep_points(config: Mapping, sweep: str) -> list[tuple[str, str, str, int]]:
    """(sweep, value name, model, seed) of every run of a sweep."""
    g, model = grid(config, sweep), sweep_model(config, sweep)
    return [(sweep, value_name(v), model, int(s)) for v in g["values"] for s in config["sweeps"]["seeds"]]


def sweep_dir(sweep: str, value: str, model: str, seed: int) -> str:
    return f"results/sweeps/{sweep}/{value}/{model}/seed{seed}"


def _with_value(config: Mapping, key: str, value, where: str) -> dict:
    """A copy of the configuration with the dotted `key` (which must be set already) replaced by `value`."""
    setting(config, key)  # ConfigError naming the key when it is absent
    out = copy.deepcopy(dict(config))
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[part]
    if isinstance(node[parts[-1]], (dict, list)):
        raise ConfigError(f"key '{where}': '{key}' is not a single setting")
    node[parts[-1]] = value
    return out


def point_spec(config: Mapping, sweep: str, value: str, seed: int) -> dict:
    """The spec of one sweep run: `run_spec` of the sweep's scheme under the configuration with the swept key
    set to `value`, plus `sweep` {name, key, value} and `validation` (the `sweeps.validation` block)."""
    g = grid(config, sweep)
    matches = [v for v in g["values"] if value_name(v) == str(value)]
    if not matches:
        raise ConfigError(f"key 'sweeps.grids.{sweep}.values': {value} is not one of {g['values']}")
    model = sweep_model(config, sweep)
    changed = _with_value(config, g["key"], matches[0], f"sweeps.grids.{sweep}.key")
    try:
        spec = run_spec(changed, g["scheme"], model, int(seed), selections=False)
    except ValueError as exc:
        raise ConfigError(f"sweeps.grids.{sweep}: {exc}") from None
    other = _with_value(config, g["key"], _other(matches[0]), sweep)
    if spec == run_spec(other, g["scheme"], model, int(seed), selections=False):
        raise ConfigError(f"key 'sweeps.grids.{sweep}.key': {g['key']} does not change the runs of scheme "
                          f"'{g['scheme']}' with model {model}")
    spec["sweep"] = {"name": sweep, "key": g["key"], "value": matches[0]}
    spec["validation"] = copy.deepcopy(dict(config["sweeps"]["validation"]))
    return spec


def _other(value):
    """A number different from `value` (to check that the swept key reaches the run)."""
    return value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ----------------------------------------------------------------------------------------------------------
# Table
# ----------------------------------------------------------------------------------------------------------
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
    """What `softlabels.train.selections` reads: the value the sweep selected and how it was chosen."""
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


# ----------------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------------
def _cmd_make_sweep_spec(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.spec is not None:  # the workflow's point spec, with this run's device
        try:
            spec = json.loads(args.spec)
        except ValueError as exc:
            raise UserError(f"--spec is not JSON ({exc})") from None
        write_json(args.out, {**spec, "device": config["device"]})
        return 0
    if args.sweep is None or args.value is None or args.seed is None:
        raise UserError("give --spec, or --sweep, --value and --seed")
    write_json(args.out, point_spec(config, args.sweep, args.value, args.seed))
    return 0


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


#: The settings `validation-split` reads besides `sweeps.validation` when the source is `unused_split`: what
#: decides which split images the runs train on.
UNUSED_SPLIT_KEYS = ("protocols.chapter3.hard_image_limit", "protocols.chapter4.hard_image_limit",
                     "protocols.chapter4.augmenting_pairs", "protocols.chapter5.hard_image_limit",
                     "protocols.chapter5.augmenting_pairs", "own_responses")


def validation_settings(config: Mapping) -> list[str]:
    """The settings the validation split depends on (its rule declares them)."""
    source = config["sweeps"]["validation"].get("source", "cifar10_train")
    return ["sweeps.validation", *(UNUSED_SPLIT_KEYS if source == "unused_split" else ())]


def make_validation_split(config: Mapping, data_dir: str | Path, train_npz: str | Path | None = None) -> dict:
    """The arrays of `validation.npz` (images, labels, indices, source) for `sweeps.validation`."""
    block = config["sweeps"]["validation"]
    source = block.get("source", "cifar10_train")
    if source == "cifar10_train":
        split = R.authors_validation(train_npz or Path(data_dir) / "cifar10_train.npz", block)
    else:
        data = R.RunData.from_dir(data_dir)
        protocols = {name: {"hard_image_limit": setting(config, f"protocols.{name}.hard_image_limit", None),
                            "augmenting_pairs": setting(config, f"protocols.{name}.augmenting_pairs", None)}
                     for name in ("chapter3", "chapter4", "chapter5")}
        own = None
        if config.get("own_responses"):
            own = read_responses(Path(data_dir) / "own_responses.csv", key="image")["image"].unique()
        split = R.unused_split_validation(data, protocols, block, own)
    return {**split, "source": source}


def _cmd_validation_split(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        arrays = make_validation_split(config, args.data_dir, args.train_npz)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    save_npz(args.out, arrays)
    print(f"validation split ({arrays['source']}): {len(arrays['labels'])} images, "
          f"{np.bincount(arrays['labels'], minlength=10).tolist()} per class -> {args.out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("validation-split", help="the validation split of the hyperparameter sweeps",
                              description="Images and labels of the sweeps' validation split (config "
                              "sweeps.validation): part of the CIFAR-10 training set (source cifar10_train) or the "
                              "training-split images no run trains on (unused_split).")
    p.add_argument("--data-dir", default="results/data", help="parsed inputs (default: results/data)")
    p.add_argument("--train-npz", default=None, help="cifar10_train.npz (source cifar10_train; default: in DATA_DIR)")
    p.add_argument("--out", required=True)
    add_config_arguments(p)
    p.set_defaults(func=_cmd_validation_split)

    p = subparsers.add_parser("make-sweep-spec", help="write the spec.json of one hyperparameter-sweep run",
                              description="The scheme's run spec with the swept key set to VALUE, plus the "
                              "validation split (config 'sweeps').")
    p.add_argument("--sweep", default=None, help="name under sweeps.grids")
    p.add_argument("--value", default=None, help="one of the sweep's values, as written in the config")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--spec", default=None, metavar="JSON",
                   help="the point's spec without the device (the workflow's channel); the configured device is added")
    p.add_argument("--out", required=True)
    add_config_arguments(p)
    p.set_defaults(func=_cmd_make_sweep_spec)

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
