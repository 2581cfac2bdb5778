"""The training loop (thesis §3.3): one loop that trains a *group* of runs of one model and protocol as one
fused computation; a single run is a group of one.

Design (airbench / nanoGPT spirit): the images and the label pools live as tensors on the device. Each
epoch draws, per member and for the whole epoch at once, a permutation of the examples, one uniform number
per example for the annotator draw (pool position floor(u·size)) and, with per-epoch augmentation, one
crop/flip per example; it then gathers the epoch's normalised images and drawn targets in that order, so
each batch is a contiguous slice. Nothing runs Python per example.

Fusion (horizontal fusion of G runs). The members' parameters and batch-norm buffers are stacked along a
leading axis [G, ...] and one forward runs over all members with `torch.func.vmap` of
`torch.func.functional_call` (convolutions become one grouped convolution; batch-norm statistics and the
in-place running-stat updates stay per member). The loss is Σ_g L_g, so each member's gradient is its own
∂L_g/∂θ_g. Per member: clipping scales member g's gradient by min(1, c / (‖∇θ_g‖ + 1e-6)) with the norm
over all of g's parameters (as `clip_grad_norm_` alone); SGD with momentum, weight decay and Nesterov is
elementwise, so one SGD over the stacked tensors equals G separate SGDs. A group of one calls the model on
member 0's views directly (no vmap), keeping the channels_last fast path.

Randomness. Every random stream is a `torch.Generator` seeded from (member seed, stream, epoch), so the
draws of epoch e depend neither on how many epochs ran in this process nor on the other members:
- model initialisation: torch's global RNG seeded from (seed, "init") just before `build_model`;
- "once" augmentation: one crop/flip per image, drawn before training from (seed, "augment_once");
- per epoch: batch order, annotator draws, per-epoch augmentation and the objective's generator.
Nothing in a training step draws from the global RNGs; they are seeded from the first member's seed and
saved in / restored from each checkpoint. On the CPU the same inputs and seed give the same weights alone
or fused (to float32 rounding of the grouped kernels), also across a kill and resume.

Objective hook. An objective is an object with `prepare(x, y, batch) -> (inputs, loss_fn)` and optionally
`epoch_draws(batch_sizes, generator, device)` (its randomness for the whole epoch, handed back per step
as `batch.draws`): `x` the
normalised batch [B, 3, 32, 32] (float32), `y` the soft targets [B, K] drawn for it (one-hot rows for
hard images), `batch` a `Batch` (x, y, hard labels, dataset rows, epoch, the member's seeded per-epoch
CPU generator). It returns the tensor the model is to see (e.g. mixed inputs) and `loss_fn(logits) ->
scalar loss` for those inputs, so all members' inputs go through one fused forward. Because normalisation
is affine per channel, mixing normalised inputs equals normalising mixed pixels. On CUDA with bf16 the
forward runs under autocast: cast logits to float32 in `loss_fn` (`logits.float()`).
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from softlabels.data.io import save_torch
from softlabels.evaluate.metrics import soft_cross_entropy
from softlabels.models import CIFAR_MEAN, CIFAR_STD, build_model

#: Checkpoint layout version; a checkpoint of another version is refused.
CHECKPOINT_FORMAT = 2
#: Random streams (mixed into the seed of each generator).
STREAMS = {"init": 0, "augment_once": 1, "order": 2, "annotator": 3, "augment_epoch": 4, "objective": 5, "global": 6}
CROP_PADDING = 4
#: Added to a member's gradient norm before dividing (as torch.nn.utils.clip_grad_norm_).
CLIP_EPS = 1e-6


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
    epochs 0-50 use the base rate, 51-55 base·γ and 56-64 base·γ²
    (docs/protocol.md#optimizer-and-learning-rate-schedule)."""
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


@dataclass
class Batch:
    """What an objective declaring a keyword `batch` receives.

    x: normalised inputs [B, 3, 32, 32]; y: drawn soft targets [B, K] float32; hard_labels: argmax(y) [B]
    int64; index: rows of the training set [B] int64; epoch: 0-indexed epoch; generator: CPU
    torch.Generator seeded from (seed, epoch), for the objective's own draws; draws: this step's item of
    what the objective's `epoch_draws(batch_sizes, generator, device)` returned at the start of the epoch
    (None when it has no such method): the objective draws the whole epoch up front, on the device."""

    x: torch.Tensor
    y: torch.Tensor
    hard_labels: torch.Tensor
    index: torch.Tensor
    epoch: int
    generator: torch.Generator
    draws: Any = None


