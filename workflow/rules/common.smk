# Start-up work done once: validate the config, merge the scale preset, and define the helpers the
# stage files share (paths, input functions, wildcard constraints).
import atexit
import json
import os
import re
import sys

from snakemake.utils import validate

# Everything the rules use from the package comes from this one module.
from softlabels.workflow import (
    softlabels_config,
    NO_NETWORK_HINT,
    network_unreachable,
    read_manifest,
    discard_corrupt_downloads,
    TrainingGroup,
    config_groups,
    HOW_TO_RUN_SPEC_KEYS,
    file_digest,
    run_dir,
    run_is_current,
    run_key,
    runs_of,
    spec_digest,
    active_grids,
    selection_file,
    spec_sweeps,
    point_spec,
    sweep_dir,
    sweep_points,
    validation_settings,
    claims_setting_keys,
    target_tables,
    FIGURE_CHAPTER,
    FIGURE_INPUTS,
    FIGURE_SETTINGS,
    REPRODUCTION_METRICS,
    RUN_FIGURES,
    result_set,
    SUMMARY_SETTINGS,
    table_setting_keys,
    PAPER_ON_CPU,
    paper_on_cpu,
    training_plan_text,
)

# Checks run in the main process only (a cluster or subprocess job re-reads this file; its run passed them).
MAIN_PROCESS = not (workflow.remote_exec or workflow.subprocess_exec)


