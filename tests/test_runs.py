"""Run specs and the chapter-3 training / evaluation sets (softlabels.train.runs), on small fake data."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from softlabels.data.splits import balanced_prefix
import pandas as pd
import pytest
import torch

from softlabels import CLASSES
from softlabels import config as cfg
from softlabels.train import chapter3, run_data
from softlabels.experiments import runs as E
from softlabels.train import runs as R

N_IMAGES = 10000


@pytest.fixture(scope="module")
def config():
    return cfg.load(None, {"scale": "paper"})


@pytest.fixture(scope="module")
def data() -> R.RunData:
    """10000 fake 1-pixel images; a 7000/3000 split; 1000 annotated images inside the 7000, 6-8 responses each."""
    rng = np.random.default_rng(0)
    order = rng.permutation(N_IMAGES)
    split_train, split_test = order[:7000], order[7000:]
    s_images = rng.choice(split_train, 1000, replace=False)
    labels = rng.integers(0, 10, N_IMAGES)
    counts = rng.multinomial(51, np.full(10, 0.1), size=N_IMAGES)
    rows = []
    for image in s_images:
        for r in range(6 + int(image) % 3):
            top = int(labels[image])
            rows.append({"image": int(image), "subject": f"s{r}", "task": "spec_conf", "trial": r,
                         "top_class": CLASSES[top], "top_prob": 70.0, "second_class": CLASSES[(top + 1) % 10],
                         "second_prob": 20.0, "impossible": CLASSES[(top + 5) % 10], "rt_ms": 1000.0})  # fmt: skip
    images = (np.arange(N_IMAGES, dtype=np.int64) % 256).astype(np.uint8).reshape(-1, 1, 1, 1).repeat(3, axis=3)
    return run_data.RunData(
        images=images,
        labels=labels,
        split_train=split_train,
        split_test=split_test,
        cifar10h_counts=counts,
        cifar10h_probs=counts / counts.sum(1, keepdims=True),
        cifar10s_responses=pd.DataFrame(rows),
    )


def sets_for(config, data, scheme, seed=0, **overrides):
    spec = E.run_spec(config, scheme, "resnet34a", seed)
    for block, values in overrides.items():
        spec[block].update(values)
    return spec, R.build_run_sets(spec, data)


def test_chapter3_set_is_900_soft_plus_6000_hard(config, data):
    spec, sets = sets_for(config, data, "cifar10s_sep")
    assert len(sets.train_images) == len(sets.train_pools) == 6900
    assert sets.info["n_soft"] == 900 and sets.info["n_hard"] == 6000
    s_images = set(data.cifar10s_images().tolist())
    soft, hard = sets.train_indices[:900], sets.train_indices[900:]
    assert set(soft.tolist()) <= s_images and not set(hard.tolist()) & s_images
    assert len(set(sets.train_indices.tolist())) == 6900
    assert set(sets.train_indices.tolist()) <= set(data.split_train.tolist())
    # the images are the ones at those indices
    np.testing.assert_array_equal(sets.train_images[:, 0, 0, 0], (sets.train_indices % 256).astype(np.uint8))
    # hard images carry their one-hot CIFAR-10 label; soft images the pooled responses (M = 6)
    np.testing.assert_array_equal(sets.train_pools.sizes[900:], 1)
    np.testing.assert_array_equal(sets.train_pools.labels[900:, 0].argmax(1), data.labels[hard])
    np.testing.assert_array_equal(sets.train_pools.sizes[:900], 6)
    assert sets.info["annotators_per_image"] == 6.0


def test_holdout_disjoint_from_training_and_resampled_per_seed(config, data):
    _, a = sets_for(config, data, "hard", seed=0)
    _, b = sets_for(config, data, "hard", seed=1)
    _, a_again = sets_for(config, data, "cifar10h_agg", seed=0)
    for sets in (a, b):
        holdout = sets.eval_sets["cifar10s"].indices
        assert len(holdout) == 100 and len(set(holdout.tolist())) == 100
        assert set(holdout.tolist()) <= set(data.cifar10s_images().tolist())
        assert not set(holdout.tolist()) & set(sets.train_indices.tolist())
        assert not set(sets.eval_sets["cifar10h"].indices.tolist()) & set(sets.train_indices.tolist())
    assert set(a.eval_sets["cifar10s"].indices.tolist()) != set(b.eval_sets["cifar10s"].indices.tolist())
    # the hold-out depends on the seed only, not on the scheme
    np.testing.assert_array_equal(a.eval_sets["cifar10s"].indices, a_again.eval_sets["cifar10s"].indices)


def test_fixed_split_seed_when_not_resampled(config, data):
    fixed = {"cifar10s_holdout": {**config["evaluation"]["cifar10s_holdout"], "resample_per_seed": False}}
    _, a = sets_for(config, data, "hard", seed=0, evaluation=fixed)
    _, b = sets_for(config, data, "hard", seed=3, evaluation=fixed)
    np.testing.assert_array_equal(a.eval_sets["cifar10s"].indices, b.eval_sets["cifar10s"].indices)
    assert a.info["cifar10s_holdout_seed"] == config["evaluation"]["cifar10s_holdout"]["split_seed"]


def test_holdout_follows_released_sampling():
    images = np.arange(5000, 6000)
    import random

    expected = random.Random(7).sample(list(set(images.tolist())), 100)
    np.testing.assert_array_equal(chapter3.cifar10s_holdout(images, 100, 7), expected)
    with pytest.raises(ValueError, match="no CIFAR-10S image"):
        chapter3.cifar10s_holdout(images, 1000, 7)


def test_evaluation_sets(config, data):
    _, sets = sets_for(config, data, "uniform", evaluation={"cifar10h_holdout_limit": 250})
    h, s = sets.eval_sets["cifar10h"], sets.eval_sets["cifar10s"]
    np.testing.assert_array_equal(h.indices, balanced_prefix(data.split_test, data.labels, 250))
    assert len(h.indices) == 250 and set(h.indices.tolist()) <= set(data.split_test.tolist())
    np.testing.assert_allclose(h.targets, data.cifar10h_probs[h.indices])
    np.testing.assert_array_equal(h.fgsm_targets.argmax(1), data.labels[h.indices])  # hard FGSM target
    assert h.bin_size == 100 and s.bin_size == 10
    np.testing.assert_allclose(s.targets.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(s.targets.argmax(1), data.labels[s.indices])  # top class of every response
    np.testing.assert_allclose(s.fgsm_targets, s.targets)
    _, soft_target = sets_for(config, data, "uniform", evaluation={"fgsm": {"epsilon": 0.1, "cifar10h_target": "cifar10h"}})
    np.testing.assert_allclose(soft_target.eval_sets["cifar10h"].fgsm_targets, soft_target.eval_sets["cifar10h"].targets)


def test_n_soft_trains_on_soft_images_only_and_nests(config, data):
    _, small = sets_for(config, data, "cifar10h_n250", seed=2)
    _, large = sets_for(config, data, "cifar10h_n500", seed=2)
    assert len(small.train_images) == 250 and small.info["n_hard"] == 0
    assert len(large.train_images) == 500
    assert set(small.train_indices.tolist()) <= set(large.train_indices.tolist())
    assert set(small.train_indices.tolist()) <= set(data.cifar10s_images().tolist())
    np.testing.assert_array_equal(small.train_pools.sizes, data.cifar10h_counts[small.train_indices].sum(1))


def test_balanced_prefix_takes_the_first_of_every_class_in_file_order():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])  # image i has class labels[i]
    indices = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])  # grouped by class, as the split files are
    np.testing.assert_array_equal(balanced_prefix(indices, labels, 3), [0, 4, 7])
    np.testing.assert_array_equal(balanced_prefix(indices, labels, 5), [0, 1, 4, 5, 7])
    np.testing.assert_array_equal(balanced_prefix(indices[::-1], labels, 2), [6, 3])  # classes 1, 0; file order
    np.testing.assert_array_equal(balanced_prefix(indices, labels, None), indices)
    np.testing.assert_array_equal(balanced_prefix(indices, labels, 99), indices)


def test_hard_image_limit_and_aggregation(config, data):
    _, sets = sets_for(config, data, "cifar10h_agg", protocol={"hard_image_limit": 50})
    assert len(sets.train_images) == 950 and sets.info["n_hard"] == 50
    assert np.bincount(data.labels[sets.train_indices[900:]], minlength=10).tolist() == [5] * 10
    np.testing.assert_array_equal(sets.train_pools.sizes, 1)
    soft = sets.train_indices[:900]
    np.testing.assert_allclose(sets.train_pools.labels[:900, 0], data.cifar10h_probs[soft], atol=1e-6)
    assert sets.info["annotators_per_image"] == 51.0


@pytest.mark.parametrize("scheme", ["random", "label_smoothing", "t1_unif_sep", "cifar10s_sep_m1"])
def test_every_label_source_gives_distributions(config, data, scheme):
    _, sets = sets_for(config, data, scheme)
    pools = sets.train_pools
    valid = np.arange(pools.labels.shape[1])[None, :] < pools.sizes[:, None]
    np.testing.assert_allclose(pools.labels.sum(-1)[valid], 1.0, atol=1e-5)


def test_semantic_variety_needs_glove(config, data):
    with pytest.raises(ValueError, match="GloVe"):
        sets_for(config, data, "t1_semantic_sep")


def test_run_spec_records_settings_but_not_run_lists(config):
    spec = E.run_spec(config, "cifar10s_sep_m2", "resnet50", 3)
    assert spec["scheme_spec"]["M"] == 2 and spec["seed"] == 3 and spec["scale"] == "paper"
    assert spec["protocol"]["base_lr"] == {"resnet50": 0.4}
    assert not set(E.RUN_LIST_KEYS) & set(spec["protocol"])
    assert spec["labels"]["gamma"] == config["labels"]["gamma"]
    assert "corruption" not in spec["evaluation"] and "simulator_seed" not in spec["labels"]
    json.dumps(spec)  # serialisable
    more_seeds = cfg.deep_merge(config, {"protocols": {"chapter3": {"seeds": [0, 1, 2, 3, 4, 5, 6]}}})
    assert E.run_spec(more_seeds, "cifar10s_sep_m2", "resnet50", 3) == spec
    other_gamma = cfg.deep_merge(config, {"labels": {"gamma": 0.2}})
    assert E.run_spec(other_gamma, "cifar10s_sep_m2", "resnet50", 3) != spec
    with pytest.raises(ValueError, match="no learning rate"):
        E.run_spec(config, "hard", "preact_resnet18", 0)


def test_runs_of(config):
    assert len(E.runs_of(config, "hard", all_models=True)) == 15
    assert E.runs_of(config, "cifar10s_sep_m1", all_models=False) == [("cifar10s_sep_m1", "resnet34a", s) for s in range(5)]
    assert len(E.runs_of(config, "cifar10h_n250", all_models=False, seeds="extra")) == 10


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="chapter9"):
        R.training_set_builder("chapter9")
    with pytest.raises(ValueError, match="chapter9"):
        E.spec_keys("chapter9")


# ----------------------------------------------------------------------------------------------------------
# `softlabels train`: metrics.json, train_log.csv, checkpoint handling (tiny run on fake files)
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, data) -> Path:
    path = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(1)
    np.savez(path / "cifar10_test.npz", images=rng.integers(0, 256, (N_IMAGES, 32, 32, 3), dtype=np.uint8), labels=data.labels)
    np.savez(path / "splits.npz", train=data.split_train, test=data.split_test)
    np.savez(path / "cifar10h.npz", counts=data.cifar10h_counts, probs=data.cifar10h_probs)
    data.cifar10s_responses.to_csv(path / "cifar10s_responses.csv", index=False)
    (path / "provenance.json").write_text(json.dumps(PROVENANCE))
    return path


PROVENANCE = {"sources": {"cifar10": {"file": "cifar-10-python.tar.gz", "origin": "mirror", "official_url": "https://x",
                                      "sha256": "ab" * 32, "approximate": False, "note": ""}}}


def tiny_spec(config, **label_overrides):
    smoke = cfg.load(None, {"scale": "smoke"})
    spec = E.run_spec(smoke, "cifar10s_n250", "resnet8a", 0)
    spec["scheme_spec"]["n_soft"] = 40
    spec["evaluation"]["cifar10h_holdout_limit"] = 60
    spec["evaluation"]["calibration"]["bin_size"] = 20  # 60 hold-out images: three calibration bins
    spec["labels"].update(label_overrides)
    return spec


def _without_timing(metrics: dict) -> dict:
    """metrics.json without the wall-clock fields (seconds, images per second), which differ between runs."""
    timing = re.compile(r"seconds|time|per_s$")
    if isinstance(metrics, dict):
        return {k: _without_timing(v) for k, v in metrics.items() if not timing.search(k)}
    return metrics


def test_train_command_writes_metrics_and_log(config, data_dir, tmp_path, capsys):
    from softlabels.cli import main
    from softlabels.data.io import write_json

    spec = tiny_spec(config)
    write_json(tmp_path / "spec.json", spec)
    out = tmp_path / "run"
    assert main(["train", "--spec", str(tmp_path / "spec.json"), "--out-dir", str(out), "--data-dir", str(data_dir), "--threads", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["scheme"], metrics["model"], metrics["seed"], metrics["scale"]) == ("cifar10s_n250", "resnet8a", 0, "smoke")
    assert metrics["spec"] == spec
    for name, n in (("cifar10h", 60), ("cifar10s", 100)):
        assert set(metrics[name]) >= {"ce", "calibration", "fgsm", "accuracy", "n"} and metrics[name]["n"] == n
        assert all(np.isfinite(metrics[name][k]) for k in ("ce", "calibration", "fgsm"))
    assert metrics["train"]["epochs"] == 1 and metrics["train"]["n_train"] == 40 and metrics["train"]["n_hard"] == 0
    assert (metrics["train"]["precision"], metrics["train"]["device"], metrics["train"]["group_size"]) == ("fp32", "cpu", 1)
    assert metrics["provenance"] == {"precision": "fp32", "device": "cpu", "corruption_source": None, "inputs": PROVENANCE["sources"]}
    log = pd.read_csv(out / "train_log.csv")
    assert list(log["epoch"]) == [1] and "loss" in log.columns
    assert (out / "checkpoint.pt").exists()
    # the same spec again resumes from the checkpoint (nothing left to train): the same metrics.json
    before = (out / "metrics.json").read_text()
    (out / "metrics.json").unlink()
    assert main(["train", "--spec", str(tmp_path / "spec.json"), "--out-dir", str(out), "--data-dir", str(data_dir)]) == 0
    assert _without_timing(json.loads((out / "metrics.json").read_text())) == _without_timing(json.loads(before))
    assert list(pd.read_csv(out / "train_log.csv")["epoch"]) == [1]
    # ... and the model it evaluates is the checkpoint's (a retrain would ignore it): with the last layer zeroed
    # every logit is 0, so each image's prediction is uniform and its cross-entropy ln 10 whatever its target
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    for key in [k for k in state["model"] if k.startswith("linear.")]:
        state["model"][key] = torch.zeros_like(state["model"][key])
    torch.save(state, out / "checkpoint.pt")
    assert main(["train", "--spec", str(tmp_path / "spec.json"), "--out-dir", str(out), "--data-dir", str(data_dir)]) == 0
    zeroed = json.loads((out / "metrics.json").read_text())
    for name in ("cifar10h", "cifar10s"):
        assert zeroed[name]["ce"] == pytest.approx(math.log(10), abs=1e-6), (name, zeroed[name])
        assert abs(metrics[name]["ce"] - math.log(10)) > 1e-5  # the trained model's is not
    capsys.readouterr()
    # a changed spec (other γ) discards the stale checkpoint instead of resuming it
    write_json(tmp_path / "spec.json", tiny_spec(config, gamma=0.2))
    assert main(["train", "--spec", str(tmp_path / "spec.json"), "--out-dir", str(out), "--data-dir", str(data_dir),
                 "--provenance", "none"]) == 0
    assert "resumed" not in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["spec"]["labels"]["gamma"] == 0.2 and metrics["provenance"]["inputs"] is None


def test_train_command_needs_the_provenance_record(config, data_dir, tmp_path, capsys):
    from softlabels.cli import main
    from softlabels.data.io import write_json

    write_json(tmp_path / "spec.json", tiny_spec(config))
    assert main(["train", "--spec", str(tmp_path / "spec.json"), "--out-dir", str(tmp_path / "run"), "--data-dir",
                 str(data_dir), "--provenance", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_train_command_reports_bad_spec(tmp_path, capsys):
    from softlabels.cli import main

    (tmp_path / "spec.json").write_text("{not json")
    assert main(["train", "--spec", str(tmp_path / "spec.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    (tmp_path / "spec.json").write_text("{}")
    assert main(["train", "--spec", str(tmp_path / "spec.json")]) == 2
    assert "lacks key" in capsys.readouterr().err
