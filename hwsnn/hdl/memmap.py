"""Where Yosys puts a memory, worked out without Yosys: the choice of ``memory_libmap``.

For every memory Yosys 0.70's ``memory_libmap`` prices each way to build it and takes the
cheapest. Soft logic costs a point per bit of RAM and 1/16 per bit of ROM (rounded down),
and wins ties. A RAM primitive of the device's library costs its own price (a 16 × 4 LUT
RAM 4, an ECP5 block RAM 128, an iCE40 one 64) for each primitive, plus half a point per
bit of the multiplexer that joins address ranges, half a point per address range whose
write enable is decoded, and two points per unit of emulation score: 1 for a read port of
its own, 3 each for read-first and transparency emulation. A primitive has a few
configurations (depth × width); in one of width ``b`` a memory of ``mult_a`` address
ranges is laid out as ``mult_a`` words side by side, ``ceil(mult_a · width / b)``
primitives, with a write port's bits padded to the primitive's byte.

The mapping also decides flip-flops: a ROM or RAM in soft logic keeps its read data in
a register (and a RAM its words in flip-flops), so does a LUT RAM, which reads
asynchronously; and the block RAMs of these libraries cannot give a write and a read of
one address in the same cycle the old word, so Yosys delays every write by a cycle
(registering its address, data and enable) and forwards the delayed word to a read of
its address (registering the word and the match): ``abits + 2 · width + 2`` flip-flops.

Modelled here are the memories the engines, FIFOs and host link have: one synchronous,
non-transparent read port and at most one write port with one enable, in one clock
domain. A RAM read through ``hdl.ram.registered_read`` with undefined collisions needs
neither emulation nor flip-flops. ``tests/test_boards.py`` works some mappings out by hand;
``benchmarks/estimate_accuracy.py`` compares whole designs with Yosys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LOGIC_RAM_BIT, LOGIC_ROM_BIT = 1.0, 1 / 16
MUX_BIT, DEMUX_RANGE, EMULATION = 0.5, 0.5, 2
OWN_READ_PORT, READ_FIRST, TRANSPARENCY = 1, 3, 3


@dataclass(frozen=True)
class Primitive:
    """A RAM primitive as a Yosys memory library describes it: ``widths`` are its
    configurations, the narrowest ``2**abits`` words deep and each next one half as deep;
    ``byte`` the write-enable granularity (0: the whole word); ``write_width`` the only
    width of its write port (0: any); ``sync_read``: False for a LUT RAM, read
    asynchronously; ``rom``: whether Yosys may build a ROM from it."""

    name: str
    cost: int
    abits: int
    widths: tuple[int, ...]
    byte: int = 0
    write_width: int = 0
    sync_read: bool = True
    rom: bool = True
    block: bool = True  # a block RAM (counted as one); False: LUT RAM, in logic

    def depth(self, i: int) -> int:
        """Words in configuration ``i`` (``widths[i]`` bits wide)."""
        return 2 ** (self.abits - i)


#: The libraries ``synth_ecp5`` and ``synth_ice40`` map memories with (Yosys's
#: lattice/lutrams_trellis.txt, lattice/brams_16kd.txt and ice40/brams.txt).
LIBRARIES: dict[str, tuple[Primitive, ...]] = {
    "ecp5": (Primitive("TRELLIS_DPR16X4", 4, 4, (4,), sync_read=False, rom=False,
                       block=False),
             Primitive("DP16KD", 128, 14, (1, 2, 4, 9, 18), byte=9),
             Primitive("PDPW16KD", 128, 14, (1, 2, 4, 9, 18, 36), byte=9, write_width=36)),
    "ice40": (Primitive("SB_RAM40_4K", 64, 11, (2, 4, 8, 16), byte=1),),
}


@dataclass(frozen=True)
class Mapping:
    """What a memory becomes: ``count`` of ``primitive`` (None: soft logic), at ``cost``,
    and the ``flip_flops`` the mapping adds around it (or, in soft logic, holds it in)."""

    primitive: str | None
    count: int
    cost: float
    flip_flops: int
    block: bool = False  # block RAM primitives (False: soft logic or LUT RAM)


def _address_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def _cost(p: Primitive, depth: int, width: int, rom: bool,
          old: bool = True) -> tuple[float, int] | None:
    """The cheapest configuration of ``p`` for the memory: (cost, primitives)."""
    if rom and not p.rom:
        return None
    score = OWN_READ_PORT
    if not rom and p.sync_read and old:
        score += READ_FIRST + TRANSPARENCY
    best = None
    for i, unit in enumerate(p.widths):
        if not rom and p.write_width:
            # A narrower write goes through the byte enables, down to one byte.
            if unit > p.write_width or unit < min(p.byte or p.write_width, p.write_width):
                continue
        byte = 1 if rom else (p.byte if 0 < p.byte <= unit else unit)
        padded = math.ceil(width / byte) * byte
        ranges = math.ceil(depth / p.depth(i))
        count = math.ceil(ranges * padded / unit)
        cost = (p.cost * count + MUX_BIT * (ranges - 1) * width
                + (DEMUX_RANGE * ranges if not rom and ranges > 1 else 0)
                + EMULATION * score)
        if best is None or cost < best[0]:
            best = (cost, count)
    return best


def libmap(depth: int, width: int, rom: bool, family: str,
           collisions: str = "old") -> Mapping:
    """How Yosys builds a ``depth`` × ``width`` memory (``rom``: initialised and never
    written) on an FPGA ``family``; ``collisions``: what a read in the cycle of a write to
    its address gives (``hdl.ram``): "old", or "undefined" (no emulation, no
    flip-flops: the read register, without a power-up value, is the block's own)."""
    old = collisions == "old"
    if depth < 1 or width < 1:
        raise ValueError(f"a memory needs a positive size, not {depth} × {width}")
    bits = depth * width
    logic = bits * (LOGIC_ROM_BIT if rom else LOGIC_RAM_BIT)
    chosen = Mapping(None, 0, logic, width if rom else bits + width)
    best = int(logic)  # (memory_libmap compares the soft-logic cost rounded down)
    for p in LIBRARIES[family]:
        found = _cost(p, depth, width, rom, old)
        if found is None or not found[0] < best:
            continue
        cost, count = found
        if rom:
            ffs = 0
        elif p.sync_read:
            ffs = _address_bits(depth) + 2 * width + 2 if old else 0
        else:
            ffs = width
        chosen, best = Mapping(p.name, count, cost, ffs, p.block), cost
    return chosen