class SoftCrossEntropy:
    """The chapter-3 objective: soft cross-entropy of the unmixed batch, mean over the batch."""

    def prepare(self, x: torch.Tensor, y: torch.Tensor, batch: Batch | None = None):
        return x, lambda logits: soft_cross_entropy(logits, y)

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, batch: Batch | None = None):
        return objective_loss(self, model, inputs, targets, batch)


def objective_loss(objective: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: Batch | None = None):
    """The loss of one objective on one model for one batch (outside the trainer: tests, callers)."""
    inputs, loss_fn = objective.prepare(x, y, batch)
    return loss_fn(model(inputs))


# ---------------------------------------------------------------------------------------------------
# Devices, precision, RNG state, checkpoints.
# ---------------------------------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None) -> torch.device:
    """The training/evaluation device: "auto" (or None) = cuda when torch sees one, else cpu; "cuda" without a
    CUDA device is a ValueError naming the config key `device`."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for (config key 'device') but torch sees no CUDA device")
    return device


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


def resolve_precision(device: torch.device, precision: str, group_size: int = 1) -> str:
    """What a run of `precision` actually trains in, as recorded in metrics.json: fp32 or bf16.

    auto = bf16 for a single run on a CUDA device that supports it, else fp32 (on the CPU, and for a fused
    group: under `vmap` a convolution inside bf16 autocast returns float32, so fused members would silently
    train in float32). bf16 with a group of more than one is refused with a ValueError naming the setting."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"key 'protocols.<protocol>.precision' must be auto, fp32 or bf16, got {precision!r}")
    if precision == "bf16" and group_size > 1:
        raise ValueError(
            f"key 'protocols.<protocol>.precision' is bf16 but the runs train as a fused group of {group_size}: "
            "bf16 autocast does not reach the convolutions under vmap (they would run in float32). Set "
            "'protocols.<protocol>.precision' to fp32 or auto, or 'protocols.<protocol>.group_size' to 1")
    if precision == "auto":
        bf16 = device.type == "cuda" and group_size == 1 and torch.cuda.is_bf16_supported()
        return "bf16" if bf16 else "fp32"
    return precision


class training_backends:
    """Context for the training loop on CUDA: TF32 matmuls/convolutions in fp32 training and
    `cudnn.benchmark` as asked (`protocols.<p>.cudnn_benchmark`); the previous flags are restored on exit,
    so evaluation and other code run with the global settings. No effect on the CPU."""

    def __init__(self, device: torch.device, tf32: bool, cudnn_benchmark: bool):
        self.active = device.type == "cuda"
        self.tf32, self.benchmark = bool(tf32), bool(cudnn_benchmark)

    def __enter__(self):
        if self.active:
            self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                          torch.backends.cudnn.benchmark)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.tf32
            torch.backends.cudnn.benchmark = self.benchmark
        return self

    def __exit__(self, *exc):
        if self.active:
            (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark) = self.saved
        return False


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
@dataclass
class Member:
    """One run of a group: its training images uint8 [N, 32, 32, 3], label pools (`.labels` [N, P, K],
    `.sizes` [N]), seed, objective (None = soft CE), checkpoint file and a name for messages."""

    images_u8: np.ndarray
    pools: Any
    seed: int
    objective: Any = None
    checkpoint_path: str | Path | None = None
    name: str = ""


class Diverged(FloatingPointError):
    """A member whose mean training loss of an epoch was not finite; the other members are unaffected.
    `epoch` is the 1-indexed epoch whose loss was not finite (its checkpoint keeps epoch − 1); `history` the
    log records of the epochs before it."""

    def __init__(self, message: str, epoch: int | None = None, history: list | None = None):
        super().__init__(message)
        self.epoch = epoch
        self.history = list(history or [])


@dataclass
class _State:
    """Per-member tensors on the device."""

    member: Member
    images: torch.Tensor
    labels: torch.Tensor
    sizes: torch.Tensor
    fingerprint: dict
    checkpoint_path: Path | None
    checkpoint: dict | None
    objective: Any = None
    stored: torch.Tensor | None = None
    history: list = field(default_factory=list)
    seconds_before: float = 0.0
    failed: str | None = None
    failed_epoch: int | None = None


