"""The expander: one event of a projection becomes its memory operations, one per cycle.

A dense projection's event from source neuron j reaches every lane group g: G operations,
ROM row j (address j·G + g), membrane address g. A convolution's event at (c, y, x)
reaches the outputs oy in [oy0, oy0 + ny), ox in [ox0, ox0 + nx) through kernel tap
(ky, kx) = (y + pad − oy·s, x + pad − ox·s): membrane address (oy·W + ox)·G + g, ROM
address ((c·k + ky)·k + kx)·G + g. Both addresses are counters, stepped by one along g and
by constants from small tables when ox or oy moves on (no multiplier between the event and
the memories).
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .events import const_mul
from .ops import expander_event_layout, expander_op_layout
from .plan import EnginePlan, ProjectionPlan


class Expander(wiring.Component):
    """Projection ``proj`` of the engine of ``engine`` (an ``EnginePlan``).

    Members: ``i`` (In stream of ``expander_event_layout``): an event, taken while idle or
    in the cycle its last operation issues; ``o`` (Out stream of ``expander_op_layout``):
    the operations, valid while an event is being expanded; ``busy`` (Out): an event is
    being expanded (``o.valid``).
    """

    def __init__(self, engine: EnginePlan, proj: ProjectionPlan):
        self.engine, self.proj = engine, proj
        super().__init__({"i": In(stream.Signature(expander_event_layout(proj))),
                          "o": Out(stream.Signature(expander_op_layout(engine, proj))),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        e, p = self.engine, self.proj
        ev, op = self.i.payload, self.o.payload
        load = self.i.valid & self.i.ready
        step = self.o.valid & self.o.ready
        busy = Signal()
        g = Signal(range(max(2, e.groups)))
        last_g = Signal()  # registered: g == G − 1
        addr, waddr = Signal.like(op.addr), Signal.like(op.waddr)
        count, shift = Signal.like(op.count), Signal(4)
        m.d.comb += [self.o.valid.eq(busy), self.busy.eq(busy), op.addr.eq(addr),
                     op.waddr.eq(waddr), op.count.eq(count), op.shift.eq(shift)]
        with m.If(load):
            m.d.sync += [count.eq(ev.count), shift.eq(ev.shift), g.eq(0)]
        if p.kind == "dense":
            last = self._dense(m, load, step, busy, g, last_g, addr, waddr)
        else:
            last = self._conv(m, load, step, busy, g, last_g, addr, waddr)
        m.d.comb += self.i.ready.eq(~busy | (last & self.o.ready))
        return m

    def _dense(self, m, load, step, busy, g, last_g, addr, waddr):
        """Source neuron j (the flat index of a spatial source) selects the weight row."""
        G, ev = self.engine.groups, self.i.payload
        with m.If(load):
            if len(self.proj.src_shape) == 3:
                _, h, w = self.proj.src_shape
                flat = const_mul(ev.c, h * w) + const_mul(ev.y, w) + ev.x
            else:
                flat = ev.index
            m.d.sync += [waddr.eq(const_mul(flat, G)), addr.eq(0), last_g.eq(G == 1),
                         busy.eq(1)]
        with m.Elif(step):
            m.d.sync += [g.eq(g + 1), addr.eq(addr + 1), waddr.eq(waddr + 1),
                         last_g.eq(g == G - 2)]
            with m.If(last_g):
                m.d.sync += busy.eq(0)
        return last_g

    def _conv(self, m, load, step, busy, g, last_g, addr, waddr):
        e, p, ev = self.engine, self.proj, self.i.payload
        q = p.proj
        k, s, pad = q.kernel, q.stride, q.padding
        G, W = e.groups, e.width
        yr, xr = e.conv_ranges(p, 1), e.conv_ranges(p, 2)

        def table(values):
            lo, hi = min(values + [0]), max(values + [0])
            return Array(Const(v, signed(max(lo.bit_length(), hi.bit_length()) + 1))
                         for v in values)

        y0_addr = table([lo * W * G for lo, _ in yr])
        x0_addr = table([lo * G for lo, _ in xr])
        y0_w = table([(y + pad - lo * s) * k * G for y, (lo, _) in enumerate(yr)])
        x0_w = table([(x + pad - lo * s) * G for x, (lo, _) in enumerate(xr)])
        # When ox moves on: +1 (g wraps); ROM: kx − s. When oy moves on: back to ox0.
        row_step = table([(W - n) * G + 1 for _, n in xr])
        wrow_step = table([(s * (n - 1) - s * k) * G - (G - 1) for _, n in xr])
        col_wstep = -(G - 1) - s * G
        y_n = Array(Const(n, range(e.height + 2)) for _, n in yr)
        x_n = Array(Const(n, range(e.width + 2)) for _, n in xr)
        xs = Signal(range(e.width + 2))  # outputs left in this row, after this one
        ys = Signal(range(e.height + 2))  # rows left, after this one
        xn = Signal(range(e.width + 2))  # outputs per row
        r_step = Signal.like(row_step[0])
        w_step = Signal.like(wrow_step[0])
        last_x, last_y = Signal(), Signal()  # registered: xs == 0, ys == 0
        with m.If(load):
            ny, nx = y_n[ev.y], x_n[ev.x]
            m.d.sync += [addr.eq(y0_addr[ev.y] + x0_addr[ev.x]),
                         waddr.eq(const_mul(ev.c, k * k * G) + y0_w[ev.y] + x0_w[ev.x]),
                         xs.eq(nx - 1), ys.eq(ny - 1), xn.eq(nx - 1),
                         last_g.eq(G == 1), last_x.eq(nx == 1), last_y.eq(ny == 1),
                         r_step.eq(row_step[ev.x]), w_step.eq(wrow_step[ev.x]),
                         busy.eq((ny != 0) & (nx != 0))]
        with m.Elif(step):
            with m.If(~last_g):
                m.d.sync += [g.eq(g + 1), addr.eq(addr + 1), waddr.eq(waddr + 1),
                             last_g.eq(g == G - 2)]
            with m.Else():
                m.d.sync += [g.eq(0), last_g.eq(G == 1)]
                with m.If(~last_x):
                    m.d.sync += [xs.eq(xs - 1), addr.eq(addr + 1),
                                 waddr.eq(waddr + col_wstep), last_x.eq(xs == 1)]
                with m.Else():
                    m.d.sync += [xs.eq(xn), addr.eq(addr + r_step),
                                 waddr.eq(waddr + w_step), last_x.eq(xn == 0)]
                    with m.If(~last_y):
                        m.d.sync += [ys.eq(ys - 1), last_y.eq(ys == 1)]
                    with m.Else():
                        m.d.sync += busy.eq(0)
        return last_g & last_x & last_y
