"""What a workflow run will train and roughly how long it takes on this machine.

`measure_images_per_s` times the trainer itself (`fit_group` on random images, two epochs, the second
timed); `training_plan_text` turns the to-do groups into the plan printed when a workflow run starts:
runs, group jobs, device and the estimated training time, Σ_groups epochs · n_train · G / (images/s of a
group of G), with n_train from `runs.approximate_train_size`. On the CPU the measurement uses one member
and one step of 16 images (a CPU step costs about images × members, and this keeps it to seconds);
on CUDA a group of the real size and batch (at most 16 members measured). On the CPU only the cheapest
model is timed; the others are scaled by their FLOPs per image (`training_flops`).
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np

#: Largest group and batch measured for a plan on the CPU.
CPU_PLAN_BATCH = 16


def measure_images_per_s(model_name: str, batch_size: int, group_size: int, device, steps: int = 2,
                         precision: str = "fp32", augmentation: str = "none", cudnn_benchmark: bool = False) -> float:
    """Aggregate training images/s of `fit_group` with `group_size` members of `model_name` at `batch_size`:
    `steps` steps per epoch, two epochs, the second one timed (model build and first-step warm-up excluded)."""
    import torch

    from softlabels.train.trainer import Member, fit_group, resolve_device

    device = resolve_device(device)
    n = batch_size * steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)][:, None, :]
    pools = SimpleNamespace(labels=labels, sizes=np.ones(n, dtype=np.int64))
    protocol = {"epochs": 2, "batch_size": batch_size, "optimizer": {"momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
                "base_lr": {model_name: 0.01}, "lr_milestones": [], "lr_gamma": 0.1, "grad_clip": 1.0,
                "augmentation": augmentation, "precision": precision}
    records = []

    def log(line):
        if line.startswith("epoch=2 ") or line.startswith("member=0 epoch=2 "):
            records.append(time.perf_counter())

    members = [Member(images, pools, seed) for seed in range(group_size)]
    marks = []

    class Timer:
        """Marks the start of epoch 2 (first prepare call of epoch 2)."""

        def prepare(self, x, y, batch):
            if batch.epoch == 1 and not marks:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                marks.append(time.perf_counter())
            return x, lambda logits: __import__("softlabels.train.trainer", fromlist=["x"]).soft_cross_entropy_loss(logits, y)

    members[0].objective = Timer()
    fit_group(members, protocol, model_name, device, log=log, precision=precision, cudnn_benchmark=cudnn_benchmark)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = records[0] - marks[0]
    return group_size * n / seconds


def group_seconds(epochs: int, n_train: int, group_size: int, images_per_s: float) -> float:
    return epochs * n_train * group_size / images_per_s


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def training_flops(model_name: str) -> float:
    """Forward + backward FLOPs of one 32×32 image, counted on the meta device (no arithmetic runs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from softlabels.models import build_model

    with torch.device("meta"):
        model = build_model(model_name)
        x = torch.zeros(1, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return float(counter.get_total_flops())


def training_plan_text(config: Mapping, groups: Sequence, specs: Mapping, measure: bool = True) -> str:
    """The plan of a workflow run (module docstring). On CUDA each (model, batch, group size) is timed; on
    the CPU, where a step costs about its arithmetic, one step of the cheapest model is timed and the others
    are scaled by their FLOPs (`training_flops`), so the plan costs seconds even at the paper scale."""
    from softlabels.train.runs import approximate_train_size
    from softlabels.train.trainer import resolve_device

    device = resolve_device(config["device"])
    training = [g for g in groups if g.members]
    runs = sum(len(g.members) for g in training)
    copies = sum(len(g.aliases) for g in groups)
    lines = [f"training plan: {runs} run(s) to train in {len(training)} group job(s), {copies} shared run(s) "
             f"copied, on {device} (scale {config['scale']})"]
    if not training:
        return lines[0]
    total = 0.0
    rates: dict = {}
    if measure and device.type == "cpu":
        flops = {model: training_flops(model) for model in sorted({g.model for g in training})}
        cheapest = min(flops, key=flops.get)
        t0 = time.perf_counter()
        measured = measure_images_per_s(cheapest, CPU_PLAN_BATCH, 1, device, steps=1,
                                        precision=config["protocols"][training[0].protocol].get("precision", "fp32"))
        lines.append(f"  measured {cheapest}: {measured:.0f} images/s (one step of {CPU_PLAN_BATCH} images, "
                     f"{time.perf_counter() - t0:.1f} s); other models scaled by their FLOPs per image")
        for model, f in flops.items():
            rates[model] = measured * flops[cheapest] / f
    for group in training:
        protocol = config["protocols"][group.protocol]
        batch, size = int(protocol["batch_size"]), len(group.members)
        key = group.model if device.type == "cpu" else (group.model, batch, min(size, 16))
        if measure and key not in rates:
            t0 = time.perf_counter()
            rates[key] = measure_images_per_s(group.model, batch, min(size, 16), device, steps=2,
                                              precision=protocol.get("precision", "fp32"))
            lines.append(f"  measured {group.model}: {rates[key]:.0f} images/s (group of {min(size, 16)}, "
                         f"batch {batch}; {time.perf_counter() - t0:.1f} s to measure)")
        if key in rates:
            n_train = approximate_train_size(specs[group.members[0]])
            # On CUDA a group above 16 members is taken as no faster in aggregate than 16.
            total += group_seconds(int(protocol["epochs"]), n_train, size, rates[key])
    if measure:
        lines.append(f"  estimated training time: {_duration(total)} on {device} (evaluation not included)")
    if device.type == "cpu" and config["scale"] == "paper":
        lines.append("  WARNING: this is the paper scale on a CPU: its training runs take days here. For a build "
                     "of every table in minutes on this machine, stop and run with `--config scale=quick`.")
    return "\n".join(lines)
