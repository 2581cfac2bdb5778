"""Mixing objectives (softlabels.train.mixing) against values computed by hand on small tensors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from softlabels.train import mixing

LOG2 = math.log(2.0)


def reference_draws(seed, alpha, n, steps=1, step=0):
    """λ and permutation of one step drawn as the objectives do for an epoch of `steps` batches of n: a 63-bit
    seed for NumPy's Beta (λ of every step), then uniforms [steps, n]; the permutation is argsort(u)."""
    g = torch.Generator().manual_seed(seed)
    lams = np.random.default_rng(int(torch.randint(0, 2**63 - 1, (1,), generator=g))).beta(alpha, alpha, size=steps)
    uniforms = torch.rand(steps, n, generator=g)
    return float(np.float32(lams[step])), uniforms[step].argsort()


def entropy_of(probs):
    return -sum(p * math.log(p) for p in probs if p > 0)


# --------------------------------------------------------------------------------------------------------
# mixup inputs and targets
# --------------------------------------------------------------------------------------------------------
def test_mix_pairs_hand_values():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    perm = torch.tensor([2, 0, 1])
    out = mixing.mix_pairs(x, perm, 0.25)
    expected = torch.tensor([[1.75, 1.5], [0.75, 0.25], [0.5, 1.25]])
    assert torch.allclose(out, expected)


def test_mix_pairs_per_example_lambda_broadcasts_over_image_axes():
    x = torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)])
    out = mixing.mix_pairs(x, torch.tensor([1, 0]), torch.tensor([0.2, 0.9]))
    assert torch.allclose(out[0], torch.full((3, 2, 2), 0.8))  # 0.2·0 + 0.8·1
    assert torch.allclose(out[1], torch.full((3, 2, 2), 0.9))  # 0.9·1 + 0.1·0


def test_mixup_batch_uses_one_beta_lambda_and_a_permutation():
    seed, alpha, n = 3, 1.0, 6
    inputs = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()
    targets = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 4, 5]), 10).float()
    objective = mixing.Mixup(alpha)
    mixed_x, mixed_y = objective.mixed_batch(inputs, targets, torch.Generator().manual_seed(seed))
    lam, perm = reference_draws(seed, alpha, n)
    assert sorted(perm.tolist()) == list(range(n))
    expected_x = lam * inputs + (1 - lam) * inputs[perm]
    assert torch.allclose(mixed_x, expected_x.float())
    for i in range(n):
        j = int(perm[i])
        row = torch.zeros(10)
        row[i] += lam
        row[j] += 1 - lam
        assert torch.allclose(mixed_y[i], row)
    assert torch.allclose(mixed_y.sum(1), torch.ones(n))


def test_objectives_draw_from_the_trainers_batch_generator():
    from softlabels.train import Batch

    model = torch.nn.Linear(4, 3)
    inputs = torch.randn(6, 4)
    targets = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    for make in (lambda: mixing.Mixup(1.0, seed=99), lambda: mixing.EntWC(0.2, seed=99, kappa=0.7),
                 lambda: mixing.MixMaxEnt(10.0, seed=99, weight=1.0)):
        losses = []
        for _ in range(2):
            batch = Batch(inputs, targets, targets.argmax(1), torch.arange(6), 0, torch.Generator().manual_seed(7))
            losses.append(make()(model, inputs, targets, batch=batch).item())
        own = make()(model, inputs, targets).item()  # its own generator (seed 99): other draws
        assert losses[0] == losses[1]
        assert own != losses[0]


def test_mixup_loss_is_soft_ce_on_mixed_targets():
    class Zero(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 10)

    targets = torch.nn.functional.one_hot(torch.tensor([1, 2, 3]), 10).float()
    loss = mixing.Mixup(1.0, 0)(Zero(), torch.rand(3, 3, 4, 4), targets)
    assert loss.item() == pytest.approx(math.log(10))  # CE of any normalised target against uniform


def test_mixup_with_soft_endpoints_keeps_soft_mass():
    y = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    objective = mixing.Mixup(1.0)
    _, mixed_y = objective.mixed_batch(torch.zeros(2, 1), y, torch.Generator().manual_seed(1))
    lam, perm = reference_draws(1, 1.0, 2)
    assert torch.allclose(mixed_y, (lam * y + (1 - lam) * y[perm]).float())


