"""Subcommands of the evaluate stage."""


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
