"""Resource estimate of a network before synthesis, for the fit check of ``hwsnn build``.

Memories are counted exactly (every RAM and ROM of every engine, FIFO and the host link,
with its depth and width) and mapped to the device's block RAM configurations the way
Yosys's ``memory_libmap`` chooses: on iCE40, which has no LUT RAM, a block costs as much
as 64 bits of RAM in logic or 1024 bits of ROM, so every RAM above 64 bits per block
takes block RAMs (the 16-entry FIFOs too) while ROMs up to 1024 bits per block become
logic; on ECP5, shallow or small memories (≤ ``SHALLOW`` words or ≤ ``SMALL_BITS`` bits)
become flip-flops or LUT RAM. The logic models below already count memories in logic.

Logic on iCE40 is counted in logic cells (a LUT4 and a flip-flop each, which is what
fills a UP5K): ``ICE40_CELLS`` is a linear model fitted to 21 synthesized board tops
(network and host link; the digits MLP, CNN and MNIST-shaped MLP with IF, GN τ = 2 and 4
and ILIF, 1 to 4 lanes, 4- to 8-bit weights, with and without the multiply-accumulate
input stage and SPRAM stores), each taken as LUT4s + 0.6 × flip-flops, which is within
2 % of what nextpnr packed on six of them. Left out in turn, each of the 21 is predicted
within 6 % (3 % rms). On ECP5 the LUT4 model is
``a + P·(b·V + c·C)`` per engine (V: membrane bits, C: input-current bits of a GN input
stage), fitted to Yosys ``synth_ecp5`` of the bundled engines, within about ±40 %: the
ECP5 boards are large, and the fit check keeps a 10 % margin there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..qnet import QNet
from .network import DEFAULT_FIFO_DEPTH
from .plan import EnginePlan

SHALLOW = 4  # memories this shallow are built from flip-flops
SMALL_BITS = 512  # ... and so are memories this small
# iCE40 (Yosys memory_libmap): a 4 kbit block costs 64; a bit of RAM in logic 1, of ROM 1/16.
ICE40_BLOCK_COST, ICE40_RAM_BIT_COST, ICE40_ROM_BIT_COST = 64, 1.0, 1 / 16
# iCE40 logic cells: the host link, the network's buffers and clocking ("base"), each
# run-time weight store, and per engine a constant, per lane and membrane bit, per lane
# and input-current bit, per lane and membrane bit of each group member beyond the
# first (GN comparators), a spatial population's addressing, and per input-stage
# multiplier lane and current bit.
ICE40_CELLS = {"base": 1544, "store": 140, "engine": 345, "lane_membrane_bit": 16.2,
               "lane_current_bit": 12.8, "lane_member_bit": 3.8, "spatial": 165,
               "mac_lane_current_bit": 2.4}
# ECP5 LUT4s: family → (base, per lane·membrane bit, per lane·current bit), the same for
# flip-flops (both families), scaled by what the deeper engine pipeline placed on the
# iCEBreaker (×1.28) and the ULX3S-85F (×1.16 LUTs, ×1.8 flip-flops) for the digits MLP.
_SCALE = {"ice40": (1.28, 1.8), "ecp5": (1.16, 1.8)}
ECP5_LUTS = tuple(v * _SCALE["ecp5"][0] for v in (620.0, 9.7, 6.1))
FF_MODEL = {f: tuple(v * _SCALE[f][1] for v in c)
            for f, c in {"ice40": (125.0, 6.5, 9.9), "ecp5": (195.0, 4.5, 3.7)}.items()}
MAC_LUTS, MAC_FFS = 120, 90  # the input stage's counters, list and pass control
LINK_LUTS = 750  # ECP5: UART link, frame parser, CRC, counters
LINK_FFS = 310


@dataclass
class MemoryUse:
    owner: str
    name: str
    depth: int
    width: int
    rom: bool = False  # initialised and never written (weights, biases)

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
    from .engine import queue_layout
    from .events import EventLayout
    from .network import _reader_depths
    out = []
    for name, plan in plans.items():
        P, A = plan.lanes, plan.addresses
        banks = 2 if plan.pop.kind == "ilif" else 1
        out.append(MemoryUse(name, "membranes", banks * A, P * plan.vbits))
        out.append(MemoryUse(name, "biases", len(plan.bias_rom_words), P * plan.bbits,
                             rom=True))
        if plan.has_current:
            out.append(MemoryUse(name, "input current", A, P * plan.cbits))
        for k, proj in enumerate(plan.projections):
            out.append(MemoryUse(name, weights_name(k, proj.proj.source),
                                 max(1, len(proj.init)),
                                 plan.word_lanes(k) * proj.proj.weight_bits, rom=True))
        if plan.mac_lanes:
            n = plan.input_size
            out.append(MemoryUse(name, "non-zero pixels", n, max(1, n - 1).bit_length() + 8))
        out.append(MemoryUse(name, "output queue", queue_depth or plan.queue_depth,
                             queue_layout(plan).size))
    # Event FIFOs (the pixels go straight to the input stage, without one).
    for source, consumer, depth in _reader_depths(net, plans, fifo_depth):
        layout = EventLayout(tuple(net.population(source).shape), plans[source].out_count)
        out.append(MemoryUse(consumer, f"FIFO from {source}", depth, layout.size))
    return out


def blocks_used(m: MemoryUse, device) -> int:
    """Block RAMs Yosys spends on ``m`` on ``device`` (0: it becomes logic)."""
    n = blocks_for(m.depth, m.width, device.bram_modes)
    if device.family == "ice40":
        in_logic = m.bits * (ICE40_ROM_BIT_COST if m.rom else ICE40_RAM_BIT_COST)
        return n if ICE40_BLOCK_COST * n < in_logic else 0
    return 0 if m.depth <= SHALLOW or m.bits <= SMALL_BITS else n


def weights_name(k: int, source: str) -> str:
    return f"weights {k} ({source})"


def engine_logic(plan: EnginePlan, family: str) -> tuple[float, float]:
    """(LUTs, on iCE40 logic cells; flip-flops) of one engine."""
    P = plan.lanes
    cur = plan.cbits if plan.has_current else 0
    fa, fb, fc = FF_MODEL[family]
    ffs = fa + P * (fb * plan.vbits + fc * cur)
    if family == "ice40":
        k = ICE40_CELLS
        members = plan.pop.group_size - 1 if plan.kind == "gn" else 0
        luts = (k["engine"] + P * (k["lane_membrane_bit"] * plan.vbits
                                   + k["lane_current_bit"] * cur
                                   + k["lane_member_bit"] * members * plan.vbits)
                + k["spatial"] * plan.spatial
                + k["mac_lane_current_bit"] * plan.mac_lanes * cur)
    else:
        a, b, c = ECP5_LUTS
        luts = a + P * (b * plan.vbits + c * cur)
    if plan.mac_lanes:
        # M multipliers (DSP blocks); per lane an accumulator, a hand-over register and
        # its share of the weight and bias registers; about 120 LUTs for control.
        M, wbits = plan.mac_lanes, plan.input_projection.proj.weight_bits
        ffs += MAC_FFS + M * (2 * plan.cbits + wbits + plan.bbits)
        if family != "ice40":
            luts += MAC_LUTS + M * (2 * plan.cbits + wbits)
    return luts, ffs


def estimate(net: QNet, lanes: dict[str, int], device, *, loadable=(), input_lanes: int = 0,
             queue_depth: int | None = None) -> Estimate:
    """LUTs (on iCE40: logic cells), flip-flops, block RAMs and DSPs of the network and its
    host link on ``device`` (a ``hwsnn.boards.Device``); the weights of ``loadable``
    ((population, projection) pairs) in SPRAM tiles instead of block RAM;
    ``input_lanes``: the multiply-accumulate input stages (``hdl.inputmac``)."""
    from .plan import store_specs
    from .store import store_tiles
    fam = device.family
    stores = store_specs(net, lanes, loadable, input_lanes)
    if fam == "ice40":
        luts = ICE40_CELLS["base"] + ICE40_CELLS["store"] * len(stores)
    else:
        luts = LINK_LUTS
    ffs = LINK_FFS
    per = {}
    plans = {p.name: EnginePlan(net, p.name, lanes[p.name], input_lanes)
             for p in net.populations}
    dsps = 0
    for name, plan in plans.items():
        e_l, e_f = engine_logic(plan, fam)
        per[name] = {"lanes": plan.lanes, "luts": round(e_l), "ffs": round(e_f)}
        if plan.mac_lanes:
            per[name].update(input_lanes=plan.mac_lanes, dsps=plan.mac_lanes)
            dsps += plan.mac_lanes
        luts += e_l
        ffs += e_f
    mems = memories(net, plans, queue_depth=queue_depth)
    mems.append(MemoryUse("link", "pixel buffer", math.prod(net.input.shape), 8))
    mems.append(MemoryUse("link", "readout values", net.output.size,
                          plans[net.output.name].vbits))
    in_spram = {(s.population, weights_name(s.projection, s.source)) for s in stores}
    blocks = spram = 0
    for m in mems:
        if (m.owner, m.name) in in_spram:
            n = store_tiles(m.depth, m.width)
            spram += n
            per.setdefault(m.owner, {}).setdefault("spram_blocks", 0)
            per[m.owner]["spram_blocks"] += n
            continue
        n = blocks_used(m, device)
        if not n:
            continue
        blocks += n
        per.setdefault(m.owner, {}).setdefault("bram_blocks", 0)
        per[m.owner]["bram_blocks"] += n
    return Estimate(fam, round(luts), round(ffs), blocks, mems, per, spram, dsps)