# --------------------------------------------------------------------------------------------------------
# Mix-MaxEnt
# --------------------------------------------------------------------------------------------------------
def test_maxent_loss_hand_value():
    clean = torch.tensor([[math.log(3.0), 0.0]])  # softmax = (0.75, 0.25)
    targets = torch.tensor([[1.0, 0.0]])
    mixed = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # H = log 2 and H(0.75, 0.25)
    ce = -math.log(0.75)
    mean_h = (LOG2 + entropy_of([0.75, 0.25])) / 2
    assert mixing.maxent_loss(clean, targets, mixed, 1.0).item() == pytest.approx(ce - mean_h, abs=1e-6)
    assert mixing.maxent_loss(clean, targets, mixed, 0.5).item() == pytest.approx(ce - 0.5 * mean_h, abs=1e-6)


def test_different_class_partners_never_pair_a_class_with_itself():
    classes = torch.tensor([0, 0, 0, 1, 2, 2, 1, 0])
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        partner, valid = mixing.different_class_partners(classes, generator)
        assert valid.all()
        assert (classes[partner] != classes).all()


def test_different_class_partners_single_class_batch_is_flagged():
    partner, valid = mixing.different_class_partners(torch.tensor([4, 4, 4]), torch.Generator().manual_seed(0))
    assert not valid.any()
    assert partner.shape == (3,)


def test_mixmaxent_objective_matches_formula_on_a_linear_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    inputs = torch.randn(5, 4)
    targets = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).float()
    loss = mixing.MixMaxEnt(10.0, seed=2, weight=1.0, partners="different_class")(model, inputs, targets)
    g = torch.Generator().manual_seed(2)
    lam = np.random.default_rng(int(torch.randint(0, 2**63 - 1, (1,), generator=g))).beta(10.0, 10.0, size=1)[0]
    partner, _ = mixing.different_class_partners(targets.argmax(1), torch.rand(1, 5, generator=g)[0])
    mixed = lam * inputs + (1 - lam) * inputs[partner]
    clean_ce = -(targets * torch.log_softmax(model(inputs), 1)).sum(1).mean()
    p = torch.softmax(model(mixed), 1)
    expected = clean_ce - (-(p * p.log()).sum(1)).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


