"""The `softlabels` command: one subcommand per pipeline step, so every Snakemake rule is a plain shell line
that a user can also run by hand.

Each stage module contributes its subcommands through a `register(subparsers)` function; what they share (the
config options, `UserError`) lives in `softlabels.arguments`, below them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from softlabels import __version__
from softlabels.arguments import UserError
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
