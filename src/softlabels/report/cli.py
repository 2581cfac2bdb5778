"""Subcommands of the report stage."""
from softlabels.report.claims import register_claims
from softlabels.report.data_figures import register_figures
from softlabels.report.reproduction import register_reproduction
from softlabels.report.run_figures import register_run_figures
from softlabels.report.summaries import register_summaries
from softlabels.report.sweeps import register_sweep_table
from softlabels.report.tables import register_tables


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    register_tables(subparsers)
    register_sweep_table(subparsers)
    register_run_figures(subparsers)
    register_summaries(subparsers)
    register_figures(subparsers)
    register_reproduction(subparsers)
    register_claims(subparsers)
