"""Architectures of docs/protocol.md#models: parameter counts, layer structure, the option-A shortcut, the
pre-activation quirk and the [0, 1]-pixel wrapper."""

import pytest
import torch
from torch import nn

from softlabels.models import (
    CIFAR_MEAN,
    CIFAR_STD,
    MODELS,
    PreActBlock,
    ZeroPadShortcut,
    build_model,
    count_parameters,
    with_normalization,
)

# Pinned by constructing each model. Cross-checks: resnet34a ≈ 0.66 M (docs/protocol.md#models); kuangliu's
# ResNet50 23,520,842 and VGG11 9,231,114 exactly; kuangliu's PreActResNet18 has 11,171,146, and the
# mixup code's ResNet(PreActBlock, ...) adds a BatchNorm(64) to the stem: + 128 = 11,171,274.
PARAMETER_COUNTS = {
    "resnet34a": 660_170,
    "resnet8a": 75_530,
    "resnet20a": 270_410,  # He et al.'s ResNet-20: 0.27 M
    "resnet50": 23_520_842,
    "vgg11": 9_231_114,
    "preact_resnet18": 11_171_274,
    "preact_resnet34": 21_279_434,
}


@pytest.mark.parametrize("name", sorted(PARAMETER_COUNTS))
def test_parameter_count_and_output_shape(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert count_parameters(model) == PARAMETER_COUNTS[name]
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_every_registered_model_is_pinned():
    assert set(MODELS) == set(PARAMETER_COUNTS)


def test_build_model_rejects_unknown_name():
    with pytest.raises(ValueError, match="resnet34a"):
        build_model("resnet18")


def _weighted_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name, depth", [("resnet34a", 44), ("resnet8a", 8)])
def test_cifar_resnet_a_depth_and_biased_convolutions(name, depth):
    layers = _weighted_layers(build_model(name))
    assert len(layers) == depth  # 6n + 2
    assert all(layer.bias is not None for layer in layers)


def test_mixup_resnets_have_unbiased_convolutions():
    for name in ("resnet50", "preact_resnet18", "preact_resnet34"):
        convs = [m for m in build_model(name).modules() if isinstance(m, nn.Conv2d)]
        assert all(conv.bias is None for conv in convs), name


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 2, 2)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])  # MaxPool2d(1, stride 2) == subsampling
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_preact_identity_shortcut_adds_the_preactivated_input():
    torch.manual_seed(0)
    block = PreActBlock(8, 8).eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(3, 8, 5, 5)
    with torch.no_grad():
        expected = torch.relu(block.bn1(x))  # not x: the kuangliu/mixup quirk
        assert torch.allclose(block(x), expected)


def test_preact_resnet_has_stem_bn_and_no_final_bn():
    model = build_model("preact_resnet18")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 1 + 2 * 8  # stem + two per block, none after the last block
    assert isinstance(model.bn1, nn.BatchNorm2d)


def test_with_normalization_takes_unit_pixels():
    torch.manual_seed(0)
    model = build_model("resnet8a").eval()
    wrapped = with_normalization(model).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), model((x - mean) / std), atol=1e-6)
    assert with_normalization(wrapped) is wrapped
    assert count_parameters(wrapped) == count_parameters(model)
