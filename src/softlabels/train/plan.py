"""What a workflow run will train and roughly how long it takes on this machine.

`measure_step` times the trainer itself (`fit_group` on random images of the real model, batch and precision,
with the torch threads a training job gets): two short calls of two epochs, with a few and with more steps per
epoch, the second (warm) epoch of each timed, give the seconds of one warmed-up step and the fixed cost of an
epoch. `training_plan_text` turns the to-do groups into the plan printed when a workflow run starts: runs,
group jobs, device and the estimated wall time, Σ_groups epochs · (steps · step s + epoch s), divided over the
jobs that run side by side (cores / threads per job). On the CPU a step costs about its members × images, so one
member is measured and scaled by the group size, and only the cheapest model is timed, the others scaled by
their FLOPs per image (`training_flops`); on CUDA a group of the real size (at most 16) is measured.
`paper_on_cpu_message` is the stop of a paper-scale run on a CPU (config `allow_paper_on_cpu`).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np

from softlabels.experiments.groups import approximate_train_size

#: Largest batch measured for a plan on the CPU (a CPU step's cost per image hardly changes above it).
CPU_PLAN_BATCH = 64
#: Steps per epoch of the two timed calls (`measure_step`).
PLAN_STEPS = (2, 6)


def measure_images_per_s(model_name: str, batch_size: int, group_size: int, device, steps: int = 2,
                         precision: str = "fp32", augmentation: str = "none", cudnn_benchmark: bool = False) -> float:
    """Aggregate training images/s of `fit_group` with `group_size` members of `model_name` at `batch_size`:
    `steps` steps per epoch, two epochs, the second one timed (model build and first-step warm-up excluded)."""
    import torch

    from softlabels.evaluate.metrics import soft_cross_entropy
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
            return x, lambda logits: soft_cross_entropy(logits, y)

    members[0].objective = Timer()
    fit_group(members, protocol, model_name, device, log=log, precision=precision, cudnn_benchmark=cudnn_benchmark)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = records[0] - marks[0]
    return group_size * n / seconds


def measure_step(model_name: str, batch_size: int, group_size: int, device, precision: str = "fp32",
                 threads: int | None = None) -> tuple[float, float]:
    """(seconds of one warmed-up step of a group of `group_size`, fixed seconds per epoch) of `fit_group` at
    `batch_size`, with `threads` torch threads (the job's) while measuring. From two calls (`PLAN_STEPS` steps
    per epoch, the second epoch of each timed): step = Δtime / Δsteps, epoch = the rest."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        few, many = PLAN_STEPS
        rate_few = measure_images_per_s(model_name, batch_size, group_size, device, steps=few, precision=precision)
        rate_many = measure_images_per_s(model_name, batch_size, group_size, device, steps=many,
                                         precision=precision)
    finally:
        torch.set_num_threads(previous)
    t_few = group_size * batch_size * few / rate_few
    t_many = group_size * batch_size * many / rate_many
    step = max((t_many - t_few) / (many - few), 0.5 * t_many / many)
    return step, max(0.0, t_few - few * step)


