"""Resource estimate of a network before synthesis, for the fit check of ``hwsnn build``.

Memories are counted exactly: every RAM and ROM of every engine, FIFO and the host link,
at the size Yosys sees (a FIFO's RAM one entry shallower than the FIFO, a memory without
its constant bit columns: the weights and biases of the lanes beyond a population's
channels, the position fields of a vector population's queue), and each is mapped the way
Yosys's ``memory_libmap`` maps it (``hdl.memmap``): to block RAMs, LUT RAM or soft logic.

Flip-flops are counted from the same widths: those each memory's mapping adds (a read
register, or around a block RAM the write delayed by a cycle and forwarded), every
engine's per-lane pipeline registers (``lane_registers``) and control
(``control_registers``), its queue and skid buffers, the multiply-accumulate input
stage, less what Yosys merges (the registers that equal columns of a ROM in logic feed,
the low bits of GN's member differences), and a constant for the host link. On the
eleven designs of ``benchmarks/estimate_accuracy.py`` (fifteen syntheses for ECP5 and
iCE40, the ``hwsnn bench`` designs among them) the block RAMs are exact and the
flip-flops within 5 %.

Logic on iCE40 is counted in logic cells (a LUT4 and a flip-flop each, which is what
fills a UP5K): ``ICE40_CELLS`` is a linear model fitted to 21 synthesized board tops
(network and host link; the digits MLP, CNN and MNIST-shaped MLP with IF, GN τ = 2 and 4
and ILIF, 1 to 4 lanes, 4- to 8-bit weights, with and without the multiply-accumulate
input stage and SPRAM stores), each taken as LUT4s + 0.6 × flip-flops, which is within
2 % of what nextpnr packed on six of them. Left out in turn, each of the 21 is predicted
within 6 % (3 % rms). On ECP5 logic is counted in LUT4s, ``a + P·(b·V + c·C)`` per engine
(V: membrane bits, C: input-current bits of a GN input stage), fitted to Yosys
``synth_ecp5`` of the bundled engines, within about ±40 %: the ECP5 boards are large,
and the fit check keeps a 10 % margin there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..boards import LOGIC_KINDS
from ..snn.qnet import PIXEL_BITS, QNet
from .events import EventLayout, ReadoutLayout, bits_for
from .memmap import libmap
from .neuron import stats_layout
from .plan import DEFAULT_FIFO_DEPTH, EnginePlan, NetworkPlan, reader_depths

# iCE40 logic cells: the host link, the network's buffers and clocking ("base"), each
# run-time weight store, and per engine a constant, per lane and membrane bit, per lane
# and input-current bit, per lane and membrane bit of each group member beyond the
# first (GN comparators), a spatial population's addressing, and per input-stage
# multiplier lane and current bit.
ICE40_CELLS = {"base": 1544, "store": 140, "engine": 345, "lane_membrane_bit": 16.2,
               "lane_current_bit": 12.8, "lane_member_bit": 3.8, "spatial": 165,
               "mac_lane_current_bit": 2.4}
# ECP5 LUT4s: base, per lane·membrane bit, per lane·current bit (scaled by what the deeper
# engine pipeline placed on the ULX3S-85F, ×1.16, for the digits MLP).
ECP5_LUTS = tuple(v * 1.16 for v in (620.0, 9.7, 6.1))
# cos (GN engines), per lane and membrane bit: V0's two candidates and the statistics'
# minimum and maximum (subtractors and comparators), the choices, and the forwarding
# Yosys adds to the statistics' block RAM. Fitted to the placed digits MLP on the UP5K
# (P = 1: 29 logic cells) and CNN on the ECP5-85F (P = 16: 22 LUT4s per lane·bit).
COS_LANE_BIT = {"ice40": 29.0, "ecp5": 22.0}
MAC_LUTS = 120  # ECP5: the input stage's counters, list and pass control
LINK_LUTS = 750  # ECP5: UART link, frame parser, CRC, counters

# The host link's flip-flops besides its RAMs': UART, frame parser, CRC, counters, the
# network's cycle counter (what Yosys keeps of them in the digits MLP's board top).
LINK_FFS = 360
MAC_FFS = 90


@dataclass
class MemoryUse:
    owner: str
    name: str
    depth: int
    width: int  # the bits Yosys keeps (constant columns of a ROM are removed)
    rom: bool = False  # initialised and never written (weights, biases)
    distinct: int = 0  # a ROM's different columns (registers of equal ones are merged)
    collisions: str = "old"  # a read that meets a write (``hdl.ram``): old, undefined

    @property
    def bits(self) -> int:
        return self.depth * self.width


@dataclass
class Estimate:
    family: str
    logic: int  # iCE40: logic cells; ECP5: LUT4s (``logic_kind``)
    ffs: int
    bram_blocks: int
    memories: list[MemoryUse] = field(default_factory=list)
    per_engine: dict[str, dict] = field(default_factory=dict)
    spram_blocks: int = 0
    dsps: int = 0

    @property
    def logic_kind(self) -> str:
        """What ``logic`` counts: ``logic_cells`` on iCE40, ``luts`` on ECP5."""
        return LOGIC_KINDS[self.family]

    def to_json(self) -> dict:
        return {"family": self.family, self.logic_kind: self.logic, "ffs": self.ffs,
                "bram_blocks": self.bram_blocks, "spram_blocks": self.spram_blocks,
                "dsps": self.dsps,
                "per_engine": self.per_engine,
                "memory_bits": sum(m.bits for m in self.memories)}


def blocks_for(depth: int, width: int, modes) -> int:
    """Block RAMs for a ``depth`` × ``width`` memory: the cheapest configuration."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in modes)


