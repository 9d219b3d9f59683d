"""Quantize: float ``SNN`` → integer ``QNet``.

Every population p gets an integer threshold unit Θ_p (even, so that Θ/2 is exact). One
count of a source s carries the value u_s (θ_s/τ_s; for the input: one code). A weight W
from s to p becomes ``Wq = round_half_up(W · u_s / u_p · Θ_p)`` and a bias b becomes
``Bq = round_half_up(b / u_p · Θ_p)``. Θ_p is the largest even integer for which every
incoming |Wq| fits the configured weight width (for ``if-shift`` a multiple of 2T, so that
the shift θ/(2T) = Θ/(2T) is exact). The readout's Θ is a plain scale.

Widths come from worst-case bounds over every legal input (see ``bounds``): the bias
width, and the membrane width from interval arithmetic over all steps, including the
fire function. A membrane wider than ``max_membrane_bits`` is clamped to it, and the
population saturates (the golden model saturates identically).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .convert import SNN, SNNPopulation
from .errors import ParameterError
from .graph import INPUT, INPUT_BITS, INPUT_LEVELS
from .qnet import EXACT_LIMIT, InputSpecQ, QNet, QPopulation, QProjection

DEFAULT_WEIGHT_BITS = 8
DEFAULT_MAX_MEMBRANE_BITS = 32


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5)


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's-complement integer that holds every value in [lo, hi]."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


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
        maxabs = max(float(w.abs().max()) for w in scaled)
        step = 2 * T if (snn.method == "if-shift" and not pop.is_readout) else 2
        theta = step * math.floor(wmax / (step * maxabs)) if maxabs > 0 else step
        if theta < step:
            theta = step
            warnings.append(f"{pop.name}: weights clipped to {weight_bits} bits (a single "
                            f"input count exceeds {wmax // 2} thresholds); use more weight bits")
        projs = []
        for proj, w in zip(pop.projections, scaled, strict=True):
            wq = round_half_up(w * theta).clamp(-wmax, wmax).to(torch.int64).numpy()
            projs.append(QProjection(proj.source, proj.kind, wq, proj.stride, proj.padding,
                                     weight_bits))
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
    for q in pops:
        lo, hi = membrane_bounds(net, q)
        if max(abs(lo), abs(hi)) >= EXACT_LIMIT:
            raise ParameterError(f"{q.name}: membrane bound {max(abs(lo), abs(hi))} is beyond "
                                 "exact integer range; use fewer weight bits or time steps")
        bits = max(2, signed_bits(lo, hi))
        q.membrane_bits = min(bits, max_membrane_bits)
        q.saturate = bits > max_membrane_bits
        if q.saturate:
            warnings.append(f"{q.name}: membrane needs {bits} bits, saturating at "
                            f"{max_membrane_bits}")
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


def source_levels(net: QNet, source: str) -> int:
    """Largest count a source sends in one step (one bit-plane for ILIF)."""
    if source == INPUT:
        return 1 if net.method == "ilif" else INPUT_LEVELS
    src = net.population(source)
    return 1 if src.kind == "ilif" else src.group_size


def current_bounds(net: QNet, pop: QPopulation) -> tuple[int, int]:
    """Worst-case (lowest, highest) synaptic input of any neuron in one step, bias excluded."""
    lo = np.zeros(pop.shape, dtype=np.int64)
    hi = lo.copy()
    for proj in pop.projections:
        w = proj.weight.reshape(proj.weight.shape[0], -1)
        smax = source_levels(net, proj.source)
        # per output neuron (dense) or output channel (conv, all positions alike)
        neg = (np.minimum(w, 0).sum(1) * smax).reshape(-1, *([1] * (len(pop.shape) - 1)))
        pos = (np.maximum(w, 0).sum(1) * smax).reshape(-1, *([1] * (len(pop.shape) - 1)))
        if proj.kind == "dense":
            neg, pos = neg.reshape(pop.shape), pos.reshape(pop.shape)
        lo = lo + neg
        hi = hi + pos
    return int(lo.min()), int(hi.max())


def membrane_bounds(net: QNet, pop: QPopulation) -> tuple[int, int]:
    """Worst-case (lowest, highest) membrane value over all steps and legal inputs."""
    ilo, ihi = current_bounds(net, pop)
    blo, bhi = int(pop.bias.min()), int(pop.bias.max())
    if pop.kind == "ilif" or (pop.kind == "readout" and net.method == "ilif"):
        span = 2**pop.steps_in - 1
        return (min(0, span * ilo) + min(0, blo + pop.v0),
                max(0, span * ihi) + max(0, bhi + pop.v0))
    ilo, ihi = ilo + blo, ihi + bhi
    if pop.kind == "readout":
        return (min(0, pop.steps_in * ilo), max(0, pop.steps_in * ihi))
    theta, tau = pop.threshold, pop.group_size
    if net.method == "cos":
        lo, hi = _gn_bounds(pop.v0, pop.v0, ilo, ihi, theta, tau, net.cos_steps)
        v0_lo = pop.v0 - max(theta, hi + 1)
        v0_hi = pop.v0 + max(theta, theta + 1 - lo)
        lo2, hi2 = _gn_bounds(v0_lo, v0_hi, ilo, ihi, theta, tau, net.timesteps)
        return min(lo, lo2), max(hi, hi2)
    return _gn_bounds(pop.v0, pop.v0, ilo, ihi, theta, tau, pop.steps_in)


def _gn_bounds(v_lo, v_hi, ilo, ihi, theta, tau, steps) -> tuple[int, int]:
    lo, hi = min(v_lo, 0), max(v_hi, 0)
    for _ in range(steps):
        pre_lo, pre_hi = v_lo + ilo, v_hi + ihi
        lo, hi = min(lo, pre_lo), max(hi, pre_hi)
        # After firing: negative values stay; non-negative ones fall into [0, Θ−1] unless
        # they exceed (τ+1)Θ − 1, where τΘ is subtracted.
        v_lo = min(pre_lo, 0)
        v_hi = max(min(pre_hi, theta - 1), pre_hi - tau * theta)
    return lo, hi
