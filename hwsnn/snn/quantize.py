"""Quantize: float ``SNN`` → integer ``QNet``.

Every population p gets an integer threshold unit Θ_p (even, so that Θ/2 is exact). One
count of a source s carries the value u_s (θ_s/τ_s; for the input: one code). A weight W
from s to p becomes ``Wq = round_half_up(W · u_s / u_p · Θ_p)`` and a bias b becomes
``Bq = round_half_up(b / u_p · Θ_p)``. Θ_p is the largest even integer for which every
incoming |Wq| fits the configured weight width (for ``if-shift`` a multiple of 2T, so that
the shift θ/(2T) = Θ/(2T) is exact). The readout's Θ is a plain scale. Where one input
count is worth more thresholds than the width holds (ILIF at many time steps), the weights
are rounded to multiples of a power of two, ``2**weight_shift``, and stored shifted, so that
they keep their precision instead of clipping (``threshold_unit``).

Widths come from worst-case bounds over every legal input (``hwsnn.snn.widths``, the one rule
that the engines use too): the bias width, and the membrane width from interval
arithmetic over all steps, including the fire function. A membrane wider than
``max_membrane_bits`` is clamped to it, and the population saturates (the golden model
saturates identically).
"""

from __future__ import annotations

import math

import torch

from ..errors import ParameterError
from ..frontends.graph import INPUT, INPUT_BITS
from .convert import SNN, SNNPopulation
from .qnet import InputSpecQ, QNet, QPopulation, QProjection
from .widths import set_membrane_widths, signed_bits

DEFAULT_WEIGHT_BITS = 8
DEFAULT_MAX_MEMBRANE_BITS = 32


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5)


def threshold_unit(maxabs: list[float], wmax: int, step: int = 2) -> tuple[int, int]:
    """Θ (a multiple of ``step``) and the weight shift of a population whose incoming
    projections' largest weights, in thresholds per input count, are ``maxabs``.

    Θ is the largest multiple of ``step`` for which every weight fits ``wmax``. When not even
    Θ = ``step`` lets them fit (one input count is worth more than wmax/step thresholds:
    ILIF at many time steps, whose one count is θ/(2^T − 1)), the weights are stored
    shifted right by some bits instead, and Θ is chosen with them: the fewest bits for
    which the weights still use 90 % of their range (Θ, a multiple of ``step``, is coarse
    where it is small), at most four beyond the fewest that fit at all."""
    m = max(maxabs, default=0.0)
    if m <= 0:
        return step, 0

    def theta(shift):
        return step * math.floor(wmax * 2**shift / (step * m))

    if theta(0) >= step:
        return theta(0), 0
    first = math.ceil(math.log2(step * m / wmax))
    while theta(first) < step:
        first += 1
    shift = first
    while shift < first + 4 and theta(shift) * m < 0.9 * wmax * 2**shift:
        shift += 1
    return theta(shift), shift


def quantize(snn: SNN, *, weight_bits: int = DEFAULT_WEIGHT_BITS,
             max_membrane_bits: int = DEFAULT_MAX_MEMBRANE_BITS) -> QNet:
    """Quantize a float SNN to a QNet with ``weight_bits``-bit signed weights."""
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) \
            or not 2 <= weight_bits <= 16:
        raise ParameterError(f"weight bits must be an integer in 2..16, not {weight_bits!r}")
    if isinstance(max_membrane_bits, bool) or not isinstance(max_membrane_bits, int) \
            or not 8 <= max_membrane_bits <= 48:
        raise ParameterError("max membrane bits must be an integer in 8..48, not "
                             f"{max_membrane_bits!r}")
    wmax = 2 ** (weight_bits - 1) - 1
    T = snn.timesteps
    rate_steps = T + snn.cos_steps
    warnings: list[str] = []
    pops: list[QPopulation] = []
    for pop in snn.populations:
        u_p = snn.unit(pop)
        scaled = [p.weight.to(torch.float64) * snn.unit(p.source) / u_p
                  for p in pop.projections]
        step = 2 * T if (snn.method == "if-shift" and not pop.is_readout) else 2
        theta, shift = threshold_unit([float(w.abs().max()) for w in scaled], wmax, step)
        projs = []
        for proj, w in zip(pop.projections, scaled, strict=True):
            # Each projection's own shift: the smallest that fits its largest weight.
            k = shift
            while k > 0 and float(w.abs().max()) * theta <= wmax * 2 ** (k - 1):
                k -= 1
            wq = round_half_up(w * theta / 2**k).clamp(-wmax, wmax).to(torch.int64) * 2**k
            projs.append(QProjection(proj.source, proj.kind, wq.numpy(), proj.stride,
                                     proj.padding, weight_bits, k))
        bias = round_half_up(pop.bias.to(torch.float64) / u_p * theta)
        if snn.method == "if-shift" and not pop.is_readout:
            bias = bias + theta // (2 * T)
        bias = bias.to(torch.int64).numpy()
        if pop.is_readout:
            kind, v0 = "readout", 0
        elif pop.kind == "ilif":
            kind, v0 = "ilif", theta // 2
        else:
            kind, v0 = "gn", 0 if snn.method == "if-shift" else theta // 2
        if pop.kind == "ilif" or (pop.is_readout and snn.method == "ilif"):
            first = any(p.source == INPUT for p in pop.projections)
            steps_in = INPUT_BITS if first else T
            steps_out = T if kind == "ilif" else 1
            scale = u_p / theta
        else:
            steps_in = steps_out = rate_steps
            scale = u_p / theta / T
        q = QPopulation(
            name=pop.name, kind=kind, shape=tuple(pop.shape), threshold=int(theta),
            group_size=pop.group_size, steps_in=steps_in, steps_out=steps_out, v0=int(v0),
            bias=bias, projections=projs, bias_bits=signed_bits(int(bias.min()),
                                                                  int(bias.max())),
            membrane_bits=0, saturate=False, theta=float(pop.theta), unit=float(u_p),
            readout_scale=float(scale) if pop.is_readout else None,
        )
        _check_sources(snn, pop, q)
        pops.append(q)
    net = QNet(snn.method, T, snn.cos_steps,
               InputSpecQ(tuple(snn.input.shape), INPUT_BITS, snn.input.lo, snn.input.hi,
                          snn.input.mean, snn.input.std),
               pops, weight_bits, max_membrane_bits, dict(snn.metadata))
    warnings += set_membrane_widths(net)
    if warnings:
        net.metadata["warnings"] = warnings
    return net


def _check_sources(snn: SNN, pop: SNNPopulation, q: QPopulation):
    if q.kind in ("ilif",) or (q.kind == "readout" and snn.method == "ilif"):
        inputs = {p.source == INPUT for p in pop.projections}
        if len(inputs) > 1:
            raise ParameterError(
                f"{pop.name}: with ilif, a population cannot add the input image (8 bit-planes) "
                f"and a layer's output ({snn.timesteps} bit-planes); use a rate method")
