"""The sweeps' validation split and the spec files of sweep runs (thesis §3.3, §5.2, appendix B.2).

`softlabels validation-split` makes `validation.npz` from `sweeps.validation`: part of the CIFAR-10 training set, or
the split images no run trains on (`softlabels.train.run_data.validation_eval_set` evaluates a sweep run on it:
its accuracy and CE). `softlabels make-sweep-spec` writes the spec of one sweep point
(`softlabels.experiments.sweeps.point_spec`). The sweep's table is built in `softlabels.report.sweeps`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Mapping

import numpy as np

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.config import setting
from softlabels.data.cifar10s import read_responses
from softlabels.data.io import save_npz, write_json
from softlabels.experiments.sweeps import point_spec
from softlabels.train import run_data as R


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