@dataclass(frozen=True)
class RomColumns:
    """The bit columns of a ROM: ``live`` ones are not constant (Yosys removes the
    others), ``distinct`` of them differ from each other (registers that a ROM built in
    logic feeds with equal columns are merged into one), ``lanes`` have a live one."""

    live: int
    distinct: int
    lanes: int


def rom_columns(words, bits: int) -> RomColumns:
    """The columns of a memory initialised with ``words`` (lists of two's complement lane
    values of ``bits`` bits) and never written."""
    a = np.asarray(words, dtype=np.int64)
    if a.size == 0:
        return RomColumns(0, 0, 0)
    a = a.reshape(len(words), -1) & ((1 << bits) - 1)
    varies = np.bitwise_or.reduce(a, axis=0) ^ np.bitwise_and.reduce(a, axis=0)
    columns = [(a[:, lane] >> b) & 1 for lane, v in enumerate(varies) for b in range(bits)
               if int(v) >> b & 1]
    distinct = len({np.packbits(c.astype(np.uint8)).tobytes() for c in columns})
    return RomColumns(len(columns), distinct, sum(1 for v in varies if v))


def _rom_registers(cols: RomColumns, depth: int, family: str) -> int:
    """Flip-flops that hold one read of a ROM: its distinct columns when Yosys builds it
    in logic, else all of its live ones."""
    in_logic = cols.live and libmap(depth, cols.live, True, family).primitive is None
    return cols.distinct if in_logic else cols.live


def queue_width(plan: EnginePlan) -> int:
    """Bits of an output queue entry (``engine.queue_layout``) that are not constant: a
    position field that counts to one is."""
    from .engine import queue_layout
    size = {"g": plan.groups, "y": plan.height, "x": plan.width, "addr": plan.addresses}
    return sum(f.width for name, f in queue_layout(plan) if size.get(name, 2) > 1)


