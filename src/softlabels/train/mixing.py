"""Mixing objectives of chapters 4-5 and appendix C: mixup, Mix-MaxEnt, the clamped entropy-weighted loss
(Ent-WC) and mixing with the human-fitted class-pair transform τ.

Each objective implements the trainer's two-phase hook (`softlabels.train.trainer`):
``prepare(inputs, targets, batch) -> (model_inputs, loss_fn)`` draws λ and the partners and mixes the
inputs before the forward, and ``loss_fn(logits)`` is the loss on the model's output for `model_inputs`,
so the members of a fused group share one forward. `inputs` is the normalised batch, `targets` the soft (or
one-hot) labels [B, K] drawn for this batch. ``objective(model, inputs, targets, batch=None)`` gives the
loss of one model directly. The
classes of the mixing endpoints, where a rule needs them (Mix-MaxEnt partners, τ), are argmax(targets): the
class itself for hard endpoints, the most probable class for soft ones.

Formulas (docs/protocol.md#chapter-5-mixing-objectives; τ: docs/protocol.md#tau-appendix-c):
- mixup (Zhang et al. 2017): one λ ~ Beta(α, α) per batch, partner = a random permutation of the batch,
  x̃ = λ·x + (1−λ)·x[perm], ỹ = λ_g·y + (1−λ_g)·y[perm] with λ_g = λ (linear) or τ_{c,c'}(λ) (appendix C);
  loss = mean_i CE(f(x̃_i), ỹ_i).
- Mix-MaxEnt (Pinto et al. 2021): λ ~ Beta(α, α) (α = 10), each example mixed with a partner of a different
  class; loss = mean_i CE(f(x_i), y_i) − w·mean_i H(softmax f(x̃_i)), w = 1 by default.
- Ent-WC (thesis §5.2.2): mixup inputs and targets (α = 0.2); w_i = min(1, max(κ, log 2 / H(softmax f(x̃_i))));
  loss = mean_i w_i·CE(f(x̃_i), ỹ_i), the gradient flowing through w_i unless `detach_weight`.
All entropies are in nats, so log 2 is the entropy of a 50/50 two-class prediction.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

#: Objectives a scheme may name (config key `schemes.<s>.objective`).
MIXING_OBJECTIVES = ("mixup", "mixmaxent", "entwc")


# ----------------------------------------------------------------------------------------------------------
# Pure functions on tensors (unit-tested on small hand-computed examples).
# ----------------------------------------------------------------------------------------------------------
def soft_cross_entropy_per_example(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CE_i = −Σ_k y_ik · log softmax(z_i)_k, one value per example."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H_i = −Σ_k p_ik log p_ik with p = softmax(z_i), in nats (computed from log-softmax, so finite)."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def mix_pairs(x: torch.Tensor, partner: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """λ·x + (1−λ)·x[partner]; `lam` is a scalar or one value per example (broadcast over the other axes)."""
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device)
    if lam.ndim == 1:
        lam = lam.view(-1, *([1] * (x.ndim - 1)))
    return lam * x + (1 - lam) * x[partner]


def entwc_weights(entropy: torch.Tensor, kappa: float) -> torch.Tensor:
    """w_i = min(1, max(κ, log 2 / H_i)).

    Computed as max(κ, log 2 / max(H_i, log 2)): identical values, and for H_i ≤ log 2 the weight is the
    constant 1 with a zero (not NaN) gradient, also at H_i = 0.
    """
    log2 = math.log(2.0)
    return (log2 / entropy.clamp(min=log2)).clamp(min=kappa)


def entwc_loss(logits: torch.Tensor, targets: torch.Tensor, kappa: float, detach_weight: bool = False) -> torch.Tensor:
    """Ent-WC: mean_i w_i · CE(f(x̃_i), ỹ_i) with w_i = entwc_weights(H(softmax f(x̃_i)), κ)."""
    weights = entwc_weights(prediction_entropy(logits), kappa)
    if detach_weight:
        weights = weights.detach()
    return (weights * soft_cross_entropy_per_example(logits, targets)).mean()


def maxent_loss(clean_logits: torch.Tensor, targets: torch.Tensor, mixed_logits: torch.Tensor, weight: float) -> torch.Tensor:
    """Mix-MaxEnt: mean_i CE(f(x_i), y_i) − w · mean_i H(softmax f(x̃_i))."""
    ce = soft_cross_entropy_per_example(clean_logits, targets).mean()
    return ce - weight * prediction_entropy(mixed_logits).mean()


def different_class_partners(classes: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Partner of each example drawn uniformly among the batch examples of a *different* class.

    Vectorised rule: the B×B mask [c_i ≠ c_j] (row-normalised) is the sampling distribution of row i, drawn
    with one `torch.multinomial` call. Partners are independent draws, not a permutation. A row with no
    other class in the batch (a single-class batch) gets a random partner and `valid[i] = False`, so the
    caller can leave that example out of the entropy term. Returns (partner, valid).
    """
    differs = classes.view(-1, 1) != classes.view(1, -1)
    valid = differs.any(dim=1)
    weights = torch.where(valid.view(-1, 1), differs.float(), torch.ones_like(differs, dtype=torch.float))
    weights = weights.cpu()
    partner = torch.multinomial(weights, 1, generator=generator).view(-1)
    return partner.to(classes.device), valid


