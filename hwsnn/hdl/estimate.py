"""Resource estimate of a network before synthesis, for the fit check of ``hwsnn build``.

Memories are counted exactly (every RAM and ROM of every engine and FIFO, with its depth
and width) and mapped to the device's block RAM configurations the way Yosys does for
deep memories; shallow or small ones (≤ ``SHALLOW`` words or ≤ ``SMALL_BITS`` bits)
become flip-flops or LUT RAM, which the logic
model below already counts (it was fitted on whole engines). Logic is a linear
model per engine, ``a + P·(b·V + c·C)`` LUTs (V: membrane bits, C: input-current bits of
a GN input stage), fitted to Yosys ``synth_ice40`` / ``synth_ecp5`` of the bundled
engines at P ∈ {1, 4, 16} (``benchmarks/engines.py synth``); it is within about ±40 % of
those, which is why the fit check leaves a margin and synthesis has the last word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..qnet import QNet
from .network import DEFAULT_FIFO_DEPTH
from .plan import EnginePlan

SHALLOW = 4  # memories this shallow are built from flip-flops
SMALL_BITS = 512  # ... and so are memories this small
# family → (LUT base, per lane·membrane bit, per lane·current bit), same for flip-flops
# (iCE40: logic cells, which also hold the carry chains: the LUT fit × 1.4, the ratio
# measured on the whole digits MLP network after place and route.) The deeper engine
# pipeline (8 stages, one-hot forwarding) costs more: the fits are scaled by what it
# placed on the iCEBreaker (×1.28 logic cells) and the ULX3S-85F (×1.16 LUTs, ×1.8
# flip-flops) for the digits MLP board design with one lane.
_SCALE = {"ice40": (1.28, 1.8), "ecp5": (1.16, 1.8)}
LUT_MODEL = {f: tuple(v * _SCALE[f][0] for v in c)
             for f, c in {"ice40": (450.0, 18.3, 13.2), "ecp5": (620.0, 9.7, 6.1)}.items()}
FF_MODEL = {f: tuple(v * _SCALE[f][1] for v in c)
            for f, c in {"ice40": (125.0, 6.5, 9.9), "ecp5": (195.0, 4.5, 3.7)}.items()}
MAC_LUTS, MAC_FFS = 120, 90  # the input stage's counters, list and pass control
LINK_LUTS = 750  # UART link, frame parser, CRC, counters (iCE40 synthesis: ~620 + carries)
LINK_FFS = 310


@dataclass
class MemoryUse:
    owner: str
    name: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


@dataclass
class Estimate:
    family: str
    luts: int
    ffs: int
    bram_blocks: int
    memories: list[MemoryUse] = field(default_factory=list)
    per_engine: dict[str, dict] = field(default_factory=dict)
    spram_blocks: int = 0
    dsps: int = 0

    def to_json(self) -> dict:
        return {"family": self.family, "luts": self.luts, "ffs": self.ffs,
                "bram_blocks": self.bram_blocks, "spram_blocks": self.spram_blocks,
                "dsps": self.dsps,
                "per_engine": self.per_engine,
                "memory_bits": sum(m.bits for m in self.memories)}


def blocks_for(depth: int, width: int, modes) -> int:
    """Block RAMs for a ``depth`` × ``width`` memory: the cheapest configuration."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in modes)