def memories(net: QNet, plans: dict[str, EnginePlan],
             fifo_depth: int = DEFAULT_FIFO_DEPTH,
             queue_depth: int | None = None, readers=None) -> list[MemoryUse]:
    """Every RAM/ROM and FIFO buffer of the network's engines (``plans`` by population),
    as Yosys keeps them (weights loaded at run time have no constant columns: see
    ``estimate``); ``readers``: the event FIFOs (``NetworkPlan.readers``; by default
    ``reader_depths`` of ``plans`` and ``fifo_depth``)."""
    out = []
    for name, plan in plans.items():
        P, A = plan.lanes, plan.addresses
        banks = 2 if plan.pop.kind == "ilif" else 1
        out.append(MemoryUse(name, "membranes", banks * A, P * plan.vbits,
                             collisions="undefined"))
        cols = rom_columns(plan.bias_rom_words, plan.bbits)
        out.append(MemoryUse(name, "biases", len(plan.bias_rom_words), cols.live, rom=True,
                             distinct=cols.distinct))
        if plan.has_current:
            out.append(MemoryUse(name, "input current", A, P * plan.cbits,
                                 collisions=plan.current_collisions))
        if plan.keeps_statistics:
            out.append(MemoryUse(name, "cos statistics", A, P * stats_layout(plan).size))
        for k, proj in enumerate(plan.projections):
            cols = rom_columns(proj.init, proj.proj.weight_bits)
            out.append(MemoryUse(name, weights_name(k, proj.proj.source),
                                 max(1, len(proj.init)), cols.live, rom=True,
                                 distinct=cols.distinct))
        if plan.mac_lanes:
            n = plan.input_size
            out.append(MemoryUse(name, "non-zero pixels", n,
                                 max(1, n - 1).bit_length() + PIXEL_BITS))
        # (SyncFIFOBuffered: a RAM one entry shallower, then a register)
        out.append(MemoryUse(name, "output queue", (queue_depth or plan.queue_depth) - 1,
                             queue_width(plan)))
    # Event FIFOs deeper than a skid buffer (the pixels go straight to the input stage).
    if readers is None:
        readers = reader_depths(net, plans, fifo_depth)
    for source, consumer, depth in readers:
        if depth > 2:
            out.append(MemoryUse(consumer, f"FIFO from {source}", depth - 1,
                                 _event_width(net, plans, source)))
    return out


def _event_width(net: QNet, plans, source: str) -> int:
    return EventLayout(tuple(net.population(source).shape), plans[source].out_count).size


def weights_name(k: int, source: str) -> str:
    return f"weights {k} ({source})"


def lane_registers(plan: EnginePlan, family: str, stored=()) -> int:
    """Flip-flops of the engine's per-lane pipeline registers (``hdl.engine``), all lanes:
    the weights read and their terms (for the lanes whose weights are not all constant;
    those of the projections ``stored`` are loaded at run time), the addend, the
    membrane, bias and current read, the sum and its copy, the results written back and
    forwarded, GN's member differences (less the low bits that equal the sum's, which
    Yosys merges), the queued group."""
    P, V = plan.lanes, plan.vbits
    total = 0
    for k, pp in enumerate(plan.projections):
        if plan.mac_lanes and pp.is_input:
            continue
        wbits = pp.proj.weight_bits
        if k in stored:
            width, lanes = plan.word_lanes(k) * wbits, plan.word_lanes(k)
        else:
            cols = rom_columns(pp.init, wbits)
            width, lanes = _rom_registers(cols, max(1, len(pp.init)), family), cols.lanes
        if pp.max_count > 1:
            cb = bits_for(pp.max_count)
            term = sum(wbits + min(j + 1, cb - 1) + 2 for j in range(0, cb, 2))
            addend = wbits + cb + 1
        else:
            shift = PIXEL_BITS - 1 if pp.is_input else (plan.steps_in - 1 if plan.ilif else 0)
            term = addend = wbits + shift
        total += width + lanes * term + lanes * addend
    bias = _rom_registers(rom_columns(plan.bias_rom_words, plan.bbits),
                          len(plan.bias_rom_words), family)
    total += P * V + bias  # membrane and bias read
    opw = max(V, plan.cbits) + 1
    total += P * (2 * opw + 3 * V)  # sum, neuron-rule copy, written back ×3
    if plan.has_current and not plan.mac_lanes:
        total += P * 4 * plan.cbits + 2 * bias  # current read, written back ×3; bias ×2
    elif plan.has_current:
        total += P * 4 * plan.cbits
    if plan.kind == "gn":
        theta = plan.pop.threshold
        for i in range(1, plan.pop.group_size + 1):
            low = ((i * theta) & -(i * theta)).bit_length() - 1  # V − iΘ ends like V
            total += P * (V + 2 - min(low, V + 2))
    if plan.keeps_statistics:
        # cos: the statistics read and the sum's two tests (stage 5), the statistics and
        # V after the spikes in WRITE
        total += P * (5 * V + 7)
    total += queue_width(plan) + P  # the group queued, lanes sent
    return total


def _signed_bits(values) -> int:
    lo, hi = min([*values, 0]), max([*values, 0])
    return max(lo.bit_length(), hi.bit_length()) + 1


