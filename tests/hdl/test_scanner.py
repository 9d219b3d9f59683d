# amaranth: UnusedElaboratable=no
"""Lane-group planes: the Python packing and scan against a hand-worked plane and an
independent numpy computation, pooled or not; PlaneScanner on an amaranth Memory holding
many planes amid garbage, each with its own pooling, against ``scan_events`` under random
back-pressure, and its exact cycles."""

import gc
import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, unsigned
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hwsnn.hdl.scanner import (
    SCAN_OVERHEAD,
    PlaneScanner,
    lane_groups,
    pack_lane_plane,
    scan_cycles,
    scan_events,
)

MAX_C, MAX_H, MAX_W, ADDR_WIDTH, MAX_POOL = 20, 4, 5, 10, 2
FORMATS = [(p, b) for p in (1, 3, 4, 8) for b in (1, 2, 4)]


# -- the Python reference ------------------------------------------------------------------
# P = 3 lanes of B = 2 bits, shape [C, H, W] = [4, 1, 2]: G = 2 groups, words at
# (y·2 + x)·2 + g. Counts at x = 0: channels 0-3 = 1, 0, 3, 2; at x = 1: 0, 0, 0, 1.
#   word 0 (x 0, g 0): lanes = c0, c1, c2 = 1, 0, 3 → 1 + 3·16 = 49
#   word 1 (x 0, g 1): lane 0 = c3 = 2, lanes 1, 2 padding → 2
#   word 2 (x 1, g 0): 0, 0, 0 → 0
#   word 3 (x 1, g 1): lane 0 = c3 = 1 → 1
# Events (c, y, x, row = x·4 + c, count): word 0 gives c0 (1) and c2 (3), word 1 c3 (2),
# word 2 none, word 3 c3 at x 1 (row 7). Cycles: 2 + 1 + 1 (zero word) + 1, plus the overhead.
HAND_COUNTS = np.array([[[1, 0]], [[0, 0]], [[3, 0]], [[2, 1]]])
HAND_WORDS = [49, 2, 0, 1]
HAND_EVENTS = [(0, 0, 0, 0, 1), (2, 0, 0, 2, 3), (3, 0, 0, 3, 2), (3, 0, 1, 7, 1)]
# Garbage in the padding lanes 1 and 2 of the words of group 1: 3, 3 and 1, 1.
HAND_GARBAGE = [49, 2 | 0b111100, 0, 1 | 0b010100]


def test_hand_worked_plane():
    assert pack_lane_plane(HAND_COUNTS, 3, 2) == HAND_WORDS
    assert scan_events(HAND_WORDS, (4, 1, 2), 3, 2) == HAND_EVENTS
    assert scan_events(HAND_GARBAGE, (4, 1, 2), 3, 2) == HAND_EVENTS
    assert scan_cycles(HAND_GARBAGE, (4, 1, 2), 3, 2) == 5 + SCAN_OVERHEAD
    # A vector [5] on 2 lanes of 3 bits: words (c0, c1), (c2, c3), (c4, padding).
    assert pack_lane_plane(np.array([0, 1, 2, 3, 4]), 2, 3) == [0 | 1 << 3, 2 | 3 << 3, 4]
    assert scan_events([8, 26, 4 | 7 << 3], (5,), 2, 3) == [
        (1, 0, 0, 1, 1), (2, 0, 0, 2, 2), (3, 0, 0, 3, 3), (4, 0, 0, 4, 4)]
    # Pooled 2×2, the map is [4, 1, 1]: x = 1 is pooled x 0, so c3's second count has row
    # 3 (the same as its first); the other events are unchanged.
    assert scan_events(HAND_GARBAGE, (4, 1, 2), 3, 2, pool=1) == HAND_EVENTS[:3] + [
        (3, 0, 0, 3, 1)]


def _random_counts(rng, shape, bits, kind):
    top = (1 << bits) - 1
    if kind == "zero":
        return np.zeros(shape, dtype=np.int64)
    if kind == "full":
        return np.full(shape, top, dtype=np.int64)
    counts = rng.integers(0, top + 1, shape)
    if kind == "sparse":
        counts = counts * (rng.random(shape) < 0.1)
    return counts


