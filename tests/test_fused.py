"""Fused training (softlabels.train.fit_group) equals training each run alone, on the CPU in float32.

Tolerances: after two epochs of ResNet-8A on 160 images (10 steps), every parameter of a fused member lies
within 1e-4 of the same run trained alone (observed: up to 3e-5), its batch-norm running statistics within
1e-3 (observed: up to 5e-5 on running means of about 0.7), and the per-epoch losses within 1e-4 (observed:
up to 4e-6). The rate is 0.01: the grouped convolution sums in another order than the single one, and at rate 0.1 on random labels
such float32 reorderings grow to ~1e-3 within five steps even for one run alone (channels_last against
contiguous layout of the same run differ by 7e-4), which would test chaos, not the fusion."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch

from softlabels.train import Member, fit, fit_group
from softlabels.train import mixing

import training_data
from training_data import quiet

make_data = partial(training_data.make_data, n=160, max_pool=3)

PROTOCOL = {
    "epochs": 2,
    "batch_size": 32,
    "optimizer": {"momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
    "base_lr": {"resnet8a": 0.01},
    "lr_milestones": [0, 5],
    "lr_gamma": 0.1,
    "grad_clip": 1.0,
    "augmentation": "per_epoch",
    "precision": "fp32",
}
WEIGHT_TOL = 1e-4
BUFFER_TOL = 1e-3
LOSS_TOL = 1e-4


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def max_difference(a, b, buffers_scale=WEIGHT_TOL / BUFFER_TOL):
    """max |Δ| over the parameters and, scaled by WEIGHT_TOL / BUFFER_TOL, the batch-norm running statistics
    (so one threshold, WEIGHT_TOL, checks both)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    names = {name for name, _ in a.named_parameters()}
    return max(float((sa[k].double() - sb[k].double()).abs().max()) * (1.0 if k in names else buffers_scale)
               for k in sa if sa[k].numel())


def losses(model):
    return [r["loss"] for r in model.training_summary["history"]]


def objective_of(kind, seed):
    if kind == "ce":
        return None
    if kind == "mixup":
        return mixing.Mixup(1.0, seed)
    if kind == "mixmaxent":
        return mixing.MixMaxEnt(10.0, seed, 1.0, "different_class")
    if kind == "entwc":
        return mixing.EntWC(0.2, seed, 0.7)
    if kind == "tau":
        # A smooth class-pair transform standing in for the fitted τ table (same code path in the trainer).
        def target_lambda(lam, classes, partner_classes):
            return torch.sigmoid(4 * (torch.full(classes.shape, lam) - 0.5) + 0.1 * (classes - partner_classes).float())
        return mixing.Mixup(1.0, seed, target_lambda)
    raise ValueError(kind)


def check_group(kinds, seeds, protocol=PROTOCOL, datasets=None):
    datasets = datasets or [make_data(seed=10 + i) for i in range(len(kinds))]
    members = [Member(*datasets[i], seed, objective_of(kind, seed)) for i, (kind, seed) in enumerate(zip(kinds, seeds))]
    fused = fit_group(members, protocol, "resnet8a", "cpu", log=quiet)
    worst = 0.0
    for i, (kind, seed) in enumerate(zip(kinds, seeds)):
        alone = fit(*datasets[i], protocol, "resnet8a", seed, "cpu", log=quiet, objective=objective_of(kind, seed))
        difference = max_difference(fused[i], alone)
        worst = max(worst, difference)
        assert difference <= WEIGHT_TOL, (kind, seed, difference)
        assert losses(fused[i]) == pytest.approx(losses(alone), abs=LOSS_TOL)
        assert fused[i].training_summary["group_size"] == len(members)
    return worst


@pytest.mark.parametrize("kind", ["ce", "mixup", "mixmaxent", "entwc", "tau"])
def test_each_member_of_a_fused_group_equals_its_run_alone(kind):
    check_group([kind, kind, kind], [0, 1, 2])