def control_registers(plan: EnginePlan, queue_depth: int) -> int:
    """Flip-flops of the engine's control (``hdl.engine``), counted from the widths: the
    operation passed down the pipeline (its address to the write back, its flags, count
    and shift to the weight term), each event expander's addresses and counters, the
    sweep, step and plane counters, the queue's credit, the forwarding selects, the
    position counter of the queued groups, the pixel counters of an input stage and the
    readout's argmax."""
    A, G = plan.addresses, plan.groups
    dual = plan.pop.kind == "ilif"
    abits = bits_for(A - 1)
    rom_bits = bits_for(max(max(1, len(p.init)) for p in plan.projections) - 1)
    counts = [p.max_count for p in plan.projections if not (plan.mac_lanes and p.is_input)]
    count_bits = bits_for(max(counts)) if counts and max(counts) > 1 else 0
    shifts = [PIXEL_BITS - 1 if p.is_input else (plan.steps_in - 1 if plan.ilif else 0)
              for p in plan.projections if not (plan.mac_lanes and p.is_input)]
    shift_bits = bits_for(max(shifts)) if shifts and max(shifts) else 0
    # The operation in stages 0-7 (address, bank, valid, kind, end; the current flag, the
    # last step of GN), in 0-2 (count, shift), 0-3 (projection), 0-6 (ILIF's fire step),
    # 0-2 (a sweep's lane group), 0 (weight address).
    ffs = 8 * (abits + dual + 3 + plan.has_current + (plan.kind == "gn"))
    ffs += 3 * (count_bits + shift_bits) + rom_bits
    ffs += 4 * (len(plan.projections) > 1) * bits_for(len(plan.projections) - 1)
    if dual and plan.bits_out > 1:
        ffs += 7 * bits_for(plan.bits_out - 1)
    if plan.bias_per_group and G > 1:
        ffs += 3 * bits_for(G - 1) + bits_for(G - 1)  # and its counter
    # Expanders: the membrane and weight addresses, count, shift, lane group, flags; a
    # convolution's row and column counters and address steps.
    for p in plan.projections:
        if plan.mac_lanes and p.is_input:
            continue
        ffs += abits + rom_bits + count_bits + shift_bits + bits_for(G - 1) + 3
        if p.kind == "conv":
            k, s, G = p.proj.kernel, p.proj.stride, plan.groups
            xr = plan.conv_ranges(p, 2)
            ffs += 2 * bits_for(plan.width + 1) + bits_for(plan.height + 1) + 2
            ffs += _signed_bits([(plan.width - n) * G + 1 for _, n in xr])
            ffs += _signed_bits([(s * (n - 1) - s * k) * G - (G - 1) for _, n in xr])
    # Sweep address, step, plane and fire-step counters, bank flags, the queue's credit,
    # idle cycles, forwarding hits and operand selects.
    ffs += abits + 1 + bits_for(plan.steps) + bits_for(plan.steps_in) * plan.ilif
    ffs += (bits_for(plan.bits_out) + 4) * dual + bits_for(queue_depth + 2) + 3
    ffs += (5 + 8) * (1 + plan.has_current)  # (the current's hits and sources)
    # Position of the queued groups (stage 7).
    ffs += sum(bits_for(n - 1) for n in (G, plan.width, plan.height) if n > 1)
    if plan.input_projection is not None and not plan.mac_lanes:
        n = plan.input_size
        shape = plan.net.input.shape
        pos = sum(bits_for(d - 1) for d in shape) if len(shape) == 3 else bits_for(n - 1)
        ffs += bits_for(n) + PIXEL_BITS + 3 + 2 * pos
    if plan.pop.kind == "readout":
        ffs += 3 + plan.vbits + bits_for(plan.pop.size - 1)
    return ffs


def _queue_registers(width: int, depth: int) -> int:
    """A RegisteredFIFO besides its RAM: its counters, the held entry and a skid buffer."""
    return 3 * width + 3 * bits_for(depth) + 4


def engine_flip_flops(plan: EnginePlan, family: str, queue_depth: int | None = None,
                      stored=()) -> float:
    """Flip-flops of an engine besides its memories' on an FPGA ``family`` (``stored``:
    the projections whose weights are loaded at run time)."""
    depth = queue_depth or plan.queue_depth
    ffs = control_registers(plan, depth) + lane_registers(plan, family, stored)
    ffs += _queue_registers(queue_width(plan), depth)
    if plan.input_projection is not None:
        ffs += 2 * PIXEL_BITS + 2  # the pixels' skid buffer
    if plan.mac_lanes:
        # Weights registered twice, products, accumulators and their hand-over copies,
        # the currents written, and the control.
        M, wbits = plan.mac_lanes, plan.input_projection.proj.weight_bits
        ffs += MAC_FFS + M * (3 * wbits + 9 + 2 * plan.cbits) + plan.lanes * plan.cbits
    return ffs