def _member_name(member: Member) -> str:
    return member.name or f"seed {member.seed}"


def fit(
    images_u8: np.ndarray,
    pools: Any,
    protocol: Mapping,
    model_name: str,
    seed: int,
    device: str | torch.device = "auto",
    checkpoint_path: str | Path | None = None,
    log: Callable[[str], Any] = print,
    objective: Any = None,
    precision: str | None = None,
    channels_last: bool | None = None,
) -> nn.Module:
    """Train one run: `fit_group` with a group of one; raises `Diverged` when its loss is not finite."""
    member = Member(images_u8, pools, seed, objective, checkpoint_path, name=f"{model_name} seed {seed}")
    result = fit_group([member], protocol, model_name, device, log, precision, channels_last=channels_last)[0]
    if isinstance(result, Exception):
        raise result
    return result


def fit_group(
    members: Sequence[Member],
    protocol: Mapping,
    model_name: str,
    device: str | torch.device = "auto",
    log: Callable[[str], Any] = print,
    precision: str | None = None,
    cudnn_benchmark: bool = False,
    channels_last: bool | None = None,
) -> list:
    """Train the runs `members` of `model_name` under `protocol` (one `protocols.<p>` config block), fused.

    Per step and member: SGD (momentum, weight decay, nesterov from `protocol.optimizer`) on the member's
    objective, gradient-norm clip at `grad_clip` unless null. The rate follows `learning_rate`.
    Augmentation (`protocol.augmentation`): once | per_epoch | none. `precision` (default
    `protocol.get("precision", "fp32")`): resolved by `resolve_precision` (bf16 with more than one member is
    refused) and recorded as `training_summary["precision"]`; fp32 on CUDA allows TF32 matmuls/convolutions
    during training only, and `cudnn_benchmark` sets `torch.backends.cudnn.benchmark` during training only
    (`training_backends`). `channels_last` (default: for a sub-group of one) stores the inputs in
    channels_last layout; a fused sub-group uses the contiguous layout. (On the CPU, torch 2.14.1's
    channels_last convolution backward is less accurate: gradients of ResNet-8A 0.7% from float64 against
    7e-6 contiguous, tests/test_fused.py; the equivalence tests compare layouts separately.)

    With a member's `checkpoint_path`, its state (weights and buffers, momentum, epoch, RNG states,
    objective state, log history) is written atomically after every epoch, and training resumes from it.
    Members are trained together when they have the same number of images and resume from the same
    epoch; otherwise in consecutive sub-groups. Returns, per member, its model in eval mode on the device
    with `model.training_summary` = dict(epochs, seconds, images_per_s, group_size, history), or a
    `Diverged` exception for a member whose loss became non-finite (its checkpoint keeps its last finite
    epoch; the others are trained to the end).
    """
    device = resolve_device(device)
    precision = precision or protocol.get("precision", "fp32")
    resolved = resolve_precision(device, precision, len(members))
    amp_dtype = autocast_dtype(device, resolved)
    augmentation = protocol.get("augmentation", "none")
    if augmentation not in ("once", "per_epoch", "none"):
        raise ValueError(f"protocol key 'augmentation' must be once, per_epoch or none, got {augmentation!r}")
    if not members:
        return []
    states = [_member_state(member, protocol, model_name, device, precision) for member in members]
    results: list = [None] * len(states)
    for key, index in _sub_groups(states):
        if len(index) < len(states):
            log(f"sub-group of {len(index)} (images={key[0]}, start epoch={key[2]}): "
                + ", ".join(_member_name(states[i].member) for i in index))
        with training_backends(device, tf32=amp_dtype is None, cudnn_benchmark=cudnn_benchmark):
            fused = _fit_fused([states[i] for i in index], protocol, model_name, device, log, amp_dtype, augmentation,
                               channels_last)
        for i, result in zip(index, fused):
            if not isinstance(result, Exception):
                result.training_summary["precision"] = resolved
            results[i] = result
    return results


