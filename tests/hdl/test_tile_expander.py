# amaranth: UnusedElaboratable=no
"""The tile expander: ``expand`` against hand-worked events and a brute-force enumeration
of every output and tap; TileExpander against ``expand`` for random projections and tiles,
changed while idle, under random gaps and back-pressure, and its exact cycles."""

import gc
import random

import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.tile_expander import LATENCY, TileExpander, expand, expand_cycles

PARAMS = dict(max_channels=40, max_height=5, max_width=5, max_source_channels=3,
              max_kernel=4, max_stride=3, field_width=14, addr_width=10, count_bits=3,
              shift_bits=2)


def _cfg(conv, channels, height, width, groups, c0, wfield, kernel=1, stride=1, padding=0,
         src_height=1, src_width=1):
    return {"conv": conv, "kernel": kernel, "stride": stride, "padding": padding,
            "channels": channels, "height": height, "width": width, "groups": groups,
            "c0": c0, "wfield": wfield, "src_height": src_height, "src_width": src_width}


# -- hand-worked projections ---------------------------------------------------------------
# tap = (c·k + ky)·k + kx, (ky, kx) = (y + pad − oy·s, x + pad − ox·s);
# addr = (oy·W + ox)·G + g, field = wfield + c0 + tap·C + g·P.
#
# A: P 2, G 2, C 4, c0 0, wfield 100, k 3, s 1, pad 1, a 4×4 map onto 4×4.
# Corner event c 1, (y, x) = (0, 0): oy, ox ∈ [max(0, 0 + 1 − 2), min(3, 1)] = [0, 1].
#   (0, 0): ky 1, kx 1, tap 13, field 100 + 52 = 152, 154; addr 0, 1
#   (0, 1): ky 1, kx 0, tap 12, field 148, 150;             addr 2, 3
#   (1, 0): ky 0, kx 1, tap 10, field 140, 142;             addr 8, 9
#   (1, 1): ky 0, kx 0, tap 9,  field 136, 138;             addr 10, 11
CFG_A = _cfg(1, 4, 4, 4, 2, 0, 100, 3, 1, 1, 4, 4)
EVENTS_A = [(1, 0, 0, 1, 2, 1)]
OPS_A = [(0, 152, 2, 1), (1, 154, 2, 1), (2, 148, 2, 1), (3, 150, 2, 1),
         (8, 140, 2, 1), (9, 142, 2, 1), (10, 136, 2, 1), (11, 138, 2, 1)]
# B: P 4, G 1, C 6, c0 4, wfield 7, k 3, s 1, pad 1, 4×4 onto 4×4: field 11 + 6·tap.
# Centre event c 1, (2, 1): oy ∈ [1, 3] (ky 2, 1, 0), ox ∈ [0, 2] (kx 2, 1, 0),
# tap = 9 + 3·ky + kx, addr = oy·4 + ox:
#   oy 1: taps 17, 16, 15 → fields 113, 107, 101, addr 4, 5, 6
#   oy 2: taps 14, 13, 12 → fields 95, 89, 83,    addr 8, 9, 10
#   oy 3: taps 11, 10, 9  → fields 77, 71, 65,    addr 12, 13, 14
CFG_B = _cfg(1, 6, 4, 4, 1, 4, 7, 3, 1, 1, 4, 4)
EVENTS_B = [(1, 2, 1, 9, 1, 0)]
OPS_B = [(a, f, 1, 0) for a, f in [(4, 113), (5, 107), (6, 101), (8, 95), (9, 89), (10, 83),
                                   (12, 77), (13, 71), (14, 65)]]
