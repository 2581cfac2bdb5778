"""One complete round on CIFAR-10 images, as the README walks through it: a study over CIFAR-10 test images of
the training split, simulated participants answering over HTTP, `softlabels elicit export`, then
`snakemake results/tables/table3_4.csv --config own_responses=...` at smoke scale. Also: responses over
images of the CIFAR-10H evaluation hold-out stop the workflow with those images named. Needs the mirror."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import call, rt_since, see, soft_answer  # noqa: E402

from softlabels.cli import main as cli_main  # noqa: E402
from softlabels.elicit.server import start_server  # noqa: E402
from softlabels.elicit.store import Store  # noqa: E402
from softlabels.elicit.study import load_study  # noqa: E402

pytestmark = [pytest.mark.mirror, pytest.mark.slow]


def test_own_responses_through_table3_4(tmp_path, data_mirror, snakemake_runner, monkeypatch):
    work = tmp_path / "work"
    config = ["--config", "scale=smoke", f"data_mirror={data_mirror}"]
    done = snakemake_runner(work, "--cores", "2", "results/data/splits.npz", "results/data/cifar10_test.npz", *config)
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.chdir(work)  # the study's default image source is results/data/cifar10_test.npz
    with np.load("results/data/splits.npz") as splits:
        train, held_out = splits["train"], splits["test"]
    study_path = work / "study.yaml"
    study_path.write_text(yaml.safe_dump({
        "title": "CIFAR-10 round", "task": "soft_label", "images": {"cifar10": {"indices": [int(i) for i in train[:110]]}},
        "responses_per_image": 1, "trials_per_participant": 12, "repeats": 2,
        "limits": {"min_answer_ms": 0},  # simulated participants answer at once
    }))  # fmt: skip
    study = load_study(study_path)
    store = Store(work / "study.sqlite", study)
    server = start_server(store, "pipeline-admin-token", quiet=True)
    rng = random.Random(0)
    try:
        for k in range(40):
            _, batch = call(f"{server.url}/api/batch", {"participant": f"sim{k:02d}", "sig": server.sign(f"sim{k:02d}")})
            if batch["status"] != "active":
                break
            for t in batch["trials"]:
                seen = see(server.url, f"sim{k:02d}", server.sign(f"sim{k:02d}"), t)  # an answer counts after it
                body = {"submission_id": f"round-{k}-{t['position']}", "participant": f"sim{k:02d}",
                        "sig": server.sign(f"sim{k:02d}"), "batch": batch["batch"],
                        "position": t["position"], "answer": soft_answer(list(study.classes), rng.randrange(50)),
                        "rt_ms": rt_since(seen)}  # fmt: skip
                assert call(f"{server.url}/api/response", body)[0] == 200
    finally:
        server.stop()
        store.close()
    assert batch["status"] == "full"
    assert cli_main(["elicit", "export", str(study_path), "--out", "mine.csv"]) == 0
    mine = pd.read_csv("mine.csv")
    assert mine.loc[mine["task"] == "spec_conf", "image"].nunique() == 110

    # images of the CIFAR-10H hold-out are refused, with the images named, and nothing is written
    leaky = pd.concat([mine, mine.head(2).assign(image=[int(held_out[0]), int(held_out[1])])])
    leaky.to_csv("leaky.csv", index=False)
    done = snakemake_runner(work, "--cores", "2", "results/data/own_responses.csv", *config, "own_responses=leaky.csv")
    assert done.returncode != 0
    log = (work / "logs/data/elicit_import.log").read_text()
    first, second = sorted(int(i) for i in held_out[:2])
    assert f"{first}, {second}" in log and "hold-out" in log, log
    assert not (work / "results/data/own_responses.csv").exists()

    done = snakemake_runner(work, "--cores", "2", "results/tables/table3_4.csv", *config, "own_responses=mine.csv")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(work / "results/tables/table3_4.csv")
    assert set(table["row"]) == {"t1_unif_sep", "t1_clamp_sep", "t2_unif_sep", "t2_clamp_sep"}
    assert (table["own_responses"] == "mine.csv").all() and table["mean"].notna().all()
    assert "own responses from `mine.csv`" in (work / "results/tables/table3_4.md").read_text()
    spec = json.loads((work / "results/runs/t2_clamp_sep/resnet8a/seed0/spec.json").read_text())
    metrics = json.loads((work / "results/runs/t2_clamp_sep/resnet8a/seed0/metrics.json").read_text())
    assert spec["own_responses"] == "mine.csv"
    assert metrics["train"]["n_soft"] == 10  # 110 own images − the 100 held out for the CIFAR-10S-style evaluation