def _member_state(member: Member, protocol: Mapping, model_name: str, device: torch.device, precision: str) -> _State:
    """A member's images and label pools on the device, its fingerprint and the checkpoint it resumes from."""
    images = images_to_tensor(member.images_u8, device)
    labels, sizes = pools_to_tensors(member.pools, images.shape[0], device)
    if images.shape[0] == 0:
        raise ValueError(f"{_member_name(member)}: no training images")
    fingerprint = run_fingerprint(images, labels, protocol, model_name, member.seed, precision)
    path = Path(member.checkpoint_path) if member.checkpoint_path is not None else None
    checkpoint = load_checkpoint(path, fingerprint) if path is not None else None
    return _State(member, images, labels, sizes, fingerprint, path, checkpoint,
                  member.objective if member.objective is not None else SoftCrossEntropy())


def _sub_groups(states: Sequence[_State]) -> list[tuple[tuple, list[int]]]:
    """(key, member positions) of the sub-groups trained together: equal (images, classes, start epoch);
    normally one."""
    keys = [(s.images.shape[0], s.labels.shape[2], s.checkpoint["epoch"] if s.checkpoint else 0) for s in states]
    return [(key, [i for i, k in enumerate(keys) if k == key]) for key in sorted(set(keys))]


def _stack_models(states: Sequence[_State], model_name: str, num_classes: int, device: torch.device):
    """(skeleton module on the meta device, FlatParameters of the members, stacked buffers [G, ...])."""
    models = []
    for s in states:
        torch.manual_seed(stream_seed(s.member.seed, "init"))
        model = build_model(model_name, num_classes=num_classes)
        if s.checkpoint is not None:
            model.load_state_dict(s.checkpoint["model"])
        models.append(model)
    flat = FlatParameters(models, device)
    buffers = {name: torch.stack([dict(m.named_buffers())[name] for m in models]).to(device)
               for name, _ in models[0].named_buffers()}
    skeleton = copy.deepcopy(models[0]).to("meta").train()
    return skeleton, flat, buffers


class FlatParameters:
    """The members' parameters in one buffer `data` [G, P] (row g = member g's parameters, in
    `named_parameters` order); `params[name]` [G, *shape] are leaf views into it, which the forward uses.

    After a backward, `gather_grad()` concatenates the leaves' gradients into `data.grad` [G, P] (one `cat`)
    and drops them, so clipping and the optimizer step each run a constant number of kernels per step,
    whatever the number of parameter tensors: the per-member norms are one row-wise norm of `data.grad`, and
    the optimizer updates `data` (elementwise SGD on the rows equals SGD on each member's tensors), which
    the views see."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device):
        named = list(models[0].named_parameters())
        self.names = [name for name, _ in named]
        self.shapes = {name: tuple(p.shape) for name, p in named}
        self.data = torch.stack([torch.cat([p.detach().reshape(-1) for p in m.parameters()])
                                 for m in models]).to(device)
        self.params = self.views(self.data)
        for leaf in self.params.values():
            leaf.requires_grad_()

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """name → flat[:, offset:offset + numel].view(G, *shape) for a [G, P] tensor laid out as `data`."""
        out, offset = {}, 0
        for name in self.names:
            numel = math.prod(self.shapes[name])
            out[name] = flat[:, offset : offset + numel].view(flat.shape[0], *self.shapes[name])
            offset += numel
        return out

    def flatten(self, tensors: Sequence[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        """The [G, P] tensor of one dict name → tensor per member (e.g. checkpointed momentum buffers)."""
        return torch.stack([torch.cat([t[name].reshape(-1) for name in self.names]) for t in tensors])

    def gather_grad(self) -> torch.Tensor:
        """data.grad = [∂L/∂θ_g] [G, P] from the leaves' gradients (one cat; a leaf without one counts 0)."""
        grads = [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in self.params.values()]
        self.data.grad = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)
        for leaf in self.params.values():
            leaf.grad = None
        return self.data.grad


