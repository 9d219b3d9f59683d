# amaranth: UnusedElaboratable=no
"""Spike planes: the Python packing against hand-worked words and SerialPlan's word count;
PlaneReader and PlaneWriter alone in amaranth.sim, against a Python memory with random
back-pressure and stalls; both through one amaranth Memory."""

import gc
import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hwsnn.hdl.planes import PlaneReader, PlaneWriter, pack_plane, plane_words, unpack_plane
from hwsnn.hdl.serial import SerialPlan, count_bits
from hwsnn.hdl.streams import stream_put
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import set_membrane_widths

MAX_NEURONS, ADDR_WIDTH = 100, 10
SIZES = [0, 1, 7, 11, 16, 43, 100]  # 11 × 3 bits straddle W = 32; 16 fills W = 32 at b = 2
FORMATS = [(b, w) for b in (1, 2, 3) for w in (8, 32)]
SEEDS = [0, 1, 2]


# -- the Python packing --------------------------------------------------------------------
def test_hand_worked_words():
    # b = 3, W = 8, counts [1, 2, 3, 4]: fields at bits 0-2 (001), 3-5 (010), 6-8 (011, its
    # bit 8 in word 1) and 9-11 (100). Word 0 = bits 0, 4, 6, 7 = 1 + 16 + 64 + 128 = 209;
    # word 1 = bit 11 − 8 = 3: 8. Twelve bits: two words.
    assert pack_plane([1, 2, 3, 4], 3, 8) == [0b11010001, 0b00001000]
    # A straddling field whose top bit is the only one in the last word: 7 at bits 6-8.
    assert pack_plane([0, 0, 7], 3, 8) == [0b11000000, 0b1]
    # One bit a neuron: nine spikes fill word 0 and bit 0 of word 1.
    assert pack_plane([1] * 9, 1, 8) == [0xFF, 0x01]
    # b = 2, W = 32: 16 fields a word; the 17th starts word 1.
    assert pack_plane([3] * 16 + [2], 2, 32) == [0xFFFFFFFF, 0b10]
    assert pack_plane([], 3, 32) == []
    assert unpack_plane([0b11010001, 0b00001000], 4, 3, 8) == [1, 2, 3, 4]