def measure_job_start_s() -> float:
    """Seconds a fresh job process takes to start Python and import torch and the trainer (each job is one)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import softlabels.train.trainer"], capture_output=True, check=False)
    return time.perf_counter() - t0


def evaluation_images(config: Mapping, protocol_name: str) -> float:
    """Training-step equivalents (images) of one run's evaluation: CE on each hold-out (a forward, ~1/3 of a
    training step per image), FGSM (forward, backward, forward: ~4/3) and, in chapter 5, the corruption CE
    (a forward per corrupted image, 15 corruptions)."""
    evaluation = config.get("evaluation", {})
    holdout = evaluation.get("cifar10h_holdout_limit") or 3000
    s_holdout = (evaluation.get("cifar10s_holdout") or {}).get("size", 0) or 0
    images = (holdout + s_holdout) * 5 / 3
    if protocol_name == "chapter5":
        images += len((evaluation.get("corruption") or {}).get("corruptions", [])) * holdout / 3
    return images


#: A training job's set-up after its imports (reading the data, building the labels), and the whole of any other
#: job, in units of the measured start. Calibrated on the smoke `all` build on 2 CPU cores (115 jobs, 5 min
#: 24 s, of which training 43 s and evaluation 24 s of job time: the rest is about 5 s per job, 2.5 starts).
SETUP_PER_START = 2.0
OTHER_JOB_STARTS = 2.0


def group_seconds(epochs: int, n_train: int, batch_size: int, step_s: float, epoch_s: float) -> float:
    """Training seconds of one group job: epochs × (steps per epoch × step + fixed epoch cost)."""
    return epochs * (math.ceil(n_train / batch_size) * step_s + epoch_s)


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


PAPER_ON_CPU = ("this is the paper scale on a CPU: {estimate}. Instead: run the quick scale on this machine "
                "(`--config scale=quick`, every table in hours on 2 cores; README section \"Scales\"), run the paper "
                "scale on a GPU machine or a SLURM cluster (README section \"Running on a SLURM cluster\"), or, to "
                "train at paper scale on this CPU anyway, add `--config allow_paper_on_cpu=true`.")


def paper_on_cpu(config: Mapping) -> bool:
    from softlabels.train.trainer import resolve_device

    return config["scale"] == "paper" and resolve_device(config["device"]).type == "cpu"


def training_plan_text(config: Mapping, groups: Sequence, specs: Mapping, measure: bool = True,
                       cores: int | None = None, other_jobs: int = 0, sweep_points: int = 0) -> str:
    """The plan of a workflow run (module docstring); `cores`: Snakemake's --cores (jobs side by side);
    `other_jobs`: the run's jobs besides training (each costs about one job start); `sweep_points`: how many
    of the groups are hyperparameter-sweep points (one run each)."""
    from softlabels.train.trainer import resolve_device

    device = resolve_device(config["device"])
    training = [g for g in groups if g.members]
    runs = sum(len(g.members) for g in training)
    copies = sum(len(g.aliases) for g in groups)
    sweeps = f" (of them {sweep_points} hyperparameter-sweep point(s))" if sweep_points else ""
    lines = [f"training plan: {runs} run(s) to train in {len(training)} group job(s){sweeps}, {copies} shared "
             f"run(s) copied, on {device} (scale {config['scale']})"]
    if not training:
        return lines[0]
    cpu = device.type == "cpu"
    protocol_of = lambda g: config["protocols"][g.protocol]
    threads_of = lambda g: int(protocol_of(g).get("resources", {}).get("threads", 1) or 1)
    total = 0.0
    evaluation = 0.0
    costs: dict = {}
    if measure and cpu:
        flops = {model: training_flops(model) for model in sorted({g.model for g in training})}
        cheapest = min(flops, key=flops.get)
        first = min(training, key=lambda g: flops[g.model])
        # the paper scale on a CPU only stops with its estimate: time a small batch of its (large) models
        batch = min(int(protocol_of(first)["batch_size"]), 8 if paper_on_cpu(config) else CPU_PLAN_BATCH)
        t0 = time.perf_counter()
        step, epoch = measure_step(cheapest, batch, 1, device, precision=protocol_of(first).get("precision", "fp32"),
                                   threads=threads_of(first))
        lines.append(f"  measured {cheapest}: {batch / step:.0f} images/s per member on {threads_of(first)} "
                     f"thread(s) (warm steps of {batch} images, {step * 1000:.0f} ms each, + {epoch:.2f} s per "
                     f"epoch; {time.perf_counter() - t0:.1f} s to measure); other models scaled by their FLOPs")
        for model, f in flops.items():
            costs[model] = (batch / step * flops[cheapest] / f, epoch)  # images/s of one member, s per epoch
    for group in training:
        protocol = protocol_of(group)
        batch, size = int(protocol["batch_size"]), len(group.members)
        key = group.model if cpu else (group.model, batch, min(size, 16))
        if measure and key not in costs:
            t0 = time.perf_counter()
            step, epoch = measure_step(group.model, batch, min(size, 16), device,
                                       precision=protocol.get("precision", "fp32"))
            costs[key] = (min(size, 16) * batch / step, epoch)
            lines.append(f"  measured {group.model}: {costs[key][0]:.0f} images/s (group of {min(size, 16)}, "
                         f"batch {batch}; {time.perf_counter() - t0:.1f} s to measure)")
        if key in costs:
            rate, epoch = costs[key]
            n_train = approximate_train_size(specs[group.members[0]])
            # On the CPU a group's step costs its members × one member's; on CUDA a group above 16 members is
            # taken as no faster in aggregate than 16.
            members = size if cpu else max(1.0, size / 16)
            step = batch * (1 if cpu else min(size, 16)) / rate
            total += group_seconds(int(protocol["epochs"]), n_train, batch, members * step, epoch)
            per_image = step / batch / (1 if cpu else min(size, 16))
            evaluation += size * evaluation_images(config, group.protocol) * per_image
    if measure:
        start = measure_job_start_s()
        side_by_side = max(1, min(len(training), (cores or 1) // max(1, min(threads_of(g) for g in training))))
        overhead = len(training) * start * (1 + SETUP_PER_START) + other_jobs * start * OTHER_JOB_STARTS
        wall = (total + evaluation + overhead) / (side_by_side if cpu else 1)
        lines.append(f"  estimated time: {_duration(wall)} on {device}"
                     + (f", {side_by_side} jobs side by side on {cores} cores" if cpu and side_by_side > 1 else "")
                     + f" (training {_duration(total)}, evaluation {_duration(evaluation)}, job start-up and "
                     f"set-up {_duration(overhead)}: {start:.1f} s per job start measured, "
                     f"{len(training) + other_jobs} jobs)")
        lines.insert(1, f"  estimated training time: {_duration(total / (side_by_side if cpu else 1))} on {device}")
    if paper_on_cpu(config):
        estimate = f"its training takes about {_duration(total)} here" if measure else "its training takes days here"
        lines.append("  WARNING: " + PAPER_ON_CPU.format(estimate=estimate))
    return "\n".join(lines)


