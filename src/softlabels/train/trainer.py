"""The training loop (thesis §3.3, protocol-facts §3.1-3.4, decisions.md "Training").

Design (airbench / nanoGPT spirit): the images and the label pools live as tensors on the device. Each
epoch draws, for the whole epoch at once, a permutation of the examples, one uniform number per example
for the annotator draw (pool position floor(u·size)) and, with per-epoch augmentation, one crop/flip per
example; it then gathers the epoch's normalised images and drawn targets in that order, so each batch is
a contiguous slice. Nothing runs Python per example, and a step is forward, backward, clip, SGD.

Randomness. Every random stream is a `torch.Generator` seeded from (seed, stream, epoch), so the draws
of epoch e do not depend on how many epochs ran in this process:
- model initialisation: torch's global RNG seeded from (seed, "init") just before `build_model`;
- "once" augmentation: one crop/flip per image, drawn before training from (seed, "augment_once");
- per epoch: batch order, annotator draws, per-epoch augmentation, and the generator handed to
  objectives that accept one.
Global RNGs (torch, CUDA, NumPy, `random`) are seeded at the start and saved in / restored from the
checkpoint, as is the state of the objective (its `state_dict()` / `load_state_dict()` when it has them,
else the NumPy / torch generators among its attributes). On the CPU,
the same inputs and seed therefore give bit-identical weights, also across a kill and resume.

Objective hook. `objective(model, inputs, targets) -> scalar loss` replaces the soft cross-entropy:
`inputs` is the normalised batch [B, 3, 32, 32] (float32; channels_last where the model is), `targets`
the soft labels [B, K] drawn for this batch (one-hot rows for hard images). Because normalisation is
affine per channel, mixing normalised inputs equals normalising mixed pixels. Hard classes (for
different-class partners or τ) are `targets.argmax(1)`. An objective that needs more declares a
keyword-only parameter `batch` and receives a `Batch` (x, y, hard_labels, index, epoch, generator) with
the same tensors plus the dataset row indices and a per-epoch seeded CPU generator. On CUDA the call
runs under autocast: cast logits to float32 before a loss (`logits.float()`).
"""

from __future__ import annotations

import inspect
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from softlabels.models import CIFAR_MEAN, CIFAR_STD, build_model

#: Checkpoint layout version; a checkpoint of another version is refused.
CHECKPOINT_FORMAT = 1
#: Random streams (mixed into the seed of each generator).
STREAMS = {"init": 0, "augment_once": 1, "order": 2, "annotator": 3, "augment_epoch": 4, "objective": 5, "global": 6}
CROP_PADDING = 4


