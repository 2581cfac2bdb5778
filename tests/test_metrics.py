"""Metrics of docs/protocol.md#evaluation against hand-computed values."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softlabels.evaluate import evaluate_model, fgsm_loss, rms_calibration_error, soft_cross_entropy
from softlabels.evaluate.metrics import fgsm_images
from softlabels.models import build_model, with_normalization

EVAL_CFG = {"calibration": {"skip_last_bin": True}, "fgsm": {"epsilon": 4 / 255}}


def test_soft_cross_entropy_hand_values():
    # softmax([0, log 3]) = [1/4, 3/4].
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    targets = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    first = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    second = -math.log(0.75)
    assert soft_cross_entropy(logits, targets).item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert soft_cross_entropy(logits, targets, reduction="sum").item() == pytest.approx(first + second, rel=1e-6)
    per = soft_cross_entropy(logits, targets, reduction="none")
    assert per.tolist() == pytest.approx([first, second], rel=1e-6)
    # Class indices are one-hot targets.
    assert soft_cross_entropy(logits, np.array([1, 1])).item() == pytest.approx(second, rel=1e-6)


def _two_class(confidences, correct):
    """Binary predictions with the given confidences; target class = prediction where correct."""
    probs = np.array([[c, 1 - c] for c in confidences])
    targets = np.array([[1.0, 0.0] if ok else [0.0, 1.0] for ok in correct])
    return probs, targets


# Sorted by confidence: (0.55, ✓) (0.60, ✗) | (0.70, ✓) (0.80, ✓) | (0.90, ✗) (0.95, ✓); given shuffled.
CONF = [0.9, 0.55, 0.8, 0.6, 0.95, 0.7]
CORRECT = [False, True, True, False, True, True]


def test_rms_calibration_skips_last_bin_by_default():
    probs, targets = _two_class(CONF, CORRECT)
    # bins: mean conf 0.575 vs acc 0.5; 0.75 vs 1.0; (0.925 vs 0.5 skipped); weights 2/6 of N = 6.
    expected = math.sqrt(2 / 6 * 0.075**2 + 2 / 6 * 0.25**2)
    assert expected == pytest.approx(0.150692, abs=1e-6)
    assert rms_calibration_error(probs, targets, bin_size=2) == pytest.approx(expected, rel=1e-9)


def test_rms_calibration_complete_metric():
    probs, targets = _two_class(CONF, CORRECT)
    expected = math.sqrt(2 / 6 * 0.075**2 + 2 / 6 * 0.25**2 + 2 / 6 * 0.425**2)
    assert expected == pytest.approx(0.287952, abs=1e-6)
    assert rms_calibration_error(probs, targets, bin_size=2, skip_last_bin=False) == pytest.approx(expected, rel=1e-9)


def test_rms_calibration_stretches_last_bin_to_n():
    # N = 7, β = 2: bins [0,2) [2,4) [4,7); the 7th example (0.99, ✓) joins the last bin.
    probs, targets = _two_class(CONF + [0.99], CORRECT + [True])
    last = (0.9 + 0.95 + 0.99) / 3 - 2 / 3
    full = math.sqrt(2 / 7 * 0.075**2 + 2 / 7 * 0.25**2 + 3 / 7 * last**2)
    skipped = math.sqrt(2 / 7 * 0.075**2 + 2 / 7 * 0.25**2)
    assert rms_calibration_error(probs, targets, 2, skip_last_bin=False) == pytest.approx(full, rel=1e-9)
    assert rms_calibration_error(probs, targets, 2) == pytest.approx(skipped, rel=1e-9)


def test_rms_calibration_uses_argmax_of_soft_targets_and_accepts_indices():
    probs, hard = _two_class(CONF, CORRECT)
    soft = 0.8 * hard + 0.1  # same argmax
    assert rms_calibration_error(probs, soft, 2) == rms_calibration_error(probs, hard, 2)
    assert rms_calibration_error(probs, hard.argmax(1), 2) == rms_calibration_error(probs, hard, 2)


def test_rms_calibration_perfectly_calibrated_is_zero():
    probs, targets = _two_class([1.0, 1.0, 1.0, 1.0], [True] * 4)
    assert rms_calibration_error(probs, targets, bin_size=2, skip_last_bin=False) == 0.0


def test_rms_calibration_rejects_mismatched_lengths():
    probs, targets = _two_class(CONF, CORRECT)
    with pytest.raises(ValueError, match="targets"):
        rms_calibration_error(probs, targets[:5], 2)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.linear = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.linear(torch.flatten(F.avg_pool2d(torch.tanh(self.conv(x)), 4), 1))


def _hand_fgsm(pixel_model, x, targets, eps):
    x = x.clone().requires_grad_(True)
    loss = soft_cross_entropy(pixel_model(x), targets, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return torch.clamp(x + eps * grad.sign(), 0, 1).detach()


@pytest.fixture
def tiny_setup():
    torch.manual_seed(0)
    pixel_model = with_normalization(TinyNet()).eval()
    x = torch.rand(12, 3, 32, 32)
    soft = torch.softmax(3 * torch.randn(12, 10), dim=1)
    return pixel_model, x, soft


def test_torchattacks_fgsm_equals_hand_written_step_for_soft_targets(tiny_setup):
    pixel_model, x, soft = tiny_setup
    eps = 4 / 255
    adversarial = fgsm_images(pixel_model, x, soft, eps, batch_size=5)  # several batches
    expected = _hand_fgsm(pixel_model, x, soft, eps)
    assert torch.equal(adversarial, expected)
    assert not torch.equal(adversarial, x)
    assert (adversarial - x).abs().max() <= eps + 1e-6


def test_fgsm_hard_indices_equal_one_hot_targets(tiny_setup):
    pixel_model, x, _ = tiny_setup
    classes = torch.arange(12) % 10
    one_hot = F.one_hot(classes, 10).float()
    assert torch.equal(fgsm_images(pixel_model, x, classes, 0.03), fgsm_images(pixel_model, x, one_hot, 0.03))
    assert fgsm_loss(pixel_model, x, classes, 0.03) == pytest.approx(fgsm_loss(pixel_model, x, one_hot, 0.03), rel=1e-6)


def test_fgsm_loss_is_soft_ce_of_adversarial_images(tiny_setup):
    pixel_model, x, soft = tiny_setup
    adversarial = _hand_fgsm(pixel_model, x, soft, 0.05)
    with torch.no_grad():
        expected = soft_cross_entropy(pixel_model(adversarial), soft).item()
        clean = soft_cross_entropy(pixel_model(x), soft).item()
    value = fgsm_loss(pixel_model, x, soft, 0.05, batch_size=7)
    assert value == pytest.approx(expected, rel=1e-5)
    assert value > clean  # the attack raises the loss


def test_evaluate_model_combines_the_metrics():
    torch.manual_seed(0)
    model = build_model("resnet8a").eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    targets = rng.dirichlet(np.ones(10), 20).astype(np.float32)
    hard = rng.integers(0, 10, 20)
    result = evaluate_model(model, images, targets, EVAL_CFG, hard_labels=hard, fgsm_targets=hard, bin_size=5, batch_size=8)
    assert {"ce", "calibration", "fgsm", "accuracy", "n"} <= set(result)
    assert result["n"] == 20
    pixel_model = with_normalization(model).eval()
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        logits = pixel_model(x)
    assert result["ce"] == pytest.approx(soft_cross_entropy(logits, targets).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(float((logits.argmax(1).numpy() == hard).mean()))
    probs = torch.softmax(logits.double(), 1).numpy()
    assert result["calibration"] == pytest.approx(rms_calibration_error(probs, targets, 5), rel=1e-6)
    assert result["fgsm"] == pytest.approx(fgsm_loss(pixel_model, x, hard, 4 / 255), rel=1e-5)
    assert all(isinstance(v, (int, float)) for v in result.values())


@pytest.mark.parametrize("n, bin_size", [(150, 100), (99, 100), (19, 10), (1, 1)])
def test_rms_calibration_refuses_when_skipping_leaves_no_bin(n, bin_size):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=n)
    targets = rng.integers(0, 10, size=n)
    with pytest.raises(ValueError, match=f"{n} examples and bin size {bin_size}"):
        rms_calibration_error(probs, targets, bin_size=bin_size)
    assert rms_calibration_error(probs, targets, bin_size=bin_size, skip_last_bin=False) > 0


def test_rms_calibration_two_bins_is_enough():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10), size=200)
    assert rms_calibration_error(probs, rng.integers(0, 10, size=200), bin_size=100) > 0


def test_every_scale_leaves_two_calibration_bins():
    """Each scale's evaluation sets hold at least two bins' worth of examples (skip_last_bin drops one)."""
    from softlabels.config import default_config_path, load
    import yaml

    scales = yaml.safe_load(default_config_path().read_text())["scales"]
    for scale in scales:
        config = load(None, {"scale": scale})
        calibration = config["evaluation"]["calibration"]
        holdout = config["evaluation"]["cifar10h_holdout_limit"] or 3000
        assert holdout >= 2 * calibration["bin_size"], scale
        assert config["evaluation"]["cifar10s_holdout"]["size"] >= 2 * calibration["bin_size_cifar10s"], scale


def test_config_refuses_an_evaluation_set_below_two_bins():
    from softlabels.config import ConfigError, load

    with pytest.raises(ConfigError, match="cifar10h_holdout_limit.*150"):
        load(None, {"scale": "smoke", "scales": {"paper": {}, "quick": {}, "smoke": {"evaluation": {"cifar10h_holdout_limit": 150}}}})


def test_errors_name_the_problem():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="reduction must be mean, sum or none, got 'max'"):
        soft_cross_entropy(logits, torch.tensor([0, 1]), reduction="max")
    with pytest.raises(ValueError, match=r"probs must be a non-empty \[N, K\] array, got shape \(4,\)"):
        rms_calibration_error(np.full(4, 0.5), np.zeros(4, dtype=int), bin_size=1, skip_last_bin=False)
    with pytest.raises(ValueError, match="bin_size must be >= 1, got 0"):
        rms_calibration_error(np.full((4, 2), 0.5), np.zeros(4, dtype=int), bin_size=0)
    with pytest.raises(ValueError, match=r"15 examples and bin size 10 leave 1 full bin\(s\), .*"
                                         r"\(use at least 20 examples or a bin size of at most 7\)"):
        rms_calibration_error(np.full((15, 2), 0.5), np.zeros(15, dtype=int), bin_size=10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3))
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="4 images but 3 targets"):
        evaluate_model(model, images, np.full((3, 3), 1 / 3), EVAL_CFG)
    from softlabels.evaluate.metrics import pixels

    for bad, shown in ((np.zeros((2, 32, 32, 1), dtype=np.uint8), r"torch.uint8 \(2, 32, 32, 1\)"),
                       (np.zeros((2, 32, 32, 3), dtype=np.float32), r"torch.float32 \(2, 32, 32, 3\)"),
                       (np.zeros((32, 32, 3), dtype=np.uint8), r"torch.uint8 \(32, 32, 3\)")):  # fmt: skip
        with pytest.raises(ValueError, match=r"images must be uint8 \[N, H, W, 3\], got " + shown):
            pixels(bad, "cpu")


def test_class_index_targets_use_the_logits_class_count():
    # targets [0, 1] name no example of class 2, so the one-hot width comes from the logits (K = 3)
    logits = torch.tensor([[0.0, 0.0, math.log(2.0)], [0.0, 0.0, 0.0]])
    per = soft_cross_entropy(logits, np.array([0, 1]), reduction="none")
    assert per.tolist() == pytest.approx([math.log(4.0), math.log(3.0)], rel=1e-6)


class _MeanLogit(nn.Module):
    """Logits (s·m, 0, …, 0) of normalised input with mean m: a model whose outputs are known in closed form."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([self.scale * m] + [torch.zeros_like(m)] * 9, dim=1)


