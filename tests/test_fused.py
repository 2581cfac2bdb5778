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
        from softlabels.evaluate.metrics import soft_cross_entropy

        scale = math.inf if batch.epoch >= 1 else 1.0
        return inputs, lambda logits: scale * soft_cross_entropy(logits, targets)


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


# ---------------------------------------------------------------------------------------------------------
# First step of each member against its run alone and a plain reference loop, on every device.
# ---------------------------------------------------------------------------------------------------------
#: One step (32 images, batch 32) at rate 1 with every member clipped (its norm at initialisation is far above
#: 0.5): the update is large, so float32 rounding of θ1 − θ0 stays far below the tolerance. Relative error
#: ‖a − b‖ / ‖b‖ over all of a member's parameters, of the clipped gradient and of the first update.
#:
#: Why the CPU tolerance is 2e-2 and not 1e-5: at initialisation the gradient below the last batch norm is
#: ill-conditioned (the batch-norm backward cancels most of its input), so float32 rounding differences of
#: *any* two kernels grow to ~1e-3..7e-3 relative: ResNet-8A's gradient from float64 is 6.5e-6 contiguous but
#: 6.7e-3 channels_last (oneDNN), and member-dependent 1e-6..5e-3 for the grouped convolution of a fused
#: group; without oneDNN even the contiguous single run is 5.7e-3 off. Observed here (torch 2.14.1 CPU):
#: fused vs alone and vs the reference loop up to 6.7e-3. The clipped norm itself is not ill-conditioned:
#: each member's clipped gradient norm equals grad_clip to CLIP_NORM_RTOL (observed ≤ 1e-6).
#: CUDA: 5e-2, provisional (TF32 convolutions, whose rounding the same ill-conditioning amplifies; not
#: measured here, no GPU in this session): each comparison's error is printed, and the device run
#: (benchmarks/device/run.sh, step `tests`) records them to set it. The clipped-norm check
#: (CLIP_NORM_RTOL) catches the mutant on every device by thousands of times its tolerance.
#: Mutant (one norm over all members, ‖[∇θ_1 … ∇θ_G]‖ in place of ‖∇θ_g‖ in `clip_rows_`), measured on the
#: CPU by applying it: MUTANT_FIGURES.
STEP_PROTOCOL = {
    "epochs": 1,
    "batch_size": 32,
    "optimizer": {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": False},
    "base_lr": {"resnet8a": 1.0, "resnet34a": 1.0},
    "lr_milestones": [5, 6],
    "lr_gamma": 0.1,
    "grad_clip": 0.5,
    "augmentation": "none",
    "precision": "fp32",
}
STEP_RTOL = {"cpu": 2e-2, "cuda": 5e-2}
CLIP_NORM_RTOL = 1e-4
#: Measured on the CPU (torch 2.14.1, 2026-12-06) by applying the group-norm mutant to `clip_rows_` and
#: running `check_first_steps` with the tolerances lifted: (smallest, largest) relative error over members.
#: Without the mutant the same runs give gradient/update errors 1.4e-6..5.3e-3 and norm errors ≤ 1.7e-7.
MUTANT_FIGURES = {
    "ce, group of 4 (resnet8a)": {"gradient/update": (0.442, 0.570), "clipped norm": (0.442, 0.570)},
    "ce, group of 8 (resnet8a)": {"gradient/update": (0.502, 0.728), "clipped norm": (0.502, 0.728)},
    "mixup, mixup, ce (resnet8a)": {"gradient/update": (0.356, 0.513), "clipped norm": (0.356, 0.513)},
    "ce, group of 2 (resnet34a, batch 16)": {"gradient/update": (0.278, 0.308), "clipped norm": (0.278, 0.308)},
}  # smallest mutant error 0.278 = 13.9 × STEP_RTOL["cpu"] and 2780 × CLIP_NORM_RTOL
ERRORS: list = []  # worst relative error per member checked (for the report; see MUTANT_FIGURES)
NORM_ERRORS: list = []


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """The device the equivalence tests run on: the CPU always, CUDA where torch sees one."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA variant: torch sees no CUDA device")
    return request.param


def flat_parameters(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double().cpu() for p in model.parameters()])


def initial_parameters(model_name, seed) -> torch.Tensor:
    """θ0 as the trainer builds it: torch's RNG seeded from (seed, "init") just before `build_model`."""
    from softlabels.models import build_model
    from softlabels.train.trainer import stream_seed

    torch.manual_seed(stream_seed(seed, "init"))
    return flat_parameters(build_model(model_name, num_classes=10))


def step_of(model, model_name, seed, protocol):
    """(clipped gradient, update θ1 − θ0) of a run's first step from its trained model: with momentum the first
    SGD step is θ1 = θ0 − lr·(g + wd·θ0) (nesterov off), so g = −(θ1 − θ0)/lr − wd·θ0."""
    theta0 = initial_parameters(model_name, seed)
    update = flat_parameters(model) - theta0
    lr, wd = protocol["base_lr"][model_name], protocol["optimizer"]["weight_decay"]
    return -update / lr - wd * theta0, update


def reference_step(images, pools, seed, model_name, protocol, device, channels_last=False):
    """The first step written plainly: a plain nn.Module on the trainer's first batch (same order and annotator
    draws), soft CE, `torch.nn.utils.clip_grad_norm_`, `torch.optim.SGD`; inputs in the contiguous layout or
    channels_last. Returns (clipped gradient, update, norm before clipping)."""
    from softlabels.models import build_model
    from softlabels.train.trainer import draw_annotators, normalise, stream_generator, stream_seed

    torch.manual_seed(stream_seed(seed, "init"))
    model = build_model(model_name, num_classes=10).to(device).train()
    n, b = len(images), protocol["batch_size"]
    order = torch.randperm(n, generator=stream_generator(seed, "order", 0))[:b]
    uniforms = torch.rand(n, generator=stream_generator(seed, "annotator", 0))[:b]
    labels, sizes = torch.from_numpy(pools.labels), torch.from_numpy(pools.sizes)
    y = labels[order, draw_annotators(sizes[order], uniforms)].to(device)
    x = normalise(torch.from_numpy(images).permute(0, 3, 1, 2)[order]).to(device)
    x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    theta0 = flat_parameters(model)
    loss = -(y * torch.log_softmax(model(x), dim=1)).sum(dim=1).mean()
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), protocol["grad_clip"]))
    grad = torch.cat([p.grad.reshape(-1).double().cpu() for p in model.parameters()])
    opt = protocol["optimizer"]
    torch.optim.SGD(model.parameters(), lr=protocol["base_lr"][model_name], momentum=opt["momentum"],
                    weight_decay=opt["weight_decay"], nesterov=opt["nesterov"]).step()
    return grad, flat_parameters(model) - theta0, norm


