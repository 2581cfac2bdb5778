"""The trainer (docs/protocol.md#training-chapter-3): schedule, batched draws and augmentation,
determinism, the objective hook, checkpoints and exact resume after a kill."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from softlabels.train import Batch, fit, learning_rate
from softlabels.evaluate.metrics import soft_cross_entropy
from softlabels.train.trainer import SoftCrossEntropy, crop_flip, draw_annotators, normalise

from training_data import make_data, quiet

REPO = Path(__file__).resolve().parents[1]

PROTOCOL = {
    "epochs": 2,
    "batch_size": 32,
    "optimizer": {"momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
    "base_lr": {"resnet8a": 0.1},
    "lr_milestones": [0, 5],
    "lr_gamma": 0.1,
    "grad_clip": 1.0,
    "augmentation": "per_epoch",
}


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- schedule -------------------------------------------------------------------------------------------
def test_chapter3_schedule_matches_released_code():
    protocol = yaml.safe_load((REPO / "config.yaml").read_text())["protocols"]["chapter3"]
    rates = [learning_rate(protocol, "resnet34a", e) for e in range(protocol["epochs"])]
    assert rates[:51] == [0.1] * 51
    assert rates[51:56] == [0.01] * 5  # 0.1 / 10, as the released code computes it
    assert rates[56:] == [0.001] * 9
    assert learning_rate(protocol, "resnet50", 0) == 0.4
    with pytest.raises(KeyError, match="base_lr"):
        learning_rate(protocol, "preact_resnet18", 0)


# -- batched pieces -------------------------------------------------------------------------------------
def test_annotator_draws_are_uniform_within_each_pool():
    sizes = torch.tensor([1, 2, 3, 5] * 5000)
    draws = draw_annotators(sizes, torch.rand(len(sizes), generator=torch.Generator().manual_seed(0)))
    assert bool((draws >= 0).all()) and bool((draws < sizes).all())
    for size in (2, 3, 5):
        counts = torch.bincount(draws[sizes == size], minlength=size).float()
        assert torch.allclose(counts / counts.sum(), torch.full((size,), 1 / size), atol=0.03)
    assert int(draw_annotators(torch.tensor([3]), torch.tensor([1 - 2**-24]))) == 2


def test_crop_flip_matches_pad_slice_mirror():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (5, 3, 32, 32), dtype=np.uint8)
    dy, dx = np.array([0, 4, 8, 2, 7]), np.array([8, 4, 0, 5, 1])
    flip = np.array([False, False, True, True, False])
    out = crop_flip(torch.from_numpy(images), torch.from_numpy(dy), torch.from_numpy(dx), torch.from_numpy(flip)).numpy()
    padded = np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for i in range(5):
        expected = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        assert np.array_equal(out[i], expected[:, :, ::-1] if flip[i] else expected)
    assert np.array_equal(out[1], images[1])  # centred, no flip = identity


def test_normalise_uses_cifar_statistics():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = (1 - torch.tensor([0.4914, 0.4822, 0.4465])) / torch.tensor([0.2023, 0.1994, 0.2010])
    assert torch.allclose(normalise(x)[0, :, 0, 0], expected)


# -- fit ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("augmentation", ["once", "per_epoch", "none"])
def test_fit_is_deterministic_and_seed_dependent(augmentation):
    images, pools = make_data()
    protocol = {**PROTOCOL, "augmentation": augmentation}
    a = fit(images, pools, protocol, "resnet8a", seed=0, device="cpu", log=quiet)
    b = fit(images, pools, protocol, "resnet8a", seed=0, device="cpu", log=quiet)
    c = fit(images, pools, protocol, "resnet8a", seed=1, device="cpu", log=quiet)
    assert same_weights(a, b)
    assert not same_weights(a, c)
    def losses(model):
        return [(r["loss"], r["lr"]) for r in model.training_summary["history"]]

    assert losses(a) == losses(b) and len(losses(a)) == 2
    assert not a.training  # returned in eval mode


def test_fit_logs_one_parseable_line_per_epoch_with_the_schedule():
    images, pools = make_data(n=40)
    lines = []
    fit(images, pools, {**PROTOCOL, "epochs": 3, "lr_milestones": [0, 1], "grad_clip": None}, "resnet8a", 0, "cpu", log=lines.append)
    assert len(lines) == 3
    fields = [dict(kv.split("=") for kv in line.split()) for line in lines]
    assert [f["epoch"] for f in fields] == ["1", "2", "3"]
    assert [float(f["lr"]) for f in fields] == pytest.approx([0.1, 0.01, 0.001])
    assert {"loss", "images_per_s", "elapsed_s", "eta_s"} <= set(fields[0])


def test_objective_hook_receives_normalised_batches_and_pool_draws():
    images, pools = make_data(n=50)
    seen = []

    class Objective(SoftCrossEntropy):
        def prepare(self, inputs, targets, batch):
            assert isinstance(batch, Batch) and batch.x is inputs and batch.y is targets
            seen.append(batch)
            return super().prepare(inputs, targets, batch)

    fit(images, pools, {**PROTOCOL, "augmentation": "none"}, "resnet8a", 0, "cpu", log=quiet, objective=Objective())
    assert [b.x.shape[0] for b in seen] == [32, 18, 32, 18]  # drop_last = False
    for b in seen:
        index = b.index.numpy()
        assert torch.equal(b.x, normalise(torch.from_numpy(images[index].transpose(0, 3, 1, 2))))
        assert not torch.isnan(b.y).any()  # never a padded pool entry
        assert torch.equal(b.hard_labels, b.y.argmax(1))
        pool_rows = pools.labels[index]
        drawn = b.y.numpy()[:, None, :]
        assert np.all(np.any(np.all(pool_rows == drawn, axis=2), axis=1))  # y is one of the image's labels
    epoch0 = np.concatenate([b.index.numpy() for b in seen[:2]])
    assert sorted(epoch0) == list(range(50))  # each example once per epoch


@pytest.mark.parametrize("augmentation", ["per_epoch", "once", "none"])
def test_per_epoch_augmentation_draws_new_crops_every_epoch(augmentation):
    """Per image: the inputs of epoch 1 and epoch 2 differ under per_epoch (a fresh crop/flip), are equal under
    once and none, and under once/per_epoch are a crop/flip of the image, not the image itself."""
    images, pools = make_data(n=64)
    seen = {}

    class Record(SoftCrossEntropy):
        def prepare(self, inputs, targets, batch):
            for row, x in zip(batch.index.tolist(), inputs):
                seen[(batch.epoch, row)] = x.clone()
            return super().prepare(inputs, targets, batch)

    fit(images, pools, {**PROTOCOL, "augmentation": augmentation}, "resnet8a", 0, "cpu", log=quiet, objective=Record())
    plain = normalise(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    changed = sum(not torch.equal(seen[(0, i)], seen[(1, i)]) for i in range(64))
    cropped = sum(not torch.equal(seen[(0, i)], plain[i]) for i in range(64))
    if augmentation == "per_epoch":
        assert changed >= 60 and cropped >= 60
    elif augmentation == "once":
        assert changed == 0 and cropped >= 60
    else:
        assert changed == 0 and cropped == 0


def test_objective_chooses_the_model_inputs_and_the_loss():
    images, pools = make_data(n=40)
    calls = []

    class HalfBatch:
        """Feeds only the first half of each batch to the model."""

        def prepare(self, inputs, targets, batch):
            half = inputs.shape[0] // 2
            calls.append(half)
            return inputs[:half], lambda logits: soft_cross_entropy(logits, targets[:half])

    fit(images, pools, PROTOCOL, "resnet8a", 0, "cpu", log=quiet, objective=HalfBatch())
    assert calls == [16, 4, 16, 4]


def test_bad_inputs_are_named():
    images, pools = make_data(n=10)
    with pytest.raises(ValueError, match="label pools"):
        fit(images[:9], pools, PROTOCOL, "resnet8a", 0, "cpu", log=quiet)
    with pytest.raises(ValueError, match="uint8"):
        fit(images.astype(np.float32), pools, PROTOCOL, "resnet8a", 0, "cpu", log=quiet)
    with pytest.raises(ValueError, match="augmentation"):
        fit(images, pools, {**PROTOCOL, "augmentation": "twice"}, "resnet8a", 0, "cpu", log=quiet)


# -- checkpoints ----------------------------------------------------------------------------------------
class Interrupt(Exception):
    pass


class RandomObjective:
    """Holds its own NumPy and torch generators, as the mixing objectives do: scales the loss randomly."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)

    def prepare(self, inputs, targets, batch):
        scale = float(self.rng.uniform(0.5, 1.5)) * float(torch.rand(1, generator=self.generator) + 0.5)
        return inputs, lambda logits: scale * soft_cross_entropy(logits, targets)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    images, pools = make_data(n=64)
    protocol = {**PROTOCOL, "epochs": 3}
    straight = fit(images, pools, protocol, "resnet8a", 3, "cpu", tmp_path / "a.pt", log=quiet,
                   objective=RandomObjective(7))

    def stop_after_first_epoch(line):
        if line.startswith("epoch=1 "):
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(images, pools, protocol, "resnet8a", 3, "cpu", tmp_path / "b.pt", log=stop_after_first_epoch,
            objective=RandomObjective(7))
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 1
    lines = []
    resumed = fit(images, pools, protocol, "resnet8a", 3, "cpu", tmp_path / "b.pt", log=lines.append,
                  objective=RandomObjective(7))
    assert lines[0].startswith("resumed from") and len(lines) == 3  # epochs 2 and 3 only
    assert same_weights(straight, resumed)
    assert [r["loss"] for r in straight.training_summary["history"]] == [r["loss"] for r in resumed.training_summary["history"]]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_finished_checkpoint_returns_without_training(tmp_path):
    images, pools = make_data(n=40)
    first = fit(images, pools, PROTOCOL, "resnet8a", 0, "cpu", tmp_path / "c.pt", log=quiet)
    lines = []
    again = fit(images, pools, PROTOCOL, "resnet8a", 0, "cpu", tmp_path / "c.pt", log=lines.append)
    assert len(lines) == 1 and "completed_epochs=2" in lines[0]
    assert same_weights(first, again)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    images, pools = make_data(n=40)
    fit(images, pools, PROTOCOL, "resnet8a", 0, "cpu", tmp_path / "c.pt", log=quiet)
    with pytest.raises(ValueError, match="seed"):
        fit(images, pools, PROTOCOL, "resnet8a", 1, "cpu", tmp_path / "c.pt", log=quiet)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np, torch
    from types import SimpleNamespace
    from softlabels.train import fit
    from softlabels.train.trainer import SoftCrossEntropy

    torch.set_num_threads(1)
    checkpoint, output, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    sizes = rng.integers(1, 4, 256)
    labels = np.zeros((256, 3, 10), np.float32)
    labels[np.arange(256)[:, None], np.arange(3)[None, :], rng.integers(0, 10, (256, 3))] = 1
    protocol = {"epochs": 3, "batch_size": 32, "optimizer": {"momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
                "base_lr": {"resnet8a": 0.1}, "lr_milestones": [0, 1], "lr_gamma": 0.1, "grad_clip": 1.0,
                "augmentation": "once"}

    class Objective(SoftCrossEntropy):
        def prepare(self, inputs, targets, batch):
            if slow and batch.epoch >= 1:
                time.sleep(0.3)  # leaves time to kill the process in the middle of the second epoch
            return super().prepare(inputs, targets, batch)

    model = fit(images, SimpleNamespace(labels=labels, sizes=sizes), protocol, "resnet8a", 5, "cpu", checkpoint,
                log=lambda line: print(line, flush=True), objective=Objective())
    torch.save(model.state_dict(), output)
    """
)


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_identical_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT)
    run = [sys.executable, str(script)]
    subprocess.run(run + [str(tmp_path / "straight.pt"), str(tmp_path / "straight.out"), "fast"], check=True,
                   capture_output=True, timeout=300)

    checkpoint = tmp_path / "killed.pt"
    process = subprocess.Popen(run + [str(checkpoint), str(tmp_path / "killed.out"), "slow"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1
    assert not (tmp_path / "killed.out").exists()

    restarted = subprocess.run(run + [str(checkpoint), str(tmp_path / "killed.out"), "fast"], check=True,
                               capture_output=True, text=True, timeout=300)
    assert "resumed from" in restarted.stdout and "epoch=1 " not in restarted.stdout
    straight = torch.load(tmp_path / "straight.out")
    resumed = torch.load(tmp_path / "killed.out")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


# -- per-member gradient clipping --------------------------------------------------------------------------
def test_clip_rows_scales_each_member_by_c_over_its_norm_plus_eps():
    """Row 0: norm 5 > c = 1, scaled by 1/(5 + 1e-6); row 1: norm 0.25 < c/2, untouched (coefficient capped at
    1, never scaled up); row 2: norm exactly c, scaled by c/(c + 1e-6). Float64, so 1e-6 is visible."""
    from softlabels.train.trainer import clip_rows_

    grad = torch.tensor([[3.0, 4.0], [0.0, 0.25], [0.6, 0.8]], dtype=torch.float64)
    norms = clip_rows_(grad, 1.0)
    assert norms.tolist() == pytest.approx([5.0, 0.25, 1.0], rel=1e-15)
    expected = [[3 / (5 + 1e-6), 4 / (5 + 1e-6)], [0.0, 0.25], [0.6 / (1 + 1e-6), 0.8 / (1 + 1e-6)]]
    for row, want in zip(grad.tolist(), expected):
        assert row == pytest.approx(want, rel=1e-12, abs=0)


def test_learning_rate_error_lists_the_models_it_has():
    protocol = {"base_lr": {"resnet8a": 0.1, "resnet34a": 0.1}, "lr_milestones": [1], "lr_gamma": 0.1}
    with pytest.raises(KeyError, match=r"no entry for model 'vgg' \(has: resnet8a, resnet34a\)"):
        learning_rate(protocol, "vgg", 0)
