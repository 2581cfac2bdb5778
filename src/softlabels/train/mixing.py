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
  class; loss = mean_i CE(f(x_i), y_i) − w·mean_{i valid} H(softmax f(x̃_i)), w = 1 by default (an example
  is valid when the batch holds another class; all are, except in a single-class batch).
- Ent-WC (thesis §5.2.2): mixup inputs and targets (α = 0.2); w_i = min(1, max(κ, log 2 / H(softmax f(x̃_i))));
  loss = mean_i w_i·CE(f(x̃_i), ỹ_i), the gradient flowing through w_i unless `detach_weight`.
CE is the package's soft cross-entropy (`softlabels.evaluate.metrics.soft_cross_entropy`). All entropies are in
nats, so log 2 is the entropy of a 50/50 two-class prediction.

Randomness (docs/protocol.md#chapter-5-mixing-objectives). At the start of each epoch the trainer calls
``epoch_draws(batch_sizes, generator, device)`` with the member's seeded per-epoch CPU generator; it draws
the whole epoch at once, in this order: a 63-bit seed from the generator for NumPy's Beta, which gives the
λ of every step (one array), then U[0, 1) uniforms [steps, max batch] (torch.rand). Both travel to the
device once per epoch; per step the partners come from that step's uniforms on the device (mixup: the
permutation argsort(u); Mix-MaxEnt: the ⌊u_i·n_i⌋-th example of another class), and τ targets from a
[K, K] table of τ_{c,c'}(λ) per step computed up front. So a step neither draws on the host nor waits for
the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from softlabels.evaluate.metrics import soft_cross_entropy
from softlabels.labels import class_pair_tau, pair_parameters
from softlabels.vocabulary import MIXING_OBJECTIVES


# ----------------------------------------------------------------------------------------------------------
# Pure functions on tensors (unit-tested on small hand-computed examples).
# ----------------------------------------------------------------------------------------------------------
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
    return (weights * soft_cross_entropy(logits, targets, reduction="none")).mean()


def maxent_loss(clean_logits: torch.Tensor, targets: torch.Tensor, mixed_logits: torch.Tensor, weight: float,
                valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mix-MaxEnt: mean_i CE(f(x_i), y_i) − w · Σ_i v_i H(softmax f(x̃_i)) / max(1, Σ_i v_i), v_i = valid[i]
    (all ones by default: the plain mean)."""
    ce = soft_cross_entropy(clean_logits, targets)
    entropy = prediction_entropy(mixed_logits)
    if valid is None:
        return ce - weight * entropy.mean()
    v = valid.to(entropy.dtype)
    return ce - weight * (entropy * v).sum() / v.sum().clamp(min=1.0)


def different_class_partners(classes: torch.Tensor, uniforms: torch.Tensor | torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Partner of each example drawn uniformly among the batch examples of a *different* class.

    With n_i = #{j : c_j ≠ c_i} and u_i ~ U[0, 1): partner(i) = the k_i-th (0-indexed) such j in batch order,
    k_i = ⌊u_i·n_i⌋, found on the device as #{j : cumsum_j[c ≠ c_i] ≤ k_i} (no host round trip). Partners
    are independent draws, not a permutation. A row with no other class in the batch (a single-class
    batch) gets the partner ⌊u_i·B⌋ and `valid[i] = False`, so the caller can leave it out of the entropy
    term. `uniforms` [B] (or a generator to draw them from). Returns (partner, valid).
    """
    n = classes.shape[0]
    if isinstance(uniforms, torch.Generator):
        uniforms = torch.rand(n, generator=uniforms).to(classes.device)
    differs = classes.view(-1, 1) != classes.view(1, -1)
    count = differs.sum(dim=1)
    valid = count > 0
    k = torch.minimum((uniforms * count).floor().long(), (count - 1).clamp(min=0))
    chosen = (differs.long().cumsum(dim=1) <= k.view(-1, 1)).sum(dim=1)
    anyone = torch.minimum((uniforms * n).floor().long(), torch.full_like(chosen, n - 1))
    return torch.where(valid, chosen, anyone), valid


# ----------------------------------------------------------------------------------------------------------
# Objectives (callables handed to the trainer).
# ----------------------------------------------------------------------------------------------------------
def draw_beta(alpha: float, generator: torch.Generator, size: int | None = None):
    """λ ~ Beta(α, α) (one float, or an array of `size`), driven by `generator`: a 63-bit seed drawn from it
    seeds NumPy's Beta sampler (torch's cannot take a generator), so the seeded generator fixes every λ."""
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    draws = np.random.default_rng(seed).beta(alpha, alpha, size=size)
    return draws if size is not None else float(draws)


@dataclass
class MixDraw:
    """One step's draws: λ on the host (`lam`) and on the device (`lam_device`, 0-dim float32), the step's
    uniforms [B] on the device, and for τ mixing the [K, K] table τ_{c,c'}(λ) on the device (else None)."""

    lam: float
    lam_device: torch.Tensor
    uniforms: torch.Tensor
    tau_table: torch.Tensor | None = None


class MixingObjective:
    """Base of the mixing objectives: the λ and partner draws.

    The trainer hands each step its `MixDraw` (`Batch.draws`) from `epoch_draws`, drawn with the member's
    per-epoch generator (seeded from (run seed, epoch), so a resumed run repeats them). A batch without draws
    draws one step from its `generator`; called without a batch (tests, other callers) the objective uses
    its own generator seeded from `seed`.
    """

    def __init__(self, alpha: float, seed: int = 0):
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.generator = torch.Generator().manual_seed(int(seed))

    def generator_of(self, batch) -> torch.Generator:
        return batch.generator if batch is not None else self.generator

    def epoch_draws(self, batch_sizes: Sequence[int], generator: torch.Generator, device) -> list[MixDraw]:
        """The draws of every step of an epoch (batch sizes in order): λ_s = `draw_beta(α, generator, S)`, then
        uniforms U [S, max size] = torch.rand(generator); moved to `device` once (non-blocking from pinned
        memory on CUDA), per step views of them."""
        steps = len(batch_sizes)
        lams = draw_beta(self.alpha, generator, steps)
        uniforms = torch.rand(steps, max(batch_sizes), generator=generator)
        lam_host = torch.as_tensor(lams, dtype=torch.float32)
        device = torch.device(device)
        if device.type == "cuda":
            uniforms, lam_host = uniforms.pin_memory(), lam_host.pin_memory()
        uniforms = uniforms.to(device, non_blocking=True)
        lam_device = lam_host.to(device, non_blocking=True)
        tables = self.tau_tables(lams, device)
        return [MixDraw(float(lams[i]), lam_device[i], uniforms[i, : batch_sizes[i]],
                        tables[i] if tables is not None else None) for i in range(steps)]

    def tau_tables(self, lams: np.ndarray, device) -> torch.Tensor | None:
        """[S, K, K] τ_{c,c'}(λ_s) tables on the device for τ mixing; None otherwise."""
        return None

    def draw_of(self, batch, n: int, device) -> MixDraw:
        """This step's draws: the trainer's (`batch.draws`), else one step drawn from the batch's or own generator."""
        if batch is not None and getattr(batch, "draws", None) is not None:
            return batch.draws
        return self.epoch_draws([n], self.generator_of(batch), device)[0]

    def __call__(self, model, inputs, targets, *, batch=None):
        model_inputs, loss_fn = self.prepare(inputs, targets, batch)
        return loss_fn(model(model_inputs))


class Mixup(MixingObjective):
    """mixup (optionally with the appendix-C target transform): mean_i CE(f(x̃_i), ỹ_i)."""

    def __init__(self, alpha: float, seed: int = 0, target_lambda: Callable | None = None):
        super().__init__(alpha, seed)
        # target_lambda(lam, classes, partner_classes) -> λ_g per example; None = linear (λ_g = λ).
        self.target_lambda = target_lambda

    def tau_tables(self, lams: np.ndarray, device) -> torch.Tensor | None:
        table = getattr(self.target_lambda, "pair_table", None)
        return None if table is None else torch.as_tensor(table(lams), dtype=torch.float32).to(device)

    def mixed_batch(self, inputs, targets, draw: MixDraw | torch.Generator):
        """(x̃, ỹ): one λ ~ Beta(α, α), partner = the permutation argsort(u) of the step's uniforms. With τ
        targets: λ_g = table[c_i, c_perm(i)] (precomputed), or `target_lambda(λ, c, c_perm)` when it has no table."""
        if isinstance(draw, torch.Generator):
            draw = self.epoch_draws([inputs.shape[0]], draw, inputs.device)[0]
        perm = draw.uniforms.argsort()
        mixed_x = mix_pairs(inputs, perm, draw.lam_device)
        if self.target_lambda is None:
            mixed_y = mix_pairs(targets, perm, draw.lam_device)
        else:
            classes = targets.argmax(dim=1)
            if draw.tau_table is not None:
                lam_g = draw.tau_table[classes, classes[perm]]
            else:
                lam_g = self.target_lambda(draw.lam, classes, classes[perm])
            mixed_y = mix_pairs(targets, perm, lam_g.to(targets.dtype))
        return mixed_x, mixed_y

    def prepare(self, inputs, targets, batch=None):
        mixed_x, mixed_y = self.mixed_batch(inputs, targets, self.draw_of(batch, inputs.shape[0], inputs.device))
        return mixed_x, lambda logits: soft_cross_entropy(logits, mixed_y)


class EntWC(Mixup):
    """Clamped entropy-weighted loss on mixup batches (thesis §5.2.2)."""

    def __init__(self, alpha: float, seed: int = 0, kappa: float = 0.7, detach_weight: bool = False,
                 target_lambda=None):
        super().__init__(alpha, seed, target_lambda)
        self.kappa = float(kappa)
        self.detach_weight = bool(detach_weight)

    def prepare(self, inputs, targets, batch=None):
        mixed_x, mixed_y = self.mixed_batch(inputs, targets, self.draw_of(batch, inputs.shape[0], inputs.device))
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
        """Inputs [x; x̃] (2B rows, always: a single-class batch keeps its mixed rows, which batch norm sees,
        but they leave the entropy term, so no step's shape depends on the draws)."""
        n = inputs.shape[0]
        draw = self.draw_of(batch, n, inputs.device)
        if self.partners == "different_class":
            partner, valid = different_class_partners(targets.argmax(dim=1), draw.uniforms)
        else:
            partner, valid = draw.uniforms.argsort(), None
        mixed_x = mix_pairs(inputs, partner, draw.lam_device)

        def loss_fn(logits):
            logits = logits.float()
            return maxent_loss(logits[:n], targets.float(), logits[n:], self.weight, valid)

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
    params = pair_parameters(taus)
    num_classes = params[0].shape[0]

    def target_lambda(lam: float, classes: torch.Tensor, partner_classes: torch.Tensor) -> torch.Tensor:
        lam_g = class_pair_tau(lam, classes.cpu().numpy(), partner_classes.cpu().numpy(), params)
        return torch.as_tensor(lam_g, device=classes.device)

    def pair_table(lams: np.ndarray) -> np.ndarray:
        """[S, K, K]: entry (s, c, c') = τ_{c,c'}(λ_s), NaN for a pair without a fit (a NaN target then makes
        the loss non-finite, so the run is recorded as diverged; `class_pair_tau` alone raises instead)."""
        lam = np.asarray(lams, dtype=np.float64).reshape(-1, 1, 1)
        ci, cj = np.meshgrid(np.arange(num_classes), np.arange(num_classes), indexing="ij")
        k_mat, x0_mat = params
        lo, hi = np.minimum(ci, cj), np.maximum(ci, cj)
        fitted = (ci == cj) | ~np.isnan(k_mat[lo, hi])
        safe = (np.where(np.isnan(k_mat), 1.0, k_mat), np.where(np.isnan(x0_mat), 0.5, x0_mat))
        table = class_pair_tau(lam, ci, cj, safe)
        return np.where(fitted[None], table, np.nan)

    target_lambda.pair_table = pair_table
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
