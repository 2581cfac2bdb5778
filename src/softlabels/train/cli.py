"""Subcommands of the train stage.

`softlabels make-spec` writes the spec of one run (scheme, model, seed) from the effective configuration;
`softlabels train --spec spec.json --out-dir DIR` trains that one run and evaluates it;
`softlabels train-group --run SCHEME/MODEL/SEED ...` trains a group of runs of one model and protocol as one
fused computation (`softlabels.train.fit_group`) and evaluates each member. Per run, under its folder:
`spec.json` (its effective settings), `metrics.json` (atomically, last), `train_log.csv` (one row per epoch)
and the resumable `checkpoint.pt`, which is discarded when the spec it was made under differs from this one.
An alias (`--alias A=C`: a scheme whose effective spec equals run C's but for its name) gets C's metrics
under its own name, spec and `alias_of: C`. `train-group` trains only the members that are not current: a run
is finished iff its metrics.json records its `run_key` (`softlabels.experiments.runs.run_key`: its spec and the sha256
of the --inputs files).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data.io import atomic_outputs, write_json
from softlabels.train import sweeps
from softlabels.experiments.runs import file_digest, run_is_current, run_key
from softlabels.train.run_data import RunData
from softlabels.train.runs import build_run_sets
from softlabels.experiments.runs import responses_file, run_dir, run_spec, spec_digest
from softlabels.experiments.selections import read_selection, resolve_selected

#: metrics.json layout version.
METRICS_FORMAT = 1


class TrainLog:
    """Receives the trainer's log messages and prints them (the Snakemake log)."""

    def __init__(self, stream=None):
        self.stream = stream  # None: whatever sys.stdout is when a message arrives

    def __call__(self, message: Any) -> None:
        print(message, file=self.stream or sys.stdout, flush=True)


def write_train_log(path: str | Path, rows: Sequence[Mapping]) -> None:
    """The per-epoch records of a run as CSV (atomically)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_outputs(path) as (tmp,), open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or ["epoch"])
        writer.writeheader()
        writer.writerows(rows)


def device_of(spec: Mapping):
    """The torch device of a run (`device` of its spec); UserError when CUDA is asked for but absent."""
    from softlabels.train.trainer import resolve_device

    try:
        return resolve_device(spec.get("device", "auto"))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def load_spec(path: str | Path) -> dict:
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"spec file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"spec file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    missing = [k for k in ("scheme", "model", "seed", "scheme_spec", "protocol_name", "protocol", "labels", "evaluation") if k not in spec]
    if missing:
        raise UserError(f"spec file {path} lacks key(s): {', '.join(missing)}")
    return spec


def load_provenance(path: str | None) -> dict | None:
    """The data stage's record of each input, {source key: {file, origin, official_url, sha256, approximate,
    note}} (the `sources` of `results/data/provenance.json`); None only when the caller passes None
    (`--provenance none`) explicitly. A missing or unreadable file is a UserError."""
    if path is None:
        return None
    try:
        record = json.loads(Path(path).read_text())
        if not isinstance(record, dict) or not isinstance(record.get("sources"), dict):
            raise UserError(f"provenance file {path}: no 'sources' mapping (written by `softlabels provenance`)")
        return record["sources"]
    except FileNotFoundError:
        raise UserError(f"provenance file not found: {path} (written by the data stage; "
                        "pass --provenance none to train without it)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"provenance file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None


def _prepare_checkpoint(out_dir: Path, spec: Mapping) -> Path:
    """The checkpoint path; an existing checkpoint made under a different spec is removed (no stale resume)."""
    checkpoint = out_dir / "checkpoint.pt"
    stamp = out_dir / "checkpoint.spec.sha256"
    digest = spec_digest(spec)
    if checkpoint.exists() and (not stamp.exists() or stamp.read_text().strip() != digest):
        checkpoint.unlink()
    stamp.write_text(digest + "\n")
    return checkpoint


def _plain(value: Any) -> Any:
    """A JSON-ready number: numpy / torch scalars become int or float; other values pass through."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    return value


