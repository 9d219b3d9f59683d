"""The bit-event input stage: pixels become events of their set bits.

Every pixel code is split into its set bits; bit b of pixel j is an event that adds
``W[:, j] << b`` (adders only), expanded into memory operations by the projection's
``Expander``. The held pixel's lowest set bit is the next event; registered flags say
whether none or one is left, so a pixel with a single set bit (or none) is followed by the
next pixel without a gap.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .events import PIXEL_BITS, pixel_signature
from .expander import Expander
from .ops import expander_op_layout
from .plan import EnginePlan


class PixelEvents(wiring.Component):
    """The image's projection of the engine of ``plan``.

    Members: ``pixels`` (In pixel stream): one sample's codes in C order, taken only while
    ``start`` (In, level) is high; ``o`` (Out stream of ``expander_op_layout``): the memory
    operations of the bit events; ``done`` (Out, one cycle while ``start``): every pixel of
    the sample is taken and all its operations issued (the stage is ready for the next
    sample)."""

    def __init__(self, plan: EnginePlan):
        if plan.input_projection is None:
            raise ValueError(f"population {plan.pop.name} does not read the image")
        self.plan = plan
        super().__init__({
            "pixels": In(pixel_signature()), "start": In(1), "done": Out(1),
            "o": Out(stream.Signature(expander_op_layout(plan, plan.input_projection))),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        m.submodules.expander = ex = Expander(plan, plan.input_projection)
        wiring.connect(m, wiring.flipped(self.o), ex.o)
        in_shape = tuple(plan.net.input.shape)
        spatial = len(in_shape) == 3
        pixel_count = Signal(range(plan.input_size + 1))
        pix_c = Signal(range(max(2, in_shape[0])))
        pix_y = Signal(range(max(2, in_shape[1] if spatial else 1)))
        pix_x = Signal(range(max(2, in_shape[2] if spatial else 1)))
        pix_index = Signal(range(max(2, plan.input_size)))
        # Position of the next pixel to arrive (the held one's is in pix_*).
        nxt_c, nxt_y, nxt_x = Signal.like(pix_c), Signal.like(pix_y), Signal.like(pix_x)
        nxt_index = Signal.like(pix_index)
        pix_bits = Signal(PIXEL_BITS)
        pix_zero, pix_one = Signal(init=1), Signal()
        more_pixels = Signal(init=1)  # pixel_count < input size

        def hold_bits(value):
            m.d.sync += [pix_bits.eq(value), pix_zero.eq(value == 0),
                         pix_one.eq(reduce(operator.or_, [value == (1 << b)
                                                          for b in range(PIXEL_BITS)]))]

        # The held bits without the lowest set one (LUTs, no carry chain).
        below = [reduce(operator.or_, [pix_bits[i] for i in range(b)], Const(0, 1))
                 for b in range(PIXEL_BITS)]
        rest = Cat(*(pix_bits[b] & below[b] for b in range(PIXEL_BITS)))
        bit = Signal(3)
        for b in reversed(range(PIXEL_BITS)):
            with m.If(pix_bits[b]):
                m.d.comb += bit.eq(b)
        ev = ex.i.payload
        if spatial:
            m.d.comb += [ev.c.eq(pix_c), ev.y.eq(pix_y), ev.x.eq(pix_x)]
        else:
            m.d.comb += ev.index.eq(pix_index)
        m.d.comb += [ev.count.eq(1), ev.shift.eq(bit)]

        with m.If(self.start):
            m.d.comb += ex.i.valid.eq(~pix_zero)
            with m.If(~pix_zero & ex.i.ready):
                hold_bits(rest)
            # Take the next pixel once the held one has no bits left.
            with m.If((pix_zero | (pix_one & ex.i.ready)) & more_pixels):
                m.d.comb += self.pixels.ready.eq(1)
                with m.If(self.pixels.valid):
                    hold_bits(self.pixels.payload)
                    m.d.sync += [pixel_count.eq(pixel_count + 1),
                                 more_pixels.eq(pixel_count != plan.input_size - 1),
                                 pix_c.eq(nxt_c), pix_y.eq(nxt_y), pix_x.eq(nxt_x),
                                 pix_index.eq(nxt_index)]
                    self._advance(m, in_shape, nxt_c, nxt_y, nxt_x, nxt_index)
            with m.If(~more_pixels & pix_zero & ~ex.busy):
                m.d.comb += self.done.eq(1)
                m.d.sync += [pixel_count.eq(0), more_pixels.eq(1), nxt_c.eq(0),
                             nxt_y.eq(0), nxt_x.eq(0), nxt_index.eq(0)]
        return m

    @staticmethod
    def _advance(m, in_shape, pix_c, pix_y, pix_x, pix_index):
        if len(in_shape) == 3:
            _, h, w = in_shape
            with m.If(pix_x == w - 1):
                m.d.sync += pix_x.eq(0)
                with m.If(pix_y == h - 1):
                    m.d.sync += [pix_y.eq(0), pix_c.eq(pix_c + 1)]
                with m.Else():
                    m.d.sync += pix_y.eq(pix_y + 1)
            with m.Else():
                m.d.sync += pix_x.eq(pix_x + 1)
        else:
            m.d.sync += pix_index.eq(pix_index + 1)
