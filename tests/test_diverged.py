"""A diverged member of a group job (softlabels.train.cli.train_runs / train-group): its metrics.json records
`diverged: true` with the epoch and no metric values, the other members finish, and the job succeeds."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from softlabels import config as cfg
from softlabels.train import cli
from softlabels.train import run_data
from softlabels.experiments import runs as R
from softlabels.train import trainer as T

import training_data


@pytest.fixture
def fake_training(monkeypatch):
    """train_runs without real data: tiny synthetic training sets; member 'random' diverges in epoch 3
    (fit_group as the trainer returns it), the others get a small model."""
    images, pools = training_data.make_data(n=8)
    sets = SimpleNamespace(train_images=images, train_pools=pools, objective=None, info={"n_train": 8}, eval_sets={})
    monkeypatch.setattr(run_data.RunData, "from_dir", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(cli, "build_run_sets", lambda spec, data: sets)
    monkeypatch.setattr(cli, "evaluate_sets", lambda model, sets, spec, device: {"cifar10h": {"ce": 1.0, "n": 8}})

    def fit_group(members, protocol, model_name, device, log=print, precision=None, cudnn_benchmark=False):
        out = []
        for member in members:
            if member.name.startswith("random/"):
                history = [{"epoch": e, "loss": 2.0} for e in (1, 2)]
                out.append(T.Diverged(f"{member.name}: training loss became nan in epoch 3", 3, history))
            else:
                model = torch.nn.Linear(2, 2)
                model.training_summary = {"epochs": 3, "seconds": 1.0, "group_size": len(members), "history": [],
                                          "precision": "fp32"}
                out.append(model)
        return out

    monkeypatch.setattr(T, "fit_group", fit_group)


def test_a_diverged_member_is_recorded_and_the_group_job_succeeds(tmp_path, monkeypatch, fake_training):
    config = cfg.load(None, {"scale": "smoke", "device": "cpu"})
    monkeypatch.chdir(tmp_path)
    runs = [("hard", "resnet8a", 0), ("random", "resnet8a", 0)]
    specs = [(R.run_spec(config, *run), tmp_path / R.run_dir(*run)) for run in runs]
    finished, failures = cli.train_runs(specs, tmp_path, None, 1, None, log=lambda line: None)
    assert [m["scheme"] for m in finished] == ["hard"] and len(failures) == 1
    bad = json.loads((tmp_path / R.run_dir(*runs[1]) / "metrics.json").read_text())
    assert bad["diverged"] is True and bad["diverged_epoch"] == 3 and "epoch 3" in bad["message"]
    assert not {"cifar10h", "cifar10s", "corruption"} & set(bad)
    assert bad["spec"] == specs[1][0] and bad["train"]["precision"] == "fp32"
    assert (tmp_path / R.run_dir(*runs[1]) / "train_log.csv").read_text().splitlines()[0].startswith("epoch")
    good = json.loads((tmp_path / R.run_dir(*runs[0]) / "metrics.json").read_text())
    assert good["cifar10h"]["ce"] == 1.0 and not good.get("diverged")


def test_bf16_with_a_group_is_a_user_error_naming_the_protocol(tmp_path, monkeypatch, fake_training):
    from softlabels.arguments import UserError

    config = cfg.load(None, {"scale": "smoke", "device": "cpu"})
    config["protocols"]["chapter3"]["precision"] = "bf16"
    runs = [("hard", "resnet8a", 0), ("hard", "resnet8a", 1)]
    specs = [(R.run_spec(config, *run), tmp_path / R.run_dir(*run)) for run in runs]
    with pytest.raises(UserError, match=r"protocols\.chapter3\.precision"):
        cli.train_runs(specs, tmp_path, None, 1, None, log=lambda line: None)
