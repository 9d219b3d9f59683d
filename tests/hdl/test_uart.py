# amaranth: UnusedElaboratable=no
"""The UART (hwsnn.hdl.uart) in amaranth.sim: the transmitter's line against 8N1 bit by bit,
the receiver's beats against the bytes put on the line (gaps, low stop bits, glitches, a
consumer that stalls), and the two in a loop, under seeded random valid gaps and
back-pressure."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hwsnn.hdl.streams import run_until_done
from hwsnn.hdl.uart import UartRx, UartTx, uart_divisor

from .stream_bench import put, take

SEEDS = [1, 2, 7, 2024]
DIVISORS = [4, 5, 9]


def line_symbols(byte: int, stop: int = 1) -> list[int]:
    """The 10 bit levels of an 8N1 byte: start, data LSB first, stop."""
    return [0, *((byte >> i) & 1 for i in range(8)), stop]


def test_divisor_is_checked():
    assert uart_divisor(12e6, 115200)[0] == 104
    with pytest.raises(ValueError, match="at least 4"):
        uart_divisor(3 * 115200, 115200)
    with pytest.raises(ValueError, match=r"\+8.5%"):
        uart_divisor(500_000, 92_160)
    with pytest.raises(TypeError, match="integer"):
        UartTx(4.0)
    with pytest.raises(ValueError, match="at least 4"):
        UartRx(3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("divisor", DIVISORS)
def test_tx_line_is_8n1(seed, divisor):
    """Random bytes with random valid gaps: every bit lasts ``divisor`` cycles, the line
    idles high, and ``i`` is ready exactly while the transmitter is idle."""
    rng = random.Random(seed)
    dut = UartTx(divisor)
    sent = [rng.randrange(256) for _ in range(12)]
    levels = []  # tx, sampled every cycle
    readies = []

    async def feed(ctx):
        for byte in sent:
            await put(ctx, dut.i, byte, rng, 0.9)

    async def watch(ctx):
        while True:
            _, _, tx, ready = await ctx.tick().sample(dut.tx, dut.i.ready)
            levels.append(tx)
            readies.append(ready)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feed)
    sim.add_testbench(watch, background=True)
    sim.run_until(20 * 11 * divisor * len(sent) * 1e-6)
    got, busy, t = [], set(), 0
    while t < len(levels) - 10 * divisor:
        if levels[t]:
            t += 1
            continue
        bits = [levels[t + k * divisor: t + (k + 1) * divisor] for k in range(10)]
        assert all(len(set(b)) == 1 for b in bits), bits
        symbols = [b[0] for b in bits]
        assert symbols[0] == 0 and symbols[9] == 1
        got.append(sum(s << i for i, s in enumerate(symbols[1:9])))
        busy.update(range(t, t + 10 * divisor))
        t += 10 * divisor
    assert got == sent
    assert all(r == (t not in busy) for t, r in enumerate(readies)), "ready while sending"


def drive_line(ctx_symbols, divisor):
    """(level, cycles) pairs for a list of (byte, stop, idle cycles before) or
    ("glitch", cycles low)."""
    out = []
    for item in ctx_symbols:
        if item[0] == "glitch":
            out += [(0, item[1]), (1, 3 * divisor)]
            continue
        byte, stop, gap = item
        out.append((1, gap))
        out += [(level, divisor) for level in line_symbols(byte, stop)]
        if not stop:
            out.append((1, 2 * divisor))  # the receiver waits for the line to go high
    out.append((1, 4 * divisor))
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("divisor", DIVISORS)
def test_rx_beats_match_the_line(seed, divisor):
    """Bytes with random idle gaps, some with a low stop bit (a beat with ``error``), glitches
    shorter than half a bit (nothing), read with random back-pressure that always takes a
    beat within a byte time: every byte comes out once, in order."""
    rng = random.Random(seed)
    dut = UartRx(divisor)
    items, want = [], []
    for _ in range(25):
        if rng.random() < 0.1:
            items.append(("glitch", rng.randrange(1, divisor // 2)))
            continue
        byte, stop = rng.randrange(256), int(rng.random() > 0.2)
        items.append((byte, stop, rng.choice([0, 0, 1, rng.randrange(3 * divisor)])))
        want.append((byte, 1 - stop))
    got = []

    async def drive(ctx):
        for level, cycles in drive_line(items, divisor):
            ctx.set(dut.rx, level)
            for _ in range(cycles):
                await ctx.tick()

    async def read(ctx):
        while True:
            beat = await take(ctx, dut.o, rng, 0.6)
            got.append((beat.data, beat.error))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(read, background=True)
    sim.run()
    assert got == want


@pytest.mark.parametrize("divisor", DIVISORS)
def test_rx_keeps_a_waiting_beat(divisor):
    """A beat not taken stays (valid, unchanged); a byte that ends meanwhile is lost, and
    once it is taken the next byte comes through again. Always ready: one cycle each."""
    dut = UartRx(divisor)
    seen = []

    async def bench(ctx):
        async def byte(b):
            for level in line_symbols(b):
                ctx.set(dut.rx, level)
                for _ in range(divisor):
                    await ctx.tick()
            ctx.set(dut.rx, 1)
            for _ in range(3):
                await ctx.tick()

        await byte(0x5A)
        await byte(0x33)  # lost: 0x5A still waits
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload.data) == 0x5A
        beat = await take(ctx, dut.o)
        assert (beat.data, beat.error) == (0x5A, 0)
        assert not ctx.get(dut.o.valid)
        ctx.set(dut.o.ready, 1)
        for b in (0xC3, 0x00):
            valid = []
            for level in line_symbols(b):
                ctx.set(dut.rx, level)
                for _ in range(divisor):
                    _, _, v, d = await ctx.tick().sample(dut.o.valid, dut.o.payload.data)
                    valid.append((v, d))
            ctx.set(dut.rx, 1)
            for _ in range(3 + divisor):
                _, _, v, d = await ctx.tick().sample(dut.o.valid, dut.o.payload.data)
                valid.append((v, d))
            seen.append([d for v, d in valid if v])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [[0xC3], [0x00]]


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize("divisor", [4, 7])
def test_loopback(seed, divisor):
    """UartTx into UartRx: what goes in comes out, with random gaps on both streams."""
    rng = random.Random(seed)
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [rng.randrange(256) for _ in range(30)]
    got = []

    async def feed(ctx):
        for b in sent:
            await put(ctx, tx.i, b, rng, 0.8)

    async def read(ctx):
        while True:
            beat = await take(ctx, rx.o, rng, 0.7)
            got.append((beat.data, beat.error))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(feed)
    sim.add_testbench(read, background=True)
    assert run_until_done(sim, lambda: len(got) == len(sent), 400 * divisor * len(sent))
    assert got == [(b, 0) for b in sent]
