# amaranth: UnusedElaboratable=no
"""The DMA streams (hwsnn.hdl.dma) against a Python model of an SDRAM controller's port
that takes commands and returns read words in order, both at random rates: the reader's
wide words are the SDRAM words it was asked for, lowest first, whatever the stalls; the
writer's SDRAM words land where the layout says."""

import random

import pytest
from amaranth.sim import Simulator

from hwsnn.errors import ParameterError
from hwsnn.hdl.dma import SDRAMReader, SDRAMWriter
from hwsnn.hdl.sdram import ULX3S_SDRAM

CHIP = ULX3S_SDRAM


def _port(ctx, dut, memory, rng, busy, latency, log):
    """A controller's port: takes ``dut.cmd`` when not busy, returns each read's word
    ``latency`` cycles later or more, in order, as ``dut.rdata`` allows."""
    async def run():
        queue = []  # (ready at cycle, word)
        cycle = 0
        has_rdata = hasattr(dut, "rdata")
        while True:
            take = rng.random() >= busy
            ctx.set(dut.cmd.ready, take)
            if has_rdata:
                offer = bool(queue) and queue[0][0] <= cycle and rng.random() >= busy
                ctx.set(dut.rdata.valid, offer)
                ctx.set(dut.rdata.payload, queue[0][1] if queue else 0)
            _, _, valid, cmd, *rest = await ctx.tick().sample(
                dut.cmd.valid, dut.cmd.payload, *((dut.rdata.ready,) if has_rdata else ()))
            if valid and take:
                addr = int(cmd.addr)
                if cmd.write:
                    memory[addr] = int(cmd.data)
                    log.append(("w", addr))
                else:
                    queue.append((cycle + latency + rng.randrange(3), memory.get(addr, 0)))
                    log.append(("r", addr))
            if has_rdata and offer and rest[0]:
                queue.pop(0)
            cycle += 1
    return run


@pytest.mark.parametrize("ratio", [1, 2, 8])
@pytest.mark.parametrize("busy", [0.0, 0.4])
def test_reader(ratio, busy):
    rng = random.Random(ratio * 10 + int(busy * 10))
    memory = {a: rng.randrange(1 << 16) for a in range(2000)}
    dut = SDRAMReader(CHIP, ratio=ratio, count_bits=10)
    jobs = [(rng.randrange(1000), rng.randrange(1, 40)) for _ in range(6)]
    got, log = [], []

    async def bench(ctx):
        for addr, count in jobs:
            ctx.set(dut.addr, addr)
            ctx.set(dut.count, count)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            words = []
            for _ in range(2000):
                ready = rng.random() >= busy
                ctx.set(dut.o.ready, ready)
                _, _, valid, word, is_busy = await ctx.tick().sample(
                    dut.o.valid, dut.o.payload, dut.busy)
                if valid and ready:
                    words.append(int(word))
                if not is_busy and len(words) == count:
                    break
            got.append(words)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)

    async def port(ctx):
        await _port(ctx, dut, memory, rng, busy, 5, log)()
    sim.add_process(port)
    sim.run_until(2e-6 * 20000)
    for (addr, count), words in zip(jobs, got, strict=True):
        want = [sum(memory[addr + k * ratio + i] << (16 * i) for i in range(ratio))
                for k in range(count)]
        assert words == want
    assert [a for kind, a in log] == [a + k for a, c in jobs for k in range(c * ratio)]


@pytest.mark.parametrize("ratio", [1, 4])
def test_writer(ratio):
    rng = random.Random(ratio)
    memory = {}
    dut = SDRAMWriter(CHIP, ratio=ratio, addr_bits=8, base=4096)
    words = [(rng.randrange(256), rng.randrange(1 << (16 * ratio))) for _ in range(60)]
    log = []
    idle_at_end = []

    async def bench(ctx):
        for addr, data in words:
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"addr": addr, "data": data})
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
        for _ in range(8 * ratio + 20):
            await ctx.tick()
        idle_at_end.append(ctx.get(dut.idle))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)

    async def port(ctx):
        await _port(ctx, dut, memory, rng, 0.4, 5, log)()
    sim.add_process(port)
    sim.run_until(1e-6 * 4000)
    want = {}
    for addr, data in words:
        for i in range(ratio):
            want[4096 + addr * ratio + i] = (data >> (16 * i)) & 0xFFFF
    assert memory == want
    assert [a for _, a in log] == [4096 + addr * ratio + i for addr, _ in words
                                   for i in range(ratio)]
    assert idle_at_end == [1]


def test_bad_parameters():
    with pytest.raises(ParameterError, match="power of two"):
        SDRAMReader(CHIP, ratio=3, count_bits=4)
    with pytest.raises(ParameterError, match="runs past"):
        SDRAMWriter(CHIP, ratio=8, addr_bits=22, base=0)
