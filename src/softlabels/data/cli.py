"""Subcommands of the data stage."""


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