# --------------------------------------------------------------------------------------------------------
# Ent-WC
# --------------------------------------------------------------------------------------------------------
def test_entwc_weight_upper_clamp_when_entropy_at_most_log2():
    logits = torch.tensor([[0.0, 0.0, -1e4], [20.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    h = mixing.prediction_entropy(logits)
    assert h[0].item() == pytest.approx(LOG2, abs=1e-6)  # a 50/50 prediction: exactly log 2
    assert h[2].item() < LOG2
    assert torch.allclose(mixing.entwc_weights(h, 0.7), torch.ones(3))


def test_entwc_weight_lower_clamp_when_entropy_is_large():
    uniform = torch.zeros(1, 10)  # H = log 10, log 2 / H = 0.301 < κ
    h = mixing.prediction_entropy(uniform)
    assert h.item() == pytest.approx(math.log(10))
    assert mixing.entwc_weights(h, 0.7).item() == pytest.approx(0.7)
    assert mixing.entwc_weights(h, 0.0).item() == pytest.approx(LOG2 / math.log(10))


def test_entwc_weight_between_the_bounds():
    logits = torch.tensor([[math.log(2.0), 0.0, 0.0]])  # softmax = (0.5, 0.25, 0.25): H = 1.5 log 2
    h = mixing.prediction_entropy(logits)
    assert h.item() == pytest.approx(1.5 * LOG2)
    assert mixing.entwc_weights(h, 0.5).item() == pytest.approx(2.0 / 3.0)
    assert mixing.entwc_weights(h, 0.7).item() == pytest.approx(0.7)  # 2/3 < κ = 0.7


def test_entwc_loss_hand_value():
    logits = torch.tensor([[math.log(2.0), 0.0, 0.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    # example 1: CE = −log 0.5, w = 2/3 (κ = 0.5); example 2: CE = log 3, H = log 3, w = log 2 / log 3.
    expected = (2 / 3 * LOG2 + (LOG2 / math.log(3)) * math.log(3)) / 2
    assert mixing.entwc_loss(logits, targets, kappa=0.5).item() == pytest.approx(expected, abs=1e-6)


def test_entwc_gradient_flows_through_the_weight():
    base = torch.tensor([[math.log(2.0), 0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    grads = {}
    for detach in (False, True):
        logits = base.clone().requires_grad_(True)
        mixing.entwc_loss(logits, targets, kappa=0.5, detach_weight=detach).backward()
        grads[detach] = logits.grad.clone()
    assert not torch.allclose(grads[False], grads[True])
    # Hand derivative: loss = log2·CE/H, d/dz = log2·(H·∇CE − CE·∇H)/H².
    z = base.clone().requires_grad_(True)
    p = torch.softmax(z, 1)
    ce = -torch.log(p[0, 0])
    h = -(p * p.log()).sum()
    (LOG2 * ce / h).backward()
    assert torch.allclose(grads[False], z.grad, atol=1e-6)


def test_entwc_gradient_is_finite_and_weight_constant_at_the_clamps():
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    base = torch.tensor([[50.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # H ≈ 0 (w = 1) and H = log 3 > log2/0.7 (w = κ)
    grads = {}
    for detach in (False, True):
        logits = base.clone().requires_grad_(True)
        mixing.entwc_loss(logits, targets, kappa=0.7, detach_weight=detach).backward()
        grads[detach] = logits.grad.clone()
    assert torch.isfinite(grads[False]).all()
    assert torch.allclose(grads[False], grads[True])


# --------------------------------------------------------------------------------------------------------
# τ mixing (appendix C)
# --------------------------------------------------------------------------------------------------------
def test_mixup_with_tau_targets_uses_the_ordered_pair_transform():
    from softlabels.labels import tau

    taus = pd.DataFrame(
        {"class_i": [0, 0, 1], "class_j": [1, 2, 2], "k": [8.0, 5.0, 3.0], "x0": [0.3, 0.5, 0.6], "n": [4, 4, 4]}
    )
    objective = mixing.Mixup(1.0, target_lambda=mixing.tau_target_lambda(taus))
    classes = [0, 1, 1, 2, 0, 2]
    targets = torch.nn.functional.one_hot(torch.tensor(classes), 3).float()
    _, mixed_y = objective.mixed_batch(torch.zeros(6, 1), targets, torch.Generator().manual_seed(5))
    lam, perm = reference_draws(5, 1.0, 6)
    fitted = {(0, 1): (8.0, 0.3), (0, 2): (5.0, 0.5), (1, 2): (3.0, 0.6)}
    checked_pairs = set()
    for i in range(6):
        a, b = classes[i], classes[int(perm[i])]
        if a == b:
            lam_g = lam
        elif (a, b) in fitted:
            lam_g = float(tau(lam, *fitted[(a, b)]))
        else:
            lam_g = 1.0 - float(tau(1.0 - lam, *fitted[(b, a)]))
        checked_pairs.add((a, b))
        row = torch.zeros(3, dtype=torch.float64)
        row[a] += lam_g
        row[b] += 1 - lam_g
        assert torch.allclose(mixed_y[i].double(), row, atol=1e-6)
    assert any(a > b for a, b in checked_pairs)  # the reversed orientation was exercised
    assert any(a < b for a, b in checked_pairs)


def test_tau_mixing_is_not_linear():
    from softlabels.labels import tau

    assert float(tau(0.25, 8.0, 0.3)) != pytest.approx(0.25, abs=1e-3)


# --------------------------------------------------------------------------------------------------------
# From a scheme
# --------------------------------------------------------------------------------------------------------
def test_build_objective_picks_the_class_and_names_missing_keys():
    assert mixing.build_objective({"objective": "ce"}, "s", 0) is None
    assert isinstance(mixing.build_objective({"objective": "mixup", "alpha": 1.0}, "s", 0), mixing.Mixup)
    entwc = mixing.build_objective({"objective": "entwc", "alpha": 0.2, "kappa": 0.7}, "s", 0)
    assert isinstance(entwc, mixing.EntWC) and entwc.kappa == 0.7 and not entwc.detach_weight
    mme = mixing.build_objective(
        {"objective": "mixmaxent", "alpha": 10, "maxent_weight": 1.0, "partners": "different_class"}, "s", 0
    )
    assert isinstance(mme, mixing.MixMaxEnt) and mme.alpha == 10
    with pytest.raises(KeyError, match="schemes.s.kappa"):
        mixing.build_objective({"objective": "entwc", "alpha": 0.2}, "s", 0)
    with pytest.raises(ValueError, match="tau"):
        mixing.build_objective({"objective": "mixup", "alpha": 1.0, "target_mix": "tau"}, "s", 0)


def _maxent_partners(partners: str, classes, seed: int):
    """Partner of each example as MixMaxEnt.prepare draws it: inputs are one-hot rows e_i, so mixed row i is
    λ·e_i + (1−λ)·e_partner(i)."""
    n = len(classes)
    objective = mixing.MixMaxEnt(10.0, seed, 1.0, partners)
    targets = torch.nn.functional.one_hot(torch.tensor(classes), 10).float()
    model_inputs, _ = objective.prepare(torch.eye(n), targets, None)
    mixed = model_inputs[n:]
    partner = []
    for i, row in enumerate(mixed):
        others = [j for j in torch.nonzero(row).view(-1).tolist() if j != i]
        partner.append(others[0] if others else i)
    return partner


def test_mixmaxent_partner_rules_differ():
    """different_class never pairs an example with its own class; random (a permutation) does."""
    classes = [0, 0, 0, 0, 1, 1, 1, 1]
    same_random = same_different = 0
    for seed in range(20):
        for rule in ("random", "different_class"):
            partner = _maxent_partners(rule, classes, seed)
            same = sum(classes[i] == classes[p] for i, p in enumerate(partner))
            if rule == "random":
                same_random += same
                assert sorted(partner) == list(range(8))  # a permutation of the batch
            else:
                same_different += same
    assert same_different == 0
    assert same_random > 20  # about half of 160 pairs


def test_epoch_draws_give_every_step_its_own_lambda_and_partners():
    """The whole epoch is drawn at once (λ per step, uniforms per step) and a step's mixing uses its own draws."""
    objective = mixing.Mixup(1.0)
    draws = objective.epoch_draws([6, 6, 4], torch.Generator().manual_seed(3), "cpu")
    assert [d.uniforms.shape[0] for d in draws] == [6, 6, 4]
    for step in range(2):
        lam, perm = reference_draws(3, 1.0, 6, steps=3, step=step)
        assert draws[step].lam == pytest.approx(lam, rel=1e-6) and float(draws[step].lam_device) == pytest.approx(lam)
        assert torch.equal(draws[step].uniforms.argsort(), perm)
    assert len({round(d.lam, 9) for d in draws}) == 3


def test_different_class_partners_are_uniform_over_the_other_classes():
    """k-th other-class example for u in [k/n_i, (k+1)/n_i): each of the n_i candidates equally often."""
    classes = torch.tensor([0, 1, 1, 2, 0])
    counts = torch.zeros(5, 5)
    for u in torch.linspace(0, 0.999, 1000):
        partner, valid = mixing.different_class_partners(classes, torch.full((5,), float(u)))
        assert valid.all() and (classes[partner] != classes).all()
        counts[torch.arange(5), partner] += 1
    # row 0 (class 0): candidates 1, 2, 3 → about a third each
    assert counts[0, 1:4].tolist() == pytest.approx([333.3] * 3, abs=2)


def test_tau_pair_table_equals_the_transform_per_pair():
    from softlabels.labels import class_pair_tau
    from softlabels.labels.tau import pair_parameters

    taus = pd.DataFrame(
        {"class_i": [0, 0, 1], "class_j": [1, 2, 2], "k": [8.0, 5.0, 3.0], "x0": [0.3, 0.5, 0.6], "n": [4, 4, 4]}
    )
    table = mixing.tau_target_lambda(taus).pair_table(np.array([0.2, 0.7]))
    for s_, lam in enumerate([0.2, 0.7]):
        for a in range(3):
            for b in range(3):
                expected = class_pair_tau(lam, a, b, pair_parameters(taus))
                assert table[s_, a, b] == pytest.approx(float(expected))
    assert np.isnan(table[0, 0, 5])  # no fit for (0, 5): NaN, the loss becomes non-finite