# C: P 2, G 3, C 5, c0 0, wfield 0, k 3, s 2, pad 1, 5×5 onto (5 + 2 − 3) // 2 + 1 = 3×3.
# c 0, (2, 3): a_y 3 → oy ∈ [⌈1/2⌉, ⌊3/2⌋] = {1}, ky 1; a_x 4 → ox ∈ [1, 2], kx 2, 0.
#   (1, 1): tap 5, fields 25, 27, 29; addr 12, 13, 14
#   (1, 2): tap 3, fields 15, 17, 19; addr 15, 16, 17
# c 1, (0, 0): a 1 → oy = ox = 0, ky = kx = 1, tap 13: fields 65, 67, 69; addr 0, 1, 2
# c 0, (4, 4): a 5 → oy = ox ∈ [⌈3/2⌉, min(2, 2)] = {2}, ky = kx = 1, tap 4:
#   fields 20, 22, 24; addr 24, 25, 26
CFG_C = _cfg(1, 5, 3, 3, 3, 0, 0, 3, 2, 1, 5, 5)
EVENTS_C = [(0, 2, 3, 0, 7, 3), (1, 0, 0, 0, 1, 0), (0, 4, 4, 0, 2, 2)]
OPS_C = ([(a, f, 7, 3) for a, f in [(12, 25), (13, 27), (14, 29), (15, 15), (16, 17),
                                    (17, 19)]]
         + [(0, 65, 1, 0), (1, 67, 1, 0), (2, 69, 1, 0)]
         + [(24, 20, 2, 2), (25, 22, 2, 2), (26, 24, 2, 2)])
# D: P 1, G 1, C 3, wfield 50, k 1, s 2, pad 0, 4×4 onto 2×2. (1, 0): a_y 1 → oy ∈
# [⌈1/2⌉, ⌊1/2⌋] = [1, 0]: nothing. c 2, (2, 2): oy = ox = 1, tap 2: field 56, addr 3.
CFG_D = _cfg(1, 3, 2, 2, 1, 0, 50, 1, 2, 0, 4, 4)
EVENTS_D = [(0, 1, 0, 0, 1, 0), (2, 2, 2, 0, 3, 1), (1, 3, 3, 0, 1, 0)]
OPS_D = [(3, 56, 3, 1)]
# E (dense): P 4, G 2, C 20, c0 8, wfield 1000, row 3: fields 1000 + 8 + 60 + 4·g = 1068,
# 1072 at addr 0, 1 (kernel, stride and padding are ignored, even 0).
CFG_E = _cfg(0, 20, 1, 1, 2, 8, 1000, 0, 0, 0)
EVENTS_E = [(0, 0, 0, 3, 5, 2)]
OPS_E = [(0, 1068, 5, 2), (1, 1072, 5, 2)]
HAND = [(2, CFG_A, EVENTS_A, OPS_A), (4, CFG_B, EVENTS_B, OPS_B), (2, CFG_C, EVENTS_C, OPS_C),
        (1, CFG_D, EVENTS_D, OPS_D), (4, CFG_E, EVENTS_E, OPS_E)]


def test_hand_worked_expand():
    for lanes, cfg, events, ops in HAND:
        assert [op for e in events for op in expand(e, cfg, lanes=lanes)] == ops
    assert expand(EVENTS_D[0], CFG_D, lanes=1) == []
    assert expand_cycles(EVENTS_C, CFG_C, lanes=2) == LATENCY + 12
    # Two reach nothing: the first costs a cycle, the last none.
    assert expand_cycles(EVENTS_D, CFG_D, lanes=1) == LATENCY + 2
    assert expand_cycles(EVENTS_D[:1], CFG_D, lanes=1) == LATENCY


# -- expand against brute force ------------------------------------------------------------
def _brute(event, cfg, lanes):
    """Every output (oy, ox) and tap (ky, kx) with y = oy·s + ky − pad, x = ox·s + kx − pad."""
    c, y, x, row, count, shift = event
    C, G, H, W = cfg["channels"], cfg["groups"], cfg["height"], cfg["width"]
    base = cfg["wfield"] + cfg["c0"]
    if not cfg["conv"]:
        return [(g, base + row * C + g * lanes, count, shift) for g in range(G)]
    k, s, pad = cfg["kernel"], cfg["stride"], cfg["padding"]
    ops = []
    for oy in range(H):
        for ox in range(W):
            for ky in range(k):
                for kx in range(k):
                    if y == oy * s + ky - pad and x == ox * s + kx - pad:
                        field = base + ((c * k + ky) * k + kx) * C
                        ops += [((oy * W + ox) * G + g, field + g * lanes, count, shift)
                                for g in range(G)]
    return ops