@pytest.mark.parametrize("bits,width", FORMATS + [(3, 3), (5, 12)])
def test_pack_unpack_round_trip(bits, width):
    rng = random.Random(bits * 100 + width)
    for n in list(range(0, 40)) + [99, 100]:
        counts = [rng.randrange(1 << bits) for _ in range(n)]
        words = pack_plane(counts, bits, width)
        assert len(words) == plane_words(n, bits, width) == -(-n * bits // width)
        assert all(0 <= w < 1 << width for w in words)
        assert unpack_plane(words, n, bits, width) == counts


def test_bad_planes_are_refused():
    with pytest.raises(ValueError, match="count 8 of neuron 1"):
        pack_plane([1, 8], 3, 8)
    with pytest.raises(ValueError, match="takes 2 words"):
        unpack_plane([0], 4, 3, 8)
    with pytest.raises(ValueError, match="does not fit a word"):
        pack_plane([1], 9, 8)
    with pytest.raises(TypeError, match="bits must be a positive integer"):
        PlaneReader(width=8, bits=0, max_neurons=4, addr_width=4)
    with pytest.raises(TypeError, match="addr_width must be a positive integer"):
        PlaneWriter(width=8, bits=1, max_neurons=4, addr_width=0)


def _pop(name, kind, shape, projs, group_size):
    return QPopulation(name, kind, tuple(shape), 4, group_size, 2, 2, 2,
                       np.zeros(shape, dtype=np.int64), projs, 2, 32, False, 1.0, 1.0,
                       1.0 if kind == "readout" else None)


@pytest.mark.parametrize("width", [8, 12, 32])
def test_word_count_agrees_with_serial_plan(width):
    """A GN map of 75 neurons at τ = 4 (3 bits) and one of 13 at τ = 1 (1 bit)."""
    rng = np.random.default_rng(0)
    h1 = _pop("h1", "gn", (3, 5, 5), [QProjection("input", "conv",
                                                  rng.integers(-3, 4, (3, 1, 3, 3)), 1, 1)], 4)
    h2 = _pop("h2", "gn", (13,), [QProjection("h1", "dense", rng.integers(-3, 4, (13, 75)))],
              1)
    out = _pop("out", "readout", (3,), [QProjection("h2", "dense",
                                                     rng.integers(-3, 4, (3, 13)))], 1)
    net = QNet("gn", 2, 0, InputSpecQ((1, 5, 5)), [h1, h2, out], 8, 32)
    set_membrane_widths(net)
    validate(net)
    plan = SerialPlan(net, lanes=2, plane_width=width)
    for pop, layer in zip(net.populations[:2], plan.layers[:2], strict=True):
        assert count_bits(pop) == (3 if pop.name == "h1" else 1)
        assert layer.plane_words == plane_words(pop.size, count_bits(pop), width)
        assert layer.plane_words == len(pack_plane([0] * pop.size, count_bits(pop), width))


# -- planes for the hardware ------------------------------------------------------------------
def _counts(rng, n, bits, kind):
    top = (1 << bits) - 1
    if kind == "zero":
        return [0] * n
    if kind == "full":
        return [top] * n
    if kind == "sparse":
        return [rng.randint(1, top) if rng.random() < 0.05 else 0 for _ in range(n)]
    return [rng.randint(0, top) for _ in range(n)]


def _planes(rng, bits, width):
    """Every size with every kind of counts, shuffled, each at its own base, with gaps."""
    planes, base = [], rng.randrange(4)
    for n in SIZES:
        for kind in ("random", "zero", "full", "sparse"):
            planes.append((base, _counts(rng, n, bits, kind)))
            base += plane_words(n, bits, width) + rng.randrange(3)
    assert base <= 1 << ADDR_WIDTH
    rng.shuffle(planes)
    return planes


def _memory(rng, bits, width, planes):
    """Random words everywhere, the planes' words where they lie, with random bits above
    each plane's last field (which the reader must ignore)."""
    mem = [rng.randrange(1 << width) for _ in range(1 << ADDR_WIDTH)]
    for base, counts in planes:
        words = pack_plane(counts, bits, width)
        for k, word in enumerate(words):
            mem[base + k] = word
        if words:
            used = len(counts) * bits - (len(words) - 1) * width  # bits of the last word
            mem[base + len(words) - 1] |= rng.randrange(1 << width) >> used << used
    return mem


def expected_events(counts):
    """(neuron, count, last) of every non-zero count in neuron order, then the end beat."""
    return [(i, c, 0) for i, c in enumerate(counts) if c] + [(0, 0, 1)]


def _same(got, want):
    """Fail naming the first difference (long lists make pytest's own diff unreadable)."""
    if got != want:
        k = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                 min(len(got), len(want)))
        pytest.fail(f"{len(got)} items, {len(want)} wanted; first difference at {k}: "
                    f"{got[k:k + 3]} instead of {want[k:k + 3]}")


def _event(beat):
    return int(beat.neuron), int(beat.count), int(beat.last)


def _simulate(top, background, foreground):
    """Run ``foreground`` (which ends by itself) beside the ``background`` testbenches."""
    sim = Simulator(top)
    sim.add_clock(1e-6)
    for bench in background:
        sim.add_testbench(bench, background=True)
    sim.add_testbench(foreground)
    sim.run()
    # A testbench still waiting on a hung design is closed here, not while pytest formats
    # the failure (where CPython 3.11 then stops with "AST constructor recursion depth
    # mismatch").
    del sim
    gc.collect()


def _serve_reads(dut, mem, reads):
    """The plane memory's read port: the word addressed in a cycle with ``en`` appears on
    ``data`` in the next one and stays until the next read."""
    async def memory(ctx):
        while True:
            _, _, addr, en = await ctx.tick().sample(dut.rd.addr, dut.rd.en)
            if en:
                reads.append(addr)
                ctx.set(dut.rd.data, mem[addr])
    return memory


