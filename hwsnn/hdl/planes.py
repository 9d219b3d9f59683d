"""Spike planes (docs/serial.md, "Spike planes, not event lists"): one step's counts of a
population, one field of ``bits`` bits per neuron, packed into words of ``width`` bits.

Packing: read the plane as one bit string, field i at bits [i·b, i·b + b), and cut it
into words, word k holding bits [k·W, k·W + W) (bit 0 of a word is its least significant
bit). A plane of N neurons takes ⌈N·b / W⌉ words, the count ``SerialPlan`` allots to a
step's plane, and starts at a word boundary. When b does not divide W, a field may
straddle two words (b = 3, W = 32: field 10 is bits 30, 31 of word 0 and bit 0 of word
1). The bits of the last word above the last field are zero.

``pack_plane`` and ``unpack_plane`` are the Python reference. ``PlaneReader`` turns a plane
in memory into the event stream of its non-zero counts; ``PlaneWriter`` packs a stream of
counts, one per neuron, into a plane in memory.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .events import bits_for

__all__ = ["plane_words", "pack_plane", "unpack_plane", "plane_command_layout",
           "plane_event_layout", "PlaneReader", "PlaneWriter"]


def _check(bits, width):
    for name, value in (("bits", bits), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if bits > width:
        raise ValueError(f"a field of {bits} bits does not fit a word of {width} bits")


def plane_words(neurons: int, bits: int, width: int) -> int:
    """Words of one step's plane: ⌈neurons · bits / width⌉."""
    _check(bits, width)
    return -(-neurons * bits // width)


def pack_plane(counts, bits: int, width: int) -> list[int]:
    """The words of the plane holding ``counts`` (one per neuron, in neuron order)."""
    _check(bits, width)
    string = 0
    for i, count in enumerate(counts):
        count = int(count)
        if not 0 <= count < 1 << bits:
            raise ValueError(f"count {count} of neuron {i} does not fit {bits} bits")
        string |= count << (i * bits)
    mask = (1 << width) - 1
    return [(string >> (k * width)) & mask
            for k in range(plane_words(len(counts), bits, width))]


def unpack_plane(words, n: int, bits: int, width: int) -> list[int]:
    """The ``n`` counts of the plane in ``words`` (exactly ``plane_words(n, …)`` of them)."""
    if len(words) != plane_words(n, bits, width):
        raise ValueError(f"a plane of {n} fields of {bits} bits takes "
                         f"{plane_words(n, bits, width)} words of {width} bits, not "
                         f"{len(words)}")
    string = 0
    for k, word in enumerate(words):
        if not 0 <= int(word) < 1 << width:
            raise ValueError(f"word {k} ({word}) does not fit {width} bits")
        string |= int(word) << (k * width)
    return [(string >> (i * bits)) & ((1 << bits) - 1) for i in range(n)]


def plane_command_layout(addr_width: int, max_neurons: int) -> data.StructLayout:
    """A plane to read or write: its first word's address and its number of neurons."""
    return data.StructLayout({"base": unsigned(addr_width),
                              "neurons": unsigned(bits_for(max_neurons))})


def plane_event_layout(bits: int, max_neurons: int) -> data.StructLayout:
    """A non-zero count of neuron ``neuron`` (flat index), or the end-of-plane beat
    (``last``)."""
    return data.StructLayout({"neuron": unsigned(bits_for(max_neurons - 1)),
                              "count": unsigned(bits), "last": unsigned(1)})


class _PlanePort(wiring.Component):
    def __init__(self, width, bits, max_neurons, addr_width, members):
        _check(bits, width)
        for name, value in (("max_neurons", max_neurons), ("addr_width", addr_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        self.width, self.bits = width, bits
        self.max_neurons, self.addr_width = max_neurons, addr_width
        cmd = stream.Signature(plane_command_layout(addr_width, max_neurons))
        super().__init__({"cmd": In(cmd), **members})


class PlaneReader(_PlanePort):
    """Reads a plane from memory and sends its non-zero counts as events.

    Parameters (keyword-only): ``width`` (W, bits of a memory word), ``bits`` (b, bits of
    a field, at most W), ``max_neurons`` (the largest plane), ``addr_width`` (the plane
    memory's address bits).

    Members: ``cmd`` (In stream of ``plane_command_layout``): a plane, ``neurons`` N ≤
    ``max_neurons`` fields from word ``base``, taken while idle or in the cycle the previous
    plane's end beat leaves; ``rd`` (Out, a flipped ``memory.ReadPort.Signature``): reads
    the plane memory, synchronous with enable (``data`` holds the word addressed in the
    last cycle with ``en``); ``o`` (Out stream of ``plane_event_layout``): for each
    non-zero count, in ascending neuron order, its neuron's flat index and the count
    (``last`` 0); then one end-of-plane beat: ``last`` 1, ``neuron`` 0, ``count`` 0. A plane
    of 0 neurons sends the end beat alone.

    Words base, base + 1, … (modulo the address space) are read in order, ⌈N·b/W⌉ of
    them, each once, and no other. A word's events are the non-zero fields whose last bit
    lies in it; the last word's bits above field N − 1 are ignored, whatever they hold.
    Timing: the first word is read in the cycle the command is taken (its address straight
    from ``cmd``), and the next word in the cycle the current word's last event leaves, or
    in the cycle the word arrives if it has none. So a word costs one cycle if it has no
    event and one per event otherwise: with ``o`` always ready, the end beat leaves
    1 + Σ_k max(1, e_k) cycles after the command is taken (e_k: the events of word k), at
    most words + events + 1, and the next command is taken in that cycle. ``rd.en`` is
    combinational from ``o.ready`` and from ``rd.data`` (a word's fields are tested in
    the cycle it arrives), ``o`` from ``rd.data``, and ``cmd.ready`` from ``o.ready``.
    """

    def __init__(self, *, width: int, bits: int, max_neurons: int, addr_width: int):
        super().__init__(width, bits, max_neurons, addr_width, {
            "rd": Out(memory.ReadPort.Signature(addr_width=addr_width,
                                                shape=unsigned(width)).flip()),
            "o": Out(stream.Signature(plane_event_layout(bits, max_neurons)))})

    @property
    def slots(self) -> int:
        """Fields a word can complete: ⌊(W + b − 1) / b⌋."""
        return (self.width + self.bits - 1) // self.bits

    def elaborate(self, platform):
        m = Module()
        W, b, F = self.width, self.bits, self.slots
        cmd, rd, o = self.cmd, self.rd, self.o
        n_range = range(self.max_neurons + 1)
        busy, have, end = Signal(), Signal(), Signal()  # a plane; rd.data holds a word
        addr = Signal(self.addr_width)  # the next word to read
        # A word's fields are those whose last bit lies in it. At word k the first
        # r = k·W mod b bits are the top of a field begun in word k − 1 (held in `top`):
        # r selects the window's layout, its number of fields and the next word's r.
        carry = Signal(range(b))
        top = Signal(b - 1)  # the previous word's top b − 1 bits

        def per_carry(values):
            return Const(values[0]) if b == 1 else Array(Const(v) for v in values)[carry]

        fields = per_carry([(W + r) // b for r in range(b)])
        next_carry = per_carry([(W + r) % b for r in range(b)])
        first = Signal(n_range)  # the neuron of the window's field 0
        left = Signal(n_range)  # N − first
        window = Signal(W + b - 1)
        if b == 1:
            m.d.comb += window.eq(rd.data)
        else:
            with m.Switch(carry):
                for r in range(b):
                    with m.Case(r):
                        m.d.comb += window.eq(Cat(top[b - 1 - r:], rd.data))
        slot_count = [window[j * b:(j + 1) * b] for j in range(F)]
        sent = Signal(F)  # fields of this word already sent
        pending = Signal(F)
        m.d.comb += pending.eq(Cat(have & (slot_count[j] != 0) & (fields > j) & (left > j)
                                   & ~sent[j] for j in range(F)))
        slot = Signal(range(max(2, F)))
        for j in reversed(range(F)):
            with m.If(pending[j]):
                m.d.comb += slot.eq(j)
        only = (pending & (pending - 1)) == 0
        last_word = left <= fields

        # Send: the lowest pending field, or the end beat.
        with m.If(end):
            m.d.comb += [o.valid.eq(1), o.payload.last.eq(1)]
        with m.Elif(pending != 0):
            m.d.comb += [o.valid.eq(1), o.payload.neuron.eq(first + slot),
                         o.payload.count.eq(Array(slot_count)[slot])]
        with m.If(o.valid & o.ready & ~end):
            m.d.sync += sent.eq(sent | (Const(1, F) << slot))

        # Fetch: the next word once this one's last event leaves (or it has none).
        advance = have & ((pending == 0) | (only & o.ready))
        take = cmd.valid & cmd.ready
        m.d.comb += [cmd.ready.eq(~busy | (end & o.ready)),
                     rd.addr.eq(Mux(take, cmd.payload.base, addr)),
                     rd.en.eq((take & (cmd.payload.neurons != 0)) | (advance & ~last_word))]
        with m.If(advance):
            m.d.sync += [sent.eq(0), carry.eq(next_carry), first.eq(first + fields),
                         left.eq(left - fields), addr.eq(addr + 1)]
            if b > 1:
                m.d.sync += top.eq(rd.data[W - b + 1:])
            with m.If(last_word):
                m.d.sync += [have.eq(0), end.eq(1)]
        with m.If(end & o.ready):
            m.d.sync += [end.eq(0), busy.eq(0)]
        with m.If(take):
            n = cmd.payload.neurons
            m.d.sync += [busy.eq(1), have.eq(n != 0), end.eq(n == 0), sent.eq(0),
                         carry.eq(0), first.eq(0), left.eq(n),
                         addr.eq(cmd.payload.base + 1)]
        return m


class PlaneWriter(_PlanePort):
    """Packs a plane's counts, one per neuron, into memory.

    Parameters (keyword-only): as ``PlaneReader``'s.

    Members: ``cmd`` (In stream of ``plane_command_layout``): a plane of N ≤
    ``max_neurons`` neurons to write from word ``base``, taken only while idle;
    ``i`` (In stream of {``count``: b bits}): the counts of neurons 0, 1, …, N − 1 in this
    order, one per beat, taken from the cycle after the command; ``wr`` (Out, a flipped
    ``memory.WritePort.Signature``): writes the plane memory.

    Each of the words base … base + ⌈N·b/W⌉ − 1 is written once, in order, and no other:
    a word in the cycle the beat of the field holding its last bit is taken; the last word
    (zero above the last field) in the cycle of the last beat, or in the next cycle when
    the last field straddles into it. Afterwards the words hold
    ``pack_plane(counts, b, W)``. ``cmd.ready`` is the done signal: it rises in the cycle
    after the plane's last write, and a read issued from that cycle on sees the whole
    plane. With counts always offered, a plane takes N + 1 cycles from its command to
    ``cmd.ready`` (N + 2 when the last field straddles). A plane of 0 neurons writes
    nothing and leaves the writer idle in the next cycle.
    """

    def __init__(self, *, width: int, bits: int, max_neurons: int, addr_width: int):
        super().__init__(width, bits, max_neurons, addr_width, {
            "i": In(stream.Signature(data.StructLayout({"count": unsigned(bits)}))),
            "wr": Out(memory.WritePort.Signature(addr_width=addr_width,
                                                 shape=unsigned(width)).flip())})

    def elaborate(self, platform):
        m = Module()
        W, b = self.width, self.bits
        cmd, i, wr = self.cmd, self.i, self.wr
        busy, spill = Signal(), Signal()  # a plane; the last field's top is still to write
        addr = Signal(self.addr_width)  # the word being filled
        pos = Signal(range(W))  # its bits filled so far
        acc = Signal(W)  # those bits, zero above pos
        left = Signal(range(self.max_neurons + 1))  # counts still to come
        placed = Signal(W + b - 1)  # the word with the incoming field at pos
        m.d.comb += placed.eq(acc | (i.payload.count << pos))
        fills = pos >= W - b  # the field reaches the word's last bit
        straddles = pos > W - b
        last = left == 1
        put = i.valid & i.ready
        m.d.comb += [cmd.ready.eq(~busy), i.ready.eq(busy & ~spill),
                     wr.addr.eq(addr), wr.data.eq(Mux(spill, acc, placed[:W])),
                     wr.en.eq(spill | (put & (fills | last)))]
        with m.If(put):
            m.d.sync += left.eq(left - 1)
            with m.If(fills):
                m.d.sync += [acc.eq(placed[W:]), pos.eq(pos - (W - b)), addr.eq(addr + 1)]
            with m.Else():
                m.d.sync += [acc.eq(placed[:W]), pos.eq(pos + b)]
            with m.If(last):
                with m.If(straddles):
                    m.d.sync += spill.eq(1)
                with m.Else():
                    m.d.sync += busy.eq(0)
        with m.If(spill):
            m.d.sync += [spill.eq(0), busy.eq(0)]
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [busy.eq(cmd.payload.neurons != 0), addr.eq(cmd.payload.base),
                         pos.eq(0), acc.eq(0), left.eq(cmd.payload.neurons)]
        return m