def test_evaluate_model_defaults_by_hand():
    """300 grey images, image i with top half at level ⌈i/2⌉ and bottom half at ⌊i/2⌋ (pixel means i/2, all
    distinct, so the confidence order has no ties): with the default bin size 100 (three bins, the last
    skipped), hard labels = argmax of the targets and the FGSM target = the soft targets, each metric recomputed
    here in NumPy from the closed-form logits."""
    n = 300
    i = np.arange(n)
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    images[:, :16] = ((i + 1) // 2)[:, None, None, None]
    images[:, 16:] = (i // 2)[:, None, None, None]
    levels = i / 2
    rng = np.random.default_rng(3)
    targets = rng.dirichlet(np.ones(10) * 0.3, n)
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2023, 0.1994, 0.2010])
    m = ((levels[:, None] / 255.0 - mean) / std).mean(axis=1)
    logits = np.zeros((n, 10))
    logits[:, 0] = 2.0 * m
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    ce = -(targets * log_p).sum(axis=1).mean()
    accuracy = (p.argmax(axis=1) == targets.argmax(axis=1)).mean()
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == targets.argmax(axis=1)).astype(float)
    order = np.argsort(conf, kind="stable")
    conf, correct = conf[order], correct[order]
    gaps = [(conf[lo:lo + 100].mean() - correct[lo:lo + 100].mean()) ** 2 * 100 / n for lo in (0, 100)]
    result = evaluate_model(_MeanLogit(2.0), images, targets, EVAL_CFG)
    assert result["n"] == n and result["ce"] == pytest.approx(ce, rel=1e-5)
    assert result["accuracy"] == accuracy and 0 < accuracy < 1
    assert result["calibration"] == pytest.approx(math.sqrt(sum(gaps)), rel=1e-5)
    unskipped = evaluate_model(_MeanLogit(2.0), images, targets, {**EVAL_CFG, "calibration": {"skip_last_bin": False}})
    last = (conf[200:].mean() - correct[200:].mean()) ** 2 * 100 / n
    assert unskipped["calibration"] == pytest.approx(math.sqrt(sum(gaps) + last), rel=1e-5)
    assert result["fgsm"] > result["ce"]  # the soft-target attack raises the loss