def _shapes(lanes):
    """Vectors and maps, C < P, C a multiple of P and not."""
    return [(1,), (13,), (2 * lanes,), (max(1, lanes - 1), 2, 3), (2 * lanes + 1, 2, 2),
            (2 * lanes, 3, 1), (3, 3, 3), (5, 1, 4)]


def _with_garbage(rng, words, shape, lanes, bits):
    """``words`` with random counts in their padding lanes."""
    C = shape[0]
    G = lane_groups(C, lanes)
    out = []
    for k, word in enumerate(words):
        g = k % G
        for lane in range(lanes):
            if g * lanes + lane >= C:
                word |= int(rng.integers(0, 1 << bits)) << (lane * bits)
        out.append(word)
    return out


def _pooled(events, shape, pool):
    """``events`` (c, y, x, row, count) of a map ``shape`` moved to its 2^pool-fold pooled
    map: computed from the pooled map's own shape with numpy's index arithmetic."""
    C, H, W = (tuple(shape) + (1, 1))[:3]
    f = 1 << pool
    hp, wp = -(-H // f), -(-W // f)
    return [(c, y // f, x // f, int(np.ravel_multi_index((y // f, x // f, c), (hp, wp, C))),
             n) for c, y, x, _, n in events]


@pytest.mark.parametrize("lanes,bits", FORMATS)
def test_pack_and_scan_against_numpy(lanes, bits):
    """Each field of each packed word holds its channel's count (padding zero); the scan's
    events are numpy's non-zero counts in row order (position, then channel) and its
    cycles the per-word maxima, whatever the padding lanes hold; pooled 2- and 4-fold, the
    same events at the pooled map's positions and rows."""
    rng = np.random.default_rng(lanes * 10 + bits)
    for shape in _shapes(lanes):
        for kind in ("random", "zero", "full", "sparse"):
            counts = _random_counts(rng, shape, bits, kind)
            C, H, W = (shape + (1, 1))[:3]
            grid = counts.reshape(C, H, W)
            G = -(-C // lanes)
            words = pack_lane_plane(counts, lanes, bits)
            assert len(words) == H * W * G
            for y in range(H):
                for x in range(W):
                    for g in range(G):
                        word = words[(y * W + x) * G + g]
                        assert 0 <= word < 1 << (lanes * bits)
                        for lane in range(lanes):
                            c = g * lanes + lane
                            want = grid[c, y, x] if c < C else 0
                            assert (word >> (lane * bits)) & ((1 << bits) - 1) == want
            flat = grid.transpose(1, 2, 0).reshape(-1)  # row = (y·W + x)·C + c
            want = []
            for row in np.flatnonzero(flat):
                pos, c = divmod(int(row), C)
                y, x = divmod(pos, W)
                want.append((c, y, x, int(row), int(flat[row])))
            cycles = SCAN_OVERHEAD + sum(
                max(1, int(np.count_nonzero(grid[g * lanes:(g + 1) * lanes, y, x])))
                for y in range(H) for x in range(W) for g in range(G))
            garbage = _with_garbage(rng, words, (C, H, W), lanes, bits)
            for plane in (words, garbage):
                assert scan_events(plane, shape, lanes, bits) == want
                assert scan_cycles(plane, shape, lanes, bits) == cycles
                for pool in (1, 2):
                    assert scan_events(plane, shape, lanes, bits, pool) == \
                        _pooled(want, shape, pool)


def test_bad_planes_are_refused():
    with pytest.raises(ValueError, match=r"count 4 at \(c, y, x\) = \(1, 0, 2\) does not fit 2"):
        pack_lane_plane(np.array([[[0, 0, 0]], [[0, 0, 4]]]), 2, 2)
    with pytest.raises(ValueError, match="count -1 .* does not fit 2 unsigned bits"):
        pack_lane_plane(np.array([1, -1]), 2, 2)
    with pytest.raises(ValueError, match="counts must be integers"):
        pack_lane_plane(np.array([1.0]), 2, 2)
    with pytest.raises(ValueError, match=r"\[C, H, W\] or \[N\]"):
        pack_lane_plane(np.zeros((2, 2), dtype=int), 2, 2)
    with pytest.raises(TypeError, match="lanes must be a positive integer"):
        pack_lane_plane(np.array([1]), 0, 2)
    with pytest.raises(ValueError, match="takes 4 words, not 3"):
        scan_events([0, 0, 0], (4, 1, 2), 3, 2)
    with pytest.raises(ValueError, match="word 1 .* does not fit 6 bits"):
        scan_cycles([0, 64, 0, 0], (4, 1, 2), 3, 2)
    with pytest.raises(ValueError, match="W of shape"):
        scan_events([], (4, 1, 0), 3, 2)
    with pytest.raises(ValueError, match="pool must be a non-negative integer, not -1"):
        scan_events([0, 0, 0, 0], (4, 1, 2), 3, 2, -1)


@pytest.mark.parametrize("kwargs,message", [
    ({"lanes": 0}, "lanes must be a positive integer, not 0"),
    ({"bits": True}, "bits must be a positive integer, not True"),
    ({"max_channels": 2.0}, "max_channels must be a positive integer, not 2.0"),
    ({"max_height": -1}, "max_height must be a positive integer, not -1"),
    ({"max_width": None}, "max_width must be a positive integer, not None"),
    ({"addr_width": 0}, "addr_width must be a positive integer, not 0"),
    ({"max_pool": -1}, "max_pool must be a non-negative integer, not -1")])
def test_bad_parameters_are_refused(kwargs, message):
    params = dict(lanes=4, bits=2, max_channels=8, max_height=2, max_width=2, addr_width=4)
    with pytest.raises(TypeError, match=message):
        PlaneScanner(**{**params, **kwargs})


# -- the hardware ------------------------------------------------------------------------
class _Top(Elaboratable):
    """A scanner reading an amaranth Memory through its synchronous read port."""

    def __init__(self, lanes, bits, init):
        self.dut = PlaneScanner(lanes=lanes, bits=bits, max_channels=MAX_C, max_height=MAX_H,
                                max_width=MAX_W, addr_width=ADDR_WIDTH, max_pool=MAX_POOL)
        self.mem = Memory(shape=unsigned(lanes * bits), depth=1 << ADDR_WIDTH, init=init)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem, m.submodules.dut = self.mem, self.dut
        port = self.mem.read_port()
        m.d.comb += [port.addr.eq(self.dut.rd_addr), port.en.eq(self.dut.rd_en),
                     self.dut.rd_data.eq(port.data)]
        return m


def _layout(rng, lanes, bits, shapes, kinds):
    """Planes of the given shapes and kinds at their own bases in shuffled order, in a
    memory of random words, with garbage in every padding lane, each scanned with a pooling
    of 0 … MAX_POOL. Returns the memory and [(base, (C, H, W), words, pool)]."""
    mem = [int(w) for w in rng.integers(0, 1 << (lanes * bits), 1 << ADDR_WIDTH)]
    planes, base = [], int(rng.integers(0, 4))
    for shape in shapes:
        for kind in kinds:
            C, H, W = (shape + (1, 1))[:3]
            counts = _random_counts(rng, (C, H, W), bits, kind)
            words = _with_garbage(rng, pack_lane_plane(counts, lanes, bits), (C, H, W),
                                  lanes, bits)
            mem[base:base + len(words)] = words
            planes.append((base, (C, H, W), words, int(rng.integers(0, MAX_POOL + 1))))
            base += len(words) + int(rng.integers(0, 3))
    assert base <= 1 << ADDR_WIDTH
    order = rng.permutation(len(planes))
    return mem, [planes[i] for i in order]


def _event(beat):
    if beat.end:
        return ("end",)
    return int(beat.c), int(beat.y), int(beat.x), int(beat.row), int(beat.count)


def _same(got, want):
    """Fail naming the first difference (long lists make pytest's own diff unreadable)."""
    if got != want:
        k = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                 min(len(got), len(want)))
        pytest.fail(f"{len(got)} items, {len(want)} wanted; first difference at {k}: "
                    f"{got[k:k + 3]} instead of {want[k:k + 3]}")


def _scan(lanes, bits, mem, planes, seed, busy):
    """Scan ``planes`` one after another: each started after a random gap (none when
    ``busy`` is 0), ``o`` ready with probability 1 − busy. Returns the beats taken, the
    addresses read, each plane's (start cycle, end beat cycle), and the protocol faults
    seen (a waiting beat changed or withdrawn, ``busy`` wrong, a beat while idle)."""
    top = _Top(lanes, bits, mem)
    dut = top.dut
    rng = random.Random(seed)
    got, reads, spans, faults = [], [], [], []
    limit = 20 * sum(len(w) * (lanes + 1) + SCAN_OVERHEAD + 4 for _, _, w, _ in planes)

    async def bench(ctx):
        k, started, waiting, gap = 0, None, None, 0
        for cycle in range(limit):
            if k == len(planes) and started is None:
                break
            start = started is None and gap == 0
            if start:
                base, (C, H, W), words, pool = planes[k]
                ctx.set(dut.cfg, {"base": base, "channels": C, "height": H, "width": W,
                                  "groups": lane_groups(C, lanes), "pool": pool})
                started = cycle
            elif started is None:
                gap -= 1
            # A pulse while busy is ignored.
            ctx.set(dut.start, start or (started is not None and rng.random() < busy / 4))
            ready = rng.random() >= busy
            ctx.set(dut.o.ready, ready)
            _, _, is_busy, valid, beat, en, addr = await ctx.tick().sample(
                dut.busy, dut.o.valid, dut.o.payload, dut.rd_en, dut.rd_addr)
            beat = _event(beat) if valid else None
            if en:
                reads.append(addr)
            if is_busy != (started is not None and cycle > started):
                faults.append((cycle, "busy", is_busy))
            if valid and started is None:
                faults.append((cycle, "beat while idle", beat))
            if waiting is not None and beat != waiting:
                faults.append((cycle, "changed", waiting, beat))
            waiting = beat if valid and not ready else None
            if valid and ready:
                got.append(beat)
                if beat == ("end",):
                    spans.append((started, cycle))
                    started, k = None, k + 1
                    gap = int(rng.random() < busy) * rng.randrange(4)
        ctx.set(dut.start, 0)
        ctx.set(dut.o.ready, 1)
        for cycle in range(8):  # nothing more comes out, nothing more is read
            _, _, valid, en, is_busy = await ctx.tick().sample(dut.o.valid, dut.rd_en,
                                                                dut.busy)
            if valid or en or is_busy:
                faults.append(("after", cycle, valid, en, is_busy))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    del sim
    gc.collect()
    return got, reads, spans, faults


def _want(lanes, bits, planes):
    events = [e for _, shape, words, pool in planes
              for e in scan_events(words, shape, lanes, bits, pool) + [("end",)]]
    reads = [base + k for base, _, words, _ in planes for k in range(len(words))]
    return events, reads


def test_hand_worked_scan():
    """The hand-worked plane (with its padding garbage) at base 5, twice, amid garbage:
    its four events, then the end beat, in 8 cycles."""
    mem = [0b111111] * (1 << ADDR_WIDTH)
    mem[5:9] = HAND_GARBAGE
    planes = [(5, (4, 1, 2), HAND_GARBAGE, 0)] * 2
    got, reads, spans, faults = _scan(3, 2, mem, planes, 0, 0.0)
    assert got == (HAND_EVENTS + [("end",)]) * 2
    assert reads == [5, 6, 7, 8] * 2
    assert spans == [(0, 7), (8, 15)]
    assert faults == []


@pytest.mark.parametrize("seed,busy", [(0, 0.4), (1, 0.4), (2, 0.8)])
@pytest.mark.parametrize("lanes,bits", FORMATS)
def test_scanner(lanes, bits, seed, busy):
    """Vectors and maps (C < P, C a multiple of P and not, garbage in every padding lane)
    with random, all-zero, all-maximum and sparse counts, at their own bases amid garbage,
    scanned back to back with their own configurations under random gaps and
    back-pressure: ``scan_events`` of each plane, then its end beat; each of its words
    read once, in order, and no other; a waiting beat stays as it is; ``busy`` from the
    cycle after start to the end beat; ``start`` pulses while busy change nothing."""
    rng = np.random.default_rng([lanes, bits, seed])
    mem, planes = _layout(rng, lanes, bits, _shapes(lanes),
                          ("random", "zero", "full", "sparse"))
    got, reads, _, faults = _scan(lanes, bits, mem, planes, seed, busy)
    events, want_reads = _want(lanes, bits, planes)
    _same(got, events)
    _same(reads, want_reads)
    assert faults == []


@pytest.mark.parametrize("lanes,bits", [(1, 1), (3, 2), (4, 4), (8, 1), (8, 4)])
def test_scanner_cycles(lanes, bits):
    """``o`` always ready, each plane started in the cycle after the previous end beat:
    from the start cycle to the end beat's, both counted, ``scan_cycles`` cycles."""
    rng = np.random.default_rng([lanes, bits, 99])
    mem, planes = _layout(rng, lanes, bits, _shapes(lanes),
                          ("random", "zero", "full", "sparse"))
    got, reads, spans, faults = _scan(lanes, bits, mem, planes, 0, 0.0)
    events, want_reads = _want(lanes, bits, planes)
    _same(got, events)
    _same(reads, want_reads)
    assert faults == []
    assert spans[0][0] == 0
    for (start, end), (_, shape, words, _), following in zip(
            spans, planes, spans[1:] + [None], strict=True):
        assert end - start + 1 == scan_cycles(words, shape, lanes, bits)
        if following is not None:
            assert following[0] == end + 1


@pytest.mark.parametrize("lanes,bits", [(3, 2), (8, 1)])
def test_timing_paths(lanes, bits):
    """Against a Python model of the read port, probing every cycle: whatever ``rd_data``
    holds, ``rd_addr``, ``rd_en``, ``busy`` and ``o`` are the same (the word is registered
    before any field of it is tested); whatever ``o.ready`` is, ``rd_addr`` is the same."""
    rng = np.random.default_rng([lanes, bits, 5])
    mem, planes = _layout(rng, lanes, bits, _shapes(lanes)[:5], ("random", "sparse"))
    dut = PlaneScanner(lanes=lanes, bits=bits, max_channels=MAX_C, max_height=MAX_H,
                       max_width=MAX_W, addr_width=ADDR_WIDTH, max_pool=MAX_POOL)
    probe = random.Random(5)
    got, faults = [], []
    watched = [dut.rd_addr, dut.rd_en, dut.busy, dut.o.valid, dut.o.payload.as_value()]

    async def bench(ctx):
        data, k, started = 0, 0, False
        for cycle in range(40 * sum(len(w) * (lanes + 1) for _, _, w, _ in planes)):
            if k == len(planes):
                break
            if not started:
                base, (C, H, W), _, pool = planes[k]
                ctx.set(dut.cfg, {"base": base, "channels": C, "height": H, "width": W,
                                  "groups": lane_groups(C, lanes), "pool": pool})
            ctx.set(dut.start, not started)
            started = True
            ready = probe.random() < 0.5
            seen = []
            for garbage in (probe.randrange(1 << (lanes * bits)), 0, (1 << lanes * bits) - 1):
                ctx.set(dut.rd_data, garbage)
                ctx.set(dut.o.ready, ready)
                seen.append([ctx.get(s) for s in watched])
            ctx.set(dut.o.ready, not ready)
            other_addr = ctx.get(dut.rd_addr)
            ctx.set(dut.rd_data, data)
            ctx.set(dut.o.ready, ready)
            now = [ctx.get(s) for s in watched]
            if any(s != now for s in seen) or other_addr != now[0]:
                faults.append(cycle)
            _, _, addr, en, valid, beat = await ctx.tick().sample(
                dut.rd_addr, dut.rd_en, dut.o.valid, dut.o.payload)
            if en:
                data = mem[addr]
            if valid and ready:
                got.append(_event(beat))
                if beat.end:
                    k, started = k + 1, False

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    del sim
    gc.collect()
    _same(got, _want(lanes, bits, planes)[0])
    assert faults == []


@pytest.mark.parametrize("lanes,bits", [(1, 1), (4, 2)])
def test_zero_words_without_ready(lanes, bits):
    """With ``o`` not ready, words without events still go by one a cycle: the first beat
    (the first event, or the end beat) is offered 2 + (words before the first word with an
    event) cycles after the start cycle."""
    rng = np.random.default_rng([lanes, bits, 7])
    mem, planes = _layout(rng, lanes, bits, _shapes(lanes), ("sparse", "zero"))
    top = _Top(lanes, bits, mem)
    dut = top.dut
    delays, got = [], []

    async def bench(ctx):
        for base, (C, H, W), _, pool in planes:
            ctx.set(dut.cfg, {"base": base, "channels": C, "height": H, "width": W,
                              "groups": lane_groups(C, lanes), "pool": pool})
            ctx.set(dut.o.ready, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            delay = 1
            while not (await ctx.tick().sample(dut.o.valid))[2] and delay < 200:
                delay += 1
            delays.append(delay)
            ctx.set(dut.o.ready, 1)
            for _ in range(200):
                _, _, valid, beat = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                if valid:
                    got.append(_event(beat))
                    if beat.end:
                        break

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    del sim
    gc.collect()
    _same(got, _want(lanes, bits, planes)[0])
    want = []
    for _, shape, words, _ in planes:  # (unpooled rows: the words they lie in)
        rows = {row for _, _, _, row, _ in scan_events(words, shape, lanes, bits)}
        C, H, W = shape
        G = lane_groups(C, lanes)
        # The word holding each row: position row // C, group (row % C) // P.
        first = min(((r // C) * G + (r % C) // lanes for r in rows), default=len(words))
        want.append(2 + first)
    assert delays == want


# -- the stream input (planes in SDRAM: a DMA stream brings the words) --------------------
def _scan_stream(lanes, bits, planes, seed, busy, gaps):
    """Scan ``planes`` from a stream of their words, back to back (the next plane's words
    may wait at the stream's head while a scan finishes), the stream empty in a random
    ``gaps`` of the cycles and ``o`` ready with probability 1 − busy. Returns the beats,
    each plane's (start, end beat) cycles, and the faults seen."""
    dut = PlaneScanner(lanes=lanes, bits=bits, max_channels=MAX_C, max_height=MAX_H,
                       max_width=MAX_W, addr_width=ADDR_WIDTH, max_pool=MAX_POOL,
                       stream_input=True)
    rng = random.Random(seed)
    stream = [w for _, _, words, _ in planes for w in words]
    got, spans, faults = [], [], []
    limit = 40 * sum(len(w) * (lanes + 1) + SCAN_OVERHEAD + 4 for _, _, w, _ in planes)

    async def bench(ctx):
        k, started, waiting, at = 0, None, None, 0
        for cycle in range(limit):
            if k == len(planes) and started is None:
                break
            if started is None:
                base, (C, H, W), words, pool = planes[k]
                ctx.set(dut.cfg, {"base": base, "channels": C, "height": H, "width": W,
                                  "groups": lane_groups(C, lanes), "pool": pool})
                ctx.set(dut.start, 1)
                started = cycle
            else:
                ctx.set(dut.start, 0)
            offer = at < len(stream) and rng.random() >= gaps
            ctx.set(dut.words.valid, offer)
            ctx.set(dut.words.payload, stream[at] if at < len(stream) else 0)
            ready = rng.random() >= busy
            ctx.set(dut.o.ready, ready)
            _, _, valid, beat, took = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                               dut.words.ready)
            beat = _event(beat) if valid else None
            if offer and took:
                at += 1
            if waiting is not None and beat != waiting:
                faults.append((cycle, "changed", waiting, beat))
            waiting = beat if valid and not ready else None
            if valid and ready:
                got.append(beat)
                if beat == ("end",):
                    spans.append((started, cycle))
                    taken = sum(len(w) for _, _, w, _ in planes[:k + 1])
                    if at != taken:
                        faults.append((cycle, "words taken", at, taken))
                    started, k = None, k + 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    del sim
    gc.collect()
    return got, spans, faults


@pytest.mark.parametrize("lanes,bits", [(1, 1), (3, 2), (4, 4), (8, 1), (8, 4)])
def test_scanner_from_a_stream(lanes, bits):
    """The same events from a stream of the planes' words as from the memory, each plane
    taking exactly its own words, under gaps and back-pressure; with neither, exactly
    ``scan_cycles`` a plane, as from memory."""
    rng = np.random.default_rng([lanes, bits, 7])
    _, planes = _layout(rng, lanes, bits, _shapes(lanes), ("random", "zero", "full", "sparse"))
    events, _ = _want(lanes, bits, planes)
    for seed, busy, gaps in ((1, 0.3, 0.5), (2, 0.0, 0.2), (3, 0.6, 0.0)):
        got, _, faults = _scan_stream(lanes, bits, planes, seed, busy, gaps)
        _same(got, events)
        assert faults == []
    got, spans, faults = _scan_stream(lanes, bits, planes, 0, 0.0, 0.0)
    _same(got, events)
    assert faults == []
    for (start, end), (_, shape, words, _) in zip(spans, planes, strict=True):
        assert end - start + 1 == scan_cycles(words, shape, lanes, bits)
