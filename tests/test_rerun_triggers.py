"""A config edit reruns exactly what depends on it (Snakemake's params rerun trigger).

Every rule declares the settings its command reads as `params: settings=settings(...)`. Here the non-training
outputs of a smoke workdir are built once from the mirror; then one key at a time is edited in the workdir's
config.yaml and the dry run must list exactly the jobs whose command reads that key, plus the jobs downstream of
them, and no others. The config file keeps its path (the rules' command lines name it), only its text changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = [pytest.mark.mirror, pytest.mark.slow]

# Training jobs: one rule per protocol, each job one group of runs (workflow/rules/train.smk).
TRAIN_RULES = ("train_chapter3", "train_chapter4", "train_chapter5")

# Jobs whose command builds CIFAR-10S labels (labels.gamma, labels.redistribution_path) and H-Mix soft labels
# (labels.gamma, labels.hmix_redistribution_path).
CIFAR10S_LABEL_READERS = {
    "export_cifar10s_labels",
    "cifar10s_summary",
    *(f"data_figure[{name}]" for name in ("fig3_2", "fig3_3", "fig3_4", "figB_1", "figB_2")),
}
HMIX_LABEL_READERS = {"export_hmix_soft_labels", "hmix_summary", "data_figure[fig5_1]"}
LABEL_READERS = CIFAR10S_LABEL_READERS | HMIX_LABEL_READERS
# Jobs that only render another job's output.
DOWNSTREAM = {
    "cifar10s_summary": {"summary_html[cifar10s_summary]"},
    "hmix_summary": {"summary_html[hmix_summary]"},
}


def with_downstream(jobs: set[str]) -> set[str]:
    return jobs | {d for job in jobs for d in DOWNSTREAM.get(job, ())}


def snakemake(built, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """This checkout's workflow at smoke scale on built = (workdir, its config.yaml, the data mirror)."""
    workdir, config, mirror = built
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(config), *args, "--config", "scale=smoke", f"data_mirror={mirror}"]  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def non_training(built) -> list[str]:
    """Every non-training target: `all` without the training group jobs (and what is built from them) and
    without the corrupted hold-out, which only chapter-5 runs read."""
    done = snakemake(built, "--list-rules")
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(TRAIN_RULES) <= set(done.stdout.split()), done.stdout
    return ["--omit-from", *TRAIN_RULES, "corrupt_holdout"]


def training_jobs(jobs: set[str]) -> tuple[set[str], int]:
    """The planned jobs with every training group job written `train_group`, and the number of those."""
    groups = {job for job in jobs if job.startswith(TRAIN_RULES)}
    return {"train_group" if job in groups else job for job in jobs}, len(groups)


# Wildcard rules with one job per item of the config (a source, a table, a figure, a group of runs): their jobs
# are told apart by their wildcard values, `data_figure[fig3_2]`.
ITEM_RULES = {"fetch", "table", "run_figure", "data_figure", "chapter_tables", "summary_html", *TRAIN_RULES}


def planned_jobs(done: subprocess.CompletedProcess) -> set[str]:
    """The dry run's jobs, each as its rule name, for an ITEM_RULES job followed by its wildcard values in
    brackets (empty when nothing is to be done)."""
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-3000:]
    jobs = set()
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", text, flags=re.MULTILINE)[1:]:
        name = re.match(r"(?:local)?rule (\w+):", block).group(1)
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.MULTILINE)
        values = [item.split("=", 1)[1] for item in wildcards.group(1).split(", ")] if wildcards else []
        jobs.add(f"{name}[{','.join(values)}]" if name in ITEM_RULES else name)
    return jobs


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_mirror):
    """(workdir, its config.yaml) with every non-training smoke output built from the mirror."""
    workdir = tmp_path_factory.mktemp("rerun")
    config = workdir / "config.yaml"
    shutil.copy(REPO / "config.yaml", config)
    built = (workdir, config, data_mirror)
    done = snakemake(built, "--cores", "2", *non_training(built))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert planned_jobs(snakemake(built, "-n", *non_training(built))) == set()
    return built


def dry_run_after_edit(built, key: str, value) -> set[str]:
    """The jobs a dry run plans after setting the dotted `key` to `value` in the workdir's config.yaml (the
    file is restored afterwards)."""
    config = built[1]
    original = config.read_text()
    data = yaml.safe_load(original)
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    assert node.get(last) != value, f"{key} is already {value!r}: the edit would change nothing"
    node[last] = value
    try:
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        return planned_jobs(snakemake(built, "-n", *non_training(built)))
    finally:
        config.write_text(original)


def other(options, current):
    return next(v for v in options if v != current)


def current(key: str):
    node = yaml.safe_load((REPO / "config.yaml").read_text())
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def test_labels_gamma_reruns_every_label_reader(built):
    jobs = dry_run_after_edit(built, "labels.gamma", 0.3)
    # the simulator fit uses γ for its T2-Clamp statistics; the default export's file name carries γ·100
    assert jobs == with_downstream(LABEL_READERS | {"fit_simulator"})


def test_redistribution_path_reruns_the_cifar10s_label_readers(built):
    value = other(["documented", "released_code"], current("labels.redistribution_path"))
    jobs = dry_run_after_edit(built, "labels.redistribution_path", value)
    assert jobs == with_downstream(CIFAR10S_LABEL_READERS)


def test_hmix_redistribution_path_reruns_the_hmix_label_readers(built):
    value = other(["documented", "hmix_release"], current("labels.hmix_redistribution_path"))
    jobs = dry_run_after_edit(built, "labels.hmix_redistribution_path", value)
    assert jobs == with_downstream(HMIX_LABEL_READERS)