def test_a_group_mixing_schemes_and_objectives_equals_each_run_alone():
    check_group(["ce", "mixup", "entwc", "mixmaxent"], [3, 3, 4, 5], protocol={**PROTOCOL, "augmentation": "once"})


def test_members_differ_from_each_other():
    images, pools = make_data()
    a, b = fit_group([Member(images, pools, 0), Member(images, pools, 1)], PROTOCOL, "resnet8a", "cpu", log=quiet)
    assert max_difference(a, b) > 1e-2


def test_members_with_different_image_counts_train_in_sub_groups():
    small, large = make_data(n=64, seed=1), make_data(n=96, seed=2)
    lines = []
    fused = fit_group([Member(*small, 0), Member(*large, 1)], PROTOCOL, "resnet8a", "cpu", log=lines.append)
    assert sum(line.startswith("sub-group") for line in lines) == 2
    assert max_difference(fused[1], fit(*large, PROTOCOL, "resnet8a", 1, "cpu", log=quiet)) <= WEIGHT_TOL


def test_per_member_clipping_equals_clipping_alone():
    """With a tiny clip threshold every step is clipped; a shared norm over the group would differ."""
    protocol = {**PROTOCOL, "grad_clip": 0.05, "epochs": 1}
    check_group(["ce", "ce"], [0, 1], protocol=protocol)


class Explode:
    """Soft CE times +inf from the second epoch on: the member's loss becomes non-finite."""

    def prepare(self, inputs, targets, batch):
        from softlabels.train.trainer import soft_cross_entropy_loss

        scale = math.inf if batch.epoch >= 1 else 1.0
        return inputs, lambda logits: scale * soft_cross_entropy_loss(logits, targets)


def test_a_diverging_member_is_named_and_does_not_touch_the_others(tmp_path):
    from softlabels.train.trainer import Diverged

    data = [make_data(seed=20), make_data(seed=21)]
    members = [Member(*data[0], 0, checkpoint_path=tmp_path / "a.pt", name="ok-run"),
               Member(*data[1], 1, Explode(), tmp_path / "b.pt", name="bad-run")]
    lines = []
    good, bad = fit_group(members, PROTOCOL, "resnet8a", "cpu", log=lines.append)
    assert isinstance(bad, Diverged) and "bad-run" in str(bad) and "epoch 2" in str(bad)
    assert max_difference(good, fit(*data[0], PROTOCOL, "resnet8a", 0, "cpu", log=quiet)) <= WEIGHT_TOL
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 1  # last finite epoch kept
    with pytest.raises(Diverged, match="seed 1"):
        fit(*data[1], PROTOCOL, "resnet8a", 1, "cpu", log=quiet, objective=Explode())


class Interrupt(Exception):
    pass


def test_a_group_killed_mid_way_resumes_every_member_to_the_same_result(tmp_path):
    data = [make_data(seed=30), make_data(seed=31)]
    protocol = {**PROTOCOL, "epochs": 3}

    def members(folder):
        return [Member(*data[0], 0, mixing.Mixup(1.0, 0), folder / "a.pt"),
                Member(*data[1], 1, None, folder / "b.pt")]

    (tmp_path / "straight").mkdir()
    (tmp_path / "killed").mkdir()
    straight = fit_group(members(tmp_path / "straight"), protocol, "resnet8a", "cpu", log=quiet)

    def stop(line):
        if line.startswith("member=1 epoch=1 "):
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_group(members(tmp_path / "killed"), protocol, "resnet8a", "cpu", log=stop)
    lines = []
    resumed = fit_group(members(tmp_path / "killed"), protocol, "resnet8a", "cpu", log=lines.append)
    assert sum(line.startswith("resumed from") for line in lines) == 2
    for a, b in zip(straight, resumed):
        assert max_difference(a, b) == 0.0
        assert losses(a) == losses(b)