def evaluate_sets(model, sets, spec: Mapping, device) -> dict:
    from softlabels.evaluate import evaluate_model  # torch

    device = str(device)
    results = {}
    for name, es in sets.eval_sets.items():
        if es.evaluate is not None:
            metrics = es.evaluate(model, device)
        else:
            metrics = evaluate_model(
                model,
                es.images,
                es.targets,
                spec["evaluation"],
                hard_labels=es.hard_labels,
                fgsm_targets=es.fgsm_targets,
                bin_size=es.bin_size,
                device=device,
            )
        metrics = {k: _plain(v) for k, v in metrics.items()}
        metrics.setdefault("n", int(len(es.images)))
        results[name] = metrics
    return results


def provenance_block(spec: Mapping, device, precision: str, inputs: Mapping | None) -> dict:
    """How the run was made: precision, device, the corruption source of chapter-5 runs, and the data
    stage's record of every input file (the `sources` of results/data/provenance.json)."""
    corruption = spec["evaluation"].get("corruption") if spec["protocol_name"] == "chapter5" else None
    return {
        "precision": precision,
        "device": str(device),
        "corruption_source": corruption.get("source") if corruption else None,
        "inputs": inputs,
    }


def run_identity(spec: Mapping) -> dict:
    """The keys every metrics.json starts with: format, scheme, model, seed, scale and the run's spec."""
    return {"format": METRICS_FORMAT, "scheme": spec["scheme"], "model": spec["model"], "seed": int(spec["seed"]),
            "scale": spec.get("scale"), "spec": dict(spec)}


def diverged_metrics(spec: Mapping, error: Exception, device, precision: str, provenance: Mapping | None) -> dict:
    """metrics.json of a run whose training loss became non-finite: `diverged: true`, the 1-indexed epoch
    (`diverged_epoch`) and the message, no metric values (tables show the cell as diverged)."""
    return {
        **run_identity(spec),
        "diverged": True,
        "diverged_epoch": getattr(error, "epoch", None),
        "message": str(error),
        "train": {"epochs": int(spec["protocol"]["epochs"]), "device": str(device), "precision": precision},
        "provenance": provenance_block(spec, device, precision, provenance),
    }


def _check_one_model_and_protocol(runs: Sequence[tuple[Mapping, Path]]) -> None:
    first = runs[0][0]
    for spec, _ in runs:
        if (spec["protocol_name"], spec["model"], spec["protocol"]) != (first["protocol_name"], first["model"], first["protocol"]):
            raise ValueError(f"a group trains one model under one protocol: {spec['scheme']}/{spec['model']} "
                             f"differs from {first['scheme']}/{first['model']}")


def _group_precision(first: Mapping, device: str, size: int) -> str:
    """`protocols.<p>.precision` resolved for this device and group size (a refusal names the key)."""
    from softlabels.train.trainer import resolve_device, resolve_precision

    try:
        return resolve_precision(resolve_device(device), first["protocol"].get("precision", "fp32"), size)
    except ValueError as exc:
        raise UserError(str(exc).replace("<protocol>", first["protocol_name"])) from None


def _group_members(runs: Sequence[tuple[Mapping, Path]], data_dir, glove, log: TrainLog) -> tuple[list, list]:
    """One trainer `Member` and its run sets per run; runs reading the same responses file share one RunData."""
    from softlabels.train.trainer import Member

    data: dict = {}
    members, all_sets = [], []
    for spec, out_dir in runs:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        responses = responses_file(spec)
        if responses not in data:
            data[responses] = RunData.from_dir(data_dir, glove, responses=responses)
        sets = build_run_sets(spec, data[responses])
        name = f"{spec['scheme']}/{spec['model']}/seed{spec['seed']}"
        log(f"{name} training set: {json.dumps({k: v for k, v in sets.info.items() if not isinstance(v, list)})}")
        members.append(Member(sets.train_images, sets.train_pools, int(spec["seed"]), sets.objective,
                              _prepare_checkpoint(out_dir, spec), name=name))
        all_sets.append(sets)
    return members, all_sets


