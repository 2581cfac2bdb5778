"""What the Snakemake workflow (`workflow/rules/*.smk`) uses from the package, in one place.

The rules are thin shell lines around `softlabels` subcommands; at parse time the workflow needs only these
names: the configuration's checks, the runs and their keys, the sweeps, the training plan, the download
checks, and the settings each table, figure, summary and claim rule declares. Torch is not imported here
(`training_plan_text` and `paper_on_cpu` import it when called).
"""

from softlabels import config as softlabels_config
from softlabels.data.download import NO_NETWORK_HINT, network_unreachable, read_manifest
from softlabels.data.verify import discard_corrupt_downloads
from softlabels.experiments.groups import TrainingGroup, config_groups
from softlabels.experiments.runs import (
    HOW_TO_RUN_SPEC_KEYS,
    file_digest,
    result_set,
    run_dir,
    run_is_current,
    run_key,
    runs_of,
    spec_digest,
)
from softlabels.experiments.selections import active_grids, selection_file, spec_sweeps
from softlabels.experiments.sweeps import point_spec, sweep_dir, sweep_points, validation_settings
from softlabels.report.claims import claims_setting_keys, target_tables
from softlabels.report.data_figures import FIGURE_CHAPTER, FIGURE_INPUTS, FIGURE_SETTINGS
from softlabels.report.reproduction import REPRODUCTION_METRICS
from softlabels.report.summaries import SUMMARY_SETTINGS
from softlabels.report.tables import table_setting_keys
from softlabels.train.plan import PAPER_ON_CPU, paper_on_cpu, training_plan_text
from softlabels.vocabulary import RUN_FIGURES

__all__ = [
    "softlabels_config", "NO_NETWORK_HINT", "network_unreachable", "read_manifest", "discard_corrupt_downloads",
    "TrainingGroup", "config_groups", "HOW_TO_RUN_SPEC_KEYS", "file_digest", "run_dir", "run_is_current", "run_key",
    "runs_of", "spec_digest", "active_grids", "selection_file", "spec_sweeps", "point_spec", "sweep_dir",
    "sweep_points", "validation_settings", "claims_setting_keys", "target_tables", "FIGURE_CHAPTER",
    "FIGURE_INPUTS", "FIGURE_SETTINGS", "REPRODUCTION_METRICS", "RUN_FIGURES", "result_set", "SUMMARY_SETTINGS",
    "table_setting_keys", "PAPER_ON_CPU", "paper_on_cpu", "training_plan_text",
]
