"""Training throughput: softlabels' trainer vs the released code's data path (see benchmarks/README.md).

Both sides train ResNet-34A at batch 32 with the chapter-3 optimiser (SGD momentum 0.9, weight decay 1e-4,
grad-norm clip 1.0, soft CE) on random images with de-aggregated label pools of 51 annotators:

- baseline: the released code's structure, a `Dataset` of pre-normalised image tensors (augmented once)
  whose `__getitem__` draws one annotator label with `random.choice`, a `DataLoader` (shuffle, batch 32,
  default collation) and a plain loop; the model in PyTorch's default (contiguous) layout.
- trainer: `softlabels.train.fit` (images and pools as device tensors, index-slice batches, vectorised
  annotator draws, channels_last, autocast where the precision asks for it).

Steps are split into rounds that alternate trainer and baseline, so a change in machine load hits both.
Only the training steps are timed (model construction and the one-time augmentation are not).

    python benchmarks/train_throughput.py                    # CPU or CUDA, whatever torch sees
    python benchmarks/train_throughput.py --steps 300 --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import random
import time
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from softlabels.models import build_model
from softlabels.train import fit
from softlabels.evaluate.metrics import soft_cross_entropy
from softlabels.train.trainer import augment_once, normalise, resolve_device

MODEL = "resnet34a"
POOL_SIZE = 51


def protocol(epochs: int, batch_size: int) -> dict:
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": {"momentum": 0.9, "weight_decay": 1e-4, "nesterov": False},
        "base_lr": {MODEL: 0.1},
        "lr_milestones": [50, 55],
        "lr_gamma": 0.1,
        "grad_clip": 1.0,
        "augmentation": "once",
    }


def synthetic_data(n: int, seed: int = 0, pool_size: int = POOL_SIZE):
    """Random uint8 images [n, 32, 32, 3] and pools of `pool_size` one-hot annotator labels per image."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, (n, pool_size))]
    return images, SimpleNamespace(labels=labels, sizes=np.full(n, pool_size, dtype=np.int64))


class AnnotatorDataset(Dataset):
    """The released code's per-annotator dataset: stored (augmented, normalised) image tensors and one list
    of annotator labels per image; `__getitem__` draws one label per fetch (as cambridge-mlg/cifar-10s)."""

    def __init__(self, images_u8: np.ndarray, pools, seed: int):
        x = torch.from_numpy(images_u8.transpose(0, 3, 1, 2).copy())
        self.images = list(normalise(augment_once(x, seed)))
        self.labels = [[pools.labels[n, p] for p in range(pools.sizes[n])] for n in range(len(images_u8))]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], torch.from_numpy(random.choice(self.labels[i]))


def baseline_steps(model, optimizer, loader, device) -> tuple[int, float]:
    """One pass over `loader` with the plain loop; returns (images, seconds)."""
    model.train()
    seen = 0
    sync(device)
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = soft_cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        seen += x.shape[0]
    sync(device)
    return seen, time.perf_counter() - start


def trainer_steps(images, pools, batch_size, device, precision, seed) -> tuple[int, float]:
    """`fit` for one epoch over `images` (= its steps); returns (images, training seconds)."""
    model = fit(images, pools, protocol(1, batch_size), MODEL, seed, device, None, log=lambda _: None,
                precision=precision)
    record = model.training_summary["history"][0]
    return len(images), len(images) / record["images_per_s"]


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120, help="timed steps per side (default 120)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per side first (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (default 3)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--precision", default="auto", help="trainer precision: auto | fp32 | bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--workers", type=int, default=0, help="baseline DataLoader workers (default 0)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    b = args.batch_size
    per_round = max(1, args.steps // args.rounds)
    images, pools = synthetic_data(per_round * b)
    warm_images, warm_pools = synthetic_data(args.warmup * b, seed=1)

    torch.manual_seed(0)
    model = build_model(MODEL).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader_args = dict(batch_size=b, shuffle=True, drop_last=False, num_workers=args.workers,
                       pin_memory=device.type == "cuda")
    loader = DataLoader(AnnotatorDataset(images, pools, 0), **loader_args)
    warm_loader = DataLoader(AnnotatorDataset(warm_images, warm_pools, 1), **loader_args)

    print(f"device={device} threads={torch.get_num_threads()} model={MODEL} batch={b} "
          f"steps={per_round * args.rounds} warmup={args.warmup} rounds={args.rounds} precision={args.precision}", flush=True)
    baseline_steps(model, optimizer, warm_loader, device)
    trainer_steps(warm_images, warm_pools, b, device, args.precision, 1)
    totals = {"baseline": [0, 0.0], "trainer": [0, 0.0]}
    for r in range(args.rounds):
        for name, (seen, seconds) in (
            ("trainer", trainer_steps(images, pools, b, device, args.precision, r)),
            ("baseline", baseline_steps(model, optimizer, loader, device)),
        ):
            totals[name][0] += seen
            totals[name][1] += seconds
            print(f"round {r + 1}: {name:8s} {seen / seconds:9.1f} img/s", flush=True)
    rate = {name: seen / seconds for name, (seen, seconds) in totals.items()}
    print(f"baseline (Dataset + DataLoader): {rate['baseline']:.1f} img/s")
    print(f"trainer  (softlabels.train.fit): {rate['trainer']:.1f} img/s")
    print(f"ratio trainer/baseline: {rate['trainer'] / rate['baseline']:.2f}")


if __name__ == "__main__":
    main()
