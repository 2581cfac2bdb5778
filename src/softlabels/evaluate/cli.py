"""Subcommands of the evaluate stage."""


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    from softlabels.evaluate import corruptions

    corruptions.register_cli(subparsers)  # softlabels corrupt {download,build}