def engine_logic(plan: EnginePlan, family: str) -> float:
    """LUT4s (on iCE40: logic cells) of one engine."""
    P = plan.lanes
    cur = plan.cbits if plan.has_current else 0
    if family == "ice40":
        k = ICE40_CELLS
        members = plan.pop.group_size - 1 if plan.kind == "gn" else 0
        cos = COS_LANE_BIT[family] * plan.vbits if plan.keeps_statistics else 0
        return (k["engine"] + P * (k["lane_membrane_bit"] * plan.vbits + cos
                                   + k["lane_current_bit"] * cur
                                   + k["lane_member_bit"] * members * plan.vbits)
                + k["spatial"] * plan.spatial
                + k["mac_lane_current_bit"] * plan.mac_lanes * cur)
    a, b, c = ECP5_LUTS
    luts = a + P * (b * plan.vbits + c * cur)
    if plan.keeps_statistics:
        luts += P * COS_LANE_BIT[family] * plan.vbits
    if plan.mac_lanes:
        # M multipliers (DSP blocks); per lane an accumulator and its hand-over register,
        # and the weight registers; about 120 LUTs for control.
        M, wbits = plan.mac_lanes, plan.input_projection.proj.weight_bits
        luts += MAC_LUTS + M * (2 * plan.cbits + wbits)
    return luts


def estimate(plan: NetworkPlan, device) -> Estimate:
    """Logic (iCE40 logic cells, ECP5 LUT4s), flip-flops, block RAMs and DSPs of the
    network of ``plan`` (a ``NetworkPlan``: its lanes, input stages, queues) and its host
    link on ``device`` (a ``hwsnn.boards.Device``); the weights of the plan's stores in
    SPRAM tiles instead of block RAM."""
    from .store import store_tiles
    if not isinstance(plan, NetworkPlan):
        raise TypeError(f"estimate takes a hwsnn.hdl.plan.NetworkPlan, not "
                        f"{type(plan).__name__}")
    net, queue_depth, readers = plan.net, plan.queue_depth, plan.readers
    fam = device.family
    stores = plan.stores
    if fam == "ice40":
        logic = ICE40_CELLS["base"] + ICE40_CELLS["store"] * len(stores)
    else:
        logic = LINK_LUTS
    plans = plan.engines
    # The host link and the skid buffers between engines and after the readout.
    ffs = LINK_FFS + sum(2 * _event_width(net, plans, p.name) + 2
                         for p in net.populations[:-1])
    out = plans[net.output.name]
    ffs += 2 * ReadoutLayout(out.pop.size, out.vbits).size + 2
    per = {}
    dsps = 0
    for name, plan in plans.items():
        stored = {s.projection for s in stores if s.population == name}
        e_l = engine_logic(plan, fam)
        e_f = engine_flip_flops(plan, fam, queue_depth, stored)
        per[name] = {"lanes": plan.lanes, LOGIC_KINDS[fam]: round(e_l), "ffs": round(e_f)}
        if plan.mac_lanes:
            per[name].update(input_lanes=plan.mac_lanes, dsps=plan.mac_lanes)
            dsps += plan.mac_lanes
        logic += e_l
        ffs += e_f
    mems = memories(net, plans, queue_depth=queue_depth, readers=readers)
    mems.append(MemoryUse("link", "pixel banks (2)", 2 * math.prod(net.input.shape),
                          PIXEL_BITS))
    mems.append(MemoryUse("link", "readout values", net.output.size,
                          plans[net.output.name].vbits, collisions="undefined"))
    in_spram = {(s.population, weights_name(s.projection, s.source)) for s in stores}
    spram = 0
    for s in stores:
        n = store_tiles(s.depth, s.width)
        spram += n
        entry = per[s.population]
        entry["spram_blocks"] = entry.get("spram_blocks", 0) + n
    blocks = 0
    for m in mems:
        entry = per.setdefault(m.owner, {})
        if (m.owner, m.name) in in_spram or not m.width:  # (no width: all constant)
            continue
        mapped = libmap(m.depth, m.width, m.rom, fam, m.collisions)
        # (a ROM in logic: the read register of each distinct column)
        held = m.distinct if m.rom and mapped.primitive is None else mapped.flip_flops
        ffs += held
        entry["ffs"] = entry.get("ffs", 0) + held
        if mapped.block:
            blocks += mapped.count
            entry["bram_blocks"] = entry.get("bram_blocks", 0) + mapped.count
    return Estimate(fam, round(logic), round(ffs), blocks, mems, per, spram, dsps)


