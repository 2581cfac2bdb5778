"""The `softlabels` command: one subcommand per pipeline step, so every Snakemake rule is a plain shell line
that a user can also run by hand.

Each stage module contributes its subcommands through a `register(subparsers)` function.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from softlabels import __version__
from softlabels.config import ConfigError

#: Modules that register subcommands, in DAG order.
COMMAND_MODULES = (
    "softlabels.data.cli",
    "softlabels.labels.cli",
    "softlabels.train.cli",
    "softlabels.evaluate.cli",
    "softlabels.report.cli",
    "softlabels.elicit.cli",
)


class UserError(Exception):
    """Bad input from the user (a file, an argument): printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softlabels",
        description="Soft-label construction, training and evaluation for the Collins (2022) reproduction.",
    )
    parser.add_argument("--version", action="version", version=f"softlabels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every config-reading subcommand shares."""
    parser.add_argument(
        "--configfile",
        action="append",
        default=None,
        help="config file; repeat to merge several, later ones win (default: the checkout's config.yaml)",
    )
    parser.add_argument(
        "--config",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override top-level config keys, as in `snakemake --config`",
    )
    parser.add_argument("--data-mirror", default=None, help="offline input mirror (sets data_mirror)")
    parser.add_argument(
        "--settings",
        default=None,
        metavar="JSON",
        help="the workflow's channel: {dotted key: value} of the settings the job's rule declares; the command "
        "reads these alone (no config file) and fails on any other key",
    )
    parser.add_argument(
        "--run-options",
        default=None,
        metavar="JSON",
        help="with --settings: how the job runs (data_mirror, resources_dir, device, torch_threads, download)",
    )


def config_from_args(args: argparse.Namespace) -> dict:
    """Effective configuration for a subcommand that used `add_config_arguments`: from --settings (a workflow
    job: the declared settings and the run options, `softlabels.config.declared_config`), else the config
    files and --config overrides."""
    import json

    from softlabels import config as cfg

    if getattr(args, "settings", None) is not None:
        return cfg.declared_config(json.loads(args.settings), json.loads(args.run_options or "{}"))
    overrides = dict(cfg.parse_override(item) for item in args.config)
    if args.data_mirror is not None:
        overrides["data_mirror"] = args.data_mirror
    return cfg.load(args.configfile, overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (ConfigError, UserError) as exc:
        print(f"softlabels {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