# ----------------------------------------------------------------------------------------------------------
# Objectives (callables handed to the trainer).
# ----------------------------------------------------------------------------------------------------------
def draw_beta(alpha: float, generator: torch.Generator) -> float:
    """One λ ~ Beta(α, α), driven by `generator`: a 63-bit seed drawn from it seeds a NumPy Beta draw (torch's
    Beta sampler cannot take a generator). So the trainer's seeded per-epoch generator fixes every λ."""
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


class MixingObjective:
    """Base of the mixing objectives: the λ and partner draws.

    Draws come from the `generator` of the trainer's `Batch` (seeded from (run seed, epoch), so a resumed run
    repeats them); called without a batch (tests, other callers) the objective uses its own generator seeded
    from `seed`. Per batch, in this order: λ (`draw_beta`), then the partners.
    """

    def __init__(self, alpha: float, seed: int = 0):
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.generator = torch.Generator().manual_seed(int(seed))

    def generator_of(self, batch) -> torch.Generator:
        return batch.generator if batch is not None else self.generator

    def __call__(self, model, inputs, targets, *, batch=None):
        model_inputs, loss_fn = self.prepare(inputs, targets, batch)
        return loss_fn(model(model_inputs))


class Mixup(MixingObjective):
    """mixup (optionally with the appendix-C target transform): mean_i CE(f(x̃_i), ỹ_i)."""

    def __init__(self, alpha: float, seed: int = 0, target_lambda: Callable | None = None):
        super().__init__(alpha, seed)
        # target_lambda(lam, classes, partner_classes) -> λ_g per example; None = linear (λ_g = λ).
        self.target_lambda = target_lambda

    def mixed_batch(self, inputs, targets, generator: torch.Generator):
        """(x̃, ỹ): one λ ~ Beta(α, α), partner = a random permutation of the batch."""
        lam = draw_beta(self.alpha, generator)
        perm = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
        mixed_x = mix_pairs(inputs, perm, lam)
        if self.target_lambda is None:
            mixed_y = mix_pairs(targets, perm, lam)
        else:
            classes = targets.argmax(dim=1)
            lam_g = self.target_lambda(lam, classes, classes[perm]).to(targets.dtype)
            mixed_y = mix_pairs(targets, perm, lam_g)
        return mixed_x, mixed_y

    def prepare(self, inputs, targets, batch=None):
        mixed_x, mixed_y = self.mixed_batch(inputs, targets, self.generator_of(batch))
        return mixed_x, lambda logits: soft_cross_entropy_per_example(logits.float(), mixed_y.float()).mean()


class EntWC(Mixup):
    """Clamped entropy-weighted loss on mixup batches (thesis §5.2.2)."""

    def __init__(self, alpha: float, seed: int = 0, kappa: float = 0.7, detach_weight: bool = False,
                 target_lambda=None):
        super().__init__(alpha, seed, target_lambda)
        self.kappa = float(kappa)
        self.detach_weight = bool(detach_weight)

    def prepare(self, inputs, targets, batch=None):
        mixed_x, mixed_y = self.mixed_batch(inputs, targets, self.generator_of(batch))
        return mixed_x, lambda logits: entwc_loss(logits.float(), mixed_y.float(), self.kappa, self.detach_weight)


