"""What makes a quick-scale run faster on a small CPU, each variant as a ratio to today's trainer.

The workload is a quick chapter-3 run in miniature: `--model` (resnet8a) at `--batch` (32, the thesis'
batch), soft cross-entropy on label pools, SGD with momentum and the 1.0 gradient-norm clip, `--images`
random images for `--epochs` epochs after one warm-up epoch. Every variant runs in this one invocation, so
machine load affects all of them alike; run it alone (nothing else training on the machine).

Variants (throughput in training images per second of wall time, summed over the processes of a variant):
- trainer/1 thread        `softlabels.train.trainer.fit_group`, a group of one, torch threads 1: how the
                          workflow runs a quick job (`--cores 2` starts two such jobs). The reference (1.00).
- trainer/2 threads       one process using both cores.
- 2 processes x 1 thread  two trainer processes at once, as `snakemake --cores 2` runs two jobs.
- fused group of 2        `fit_group` with two members (vmap), one process, 1 thread.
- bare loop channels_last / contiguous / torch.compile: the model step alone (forward, soft CE, backward,
                          clip, SGD) on fixed batches, 1 thread; compile time is reported separately and
                          the break-even number of images is printed.
- bf16 autocast           the trainer under `precision: bf16` (informative: the CPU default is fp32).
- evaluation batch size   seconds to evaluate 3000 images (predictions + FGSM) at several batch sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import numpy as np
import torch
import torch.nn.functional as F

from softlabels.models import build_model, with_normalization
from softlabels.train.trainer import Member, fit_group
from train_throughput import synthetic_data  # benchmarks/ is the script's folder, first on sys.path

PROTOCOL = {
    "batch_size": 32,
    "optimizer": {"momentum": 0.9, "weight_decay": 1.0e-4, "nesterov": False},
    "lr_milestones": [1000, 1001],
    "lr_gamma": 0.1,
    "grad_clip": 1.0,
    "augmentation": "once",
}


def protocol_for(args, epochs: int) -> dict:
    return {**PROTOCOL, "epochs": epochs, "batch_size": args.batch, "base_lr": {args.model: 0.1}}


def trainer_images_per_s(args, group: int, threads: int, precision: str = "fp32") -> float:
    """Group images/s of fit_group over `args.epochs` epochs after one warm-up epoch (whole-epoch timing)."""
    torch.set_num_threads(threads)
    images, pools = synthetic_data(args.images, pool_size=6)
    members = [Member(images, pools, seed) for seed in range(group)]
    fit_group(members, protocol_for(args, 1), args.model, "cpu", log=lambda _: None, precision=precision)
    t = time.perf_counter()
    fit_group(members, protocol_for(args, args.epochs), args.model, "cpu", log=lambda _: None, precision=precision)
    return group * args.images * args.epochs / (time.perf_counter() - t)


def concurrent_processes(args, processes: int) -> float:
    """Summed images/s of `processes` trainer processes (1 thread each) started together."""
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--batch", str(args.batch),
           "--images", str(args.images), "--epochs", str(args.epochs)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    return sum(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def bare_step_fn(model, optimizer):
    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss
    return step


def bare_loop(args, layout: str, compiled: bool) -> tuple[float, float]:
    """(images/s, compile seconds) of the bare model step on fixed batches, 1 thread."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = build_model(args.model).to(memory_format=fmt).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    step = bare_step_fn(model, optimizer)
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.softmax(torch.randn(args.batch, 10), 1)
    compile_s = 0.0
    if compiled:
        step = torch.compile(step)
        t = time.perf_counter()
        for _ in range(3):
            step(x, y)
        compile_s = time.perf_counter() - t
    for _ in range(5):
        step(x, y)
    steps = max(10, args.images * args.epochs // args.batch)
    t = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return steps * args.batch / (time.perf_counter() - t), compile_s


def evaluation_seconds(args, batch_size: int) -> float:
    """Seconds to evaluate 3000 images (predictions + FGSM), 1 thread, at `batch_size`."""
    from softlabels.evaluate.metrics import evaluate_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(args.model).eval()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3000, 32, 32, 3), dtype=np.uint8)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 3000)]
    t = time.perf_counter()
    evaluation = {"calibration": {"skip_last_bin": True}, "fgsm": {"epsilon": 4 / 255}}
    evaluate_model(model, images, targets, evaluation, bin_size=100, batch_size=batch_size)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet8a")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--images", type=int, default=2048, help="training images per epoch")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    p.add_argument("--skip-compile", action="store_true", help="leave out torch.compile (inductor)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(trainer_images_per_s(args, 1, 1))
        return 0
    rows = []

    def row(name, value, unit="img/s", note=""):
        rows.append({"variant": name, "value": round(value, 2), "unit": unit, "note": note})
        print(f"{name:32s} {value:10.1f} {unit} {note}", flush=True)

    base = trainer_images_per_s(args, 1, 1)
    row("trainer/1 thread (reference)", base)
    row("trainer/2 threads", trainer_images_per_s(args, 1, 2))
    row("2 processes x 1 thread", concurrent_processes(args, 2))
    row("fused group of 2, 1 thread", trainer_images_per_s(args, 2, 1))
    row("trainer bf16 autocast/1 thread", trainer_images_per_s(args, 1, 1, "bf16"))
    for layout in ("channels_last", "contiguous"):
        row(f"bare loop {layout}", bare_loop(args, layout, False)[0])
    if not args.skip_compile:
        rate, compile_s = bare_loop(args, "channels_last", True)
        eager = next(r["value"] for r in rows if r["variant"] == "bare loop channels_last")
        gain = 1 / eager - 1 / rate  # seconds saved per image
        breakeven = compile_s / gain if gain > 0 else float("inf")
        row("bare loop torch.compile", rate, note=f"compile {compile_s:.1f} s; repays after {breakeven:,.0f} images")
    for batch_size in (100, 500, 1000, 3000):
        row(f"evaluation, batch {batch_size}", evaluation_seconds(args, batch_size), unit="s", note="3000 images")
    print("\nratio to trainer/1 thread (img/s variants):")
    for r in rows:
        if r["unit"] == "img/s":
            print(f"  {r['variant']:32s} {r['value'] / base:5.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "cpu": cpu_model(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
