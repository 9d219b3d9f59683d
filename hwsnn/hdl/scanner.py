"""Lane-group planes: one step's spike counts of a population, laid out like its membrane
memory, and ``PlaneScanner``, which turns such a plane into the events of its non-zero
counts.

Layout: a population of shape [C, H, W] (a vector [N] is C = N, H = W = 1) on P lanes has
G = ⌈C / P⌉ lane groups. The word at ``base + (y·W + x)·G + g`` holds the counts of
channels g·P + lane at (y, x), lane = 0 … P − 1, as P fields of B bits: field ``lane`` is
bits [lane·B, lane·B + B) of the word (bit 0 is its least significant bit). A lane with
g·P + lane ≥ C is padding: the hardware that wrote the plane may have left a non-zero count
there (padding neurons can fire), and it never becomes an event.

Event order: words in address order, and in each word its real lanes with a non-zero count
in ascending lane order; an event is (c, y, x, row, count) with c = g·P + lane and
row = (y·W + x)·C + c, the row of a dense weight matrix whose source rows are ordered by
position, then channel. So the events come in ascending row order.

Pooling: with ``pool`` = log2 f configured (a projection whose weights have an f×f
average pooling folded in, ``serial.pool_factor``), an event at (y, x) is sent at
(y >> pool, x >> pool), the position of the pooled map of ⌈H/f⌉ × ⌈W/f⌉, and its row is
that map's: ((y >> pool)·⌈W/f⌉ + (x >> pool))·C + c. The words, the order and the cycles
are the same as without.

Cycle cost: one cycle per event, and one per word whose real lanes are all zero, plus
``SCAN_OVERHEAD`` = 3 cycles a plane (the start cycle, which reads word 0; the cycle word 0
arrives and is registered; the end beat): ``scan_cycles``, counted from the ``start`` cycle
to the cycle the end beat is taken, both included, with the output always ready.

Timing: a word goes from the memory's read data straight into the scan register (no logic
in between, the memory may have no output register) and only there are its fields tested.
So no path runs from the read data to the read address or enable, ``busy`` or the output
stream. Reads run one word ahead (prefetch): in the cycle a word leaves the scan register,
the next one, already waiting on the read data, takes its place and the one after that is
read, so zero words go by one a cycle. The read address is a register (the configured base
in the start cycle) and does not depend on the output's ``ready``; the read enable does,
since a word leaves the scan register in the cycle its last event is taken. The output is
combinational from the scan register (the lowest pending lane and its channel and row
adders).

``pack_lane_plane``, ``scan_events`` and ``scan_cycles`` are the Python reference.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .events import bits_for

__all__ = ["SCAN_OVERHEAD", "lane_groups", "pack_lane_plane", "scan_events", "scan_cycles",
           "scan_config_layout", "scan_event_layout", "PlaneScanner"]

#: Cycles of a plane beside its words: the start cycle (word 0 is read), the cycle word 0
#: arrives (it is registered before any field of it is tested) and the end beat's cycle.
SCAN_OVERHEAD = 3


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


def lane_groups(channels: int, lanes: int) -> int:
    """Lane groups of ``channels`` channels on ``lanes`` lanes: ⌈channels / lanes⌉."""
    return -(-channels // lanes)


def _shape3(shape) -> tuple[int, int, int]:
    """(C, H, W) of a population shape [C, H, W] or [N]."""
    shape = tuple(shape)
    if len(shape) == 1:
        shape = (shape[0], 1, 1)
    if len(shape) != 3:
        raise ValueError(f"a plane's shape is [C, H, W] or [N], not {list(shape)}")
    for name, size in zip("CHW", shape, strict=True):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{name} of shape {list(shape)} must be a positive integer")
    return tuple(int(s) for s in shape)


def pack_lane_plane(counts, lanes: int, bits: int) -> list[int]:
    """The H·W·G words of the plane holding ``counts`` (an integer array of shape
    [C, H, W] or [N]) in address order, padding lanes zero."""
    _positive("lanes", lanes)
    _positive("bits", bits)
    counts = np.asarray(counts)
    if counts.dtype.kind not in "iu":
        raise ValueError(f"counts must be integers, not {counts.dtype}")
    C, H, W = _shape3(counts.shape)
    counts = counts.reshape(C, H, W)
    if counts.size and (counts.min() < 0 or counts.max() >= 1 << bits):
        bad = np.argwhere((counts < 0) | (counts >= 1 << bits))[0]
        raise ValueError(f"count {int(counts[tuple(bad)])} at (c, y, x) = "
                         f"{tuple(int(i) for i in bad)} does not fit {bits} unsigned bits")
    words = []
    for y in range(H):
        for x in range(W):
            for g in range(lane_groups(C, lanes)):
                word = 0
                for lane, c in enumerate(range(g * lanes, min(C, g * lanes + lanes))):
                    word |= int(counts[c, y, x]) << (lane * bits)
                words.append(word)
    return words


def _fields(words, shape, lanes, bits):
    """(c, y, x, count) of every real lane of every word, in scan order."""
    _positive("lanes", lanes)
    _positive("bits", bits)
    C, H, W = _shape3(shape)
    G = lane_groups(C, lanes)
    if len(words) != H * W * G:
        raise ValueError(f"a plane of shape {[C, H, W]} on {lanes} lanes takes "
                         f"{H * W * G} words, not {len(words)}")
    mask = (1 << bits) - 1
    for k, word in enumerate(words):
        word = int(word)
        if not 0 <= word < 1 << (lanes * bits):
            raise ValueError(f"word {k} ({word}) does not fit {lanes * bits} bits")
        (y, x), g = divmod(k // G, W), k % G
        yield k, [(c, y, x, (word >> (lane * bits)) & mask)
                  for lane, c in enumerate(range(g * lanes, min(C, g * lanes + lanes)))]


def scan_events(words, shape, lanes: int, bits: int,
                pool: int = 0) -> list[tuple[int, int, int, int, int]]:
    """The events (c, y, x, row, count) a scan of the plane in ``words`` yields, in order,
    with positions and rows of the map pooled 2^``pool``-fold; padding lanes are ignored
    whatever they hold."""
    C, H, W = _shape3(shape)
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
        raise ValueError(f"pool must be a non-negative integer, not {pool!r}")
    wp = -(-W >> pool)  # ⌈W / f⌉
    return [(c, y >> pool, x >> pool, ((y >> pool) * wp + (x >> pool)) * C + c, count)
            for _, fields in _fields(words, shape, lanes, bits)
            for c, y, x, count in fields if count]


def scan_cycles(words, shape, lanes: int, bits: int) -> int:
    """``PlaneScanner``'s cycles for the plane in ``words`` with ``o`` always ready:
    Σ over words of max(1, its events) + ``SCAN_OVERHEAD``."""
    return SCAN_OVERHEAD + sum(max(1, sum(1 for *_, count in fields if count))
                               for _, fields in _fields(words, shape, lanes, bits))


def scan_config_layout(addr_width: int, max_channels: int, max_height: int,
                       max_width: int, lanes: int, max_pool: int = 0) -> data.StructLayout:
    """A plane to scan: its first word's address, its shape, its lane groups and the
    pooling (log2 f) of its events' positions."""
    return data.StructLayout({
        "base": unsigned(addr_width),
        "channels": unsigned(bits_for(max_channels)),
        "height": unsigned(bits_for(max_height)),
        "width": unsigned(bits_for(max_width)),
        "groups": unsigned(bits_for(lane_groups(max_channels, lanes))),
        "pool": unsigned(bits_for(max_pool))})


