"""Network architectures of the thesis (docs/protocol.md#models).

Every model takes *normalised* CIFAR input (per-channel mean/std below) of shape [B, 3, 32, 32] and returns
logits [B, num_classes]. `with_normalization(model)` wraps a model so that it takes [0, 1] pixels instead,
which is what adversarial attacks need (the ε-ball and the clamp live in pixel space).

| name            | architecture                                                                  |
|-----------------|-------------------------------------------------------------------------------|
| resnet34a       | CIFAR ResNet of He et al. / Uma et al., n = 7 (44 layers), option-A shortcuts  |
| resnet8a        | the same with n = 1 (8 layers); used by the quick/smoke scales                 |
| resnet20a       | the same with n = 3 (20 layers): a larger quick-scale model (diagnosis E4)     |
| resnet50        | CIFAR bottleneck ResNet [3, 4, 6, 3] of the mixup code (facebookresearch)      |
| vgg11           | VGG-11 with BatchNorm of the mixup code                                        |
| preact_resnet18 | the mixup code's "ResNet18": ResNet(PreActBlock, [2, 2, 2, 2])                 |
| preact_resnet34 | ResNet(PreActBlock, [3, 4, 6, 3]): chapter 5's "PreAct ResNet-34"              |
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: Per-channel statistics used by the released code (mixup, Collins, Uma): x_norm = (x - mean) / std.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


# ---------------------------------------------------------------------------------------------------
# CIFAR ResNet with option-A shortcuts (Uma et al.'s "ResNet-34A"; 6n+2 weighted layers).
# ---------------------------------------------------------------------------------------------------
class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: subsample by `stride` (the original's MaxPool2d(1, stride)) and append zero
    channels up to `out_channels`. Parameter-free."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class ResBlockA(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU; convolutions carry a bias (as in Uma et al.)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNetA(nn.Module):
    """conv3x3(3→16)-BN-ReLU, three stages of n blocks (16, 32, 64 channels; strides 1, 2, 2),
    AvgPool2d(8), Linear(64 → classes)."""

    def __init__(self, n: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(n, 16, 16, 1)
        self.layer2 = self._stage(n, 16, 32, 2)
        self.layer3 = self._stage(n, 32, 64, 2)
        self.avgpool = nn.AvgPool2d(8)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(n: int, in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
        blocks = [ResBlockA(in_channels, out_channels, stride)]
        blocks += [ResBlockA(out_channels, out_channels) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(self.avgpool(out), 1))


# ---------------------------------------------------------------------------------------------------
# ResNets of the mixup code (kuangliu style): 64-channel stem conv+BN+ReLU, four stages, avg_pool2d(4).
# ---------------------------------------------------------------------------------------------------
def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def _projection(in_planes: int, out_planes: int, stride: int, with_bn: bool) -> nn.Module:
    """1x1 conv (+ BN for post-activation blocks) when the shape changes, else identity."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    layers: list[nn.Module] = [nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)]
    if with_bn:
        layers.append(nn.BatchNorm2d(out_planes))
    return nn.Sequential(*layers)


class PreActBlock(nn.Module):
    """a = ReLU(BN(x)); out = conv(ReLU(BN(conv(a)))) + shortcut(a). The shortcut takes the pre-activated
    `a` even when it is the identity (the kuangliu/mixup quirk, docs/protocol.md#models)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.shortcut = _projection(in_planes, planes, stride, with_bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + self.shortcut(a)


class Bottleneck(nn.Module):
    """1x1-BN-ReLU, 3x3(stride)-BN-ReLU, 1x1(×4)-BN, + projection shortcut (1x1 conv + BN), ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride, with_bn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class MixupResNet(nn.Module):
    """The mixup code's `ResNet(block, num_blocks)`: conv3x3(3→64)-BN-ReLU stem (also for pre-activation
    blocks), stages of 64/128/256/512 planes (strides 1, 2, 2, 2), no final BN-ReLU, avg_pool2d(4),
    Linear(512·expansion → classes)."""

    def __init__(self, block: type[nn.Module], num_blocks: list[int], num_classes: int = 10):
        super().__init__()
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        stages = []
        for planes, blocks, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2)):
            layers = []
            for s in [stride] + [1] * (blocks - 1):
                layers.append(block(in_planes, planes, s))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.avg_pool2d(out, 4), 1))


# ---------------------------------------------------------------------------------------------------
# VGG with BatchNorm (mixup code).
# ---------------------------------------------------------------------------------------------------
VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """conv3x3 (bias) + BN + ReLU per number in `cfg`, MaxPool2d(2) per "M", AvgPool2d(1, 1) (a no-op kept
    from the original), Linear(512 → classes)."""

    def __init__(self, cfg: tuple = VGG11_CFG, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, item, 3, padding=1, bias=True), nn.BatchNorm2d(item), nn.ReLU()]
                in_channels = item
        layers.append(nn.AvgPool2d(1, stride=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# ---------------------------------------------------------------------------------------------------
# Registry and normalisation wrapper.
# ---------------------------------------------------------------------------------------------------
MODELS: dict[str, Callable[[int], nn.Module]] = {
    "resnet34a": lambda k: CifarResNetA(n=7, num_classes=k),
    "resnet8a": lambda k: CifarResNetA(n=1, num_classes=k),
    "resnet20a": lambda k: CifarResNetA(n=3, num_classes=k),
    "resnet50": lambda k: MixupResNet(Bottleneck, [3, 4, 6, 3], num_classes=k),
    "vgg11": lambda k: VGG(VGG11_CFG, num_classes=k),
    "preact_resnet18": lambda k: MixupResNet(PreActBlock, [2, 2, 2, 2], num_classes=k),
    "preact_resnet34": lambda k: MixupResNet(PreActBlock, [3, 4, 6, 3], num_classes=k),
}


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model (PyTorch default init, drawn from torch's global RNG) taking normalised
    input. Raises ValueError naming the valid choices for an unknown `name`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](num_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Normalize(nn.Module):
    """(x - mean) / std per channel, for [B, 3, H, W] input in [0, 1]. Mean and std are buffers."""

    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NormalizedModel(nn.Sequential):
    """Sequential(Normalize, model): takes [0, 1] pixels; `.model` is the wrapped network."""

    def __init__(self, model: nn.Module, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__(Normalize(mean, std), model)

    @property
    def model(self) -> nn.Module:
        return self[1]


def with_normalization(model: nn.Module, mean=CIFAR_MEAN, std=CIFAR_STD) -> nn.Module:
    """Wrap `model` (normalised input) so that it takes [0, 1] pixels, as the released attack code does
    (`Sequential(Normalize(mean, std), net)`), on the device of its parameters. A model that is already wrapped
    is returned unchanged."""
    if isinstance(model, NormalizedModel):
        return model
    first = next(model.parameters(), None)
    wrapped = NormalizedModel(model, mean, std)
    return wrapped if first is None else wrapped.to(first.device)