# -- the layer-serial processor (hdl.processor) -------------------------------------------
# Logic: a constant (control, scanners, expander, readout), per lane a part per bit of the
# weight funnel (weight bits × log2 P: a field shifted by up to P fields) and per membrane
# bit (forwarding, the sum, the kept results; the term's product is a DSP block), and per
# neuron-rule unit (``SerialPlan.rule_units``) a part per bit of its τ comparisons and
# the kept value (``_rule_bits``). Rough: fitted to this RTL's designs, iCE40 logic cells
# of whole board designs as placed (the real MNIST CNN with SPRAM weights on the UP5K:
# 2 lanes and 2 rule units, 4,374 cells; 4 and 4, 4,900; 4 and 1, 4,704; the per-lane
# part then raised to the 4-and-1 design's 4,931 with the seven-stage pipeline, whose
# further registers (weight words, membrane word, a fourth forwarded value) are lane
# bits that an iCE40 spends a cell on where no LUT precedes them), ECP5 LUT4s
# of the processor as synthesized, two per carry (the small CIFAR CNN: 16 lanes and 16
# units, 11,489; 16 and 2, 9,587; 32 and 4, 16,394; the fourth point, 32 and 32, is
# 21,344, 5 % above the model). Flip-flops: per lane and weight or membrane bit. DSPs:
# the expander's products (4 on the UP5K for the MNIST CNN's 10×10 stride-2 kernels; 6
# on the ECP5 for the CIFAR CNN), and one per lane.
SERIAL_LOGIC = {"ice40": {"base": 2141.0, "lane_bit": 9.79, "rule_bit": 0.769},
                "ecp5": {"base": 4232.0, "lane_bit": 5.67, "rule_bit": 1.045}}
SERIAL_FFS = {"base": 1000.0, "lane_bit": 7.0}
SERIAL_DSPS = {"ice40": 4, "ecp5": 6}
# External memory (docs/sdram.md): the SDRAM controller (its timers, bank rows, four
# ports), the DMA streams, the link's load queue and the read-back checksum, fitted to the
# placed ResNet-20 design on the ULX3S-85F (9,839 LUT4s, its weight buffer in one-block
# slices); a weight buffer of whole words deeper than a block adds its cascade's
# multiplexers, about 0.63 LUT4 a bit for each block deeper (the placed VGG-11 design:
# 9,216 words, 18 blocks deep, 11,326).
SDRAM_LOGIC = {"ice40": 2600.0, "ecp5": 2600.0}
SDRAM_FFS = 600.0
CASCADE_LUT = 0.63


