"""Widths: one rule for every integer the golden model and the engines hold or compare.

The golden model computes on int64; the hardware on registers and memories of a fixed
width. A value that does not fit its register wraps, and a wrapped comparison makes the
RTL fire where the golden model does not. So every width comes from worst-case bounds over
every legal input, taken here once and read by ``quantize`` (a QNet's ``membrane_bits``
and ``saturate``), ``nir_io``, the engine plans (``hdl.plan``) and the tests' random nets:

- ``membrane_bounds``: V itself, before and after every fire, as docs/qnet.md defines it.
- ``stored_bounds``: everything a membrane memory holds in the engines, which add a
  step's events one by one before the bias (so partial sums may lie beyond V's bounds), a
  rate readout's bias once at the end (T·B), V0, and an ILIF population's clamp 2^T·Θ − 1.
  A QNet's ``membrane_bits`` is this width (at least 2 bits).
- ``compare_bounds``: every operand and result of the neuron rule's subtractors, which
  are its comparators: V − iΘ for the τ members of a group neuron (down to V − τΘ), and
  the restoring division's V − Θ·2^k of an ILIF population.
- ``bias_bounds`` and ``input_current_bounds``: the bias words of the engines (a rate
  readout's T·B, an ILIF population's B + V0) and the input current RAM (bias + W·x).

One more rule of the hardware lives here because the golden model's cycle count needs it
too: which projection the multiply-accumulate input stage computes (``mac_input``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .qnet import INPUT, PIXEL_LEVELS, QNet, QPopulation, QProjection


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's-complement integer that holds every value in [lo, hi]."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


def source_levels(net: QNet, source: str) -> int:
    """Largest count a source sends in one step (one bit-plane for ILIF)."""
    if source == INPUT:
        return 1 if net.method == "ilif" else PIXEL_LEVELS
    src = net.population(source)
    return 1 if src.kind == "ilif" else src.group_size


def mac_input(pop: QPopulation, proj: QProjection) -> bool:
    """Whether the multiply-accumulate input stage (``hdl.inputmac``, with input lanes)
    computes projection ``proj`` of ``pop``: a dense projection from the image into group
    (or IF) neurons of a rate method. The engine plans (``hdl.plan``) and the golden
    model's cycle count both ask this."""
    return pop.kind == "gn" and proj.source == INPUT and proj.kind == "dense"


def mac_eligible(net: QNet, pop: QPopulation) -> bool:
    """Whether population ``pop`` can take its image input through the multiply-accumulate
    input stage (it has a projection ``mac_input`` accepts)."""
    return any(mac_input(pop, q) for q in pop.projections)


def bit_serial(net: QNet, pop: QPopulation) -> bool:
    """Whether the population accumulates bit-planes (``V ← 2V + W·bit``): ILIF neurons,
    and the readout of an ILIF network."""
    return pop.kind == "ilif" or (pop.kind == "readout" and net.method == "ilif")


def current_bounds(net: QNet, pop: QPopulation) -> tuple[int, int]:
    """Worst-case (lowest, highest) synaptic input of any neuron in one step, bias excluded;
    every partial sum of a step's events lies in [min(0, lo), max(0, hi)] too."""
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
    if bit_serial(net, pop):
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


def ilif_top(pop: QPopulation) -> int:
    """The largest value an ILIF population divides: V is clamped to 2^T·Θ − 1 first."""
    return 2**pop.steps_out * pop.threshold - 1


def stored_bounds(net: QNet, pop: QPopulation) -> tuple[int, int]:
    """Every value a membrane holds, in the golden model or an engine (see the module)."""
    lo, hi = membrane_bounds(net, pop)
    ilo, ihi = current_bounds(net, pop)
    blo, bhi = int(pop.bias.min()), int(pop.bias.max())
    if bit_serial(net, pop):
        # The Horner sum's partial sums (events before the bias and the offset) are within
        # span·[min(0, ilo), max(0, ihi)], which membrane_bounds already spans.
        if pop.kind == "ilif":
            hi = max(hi, ilif_top(pop))
    elif pop.kind == "readout":
        # Events of every step first, T·B at the end.
        lo = min(lo, pop.steps_in * min(0, ilo))
        hi = max(hi, pop.steps_in * max(0, ihi))
    else:
        # A step's events before its bias: V_prev + partial sum ≥ (lowest V before the fire)
        # − (the bias), and likewise above.
        lo, hi = lo - max(0, bhi), hi - min(0, blo)
    return min(lo, pop.v0, 0), max(hi, pop.v0, 0)


