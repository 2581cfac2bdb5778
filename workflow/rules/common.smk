# Start-up work done once: validate the config, merge the scale preset, and define the helpers the
# stage files share (paths, input functions, wildcard constraints).
import json
import os
import shlex
import sys

import yaml

from snakemake.utils import validate

from softlabels import config as softlabels_config

validate(config, schema="../schemas/config.schema.yaml")

# The effective configuration: the base with `scales.<scale>` merged over it, validated again.
# Mutating the global dict keeps `config[...]` in every rule file equal to what the CLI sees.
_effective = softlabels_config.resolve(config)
config.clear()
config.update(_effective)

SCALE = config["scale"]
RESOURCES = config["resources_dir"]
# Rules call the `softlabels` command; make the one beside this interpreter (the venv's) win on PATH.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
CLI = "softlabels"


envvars:
    "PATH",


# A download damaged after it was fetched is deleted here, once per run (not in each job), so that its
# fetch rule and everything built from it run again (softlabels.data.verify).
if not (workflow.remote_exec or workflow.subprocess_exec):
    from softlabels.data.verify import discard_corrupt_downloads

    discard_corrupt_downloads(config, log=lambda msg: print(msg, file=sys.stderr))


wildcard_constraints:
    scheme="|".join(sorted(config["schemes"])),
    seed=r"\d+",
    source="|".join(sorted(config["sources"])),


def resource(name):
    """Path of a downloaded input under resources_dir, by its key in `sources`."""
    return os.path.join(RESOURCES, config["sources"][name]["file"])


def config_args():
    """CLI options that hand a `softlabels` subcommand the same configuration this run uses: the config
    files Snakemake read, then the top-level --config overrides and the effective scale and paths."""
    files = [os.path.abspath(f) for f in workflow.configfiles]
    overrides = dict(workflow.config_settings.config or {})  # the --config key=value pairs only
    overrides.update(scale=SCALE, resources_dir=RESOURCES, device=config["device"])
    if config.get("data_mirror"):
        overrides["data_mirror"] = config["data_mirror"]
    pairs = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
        if text.endswith("\n..."):
            text = text[: -len("\n...")]
        pairs.append(shlex.quote(f"{key}={text}"))
    return " ".join([f"--configfile {shlex.quote(f)}" for f in files] + ["--config"] + pairs)


# The responses table of the chapter-3 runs (train.smk: TRAIN_DATA["chapter3"]["cifar10s"]): own responses when the
# config key own_responses is set (checked in by rule elicit_import, elicit.smk), else CIFAR-10S.
CHAPTER3_RESPONSES = (
    "results/data/own_responses.csv" if config.get("own_responses") else "results/data/cifar10s_responses.csv"
)

# Stage files append their final targets here; `rule all` asks for all of them.
FINAL_OUTPUTS = []


def get_final_output():
    return list(FINAL_OUTPUTS)


# Helpers of the train and tables stages (kept here: `snakemake --lint` wants no functions beside rules).
from softlabels.train.runs import runs_of


# Resources of a training job where a protocol block has no `resources:`.
def run_dir(scheme, model, seed):
    return f"results/runs/{scheme}/{model}/seed{seed}"


def run_metrics(runs):
    """metrics.json paths of (scheme, model, seed) runs."""
    return [f"{run_dir(*run)}/metrics.json" for run in runs]


def result_set_runs(result_set):
    """The runs behind every row of a `tables:`/`figures:` entry."""
    seeds = result_set.get("seeds", "main")
    return [
        run for row in result_set["rows"] for run in runs_of(config, row, result_set["all_models"], seeds)
    ]


def protocol_of(wildcards):
    return config["schemes"][wildcards.scheme]["protocol"]


def train_resource(name):
    """Input function for one resource of a training job, from `protocols.<p>.resources` of the scale."""

    def get(wildcards):
        return config["protocols"][protocol_of(wildcards)]["resources"][name]

    return get


def train_threads(wildcards):
    return train_resource("threads")(wildcards)


# Helpers of the data, labels, corruption, tables and report stages.
def settings(*keys):
    """The config settings a rule's command reads, {dotted key: value}, declared as `params: settings=...` so
    that Snakemake's params rerun trigger reruns the job (and what depends on it) when one of them is edited.
    """
    return softlabels_config.settings_of(config, keys)


def report_category(name):
    """Report category of a table or figure: the thesis part its number names (table4_2 -> Chapter 4,
    tableC_1 -> Appendix C)."""
    part = name.removeprefix("table").removeprefix("fig")
    return f"Appendix {part[0]}" if part[0].isalpha() else f"Chapter {part[0]}"
