"""The bundled example models, trained on the shipped data sets by ``examples/train_digits.py``.

Each is addressable by name (``hwsnn models`` lists them): an architecture factory plus a
state dict shipped inside the package, so nothing is trained or downloaded at run time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..snn.qcfs import QCFS

HERE = Path(__file__).parent
LEVELS = 4


def digits_mlp(levels: int = LEVELS) -> nn.Module:
    """64-64-32-10 MLP with QCFS activations, for 8×8 digits."""
    return nn.Sequential(OrderedDict(
        flatten=nn.Flatten(),
        fc1=nn.Linear(64, 64),
        bn1=nn.BatchNorm1d(64),
        act1=QCFS(levels),
        fc2=nn.Linear(64, 32),
        bn2=nn.BatchNorm1d(32),
        act2=QCFS(levels),
        drop=nn.Dropout(0.1),
        fc3=nn.Linear(32, 10),
    ))


def digits28_mlp(levels: int = LEVELS) -> nn.Module:
    """784-128-10 MLP with QCFS activations, for digits upsampled to 28×28 (MNIST-shaped)."""
    return nn.Sequential(OrderedDict(
        flatten=nn.Flatten(),
        fc1=nn.Linear(28 * 28, 128),
        bn1=nn.BatchNorm1d(128),
        act1=QCFS(levels),
        drop=nn.Dropout(0.1),
        fc2=nn.Linear(128, 10),
    ))


class DigitsCNN(nn.Module):
    """Small CNN for 8×8 digits: three 3×3 convolutions, two average pools, one classifier."""

    def __init__(self, levels: int = LEVELS):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = QCFS(levels)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.act2 = QCFS(levels)
        self.pool2 = nn.AvgPool2d(2)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(16)
        self.act3 = QCFS(levels)
        self.pool3 = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.pool2(self.act2(self.bn2(self.conv2(x))))
        x = self.pool3(self.act3(self.bn3(self.conv3(x))))
        return self.fc(torch.flatten(x, 1))


def digits_cnn(levels: int = LEVELS) -> nn.Module:
    return DigitsCNN(levels)


def mnist_mlp(levels: int = LEVELS) -> nn.Module:
    """784-128-10 MLP with QCFS activations for real MNIST: the accelerator community's
    common workload."""
    return digits28_mlp(levels)


class MnistCNN(nn.Module):
    """LeNet-class CNN for real MNIST: two 5×5 convolutions each followed by a 2×2 average
    pool (MaxPool has no exact spiking form), then 784-64-10."""

    def __init__(self, levels: int = LEVELS):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = QCFS(levels)
        self.pool1 = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 5, padding=2)
        self.bn2 = nn.BatchNorm2d(16)
        self.act2 = QCFS(levels)
        self.pool2 = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.bn3 = nn.BatchNorm1d(64)
        self.act3 = QCFS(levels)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool1(self.act1(self.bn1(self.conv1(x))))
        x = self.pool2(self.act2(self.bn2(self.conv2(x))))
        x = self.drop(self.act3(self.bn3(self.fc1(torch.flatten(x, 1)))))
        return self.fc2(x)


def mnist_cnn(levels: int = LEVELS) -> nn.Module:
    return MnistCNN(levels)


@dataclass(frozen=True)
class BundledModel:
    name: str
    factory: object
    input_shape: tuple[int, ...]
    dataset: str
    description: str

    @property
    def weights(self) -> Path:
        return HERE / f"{self.name.replace('-', '_')}.pt"

    def load(self) -> nn.Module:
        model = self.factory()
        model.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
        return model.eval()


BUNDLED = {
    m.name: m
    for m in (
        BundledModel("digits-mlp", digits_mlp, (1, 8, 8), "digits",
                     "64-64-32-10 MLP, QCFS(L=4), BatchNorm"),
        BundledModel("digits-cnn", digits_cnn, (1, 8, 8), "digits",
                     "conv8-conv16-pool-conv16-pool-fc10 CNN, QCFS(L=4), BatchNorm"),
        BundledModel("digits28-mlp", digits28_mlp, (1, 28, 28), "digits28",
                     "784-128-10 MLP, QCFS(L=4), BatchNorm: MNIST-shaped, for latency/resource "
                     "figures"),
        BundledModel("mnist-mlp", mnist_mlp, (1, 28, 28), "mnist",
                     "784-128-10 MLP, QCFS(L=4), BatchNorm, on real MNIST"),
        BundledModel("mnist-cnn", mnist_cnn, (1, 28, 28), "mnist",
                     "LeNet-class conv8(5×5)-pool-conv16(5×5)-pool-fc64-fc10 CNN, QCFS(L=4), "
                     "BatchNorm, on real MNIST"),
    )
}
