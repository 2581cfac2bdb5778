"""Smoke build of table 3.1 through Snakemake from the data mirror: raw inputs -> parsed data -> five training
runs (scale smoke: one epoch of the 8-layer ResNet) -> results/tables/table3_1.csv/.md.

The numbers are meaningless at this scale; the test checks the plumbing: every run of the table was trained
with the smoke settings, the table has every row × eval set × metric with finite values and the thesis values
beside them, and a second invocation has nothing left to do. It needs the mirror (SOFTLABELS_DATA_MIRROR)."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from conftest import REPO

pytestmark = [pytest.mark.mirror, pytest.mark.slow]

TARGET = "results/tables/table3_1.csv"
ROWS = ["hard", "random", "uniform", "cifar10h_agg", "cifar10s_agg"]


def test_table3_1_smoke_build(smoke_workdir, data_mirror, snakemake_runner):
    config = ["--config", "scale=smoke", f"data_mirror={data_mirror}"]
    # the shared smoke workdir may already hold these runs (other test modules build `all` there)
    trained_before = [row for row in ROWS if (smoke_workdir / f"results/runs/{row}/resnet8a/seed0/metrics.json").exists()]
    done = snakemake_runner(smoke_workdir, "--cores", "2", TARGET, *config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the plan is printed once, at the start, and counts exactly the runs still to train
    to_train = len(ROWS) - len(trained_before)
    if to_train or "Nothing to be done" not in done.stderr:  # Snakemake runs `onstart` only when a job runs
        assert done.stderr.count("training plan: ") == 1, done.stderr[:3000]
        plan = f"training plan: {to_train} run(s) to train in {to_train} group job(s)"
        assert plan in done.stderr, done.stderr[:3000]
    assert ("estimated training time" in done.stderr) == (to_train > 0), done.stderr[:3000]
    assert "WARNING: this is the paper scale" not in done.stderr

    table = pd.read_csv(smoke_workdir / TARGET)
    assert list(dict.fromkeys(table["row"])) == ROWS
    assert set(table["eval_set"]) == {"cifar10h", "cifar10s"}
    core = table[table["metric"].isin(["ce", "calibration", "fgsm"])]
    assert len(core) == len(ROWS) * 2 * 3
    assert core["mean"].map(math.isfinite).all() and (core["n_runs"] == 1).all()
    assert (core["scale"] == "smoke").all() and (core["models"] == "resnet8a").all()
    assert core["thesis_value"].notna().all()  # every cell of table 3.1 has a thesis value
    md = (smoke_workdir / TARGET).with_suffix(".md").read_text()
    assert "CIFAR-10S hold-out" in md and "2.026 ± 0.180" in md
    # how the runs were made, end to end: precision and device from the runs, and the mirror's CIFAR-10
    # archive (marked APPROXIMATION in its MANIFEST) flagged in the table and in plain words in its .md
    assert (table["precision"] == "fp32").all() and (table["device"] == "cpu").all()
    assert (table["approximate_inputs"] == "cifar10").all(), table["approximate_inputs"].unique()
    assert "**Approximate inputs" in md and "Input provenance unrecorded" not in md

    # every run records the settings that produced it
    for row in ROWS:
        run = smoke_workdir / f"results/runs/{row}/resnet8a/seed0"
        metrics = json.loads((run / "metrics.json").read_text())
        spec = json.loads((run / "spec.json").read_text())
        assert metrics["spec"] == spec and spec["scale"] == "smoke" and spec["scheme"] == row
        assert metrics["cifar10s"]["n"] == 100 and metrics["cifar10h"]["n"] == 200
        assert metrics["train"]["n_soft"] == 900 and metrics["train"]["n_hard"] == 200
        assert len(pd.read_csv(run / "train_log.csv")) == spec["protocol"]["epochs"]
        inputs = metrics["provenance"]["inputs"]
        assert inputs["cifar10"]["approximate"] is True and inputs["cifar10s_raw"]["approximate"] is False

    # a second invocation has nothing left to do
    again = snakemake_runner(smoke_workdir, "-n", "--cores", "2", TARGET, *config)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing to be done" in again.stdout + again.stderr


def _planned_runs(output: str) -> list[list[str]]:
    """The --run arguments of each `softlabels train-group` command of a dry run's printed shell commands."""
    return [re.findall(r"--run (\S+)", line) for line in output.splitlines() if "softlabels train-group" in line]