def _read(bits, width, planes, mem, seed, busy):
    """Run the reader over ``planes`` (commands with random gaps, ``o`` ready with
    probability 1 − busy). Returns the beats taken, the addresses read and any beat that
    changed or was withdrawn while it waited."""
    dut = PlaneReader(width=width, bits=bits, max_neurons=MAX_NEURONS, addr_width=ADDR_WIDTH)
    rng_cmd, rng_out = random.Random(seed), random.Random(seed + 1000)
    got, reads, unstable = [], [], []
    limit = 20 * sum(plane_words(len(c), bits, width) + len(c) + 4 for _, c in planes)

    async def commands(ctx):
        for base, counts in planes:
            await stream_put(ctx, dut.cmd, {"base": base, "neurons": len(counts)},
                             rng_cmd, busy)

    async def consumer(ctx):
        ends, waiting = 0, None
        for _ in range(limit):
            if ends == len(planes):
                break
            ready = rng_out.random() >= busy
            ctx.set(dut.o.ready, ready)
            _, _, valid, beat = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            beat = _event(beat) if valid else None
            if waiting is not None and beat != waiting:
                unstable.append((waiting, beat))
            waiting = beat if valid and not ready else None
            if valid and ready:
                got.append(beat)
                ends += beat[2]
        ctx.set(dut.o.ready, 1)
        for _ in range(20):  # nothing more comes out
            _, _, valid, beat = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append(_event(beat))

    _simulate(dut, [_serve_reads(dut, mem, reads), commands], consumer)
    return got, reads, unstable


def _words_read(bits, width, planes):
    return [base + k for base, counts in planes
            for k in range(plane_words(len(counts), bits, width))]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bits,width", FORMATS)
def test_reader(bits, width, seed):
    """Planes of every size (0, 1, not a multiple of W/b, straddling fields) with random,
    all-zero, all-maximum and sparse counts, one command after another at other bases,
    under random command gaps and back-pressure: the events of each plane in neuron order,
    then its end beat; each of its words read once, in order, and no other word; a beat
    waiting on ``o`` stays as it is."""
    rng = random.Random(seed)
    planes = _planes(rng, bits, width)
    mem = _memory(rng, bits, width, planes)
    got, reads, unstable = _read(bits, width, planes, mem, seed, 0.4)
    _same(got, [e for _, counts in planes for e in expected_events(counts)])
    _same(reads, _words_read(bits, width, planes))
    assert unstable == []


def _word_events(counts, bits, width):
    """Events per word: field i belongs to the word holding its last bit."""
    events = [0] * plane_words(len(counts), bits, width)
    for i, c in enumerate(counts):
        if c:
            events[(i * bits + bits - 1) // width] += 1
    return events


@pytest.mark.parametrize("bits,width", FORMATS)
def test_reader_cycles(bits, width):
    """Commands always offered, ``o`` always ready: from the cycle a command is taken to the
    cycle its end beat leaves, 1 + Σ max(1, events of word k) cycles, at most words +
    events + 1; the next command is taken in the end beat's cycle."""
    rng = random.Random(7)
    planes = _planes(rng, bits, width)
    mem = _memory(rng, bits, width, planes)
    dut = PlaneReader(width=width, bits=bits, max_neurons=MAX_NEURONS, addr_width=ADDR_WIDTH)
    taken, ends, got = [], [], []

    async def bench(ctx):
        k = 0
        ctx.set(dut.o.ready, 1)
        for cycle in range(10 * sum(len(c) + 4 for _, c in planes)):
            if len(ends) == len(planes):
                return
            ctx.set(dut.cmd.valid, k < len(planes))
            if k < len(planes):
                ctx.set(dut.cmd.payload, {"base": planes[k][0], "neurons": len(planes[k][1])})
            _, _, cv, cr, ov, beat, addr, en = await ctx.tick().sample(
                dut.cmd.valid, dut.cmd.ready, dut.o.valid, dut.o.payload, dut.rd.addr,
                dut.rd.en)
            if cv and cr:
                taken.append(cycle)
                k += 1
            if ov:
                got.append(_event(beat))
                if beat.last:
                    ends.append(cycle)
            if en:
                ctx.set(dut.rd.data, mem[addr])

    _simulate(dut, [], bench)
    _same(got, [e for _, counts in planes for e in expected_events(counts)])
    assert taken[0] == 0 and len(ends) == len(planes)
    for p, (_, counts) in enumerate(planes):
        per_word = _word_events(counts, bits, width)
        cycles = ends[p] - taken[p]
        assert cycles == 1 + sum(max(1, e) for e in per_word)
        assert cycles <= len(per_word) + sum(per_word) + 1
        if p + 1 < len(planes):
            assert taken[p + 1] == ends[p]


@pytest.mark.parametrize("bits,width", [(1, 8), (3, 32)])
def test_reader_skips_zero_words_without_ready(bits, width):
    """With ``o`` not ready, words without events still go by one a cycle: the first beat
    (the first event, or the end beat) is offered 1 + (words before the first word with
    an event) cycles after the command is taken."""
    rng = random.Random(11)
    planes = _planes(rng, bits, width)
    mem = _memory(rng, bits, width, planes)
    dut = PlaneReader(width=width, bits=bits, max_neurons=MAX_NEURONS, addr_width=ADDR_WIDTH)
    delays, got = [], []

    async def bench(ctx):
        async def tick():
            _, _, addr, en, cv, cr, ov, beat = await ctx.tick().sample(
                dut.rd.addr, dut.rd.en, dut.cmd.valid, dut.cmd.ready, dut.o.valid,
                dut.o.payload)
            if en:
                ctx.set(dut.rd.data, mem[addr])
            return cv and cr, ov, _event(beat)

        for base, counts in planes:
            ctx.set(dut.o.ready, 0)
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {"base": base, "neurons": len(counts)})
            for _ in range(5):
                if (await tick())[0]:
                    break
            ctx.set(dut.cmd.valid, 0)
            delay = 1
            while not (await tick())[1] and delay < 200:
                delay += 1
            delays.append(delay)
            ctx.set(dut.o.ready, 1)
            for _ in range(len(counts) + 5):
                _, ov, beat = await tick()
                if ov:
                    got.append(beat)
                    if beat[2]:
                        break

    _simulate(dut, [], bench)
    _same(got, [e for _, counts in planes for e in expected_events(counts)])
    want = []
    for _, counts in planes:
        per_word = _word_events(counts, bits, width)
        want.append(1 + next((k for k, e in enumerate(per_word) if e), len(per_word)))
    assert delays == want