def _finished_metrics(spec, sets, results: Mapping, summary: Mapping, seconds: float, device, precision: str,
                      threads: int, provenance) -> dict:
    """metrics.json of a run that finished: its identity, evaluation results, how it trained, provenance."""
    return {
        **run_identity(spec),
        **results,
        "train": {
            "epochs": int(spec["protocol"]["epochs"]),
            "seconds": summary.get("seconds", round(seconds, 3)),
            "images_per_s": summary.get("images_per_s"),
            "group_size": summary.get("group_size", 1),
            "group_images_per_s": summary.get("group_images_per_s"),
            "device": str(device),
            "precision": precision,
            "threads": threads,
            **sets.info,
        },
        "provenance": provenance_block(spec, device, precision, provenance),
    }


def train_runs(runs: Sequence[tuple[Mapping, Path]], data_dir: str | Path, glove: str | None, threads: int,
               provenance: Mapping | None, log: TrainLog | None = None,
               cudnn_benchmark: bool = False, keys: Sequence[str] | None = None) -> tuple[list[dict], list[str]]:
    """Train the (spec, out_dir) runs, all of one model and protocol, as one fused group; evaluate each and
    write its train_log.csv and metrics.json (with the run's `run_key` from `keys`, one per run, when
    given). A member that diverged gets a `diverged_metrics` record and the others finish. Returns (metrics of
    the finished runs, messages of the diverged runs)."""
    import torch

    from softlabels.train.trainer import Diverged, fit_group

    if threads > 0:
        torch.set_num_threads(threads)
    log = log or TrainLog()
    _check_one_model_and_protocol(runs)
    first = runs[0][0]
    device = device_of(first)
    precision = _group_precision(first, device, len(runs))
    log(f"group of {len(runs)}: {first['model']} ({first['protocol_name']}) scale={first.get('scale')} "
        f"device={device} precision={precision} threads={torch.get_num_threads()}")
    members, all_sets = _group_members(runs, data_dir, glove, log)
    start = time.perf_counter()
    results = fit_group(members, first["protocol"], first["model"], device, log=log, precision=precision,
                        cudnn_benchmark=cudnn_benchmark)
    seconds = time.perf_counter() - start
    finished, failures = [], []
    keys = list(keys) if keys is not None else [None] * len(runs)
    for (spec, out_dir), sets, member, model, key in zip(runs, all_sets, members, results, keys):
        stamp = {"run_key": key} if key is not None else {}
        if isinstance(model, Diverged):
            failures.append(str(model))
            write_train_log(Path(out_dir) / "train_log.csv", model.history)
            write_json(Path(out_dir) / "metrics.json",
                       {**diverged_metrics(spec, model, device, precision, provenance), **stamp})
            continue
        summary = model.training_summary
        write_train_log(Path(out_dir) / "train_log.csv", summary["history"])
        t_eval = time.perf_counter()
        evaluation = evaluate_sets(model, sets, spec, device)
        log(f"{member.name} evaluation ({time.perf_counter() - t_eval:.1f}s): {json.dumps(evaluation)}")
        metrics = {**_finished_metrics(spec, sets, evaluation, summary, seconds, device, precision,
                                       torch.get_num_threads(), provenance), **stamp}
        write_json(Path(out_dir) / "metrics.json", metrics)
        finished.append(metrics)
    return finished, failures


def copy_alias(canonical_dir: Path, alias_dir: Path, alias_spec: Mapping, key: str | None = None) -> None:
    """The canonical run's metrics and train log under the alias's name and spec (`alias_of` names the run;
    `run_key` is the alias's own `key` when given)."""
    try:
        metrics = json.loads((canonical_dir / "metrics.json").read_text())
    except FileNotFoundError:
        raise UserError(f"alias {alias_dir}: the run it shares, {canonical_dir}, has no metrics.json") from None
    alias_dir.mkdir(parents=True, exist_ok=True)
    write_json(alias_dir / "spec.json", alias_spec)
    metrics.update(scheme=alias_spec["scheme"], spec=dict(alias_spec), alias_of=str(canonical_dir))
    metrics.pop("run_key", None)
    if key is not None:
        metrics["run_key"] = key
    log_path = canonical_dir / "train_log.csv"

    with atomic_outputs(alias_dir / "train_log.csv") as (tmp,):
        tmp.write_bytes(log_path.read_bytes())
    write_json(alias_dir / "metrics.json", metrics)