class MixMaxEnt(MixingObjective):
    """CE on the clean batch minus w times the mean prediction entropy on mixed different-class pairs.

    The clean and mixed batches go through the model in one forward pass (as RegMixup does), so batch-norm
    statistics see both. `partners`: different_class (default, Pinto et al.) or random (a permutation).
    """

    def __init__(self, alpha: float, seed: int = 0, weight: float = 1.0, partners: str = "different_class"):
        super().__init__(alpha, seed)
        if partners not in ("different_class", "random"):
            raise ValueError(f"Mix-MaxEnt partners must be different_class or random, got {partners!r}")
        self.weight = float(weight)
        self.partners = partners

    def prepare(self, inputs, targets, batch=None):
        generator = self.generator_of(batch)
        n = inputs.shape[0]
        lam = draw_beta(self.alpha, generator)
        if self.partners == "different_class":
            partner, valid = different_class_partners(targets.argmax(dim=1), generator)
        else:
            partner = torch.randperm(n, generator=generator).to(inputs.device)
            valid = torch.ones(n, dtype=torch.bool, device=inputs.device)
        mixed_x = mix_pairs(inputs, partner, lam)[valid]

        def loss_fn(logits):
            logits = logits.float()
            clean_logits, mixed_logits = logits[:n], logits[n:]
            if mixed_logits.shape[0] == 0:
                return soft_cross_entropy_per_example(clean_logits, targets.float()).mean()
            return maxent_loss(clean_logits, targets.float(), mixed_logits, self.weight)

        return torch.cat([inputs, mixed_x]), loss_fn


# ----------------------------------------------------------------------------------------------------------
# From a scheme to an objective.
# ----------------------------------------------------------------------------------------------------------
def _require(scheme: Mapping, name: str, key: str):
    if key not in scheme:
        raise KeyError(f"key 'schemes.{name}.{key}' is required for objective '{scheme.get('objective')}'")
    return scheme[key]


def tau_target_lambda(taus) -> Callable:
    """λ_g per example from the fitted class-pair table (appendix C): τ_{c_i, c_partner(i)}(λ), where for the
    ordered pair (a, b) with a > b τ_{a,b}(λ) = 1 − τ_{b,a}(1 − λ), and λ_g = λ for a same-class pair
    (`softlabels.labels.class_pair_tau`). `taus` is the `fit_class_pair_taus` table."""
    from softlabels.labels import class_pair_tau
    from softlabels.labels.tau import pair_parameters

    params = pair_parameters(taus)

    def target_lambda(lam: float, classes: torch.Tensor, partner_classes: torch.Tensor) -> torch.Tensor:
        lam_g = class_pair_tau(lam, classes.cpu().numpy(), partner_classes.cpu().numpy(), params)
        return torch.as_tensor(lam_g, device=classes.device)

    return target_lambda


def build_objective(scheme: Mapping, name: str, seed: int, taus=None):
    """The trainer objective of scheme `name` (None for objective ce / unset: the trainer's soft CE).

    Keys read: objective, alpha, kappa (entwc), detach_weight (entwc, default false: docs/protocol.md#ent-wc),
    maxent_weight and partners (mixmaxent), target_mix (linear | tau; tau needs `taus`, the `fit_class_pair_taus` table).
    """
    objective = scheme.get("objective", "ce")
    if objective == "ce":
        return None
    if objective not in MIXING_OBJECTIVES:
        raise KeyError(f"key 'schemes.{name}.objective': unknown objective '{objective}'")
    alpha = _require(scheme, name, "alpha")
    target_lambda = None
    if scheme.get("target_mix", "linear") == "tau":
        if scheme.get("endpoints", "hard") != "hard":
            raise KeyError(f"key 'schemes.{name}.target_mix': tau mixing needs hard endpoints (appendix C)")
        if taus is None:
            raise ValueError(f"scheme '{name}' mixes with tau but no class-pair tau table was given")
        target_lambda = tau_target_lambda(taus)
    if objective == "mixup":
        return Mixup(alpha, seed, target_lambda)
    if objective == "entwc":
        return EntWC(alpha, seed, _require(scheme, name, "kappa"), scheme.get("detach_weight", False), target_lambda)
    if target_lambda is not None:
        raise KeyError(f"key 'schemes.{name}.target_mix': Mix-MaxEnt has no mixed targets to transform")
    return MixMaxEnt(alpha, seed, _require(scheme, name, "maxent_weight"), _require(scheme, name, "partners"))