def compare_bounds(net: QNet, pop: QPopulation) -> tuple[int, int]:
    """Every operand and result of the neuron rule's subtractors (see the module)."""
    lo, hi = stored_bounds(net, pop)
    if pop.kind == "ilif":
        largest = pop.threshold * 2 ** (pop.steps_out - 1)  # the first quotient bit's weight
        return lo - largest, hi
    if pop.kind == "gn":
        mlo, _ = membrane_bounds(net, pop)
        return min(lo, mlo - pop.group_size * pop.threshold), hi
    return lo, hi


def bias_values(net: QNet, pop: QPopulation) -> np.ndarray:
    """What the engines add as a neuron's bias, and when: a rate readout its T·B once at
    the end, an ILIF population B + V0 after accumulating, others B every step."""
    if pop.kind == "readout" and not bit_serial(net, pop):
        # (cos: only the T steps after the pre-simulation count)
        return pop.bias * (pop.steps_in - (net.cos_steps if net.method == "cos" else 0))
    if pop.kind == "ilif":
        return pop.bias + pop.v0
    return pop.bias


def bias_bounds(net: QNet, pop: QPopulation) -> tuple[int, int]:
    b = bias_values(net, pop)
    return min(int(b.min()), 0), max(int(b.max()), 0)


def input_current_bounds(net: QNet, pop: QPopulation) -> tuple[int, int] | None:
    """Bias + W·x of a population fed by the image, computed once per sample (rate methods),
    with every partial sum of it; None for other populations."""
    proj = next((q for q in pop.projections if q.source == INPUT), None)
    if proj is None or pop.kind != "gn":
        return None
    w = proj.weight.reshape(proj.weight.shape[0], -1)
    clo = int(np.minimum(w, 0).sum(1).min()) * PIXEL_LEVELS
    chi = int(np.maximum(w, 0).sum(1).max()) * PIXEL_LEVELS
    blo, bhi = int(pop.bias.min()), int(pop.bias.max())
    return min(clo + min(blo, 0), 0), max(chi + max(bhi, 0), 0)


@dataclass(frozen=True)
class Widths:
    """Two's-complement widths of one population's values (see the module)."""

    membrane: int  # what a membrane memory holds; a QNet's membrane_bits when it fits
    compare: int  # the neuron rule's subtractors and comparators
    bias: int  # the engines' bias words
    current: int  # the input current RAM (1 when there is none)


def widths(net: QNet, pop: QPopulation) -> Widths:
    current = input_current_bounds(net, pop)
    return Widths(membrane=max(2, signed_bits(*stored_bounds(net, pop))),
                  compare=signed_bits(*compare_bounds(net, pop)),
                  bias=signed_bits(*bias_bounds(net, pop)),
                  current=signed_bits(*current) if current else 1)


def membrane_width(net: QNet, pop: QPopulation) -> int:
    """The membrane width a population needs (a QNet's ``membrane_bits``, unless it
    saturates at the configured limit)."""
    return widths(net, pop).membrane


def set_membrane_widths(net: QNet) -> list[str]:
    """Set every population's ``membrane_bits`` and ``saturate`` by this rule, clamping at
    ``net.max_membrane_bits``; returns a warning per saturating population."""
    from ..errors import ParameterError
    from .qnet import EXACT_LIMIT

    warnings = []
    for q in net.populations:
        lo, hi = compare_bounds(net, q)
        if max(abs(lo), abs(hi)) >= EXACT_LIMIT:
            raise ParameterError(f"{q.name}: membrane bound {max(abs(lo), abs(hi))} is beyond "
                                 "exact integer range; use fewer weight bits or time steps")
        bits = membrane_width(net, q)
        q.membrane_bits = min(bits, net.max_membrane_bits)
        q.saturate = bits > net.max_membrane_bits
        if q.saturate:
            warnings.append(f"{q.name}: membrane needs {bits} bits, saturating at "
                            f"{net.max_membrane_bits}")
    return warnings
