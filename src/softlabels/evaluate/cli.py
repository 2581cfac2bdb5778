"""Subcommands of the evaluate stage."""

from softlabels.evaluate import corruptions


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    corruptions.register_cli(subparsers)  # softlabels corrupt {download,build}