def _cmd_train(args: argparse.Namespace) -> int:
    spec = resolved(load_spec(args.spec), selections_of(args.selections))
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.spec).parent
    provenance = load_provenance(_provenance_path(args))
    _, failures = train_runs([(spec, out_dir)], args.data_dir, args.glove, args.threads, provenance)
    if failures:
        raise UserError("; ".join(failures))
    return 0


def _provenance_path(args: argparse.Namespace) -> str | None:
    if args.provenance is None:
        return str(Path(args.data_dir) / "provenance.json")
    return None if args.provenance == "none" else args.provenance


def _parse_run(text: str) -> tuple[str, str, int]:
    parts = text.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        raise UserError(f"--run/--alias expects SCHEME/MODEL/SEED, got {text!r}")
    return parts[0], parts[1], int(parts[2])


def _group_of(args: argparse.Namespace) -> tuple[list, list]:
    """(members, (alias, canonical) pairs) of the --run / --alias options."""
    members = [_parse_run(r) for r in args.run]
    aliases = []
    for item in args.alias:
        alias, sep, canonical = item.partition("=")
        if not sep:
            raise UserError(f"--alias expects ALIAS_RUN=CANONICAL_RUN, got {item!r}")
        aliases.append((_parse_run(alias), _parse_run(canonical)))
    return members, aliases


def selections_of(paths: Sequence[str]) -> dict:
    """{sweep: selection record} of the selection files given (`--selections`); UserError naming a bad file."""
    try:
        records = [read_selection(path) for path in paths]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return {record["sweep"]: record for record in records}


def resolved(spec: Mapping, selections: Mapping) -> dict:
    """The spec a run trains under: each selected setting's marker replaced by its sweep's value (the run key
    is made from the spec with the markers); UserError naming the sweep when its selection is missing."""
    try:
        return resolve_selected(spec, selections)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _cmd_train_group(args: argparse.Namespace) -> int:
    """Train the members that are not current (`softlabels.experiments.runs.run_is_current`), copy the aliases whose
    run was trained now or which are not current, and write the group record (--record), the job's output."""
    config = config_from_args(args)
    runs_root = Path(args.runs_dir)
    digests = [file_digest(path) for path in args.inputs]
    given = json.loads(args.specs) if args.specs else None
    selections = selections_of(args.selections)

    def spec_of(run):
        if given is not None:  # the workflow's specs, with this run's device
            text = "/".join(map(str, run))
            if text not in given:
                raise UserError(f"--specs has no spec of run {text}")
            return {**given[text], "device": config["device"]}
        try:
            return run_spec(config, *run)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    members, aliases = _group_of(args)
    t0 = time.perf_counter()
    keys = {run: run_key(spec_of(run), digests) for run in members + [a for a, _ in aliases]}
    todo = [run for run in members if not run_is_current(runs_root / run_dir(*run), keys[run])]
    for run in members:
        if run not in todo:
            print(f"{'/'.join(map(str, run))}: current (metrics.json records its run_key), not trained again")
    runs = []
    for run in todo:
        out_dir = runs_root / run_dir(*run)
        spec = resolved(spec_of(run), selections)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "spec.json", spec)
        runs.append((spec, out_dir))
    failures = []
    if runs:
        provenance = load_provenance(_provenance_path(args))
        protocol = config["protocols"][runs[0][0]["protocol_name"]]
        _, failures = train_runs(runs, args.data_dir, args.glove, args.threads, provenance,
                                 cudnn_benchmark=bool(protocol.get("cudnn_benchmark", False) or False),
                                 keys=[keys[run] for run in todo])
    for alias, canonical in aliases:  # a diverged canonical run's record is copied too
        if canonical in todo or not run_is_current(runs_root / run_dir(*alias), keys[alias]):
            copy_alias(runs_root / run_dir(*canonical), runs_root / run_dir(*alias), resolved(spec_of(alias), selections),
                       keys[alias])
    if args.record:
        text = lambda run: "/".join(map(str, run))
        write_json(args.record, {
            "runs": [text(r) for r in members],
            "aliases": {text(a): text(c) for a, c in aliases},
            "trained": [text(r) for r in todo],
            "run_keys": {text(r): key for r, key in keys.items()},
            "seconds": round(time.perf_counter() - t0, 2),
            "failed": failures,
        })
    for failure in failures:  # recorded in the runs' metrics.json; the job succeeds (tables mark the cells)
        print(f"diverged (recorded): {failure}", file=sys.stderr)
    return 0


