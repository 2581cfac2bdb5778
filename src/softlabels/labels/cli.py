"""Subcommands of the labels stage.

  softlabels export-labels --variety t2_clamp --gamma 0.1 --out cifar10s_t2clamp_redist10.json
  softlabels export-hmix-soft-labels --out hmix_individ_soft_labels.json
  softlabels fit-simulator --out results/labels/simulator.json
  softlabels fit-taus --out results/labels/class_pair_taus.csv

An input named on the command line must exist (else the command stops, naming it, and writes nothing). With no
path given, an input is the data stage's parsed table under results/data/ or, when that is missing, is parsed
from the raw download (fetched into resources_dir, or copied from data_mirror); the log names the file used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data import cifar10h, cifar10s, hmix
from softlabels.data.download import fetch_from_config
from softlabels.data.io import DataError, write_csv, write_json
from softlabels.labels.elicited import PATHS, VARIETIES
from softlabels.labels.exports import cifar10s_export, hmix_soft_export
from softlabels.labels.semantic import semantic_similarity
from softlabels.labels.simulator import fit_simulator
from softlabels.labels.tau import fit_class_pair_taus

DATA_DIR = Path("results") / "data"


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    p = subparsers.add_parser(
        "export-labels",
        help="CIFAR-10S per-response soft labels as JSON {test index: [10-vectors]}",
        description="Write the CIFAR-10S per-response labels of one variety in the layout of the released "
        "cifar10s_t2clamp_redist10.json: {test index: [per-response 10-vectors in alphabetical class order]}.",
    )
    add_config_arguments(p)
    p.add_argument("--variety", choices=VARIETIES, default="t2_clamp", help="label construction (default t2_clamp)")
    p.add_argument("--gamma", type=float, default=None, help="redistribution γ (default: labels.gamma)")
    p.add_argument("--path", choices=PATHS, default=None, help="default: labels.redistribution_path")
    p.add_argument("--responses", default=None,
                   help="tidy responses table (default: results/data/cifar10s_responses.csv, else the raw download)")
    p.add_argument("--glove", default=None, help="GloVe class rows (semantic varieties; default: the resource)")
    p.add_argument("--out", required=True, help="output JSON")
    p.set_defaults(func=run_export_labels)

    p = subparsers.add_parser(
        "export-hmix-soft-labels",
        help="H-Mix per-annotator soft labels as JSON {stimulus: [10-vectors]}",
        description="Write the per-annotator labels of the H-Mix categorical soft-label responses in the layout "
        "of the released hmix_individ_soft_labels.json (T2-Clamp, γ = labels.gamma and the path "
        "labels.hmix_redistribution_path by default).",
    )
    add_config_arguments(p)
    p.add_argument("--variety", choices=VARIETIES, default="t2_clamp")
    p.add_argument("--gamma", type=float, default=None, help="redistribution γ (default: labels.gamma)")
    p.add_argument("--path", choices=PATHS, default=None, help="default: labels.hmix_redistribution_path")
    p.add_argument("--responses", default=None,
                   help="tidy H-Mix soft table (default: results/data/hmix_soft_responses.csv, else the raw download)")
    p.add_argument("--glove", default=None, help="GloVe class rows (semantic varieties; default: the resource)")
    p.add_argument("--out", required=True, help="output JSON")
    p.set_defaults(func=run_export_hmix)

    p = subparsers.add_parser(
        "fit-simulator",
        help="fit the appendix-B.5 soft-label simulator (JSON of Beta fits and histograms)",
        description="Fit the appendix-B.5 simulator on the CIFAR-10S responses, routed by CIFAR-10H entropy "
        "(labels.simulator_entropy_threshold), with T2-Clamp labels at labels.gamma.",
    )
    add_config_arguments(p)
    p.add_argument("--responses", default=None,
                   help="tidy responses table (default: results/data/cifar10s_responses.csv, else the raw download)")
    p.add_argument("--cifar10h", default=None,
                   help="cifar10h.npz with probs (default: results/data/cifar10h.npz, else the raw downloads)")
    p.add_argument("--out", required=True, help="output JSON")
    p.set_defaults(func=run_fit_simulator)

    p = subparsers.add_parser(
        "fit-taus",
        help="fit the appendix-C logistic τ per class pair (CSV)",
        description="Fit τ(λ) = rescaled σ(k(λ − x0)) per unordered class pair on the H-Mix mixing-factor "
        "judgments (labels.tau_stimuli picks all stimuli or the 810 of the first collection).",
    )
    add_config_arguments(p)
    p.add_argument("--judgments", default=None,
                   help="H-Mix judgments table (default: results/data/hmix_judgments.csv, else the raw downloads)")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_fit_taus)


# ------------------------------------------------------------------------------------------------- inputs


def _user_error(exc: Exception):
    return UserError(str(exc))


def _check_named(args) -> None:
    """Every input path named on the command line must exist, checked before anything is read or fetched."""
    for option in ("responses", "cifar10h", "judgments", "glove"):
        path = getattr(args, option, None)
        if path is not None and not Path(path).is_file():
            raise _user_error(DataError(f"{path}: file not found (named on the command line)"))


def _input(path: str | None, config: dict, default_name: str, read, parse, *raw_keys: str):
    """`read(file)` of the path the user named (which must exist), else of results/data/<default_name> when it
    exists; else `parse(raw files)` of the configured downloads `raw_keys`. The log names the file used."""
    if path is not None:
        if not Path(path).is_file():
            raise DataError(f"{path}: file not found (named on the command line)")
        return read(Path(path))
    default = DATA_DIR / default_name
    if default.is_file():
        print(f"reading {default}")
        return read(default)
    raws = [fetch_from_config(key, config) for key in raw_keys]
    print(f"{default} not found: parsing the raw download(s) {', '.join(map(str, raws))}")
    return parse(*raws)


def load_cifar10s_responses(path: str | None, config: dict) -> pd.DataFrame:
    return _input(path, config, "cifar10s_responses.csv", lambda f: cifar10s.read_responses(f, key="image"),
                  cifar10s.parse_cifar10s, "cifar10s_raw")


def load_hmix_soft(path: str | None, config: dict) -> pd.DataFrame:
    return _input(path, config, "hmix_soft_responses.csv", lambda f: cifar10s.read_responses(f, key="stimulus"),
                  hmix.parse_soft_responses, "hmix_soft")


def load_hmix_judgments(path: str | None, config: dict) -> pd.DataFrame:
    return _input(path, config, "hmix_judgments.csv", hmix.load_judgments, hmix.parse_judgments,
                  "hmix_mixing", "hmix_stimuli")


def _read_probs(path: Path) -> np.ndarray:
    try:
        with np.load(path) as data:
            return data["probs"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not an npz file with 'probs' ({exc})") from None


def load_cifar10h_probs(path: str | None, config: dict) -> np.ndarray:
    return _input(path, config, "cifar10h.npz", _read_probs, lambda c, p: cifar10h.read_cifar10h(c, p)[1],
                  "cifar10h_counts", "cifar10h_probs")


def load_similarity(path: str | None, config: dict) -> np.ndarray:
    if path is not None and not Path(path).is_file():
        raise DataError(f"{path}: file not found (named on the command line)")
    glove = Path(path) if path else fetch_from_config("glove", config)
    print(f"GloVe rows: {glove}")
    return semantic_similarity(glove)


def _label_options(args, config: dict, path_key: str = "redistribution_path") -> dict:
    """Label construction options: the CLI's, else the config's (`labels.<path_key>` for the path)."""
    labels_cfg = config["labels"]
    gamma = labels_cfg["gamma"] if args.gamma is None else args.gamma
    if not 0.0 <= gamma <= 1.0:
        raise _user_error(ValueError(f"--gamma must lie in [0, 1], got {gamma}"))
    options = {"variety": args.variety, "gamma": gamma, "path": args.path or labels_cfg[path_key],
               "semantic_base": labels_cfg["semantic_base"]}
    options["similarity"] = load_similarity(args.glove, config) if "semantic" in args.variety else None
    return options


# ----------------------------------------------------------------------------------------------- commands


def run_export_labels(args) -> int:
    _check_named(args)
    config = config_from_args(args)
    try:
        responses = load_cifar10s_responses(args.responses, config)
        options = _label_options(args, config)
        data = cifar10s_export(responses, **options)
    except ValueError as exc:
        raise _user_error(exc) from None
    write_json(args.out, data, indent=None)
    print(f"{args.out}: {sum(map(len, data.values()))} responses over {len(data)} images "
          f"({options['variety']}, gamma {options['gamma']}, {options['path']} path)")
    return 0


def run_export_hmix(args) -> int:
    _check_named(args)
    config = config_from_args(args)
    try:
        responses = load_hmix_soft(args.responses, config)
        options = _label_options(args, config, path_key="hmix_redistribution_path")
        data = hmix_soft_export(responses, **options)
    except ValueError as exc:
        raise _user_error(exc) from None
    write_json(args.out, data, indent=None)
    print(f"{args.out}: {sum(map(len, data.values()))} responses over {len(data)} stimuli "
          f"({options['variety']}, gamma {options['gamma']}, {options['path']} path)")
    return 0


def run_fit_simulator(args) -> int:
    _check_named(args)
    config = config_from_args(args)
    labels_cfg = config["labels"]
    try:
        responses = load_cifar10s_responses(args.responses, config)
        probs = load_cifar10h_probs(args.cifar10h, config)
        params = fit_simulator(responses, probs, threshold=labels_cfg["simulator_entropy_threshold"],
                               gamma=labels_cfg["gamma"])
    except ValueError as exc:
        raise _user_error(exc) from None
    write_json(args.out, params.to_dict(), indent=None)
    print(json.dumps(params.to_dict(), indent=1))
    return 0


def run_fit_taus(args) -> int:
    _check_named(args)
    config = config_from_args(args)
    try:
        judgments = load_hmix_judgments(args.judgments, config)
        if config["labels"]["tau_stimuli"] == "first_collection":
            judgments = judgments[judgments["first_collection"].astype(bool)]
        taus = fit_class_pair_taus(judgments)
    except ValueError as exc:
        raise _user_error(exc) from None
    write_csv(args.out, taus)
    print(f"{args.out}: {len(taus)} class pairs from {int(taus['n'].sum())} judgments "
          f"(labels.tau_stimuli = {config['labels']['tau_stimuli']})")
    print(taus.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
