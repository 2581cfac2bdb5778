"""Hyperparameter sweeps (config `sweeps`, softlabels.train.sweeps, workflow/rules/sweeps.smk).

The offline mirror's CIFAR-10 archive holds the test batch only, so these tests build archives of their own:
one without training batches (the parse must name the missing members and write nothing) and, for the smoke
build, the mirror's test batch plus five small training batches, served from a mirror whose MANIFEST the test
writes."""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from softlabels import CLASSES
from softlabels import config as cfg
from softlabels.cli import main
from softlabels.data.cifar10 import TRAIN_MEMBERS, read_train_batches
from softlabels.experiments import sweeps as S
from softlabels.experiments import selections as SEL
from softlabels.report import sweeps as RS
from softlabels.train.run_data import validation_indices

ARCHIVE = "cifar-10/cifar-10-python.tar.gz"


def _member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _batch(n: int, offset: int) -> bytes:
    rng = np.random.default_rng(offset)
    labels = [(offset + i) % 10 for i in range(n)]
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return pickle.dumps({b"data": data, b"labels": labels})


def write_archive(path: Path, per_batch: int | None, test_batch: bytes | None = None) -> Path:
    """A CIFAR-10 python-format archive: batches.meta, a test_batch, and data_batch_1..5 of `per_batch` images
    each (none when per_batch is None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        _member(tar, "cifar-10-batches-py/batches.meta",
                pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}))
        _member(tar, "cifar-10-batches-py/test_batch", test_batch if test_batch is not None else _batch(20, 999))
        if per_batch is not None:
            for i, name in enumerate(TRAIN_MEMBERS):
                _member(tar, name, _batch(per_batch, i * per_batch))
    return path


def test_train_batches_parse_in_order(tmp_path):
    archive = write_archive(tmp_path / "c.tar.gz", per_batch=12)
    out = tmp_path / "train.npz"
    assert main(["parse-cifar10-train", "--archive", str(archive), "--out", str(out)]) == 0
    with np.load(out) as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (60, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [i % 10 for i in range(60)]
    # channel-major bytes -> HWC: pixel (0, 0) of image 0 holds bytes 0, 1024, 2048 of its row
    row = pickle.loads(_batch(12, 0))[b"data"][0]
    assert images[0, 0, 0].tolist() == [row[0], row[1024], row[2048]]


def test_missing_training_batches_are_named_and_nothing_is_written(tmp_path, capsys):
    archive = write_archive(tmp_path / "test-only.tar.gz", per_batch=None)
    out = tmp_path / "train.npz"
    assert main(["parse-cifar10-train", "--archive", str(archive), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(archive) in err and "training batches" in err
    for member in TRAIN_MEMBERS:
        assert member in err
    assert not out.exists()
    with pytest.raises(Exception, match="data_batch_3"):
        read_train_batches(archive)


def test_validation_split_is_torch_random_split_after_seeding():
    import torch

    labels = np.arange(1000) % 10
    torch.manual_seed(7)
    _, val = torch.utils.data.random_split(range(1000), [0.7, 0.3])
    got = validation_indices(labels, 0.3, 7, None)
    assert got.tolist() == list(val.indices) and len(got) == 300
    capped = validation_indices(labels, 0.3, 7, 50)
    assert len(capped) == 50 and np.bincount(labels[capped], minlength=10).tolist() == [5] * 10


def _run(value, seed, accuracy, ce, sweep="gamma"):
    return {"scheme": "cifar10s_sep", "model": "resnet8a", "seed": seed, "scale": "smoke",
            "spec": {"sweep": {"name": sweep, "key": "labels.gamma", "value": value}},
            "validation": {"accuracy": accuracy, "ce": ce, "n": 100},
            "train": {"epochs": 1, "precision": "fp32", "device": "cpu"}}


def test_selection_marks_the_best_value_under_each_criterion():
    config = cfg.load(None, {"scale": "smoke"})
    config["sweeps"]["grids"]["gamma"]["values"] = [0.0, 0.1, 0.3]
    runs = [_run(0.0, 0, 0.50, 1.2), _run(0.0, 1, 0.52, 1.0),   # ce best (1.1)
            _run(0.1, 0, 0.60, 1.5), _run(0.1, 1, 0.62, 1.5),   # accuracy best (0.61)
            _run(0.3, 0, 0.40, 2.0), _run(0.3, 1, 0.40, 2.0)]
    config["sweeps"]["criterion"] = "accuracy"
    table = RS.build_sweep_table(config, "gamma", runs)
    assert table.loc[table["selected"], "value"].tolist() == ["0.1"]
    assert table["thesis_choice"].tolist() == [False, True, False] and (table["thesis_value"] == 0.1).all()
    row = table.set_index("value").loc["0.0"]
    assert math.isclose(row["val_accuracy_mean"], 0.51) and row["n_runs"] == 2 and row["val_ce_ci"] > 0
    config["sweeps"]["criterion"] = "ce"
    table = RS.build_sweep_table(config, "gamma", runs)
    assert table.loc[table["selected"], "value"].tolist() == ["0.0"]
    md = RS.sweep_markdown(table)
    assert "**selected**" in md and "the thesis chose 0.1" in md and "lowest" in md
    assert "Input provenance unrecorded" in md  # these hand-made runs record no inputs
    # a tie goes to the value listed first
    assert RS.select({"0.2": 0.5, "0.1": 0.5}, "accuracy") == "0.2"
    with pytest.raises(ValueError, match="no run of value 0.3"):
        RS.build_sweep_table(config, "gamma", runs[:4])


def test_point_spec_sets_the_swept_key_and_refuses_a_key_that_misses_the_run():
    config = cfg.load(None, {"scale": "smoke"})
    spec = S.point_spec(config, "gamma", "0.1", 0)
    assert spec["labels"]["gamma"] == 0.1 and spec["validation"] == {"source": "unused_split", "fraction": 0.3,
                                                                      "seed": 7, "limit": 100}
    spec = S.point_spec(config, "entwc_kappa", "0.0", 0)
    assert spec["scheme_spec"]["kappa"] == 0.0 and spec["sweep"]["key"] == "schemes.ch5_entwc_hard.kappa"
    config["sweeps"]["grids"]["gamma"]["key"] = "schemes.ch5_entwc_hard.kappa"
    with pytest.raises(cfg.ConfigError, match="does not change the runs"):
        S.point_spec(config, "gamma", "0.1", 0)
    with pytest.raises(cfg.ConfigError, match="0.5 is not one of"):
        S.point_spec(config, "entwc_kappa", "0.5", 0)


def _mirror_with_training_batches(real: Path, root: Path, per_batch: int) -> Path:
    """A mirror: the real mirror's files (linked), its CIFAR-10 archive replaced by one holding its test batch
    and `per_batch` images in each training batch; the MANIFEST row of that archive rewritten."""
    lines = (real / "MANIFEST.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        rel = line.split("\t")[0]
        if line.strip() and rel != ARCHIVE:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).symlink_to(real / rel)
    with tarfile.open(real / ARCHIVE, "r:gz") as tar:
        test_batch = tar.extractfile("cifar-10-batches-py/test_batch").read()
    archive = write_archive(root / ARCHIVE, per_batch, test_batch)
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split("\t")
        if fields[0] == ARCHIVE:
            row = dict(zip(header, fields))
            row.update(sha256=hashlib.sha256(archive.read_bytes()).hexdigest(), bytes=str(archive.stat().st_size),
                       note="APPROXIMATION: the mirror's test batch plus small synthetic training batches")
            fields = [row[c] for c in header]
        out.append("\t".join(fields))
    (root / "MANIFEST.tsv").write_text("\n".join(out) + "\n")
    return root


@pytest.mark.slow
def test_sweep_table_smoke_build(tmp_path, data_mirror, snakemake_runner):
    mirror = _mirror_with_training_batches(data_mirror, tmp_path / "mirror", per_batch=80)
    work = tmp_path / "work"
    target = "results/tables/sweep_gamma.csv"
    # a copy of config.yaml named on every call, so that the edits below change nothing but the edited key
    config_file = tmp_path / "config.yaml"
    smoke_validation = "      validation: {source: unused_split, limit: 100}\n"
    assert smoke_validation in (REPO / "config.yaml").read_text()
    config_file.write_text((REPO / "config.yaml").read_text().replace(
        smoke_validation, "      validation: {source: cifar10_train, limit: 100}\n"))
    config = ["--configfile", str(config_file), "--config", "scale=smoke", f"data_mirror={mirror}"]
    done = snakemake_runner(work, "--cores", "2", target, *config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(work / target)
    assert table["value"].tolist() == [0.0, 0.1] and table["selected"].sum() == 1
    assert table["thesis_choice"].tolist() == [False, True] and (table["criterion"] == "accuracy").all()
    assert (table["n_validation"] == 100).all() and (table["scale"] == "smoke").all()
    assert table["val_accuracy_mean"].between(0, 1).all() and table["val_ce_mean"].map(math.isfinite).all()
    best = table.loc[table["val_accuracy_mean"].idxmax(), "value"]
    assert table.loc[table["selected"], "value"].item() == best
    md = (work / target).with_suffix(".md").read_text()
    assert "the thesis chose 0.1" in md and "Settings: scale smoke, 1 epochs, seeds 0, precision fp32" in md
    assert "**Approximate inputs" in md and "synthetic training batches" in md  # the provenance reaches the table
    assert (table["approximate_inputs"].str.contains("cifar10")).all()
    assert "<table" in (work / target).with_suffix(".html").read_text()
    for value in ("0.0", "0.1"):
        run = work / f"results/sweeps/gamma/{value}/resnet8a/seed0"
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["spec"] == json.loads((run / "spec.json").read_text())
        assert metrics["spec"]["labels"]["gamma"] == float(value) and metrics["validation"]["n"] == 100
        assert metrics["cifar10h"]["n"] == 200  # the scheme's own evaluation sets are kept
    with np.load(work / "results/data/cifar10_train.npz") as f:
        assert f["images"].shape == (400, 32, 32, 3)
    with np.load(work / "results/data/validation.npz") as f:
        assert str(f["source"]) == "cifar10_train" and len(f["labels"]) == 100
    assert "validation split: part of the CIFAR-10 training set (100 images)" in md
    # opt-in: `all` does not ask for the sweeps
    dry = snakemake_runner(work, "-n", "--cores", "2", *config)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert not re.search(r"^(rule )?sweep_(run|table)\b", dry.stdout + dry.stderr, flags=re.M)
    opt_in = snakemake_runner(work, "-n", "--cores", "2", "sweeps", *config)
    assert re.search(r"^sweep_run\s+10$", opt_in.stdout, flags=re.M), opt_in.stdout[-2000:]  # the 5 other sweeps
    again = snakemake_runner(work, "-n", "--cores", "2", target, *config)
    assert "Nothing to be done" in again.stdout + again.stderr
    # another criterion re-selects without training again; another epoch count retrains
    text = config_file.read_text()
    config_file.write_text(text.replace("  criterion: accuracy\n", "  criterion: ce\n", 1))
    rerun = snakemake_runner(work, "-n", "--cores", "2", target, *config)
    assert re.search(r"^sweep_table\s+1$", rerun.stdout, flags=re.M), rerun.stdout[-2000:]
    assert re.search(r"^total\s+1$", rerun.stdout, flags=re.M), rerun.stdout[-2000:]
    smoke_epochs = "seeds: [0], epochs: 1,"  # in the smoke preset's shared protocol keys (&smoke_runs)
    assert smoke_epochs in text
    config_file.write_text(text.replace(smoke_epochs, smoke_epochs.replace("epochs: 1", "epochs: 2")))
    rerun = snakemake_runner(work, "-n", "--cores", "2", target, *config)
    assert re.search(r"^sweep_run\s+2$", rerun.stdout, flags=re.M), rerun.stdout[-2000:]


def test_sweeps_target_stops_on_the_offline_mirror_archive(tmp_path, data_mirror):
    """The shared mirror's archive lacks the training batches: the parse names them and writes nothing."""
    out = tmp_path / "train.npz"
    assert main(["parse-cifar10-train", "--archive", str(data_mirror / ARCHIVE), "--out", str(out)]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_sweeps_build_offline_from_the_mirror(tmp_path, data_mirror):
    """`snakemake sweeps` at smoke scale with the network cut (`unshare -rn`): the validation images come from the
    mirror's CIFAR-10 test batch (the training-split images no smoke run trains on), so every sweep table and its
    selection are built without a download."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rn", "true"]).returncode != 0:
        from conftest import missing_precondition

        missing_precondition("needs `unshare -rn` (user and network namespaces) to cut the network")
    work = tmp_path / "work"
    work.mkdir()
    cmd = ["unshare", "-rn", sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
           "--configfile", str(REPO / "config.yaml"), "--cores", "2", "sweeps", "--config", "scale=smoke",
           f"data_mirror={data_mirror}"]
    env = {**__import__("os").environ, "PATH": str(Path(sys.executable).parent) + ":" + __import__("os").environ["PATH"]}
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    config = cfg.load(None, {"scale": "smoke"})
    names = sorted(SEL.active_grids(config))
    assert names == ["entwc_alpha", "entwc_kappa", "gamma", "label_smoothing_beta", "lr_resnet8a", "mixmaxent_alpha"]
    with np.load(work / "results/data/validation.npz") as f:
        assert str(f["source"]) == "unused_split" and len(f["labels"]) == 100
    for name in names:
        table = pd.read_csv(work / f"results/tables/sweep_{name}.csv")
        assert (table["validation_source"] == "unused_split").all() and (table["n_validation"] == 100).all()
        selection = json.loads((work / f"results/sweeps/{name}/selected.json").read_text())
        assert selection["sweep"] == name and selection["value"] == float(table.loc[table["selected"], "value"].item())
    assert not (work / "results/data/cifar10_train.npz").exists()
    md = (work / "results/tables/sweep_gamma.md").read_text()
    assert "validation split: training-split images no run trains on (100 images)" in md


@pytest.mark.slow
def test_selected_values_reach_the_runs_through_the_dag(tmp_path, data_mirror, snakemake_runner):
    """With sweeps.apply (as the quick preset), Table 5.1 at smoke scale first builds the sweeps of its schemes'
    selected settings, then trains each run with the values they selected: the runs' spec.json hold the value and
    name the sweep, a run without a selected setting holds none, and a changed selection retrains exactly the runs
    that use it."""
    overlay = tmp_path / "apply.yaml"
    overlay.write_text("scales:\n  smoke:\n    sweeps: {apply: true}\n")
    work = tmp_path / "work"
    target = "results/tables/table5_1.csv"
    config = ["--configfile", str(REPO / "config.yaml"), str(overlay), "--config", "scale=smoke",
              f"data_mirror={data_mirror}"]
    done = snakemake_runner(work, "--cores", "2", target, *config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "(of them 6 hyperparameter-sweep point(s))" in done.stderr, done.stderr[:3000]
    chosen = {name: json.loads((work / f"results/sweeps/{name}/selected.json").read_text())["value"]
              for name in ("mixmaxent_alpha", "entwc_alpha", "entwc_kappa")}
    runs_dir = work / "results/runs"
    spec = json.loads((runs_dir / "ch5_mixmaxent_hard/resnet8a/seed0/spec.json").read_text())
    assert spec["scheme_spec"]["alpha"] == chosen["mixmaxent_alpha"]
    assert spec["selected"] == {"scheme_spec.alpha": {"sweep": "mixmaxent_alpha", "value": chosen["mixmaxent_alpha"]}}
    entwc = json.loads((runs_dir / "ch5_entwc_hard/resnet8a/seed0/metrics.json").read_text())["spec"]
    assert (entwc["scheme_spec"]["alpha"], entwc["scheme_spec"]["kappa"]) == (chosen["entwc_alpha"], chosen["entwc_kappa"])
    mixup = json.loads((runs_dir / "ch5_mixup_hard/resnet8a/seed0/spec.json").read_text())
    assert "selected" not in mixup and mixup["scheme_spec"]["alpha"] == 1.0
    # another selection: only the runs that use it train again
    path = work / "results/sweeps/mixmaxent_alpha/selected.json"
    record = json.loads(path.read_text())
    record["value"] = next(v for v in record["values"] if v != record["value"])
    path.write_text(json.dumps(record))
    again = snakemake_runner(work, "-n", "--cores", "2", target, *config)
    assert again.returncode == 0, again.stderr[-2000:]
    assert re.search(r"^train_chapter5\s+1$", again.stdout, flags=re.M), again.stdout[-2000:]
    assert "resnet8a.ch5_mixmaxent_hard.seed0" in again.stdout and "sweep_run" not in again.stdout
