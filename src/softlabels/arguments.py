"""What the subcommands share: the config-reading options and `UserError`, the error printed without a traceback.

It sits below every stage module (it imports only `softlabels.config`), so a stage's command module imports it at
the top; `softlabels.cli` gathers the stages' subcommands and turns `UserError` into exit status 2.
"""

from __future__ import annotations

import argparse
import json

from softlabels import config as cfg


class UserError(Exception):
    """Bad input from the user (a file, an argument): printed without a traceback, exit status 2."""


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
    if getattr(args, "settings", None) is not None:
        return cfg.declared_config(json.loads(args.settings), json.loads(args.run_options or "{}"))
    overrides = dict(cfg.parse_override(item) for item in args.config)
    if args.data_mirror is not None:
        overrides["data_mirror"] = args.data_mirror
    return cfg.load(args.configfile, overrides)