def scan_event_layout(bits: int, max_channels: int, max_height: int,
                      max_width: int) -> data.StructLayout:
    """A non-zero count of channel ``c`` at (``y``, ``x``), its weight ``row``; or the
    end-of-plane beat (``end``)."""
    return data.StructLayout({
        "c": unsigned(bits_for(max_channels - 1)),
        "y": unsigned(bits_for(max_height - 1)),
        "x": unsigned(bits_for(max_width - 1)),
        "row": unsigned(bits_for(max_channels * max_height * max_width - 1)),
        "count": unsigned(bits),
        "end": unsigned(1)})


class PlaneScanner(wiring.Component):
    """Reads a lane-group plane from memory and sends its non-zero real counts as events.

    Parameters (keyword-only): ``lanes`` (P), ``bits`` (B, bits of a count),
    ``max_channels``, ``max_height``, ``max_width`` (the largest plane's C, H, W),
    ``addr_width`` (the plane memory's address bits), ``max_pool`` (the largest ``pool``,
    0 by default: no pooling logic).

    Members:
    ``cfg`` (In ``scan_config_layout``): the plane: ``base``, ``channels`` C, ``height``
    H, ``width`` W (each at least 1, at most its maximum), ``groups`` (⌈C / P⌉) and
    ``pool`` (at most ``max_pool``); held from ``start`` until the end beat is taken.
    ``start`` (In): a one-cycle pulse while idle starts a scan (ignored while busy).
    ``busy`` (Out): high from the cycle after ``start`` to the cycle the end beat is taken.
    ``rd_addr``, ``rd_en`` (Out), ``rd_data`` (In, P·B bits): a synchronous read port with
    enable, as ``memory.Memory``'s: the word addressed in a cycle with ``rd_en`` is on
    ``rd_data`` in the next cycle and stays there while ``rd_en`` is low.
    ``o`` (Out stream of ``scan_event_layout``): the events of ``scan_events``, in its
    order (``end`` 0); then one beat with ``end`` 1, whose other fields mean nothing.

    Words base, base + 1, … base + H·W·G − 1 (modulo the address space) are read once
    each, in order, and no other. Cycles: counting both the ``start`` cycle and the
    cycle the end beat is taken, a plane takes ``scan_cycles`` cycles with ``o`` always
    ready (so planes started back to back, each in the cycle after the previous end beat,
    take the sum): word 0 is read in the ``start`` cycle and lands in the scan register in
    the next; a word then stays there one cycle per event, or one cycle if it has none
    (whether ``o`` is ready or not), and in the cycle it leaves, the next word takes its
    place and the one after that is read; the end beat follows the last word. Timing
    paths: see the module.
    """

    def __init__(self, *, lanes: int, bits: int, max_channels: int, max_height: int,
                 max_width: int, addr_width: int, max_pool: int = 0, stream_input: bool = False):
        for name, value in (("lanes", lanes), ("bits", bits), ("max_channels", max_channels),
                            ("max_height", max_height), ("max_width", max_width),
                            ("addr_width", addr_width)):
            _positive(name, value)
        if isinstance(max_pool, bool) or not isinstance(max_pool, int) or max_pool < 0:
            raise TypeError(f"max_pool must be a non-negative integer, not {max_pool!r}")
        self.lanes, self.bits, self.max_pool = lanes, bits, max_pool
        self.max_channels, self.max_height, self.max_width = max_channels, max_height, max_width
        self.addr_width = addr_width
        self.stream_input = stream_input
        members = {
            "cfg": In(scan_config_layout(addr_width, max_channels, max_height, max_width,
                                         lanes, max_pool)),
            "start": In(1),
            "busy": Out(1),
            "o": Out(stream.Signature(scan_event_layout(bits, max_channels, max_height,
                                                        max_width)))}
        if stream_input:
            members["words"] = In(stream.Signature(lanes * bits))
        else:
            members.update({"rd_addr": Out(addr_width), "rd_en": Out(1),
                            "rd_data": In(lanes * bits)})
        super().__init__(members)

    @property
    def max_groups(self) -> int:
        """Lane groups of the widest plane: ⌈max_channels / lanes⌉."""
        return lane_groups(self.max_channels, self.lanes)

    def elaborate(self, platform):
        m = Module()
        P, B = self.lanes, self.bits
        cfg, o = self.cfg, self.o
        busy = self.busy
        launch = self.start & ~busy

        # Fetch: the counters describe the word last read (the one on rd_data).
        addr = Signal(self.addr_width)  # the next word to read
        fresh = Signal()  # rd_data holds a word not yet in the scan register
        g = Signal(range(self.max_groups))
        c0 = Signal(range((self.max_groups - 1) * P + 1))  # g·P
        y = Signal(range(self.max_height))
        x = Signal(range(self.max_width))
        pos = Signal(range((self.max_height * self.max_width - 1) * self.max_channels + 1))
        last_g, last_x = g == cfg.groups - 1, x == cfg.width - 1
        last_word = last_g & last_x & (y == cfg.height - 1)
        # Pooling: pos is the pooled position's first row, ((y >> pool)·⌈W/f⌉ + (x >>
        # pool))·C; it moves on by C where x + 1 (or at a row's end y + 1) is a multiple
        # of f, else back to the start of the pooled row (row_pos) at a row's end.
        if self.max_pool:
            f_mask = Signal(range(1 << self.max_pool))  # f − 1
            m.d.comb += f_mask.eq((Const(1, 1 << self.max_pool) << cfg.pool) - 1)
            row_pos = Signal.like(pos)
            x_edge, y_edge = ((x + 1) & f_mask) == 0, ((y + 1) & f_mask) == 0
            at_y, at_x = y >> cfg.pool, x >> cfg.pool
        else:
            at_y, at_x = y, x

        # Scan register: a word straight from rd_data, with its place in the plane.
        word = Signal(P * B)
        have = Signal()
        s_c0, s_y, s_x, s_pos = Signal.like(c0), Signal.like(y), Signal.like(x), Signal.like(pos)
        real = Signal(P)  # lanes of real channels
        sent = Signal(P)  # lanes whose event has left
        fields = [word[lane * B:(lane + 1) * B] for lane in range(P)]
        pending = Signal(P)
        m.d.comb += pending.eq(Cat(have & real[lane] & (fields[lane] != 0) & ~sent[lane]
                                   for lane in range(P)))
        lane = Signal(range(max(2, P)))
        for p in reversed(range(P)):
            with m.If(pending[p]):
                m.d.comb += lane.eq(p)
        only = (pending & (pending - 1)) == 0

        # Send: the lowest pending lane, or the end beat once the last word is gone.
        c = Signal(range(self.max_groups * P))
        m.d.comb += c.eq(s_c0 + lane)
        end = Signal()
        m.d.comb += [o.valid.eq((pending != 0) | end), o.payload.end.eq(end),
                     o.payload.c.eq(c), o.payload.y.eq(s_y), o.payload.x.eq(s_x),
                     o.payload.row.eq(s_pos + c),
                     o.payload.count.eq(Array(fields)[lane])]
        taken = o.valid & o.ready

        # Advance: the scan register takes the next word once its last event leaves (at
        # once if it has none), and that word's successor is read in the same cycle (a
        # stream's: the word at its head is taken, if it has come).
        advance = busy & ((pending == 0) | (only & o.ready))
        if self.stream_input:
            # ``fresh``: the stream's head is a word of this plane; ``drained``: all taken
            drained = Signal()
            m.d.comb += [fresh.eq(self.words.valid & ~drained),
                         self.words.ready.eq(advance & fresh)]
            fetch = advance & fresh
            incoming = self.words.payload
            with m.If(fetch & last_word):
                m.d.sync += drained.eq(1)
            end_now = busy & ~have & drained
        else:
            fetch = advance & fresh & ~last_word
            m.d.comb += [self.rd_en.eq(launch | fetch),
                         self.rd_addr.eq(Mux(busy, addr, cfg.base))]
            incoming = self.rd_data
            end_now = None
        with m.If(taken & ~end):
            m.d.sync += sent.eq(sent | (Const(1, P) << lane))
        with m.If(advance):
            m.d.sync += [have.eq(fresh), sent.eq(0)]
            if not self.stream_input:
                m.d.sync += fresh.eq(fetch)
            with m.If(fresh):
                m.d.sync += [word.eq(incoming), s_c0.eq(c0), s_y.eq(at_y),
                             s_x.eq(at_x), s_pos.eq(pos),
                             real.eq(Cat(c0 + p < cfg.channels for p in range(P)))]
        with m.If(fetch & ~last_word):
            m.d.sync += addr.eq(addr + 1)
            with m.If(last_g):
                m.d.sync += [g.eq(0), c0.eq(0)]
                with m.If(last_x):
                    m.d.sync += [x.eq(0), y.eq(y + 1)]
                    if self.max_pool:
                        with m.If(y_edge):
                            m.d.sync += [pos.eq(pos + cfg.channels),
                                         row_pos.eq(pos + cfg.channels)]
                        with m.Else():
                            m.d.sync += pos.eq(row_pos)
                    else:
                        m.d.sync += pos.eq(pos + cfg.channels)
                with m.Else():
                    m.d.sync += x.eq(x + 1)
                    if self.max_pool:
                        with m.If(x_edge):
                            m.d.sync += pos.eq(pos + cfg.channels)
                    else:
                        m.d.sync += pos.eq(pos + cfg.channels)
            with m.Else():
                m.d.sync += [g.eq(g + 1), c0.eq(c0 + P)]
        m.d.comb += end.eq(end_now if end_now is not None else busy & ~have & ~fresh)
        with m.If(taken & end):
            m.d.sync += busy.eq(0)
        with m.If(launch):
            m.d.sync += [busy.eq(1), have.eq(0), sent.eq(0),
                         addr.eq(cfg.base + 1), g.eq(0), c0.eq(0), y.eq(0), x.eq(0),
                         pos.eq(0)]
            if self.stream_input:
                m.d.sync += drained.eq(0)
            else:
                m.d.sync += fresh.eq(1)
            if self.max_pool:
                m.d.sync += row_pos.eq(0)
        return m