def clip_rows_(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Per member (row) g: grad_g ← grad_g · min(1, c / (‖grad_g‖₂ + 1e-6)), as `clip_grad_norm_` on that
    member alone; three kernels (row norm, coefficient, scale). Returns the norms before clipping [G]."""
    norms = torch.linalg.vector_norm(grad, dim=1)
    coef = (float(max_norm) / (norms + CLIP_EPS)).clamp_(max=1.0)
    grad.mul_(coef.unsqueeze(1))
    return norms


def _member_copy(stacked: torch.Tensor, g: int) -> torch.Tensor:
    """Member g's slice as its own CPU tensor (a view would save the whole stacked storage)."""
    return stacked[g].detach().to("cpu", copy=True)


def _member_model(model_name: str, num_classes: int, params: Mapping, buffers: Mapping, g: int,
                  device: torch.device) -> nn.Module:
    model = build_model(model_name, num_classes=num_classes)
    model.load_state_dict({**{k: v[g].detach() for k, v in params.items()}, **{k: v[g] for k, v in buffers.items()}})
    return model.to(device)


def _fit_fused(states: list[_State], protocol: Mapping, model_name: str, device: torch.device, log: Callable,
               amp_dtype: torch.dtype | None, augmentation: str, channels_last: bool | None = None) -> list:
    """Train one sub-group (equal sizes, one start epoch) to the last epoch; per member its model or `Diverged`."""
    seed_globals(states[0].member.seed)
    group = _FusedGroup(states, protocol, model_name, device, amp_dtype, augmentation, channels_last)
    group.resume(log)
    t_session = time.perf_counter()
    for epoch in range(group.start_epoch, group.epochs):
        t_epoch = time.perf_counter()
        lr = group.set_learning_rate(epoch)
        mean_losses = group.train_epoch(epoch)
        group.end_epoch(epoch, lr, mean_losses, (t_session, t_epoch, time.perf_counter()), log)
        if all(s.failed for s in states):
            break
    return group.results(time.perf_counter() - t_session)


@dataclass
class _Epoch:
    """One epoch's draws per member (module docstring, Randomness): the order of the examples, the epoch's
    normalised (and cropped) inputs and drawn targets in that order, the objective's generator and draws."""

    orders: list
    inputs: list
    targets: list
    generators: list
    objective_draws: list
    stacked: torch.Tensor | None


class _FusedGroup:
    """The members of one sub-group stacked on the device, with the optimizer over their flat parameters."""

    def __init__(self, states: list[_State], protocol: Mapping, model_name: str, device: torch.device,
                 amp_dtype: torch.dtype | None, augmentation: str, channels_last: bool | None):
        self.states, self.protocol, self.model_name, self.device = states, protocol, model_name, device
        self.amp_dtype, self.augmentation = amp_dtype, augmentation
        self.G = len(states)
        self.n, self.num_classes = states[0].images.shape[0], states[0].labels.shape[2]
        self.epochs, self.batch_size = int(protocol["epochs"]), int(protocol["batch_size"])
        self.skeleton, self.flat, self.buffers = _stack_models(states, model_name, self.num_classes, device)
        self.params = self.flat.params
        channels_last = self.G == 1 if channels_last is None else channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.optimizer = _sgd(self.flat, protocol, model_name, device)
        self.start_epoch = states[0].checkpoint["epoch"] if states[0].checkpoint else 0
        self.fused_forward = vmap(self.member_forward)

    # ------------------------------------------------------------------------------------ start and resume
    def resume(self, log: Callable) -> None:
        """Momentum, inputs, objective states and log histories of the members, then the global RNG states, as
        the checkpoints left them (a fresh start only prepares the inputs)."""
        resume_rng = self.states[0].checkpoint["rng"] if self.states[0].checkpoint else None
        if self.start_epoch > 0 and float(self.protocol["optimizer"]["momentum"]) != 0:
            self.optimizer.state[self.flat.data]["momentum_buffer"] = self.flat.flatten(
                [s.checkpoint["momentum"] for s in self.states]).to(self.device)
        for s in self.states:
            if self.augmentation == "once":
                s.images = augment_once(s.images, s.member.seed)
            # Normalised once (augmentation none/once); per-epoch crops are cut from the uint8 images each epoch.
            s.stored = None if self.augmentation == "per_epoch" else epoch_images(s.images, None, self.memory_format)
            if s.checkpoint is not None:
                if s.checkpoint.get("objective") is not None:
                    set_objective_state(s.objective, s.checkpoint["objective"])
                s.seconds_before, s.history = s.checkpoint["seconds"], list(s.checkpoint["history"])
                log(f"resumed from {s.checkpoint_path}: completed_epochs={self.start_epoch} of {self.epochs}")
                s.checkpoint = None  # free the memory
        if resume_rng is not None:
            set_rng_state(resume_rng)

    def set_learning_rate(self, epoch: int) -> float:
        lr = learning_rate(self.protocol, self.model_name, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    # ------------------------------------------------------------------------------------ one epoch
    def draw_epoch(self, epoch: int) -> _Epoch:
        """Per member, from its (seed, stream, epoch) generators: the permutation, the annotator uniforms, the
        per-epoch crops, and the objective's generator and whole-epoch draws."""
        n, device = self.n, self.device
        batch_sizes = [min(self.batch_size, n - start) for start in range(0, n, self.batch_size)]
        drawn = _Epoch([], [], [], [], [], None)
        for s in self.states:
            seed = s.member.seed
            order = torch.randperm(n, generator=stream_generator(seed, "order", epoch)).to(device)
            uniforms = torch.rand(n, generator=stream_generator(seed, "annotator", epoch)).to(device)
            if self.augmentation == "per_epoch":
                crops = draw_crop_flip(n, stream_generator(seed, "augment_epoch", epoch))
                drawn.inputs.append(epoch_images(s.images, order, self.memory_format, crops))
            else:
                drawn.inputs.append(s.stored[order])
            drawn.targets.append(s.labels[order, draw_annotators(s.sizes[order], uniforms)])
            drawn.orders.append(order)
            generator = stream_generator(seed, "objective", epoch)
            drawn.generators.append(generator)
            drawn.objective_draws.append(s.objective.epoch_draws(batch_sizes, generator, device)
                                         if hasattr(s.objective, "epoch_draws") else None)
        drawn.stacked = torch.stack(drawn.inputs) if self.G > 1 else None
        return drawn

    def train_epoch(self, epoch: int) -> list[float]:
        """One pass over the members' examples in batches; the mean training loss of each member."""
        drawn = self.draw_epoch(epoch)
        loss_sum = torch.zeros(self.G, device=self.device)
        for start in range(0, self.n, self.batch_size):
            stop = min(start + self.batch_size, self.n)
            losses = self.train_step(drawn, epoch, start, stop)
            loss_sum.add_(losses.detach().float(), alpha=stop - start)
        return (loss_sum / self.n).tolist()

    def train_step(self, drawn: _Epoch, epoch: int, start: int, stop: int) -> torch.Tensor:
        """One SGD step of every member on rows start:stop of its epoch: Σ_g L_g backward, per-member clipping
        (`clip_rows_`), one optimizer step over the stacked parameters. Returns the losses [G]."""
        xs = [x[start:stop] for x in drawn.inputs]
        inputs, loss_fns = [], []
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            for g, s in enumerate(self.states):
                y = drawn.targets[g][start:stop]
                draws = drawn.objective_draws[g]
                draws = draws[start // self.batch_size] if draws is not None else None
                batch = Batch(xs[g], y, y.argmax(dim=1), drawn.orders[g][start:stop], epoch, drawn.generators[g], draws)
                model_input, loss_fn = s.objective.prepare(xs[g], y, batch)
                inputs.append(model_input)
                loss_fns.append(loss_fn)
            unmixed = drawn.stacked is not None and all(t is x for t, x in zip(inputs, xs))
            logits = self.forward(inputs, drawn.stacked[:, start:stop] if unmixed else None)
            losses = torch.stack([loss_fn(z) for loss_fn, z in zip(loss_fns, logits)])
        losses.sum().backward()
        grad = self.flat.gather_grad()
        grad_clip = self.protocol.get("grad_clip")
        if grad_clip is not None:
            clip_rows_(grad, float(grad_clip))
        self.optimizer.step()
        return losses

    def member_forward(self, p: Mapping, b: Mapping, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.skeleton, (p, b), (x,))

    def forward(self, inputs: list[torch.Tensor], stacked: torch.Tensor | None) -> list[torch.Tensor]:
        """Logits per member: one vmapped forward when all inputs have one shape; member by member on
        views of the stacked tensors otherwise (e.g. a single-class Mix-MaxEnt batch has no mixed half)."""
        if self.G == 1 or any(t.shape != inputs[0].shape for t in inputs):
            return [self.member_forward({k: v[g] for k, v in self.params.items()},
                                        {k: v[g] for k, v in self.buffers.items()}, x)
                    for g, x in enumerate(inputs)]
        return list(self.fused_forward(self.params, self.buffers,
                                       stacked if stacked is not None else torch.stack(inputs)))

    # ------------------------------------------------------------------------------------ end of an epoch
    def end_epoch(self, epoch: int, lr: float, mean_losses: list[float], times: tuple[float, float, float],
                  log: Callable) -> None:
        """Per member still training: a non-finite mean loss marks it diverged (its checkpoint keeps the epoch
        before); otherwise its log record and its checkpoint. `times` = (session start, epoch start, now)."""
        t_session, t_epoch, now = times
        per_epoch = (now - t_session) / (epoch + 1 - self.start_epoch)
        buffer = self.optimizer.state[self.flat.data].get("momentum_buffer")
        momentum = self.flat.views(buffer) if buffer is not None else {}
        rng = rng_state()
        for g, s in enumerate(self.states):
            if s.failed:
                continue
            if not math.isfinite(mean_losses[g]):
                self.diverge(s, epoch, mean_losses[g], log)
                continue
            record = {"epoch": epoch + 1, "epochs": self.epochs, "loss": round(mean_losses[g], 6), "lr": lr,
                      "images_per_s": round(self.G * self.n / (now - t_epoch), 1),
                      "elapsed_s": round(s.seconds_before + now - t_session, 2),
                      "eta_s": round(per_epoch * (self.epochs - epoch - 1), 1)}
            s.history.append(record)
            if s.checkpoint_path is not None:
                save_torch(s.checkpoint_path, self.checkpoint(g, epoch, momentum, rng, s.seconds_before + now - t_session))
            prefix = "" if self.G == 1 else f"member={g} "
            log(prefix + " ".join(f"{k}={v:.6g}" if k == "lr" else f"{k}={v}" for k, v in record.items()))

    def diverge(self, s: _State, epoch: int, loss: float, log: Callable) -> None:
        """Member `s` leaves the group: its mean loss of `epoch` (0-indexed) is not finite; no record, no
        checkpoint of this epoch (its checkpoint keeps the epoch before), `Diverged` at the end."""
        s.failed = (f"{_member_name(s.member)}: training loss became {loss} in epoch {epoch + 1} "
                    f"({self.model_name}); its checkpoint keeps epoch {epoch}, the other members go on")
        s.failed_epoch = epoch + 1
        log(s.failed)

    def checkpoint(self, g: int, epoch: int, momentum: Mapping, rng: dict, seconds: float) -> dict:
        """Member g's state after `epoch` (0-indexed): what `load_checkpoint` and `resume` read back."""
        s = self.states[g]
        return {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": s.fingerprint,
            "epoch": epoch + 1,
            "model": {**{k: _member_copy(v, g) for k, v in self.params.items()},
                      **{k: _member_copy(v, g) for k, v in self.buffers.items()}},
            "momentum": {k: _member_copy(v, g) for k, v in momentum.items() if v is not None},
            "rng": rng,
            "objective": objective_state(s.objective),
            "seconds": seconds,
            "history": s.history,
        }

    # ------------------------------------------------------------------------------------ the end
    def results(self, session: float) -> list:
        """Per member: its model (eval mode, `training_summary` attached) or its `Diverged`."""
        trained = (self.epochs - self.start_epoch) * self.n
        out = []
        for g, s in enumerate(self.states):
            if s.failed:
                out.append(Diverged(s.failed, s.failed_epoch, s.history))
                continue
            model = _member_model(self.model_name, self.num_classes, self.params, self.buffers, g, self.device)
            model = model.to(memory_format=self.memory_format)
            model.eval()
            model.training_summary = {
                "epochs": self.epochs,
                "seconds": round(s.seconds_before + session, 3),
                "images_per_s": round(trained / session, 1) if trained and session > 0 else None,
                "group_size": self.G,
                "group_images_per_s": round(self.G * trained / session, 1) if trained and session > 0 else None,
                "history": s.history,
            }
            out.append(model)
        return out


def _sgd(flat: FlatParameters, protocol: Mapping, model_name: str, device: torch.device) -> torch.optim.SGD:
    """SGD with momentum, weight decay and Nesterov (`protocol.optimizer`) over the stacked parameters [G, P]."""
    opt_cfg = protocol["optimizer"]
    return torch.optim.SGD(
        [flat.data],
        lr=learning_rate(protocol, model_name, 0),
        momentum=float(opt_cfg["momentum"]),
        weight_decay=float(opt_cfg["weight_decay"]),
        nesterov=bool(opt_cfg["nesterov"]),
        fused=device.type == "cuda",
    )