def serial_memories(plan) -> list[MemoryUse]:
    """The memories of the processor of ``plan`` (a ``hdl.serial.SerialPlan``) and of its
    host link (with the plan's ``loadable``, without the weights: they are in run-time
    stores)."""
    P, net = plan.lanes, plan.net
    vbits = plan.memories["membranes"][0] // P
    mems = []
    words = plan.memories["weights"][1] + 1
    if plan.external:  # (one buffer, written from SDRAM a tile at a time)
        depth = max(1, plan.memories["weights"][1])
        for lo, bits in plan.weight_slice_spans():
            mems.append(MemoryUse("processor", f"weight buffer (bits {lo}..{lo + bits - 1})",
                                  depth, bits, collisions="undefined"))
        ppw = plan.plane_word_sdram
        addr = max(1, (max(1, plan.plane_words_total()) - 1).bit_length())
        mems.append(MemoryUse("processor", "plane queue", 16, addr + 16 * ppw))
        for port in range(3):
            mems.append(MemoryUse("sdram", f"read buffer {port}", 16, 16))
    for bank, depth in (("even", -(-words // 2)), ("odd", max(1, words // 2))):
        if plan.loadable or plan.external:
            continue
        if not plan.weight_slices:
            mems.append(MemoryUse("processor", f"weights ({bank} words)", depth,
                                  P * plan.weight_bits, rom=True))
            continue
        for lo, bits in plan.weight_slice_spans():  # (``weight_slices``: a memory each)
            mems.append(MemoryUse("processor", f"weights ({bank} words, bits {lo}.."
                                  f"{lo + bits - 1})", depth, bits, rom=True))
    mems.append(MemoryUse("processor", "biases", max(1, plan.memories["biases"][1]),
                          P * plan.bias_bits, rom=True))
    mems.append(MemoryUse("processor", "membranes", max(1, plan.memories["membranes"][1]),
                          P * vbits, collisions="undefined"))
    # (a plane field's bits above the widest count are always zero: Yosys drops them)
    from .serial import count_bits
    live = min(plan.plane_bits, max(count_bits(p) for p in net.populations))
    if not plan.external:
        mems.append(MemoryUse("processor", "planes", max(1, plan.memories["planes"][1]),
                              P * live))
    mems.append(MemoryUse("processor", "pixels", math.prod(net.input.shape), PIXEL_BITS))
    mems.append(MemoryUse("processor", "program", plan.memories["program"][1], 32, rom=True))
    mems.append(MemoryUse("link", "pixel banks (2)", 2 * math.prod(net.input.shape),
                          PIXEL_BITS))
    mems.append(MemoryUse("link", "readout values", net.output.size, vbits,
                          collisions="undefined"))
    return mems


def _rule_bits(net, vbits: int) -> int:
    """The bits a neuron-rule unit of the processor works on: its τ differences V − iΘ
    and the kept value (GN, IF), or the clamp's comparison, the difference and the kept
    value (ILIF), each two bits wider than the membrane."""
    tau = max([p.group_size for p in net.populations if p.kind == "gn"] or [1])
    return (vbits + 2) * (3 if net.method == "ilif" else tau + 1)


def estimate_serial(plan, device) -> Estimate:
    """Logic, flip-flops, block RAMs and DSPs of the layer-serial processor of ``plan`` (a
    ``hdl.serial.SerialPlan``) and its host link on ``device``; with the plan's
    ``loadable``, the weights in run-time stores (``SerialPlan.weight_stores``: SPRAM
    tiles, and the link's LOAD path)."""
    from .store import store_tiles
    fam = device.family
    P = plan.lanes
    vbits = plan.memories["membranes"][0] // P
    # (external: a tile's rows are whole words, no funnel; the SDRAM controller and the
    # DMA streams instead)
    funnel = 0 if plan.external else plan.weight_bits * max(1, (2 * P - 1).bit_length() - 1)
    c = SERIAL_LOGIC[fam]
    logic = (c["base"] + c["lane_bit"] * P * (funnel + vbits)
             + c["rule_bit"] * plan.rule_units * _rule_bits(plan.net, vbits))
    if plan.external:
        logic += SDRAM_LOGIC[fam]
        if not plan.weight_slices and fam == "ecp5":
            width, depth = P * plan.weight_bits, max(1, plan.memories["weights"][1])
            logic += CASCADE_LUT * width * (-(-depth // 512) - 1)
    if fam == "ice40":
        logic += ICE40_CELLS["base"]  # the host link (the constant fits the bare processor)
        logic += ICE40_CELLS["store"] * len(plan.stores)
    else:
        logic += LINK_LUTS
    ffs = SERIAL_FFS["base"] + LINK_FFS + SERIAL_FFS["lane_bit"] * P * (plan.weight_bits
                                                                        + vbits)
    if plan.external:
        ffs += SDRAM_FFS
    blocks = 0
    mems = serial_memories(plan)
    spram = 0 if plan.external else sum(store_tiles(s.depth, s.width) for s in plan.stores)
    for m in mems:
        mapped = libmap(m.depth, m.width, m.rom, fam, m.collisions)
        ffs += 0 if m.rom else mapped.flip_flops
        if mapped.block:
            blocks += mapped.count
    # The expander's and scanners' products of event and configuration fields, and each
    # lane's weight term, on DSP blocks (as synthesized: the fit check refuses a plan
    # whose lanes the device has too few DSPs for).
    dsps = SERIAL_DSPS[fam] + P
    return Estimate(fam, round(logic), round(ffs), blocks, mems,
                    {"processor": {"lanes": P}}, spram, dsps)