def _cmd_make_spec(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        spec = run_spec(config, args.scheme, args.model, args.seed)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.out == "-":
        json.dump(spec, sys.stdout, indent=2)
        print()
    else:
        write_json(args.out, spec)
    return 0


def _add_data_arguments(p) -> None:
    p.add_argument("--data-dir", default="results/data", help="parsed inputs (default: results/data)")
    p.add_argument("--glove", default=None, help="GloVe rows file (needed by the semantic varieties)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--provenance", default=None,
                   help="the data stage's input record copied into metrics.json (default: DATA_DIR/provenance.json; "
                        "'none' = record none)")


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    p = subparsers.add_parser(
        "train",
        help="train and evaluate one run from its spec.json",
        description="Train one (scheme, model, seed) run described by spec.json, evaluate it, write metrics.json.",
    )
    p.add_argument("--spec", required=True, help="run spec (from `softlabels make-spec` or the workflow)")
    p.add_argument("--out-dir", default=None, help="where metrics.json, train_log.csv, checkpoint.pt go (default: the spec's folder)")
    p.add_argument("--selections", nargs="*", default=[], metavar="FILE",
                   help="selection files of the sweeps a spec's selected settings name (config sweeps.apply)")
    _add_data_arguments(p)
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser(
        "train-group",
        help="train and evaluate a group of runs of one model as one fused computation",
        description="Write each run's spec.json from the configuration, train the runs fused, evaluate each, "
        "write their metrics.json; copy the results of shared runs to their aliases.",
    )
    p.add_argument("--run", action="append", default=[], metavar="SCHEME/MODEL/SEED", help="a member run (repeat)")
    p.add_argument("--alias", action="append", default=[], metavar="ALIAS=CANONICAL",
                   help="SCHEME/MODEL/SEED=SCHEME/MODEL/SEED: give the alias the canonical run's results (repeat)")
    p.add_argument("--runs-dir", default=".", help="folder holding results/runs (default: .)")
    p.add_argument("--record", default=None,
                   help="JSON record of the group (members, aliases, which were trained, run keys, seconds)")
    p.add_argument("--specs", default=None, metavar="JSON",
                   help='{"SCHEME/MODEL/SEED": spec} of the runs and aliases (the workflow\'s; default: built from '
                        "the configuration), each given the configured device")
    p.add_argument("--inputs", nargs="*", default=[], metavar="FILE",
                   help="the input files the runs read: their sha256 enter each run's run_key")
    p.add_argument("--selections", nargs="*", default=[], metavar="FILE",
                   help="selection files of the sweeps whose values the runs use (config sweeps.apply; also "
                        "among --inputs)")
    _add_data_arguments(p)
    add_config_arguments(p)
    p.set_defaults(func=_cmd_train_group)

    p = subparsers.add_parser(
        "make-spec",
        help="write the spec.json of one run from the configuration",
        description="Write the effective settings of run (scheme, model, seed) as JSON.",
    )
    p.add_argument("--scheme", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", default="-", help="output file (default: stdout)")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_make_spec)


    sweeps.register(subparsers)
