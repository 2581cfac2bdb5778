"""Evaluation metrics (thesis §3.3.1; docs/protocol.md#evaluation).

- Generalisation: soft cross-entropy CE_n = −Σ_k P_eval(k|x_n) log softmax(z_n)_k, mean over examples.
- Calibration: RMS calibration error with adaptive bins of a fixed number of examples (Hendrycks'
  `calib_err`, as copied into the released code), optionally skipping the last bin as the original does.
- Robustness: FGSM loss. x_adv = clamp(x + ε·sign(∇_x CE(f(x), y)), 0, 1) on [0, 1] pixels with the
  normalisation inside the model (torchattacks.FGSM), then the soft CE of f(x_adv) against y, mean over
  examples. Every example is attacked, in batches: with the model in eval mode the gradient of the batch
  mean with respect to x_n is that of example n alone (scaled by 1/B), so its sign is the per-example one.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from softlabels.models import with_normalization


def _as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


def soft_cross_entropy(logits, targets, reduction: str = "mean"):
    """CE_n = −Σ_k y_nk · log softmax(z_n)_k per example (`F.cross_entropy` with probability targets), then
    the mean (default), the sum, or none. The package's one cross-entropy: the training loss, the mixing
    objectives and every evaluation CE.

    Takes torch tensors or arrays; `targets` are probability vectors [N, K] (one-hot for hard labels) or
    class indices [N]. Computed in float32; returns a tensor (0-d unless reduction="none")."""
    logits = _as_tensor(logits).float()
    targets = _as_tensor(targets, dtype=None)
    targets = targets.long() if targets.ndim == 1 else targets.float()
    per_example = F.cross_entropy(logits, targets.to(logits.device), reduction="none")
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    if reduction == "mean":
        return per_example.mean()
    raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")


def rms_calibration_error(probs, targets, bin_size: int = 100, skip_last_bin: bool = True) -> float:
    """RMS calibration error over adaptive bins of `bin_size` examples (Hendrycks `calib_err`).

    confidence_n = max_k p_nk; correct_n = [argmax_k p_nk == argmax_k target_nk] (`targets` may also be
    class indices [N]). Sort by confidence (np.argsort), cut bins [iβ, (i+1)β) for i < ⌊N/β⌋ with the last
    bin stretched to N, and return sqrt(Σ_i (n_i/N)·(mean conf_i − mean correct_i)²). With
    `skip_last_bin` (the original's `range(len(bins) - 1)`) the last, most confident bin is left out of
    the sum while the weights still divide by the full N. With N < β there is one bin of N examples.
    Skipping the last bin needs ⌊N/β⌋ ≥ 2 (at least two bins); with fewer the sum would be empty and the
    metric a perfect 0.0 by construction, so that is refused (ValueError naming N and β).
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"probs must be a non-empty [N, K] array, got shape {probs.shape}")
    if bin_size < 1:
        raise ValueError(f"bin_size must be >= 1, got {bin_size}")
    target_class = targets if targets.ndim == 1 else targets.argmax(axis=1)
    if len(target_class) != len(probs):
        raise ValueError(f"{len(probs)} predictions but {len(target_class)} targets")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == target_class).astype(np.float64)
    order = np.argsort(confidence)
    confidence, correct = confidence[order], correct[order]
    n = len(confidence)
    if skip_last_bin and n // bin_size < 2:
        raise ValueError(
            f"calibration with skip_last_bin needs at least two bins: {n} examples and bin size {bin_size} "
            f"leave {n // bin_size} full bin(s), and skipping the last would leave nothing to measure "
            f"(use at least {2 * bin_size} examples or a bin size of at most {n // 2})"
        )
    edges = [i * bin_size for i in range(max(n // bin_size, 1))] + [n]
    used = len(edges) - 2 if skip_last_bin else len(edges) - 1
    squared = 0.0
    for lo, hi in zip(edges[:used], edges[1:used + 1]):
        squared += (hi - lo) / n * (confidence[lo:hi].mean() - correct[lo:hi].mean()) ** 2
    return float(np.sqrt(squared))


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def pixels(images_u8, device) -> torch.Tensor:
    """uint8 [N, H, W, 3] → float32 [N, 3, H, W] in [0, 1] on `device`."""
    images = torch.as_tensor(np.asarray(images_u8))
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div(255.0).to(device)


@torch.no_grad()
def predict_logits(pixel_model: nn.Module, images01: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits [N, K] (float32, on the CPU) of a model taking [0, 1] pixels, in eval mode and in batches: the
    package's one prediction loop."""
    pixel_model.eval()
    return torch.cat([pixel_model(images01[s]).float().cpu() for s in _batches(len(images01), batch_size)])


def model_logits(model: nn.Module, images_u8, device="cpu", batch_size: int = 500) -> torch.Tensor:
    """`predict_logits` of a model taking normalised input (as `softlabels.train.fit` returns it) on uint8
    images [N, 32, 32, 3]."""
    device = torch.device(device)
    return predict_logits(with_normalization(model).to(device), pixels(images_u8, device), batch_size)


def accuracy_and_ce(model: nn.Module, images_u8, labels, device="cpu") -> dict:
    """Accuracy mean 1[argmax z = y] and CE −(1/n) Σ log softmax(z)_y (summed in float64) against hard labels."""
    logits = model_logits(model, images_u8, device)
    labels = np.asarray(labels)
    return {
        "accuracy": float((logits.argmax(dim=1).numpy() == labels).mean()),
        "ce": float(soft_cross_entropy(logits, labels, reduction="none").double().mean()),
        "n": int(len(labels)),
    }


def fgsm_images(pixel_model: nn.Module, images01: torch.Tensor, targets: torch.Tensor, epsilon: float,
                batch_size: int = 500) -> torch.Tensor:
    """torchattacks.FGSM(pixel_model, eps) on every example, in batches. `targets` are class indices
    (int64 [N]) or probability vectors (float [N, K]); nn.CrossEntropyLoss accepts both."""
    import torchattacks

    attack = torchattacks.FGSM(pixel_model, eps=float(epsilon))
    device = images01.device
    targets = targets.to(device)
    return torch.cat([attack(images01[s], targets[s]) for s in _batches(len(images01), batch_size)])


def fgsm_loss(pixel_model: nn.Module, images01: torch.Tensor, targets, epsilon: float, batch_size: int = 500) -> float:
    """Mean over examples of the soft CE of f(x_adv) against `targets` (indices [N] or probabilities [N, K])."""
    targets = _as_tensor(targets, dtype=None)
    targets = targets.long() if targets.ndim == 1 else targets.float()
    adversarial = fgsm_images(pixel_model, images01, targets, epsilon, batch_size)
    logits = predict_logits(pixel_model, adversarial, batch_size)
    return float(soft_cross_entropy(logits, targets.cpu()))


def evaluate_model(model: nn.Module, images_u8, targets, cfg_evaluation: Mapping, hard_labels=None,
                   fgsm_targets=None, bin_size: int = 100, device="cpu", batch_size: int = 500) -> dict:
    """CE, RMS calibration, FGSM loss and accuracy of `model` (normalised input, as `fit` returns it) on
    `images_u8` [N, 32, 32, 3] uint8 against soft `targets` [N, K].

    cfg_evaluation is the config's `evaluation` block: `calibration.skip_last_bin` and `fgsm.epsilon` are
    read. `fgsm_targets`: the attack's and the reported FGSM loss's target (class indices [N] or [N, K]
    probabilities; default `targets`). Accuracy counts argmax prediction == `hard_labels` (default
    argmax of `targets`). Returns dict(ce, calibration, fgsm, accuracy, n) of Python numbers.
    """
    device = torch.device(device)
    targets = np.asarray(targets, dtype=np.float32)
    pixel_model = with_normalization(model).to(device).eval()
    images01 = pixels(images_u8, device)
    if len(images01) != len(targets):
        raise ValueError(f"{len(images01)} images but {len(targets)} targets")
    logits = predict_logits(pixel_model, images01, batch_size)
    probs = torch.softmax(logits.double(), dim=1).numpy()
    truth = targets.argmax(axis=1) if hard_labels is None else np.asarray(hard_labels)
    return {
        "ce": float(soft_cross_entropy(logits, targets)),
        "calibration": rms_calibration_error(probs, targets, bin_size, bool(cfg_evaluation["calibration"]["skip_last_bin"])),
        "fgsm": fgsm_loss(pixel_model, images01, targets if fgsm_targets is None else fgsm_targets,
                          float(cfg_evaluation["fgsm"]["epsilon"]), batch_size),
        "accuracy": float((probs.argmax(axis=1) == truth).mean()),
        "n": int(len(targets)),
    }