def relative_error(a, b) -> float:
    return float((a - b).norm() / b.norm())


def check_first_steps(kinds, seeds, device, model_name="resnet8a", protocol=STEP_PROTOCOL):
    """Every member's clipped gradient and first update, within STEP_RTOL[device]: the fused group against each
    run alone (same contiguous layout) and, for soft CE members, against `reference_step`; the run alone in its
    default layout (channels_last) against `reference_step` in channels_last. Returns the worst error."""
    data = [make_data(n=protocol["batch_size"], seed=40 + i) for i in range(len(kinds))]
    members = [Member(*data[i], seed, objective_of(kind, seed)) for i, (kind, seed) in enumerate(zip(kinds, seeds))]
    fused = fit_group(members, protocol, model_name, device, log=quiet)
    rtol, worst = STEP_RTOL[device], 0.0
    for i, (kind, seed) in enumerate(zip(kinds, seeds)):
        grad, update = step_of(fused[i], model_name, seed, protocol)
        alone = fit(*data[i], protocol, model_name, seed, device, log=quiet, objective=objective_of(kind, seed),
                    channels_last=False)
        grad_alone, update_alone = step_of(alone, model_name, seed, protocol)
        errors = {"fused-alone grad": relative_error(grad, grad_alone),
                  "fused-alone update": relative_error(update, update_alone)}
        norm_error = abs(float(grad.norm() / grad_alone.norm()) - 1.0)
        NORM_ERRORS.append(norm_error)
        assert norm_error <= CLIP_NORM_RTOL, (kind, seed, "clipped norm", norm_error)
        if kind == "ce":
            grad_ref, update_ref, norm = reference_step(*data[i], seed, model_name, protocol, device)
            assert norm > 2 * protocol["grad_clip"]  # the step was clipped
            assert float(grad_ref.norm()) == pytest.approx(protocol["grad_clip"], rel=1e-4)
            default = fit(*data[i], protocol, model_name, seed, device, log=quiet)  # channels_last
            grad_cl, update_cl, _ = reference_step(*data[i], seed, model_name, protocol, device, channels_last=True)
            grad_default, update_default = step_of(default, model_name, seed, protocol)
            errors.update({"fused-reference grad": relative_error(grad, grad_ref),
                           "fused-reference update": relative_error(update, update_ref),
                           "alone-reference grad (channels_last)": relative_error(grad_default, grad_cl),
                           "alone-reference update (channels_last)": relative_error(update_default, update_cl)})
        worst = max(worst, *errors.values())
        ERRORS.append(max(errors.values()))
        # recorded by the device run (run.sh passes -s): the observed errors calibrate STEP_RTOL["cuda"]
        print(f"first step on {device}, {model_name}, {kind}, seed {seed}: clipped-norm error {norm_error:.1e}; "
              + "; ".join(f"{k} {v:.2e}" for k, v in errors.items()))
        assert max(errors.values()) <= rtol, (kind, seed, errors)
    return worst


