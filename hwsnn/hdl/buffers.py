"""Stream buffers whose outputs are driven by flip-flops only.

``SkidBuffer`` is a two-entry register slice: its ``o_data``/``o_valid`` and its
``i_ready`` are registers, so neither side's logic reaches into the other's timing paths,
and it still moves one beat per cycle.

``RegisteredFIFO`` puts one behind ``SyncFIFOBuffered``, which reads straight out of block
RAM: an ECP5 block RAM without its output register takes ~6 ns from the clock edge to
valid data, and any logic behind it would eat most of a fast clock period. Here the block
RAM's data only reaches the D inputs of one register, in front of the skid buffer.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import fifo


class SkidBuffer(Elaboratable):
    """``i_data``, ``i_valid``, ``i_ready`` in; ``o_data``, ``o_valid``, ``o_ready`` out;
    ``count``, the beats held (0–2)."""

    def __init__(self, width: int):
        self.width = width
        self.i_data, self.i_valid, self.i_ready = Signal(width), Signal(), Signal()
        self.o_data, self.o_valid, self.o_ready = Signal(width), Signal(), Signal()
        self.count = Signal(range(3))

    def elaborate(self, platform):
        m = Module()
        spare, spare_valid = Signal(self.width), Signal()
        take = Signal()
        m.d.comb += [self.i_ready.eq(~spare_valid), take.eq(self.i_valid & ~spare_valid),
                     self.count.eq(self.o_valid + spare_valid)]
        with m.If(self.o_ready | ~self.o_valid):  # the output register is free next cycle
            with m.If(spare_valid):
                m.d.sync += [self.o_data.eq(spare), self.o_valid.eq(1), spare_valid.eq(0)]
            with m.Elif(take):
                m.d.sync += [self.o_data.eq(self.i_data), self.o_valid.eq(1)]
            with m.Else():
                m.d.sync += self.o_valid.eq(0)
        with m.Elif(take):
            m.d.sync += [spare.eq(self.i_data), spare_valid.eq(1)]
        return m


class RegisteredFIFO(Elaboratable):
    """The write/read ports of ``amaranth.lib.fifo.SyncFIFOBuffered`` (``w_data``,
    ``w_en``, ``w_rdy``, ``r_data``, ``r_en``, ``r_rdy``) and ``level``, the entries held
    (block RAM, a register and the skid buffer): ``depth + 3`` at most."""

    def __init__(self, *, width: int, depth: int):
        self.width, self.depth = width, depth
        self.w_data, self.w_en, self.w_rdy = Signal(width), Signal(), Signal()
        self.r_data, self.r_en, self.r_rdy = Signal(width), Signal(), Signal()
        self.level = Signal(range(depth + 4))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.submodules.skid = skid = SkidBuffer(self.width)
        # The RAM's data goes straight into a register (no logic in between), which a
        # pipeline step with a registered-ready consumer may load every cycle.
        held, held_valid = Signal(self.width), Signal()
        take = Signal()
        m.d.comb += [inner.w_data.eq(self.w_data), inner.w_en.eq(self.w_en),
                     self.w_rdy.eq(inner.w_rdy),
                     take.eq(inner.r_rdy & (~held_valid | skid.i_ready)),
                     inner.r_en.eq(take),
                     skid.i_data.eq(held), skid.i_valid.eq(held_valid),
                     self.r_data.eq(skid.o_data), self.r_rdy.eq(skid.o_valid),
                     skid.o_ready.eq(self.r_en),
                     self.level.eq(inner.level + held_valid + skid.count)]
        with m.If(take):
            m.d.sync += held.eq(inner.r_data)
        with m.If(~held_valid | skid.i_ready):
            m.d.sync += held_valid.eq(take)
        return m