def test_new_seeds_and_edited_schemes_train_only_what_changed(smoke_workdir, data_mirror, snakemake_runner):
    """After the smoke build: one more seed with group_size 2 plans group jobs (formed from the config) that each
    hold a new run; an edited scheme reruns only the group of its run, then the table. Which members a group
    job trains (those that are not current) is tested in tests/test_fused_plan.py."""
    config = ["--config", "scale=smoke", f"data_mirror={data_mirror}"]
    assert (smoke_workdir / "results/runs/hard/resnet8a/seed0/metrics.json").exists(), "run the smoke build first"
    extra = smoke_workdir / "more_seeds.yaml"
    extra.write_text("scales:\n  smoke:\n    protocols:\n      chapter3: {seeds: [0, 1], group_size: 2}\n")
    plan = snakemake_runner(smoke_workdir, "-n", "-p", TARGET, "--configfile", str(REPO / "config.yaml"), str(extra), *config)
    assert plan.returncode == 0, plan.stderr[-3000:]
    groups = _planned_runs(plan.stdout + plan.stderr)
    planned = {r for g in groups for r in g}
    # Groups of two cut from the config's runs (seed 0 and seed 1 of a row share one): every new run is
    # planned, and every planned job holds one (a job skips its members that are current).
    assert groups and all(1 <= len(g) <= 2 for g in groups) and any(len(g) == 2 for g in groups)
    assert {f"{row}/resnet8a/1" for row in ROWS} <= planned
    assert all(any(run.endswith("/1") for run in g) for g in groups)
    edited = smoke_workdir / "edited_scheme.yaml"
    edited.write_text("schemes:\n  cifar10s_agg: {M: 5}\n")
    plan = snakemake_runner(smoke_workdir, "-n", "-p", TARGET, "--configfile", str(REPO / "config.yaml"), str(edited), *config)
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = {r for g in _planned_runs(plan.stdout + plan.stderr) for r in g}
    assert planned & {f"{row}/resnet8a/0" for row in ROWS} == {"cifar10s_agg/resnet8a/0"}
    assert "wildcards: table=table3_1" in plan.stdout + plan.stderr


def test_each_protocols_first_group_builds_alone_from_an_empty_workdir(tmp_path, data_mirror, snakemake_runner):
    """A training job declares every file it reads: one group record per protocol, each asked alone in its own
    empty working directory (no table, sweep or other protocol's group to build a shared input first), builds
    and trains. Guards against a run that reads an undeclared file which another job happened to build earlier
    (chapter 5's augmenting endpoints read hmix_stimuli.npz, which only chapter 4 declared)."""
    config = ["--config", "scale=smoke", f"data_mirror={data_mirror}"]
    plan = snakemake_runner(tmp_path / "plan", "-n", "--cores", "2", "all", *config)
    assert plan.returncode == 0, plan.stderr[-3000:]
    first = {}
    for record in sorted(set(re.findall(r"results/runs/\.groups/chapter\d/[\w.\-]+\.json", plan.stdout))):
        first.setdefault(record.split("/")[3], record)
    assert sorted(first) == ["chapter3", "chapter4", "chapter5"], plan.stdout[-2000:]
    for protocol, record in first.items():
        work = tmp_path / protocol
        done = snakemake_runner(work, "--cores", "2", record, *config)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        assert json.loads((work / record).read_text())["trained"], record