# -- the writer -----------------------------------------------------------------------------
def _write(bits, width, planes, seed, busy, mem):
    """Run the writer over ``planes``: each command, then its counts, with random stalls.
    Returns the (address, word) writes in order."""
    dut = PlaneWriter(width=width, bits=bits, max_neurons=MAX_NEURONS, addr_width=ADDR_WIDTH)
    rng = random.Random(seed)
    writes = []

    async def memory(ctx):
        while True:
            _, _, addr, en, word = await ctx.tick().sample(dut.wr.addr, dut.wr.en,
                                                           dut.wr.data)
            if en:
                writes.append((addr, word))
                mem[addr] = word

    finished = []

    async def producer(ctx):
        for base, counts in planes:
            await stream_put(ctx, dut.cmd, {"base": base, "neurons": len(counts)}, rng, busy)
            for c in counts:
                await stream_put(ctx, dut.i, {"count": c}, rng, busy)
        finished.append(True)

    async def until_done(ctx):
        for _ in range(20 * sum(len(c) + 4 for _, c in planes)):
            if finished and ctx.get(dut.cmd.ready):
                break
            await ctx.tick()
        await ctx.tick().repeat(5)  # no write after the writer is done

    _simulate(dut, [memory, producer], until_done)
    return writes


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bits,width", FORMATS)
def test_writer(bits, width, seed):
    """The same planes as the reader's, written one after another with random stalls: each
    word of each plane written once, in order, holding ``pack_plane``; no other word."""
    rng = random.Random(seed)
    planes = _planes(rng, bits, width)
    before = [rng.randrange(1 << width) for _ in range(1 << ADDR_WIDTH)]
    mem = list(before)
    writes = _write(bits, width, planes, seed, 0.4, mem)
    want = [(base + k, w) for base, counts in planes
            for k, w in enumerate(pack_plane(counts, bits, width))]
    _same(writes, want)
    untouched = set(range(1 << ADDR_WIDTH)) - {a for a, _ in want}
    assert all(mem[a] == before[a] for a in untouched)


