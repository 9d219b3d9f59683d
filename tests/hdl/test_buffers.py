# amaranth: UnusedElaboratable=no
"""SkidBuffer and RegisteredFIFO alone in amaranth.sim, against a Python queue."""

import random

import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from hwsnn.hdl.buffers import RegisteredFIFO, SkidBuffer

SEEDS = [1, 2, 3, 17]


def _run(dut, fill, beats, rng, p_valid, p_ready, limit=20000):
    """Drive ``dut`` cycle by cycle: offer the next beat with probability ``p_valid``,
    take with ``p_ready``. Returns (beats out, per-cycle (held, fill), cycle of each
    transfer in and out)."""
    out, fills, t_in, t_out = [], [], [], []

    async def bench(ctx):
        sent = 0
        for cycle in range(limit):
            if len(out) == len(beats):
                return
            offer = sent < len(beats) and rng.random() < p_valid
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, beats[sent])
            ctx.set(dut.o.ready, rng.random() < p_ready)
            fills.append((sent - len(out), ctx.get(fill)))
            if offer and ctx.get(dut.i.ready):
                sent += 1
                t_in.append(cycle)
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                out.append(ctx.get(dut.o.payload))
                t_out.append(cycle)
            await ctx.tick()
        raise AssertionError(f"{len(out)} of {len(beats)} beats came out in {limit} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out, fills, t_in, t_out


def _beats(rng, n, bits=8):
    return [rng.randrange(2**bits) for _ in range(n)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p_valid,p_ready", [(0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1, 1)])
def test_skid_buffer_in_order_under_stalls(seed, p_valid, p_ready):
    """Every beat comes out once, in order; ``count`` is always the number of beats held
    (accepted minus delivered) and never above 2."""
    rng = random.Random(seed)
    beats = _beats(rng, 300)
    dut = SkidBuffer(8)
    out, fills, _, _ = _run(dut, dut.count, beats, rng, p_valid, p_ready)
    assert out == beats
    for held, count in fills:
        assert count == held <= 2


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_skid_buffer_struct_payload(seed):
    """A struct payload passes whole, every field."""
    rng = random.Random(seed)
    layout = data.StructLayout({"a": unsigned(3), "b": data.ArrayLayout(unsigned(5), 2),
                                "end": 1})
    beats = [{"a": rng.randrange(8), "b": [rng.randrange(32), rng.randrange(32)],
              "end": rng.randrange(2)} for _ in range(100)]
    dut = SkidBuffer(layout)
    out, _, _, _ = _run(dut, dut.count, beats, rng, 0.6, 0.6)
    got = [{"a": int(v.a), "b": [int(v.b[0]), int(v.b[1])], "end": int(v.end)} for v in out]
    assert got == beats


def test_skid_buffer_one_beat_per_cycle():
    """Both sides always ready: a beat enters every cycle and leaves one cycle later."""
    rng = random.Random(0)
    beats = _beats(rng, 50)
    dut = SkidBuffer(8)
    out, _, t_in, t_out = _run(dut, dut.count, beats, rng, 1, 1)
    assert out == beats
    assert t_in == list(range(50))
    assert t_out == list(range(1, 51))


def test_skid_buffer_sides_are_registered():
    """``i.ready`` does not follow ``o.ready`` within a cycle, nor ``o.valid``/``o.payload``
    ``i.valid``/``i.payload`` (each side sees only flip-flops of the other)."""
    dut = SkidBuffer(8)
    seen = []

    async def bench(ctx):
        rng = random.Random(5)
        for _ in range(200):
            iv, orr = rng.random() < 0.7, rng.random() < 0.5
            ctx.set(dut.i.valid, iv)
            ctx.set(dut.i.payload, rng.randrange(256))
            ctx.set(dut.o.ready, orr)
            before = (ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload))
            ctx.set(dut.o.ready, not orr)
            ctx.set(dut.i.valid, not iv)
            ctx.set(dut.i.payload, rng.randrange(256))
            after = (ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload))
            seen.append(before == after)
            ctx.set(dut.o.ready, orr)
            ctx.set(dut.i.valid, iv)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert all(seen)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth", [2, 5, 16])
@pytest.mark.parametrize("p_valid,p_ready", [(0.5, 0.5), (0.9, 0.2), (0.2, 0.9)])
def test_registered_fifo_in_order_under_stalls(seed, depth, p_valid, p_ready):
    """Every beat comes out once, in order; ``level`` is the number of beats held and
    never above ``depth + 3``."""
    rng = random.Random(seed * 100 + depth)
    beats = _beats(rng, 300, bits=11)
    dut = RegisteredFIFO(11, depth=depth)
    out, fills, _, _ = _run(dut, dut.level, beats, rng, p_valid, p_ready)
    assert out == beats
    for held, level in fills:
        assert level == held <= depth + 3


@pytest.mark.parametrize("depth", [3, 5, 16])
def test_registered_fifo_capacity_and_throughput(depth):
    """With the output stalled it takes at least ``depth`` beats (and at most
    ``depth + 3``); once both sides are ready, a beat leaves every cycle. (Depth 2, which
    the network never builds, moves one beat every other cycle: SyncFIFOBuffered's inner
    one-entry FIFO.)"""
    beats = list(range(3 * depth + 20))
    dut = RegisteredFIFO(8, depth=depth)
    taken, t_out, out = [0], [], []

    async def bench(ctx):
        sent = 0
        ctx.set(dut.o.ready, 0)
        for _ in range(depth + 10):  # output stalled: fill it
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beats[sent])
            if ctx.get(dut.i.ready):
                sent += 1
            await ctx.tick()
        taken[0] = sent
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(out) < len(beats) and cycle < 10 * len(beats):
            cycle += 1
            ctx.set(dut.i.valid, sent < len(beats))
            if sent < len(beats):
                ctx.set(dut.i.payload, beats[sent])
                if ctx.get(dut.i.ready):
                    sent += 1
            if ctx.get(dut.o.valid):
                out.append(ctx.get(dut.o.payload))
                t_out.append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert depth <= taken[0] <= depth + 3
    assert out == beats
    assert t_out == list(range(t_out[0], t_out[0] + len(beats)))
