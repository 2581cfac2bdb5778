# Start-up work done once: validate the config, merge the scale preset, and define the helpers the
# stage files share (paths, input functions, wildcard constraints).
import json
import os
import re
import shlex
import sys

import yaml

from snakemake.utils import validate

from softlabels import config as softlabels_config

# Checks run in the main process only (a cluster or subprocess job re-reads this file; its run passed them).
MAIN_PROCESS = not (workflow.remote_exec or workflow.subprocess_exec)


def stop(message):
    """End the run at workflow load with one message: no traceback, no schema dump."""
    print(f"softlabels: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


# A config error is one line naming the key (a misspelled key: with the nearest valid keys), not Snakemake's
# schema dump; a `data_mirror` that is not a mirror folder is refused here, before the DAG.
softlabels_config.coerce_booleans(config)
try:
    softlabels_config.validate(config)
except softlabels_config.ConfigError as exc:
    stop(exc)
validate(config, schema="../schemas/config.schema.yaml")

# The effective configuration: the base with `scales.<scale>` merged over it, validated again.
# Mutating the global dict keeps `config[...]` in every rule file equal to what the CLI sees.
try:
    _effective = softlabels_config.resolve(config)
    if MAIN_PROCESS:
        softlabels_config.check_mirror(_effective)
except softlabels_config.ConfigError as exc:
    stop(exc)
config.clear()
config.update(_effective)

SCALE = config["scale"]
RESOURCES = config["resources_dir"]
# Rules call the `softlabels` command; make the one beside this interpreter (the venv's) win on PATH.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


envvars:
    "PATH",


# A download damaged after it was fetched is deleted here, once per run (not in each job), so that its
# fetch rule and everything built from it run again (softlabels.data.verify).
if MAIN_PROCESS:
    from softlabels.data.verify import discard_corrupt_downloads

    discard_corrupt_downloads(config, log=lambda msg: print(msg, file=sys.stderr))


wildcard_constraints:
    scheme="|".join(sorted(config["schemes"])),
    seed=r"\d+",
    source="|".join(sorted(config["sources"])),
    source_file="|".join(re.escape(s["file"]) for s in config["sources"].values()),


def requested_targets():
    """The targets named on this `snakemake` command line ([] for the default target), or None when the command
    line is not Snakemake's own (the workflow run through the Python API)."""
    if "snakemake" not in sys.argv[0]:  # `snakemake`, `.venv/bin/snakemake` or `python -m snakemake`
        return None
    try:
        from snakemake.cli import get_argument_parser

        args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    except BaseException:  # an option this parser refuses: Snakemake itself reports it
        return None
    return list(args.targets or [])


def missing_from_mirror(files):
    """The `files` (paths under resources_dir, relative) that are neither downloaded yet nor listed in the
    mirror's MANIFEST.tsv; [] without a mirror."""
    from softlabels.data.download import read_manifest

    if not config.get("data_mirror"):
        return []
    listed = read_manifest(config["data_mirror"])
    return [f for f in files if f not in listed and not os.path.exists(os.path.join(RESOURCES, f))]


def check_inputs_reachable():
    """Stop at workflow load when an input cannot be had: a source the mirror lacks (and that is not downloaded
    yet) names the file and the mirror."""
    missing = missing_from_mirror([source["file"] for source in config["sources"].values()])
    if missing:
        stop(
            f"data_mirror {config['data_mirror']} lacks {', '.join(missing)} (not listed in its MANIFEST.tsv) and "
            f"{'it is' if len(missing) == 1 else 'they are'} not under {RESOURCES}/ yet; every build reads the "
            f"sources of config 'sources'. Add the file(s) to the mirror, or leave data_mirror unset to download "
            f'them (README section "Offline use: data_mirror").'
        )


def check_network():
    """Before any job of a real run (onstart): when inputs must be downloaded (no mirror) and the sources' host
    names do not resolve, stop with one message naming data_mirror, not one failed fetch job per input."""
    from softlabels.data.download import NO_NETWORK_HINT, network_unreachable

    if config.get("data_mirror"):
        return
    todo = [s for s in config["sources"].values() if not os.path.exists(os.path.join(RESOURCES, s["file"]))]
    host = network_unreachable([s["url"] for s in todo]) if todo else None
    if host:
        stop(
            f"{len(todo)} input(s) must be downloaded (e.g. {todo[0]['file']}), but {host} cannot be "
            f"resolved. {NO_NETWORK_HINT}"
        )


def pending_rules():
    """Names of the rules with a job to run in this workflow run (None when the DAG cannot be read)."""
    try:
        return {job.rule.name for job in workflow.dag.needrun_jobs()}
    except Exception:  # the DAG's job list is Snakemake-internal
        return None


def check_cifar10c_reachable(pending):
    """Before any job (onstart): the CIFAR-10-C tar is to be fetched (evaluation.corruption.source: download,
    the paper default) but data_mirror does not list it: stop, naming the file and the setting that avoids it.
    """
    if pending is None or "fetch_cifar10c" not in pending:
        return
    tar = config["evaluation"]["corruption"]["cifar10c"]["file"]
    if missing_from_mirror([tar]):
        stop(
            f"data_mirror {config['data_mirror']} has no {tar} (not in its MANIFEST.tsv), which "
            f"evaluation.corruption.source: download needs for the chapter-5 corruption CE (the 2.9 GB published "
            f"CIFAR-10-C). Offline, generate the corrupted hold-out instead: add "
            f"--config 'evaluation={{corruption: {{source: generate}}}}' (README section \"Offline use: "
            f'data_mirror"), or add the tar to the mirror.'
        )


def valid_targets():
    """What a user can ask this workflow for: the named target rules, then each table and figure file."""
    named = sorted(r.name for r in workflow.rules if not r.output and r.name != "all")
    files = [f for f in FINAL_OUTPUTS if f.endswith((".csv", ".png")) and ".groups" not in f]
    return ["all", *named], sorted(dict.fromkeys(files))


def check_requested_targets():
    """Stop at workflow load when a requested target is no rule, no existing file and no rule's output: list the
    valid targets (and the nearest ones), instead of Snakemake's bare "No rule to produce"."""
    import difflib

    targets = requested_targets() if MAIN_PROCESS else None
    rules = list(workflow.rules)
    names = {r.name for r in rules}
    unknown = [
        t
        for t in targets or []
        if t not in names and not os.path.exists(t) and not any(r.is_producer(t) for r in rules)
    ]
    if not unknown:
        return
    named, files = valid_targets()
    near = difflib.get_close_matches(unknown[0], named + files, n=3, cutoff=0.5)
    tables = [f for f in files if f.startswith("results/tables/") and f.endswith(".csv")]
    figures = [f for f in files if f.startswith("results/figures/") and f.endswith(".png")]
    suggestion = f"; did you mean {' or '.join(near)}?" if near else "."
    message = [
        f"no rule makes the target {', '.join(repr(t) for t in unknown)}{suggestion}",
        "Valid targets (give them before --config):",
        f"  named: {', '.join(named)}",
        f"  tables: {' '.join(tables)}",
        f"  figures: {' '.join(figures)}",
        '  the HTML report: --report report.html (README section "The HTML report")',
    ]
    stop("\n".join(message))


def resource(name):
    """Path of a downloaded input under resources_dir, by its key in `sources`."""
    return os.path.join(RESOURCES, config["sources"][name]["file"])


def source_key(wildcards):
    """The `sources` key whose file is the fetch job's output."""
    return SOURCE_KEYS[wildcards.source_file]


SOURCE_KEYS = {source["file"]: key for key, source in config["sources"].items()}


def _config_options():
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


CONFIG_OPTIONS = _config_options()


def _config_options_param(wildcards, resources):
    return CONFIG_OPTIONS


def config_args():
    """The `params: config_args=config_args()` of every rule: how the job reaches this run's configuration
    (config file paths, --config overrides, scale, data_mirror, device, resources_dir). It is *not* a rerun
    trigger: a param function that takes `resources` counts as derived from the job's resources, and Snakemake
    leaves derived params out of the params it records and compares. So switching the scale, moving the mirror
    or changing the device reruns nothing by itself; what a job's output depends on is its `settings` param
    (a training group: its `specs` digests), and where a download came from is recorded in its origin sidecar.
    """
    return _config_options_param


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
from softlabels.train.runs import run_dir, runs_of


def run_metrics(runs):
    """metrics.json paths of (scheme, model, seed) runs."""
    return [f"{run_dir(*run)}/metrics.json" for run in runs]


def result_set_runs(result_set):
    """The runs behind every row of a `tables:`/`figures:` entry."""
    seeds = result_set.get("seeds", "main")
    return [
        run for row in result_set["rows"] for run in runs_of(config, row, result_set["all_models"], seeds)
    ]


def result_set_metrics(kind, wildcard):
    """Input function: the metrics.json paths of the runs behind config `<kind>.<name>`, the name being the
    job's `wildcard`."""

    def get(wildcards):
        return run_metrics(result_set_runs(config[kind][wildcards[wildcard]]))

    return get


def claim_target_metrics(wildcards):
    """metrics.json paths of the runs of every table/figure the claims target reads (config `claims.targets`)."""
    from softlabels.report.claims import target_tables

    sets = {**config["tables"], **config.get("figures", {})}
    runs = [r for t in target_tables(config, wildcards.claims_target) for r in result_set_runs(sets[t])]
    return run_metrics(list(dict.fromkeys(runs)))


def all_training_runs():
    """Every run a table or figure of the config reads."""
    runs = set()
    for kind in ("tables", "figures"):
        for result_set in (config.get(kind) or {}).values():
            runs.update(result_set_runs(result_set))
    return sorted(runs)


def train_inputs(protocol):
    """Input files of a run of `protocol` (TRAIN_DATA of train.smk, the provenance record), flattened."""
    paths = []
    for value in {**TRAIN_DATA[protocol], "provenance": PROVENANCE}.values():
        paths += [value] if isinstance(value, str) else list(value)
    return paths


#: Spec keys that say how a run was executed, not what it computes: recorded in its metrics.json, but a change
#: of them alone does not retrain a finished run (`--config device=cpu` on a finished CUDA build reruns nothing).
HOW_TO_RUN_SPEC_KEYS = ("device",)


def without_how_to_run(spec):
    return {k: v for k, v in spec.items() if k not in HOW_TO_RUN_SPEC_KEYS}


def run_status(run, spec):
    """Status of a run: "trained" / "copied" when its outputs are current (metrics.json and train_log.csv exist, the
    metrics record this spec up to the how-to-run keys, and they are newer than every input of the run), else
    False."""
    folder = run_dir(*run)
    try:
        made = min(os.stat(f"{folder}/{name}").st_mtime for name in ("metrics.json", "train_log.csv"))
    except FileNotFoundError:
        return False
    for path in train_inputs(spec["protocol_name"]):
        if not os.path.exists(path) or os.stat(path).st_mtime > made:
            return False
    try:
        with open(f"{folder}/metrics.json") as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        return False
    if without_how_to_run(metrics.get("spec") or {}) != without_how_to_run(json.loads(json.dumps(spec))):
        return False
    return "copied" if metrics.get("alias_of") else "trained"


def protocol_of(wildcards):
    return config["schemes"][wildcards.scheme]["protocol"]


def train_resource(name):
    """Input function for one resource of a per-run job, from `protocols.<p>.resources` of the scale."""

    def get(wildcards):
        return config["protocols"][protocol_of(wildcards)]["resources"][name]

    return get


def train_threads(wildcards):
    return train_resource("threads")(wildcards)


def group_outputs(group):
    """Per member and alias: metrics.json, train_log.csv, spec.json."""
    runs = list(group.members) + [alias for alias, _ in group.aliases]
    return [
        f"{run_dir(*run)}/{name}" for run in runs for name in ("metrics.json", "train_log.csv", "spec.json")
    ]


def group_spec_digests(group):
    """sha256 of the spec of each member and alias of `group` (softlabels.train.runs.spec_digest)."""
    from softlabels.train.runs import spec_digest

    runs = list(group.members) + [alias for alias, _ in group.aliases]
    return [spec_digest(without_how_to_run(RUN_SPECS[run])) for run in runs]


def group_arguments(group):
    """The --run / --alias options of `softlabels train-group`."""
    text = lambda run: f"{run[0]}/{run[1]}/{run[2]}"
    args = [f"--run {text(run)}" for run in group.members]
    args += [f"--alias {text(alias)}={text(canonical)}" for alias, canonical in group.aliases]
    return " ".join(args)


def group_resource(group, name):
    """One resource of a group job, from `protocols.<p>.resources` of the scale (a copy-only job: light)."""
    if not group.members:
        return {"gpu": 0, "mem_mb": 1000, "runtime_min": 5}[name]
    return config["protocols"][group.protocol]["resources"][name]


def glove_option(wildcards, input):
    """--glove with the group's GloVe input (a copy-only job has none)."""
    return f"--glove {input.glove}" if "glove" in input.keys() else ""


def group_threads(group):
    return group_resource(group, "threads") if group.members else 1


def print_training_plan():
    """The plan printed once when a workflow run starts (not in dry runs): runs and group jobs to do, the
    device, the time estimated from a measured step (`plan_measure_step: false` skips the measurement)."""
    from softlabels.train.plan import paper_on_cpu, training_plan_text

    pending = pending_rules()  # None: plan every group
    groups = [g for g in TRAINING_GROUPS if pending is None or f"train_{g.name.replace('-', '_')}" in pending]
    cores = workflow.resource_settings.cores
    others = 0  # the run's other jobs: each costs about one job start
    try:
        others = sum(1 for job in workflow.dag.needrun_jobs() if not job.rule.name.startswith("train_"))
    except Exception:
        pass
    text = training_plan_text(
        config,
        groups,
        RUN_SPECS,
        measure=config.get("plan_measure_step", True),
        cores=cores,
        other_jobs=others,
    )
    print(text, file=sys.stderr, flush=True)
    if any(g.members for g in groups) and paper_on_cpu(config) and not config.get("allow_paper_on_cpu"):
        warning = text.splitlines()[-1].removeprefix("  WARNING: ")
        stop(f"stopped before any job: {warning}")


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


# Helpers of the sweeps stage (sweeps.smk; TRAIN_DATA and DATA come from train.smk and data.smk).
from softlabels.train.sweeps import point_spec, sweep_dir, sweep_points


def sweep_protocol(wildcards):
    return config["schemes"][config["sweeps"]["grids"][wildcards.sweep]["scheme"]]["protocol"]


def sweep_run_inputs(wildcards):
    return {
        **TRAIN_DATA[sweep_protocol(wildcards)],
        "provenance": PROVENANCE,
        "cifar10_train": f"{DATA}/cifar10_train.npz",
    }


def sweep_run_spec(wildcards):
    return point_spec(config, wildcards.sweep, wildcards.value, int(wildcards.seed))


def sweep_run_resource(name):
    def get(wildcards):
        return config["protocols"][sweep_protocol(wildcards)]["resources"][name]

    return get


def sweep_metrics(wildcards):
    return [f"{sweep_dir(*point)}/metrics.json" for point in sweep_points(config, wildcards.sweep)]