@pytest.mark.parametrize("bits,width", FORMATS)
def test_writer_cycles(bits, width):
    """Command and counts always offered: a word is written in the cycle of the beat that
    fills it, the last one in the cycle of the last beat, or in the next when the last
    field straddles into it; ``cmd.ready`` rises in the cycle after the last write."""
    rng = random.Random(3)
    planes = _planes(rng, bits, width)
    dut = PlaneWriter(width=width, bits=bits, max_neurons=MAX_NEURONS, addr_width=ADDR_WIDTH)
    beats = [(p, c) for p, (_, counts) in enumerate(planes) for c in [None] + counts]
    log = []  # (cycle, event)

    async def bench(ctx):
        k = 0
        for cycle in range(3 * len(beats) + 3 * len(planes) + 10):
            is_cmd = k < len(beats) and beats[k][1] is None
            ctx.set(dut.cmd.valid, is_cmd)
            ctx.set(dut.i.valid, k < len(beats) and not is_cmd)
            if is_cmd:
                base, counts = planes[beats[k][0]]
                ctx.set(dut.cmd.payload, {"base": base, "neurons": len(counts)})
            elif k < len(beats):
                ctx.set(dut.i.payload, {"count": beats[k][1]})
            _, _, cr, ir, en, addr = await ctx.tick().sample(dut.cmd.ready, dut.i.ready,
                                                             dut.wr.en, dut.wr.addr)
            if is_cmd and cr:
                log.append((cycle, "cmd"))
                k += 1
            elif k < len(beats) and not is_cmd and ir:
                log.append((cycle, "beat"))
                k += 1
            if en:
                log.append((cycle, ("write", addr)))

    _simulate(dut, [], bench)
    # The model: command at t, beat j at t + 1 + j, the next command when the writer is free.
    want, t = [], 0
    for base, counts in planes:
        n = len(counts)
        want.append((t, "cmd"))
        want += [(t + 1 + j, "beat") for j in range(n)]
        words = plane_words(n, bits, width)
        writes = []
        for k in range(words):
            filler = (min((k + 1) * width, n * bits) - 1) // bits  # holds the word's last bit
            straddles = k == words - 1 and (n - 1) * bits < k * width
            writes.append((t + 1 + filler + straddles, ("write", base + k)))
        want += writes
        t = max((c for c, _ in writes), default=t) + 1
    assert sorted(log, key=lambda x: (x[0], str(x[1]))) == sorted(
        want, key=lambda x: (x[0], str(x[1])))


# -- both, through one memory -----------------------------------------------------------------
class _Planes(Elaboratable):
    """A writer and a reader on one amaranth Memory (write port, read port)."""

    def __init__(self, bits, width, init):
        kw = dict(width=width, bits=bits, max_neurons=MAX_NEURONS, addr_width=ADDR_WIDTH)
        self.writer, self.reader = PlaneWriter(**kw), PlaneReader(**kw)
        self.mem = Memory(shape=unsigned(width), depth=1 << ADDR_WIDTH, init=init)
        self.wport, self.rport = self.mem.write_port(), self.mem.read_port()

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem, m.submodules.writer = self.mem, self.writer
        m.submodules.reader = self.reader
        wiring.connect(m, self.writer.wr, self.wport)
        wiring.connect(m, self.reader.rd, self.rport)
        return m


@pytest.mark.parametrize("bits,width", [(1, 8), (3, 8), (2, 32), (3, 32)])
def test_round_trip(bits, width):
    """Each plane written, then read back (while the next is written) under random stalls
    and back-pressure: the reader sends exactly the written counts; the memory holds
    ``pack_plane`` of each plane and its other words are as they were."""
    rng = random.Random(bits * 10 + width)
    planes = _planes(rng, bits, width)
    init = [rng.randrange(1 << width) for _ in range(1 << ADDR_WIDTH)]
    top = _Planes(bits, width, init)
    w, r = top.writer, top.reader
    got, busy = [], 0.3
    rng_out = random.Random(1)

    async def driver(ctx):
        for base, counts in planes:
            await stream_put(ctx, w.cmd, {"base": base, "neurons": len(counts)}, rng, busy)
            for c in counts:
                await stream_put(ctx, w.i, {"count": c}, rng, busy)
            while not ctx.get(w.cmd.ready):
                await ctx.tick()
            await stream_put(ctx, r.cmd, {"base": base, "neurons": len(counts)}, rng, busy)

    async def consumer(ctx):
        ends = 0
        for _ in range(30 * sum(len(c) + 4 for _, c in planes)):
            if ends == len(planes):
                break
            ready = rng_out.random() >= busy
            ctx.set(r.o.ready, ready)
            _, _, valid, beat = await ctx.tick().sample(r.o.valid, r.o.payload)
            if valid and ready:
                got.append(_event(beat))
                ends += int(beat.last)
        for a in range(1 << ADDR_WIDTH):
            mem[a] = ctx.get(top.mem.data[a])

    mem = [None] * (1 << ADDR_WIDTH)
    _simulate(top, [driver], consumer)
    _same(got, [e for _, counts in planes for e in expected_events(counts)])
    want = list(init)
    for base, counts in planes:
        for k, word in enumerate(pack_plane(counts, bits, width)):
            want[base + k] = word
    _same(mem, want)
