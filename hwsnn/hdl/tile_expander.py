"""The tile expander: one input event of a projection becomes the operations of the tile it
reaches, one a cycle, with no gap between events.

A tile holds output channels [c0, c0 + G·P) of a population of shape [C, H, W] (a vector
is [N, 1, 1]) on P lanes: membrane word ``(oy·W + ox)·G + g`` holds channels
c0 + g·P + lane. The weights are one flat array of fields; an operation names the field of
its first lane (the datapath reads P consecutive fields from there). An event
(c, y, x, row, count, shift) gives, in this order:

- dense (``conv`` 0): for g = 0 … G − 1, membrane address g, field
  ``wfield + c0 + row·C + g·P``;
- conv (``conv`` 1; kernel k, stride s, padding pad): for oy ascending over
  [max(0, ⌈(y + pad − k + 1) / s⌉), min(H − 1, ⌊(y + pad) / s⌋)], for ox ascending over
  the same range from x and W, for g = 0 … G − 1: membrane address ``(oy·W + ox)·G + g``,
  field ``wfield + c0 + tap·C + g·P`` with tap = (c·k + ky)·k + kx,
  (ky, kx) = (y + pad − oy·s, x + pad − ox·s). An event whose ranges are empty reaches
  nothing and yields no operation.

Every operation carries its event's count and shift. ``expand`` is the Python reference.

Stepping: no product is formed per operation. The address and the field are registers
stepped by adders with constants of the configuration: along g, +1 and +P; to the next ox,
+1 and −(G − 1)·P − s·C (the tap column falls by s); to the next oy, the first operation
of the row just done (kept in two more registers) plus W·G and −s·k·C. Down-counters of
the lane groups, columns and rows left, each with a registered "last" flag, end the row
and the event.

Pipeline: an event taken from ``i`` goes through two register slices. Slice 1 holds the
event as it came. Between slices 1 and 2 the ranges are found: with a = y + pad, the first
row is ⌊max(0, a − k + s) / s⌋ and the last min(H − 1, ⌊a / s⌋) (likewise for x); each
division picks, by the configured stride, one of ``max_stride`` divisions by a constant
(a shift for a power of two, else shift-and-add multiplication by a reciprocal, checked
exact for every dividend that can occur when the expander is built); the first tap row is
ky0 = a − s·(first row); the event's base field is wfield + c0 + c·(k²·C) (conv) or
wfield + c0 + row·C (dense). Between slice 2 and the stepping registers, the first
operation: address (first row)·(W·G) + (first column)·G, field base + ky0·(k·C) + kx0·C.
Products with a factor of a few bits (a stride, a kernel size, a tap) are shift-and-add
adders; four true multipliers remain: the base field's (an event field times a
configuration constant), the two of the first address, and W·G. The slices and the
stepping stage move together, so ``i.ready`` follows ``o.ready`` combinationally (no skid
buffer); ``o`` itself comes from registers only.

Cycle cost: an event taken in cycle t, with nothing ahead of it, has its first operation
on ``o`` in cycle t + ``LATENCY`` (3). The next event's first operation follows its
predecessor's last in the next cycle (while events wait in the slices). An event that
reaches no output issues nothing and is dropped from slice 2 in the cycle its predecessor's
last operation leaves (or at once, if the stepping stage is idle); the event after it then
reaches the stepping stage one cycle later, so it costs one cycle, or none if it is the
last. So with ``o`` always ready and events offered back to back, the first event taken in
cycle 0, ``busy`` is first low again in cycle ``expand_cycles`` = ``LATENCY`` + Σ max(1,
the event's operations), less one if the last event reaches nothing.

Configuration: every constant the stages use is combinational from ``cfg`` (products of its
fields included), so ``cfg`` may change in any cycle in which ``busy`` is low, even the one
in which the next projection's first event is taken; it must not change while ``busy``.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Array, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .events import bits_for, const_mul

__all__ = ["LATENCY", "expand", "expand_cycles", "tile_config_layout", "tile_event_layout",
           "tile_op_layout", "TileExpander"]

#: Cycles from the one an event is taken in (nothing ahead of it) to its first operation.
LATENCY = 3


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def expand(event, cfg: Mapping, *, lanes: int) -> list[tuple[int, int, int, int]]:
    """The operations (addr, field, count, shift) of ``event`` = (c, y, x, row, count,
    shift) under ``cfg`` (a mapping with the fields of ``tile_config_layout``) on
    ``lanes`` lanes, in the order the expander issues them (the module's formulas)."""
    c, y, x, row, count, shift = event
    P, C, G = lanes, cfg["channels"], cfg["groups"]
    base = cfg["wfield"] + cfg["c0"]
    if not cfg["conv"]:
        return [(g, base + row * C + g * P, count, shift) for g in range(G)]
    k, s, pad = cfg["kernel"], cfg["stride"], cfg["padding"]
    H, W = cfg["height"], cfg["width"]
    ops = []
    for oy in range(max(0, _ceil_div(y + pad - k + 1, s)), min(H - 1, (y + pad) // s) + 1):
        for ox in range(max(0, _ceil_div(x + pad - k + 1, s)), min(W - 1, (x + pad) // s) + 1):
            tap = (c * k + (y + pad - oy * s)) * k + (x + pad - ox * s)
            ops += [((oy * W + ox) * G + g, base + tap * C + g * P, count, shift)
                    for g in range(G)]
    return ops


def expand_cycles(events, cfg: Mapping, *, lanes: int) -> int:
    """``TileExpander``'s cycles for ``events`` with ``o`` always ready and the events
    offered back to back: from the cycle the first is taken to the first cycle ``busy`` is
    low again, ``LATENCY`` + Σ max(1, operations of the event), less one if the last event
    reaches nothing (it leaves in the cycle its predecessor's last operation does)."""
    counts = [len(expand(e, cfg, lanes=lanes)) for e in events]
    return LATENCY + sum(max(1, n) for n in counts) - (bool(counts) and counts[-1] == 0)


def tile_config_layout(*, lanes: int, max_channels: int, max_height: int, max_width: int,
                       max_kernel: int, max_stride: int, field_width: int
                       ) -> data.StructLayout:
    """A projection onto a tile: ``conv`` (0 dense, 1 conv), ``kernel``, ``stride``,
    ``padding``, the output population's ``channels`` C, ``height`` H, ``width`` W, the
    tile's lane ``groups`` G and first channel ``c0``, the projection's first weight field
    ``wfield`` and its source map's ``src_height``, ``src_width``."""
    return data.StructLayout({
        "conv": unsigned(1),
        "kernel": unsigned(bits_for(max_kernel)),
        "stride": unsigned(bits_for(max_stride)),
        "padding": unsigned(bits_for(max_kernel - 1)),
        "channels": unsigned(bits_for(max_channels)),
        "height": unsigned(bits_for(max_height)),
        "width": unsigned(bits_for(max_width)),
        "groups": unsigned(bits_for(_ceil_div(max_channels, lanes))),
        "c0": unsigned(bits_for(max_channels - 1)),
        "wfield": unsigned(field_width),
        "src_height": unsigned(bits_for(max_height)),
        "src_width": unsigned(bits_for(max_width))})


def tile_event_layout(*, max_source_channels: int, max_height: int, max_width: int,
                      count_bits: int, shift_bits: int) -> data.StructLayout:
    """An input event: source channel ``c`` at (``y``, ``x``), its dense weight ``row``,
    its ``count`` and ``shift``."""
    return data.StructLayout({
        "c": unsigned(bits_for(max_source_channels - 1)),
        "y": unsigned(bits_for(max_height - 1)),
        "x": unsigned(bits_for(max_width - 1)),
        "row": unsigned(bits_for(max_source_channels * max_height * max_width - 1)),
        "count": unsigned(count_bits),
        "shift": unsigned(shift_bits)})


def tile_op_layout(*, addr_width: int, field_width: int, count_bits: int,
                   shift_bits: int) -> data.StructLayout:
    """An operation: membrane word ``addr``, first lane's weight ``field``, the event's
    ``count`` and ``shift``."""
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "field": unsigned(field_width),
        "count": unsigned(count_bits),
        "shift": unsigned(shift_bits)})


def _reciprocal_bits(top: int, divisor: int) -> int:
    """The least m for which ⌊b·⌈2^m / d⌉ / 2^m⌋ = ⌊b / d⌋ for every b in 0 … top (d =
    ``divisor``; for a power of two, log2 d: a shift)."""
    m = 0
    while not all((b * _ceil_div(1 << m, divisor)) >> m == b // divisor
                  for b in range(top + 1)):
        m += 1
    return m


def _narrow_mul(narrow, wide):
    """``narrow`` × ``wide`` for an unsigned ``narrow`` of a few bits (a stride, a kernel
    size or tap): one shifted copy of ``wide`` a bit, adders in the fabric rather than a
    DSP block."""
    narrow = Value.cast(narrow)
    return sum(Mux(narrow[b], wide << b, 0) for b in range(len(narrow)))


class TileExpander(wiring.Component):
    """Expands the events of a projection into the operations of one tile (see the module).

    Parameters (keyword-only, positive integers; the largest configuration the hardware
    serves): ``lanes`` (P), ``max_channels`` (C of an output population), ``max_height``,
    ``max_width`` (output and source maps), ``max_source_channels``, ``max_kernel``,
    ``max_stride`` (any stride 1 … ``max_stride``), ``field_width`` (bits of a weight field
    address), ``addr_width`` (bits of a membrane address; at least enough for
    ``max_height``·``max_width``·⌈``max_channels`` / P⌉ words), ``count_bits``,
    ``shift_bits``.

    Members:
    ``cfg`` (In ``tile_config_layout``): the projection and tile; changes only while
    ``busy`` is low. A conv configuration has 1 ≤ kernel, 1 ≤ stride ≤ ``max_stride``,
    padding < kernel; every one has H, W, G ≥ 1. Dense ignores kernel, stride, padding;
    neither needs ``src_height``, ``src_width`` (an event lies inside the source map).
    ``i`` (In stream of ``tile_event_layout``): the events.
    ``o`` (Out stream of ``tile_op_layout``): the operations of ``expand``, in its order;
    fields modulo 2^``field_width``.
    ``busy`` (Out): an event is held or being expanded; ``~busy & ~i.valid`` means every
    event taken so far has left as operations.
    """

    def __init__(self, *, lanes: int, max_channels: int, max_height: int, max_width: int,
                 max_source_channels: int, max_kernel: int, max_stride: int,
                 field_width: int, addr_width: int, count_bits: int, shift_bits: int):
        for name, value in (("lanes", lanes), ("max_channels", max_channels),
                            ("max_height", max_height), ("max_width", max_width),
                            ("max_source_channels", max_source_channels),
                            ("max_kernel", max_kernel), ("max_stride", max_stride),
                            ("field_width", field_width), ("addr_width", addr_width),
                            ("count_bits", count_bits), ("shift_bits", shift_bits)):
            _positive(name, value)
        words = max_height * max_width * _ceil_div(max_channels, lanes)
        if bits_for(words - 1) > addr_width:
            raise ValueError(f"addr_width {addr_width} cannot address the {words} membrane "
                             f"words of a {max_height}×{max_width} map of "
                             f"⌈{max_channels} / {lanes}⌉ lane groups; it takes "
                             f"{bits_for(words - 1)} bits")
        self.lanes = lanes
        self.max_channels, self.max_height, self.max_width = max_channels, max_height, max_width
        self.max_source_channels = max_source_channels
        self.max_kernel, self.max_stride = max_kernel, max_stride
        self.field_width, self.addr_width = field_width, addr_width
        self.count_bits, self.shift_bits = count_bits, shift_bits
        super().__init__({
            "cfg": In(tile_config_layout(lanes=lanes, max_channels=max_channels,
                                         max_height=max_height, max_width=max_width,
                                         max_kernel=max_kernel, max_stride=max_stride,
                                         field_width=field_width)),
            "i": In(stream.Signature(tile_event_layout(
                max_source_channels=max_source_channels, max_height=max_height,
                max_width=max_width, count_bits=count_bits, shift_bits=shift_bits))),
            "o": Out(stream.Signature(tile_op_layout(
                addr_width=addr_width, field_width=field_width, count_bits=count_bits,
                shift_bits=shift_bits))),
            "busy": Out(1)})

    @property
    def max_groups(self) -> int:
        """Lane groups of the widest tile: ⌈max_channels / lanes⌉."""
        return _ceil_div(self.max_channels, self.lanes)

    @property
    def max_dividend(self) -> int:
        """The largest number divided by a stride: (map − 1) + (kernel − 1) + (stride − 1)."""
        return (max(self.max_height, self.max_width) - 1 + self.max_kernel - 1
                + self.max_stride - 1)

    def elaborate(self, platform):
        m = Module()
        P, cfg = self.lanes, self.cfg
        k, s, pad, C, G = cfg.kernel, cfg.stride, cfg.padding, cfg.channels, cfg.groups
        W = cfg.width
        # Products of cfg fields, registered: cfg is stable from the cycle an event is taken
        # until the expander is idle again, and none is read before the cycle after that
        # (slice 2 on), so the registers hold them by then, off the paths that use them.
        kC, WG = Signal(range(self.max_kernel * self.max_channels + 1)), Signal(self.addr_width)
        kkC = Signal(range(self.max_kernel ** 2 * self.max_channels + 1))
        kC_now = Signal.like(kC)
        m.d.comb += kC_now.eq(_narrow_mul(k, C))
        m.d.sync += [kC.eq(kC_now), kkC.eq(_narrow_mul(k, kC_now)), WG.eq(W * G)]
        # The next ox: g wraps, tap column −s. The next oy: from the row's first operation,
        # tap row −s.
        fields = signed(self.field_width + 1)
        column_field, row_field = Signal(fields), Signal(fields)
        m.d.sync += [column_field.eq(P - const_mul(G, P) - _narrow_mul(s, C)),
                     row_field.eq(-_narrow_mul(s, kC_now))]
        top = self.max_dividend

        def divide(value):
            """⌊value / s⌋ for value in 0 … max_dividend: one constant division a stride."""
            quotients = [value]  # s = 0: dense, unused
            for d in range(1, self.max_stride + 1):
                frac = _reciprocal_bits(top, d)
                quotients.append((const_mul(value, _ceil_div(1 << frac, d)) >> frac)
                                 [:bits_for(top)])
            return Array(quotients)[s]

        # The handshakes: slice 1 → slice 2 → the stepping registers, which feed o.
        ev = self.i.payload
        r1, r1_valid = Signal.like(ev), Signal()
        active, last_g, last_x, last_y = Signal(), Signal(), Signal(), Signal()
        r2_valid, r2_empty = Signal(), Signal()
        step = active & self.o.ready
        done = step & last_g & last_x & last_y
        take = r2_valid & (~active | done)
        load = take & ~r2_empty
        move = r1_valid & (~r2_valid | take)
        m.d.comb += [self.i.ready.eq(~r1_valid | move),
                     self.busy.eq(r1_valid | r2_valid | active)]

        # Slice 1: the event as it came.
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [r1.eq(ev), r1_valid.eq(1)]
        with m.Elif(move):
            m.d.sync += r1_valid.eq(0)

        # Slice 2: the event's ranges, first taps and base field.
        coord, tap, span = (unsigned(bits_for(top)), unsigned(bits_for(self.max_kernel - 1)),
                            unsigned(bits_for(max(self.max_height, self.max_width) - 1)))
        lo_y, lo_x, ky0, kx0 = Signal(coord), Signal(coord), Signal(tap), Signal(tap)
        ny, nx = Signal(span), Signal(span)  # rows, columns reached − 1
        base = Signal(self.field_width)
        count, shift = Signal(self.count_bits), Signal(self.shift_bits)

        def axis(v, size):
            """First index, first tap, (count − 1) of the outputs reached along one axis,
            and whether there are none."""
            a = v + pad
            t = Signal(signed(bits_for(top) + 1))
            m.d.comb += t.eq(a + s - k)
            lo = divide(Mux(t > 0, t, 0).as_unsigned())
            hi_all = divide(a)
            hi = Mux(hi_all < size - 1, hi_all, size - 1)
            return lo, a - _narrow_mul(s, lo), hi - lo, hi < lo

        y_lo, y_tap, y_n, y_none = axis(r1.y, cfg.height)
        x_lo, x_tap, x_n, x_none = axis(r1.x, cfg.width)
        with m.If(move):
            m.d.sync += [r2_valid.eq(1), count.eq(r1.count), shift.eq(r1.shift),
                         base.eq(cfg.wfield + cfg.c0
                                 + Mux(cfg.conv, r1.c, r1.row) * Mux(cfg.conv, kkC, C))]
            with m.If(cfg.conv):
                m.d.sync += [lo_y.eq(y_lo), lo_x.eq(x_lo), ky0.eq(y_tap), kx0.eq(x_tap),
                             ny.eq(y_n), nx.eq(x_n), r2_empty.eq(y_none | x_none)]
            with m.Else():
                m.d.sync += [lo_y.eq(0), lo_x.eq(0), ky0.eq(0), kx0.eq(0), ny.eq(0),
                             nx.eq(0), r2_empty.eq(0)]
        with m.Elif(take):
            m.d.sync += r2_valid.eq(0)

        # Stepping: the operation on o, the first one of its row, what is left.
        op = self.o.payload
        addr, addr_row = Signal(self.addr_width), Signal(self.addr_width)
        field, field_row = Signal(self.field_width), Signal(self.field_width)
        g = Signal(range(max(2, self.max_groups)))
        xs, xn, ys = Signal(span), Signal(span), Signal(span)  # columns, rows left after this
        o_count, o_shift = Signal(self.count_bits), Signal(self.shift_bits)
        m.d.comb += [self.o.valid.eq(active), op.addr.eq(addr), op.field.eq(field),
                     op.count.eq(o_count), op.shift.eq(o_shift)]
        with m.If(step):
            with m.If(~last_g):
                m.d.sync += [g.eq(g + 1), addr.eq(addr + 1), field.eq(field + P),
                             last_g.eq(g == G - 2)]
            with m.Else():
                m.d.sync += [g.eq(0), last_g.eq(G == 1)]
                with m.If(~last_x):
                    m.d.sync += [addr.eq(addr + 1), field.eq(field + column_field),
                                 xs.eq(xs - 1), last_x.eq(xs == 1)]
                with m.Elif(~last_y):
                    m.d.sync += [addr.eq(addr_row + WG), addr_row.eq(addr_row + WG),
                                 field.eq(field_row + row_field),
                                 field_row.eq(field_row + row_field),
                                 xs.eq(xn), last_x.eq(xn == 0), ys.eq(ys - 1),
                                 last_y.eq(ys == 1)]
            with m.If(done):
                m.d.sync += active.eq(0)
        with m.If(load):
            first_addr = lo_y * WG + lo_x * G
            first_field = base + _narrow_mul(ky0, kC) + _narrow_mul(kx0, C)
            m.d.sync += [active.eq(1), addr.eq(first_addr), addr_row.eq(first_addr),
                         field.eq(first_field), field_row.eq(first_field),
                         g.eq(0), last_g.eq(G == 1),
                         xs.eq(nx), xn.eq(nx), last_x.eq(nx == 0),
                         ys.eq(ny), last_y.eq(ny == 0),
                         o_count.eq(count), o_shift.eq(shift)]
        return m
