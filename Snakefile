# softlabels: the Collins (2022) thesis as one DAG.
# raw downloads -> parsed human data -> soft labels -> training runs -> evaluation -> tables and figures.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/corruption.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/elicit.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/claims.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


# Requested targets that nothing makes, and inputs the mirror lacks, stop the run here, before the DAG. A dry
# run ends with the stops a real run would make before its first job (those are checked in onstart).
if MAIN_PROCESS:
    check_requested_targets()
    check_inputs_reachable()
    if requested_targets() is not None:  # a `snakemake` command, not the Python API inside another program
        atexit.register(note_stops_of_dry_run)
