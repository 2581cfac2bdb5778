"""Subcommands of the train stage.

`softlabels make-spec` writes the spec of one run (scheme, model, seed) from the effective configuration;
`softlabels train --spec spec.json --out-dir DIR` trains that run and evaluates it, writing
`DIR/metrics.json` (atomically, last), `DIR/train_log.csv` (one row per logged epoch) and the resumable
checkpoint `DIR/checkpoint.pt`, which is discarded when the spec it was made under differs from this one.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Mapping

#: metrics.json layout version.
METRICS_FORMAT = 1


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    from softlabels.data.io import atomic_outputs

    with atomic_outputs(path) as (tmp,):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")


def spec_digest(spec: Mapping) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


_NUMBER = re.compile(r"^-?\d+(\.\d*)?([eE][-+]?\d+)?$")
_PAIR = re.compile(r"([A-Za-z_][\w/]*)\s*[=:]\s*([^\s,;|]+)")


def parse_progress(message: Any) -> dict | None:
    """A per-epoch progress record from the trainer's log callback: a mapping as it is, or the `key=value`
    (or `key: value`) pairs of a text line that names an epoch; None for other lines."""
    if isinstance(message, Mapping):
        return dict(message)
    text = str(message)
    pairs = {}
    for key, value in _PAIR.findall(text):
        value = value.rstrip("s%") if _NUMBER.match(value.rstrip("s%")) else value
        pairs[key] = float(value) if _NUMBER.match(value) else value
    if "epoch" not in pairs:
        match = re.search(r"\bepoch\s+(\d+)", text)
        if not match:
            return None
        pairs["epoch"] = int(match.group(1))
    return pairs


class TrainLog:
    """Receives the trainer's log messages: prints them (the Snakemake log) and keeps per-epoch records."""

    def __init__(self, stream=None):
        self.stream = stream  # None: whatever sys.stdout is when a message arrives
        self.rows: list[dict] = []

    def __call__(self, message: Any) -> None:
        text = message if not isinstance(message, Mapping) else json.dumps(message)
        print(text, file=self.stream or sys.stdout, flush=True)
        row = parse_progress(message)
        if row is not None:
            self.rows.append(row)

    def write_csv(self, path: str | Path) -> None:
        path = Path(path)
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        from softlabels.data.io import atomic_outputs

        with atomic_outputs(path) as (tmp,), open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns or ["epoch"])
            writer.writeheader()
            writer.writerows(self.rows)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from softlabels.cli import UserError

        raise UserError("device 'cuda' was asked for (config key 'device') but torch sees no CUDA device")
    return device


def load_spec(path: str | Path) -> dict:
    from softlabels.cli import UserError

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


def evaluate_sets(model, sets, spec: Mapping, device: str) -> dict:
    from softlabels.evaluate import evaluate_model

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


def train_run(spec: Mapping, out_dir: str | Path, data_dir: str | Path, glove: str | None, threads: int) -> dict:
    """Build the run's sets, train (resuming from the checkpoint), evaluate, write metrics.json."""
    import torch

    from softlabels.train import fit
    from softlabels.train.runs import RunData, build_run_sets, responses_file

    if threads > 0:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(spec.get("device", "auto"))
    log = TrainLog()
    log(f"run {spec['scheme']}/{spec['model']}/seed{spec['seed']} scale={spec.get('scale')} device={device} threads={torch.get_num_threads()}")
    data = RunData.from_dir(data_dir, glove, responses=responses_file(spec))
    sets = build_run_sets(spec, data)
    log(f"training set: {json.dumps({k: v for k, v in sets.info.items() if not isinstance(v, list)})}")
    checkpoint = _prepare_checkpoint(out_dir, spec)
    start = time.perf_counter()
    model = fit(
        sets.train_images,
        sets.train_pools,
        spec["protocol"],
        spec["model"],
        int(spec["seed"]),
        device,
        checkpoint,
        log=log,
        objective=sets.objective,
    )
    seconds = time.perf_counter() - start
    summary = getattr(model, "training_summary", None) or {}
    if summary.get("history"):
        log.rows = [dict(row) for row in summary["history"]]  # survives a resume (kept in the checkpoint)
    log.write_csv(out_dir / "train_log.csv")
    model.eval()
    t_eval = time.perf_counter()
    results = evaluate_sets(model, sets, spec, device)
    log(f"evaluation ({time.perf_counter() - t_eval:.1f}s): {json.dumps(results)}")
    epochs = int(spec["protocol"]["epochs"])
    metrics = {
        "format": METRICS_FORMAT,
        "scheme": spec["scheme"],
        "model": spec["model"],
        "seed": int(spec["seed"]),
        "scale": spec.get("scale"),
        "spec": dict(spec),
        **results,
        "train": {
            "epochs": epochs,
            "seconds": summary.get("seconds", round(seconds, 3)),
            "images_per_s": summary.get("images_per_s", round(epochs * len(sets.train_images) / seconds, 1) if seconds > 0 else None),
            "device": device,
            "threads": torch.get_num_threads(),
            **sets.info,
        },
    }
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def _cmd_train(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.spec).parent
    train_run(spec, out_dir, args.data_dir, args.glove, args.threads)
    return 0


def _cmd_make_spec(args: argparse.Namespace) -> int:
    from softlabels.cli import UserError, config_from_args
    from softlabels.train.runs import run_spec

    config = config_from_args(args)
    try:
        spec = run_spec(config, args.scheme, args.model, args.seed)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.out == "-":
        json.dump(spec, sys.stdout, indent=2)
        print()
    else:
        write_json_atomic(args.out, spec)
    return 0


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    from softlabels.cli import add_config_arguments

    p = subparsers.add_parser(
        "train",
        help="train and evaluate one run from its spec.json",
        description="Train one (scheme, model, seed) run described by spec.json, evaluate it, write metrics.json.",
    )
    p.add_argument("--spec", required=True, help="run spec (from `softlabels make-spec` or the workflow)")
    p.add_argument("--out-dir", default=None, help="where metrics.json, train_log.csv, checkpoint.pt go (default: the spec's folder)")
    p.add_argument("--data-dir", default="results/data", help="parsed inputs (default: results/data)")
    p.add_argument("--glove", default=None, help="GloVe rows file (needed by the semantic varieties)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.set_defaults(func=_cmd_train)

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
