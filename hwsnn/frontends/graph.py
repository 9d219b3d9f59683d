"""The float network graph: what the frontend extracts from a torch model.

A ``Graph`` is a list of populations in topological order. Each population receives one or
more projections (dense or convolution) from the input or from earlier populations, adds a
per-neuron bias, and applies an activation: ReLU, clipped ReLU, QCFS, or none (the readout,
always last). Every linear operation of the model (BatchNorm, average pooling, flattening,
input normalisation) has already been folded into the projections and biases, exactly.

The graph's input is the image in integer code units: ``code = (x - lo) / (hi - lo) * 255``
for the input range ``[lo, hi]`` the model was given; the input range and normalisation
are folded into the first projections. ``Graph.forward`` evaluates the ANN this describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# The image's source name and pixel codes are the QNet's (hwsnn.snn.qnet), under the names the
# float stages use.
from ..snn.qnet import INPUT
from ..snn.qnet import PIXEL_BITS as INPUT_BITS
from ..snn.qnet import PIXEL_LEVELS as INPUT_LEVELS

__all__ = ["INPUT", "INPUT_BITS", "INPUT_LEVELS", "Projection", "Activation", "qcfs_float",
           "Population", "InputSpec", "Graph"]


@dataclass
class Projection:
    """A linear map from ``source`` (a population name or ``"input"``) into a population.

    ``kind == "dense"``: ``weight`` is ``[N_out, N_in]`` over the flattened source.
    ``kind == "conv"``: ``weight`` is ``[C_out, C_in, K, K]``, with ``stride`` and zero
    ``padding``; it reads the source as ``[C_in, H, W]``.
    """

    source: str
    kind: str
    weight: torch.Tensor
    stride: int = 1
    padding: int = 0

    def apply(self, x: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
        """Apply to a batch ``x`` of source values; returns ``[B, *out_shape]``."""
        b = x.shape[0]
        w = self.weight.to(x.dtype)
        if self.kind == "dense":
            return (x.reshape(b, -1) @ w.T).reshape(b, *out_shape)
        return F.conv2d(x, w, stride=self.stride, padding=self.padding)

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1]) if self.kind == "conv" else 1


@dataclass
class Activation:
    """``kind``: ``relu``, ``clip`` (ReLU clipped at ``threshold``), ``qcfs`` (with
    ``threshold`` λ and ``levels`` L), or ``none`` (the readout)."""

    kind: str
    threshold: float | None = None
    levels: int | None = None

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "relu":
            return z.clamp(min=0)
        if self.kind == "clip":
            return z.clamp(0, self.threshold)
        if self.kind == "qcfs":
            return qcfs_float(z, self.threshold, self.levels)
        return z


def qcfs_float(z: torch.Tensor, threshold: float, levels: int) -> torch.Tensor:
    """QCFS in plain torch (no autograd), rounding half up."""
    return torch.floor(z * levels / threshold + 0.5).clamp(0, levels) * (threshold / levels)


@dataclass
class Population:
    name: str
    shape: tuple[int, ...]
    projections: list[Projection]
    bias: torch.Tensor
    activation: Activation
    modules: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def is_readout(self) -> bool:
        return self.activation.kind == "none"


@dataclass
class InputSpec:
    """The model input: ``shape`` without batch, the value range ``[lo, hi]`` that maps to
    codes 0..255, and (for the record) the normalisation folded into the first layer."""

    shape: tuple[int, ...]
    lo: float = 0.0
    hi: float = 1.0
    mean: list[float] | None = None
    std: list[float] | None = None

    def to_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Float codes (not rounded) of an input batch: what the float ANN and SNN see."""
        return (x.to(torch.float64) - self.lo) / (self.hi - self.lo) * INPUT_LEVELS

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Integer 8-bit codes of an input batch, rounded half up and clipped."""
        return torch.floor(self.to_codes(x) + 0.5).clamp(0, INPUT_LEVELS).to(torch.int64)


@dataclass
class Graph:
    input: InputSpec
    populations: list[Population]

    @property
    def output(self) -> Population:
        return self.populations[-1]

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def hidden(self) -> list[Population]:
        return [p for p in self.populations if not p.is_readout]

    def forward(self, codes: torch.Tensor, activation=None) -> dict[str, torch.Tensor]:
        """Evaluate the ANN on input codes ``[B, *input.shape]`` (float64).

        Returns every population's output (post-activation; the readout's logits) by name.
        ``activation(population, z)`` may replace the activation functions (for example a
        QCFS with other levels, for the exact references).
        """
        values = {INPUT: codes.to(torch.float64)}
        for pop in self.populations:
            z = self.current(pop, values)
            values[pop.name] = activation(pop, z) if activation and not pop.is_readout \
                else pop.activation(z)
        return values

    def current(self, pop: Population, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pre-activation ``Σ_proj W·x + b`` of a population, given its sources' values."""
        z = pop.bias.to(torch.float64).unsqueeze(0)
        for proj in pop.projections:
            z = z + proj.apply(values[proj.source], pop.shape)
        return z
