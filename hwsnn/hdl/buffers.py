"""Stream buffers whose outputs are driven by flip-flops only.

``SkidBuffer`` is a two-entry register slice: its output stream's ``valid``/``payload``
and its input's ``ready`` are registers, so neither side's logic reaches into the other's
timing paths, and it still moves one beat per cycle.

``RegisteredFIFO`` puts one behind ``SyncFIFOBuffered``, which reads straight out of block
RAM: an ECP5 block RAM without its output register takes ~6 ns from the clock edge to
valid data, and any logic behind it would eat most of a fast clock period. Here the block
RAM's data only reaches the D inputs of one register, in front of the skid buffer.

Both are ``wiring.Component``s with an input stream ``i`` and an output stream ``o`` of
the same payload shape (an int is a width), so they sit between any two stream ports
with ``wiring.connect``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out


def _signature(shape) -> stream.Signature:
    return stream.Signature(shape)


class SkidBuffer(wiring.Component):
    """``i`` (In stream) → ``o`` (Out stream), one beat per cycle, two beats held at most;
    ``count`` (Out): the beats held (0–2)."""

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(_signature(shape)), "o": Out(_signature(shape)),
                          "count": Out(range(3))})

    @property
    def width(self) -> int:
        return Shape.cast(self.shape).width

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        spare, spare_valid = Signal.like(i.payload), Signal()
        take = Signal()
        m.d.comb += [i.ready.eq(~spare_valid), take.eq(i.valid & ~spare_valid),
                     self.count.eq(o.valid + spare_valid)]
        with m.If(o.ready | ~o.valid):  # the output register is free next cycle
            with m.If(spare_valid):
                m.d.sync += [o.payload.eq(spare), o.valid.eq(1), spare_valid.eq(0)]
            with m.Elif(take):
                m.d.sync += [o.payload.eq(i.payload), o.valid.eq(1)]
            with m.Else():
                m.d.sync += o.valid.eq(0)
        with m.Elif(take):
            m.d.sync += [spare.eq(i.payload), spare_valid.eq(1)]
        return m


class RegisteredFIFO(wiring.Component):
    """``depth`` entries of block RAM, then a register and a skid buffer: ``i`` (In
    stream) → ``o`` (Out stream); ``level`` (Out): the entries held, ``depth + 3`` at
    most."""

    def __init__(self, shape, *, depth: int):
        self.shape, self.depth = shape, depth
        super().__init__({"i": In(_signature(shape)), "o": Out(_signature(shape)),
                          "level": Out(range(depth + 4))})

    @property
    def width(self) -> int:
        return Shape.cast(self.shape).width

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = fifo.SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.submodules.skid = skid = SkidBuffer(self.width)
        # The RAM's data goes straight into a register (no logic in between), which a
        # pipeline step with a registered-ready consumer may load every cycle.
        held, held_valid = Signal(self.width), Signal()
        take = Signal()
        m.d.comb += [inner.w_data.eq(self.i.payload), inner.w_en.eq(self.i.valid),
                     self.i.ready.eq(inner.w_rdy),
                     take.eq(inner.r_rdy & (~held_valid | skid.i.ready)),
                     inner.r_en.eq(take),
                     skid.i.payload.eq(held), skid.i.valid.eq(held_valid),
                     self.o.payload.eq(skid.o.payload), self.o.valid.eq(skid.o.valid),
                     skid.o.ready.eq(self.o.ready),
                     self.level.eq(inner.level + held_valid + skid.count)]
        with m.If(take):
            m.d.sync += held.eq(inner.r_data)
        with m.If(~held_valid | skid.i.ready):
            m.d.sync += held_valid.eq(take)
        return m