def _random_cfg(rng, lanes, p, conv, free_map=False):
    """A projection onto a tile of P = ``lanes``, inside the limits ``p``, and its source
    (channels, height, width). Conv maps are those of the geometry (1×1 and up, kernels
    larger than the map), or any size with ``free_map``."""
    C = rng.randint(1, p["max_channels"])
    G = rng.randint(1, min(4, -(-p["max_channels"] // lanes)))
    c0 = lanes * rng.randrange(-(-C // lanes))
    src_c = rng.randint(1, p["max_source_channels"])
    while True:
        k = rng.randint(1, p["max_kernel"])
        s, pad = rng.randint(1, p["max_stride"]), rng.randrange(k)
        sh, sw = rng.randint(1, p["max_height"]), rng.randint(1, p["max_width"])
        H, W = (sh + 2 * pad - k) // s + 1, (sw + 2 * pad - k) // s + 1
        if free_map:
            H, W = rng.randint(1, p["max_height"]), rng.randint(1, p["max_width"])
        if not conv:
            H = W = 1
        if 1 <= H <= p["max_height"] and 1 <= W <= p["max_width"]:
            break
    taps = src_c * k * k if conv else src_c * sh * sw
    top = (1 << p["field_width"]) - (c0 + taps * C + G * lanes)
    wfield = rng.choice([0, rng.randrange(top), top - 1])
    cfg = _cfg(int(conv), C, H, W, G, c0, wfield, k, s, pad, sh, sw)
    if not conv:  # ignored: anything
        cfg.update(kernel=rng.randrange(8), stride=rng.randrange(4), padding=rng.randrange(4))
    return cfg, (src_c, sh, sw)


def _random_events(rng, p, source, n):
    src_c, sh, sw = source
    events = []
    for _ in range(n):
        c, y, x = rng.randrange(src_c), rng.randrange(sh), rng.randrange(sw)
        events.append((c, y, x, (y * sw + x) * src_c + c, rng.randrange(1 << p["count_bits"]),
                       rng.randrange(1 << p["shift_bits"])))
    return events


def test_expand_against_brute_force():
    """Every event of the source, for random projections (strides 1 … 5, kernels up to 6,
    maps from 1×1) and tiles."""
    p = {**PARAMS, "max_kernel": 6, "max_stride": 5, "max_height": 7, "max_width": 6,
         "field_width": 20}
    rng = random.Random(3)
    empties = 0
    for trial in range(300):
        lanes = rng.choice([1, 2, 4, 16])
        cfg, (src_c, sh, sw) = _random_cfg(rng, lanes, p, trial % 5 != 0, trial % 7 == 0)
        for c in range(src_c):
            for y in range(sh):
                for x in range(sw):
                    e = (c, y, x, (y * sw + x) * src_c + c, rng.randrange(8), rng.randrange(4))
                    ops = expand(e, cfg, lanes=lanes)
                    assert ops == _brute(e, cfg, lanes), (cfg, e)
                    empties += not ops
    assert empties > 100


# -- the hardware --------------------------------------------------------------------------
def _ops(beat):
    return int(beat.addr), int(beat.field), int(beat.count), int(beat.shift)


def _same(got, want):
    """Fail naming the first difference (long lists make pytest's own diff unreadable)."""
    if got != want:
        k = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                 min(len(got), len(want)))
        pytest.fail(f"{len(got)} items, {len(want)} wanted; first difference at {k}: "
                    f"{got[k:k + 3]} instead of {want[k:k + 3]}")


def _run(lanes, params, projections, seed, starve, stall):
    """The projections [(cfg, events)] one after another: each cfg set while ``busy`` is
    low (after a few idle cycles with random garbage in ``cfg`` when ``starve``), its
    events offered after random gaps (probability ``starve``) and ``o`` ready with
    probability 1 − ``stall``. Returns each projection's operations, its span (the cycle
    its first event is taken, the first cycle ``busy`` is low again, the cycles of its
    operations) and the protocol faults seen (``o`` depending on ``o.ready``, a waiting
    operation changed or withdrawn, an operation while idle or not ``busy``)."""
    dut = TileExpander(lanes=lanes, **params)
    rng = random.Random(seed)
    got, spans, faults = [], [], []
    limit = 100 + sum(4 * (len(expand(e, cfg, lanes=lanes)) + 2) * (1 + 4 * (starve + stall))
                      for cfg, events in projections for e in events)

    async def bench(ctx):
        cycle, waiting = 0, None
        for cfg, events in projections:
            if starve:
                for _ in range(rng.randrange(3)):
                    ctx.set(dut.cfg, {name: rng.randrange(1 << len(getattr(dut.cfg, name)))
                                      for name in cfg})
                    ctx.set(dut.o.ready, rng.random() >= stall)
                    _, _, valid = await ctx.tick().sample(dut.o.valid)
                    cycle += 1
                    if valid:
                        faults.append((cycle, "operation while idle"))
            ctx.set(dut.cfg, cfg)
            ops, op_cycles, taken, first = [], [], 0, None
            while cycle < limit:
                if taken == len(events) and not ctx.get(dut.busy):
                    break
                offer = taken < len(events) and rng.random() >= starve
                ctx.set(dut.i.valid, offer)
                if offer:
                    ctx.set(dut.i.payload, dict(zip(("c", "y", "x", "row", "count", "shift"),
                                                    events[taken], strict=True)))
                ready = rng.random() >= stall
                ctx.set(dut.o.ready, not ready)
                other = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
                ctx.set(dut.o.ready, ready)
                if other != (ctx.get(dut.o.valid), ctx.get(dut.o.payload)):
                    faults.append((cycle, "o depends on o.ready"))
                _, _, i_ready, valid, beat, busy = await ctx.tick().sample(
                    dut.i.ready, dut.o.valid, dut.o.payload, dut.busy)
                beat = _ops(beat) if valid else None
                if waiting is not None and beat != waiting:
                    faults.append((cycle, "changed", waiting, beat))
                waiting = beat if valid and not ready else None
                if valid and not busy:
                    faults.append((cycle, "operation while not busy"))
                if valid and ready:
                    ops.append(beat)
                    op_cycles.append(cycle)
                if offer and i_ready:
                    first = cycle if first is None else first
                    taken += 1
                cycle += 1
            ctx.set(dut.i.valid, 0)
            got.append(ops)
            spans.append((first, cycle, op_cycles))
        ctx.set(dut.o.ready, 1)
        for _ in range(4):
            _, _, valid, busy = await ctx.tick().sample(dut.o.valid, dut.busy)
            if valid or busy:
                faults.append(("after", valid, busy))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    del sim
    gc.collect()
    return got, spans, faults


def test_hand_worked_hardware():
    """The hand-worked projections one after another, ``o`` always ready: their operations,
    each first one ``LATENCY`` cycles after its event is taken, no gaps, and the cycles of
    ``expand_cycles`` (an event reaching nothing costs one)."""
    for lanes, cfg, events, ops in HAND:
        got, spans, faults = _run(lanes, PARAMS, [(cfg, events)], 0, 0.0, 0.0)
        assert got == [ops]
        assert faults == []
        (first, end, op_cycles), = spans
        assert first == 0
        assert end == expand_cycles(events, cfg, lanes=lanes)
        if cfg is not CFG_D:
            assert op_cycles == list(range(LATENCY, LATENCY + len(ops)))
    # D: nothing, (3, 56) in cycle 3 + 1, nothing; busy low from 3 + 2.
    got, spans, _ = _run(1, PARAMS, [(CFG_D, EVENTS_D)], 0, 0.0, 0.0)
    assert spans == [(0, LATENCY + 2, [LATENCY + 1])]


def _projections(rng, lanes, params, count, events):
    """``count`` projections: conv and dense, some with free maps, at least one whose kernel
    is smaller than its stride (events reaching nothing)."""
    out = []
    for j in range(count):
        conv = j % 4 != 3
        cfg, source = _random_cfg(rng, lanes, params, conv, j % 5 == 4)
        if j == 0:
            cfg["kernel"], cfg["stride"], cfg["padding"] = 1, 2, 0
            cfg["height"], cfg["width"] = (source[1] + 1) // 2, (source[2] + 1) // 2
        out.append((cfg, _random_events(rng, params, source, rng.randint(1, events))))
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("seed,starve,stall", [(0, 0.3, 0.4), (1, 0.1, 0.7), (2, 0.6, 0.2)])
@pytest.mark.parametrize("lanes", [1, 2, 4, 16])
def test_tile_expander(lanes, seed, starve, stall):
    """Random projections (conv and dense; kernels 1 … 4, also larger than the map;
    strides 1 … 3; paddings 0 … k − 1; maps from 1×1; G 1 … 4) and tiles, changed while
    idle, with random events (some reaching nothing), random gaps and back-pressure: each
    projection's operations are ``expand``'s; a waiting operation stays as it is; an
    operation only while ``busy``; when ``busy`` falls after the last event, every
    operation has left."""
    rng = random.Random(f"{lanes}-{seed}")
    projections = _projections(rng, lanes, PARAMS, 12, 40)
    got, _, faults = _run(lanes, PARAMS, projections, seed, starve, stall)
    assert faults == []
    assert len(got) == len(projections)
    for ops, (cfg, events) in zip(got, projections, strict=True):
        _same(ops, [op for e in events for op in expand(e, cfg, lanes=lanes)])


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_tile_expander_cycles(lanes):
    """``o`` always ready, events offered back to back: each projection takes exactly
    ``expand_cycles``, its first operation ``LATENCY`` cycles after its first event is
    taken (when that reaches anything), and the operations of events reaching something
    leave in consecutive cycles but for one cycle per event between them reaching
    nothing."""
    rng = random.Random(lanes + 100)
    projections = _projections(rng, lanes, PARAMS, 12, 24)
    got, spans, faults = _run(lanes, PARAMS, projections, 0, 0.0, 0.0)
    assert faults == []
    for ops, (first, end, op_cycles), (cfg, events) in zip(got, spans, projections,
                                                           strict=True):
        _same(ops, [op for e in events for op in expand(e, cfg, lanes=lanes)])
        assert end - first == expand_cycles(events, cfg, lanes=lanes)
        want, cycle = [], first + LATENCY
        for e in events:
            n = len(expand(e, cfg, lanes=lanes))
            want += range(cycle, cycle + n)
            cycle += max(1, n)
        assert op_cycles == want


def test_large_maps_and_strides():
    """Strides up to 7 (not powers of two) on maps up to 40×40 with kernels up to 9: the
    reciprocal division is exact for every dividend that occurs."""
    params = {**PARAMS, "max_channels": 1, "max_height": 40, "max_width": 40, "max_kernel": 9,
              "max_stride": 7, "field_width": 16, "addr_width": 11}
    rng = random.Random(7)
    projections = []
    for s in range(1, 8):
        k = rng.randint(max(1, s - 1), 9)
        pad = rng.randrange(k)
        for sh, sw in ((40, 40), (40 - s, 3)):
            H, W = (sh + 2 * pad - k) // s + 1, (sw + 2 * pad - k) // s + 1
            cfg = _cfg(1, 1, min(H, 40), min(W, 40), 1, 0, 5, k, s, pad, sh, sw)
            events = [(0, y, x, 0, 1, 0) for y, x in
                      [(0, 0), (sh - 1, sw - 1), (sh - 1, 0)]
                      + [(rng.randrange(sh), rng.randrange(sw)) for _ in range(6)]]
            projections.append((cfg, events))
    got, _, faults = _run(1, params, projections, 0, 0.0, 0.2)
    assert faults == []
    for ops, (cfg, events) in zip(got, projections, strict=True):
        _same(ops, [op for e in events for op in expand(e, cfg, lanes=1)])


@pytest.mark.parametrize("name", ["lanes", "max_channels", "max_height", "max_width",
                                  "max_source_channels", "max_kernel", "max_stride",
                                  "field_width", "addr_width", "count_bits", "shift_bits"])
@pytest.mark.parametrize("value", [0, -1, True, 2.0, None])
def test_bad_parameters_are_refused(name, value):
    with pytest.raises(TypeError, match=f"^{name} must be a positive integer, not "
                                        f"{value!r}$".replace(".", r"\.")):
        TileExpander(**{"lanes": 4, **PARAMS, name: value})


def test_narrow_membrane_address_is_refused():
    # 5·5·⌈40 / 4⌉ = 250 words take 8 bits.
    TileExpander(lanes=4, **{**PARAMS, "addr_width": 8})
    with pytest.raises(ValueError, match=r"addr_width 7 cannot address the 250 membrane "
                                         r"words .* it takes 8 bits"):
        TileExpander(lanes=4, **{**PARAMS, "addr_width": 7})
