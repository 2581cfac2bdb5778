"""Subcommands of the labels stage.

  softlabels export-labels --variety t2_clamp --gamma 0.1 --out cifar10s_t2clamp_redist10.json
  softlabels export-hmix-soft-labels --out hmix_individ_soft_labels.json
  softlabels fit-simulator --out results/labels/simulator.json
  softlabels fit-taus --out results/labels/class_pair_taus.csv

Inputs default to the data stage's parsed tables under results/data/; when a table is missing it is parsed from
the raw download (fetched into resources_dir, or copied from data_mirror) with the data stage's functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from softlabels.labels.elicited import PATHS, VARIETIES

DATA_DIR = Path("results") / "data"


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    from softlabels.cli import add_config_arguments

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
    p.add_argument("--responses", default=str(DATA_DIR / "cifar10s_responses.csv"), help="tidy responses table")
    p.add_argument("--glove", default=None, help="GloVe class rows (semantic varieties; default: the resource)")
    p.add_argument("--out", required=True, help="output JSON")
    p.set_defaults(func=run_export_labels)

    p = subparsers.add_parser(
        "export-hmix-soft-labels",
        help="H-Mix per-annotator soft labels as JSON {stimulus: [10-vectors]}",
        description="Write the per-annotator labels of the H-Mix categorical soft-label responses in the layout "
        "of the released hmix_individ_soft_labels.json (T2-Clamp, γ = labels.gamma by default).",
    )
    add_config_arguments(p)
    p.add_argument("--variety", choices=VARIETIES, default="t2_clamp")
    p.add_argument("--gamma", type=float, default=None, help="redistribution γ (default: labels.gamma)")
    p.add_argument("--path", choices=PATHS, default=None, help="default: labels.redistribution_path")
    p.add_argument("--responses", default=str(DATA_DIR / "hmix_soft_responses.csv"), help="tidy H-Mix soft table")
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
    p.add_argument("--responses", default=str(DATA_DIR / "cifar10s_responses.csv"))
    p.add_argument("--cifar10h", default=str(DATA_DIR / "cifar10h.npz"), help="cifar10h.npz (probs)")
    p.add_argument("--out", required=True, help="output JSON")
    p.set_defaults(func=run_fit_simulator)

    p = subparsers.add_parser(
        "fit-taus",
        help="fit the appendix-C logistic τ per class pair (CSV)",
        description="Fit τ(λ) = rescaled σ(k(λ − x0)) per unordered class pair on the H-Mix mixing-factor "
        "judgments (labels.tau_stimuli picks all stimuli or the 810 of the first collection).",
    )
    add_config_arguments(p)
    p.add_argument("--judgments", default=str(DATA_DIR / "hmix_judgments.csv"))
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_fit_taus)


# ------------------------------------------------------------------------------------------------- inputs


def _user_error(exc: Exception):
    from softlabels.cli import UserError

    return UserError(str(exc))


def read_tidy_table(path: Path) -> pd.DataFrame:
    """A tidy responses table written by the data stage (empty cells stay "" except in numeric columns)."""
    return pd.read_csv(
        path,
        dtype={"subject": str, "task": str, "top_class": str, "second_class": str, "impossible": str, "stimulus": str},
        keep_default_na=False,
        na_values={"second_prob": [""], "top_prob": [""], "rt_ms": [""]},
    )


def load_cifar10s_responses(path: str, config: dict) -> pd.DataFrame:
    from softlabels.data import cifar10s
    from softlabels.data.download import fetch_from_config

    if Path(path).exists():
        return cifar10s.load_responses(path)
    print(f"{path} not found: parsing the raw CIFAR-10S data")
    return cifar10s.parse_cifar10s(fetch_from_config("cifar10s_raw", config))


def load_hmix_soft(path: str, config: dict) -> pd.DataFrame:
    from softlabels.data import hmix
    from softlabels.data.download import fetch_from_config

    if Path(path).exists():
        return read_tidy_table(Path(path))
    print(f"{path} not found: parsing the raw H-Mix soft-label data")
    return hmix.parse_soft_responses(fetch_from_config("hmix_soft", config))


def load_hmix_judgments(path: str, config: dict) -> pd.DataFrame:
    from softlabels.data import hmix
    from softlabels.data.download import fetch_from_config

    if Path(path).exists():
        return hmix.load_judgments(path)
    print(f"{path} not found: parsing the raw H-Mix mixing-factor data")
    return hmix.parse_judgments(fetch_from_config("hmix_mixing", config), fetch_from_config("hmix_stimuli", config))


def load_cifar10h_probs(path: str, config: dict) -> np.ndarray:
    from softlabels.data import cifar10h
    from softlabels.data.download import fetch_from_config

    if Path(path).exists():
        with np.load(path) as data:
            return data["probs"]
    print(f"{path} not found: reading the CIFAR-10H downloads")
    counts_path = fetch_from_config("cifar10h_counts", config)
    probs_path = fetch_from_config("cifar10h_probs", config)
    return cifar10h.read_cifar10h(counts_path, probs_path)[1]


def load_similarity(path: str | None, config: dict) -> np.ndarray:
    from softlabels.data.download import fetch_from_config
    from softlabels.labels.semantic import semantic_similarity

    glove = Path(path) if path else fetch_from_config("glove", config)
    return semantic_similarity(glove)


def _label_options(args, config: dict) -> dict:
    labels_cfg = config["labels"]
    gamma = labels_cfg["gamma"] if args.gamma is None else args.gamma
    if not 0.0 <= gamma <= 1.0:
        raise _user_error(ValueError(f"--gamma must lie in [0, 1], got {gamma}"))
    options = {"variety": args.variety, "gamma": gamma, "path": args.path or labels_cfg["redistribution_path"]}
    options["similarity"] = load_similarity(args.glove, config) if "semantic" in args.variety else None
    return options


# ----------------------------------------------------------------------------------------------- commands


def run_export_labels(args) -> int:
    from softlabels.cli import config_from_args
    from softlabels.labels.exports import cifar10s_export, write_json_atomic

    config = config_from_args(args)
    try:
        options = _label_options(args, config)
        responses = load_cifar10s_responses(args.responses, config)
        data = cifar10s_export(responses, **options)
    except ValueError as exc:
        raise _user_error(exc) from None
    write_json_atomic(data, args.out)
    print(f"{args.out}: {sum(map(len, data.values()))} responses over {len(data)} images "
          f"({options['variety']}, gamma {options['gamma']}, {options['path']} path)")
    return 0


def run_export_hmix(args) -> int:
    from softlabels.cli import config_from_args
    from softlabels.labels.exports import hmix_soft_export, write_json_atomic

    config = config_from_args(args)
    try:
        options = _label_options(args, config)
        responses = load_hmix_soft(args.responses, config)
        data = hmix_soft_export(responses, **options)
    except ValueError as exc:
        raise _user_error(exc) from None
    write_json_atomic(data, args.out)
    print(f"{args.out}: {sum(map(len, data.values()))} responses over {len(data)} stimuli "
          f"({options['variety']}, gamma {options['gamma']}, {options['path']} path)")
    return 0


def run_fit_simulator(args) -> int:
    from softlabels.cli import config_from_args
    from softlabels.labels.exports import write_json_atomic
    from softlabels.labels.simulator import fit_simulator

    config = config_from_args(args)
    labels_cfg = config["labels"]
    try:
        responses = load_cifar10s_responses(args.responses, config)
        probs = load_cifar10h_probs(args.cifar10h, config)
        params = fit_simulator(responses, probs, threshold=labels_cfg["simulator_entropy_threshold"],
                               gamma=labels_cfg["gamma"])
    except ValueError as exc:
        raise _user_error(exc) from None
    write_json_atomic(params.to_dict(), args.out)
    print(json.dumps(params.to_dict(), indent=1))
    return 0


def run_fit_taus(args) -> int:
    from softlabels.cli import config_from_args
    from softlabels.labels.exports import write_csv_atomic
    from softlabels.labels.tau import fit_class_pair_taus

    config = config_from_args(args)
    try:
        judgments = load_hmix_judgments(args.judgments, config)
        if config["labels"].get("tau_stimuli", "all") == "first_collection":
            judgments = judgments[judgments["first_collection"].astype(bool)]
        taus = fit_class_pair_taus(judgments)
    except ValueError as exc:
        raise _user_error(exc) from None
    write_csv_atomic(taus, args.out)
    print(f"{args.out}: {len(taus)} class pairs from {int(taus['n'].sum())} judgments "
          f"(labels.tau_stimuli = {config['labels']['tau_stimuli']})")
    print(taus.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