def test_first_step_of_each_member_equals_alone_and_the_reference_loop(device):
    check_first_steps(["ce"] * 4, [0, 1, 2, 3], device)


@pytest.mark.parametrize("kind", ["mixup", "mixmaxent", "entwc", "tau"])
def test_first_step_of_mixing_members_equals_alone(device, kind):
    check_first_steps([kind, kind, "ce"], [0, 1, 2], device)


def test_first_step_of_a_group_of_eight_equals_alone_and_the_reference_loop(device):
    check_first_steps(["ce"] * 8, list(range(8)), device)


def test_first_step_of_resnet34a_members_equals_alone_and_the_reference_loop(device):
    protocol = {**STEP_PROTOCOL, "batch_size": 16}
    check_first_steps(["ce", "ce"], [0, 1], device, model_name="resnet34a", protocol=protocol)


def test_clipping_is_per_member_not_over_the_group():
    """Members whose gradients differ in scale (one member's loss ×100): the small one must keep its own
    clipped norm, as alone (a group-wide norm would shrink it by ~100×)."""

    class Scaled:
        def prepare(self, inputs, targets, batch):
            from softlabels.evaluate.metrics import soft_cross_entropy

            return inputs, lambda logits: 100.0 * soft_cross_entropy(logits, targets)

    data = [make_data(n=32, seed=50), make_data(n=32, seed=51)]
    fused = fit_group([Member(*data[0], 0), Member(*data[1], 1, Scaled())], STEP_PROTOCOL, "resnet8a", "cpu", log=quiet)
    for g, seed in enumerate([0, 1]):
        grad, _ = step_of(fused[g], "resnet8a", seed, STEP_PROTOCOL)
        assert float(grad.norm()) == pytest.approx(STEP_PROTOCOL["grad_clip"], rel=1e-3)


# ---------------------------------------------------------------------------------------------------------
# Precision with a group.
# ---------------------------------------------------------------------------------------------------------
def test_bf16_with_a_group_is_refused_naming_the_setting():
    data = make_data(n=32)
    with pytest.raises(ValueError, match=r"protocols\.<protocol>\.precision"):
        fit_group([Member(*data, 0), Member(*data, 1)], {**STEP_PROTOCOL, "precision": "bf16"}, "resnet8a", "cpu",
                  log=quiet)


def test_auto_precision_is_resolved_and_recorded():
    from softlabels.train.trainer import resolve_precision

    data = make_data(n=32)
    a, b = fit_group([Member(*data, 0), Member(*data, 1)], {**STEP_PROTOCOL, "precision": "auto"}, "resnet8a",
                     "cpu", log=quiet)
    assert a.training_summary["precision"] == b.training_summary["precision"] == "fp32"
    assert resolve_precision(torch.device("cpu"), "auto", 1) == "fp32"
    assert resolve_precision(torch.device("cuda"), "auto", 4) == "fp32"  # fused: bf16 would not reach the convs
    assert resolve_precision(torch.device("cpu"), "bf16", 1) == "bf16"
    single = fit(*data, {**STEP_PROTOCOL, "precision": "bf16"}, "resnet8a", 0, "cpu", log=quiet)
    assert single.training_summary["precision"] == "bf16"


def test_training_backends_restore_the_global_flags():
    from softlabels.train.trainer import training_backends

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    with training_backends(torch.device("cuda"), tf32=not saved[0], cudnn_benchmark=not saved[2]):
        assert torch.backends.cuda.matmul.allow_tf32 != saved[0]
        assert torch.backends.cudnn.benchmark != saved[2]
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark) == saved