# ---------------------------------------------------------------------------------------------------
# Pure pieces (unit-tested).
# ---------------------------------------------------------------------------------------------------
def stream_seed(seed: int, stream: str, epoch: int = 0) -> int:
    """A 63-bit seed for one random stream, mixed from (seed, stream, epoch) with NumPy's SeedSequence."""
    state = np.random.SeedSequence([int(seed), STREAMS[stream], int(epoch)]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def stream_generator(seed: int, stream: str, epoch: int = 0) -> torch.Generator:
    """A CPU torch.Generator for one stream of one epoch."""
    return torch.Generator().manual_seed(stream_seed(seed, stream, epoch))


def learning_rate(protocol: Mapping, model_name: str, epoch: int) -> float:
    """lr(e) = base_lr[model] · lr_gamma^#{m in lr_milestones : e > m} for the 0-indexed epoch e.

    The released code updates the rate *after* each epoch once epoch ≥ m, so with milestones [50, 55]
    epochs 0-50 use the base rate, 51-55 base·γ and 56-64 base·γ² (protocol-facts §3.1)."""
    base_lrs = protocol["base_lr"]
    if model_name not in base_lrs:
        raise KeyError(f"protocol key 'base_lr' has no entry for model '{model_name}' (has: {', '.join(base_lrs)})")
    drops = sum(1 for m in protocol["lr_milestones"] if epoch > m)
    # Divide by 1/γ (as the released code's lr/10) rather than multiply by γ: 0.1/10 is exactly 0.01.
    return float(base_lrs[model_name]) / (1.0 / float(protocol["lr_gamma"])) ** drops


def draw_crop_flip(n: int, generator: torch.Generator, padding: int = CROP_PADDING) -> tuple[torch.Tensor, ...]:
    """Per image: row and column offsets uniform in 0..2·padding and a flip with probability 1/2
    (RandomCrop(32, padding) + RandomHorizontalFlip)."""
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return dy, dx, flip


def crop_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
              padding: int = CROP_PADDING) -> torch.Tensor:
    """Batched crop + horizontal flip of [B, C, H, W] images: zero-pad by `padding`, take the H×W window at
    (dy, dx) and mirror it where `flip`; one gather, no per-image Python."""
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    rows = dy.to(device).view(b, 1) + torch.arange(h, device=device)
    cols_fwd = torch.arange(w, device=device)
    cols = dx.to(device).view(b, 1) + torch.where(flip.to(device).view(b, 1), w - 1 - cols_fwd, cols_fwd)
    batch_index = torch.arange(b, device=device).view(b, 1, 1, 1)
    channel_index = torch.arange(c, device=device).view(1, c, 1, 1)
    return padded[batch_index, channel_index, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def draw_annotators(sizes: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Pool position per example: floor(u · size), u ~ U[0, 1), i.e. uniform over the size candidates."""
    return torch.minimum((uniforms * sizes).floor().long(), sizes - 1)


def normalise(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] → float32 (x/255 − mean) / std with the CIFAR statistics."""
    mean = torch.tensor(CIFAR_MEAN, device=images_u8.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=images_u8.device).view(1, 3, 1, 1)
    return (images_u8.float() / 255.0 - mean) / std


def soft_cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−(1/B) Σ_i Σ_k y_ik log softmax(z_i)_k (mean over the batch; utils.py:57-75), in float32."""
    return -(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


@dataclass
class Batch:
    """What an objective declaring a keyword `batch` receives.

    x: normalised inputs [B, 3, 32, 32]; y: drawn soft targets [B, K] float32; hard_labels: argmax(y) [B]
    int64; index: rows of the training set [B] int64; epoch: 0-indexed epoch; generator: CPU
    torch.Generator seeded from (seed, epoch), for the objective's own draws."""

    x: torch.Tensor
    y: torch.Tensor
    hard_labels: torch.Tensor
    index: torch.Tensor
    epoch: int
    generator: torch.Generator


def default_objective(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The chapter-3 loss: soft cross-entropy, mean over the batch."""
    return soft_cross_entropy_loss(model(inputs), targets)


def _wants_batch(objective: Callable) -> bool:
    try:
        parameters = inspect.signature(objective).parameters
    except (TypeError, ValueError):
        return False
    return "batch" in parameters and parameters["batch"].kind == inspect.Parameter.KEYWORD_ONLY


# ---------------------------------------------------------------------------------------------------
# Devices, precision, RNG state, checkpoints.
# ---------------------------------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None) -> torch.device:
    """"auto"/None → cuda when available, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for `precision`: auto = bfloat16 on CUDA (float16 where bf16 is unsupported), no
    autocast (float32) on the CPU; fp32 = none; bf16 = bfloat16 on any device."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def seed_globals(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's legacy global RNG and `random` from (seed, "global")."""
    s = stream_seed(seed, "global")
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def objective_state(objective: Any) -> Any:
    """The objective's `state_dict()` if it has one, else the states of the NumPy / torch generators among
    its attributes (so an objective holding its own RNG resumes exactly); None when there are none."""
    if hasattr(objective, "state_dict"):
        return objective.state_dict()
    generators = {}
    for name, value in vars(objective).items() if hasattr(objective, "__dict__") else ():
        if isinstance(value, np.random.Generator):
            generators[name] = ("numpy", value.bit_generator.state)
        elif isinstance(value, torch.Generator):
            generators[name] = ("torch", value.get_state())
    return {"generators": generators} if generators else None


def set_objective_state(objective: Any, state: Any) -> None:
    """Inverse of `objective_state`."""
    if hasattr(objective, "load_state_dict"):
        objective.load_state_dict(state)
        return
    for name, (kind, value) in state["generators"].items():
        generator = getattr(objective, name)
        if kind == "numpy":
            generator.bit_generator.state = value
        else:
            generator.set_state(value)


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then os.replace: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def run_fingerprint(images: torch.Tensor, labels: torch.Tensor, protocol: Mapping, model_name: str, seed: int,
                    precision: str) -> dict:
    """What a checkpoint must match to be resumed (shapes, protocol, model, seed, precision)."""
    keys = ("epochs", "batch_size", "optimizer", "base_lr", "lr_milestones", "lr_gamma", "grad_clip", "augmentation")
    return {
        "model": model_name,
        "seed": int(seed),
        "precision": precision,
        "n_images": int(images.shape[0]),
        "pool_shape": list(labels.shape),
        "protocol": {k: protocol.get(k) for k in keys},
    }


def load_checkpoint(path: Path, fingerprint: Mapping) -> dict | None:
    """The checkpoint at `path` if it exists; ValueError naming the file and key when it belongs to another run."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path}: format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}; delete it")
    for key, value in fingerprint.items():
        if state["fingerprint"].get(key) != value:
            raise ValueError(
                f"checkpoint {path} belongs to another run: {key} is {state['fingerprint'].get(key)!r}, "
                f"this run has {value!r}; delete the checkpoint to start afresh"
            )
    return state


# ---------------------------------------------------------------------------------------------------
# Data on the device.
# ---------------------------------------------------------------------------------------------------
def images_to_tensor(images_u8: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [N, 32, 32, 3] (HWC) → uint8 tensor [N, 3, 32, 32] on `device`; ValueError on a wrong layout."""
    images_u8 = np.asarray(images_u8)
    if images_u8.dtype != np.uint8 or images_u8.ndim != 4 or images_u8.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {images_u8.dtype} {images_u8.shape}")
    return torch.from_numpy(np.ascontiguousarray(images_u8.transpose(0, 3, 1, 2))).to(device)


def pools_to_tensors(pools: Any, n_images: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels float32 [N, P, K], sizes int64 [N]) from any object with `.labels` and `.sizes`."""
    labels = torch.as_tensor(np.asarray(pools.labels, dtype=np.float32))
    sizes = torch.as_tensor(np.asarray(pools.sizes, dtype=np.int64))
    if labels.ndim != 3 or sizes.shape != (labels.shape[0],):
        raise ValueError(f"pools must have labels [N, P, K] and sizes [N], got {tuple(labels.shape)} and {tuple(sizes.shape)}")
    if labels.shape[0] != n_images:
        raise ValueError(f"{n_images} images but {labels.shape[0]} label pools")
    if n_images and (int(sizes.min()) < 1 or int(sizes.max()) > labels.shape[1]):
        raise ValueError(f"pool sizes must lie in 1..{labels.shape[1]}")
    return labels.to(device), sizes.to(device)


def augment_once(images: torch.Tensor, seed: int, chunk: int = 4096) -> torch.Tensor:
    """The released code's augmentation: one fixed crop/flip per image for the whole run."""
    dy, dx, flip = draw_crop_flip(images.shape[0], stream_generator(seed, "augment_once"))
    parts = [crop_flip(images[s : s + chunk], dy[s : s + chunk], dx[s : s + chunk], flip[s : s + chunk])
             for s in range(0, images.shape[0], chunk)]
    return torch.cat(parts) if parts else images


def epoch_images(images: torch.Tensor, order: torch.Tensor | None, memory_format: torch.memory_format,
                 crops: tuple[torch.Tensor, ...] | None = None, chunk: int = 4096) -> torch.Tensor:
    """Normalised float32 images in `order` (all, in stored order, when None), cropped/flipped with the
    per-position `crops` (dy, dx, flip) when given; batches are then contiguous slices of the result."""
    n = images.shape[0]
    parts = []
    for s in range(0, n, chunk):
        index = order[s : s + chunk] if order is not None else slice(s, s + chunk)
        x = images[index]
        if crops is not None:
            x = crop_flip(x, *(t[s : s + chunk] for t in crops))
        parts.append(normalise(x))
    return torch.cat(parts).contiguous(memory_format=memory_format)


# ---------------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------------
def fit(
    images_u8: np.ndarray,
    pools: Any,
    protocol: Mapping,
    model_name: str,
    seed: int,
    device: str | torch.device = "auto",
    checkpoint_path: str | Path | None = None,
    log: Callable[[str], Any] = print,
    objective: Callable | None = None,
    precision: str | None = None,
) -> nn.Module:
    """Train `model_name` on `images_u8` [N, 32, 32, 3] uint8 with labels drawn from `pools` (any object with
    `.labels` float32 [N, P, K] and `.sizes` int64 [N]) under `protocol` (one `protocols.<p>` config block).

    Per step: SGD (momentum, weight decay, nesterov from `protocol.optimizer`) on the objective (default:
    soft CE, mean over the batch), gradient-norm clip at `grad_clip` unless null. The rate follows
    `learning_rate`. Augmentation (`protocol.augmentation`): once | per_epoch | none. `precision` (default
    `protocol.get("precision", "auto")`): see `autocast_dtype`.

    With `checkpoint_path`, the state (model, optimizer, epoch, RNG states, objective state, log history)
    is written atomically after every epoch and training resumes from it when it exists. Logs one line
    per epoch. Returns the model in eval mode on `device`, with `model.training_summary` = dict(epochs,
    seconds, images_per_s, history) where history holds the per-epoch records.
    """
    device = resolve_device(device)
    precision = precision or protocol.get("precision", "auto")
    amp_dtype = autocast_dtype(device, precision)
    objective = objective or default_objective
    wants_batch = _wants_batch(objective)
    epochs, batch_size = int(protocol["epochs"]), int(protocol["batch_size"])
    augmentation = protocol.get("augmentation", "none")
    if augmentation not in ("once", "per_epoch", "none"):
        raise ValueError(f"protocol key 'augmentation' must be once, per_epoch or none, got {augmentation!r}")

    images = images_to_tensor(images_u8, device)
    labels, sizes = pools_to_tensors(pools, images.shape[0], device)
    n = images.shape[0]
    if n == 0:
        raise ValueError("no training images")
    fingerprint = run_fingerprint(images, labels, protocol, model_name, seed, precision)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    state = load_checkpoint(checkpoint_path, fingerprint) if checkpoint_path is not None else None

    seed_globals(seed)
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_model(model_name, num_classes=labels.shape[2]).to(device)
    memory_format = torch.channels_last
    model = model.to(memory_format=memory_format)
    opt_cfg = protocol["optimizer"]
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=learning_rate(protocol, model_name, 0),
        momentum=float(opt_cfg["momentum"]),
        weight_decay=float(opt_cfg["weight_decay"]),
        nesterov=bool(opt_cfg["nesterov"]),
        fused=device.type == "cuda",
    )
    seed_globals(seed)
    if augmentation == "once":
        images = augment_once(images, seed)
    # Normalised once (augmentation none/once); per-epoch crops are cut from the uint8 images each epoch.
    stored = None if augmentation == "per_epoch" else epoch_images(images, None, memory_format)

    start_epoch, seconds_before, history = 0, 0.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        if state.get("objective") is not None:
            set_objective_state(objective, state["objective"])
        start_epoch, seconds_before, history = state["epoch"], state["seconds"], list(state["history"])
        log(f"resumed from {checkpoint_path}: completed_epochs={start_epoch} of {epochs}")

    grad_clip = protocol.get("grad_clip")
    t_session = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        t_epoch = time.perf_counter()
        lr = learning_rate(protocol, model_name, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(n, generator=stream_generator(seed, "order", epoch)).to(device)
        uniforms = torch.rand(n, generator=stream_generator(seed, "annotator", epoch)).to(device)
        if augmentation == "per_epoch":
            crops = draw_crop_flip(n, stream_generator(seed, "augment_epoch", epoch))
            x_epoch = epoch_images(images, order, memory_format, crops)
        else:
            x_epoch = stored[order]
        y_epoch = labels[order, draw_annotators(sizes[order], uniforms)]
        objective_generator = stream_generator(seed, "objective", epoch)
        loss_sum = torch.zeros((), device=device)
        for s in range(0, n, batch_size):
            x, y = x_epoch[s : s + batch_size], y_epoch[s : s + batch_size]
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                if wants_batch:
                    batch = Batch(x, y, y.argmax(dim=1), order[s : s + batch_size], epoch, objective_generator)
                    loss = objective(model, x, y, batch=batch)
                else:
                    loss = objective(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
            optimizer.step()
            loss_sum.add_(loss.detach().float(), alpha=x.shape[0])
        mean_loss = float(loss_sum) / n
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss became {mean_loss} in epoch {epoch} ({model_name}, seed {seed})")
        now = time.perf_counter()
        epoch_s = now - t_epoch
        elapsed = seconds_before + now - t_session
        per_epoch = (now - t_session) / (epoch + 1 - start_epoch)
        record = {"epoch": epoch + 1, "epochs": epochs, "loss": round(mean_loss, 6), "lr": lr,
                  "images_per_s": round(n / epoch_s, 1), "elapsed_s": round(elapsed, 2),
                  "eta_s": round(per_epoch * (epochs - epoch - 1), 1)}
        history.append(record)
        if checkpoint_path is not None:
            save_atomic({
                "format": CHECKPOINT_FORMAT,
                "fingerprint": fingerprint,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng_state(),
                "objective": objective_state(objective),
                "seconds": elapsed,
                "history": history,
            }, checkpoint_path)
        log(" ".join(f"{k}={v:.6g}" if k == "lr" else f"{k}={v}" for k, v in record.items()))

    seconds = seconds_before + time.perf_counter() - t_session
    trained = (epochs - start_epoch) * n
    model.eval()
    model.training_summary = {
        "epochs": epochs,
        "seconds": round(seconds, 3),
        "images_per_s": round(trained / (seconds - seconds_before), 1) if trained and seconds > seconds_before else None,
        "history": history,
    }
    return model