def test_rms_calibration_computes_in_float64_for_float32_input():
    """float32 probabilities are widened first: the result equals the float64 computation to 1e-13."""
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(3), 40).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    wide = probs.astype(np.float64)
    conf, correct = wide.max(axis=1), (wide.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(conf, kind="stable")
    conf, correct = conf[order], correct[order]
    expected = math.sqrt(sum(10 / 40 * (conf[lo:lo + 10].mean() - correct[lo:lo + 10].mean()) ** 2
                             for lo in range(0, 40, 10)))  # fmt: skip
    assert rms_calibration_error(probs, labels, bin_size=10, skip_last_bin=False) == pytest.approx(expected, rel=1e-13)


class RedRow(nn.Module):
    """Logits = the normalised red values of the first pixel row's first ten pixels (no parameters)."""

    def forward(self, x):
        return x[:, 0, 0, :10]


def test_accuracy_and_ce_on_uint8_images_by_hand():
    """A pixel at 255 among zeros gives logit a = (1 − m)/s there and b = −m/s elsewhere (m, s: the red
    channel's CIFAR mean and std, 0.4914 and 0.2023). Two images right, one wrong (label 1, argmax 5):
    accuracy 2/3; CE of a right one log(1 + 9·e^(−1/s)), of the wrong one log(e^(1/s) + 9)."""
    from softlabels.evaluate.metrics import accuracy_and_ce, model_logits

    images = np.zeros((3, 32, 32, 3), np.uint8)
    for n, hot in enumerate((0, 2, 5)):
        images[n, 0, hot, 0] = 255
    s = 0.2023
    logits = model_logits(RedRow(), images, batch_size=2)
    assert logits.shape == (3, 10) and logits.dtype == torch.float32
    assert logits[2, 5].item() == pytest.approx((1 - 0.4914) / s, rel=1e-6)
    assert logits[2, 0].item() == pytest.approx(-0.4914 / s, rel=1e-6)
    result = accuracy_and_ce(RedRow(), images, [0, 2, 1])
    assert result["n"] == 3 and result["accuracy"] == pytest.approx(2 / 3, abs=1e-12)
    right, wrong = math.log(1 + 9 * math.exp(-1 / s)), math.log(math.exp(1 / s) + 9)
    assert result["ce"] == pytest.approx((2 * right + wrong) / 3, rel=1e-6)


class Reached(Exception):
    pass


class DeviceSpy(nn.Module):
    """Stops at its first forward call, reporting the device its input is on."""

    def forward(self, x):
        raise Reached(x.device.type)


def test_evaluation_runs_on_the_device_it_is_given():
    """The model and the images go to `device` (the meta device stands in for a GPU here: nothing computes)."""
    from softlabels.evaluate.metrics import pixels

    images = np.zeros((2, 32, 32, 3), np.uint8)
    assert pixels(images, "meta").device.type == "meta"
    with pytest.raises(Reached, match="meta"):
        evaluate_model(DeviceSpy(), images, np.full((2, 10), 0.1), EVAL_CFG, device="meta")


def test_fgsm_moves_the_targets_to_the_images_device(monkeypatch):
    import torchattacks

    seen = []

    class FakeFGSM:
        def __init__(self, model, eps):
            self.eps = eps

        def __call__(self, images, targets):
            seen.append((images.device.type, targets.device.type, self.eps))
            return images

    monkeypatch.setattr(torchattacks, "FGSM", FakeFGSM)
    images = torch.zeros((3, 3, 32, 32), device="meta")
    fgsm_images(nn.Identity(), images, torch.tensor([0, 1, 2]), 0.25, batch_size=2)
    assert seen == [("meta", "meta", 0.25), ("meta", "meta", 0.25)]


def test_calibration_bins_hold_100_examples_by_default():
    """200 examples: 100 at confidence 0.6 with half right, 100 at 0.9 (the last bin, skipped). With bins of 100
    the error is √(100/200 · (0.6 − 0.5)²); bins of 101 would leave one full bin, which is refused."""
    probs = np.array([[0.6, 0.4]] * 100 + [[0.9, 0.1]] * 100)
    targets = np.array([0, 1] * 50 + [0] * 100)
    assert rms_calibration_error(probs, targets) == pytest.approx(math.sqrt(0.5 * 0.01), rel=1e-12)


def test_every_evaluation_entry_point_honours_its_device():
    from softlabels.evaluate.metrics import accuracy_and_ce, model_logits

    images = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(Reached, match="meta"):
        model_logits(DeviceSpy(), images, device="meta")
    with pytest.raises(Reached, match="meta"):
        accuracy_and_ce(DeviceSpy(), images, [0, 1], device="meta")
    # the targets follow the logits to their device
    assert soft_cross_entropy(torch.zeros((2, 10), device="meta"), np.array([1, 2])).device.type == "meta"