def test_tau_stimuli_reruns_the_tau_fit_only(built):
    value = other(["all", "first_collection"], current("labels.tau_stimuli"))
    assert dry_run_after_edit(built, "labels.tau_stimuli", value) == {"fit_class_pair_taus"}


def test_calibration_bin_size_reruns_no_data_or_label_job(built):
    # only training runs read it (their spec); see test_training_triggers below
    assert dry_run_after_edit(built, "evaluation.calibration.bin_size", 50) == set()


def test_low_entropy_max_reruns_summaries_and_fig4_5(built):
    jobs = dry_run_after_edit(built, "summaries.low_entropy_max", 0.05)
    assert jobs == with_downstream({"cifar10s_summary", "hmix_summary", "data_figure[fig4_5]"})


# --------------------------------------------------------------------------------------------------------------
# Training-run triggers: a run is planned again exactly when its spec changes (workflow/rules/train.smk: group
# jobs formed from the config; at smoke scale group_size is 1, so one group job per run).
# --------------------------------------------------------------------------------------------------------------
TABLE = "results/tables/table3_1.csv"
TABLE3_1_RUNS = 5  # rows hard, random, uniform, cifar10h_agg, cifar10s_agg × resnet8a × seed 0 at smoke


def test_training_triggers(built):
    config = built[1]
    done = snakemake(built, "--cores", "2", TABLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert planned_jobs(snakemake(built, "-n", TABLE)) == set()

    def after(key, value):
        original = config.read_text()
        data = yaml.safe_load(original)
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
        try:
            config.write_text(yaml.safe_dump(data, sort_keys=False))
            return training_jobs(planned_jobs(snakemake(built, "-n", TABLE)))
        finally:
            config.write_text(original)

    # a protocol key: every chapter-3 run of the table retrains, then the table; no data or label job
    jobs, n_groups = after("protocols.chapter3.grad_clip", 2.0)
    assert jobs == {"train_group", "table[table3_1]"}
    assert n_groups == TABLE3_1_RUNS
    # an evaluation key read by the runs
    jobs, n_groups = after("evaluation.calibration.bin_size", 50)
    assert jobs == {"train_group", "table[table3_1]"} and n_groups == TABLE3_1_RUNS
    # a key only other chapters read: nothing
    assert after("protocols.chapter4.grad_clip", 2.0)[0] == set()
    # another grouping (a dry run with a second seed, in pairs) leaves the records of this one alone
    original = config.read_text()
    data = yaml.safe_load(original)
    data["scales"]["smoke"]["protocols"]["chapter3"].update(seeds=[0, 1], group_size=2)
    try:
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        assert training_jobs(planned_jobs(snakemake(built, "-n", TABLE)))[1] == TABLE3_1_RUNS
    finally:
        config.write_text(original)
    assert planned_jobs(snakemake(built, "-n", TABLE)) == set()
    # a run folder deleted: its group record is discarded at start-up, and the record's job is planned again
    record = "results/runs/.groups/chapter3/resnet8a.hard.seed0.json"
    shutil.rmtree(built[0] / "results/runs/hard/resnet8a/seed0")
    assert planned_jobs(snakemake(built, "-n", record)) == {"train_chapter3[chapter3,resnet8a.hard.seed0]"}


# --------------------------------------------------------------------------------------------------------------
# How-to-run values are no trigger: switching the scale leaves the downloads and parsed data alone and retrains
# nothing whose spec is unchanged; moving the mirror, or changing device / torch_threads, reruns nothing.
# --------------------------------------------------------------------------------------------------------------
QUICK_TABLE3_1_RUNS = 15  # quick: the same 5 rows × resnet8a × 3 seeds
# the sweeps' validation split (unused split images) needs the parsed H-Mix stimuli, which the smoke table 3.1 never
# parsed: first builds, not reruns
QUICK_TABLE3_1_JOBS = {"train_group", "table[table3_1]", "validation_split", "sweep_run", "sweep_table",
                       "parse_hmix_judgments", "parse_hmix_soft", "parse_hmix_stimuli"}


def test_scale_mirror_and_device_switches_rebuild_only_what_differs(tmp_path_factory, data_mirror):
    workdir = tmp_path_factory.mktemp("switch")
    config = workdir / "config.yaml"
    shutil.copy(REPO / "config.yaml", config)
    moved = tmp_path_factory.mktemp("moved") / "mirror"
    shutil.copytree(data_mirror, moved)

    def plan(*overrides: str, mirror: Path = data_mirror) -> tuple[set[str], int]:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(config), "-n", TABLE, "--config", f"data_mirror={mirror}", *overrides]  # fmt: skip
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
        return training_jobs(planned_jobs(done))

    done = snakemake((workdir, config, data_mirror), "--cores", "2", TABLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # quick: only the runs (their spec names the scale), the sweeps whose selections they use (quick applies them:
    # the learning rate and γ, on their validation split, and the H-Mix parses that split needs) and the table; no fetch
    # and no provenance job
    assert plan("scale=quick") == (QUICK_TABLE3_1_JOBS, QUICK_TABLE3_1_RUNS)
    # back to smoke after planning quick: everything built at smoke is current
    assert plan("scale=smoke") == (set(), 0)
    # the mirror moved elsewhere (same files): nothing, although every fetch command names the new path
    assert plan("scale=smoke", mirror=moved) == (set(), 0)
    # how the runs execute: nothing
    assert plan("scale=smoke", "device=cpu") == (set(), 0)
    assert plan("scale=smoke", "torch_threads=1") == (set(), 0)
    # and quick from the moved mirror plans the same jobs as quick from the original one
    assert plan("scale=quick", mirror=moved) == (QUICK_TABLE3_1_JOBS, QUICK_TABLE3_1_RUNS)