def memories(net: QNet, plans: dict[str, EnginePlan],
             fifo_depth: int = DEFAULT_FIFO_DEPTH,
             queue_depth: int | None = None) -> list[MemoryUse]:
    """Every RAM/ROM and FIFO buffer of the network's engines (``plans`` by population)."""
    from .events import EventLayout
    from .network import _reader_depths
    out = []
    for name, plan in plans.items():
        P, A = plan.lanes, plan.addresses
        banks = 2 if plan.pop.kind == "ilif" else 1
        out.append(MemoryUse(name, "membranes", banks * A, P * plan.vbits))
        out.append(MemoryUse(name, "biases", A, P * plan.bbits))
        if plan.has_current:
            out.append(MemoryUse(name, "input current", A, P * plan.cbits))
        for k, proj in enumerate(plan.projections):
            out.append(MemoryUse(name, weights_name(k, proj.proj.source),
                                 max(1, len(proj.init)),
                                 plan.word_lanes(k) * proj.proj.weight_bits))
        if plan.mac_lanes:
            n = plan.input_size
            out.append(MemoryUse(name, "non-zero pixels", n, max(1, n - 1).bit_length() + 8))
        if plan.pop.kind == "readout":
            qw = P * plan.vbits + max(1, A).bit_length()
        else:
            qw = P * plan.out_count.bit_length() + 3 * 8 + 1
        out.append(MemoryUse(name, "output queue", queue_depth or plan.queue_depth, qw))
    # Event FIFOs (the pixels go straight to the input stage, without one).
    for source, consumer, depth in _reader_depths(net, plans, fifo_depth):
        layout = EventLayout(tuple(net.population(source).shape), plans[source].out_count)
        out.append(MemoryUse(consumer, f"FIFO from {source}", depth, layout.size))
    return out


def weights_name(k: int, source: str) -> str:
    return f"weights {k} ({source})"


def estimate(net: QNet, lanes: dict[str, int], device, *, link: bool = True,
             loadable=(), input_lanes: int = 0, queue_depth: int | None = None) -> Estimate:
    """LUTs, flip-flops, block RAMs and DSPs of the network (and its host link) on
    ``device`` (a ``hwsnn.boards.Device``); the weights of ``loadable`` ((population,
    projection) pairs) in SPRAM tiles instead of block RAM; ``input_lanes``: the
    multiply-accumulate input stages (``hdl.inputmac``)."""
    from .plan import store_specs
    from .store import store_tiles
    fam = device.family
    a, b, c = LUT_MODEL[fam]
    fa, fb, fc = FF_MODEL[fam]
    luts = LINK_LUTS if link else 0
    ffs = LINK_FFS if link else 0
    per = {}
    plans = {p.name: EnginePlan(net, p.name, lanes[p.name], input_lanes)
             for p in net.populations}
    dsps = 0
    for name, plan in plans.items():
        cur = plan.cbits if plan.has_current else 0
        e_l = a + plan.lanes * (b * plan.vbits + c * cur)
        e_f = fa + plan.lanes * (fb * plan.vbits + fc * cur)
        per[name] = {"lanes": plan.lanes, "luts": round(e_l), "ffs": round(e_f)}
        if plan.mac_lanes:
            # M multipliers (DSP blocks); per lane an accumulator, a hand-over register
            # and its share of the weight and bias registers; about 120 for control.
            M = plan.mac_lanes
            wbits = plan.input_projection.proj.weight_bits
            m_l = MAC_LUTS + M * (2 * plan.cbits + wbits)
            m_f = MAC_FFS + M * (2 * plan.cbits + wbits + plan.bbits)
            e_l, e_f = e_l + m_l, e_f + m_f
            per[name].update(input_lanes=M, dsps=M, luts=round(e_l), ffs=round(e_f))
            dsps += M
        luts += e_l
        ffs += e_f
    mems = memories(net, plans, queue_depth=queue_depth)
    if link:
        mems.append(MemoryUse("link", "pixel buffer", math.prod(net.input.shape), 8))
    in_spram = {(s.population, weights_name(s.projection, s.source))
                for s in store_specs(net, lanes, loadable, input_lanes)}
    blocks = spram = 0
    for m in mems:
        if (m.owner, m.name) in in_spram:
            n = store_tiles(m.depth, m.width)
            spram += n
            per.setdefault(m.owner, {}).setdefault("spram_blocks", 0)
            per[m.owner]["spram_blocks"] += n
            continue
        if m.depth <= SHALLOW or m.bits <= SMALL_BITS:
            continue
        n = blocks_for(m.depth, m.width, device.bram_modes)
        blocks += n
        per.setdefault(m.owner, {}).setdefault("bram_blocks", 0)
        per[m.owner]["bram_blocks"] += n
    return Estimate(fam, round(luts), round(ffs), blocks, mems, per, spram, dsps)
