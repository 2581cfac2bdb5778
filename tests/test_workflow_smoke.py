"""Smoke build of table 3.1 through Snakemake from the data mirror: raw inputs -> parsed data -> five training
runs (scale smoke: one epoch of the 8-layer ResNet) -> results/tables/table3_1.csv/.md.

The numbers are meaningless at this scale; the test checks the plumbing: every run of the table was trained
with the smoke settings, the table has every row × eval set × metric with finite values and the thesis values
beside them, and a second invocation has nothing left to do. It needs the mirror (SOFTLABELS_DATA_MIRROR)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

pytestmark = [pytest.mark.mirror, pytest.mark.slow]

TARGET = "results/tables/table3_1.csv"
ROWS = ["hard", "random", "uniform", "cifar10h_agg", "cifar10s_agg"]


def test_table3_1_smoke_build(smoke_workdir, data_mirror, snakemake_runner):
    config = ["--config", "scale=smoke", f"data_mirror={data_mirror}"]
    done = snakemake_runner(smoke_workdir, "--cores", "2", TARGET, *config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

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

    # every run records the settings that produced it
    for row in ROWS:
        run = smoke_workdir / f"results/runs/{row}/resnet8a/seed0"
        metrics = json.loads((run / "metrics.json").read_text())
        spec = json.loads((run / "spec.json").read_text())
        assert metrics["spec"] == spec and spec["scale"] == "smoke" and spec["scheme"] == row
        assert metrics["cifar10s"]["n"] == 100 and metrics["cifar10h"]["n"] == 200
        assert metrics["train"]["n_soft"] == 900 and metrics["train"]["n_hard"] == 200
        assert len(pd.read_csv(run / "train_log.csv")) == spec["protocol"]["epochs"]

    # a second invocation has nothing left to do
    again = snakemake_runner(smoke_workdir, "-n", "--cores", "2", TARGET, *config)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing to be done" in again.stdout + again.stderr
