"""Three CIFAR-class networks of issue 20, with random weights (no CIFAR data is shipped),
calibrated on random inputs and quantized to QNets, as ``random_nets.small_cifar_qnet`` does
for the small CNN of issue 19:

- ``resnet20_model``: ResNet-20 in the CIFAR form of He et al. 2016: a 3×3 conv 16 stem,
  three stages of three basic blocks at 16, 32, 64 channels (stride 2 at the first block
  of stages 2 and 3), 1×1 conv + BN shortcuts where the shape changes (option B), global
  average pooling, fc 64→10;
- ``resnet18_model``: ResNet-18 in its common CIFAR layout: a 3×3 conv 64 stem at stride
  1, no max pool, four stages of two basic blocks at 64, 128, 256, 512 channels (stride 2
  at stages 2 to 4), 1×1 conv + BN shortcuts where the shape changes, global average
  pooling (4×4 → 1), fc 512→10;
- ``vgg11_model``: VGG-11 with average pooling instead of max pooling, 3×3 convs with
  BN and ReLU, then fc 512→10.

Every BatchNorm has random affine parameters and running statistics measured on random
images (then jittered), so that folding is exercised and the activations stay in a sane
range at every depth. A basic block is conv-BN-ReLU-conv-BN, plus its shortcut, then ReLU
after the addition: the frontend makes its second conv and its shortcut two projections
into one population.

``cifar_qnet(name, method=...)`` converts one of them ("resnet20", "resnet18", "vgg11") with
8-bit weights, seeded and deterministic, in seconds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .qnet import QNet

NAMES = ("resnet20", "resnet18", "vgg11")
VGG11_CFG = (64, "A", 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")
DEFAULT_CALIBRATION_SAMPLES = 32


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels)


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut (identity, or 1×1 conv stride s + BN
    where the shape changes), then ReLU after the addition."""

    def __init__(self, inp: int, out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = _bn(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = _bn(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != out:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), _bn(out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A 3×3 conv stem (+ BN + ReLU), stages of basic blocks, global average pooling, fc."""

    def __init__(self, widths: tuple[int, ...], blocks: int, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = _bn(widths[0])
        stages, inp = [], widths[0]
        for i, w in enumerate(widths):
            layers = []
            for b in range(blocks):
                layers.append(BasicBlock(inp, w, 2 if (i > 0 and b == 0) else 1))
                inp = w
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out))
        return self.fc(torch.flatten(out, 1))


class VGG(nn.Module):
    """3×3 convs (padding 1) with BN and ReLU, ``"A"`` an AvgPool2d(2), then fc."""

    def __init__(self, cfg=VGG11_CFG, classes: int = 10):
        super().__init__()
        layers, inp = [], 3
        for v in cfg:
            if v == "A":
                layers.append(nn.AvgPool2d(2))
            else:
                layers += [nn.Conv2d(inp, v, 3, padding=1), _bn(v), nn.ReLU()]
                inp = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(inp, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def _randomise_batch_norms(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """Random affine parameters (γ in [0.75, 1.25], β ~ N(0, 0.1)), running statistics
    measured on random images (one pass in training mode, cumulative average), then
    jittered (mean by ±10 % of the deviation, variance by a factor in [0.8, 1.25])."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            c = m.num_features
            m.weight.copy_(0.75 + 0.5 * torch.rand(c, generator=gen))
            m.bias.copy_(0.1 * torch.randn(c, generator=gen))
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the pass
        model.train()
        model(torch.rand(32, 3, 32, 32, generator=gen))
        for m in bns:
            c = m.num_features
            std = m.running_var.sqrt()
            m.running_mean.add_(0.1 * std * torch.randn(c, generator=gen))
            m.running_var.mul_(0.8 + 0.45 * torch.rand(c, generator=gen))
            m.momentum = 0.1
    return model.eval()


def _seeded(build, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # (the layers' own initialisation)
    model = build()
    return _randomise_batch_norms(model, torch.Generator().manual_seed(seed + 1))


def resnet20_model(seed: int = 0) -> nn.Module:
    """ResNet-20 (CIFAR form, option B shortcuts), random weights and BatchNorms, eval."""
    return _seeded(lambda: CifarResNet((16, 32, 64), 3), seed)


def resnet18_model(seed: int = 0) -> nn.Module:
    """ResNet-18 (CIFAR layout), random weights and BatchNorms, eval mode."""
    return _seeded(lambda: CifarResNet((64, 128, 256, 512), 2), seed)


def vgg11_model(seed: int = 0) -> nn.Module:
    """VGG-11 with average pooling, BN, random weights and BatchNorms, eval mode."""
    return _seeded(VGG, seed)


MODELS = {"resnet20": resnet20_model, "resnet18": resnet18_model, "vgg11": vgg11_model}


def cifar_qnet(name: str, *, method: str = "gn", timesteps: int = 2, group_size: int | None = 4,
               seed: int = 0, calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES) -> QNet:
    """``name`` ("resnet20", "resnet18", "vgg11") with random weights (``seed``) on 3×32×32
    inputs, threshold-balanced on ``calibration_samples`` random images, converted with
    ``method`` ("gn": group neurons of ``group_size``; "ilif"; or another of
    ``convert.METHODS``) at ``timesteps`` and quantized to 8-bit weights."""
    from ..frontends.pytorch import trace
    from .convert import convert
    from .quantize import quantize

    if name not in MODELS:
        raise ValueError(f"unknown network {name!r}: choose one of {', '.join(NAMES)}")
    model = MODELS[name](seed)
    x = torch.rand(calibration_samples, 3, 32, 32,
                   generator=torch.Generator().manual_seed(seed + 2))
    kw = {"group_size": group_size} if method == "gn" else {}
    return quantize(convert(trace(model, x[:2]), method=method, timesteps=timesteps,
                            calibration=x, progress=False, **kw))


__all__ = ["NAMES", "cifar_qnet", "resnet20_model", "resnet18_model", "vgg11_model",
           "BasicBlock", "CifarResNet", "VGG"]