def stop(message):
    """End the run at workflow load with one message: no traceback, no schema dump."""
    print(f"softlabels: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


# The effective configuration (`softlabels.config.resolve`): the package's defaults (the pinned inputs of
# src/softlabels/data/pinned.yaml, the thesis' schemes, tables and figures of
# src/softlabels/experiments/catalogue.yaml) under the user's config, `scales.<scale>` merged over it, and
# validated before and after the merge. A config error is one line naming the key (a misspelled key: with the
# nearest valid keys), not Snakemake's schema dump; a `data_mirror` that is not a mirror folder is refused here,
# before the DAG. Mutating the global dict keeps `config[...]` in every rule file equal to what the CLI sees.
softlabels_config.coerce_booleans(config)
try:
    _effective = softlabels_config.resolve(config)
    if MAIN_PROCESS:
        softlabels_config.check_mirror(_effective)
except softlabels_config.ConfigError as exc:
    stop(exc)
validate(_effective, schema="../schemas/config.schema.yaml")
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


def network_stop():
    """When inputs must be downloaded (no mirror) and the sources' host names do not resolve: the one message
    naming data_mirror that ends a real run before its first job (instead of one failed fetch job per input).
    """
    if config.get("data_mirror"):
        return None
    todo = [s for s in config["sources"].values() if not os.path.exists(os.path.join(RESOURCES, s["file"]))]
    host = network_unreachable([s["url"] for s in todo]) if todo else None
    if not host:
        return None
    return (
        f"{len(todo)} input(s) must be downloaded (e.g. {todo[0]['file']}), but {host} cannot be "
        f"resolved. {NO_NETWORK_HINT}"
    )


def pending_rules():
    """Names of the rules with a job to run in this workflow run (None when the DAG cannot be read)."""
    try:
        return {job.rule.name for job in workflow.dag.needrun_jobs()}
    except Exception:  # the DAG's job list is Snakemake-internal
        return None


def cifar10c_stop(pending):
    """The CIFAR-10-C tar is to be fetched (evaluation.corruption.source: download, the paper default) but
    data_mirror does not list it: the message naming the file and the setting that avoids it."""
    if pending is None or "fetch_cifar10c" not in pending:
        return None
    tar = config["evaluation"]["corruption"]["cifar10c"]["file"]
    if not missing_from_mirror([tar]):
        return None
    return (
        f"data_mirror {config['data_mirror']} has no {tar} (not in its MANIFEST.tsv), which "
        f"evaluation.corruption.source: download needs for the chapter-5 corruption CE (the 2.9 GB published "
        f"CIFAR-10-C). Offline, generate the corrupted hold-out instead: add "
        f"--config 'evaluation={{corruption: {{source: generate}}}}' (README section \"Offline use: "
        f'data_mirror"), or add the tar to the mirror.'
    )


def stops_before_any_job(pending):
    """The messages that end a real run before its first job, for the rules with a job to run (`pending`): an
    input that cannot be had (the CIFAR-10-C tar, no network). The paper scale on a CPU stops after the plan
    (print_training_plan)."""
    return [m for m in (cifar10c_stop(pending), network_stop()) if m]


def check_inputs_before_any_job():
    """onstart: stop on the first input that cannot be had."""
    for message in stops_before_any_job(pending_rules()):
        stop(message)


def paper_on_cpu_refused():
    """The paper scale on a CPU without `allow_paper_on_cpu: true`: a run that trains stops before any job."""
    return paper_on_cpu(config) and not config.get("allow_paper_on_cpu")


def note_stops_of_dry_run():
    """At the end of a dry run (`-n`, where onstart never runs): print each stop a real run of the same plan
    would make before its first job, so that the dry run shows it too."""
    if not workflow.dryrun:
        return
    try:
        pending = {job.rule.name for job in workflow.dag.needrun_jobs(exclude_finished=False)}
    except Exception:  # no DAG (the dry run failed earlier) or Snakemake-internal change: nothing to add
        return
    messages = stops_before_any_job(pending)
    if any(r.startswith("train_chapter") for r in pending) and paper_on_cpu_refused():
        messages.append(PAPER_ON_CPU.format(estimate="its training takes days here"))
    for message in messages:
        print(f"softlabels: a real run would stop before any job: {message}", file=sys.stderr, flush=True)


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


def run_metrics(runs):
    """metrics.json paths of (scheme, model, seed) runs."""
    return [f"{run_dir(*run)}/metrics.json" for run in runs]


def result_set_runs(result_set):
    """The runs behind every row of a `tables:`/`figures:` entry."""
    seeds = result_set.get("seeds", "main")
    return [
        run for row in result_set["rows"] for run in runs_of(config, row, result_set["all_models"], seeds)
    ]


def group_records(runs):
    """The records of the group jobs that make `runs` (train.smk): what a table or figure job waits for."""
    return sorted({group_record(GROUP_OF_RUN[run]) for run in runs})


def result_set_of(kind, wildcard):
    """The runs behind config `<kind>.<name>`, the name being the job's `wildcard`."""
    return lambda wildcards: result_set_runs(config[kind][wildcards[wildcard]])


def result_set_inputs(kind, wildcard):
    """Input function: the group records of the runs behind config `<kind>.<name>`."""
    runs = result_set_of(kind, wildcard)
    return lambda wildcards: group_records(runs(wildcards))


def result_set_metrics(kind, wildcard):
    """Params function: the metrics.json paths of the runs behind config `<kind>.<name>` (what the command
    reads; the group records, its inputs, say when they were made)."""
    runs = result_set_of(kind, wildcard)
    return lambda wildcards: " ".join(run_metrics(runs(wildcards)))


def claim_target_runs(wildcards):
    """The runs of every table/figure the claims target reads (config `claims.targets`)."""
    tables = target_tables(config, wildcards.claims_target)
    runs = [r for t in tables for r in result_set_runs(result_set(config, t))]
    return list(dict.fromkeys(runs))


def claims_scheme_keys(targets):
    """`schemes.<row>` of every row of the tables and figures the claims `targets` read: the claims command
    builds their runs and cells from them."""
    rows = {
        row
        for target in targets
        for table in target_tables(config, target)
        for row in result_set(config, table)["rows"]
    }
    return [f"schemes.{row}" for row in sorted(rows)]


def all_training_runs():
    """Every run a table or figure of the config reads."""
    runs = set()
    for kind in ("tables", "figures"):
        for result_set in (config.get(kind) or {}).values():
            runs.update(result_set_runs(result_set))
    return sorted(runs)


def group_runs(group):
    """The members and aliases of a training group."""
    return list(group.members) + [alias for alias, _ in group.aliases]


def group_record(group):
    """The output of a group job (rule train_<protocol>)."""
    return f"results/runs/.groups/{group.protocol}/{group.name}.json"


def group_pattern(protocol):
    """Wildcard constraint of `group` in the train_<protocol> rules, the names of its groups."""
    names = [re.escape(g.name) for g in TRAINING_GROUPS if g.protocol == protocol]
    return "|".join(names) or f"no-{protocol}-group"


def group_of(wildcards):
    return GROUPS[(wildcards.protocol, wildcards.group)]


def train_data_files(protocol):
    """Input files of a run of `protocol` (TRAIN_DATA of train.smk), flattened."""
    paths = []
    for value in TRAIN_DATA[protocol].values():
        paths += [value] if isinstance(value, str) else list(value)
    return paths


def group_selection_files(group):
    """The selection files of the sweeps whose values the group's runs use (config sweeps.apply)."""
    sweeps = {sweep for run in group_runs(group) for sweep in spec_sweeps(RUN_SPECS[run])}
    return [selection_file(sweep) for sweep in sorted(sweeps)]


def group_input_files(group):
    """Input files of a group job: its protocol's data and its sweeps' selections; what its run keys digest."""
    return train_data_files(group.protocol) + group_selection_files(group)


def group_data(wildcards):
    return group_input_files(group_of(wildcards))


def group_selections(wildcards):
    """The --selections option of `softlabels train-group` (empty when the runs use configured values only)."""
    files = group_selection_files(group_of(wildcards))
    return f"--selections {' '.join(files)}" if files else ""


def protocol_resource(name):
    """Resource `name` of a group job, from `protocols.<protocol>.resources` of the scale."""
    return lambda wildcards: config["protocols"][wildcards.protocol]["resources"][name]


def group_specs(wildcards):
    """The specs of the group's members and aliases as JSON {"scheme/model/seed": spec}, without the how-to-run
    keys (the device comes with the run options): the group job's settings, what `softlabels train-group
    --specs` trains, and its params rerun trigger (an edit that changes a member's spec reruns the job)."""
    specs = {
        "/".join(map(str, run)): {k: v for k, v in RUN_SPECS[run].items() if k not in HOW_TO_RUN_SPEC_KEYS}
        for run in group_runs(group_of(wildcards))
    }
    return json.dumps(specs, sort_keys=True)


def group_arguments(wildcards):
    """The --run / --alias options of `softlabels train-group`."""
    group = group_of(wildcards)
    text = lambda run: f"{run[0]}/{run[1]}/{run[2]}"
    args = [f"--run {text(run)}" for run in group.members]
    args += [f"--alias {text(alias)}={text(canonical)}" for alias, canonical in group.aliases]
    return " ".join(args)


def current_run_keys(group, digests):
    """{run: run_key} of the group's members and aliases under this config, from its input `digests`."""
    return {run: run_key(RUN_SPECS[run], digests) for run in group_runs(group)}


def input_digests(groups):
    """sha256 of each group's input files, {group name: [digest]}; a group with a missing input is left out
    (its job waits for that input, and runs after it is made)."""
    by_path = {}
    digests = {}
    for group in groups:
        paths = group_input_files(group)
        if all(os.path.exists(p) for p in paths):
            digests[group.name] = [by_path.setdefault(p, file_digest(p)) for p in paths]
    return digests


def discard_stale_group_records():
    """At start-up (dry runs too): delete the record of a group job whose runs no longer hold what the job
    made, i.e. a run the record lists is not run_is_current under the run_key it lists (its folder was
    deleted, or another build overwrote it), so that the job runs again. Only the record's own runs are
    judged: a config edit (other members, other specs) changes the job's params, and Snakemake's params
    trigger reruns it."""
    for group in TRAINING_GROUPS:
        record = group_record(group)
        try:
            with open(record) as f:
                made = dict(json.load(f)["run_keys"])
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            made = {"record": None}  # unreadable or from before run keys: made again
        stale = [
            run for run, key in made.items() if not key or not run_is_current(run_dir(*run.split("/")), key)
        ]
        if stale:
            os.remove(record)
            print(
                f"{record}: run {stale[0]} no longer holds what this group job made (its metrics.json lacks the "
                f"run_key the record lists); the job runs again",
                file=sys.stderr,
            )


def runs_to_train(groups):
    """The members of `groups` that are not current (all of them where an input is not made yet)."""
    digests = input_digests(groups)
    todo = []
    for group in groups:
        keys = current_run_keys(group, digests[group.name]) if group.name in digests else {}
        todo += [
            run for run in group.members if run not in keys or not run_is_current(run_dir(*run), keys[run])
        ]
    return todo


def print_training_plan():
    """The plan printed once when a workflow run starts (not in dry runs): runs and group jobs to do, the
    device, the time estimated from a measured step (`plan_measure_step: false` skips the measurement)."""
    try:
        jobs = list(workflow.dag.needrun_jobs())
    except Exception:  # the DAG's job list is Snakemake-internal: plan every group
        jobs = None
    if jobs is None:
        pending = TRAINING_GROUPS
    else:
        pending = [group_of(j.wildcards) for j in jobs if j.rule.name.startswith("train_chapter")]
    todo = set(runs_to_train(pending))
    groups = [
        TrainingGroup(g.name, g.protocol, g.model, [r for r in g.members if r in todo], g.aliases)
        for g in pending
    ]
    # sweep points are trained one per job: each a group of one in the plan
    points = [j.wildcards for j in jobs or [] if j.rule.name == "sweep_run"]
    specs = dict(RUN_SPECS)
    for w in points:
        run = (f"sweep {w.sweep}={w.value}", w.model, int(w.seed))
        specs[run] = point_spec(config, w.sweep, w.value, int(w.seed))
        groups.append(
            TrainingGroup(f"sweep.{w.sweep}.{w.value}", specs[run]["protocol_name"], w.model, [run], [])
        )
    training = ("train_chapter", "sweep_run")
    others = 0 if jobs is None else sum(1 for j in jobs if not j.rule.name.startswith(training))
    text = training_plan_text(
        config,
        groups,
        specs,
        measure=config.get("plan_measure_step", True),
        cores=workflow.resource_settings.cores,
        other_jobs=others,
        sweep_points=len(points),
    )
    print(text, file=sys.stderr, flush=True)
    if any(g.members for g in groups) and paper_on_cpu_refused():
        warning = text.splitlines()[-1].removeprefix("  WARNING: ")
        stop(f"stopped before any job: {warning}")


# Helpers of the data, labels, corruption, tables and report stages.
def settings(*keys):
    """The config settings a rule's command reads, as JSON {dotted key: value}: declared as `params:
    settings=settings(...)`, it is both Snakemake's params rerun trigger (an edit of one of them reruns the
    job and what depends on it) and the one channel the command receives (`--settings {params.settings:q}`,
    softlabels.config.declared_config): a command reading a key not declared here fails."""
    return json.dumps(softlabels_config.settings_of(config, keys), sort_keys=True)


def _run_options_param(wildcards, resources):
    return json.dumps({k: config.get(k) for k in softlabels_config.RUN_OPTION_KEYS})


def run_options():
    """The `params: run_options=run_options()` of each rule whose command reads the config. How the job runs
    (data_mirror, resources_dir, device, torch_threads, download), handed over as `--run-options`. Not a
    rerun trigger (a param function that takes `resources` is derived, left out of what Snakemake compares),
    so moving the mirror or changing the device reruns nothing."""
    return _run_options_param


def report_category(name):
    """Report category of a table or figure: the thesis part its number names (table4_2 -> Chapter 4,
    tableC_1 -> Appendix C)."""
    part = name.removeprefix("table").removeprefix("fig")
    return f"Appendix {part[0]}" if part[0].isalpha() else f"Chapter {part[0]}"


# Helpers of the sweeps stage (sweeps.smk; TRAIN_DATA and DATA come from train.smk and data.smk).


def sweep_protocol(wildcards):
    return config["schemes"][config["sweeps"]["grids"][wildcards.sweep]["scheme"]]["protocol"]


def sweep_run_inputs(wildcards):
    return {
        **TRAIN_DATA[sweep_protocol(wildcards)],
        "provenance": PROVENANCE,
        "validation": f"{DATA}/validation.npz",
    }


def validation_split_inputs(wildcards):
    """The files `softlabels validation-split` reads: the training batches (source cifar10_train), or the parsed
    test set, split, responses and stimuli that say which split images the runs train on (unused_split)."""
    if config["sweeps"]["validation"].get("source", "cifar10_train") == "cifar10_train":
        return {"train": f"{DATA}/cifar10_train.npz"}
    inputs = {
        key: TRAIN_DATA["chapter4"][key]
        for key in ("cifar10", "splits", "cifar10h", "cifar10s", "hmix_stimuli")
    }
    if config.get("own_responses"):
        inputs["own"] = CHAPTER3_RESPONSES
    return inputs


def glove_option(wildcards, input):
    """--glove with the job's GloVe input."""
    return f"--glove {input.glove}" if "glove" in input.keys() else ""


def sweep_run_spec(wildcards):
    """JSON of the sweep point's spec without the how-to-run keys (the device comes with --run-options)."""
    spec = point_spec(config, wildcards.sweep, wildcards.value, int(wildcards.seed))
    return json.dumps({k: v for k, v in spec.items() if k not in HOW_TO_RUN_SPEC_KEYS}, sort_keys=True)


def sweep_run_resource(name):
    def get(wildcards):
        return config["protocols"][sweep_protocol(wildcards)]["resources"][name]

    return get


def sweep_metrics(wildcards):
    return [f"{sweep_dir(*point)}/metrics.json" for point in sweep_points(config, wildcards.sweep)]
