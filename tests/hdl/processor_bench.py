"""Running the layer-serial processor (``hdl.processor``) in Amaranth's simulator: pixels in
with random gaps, readout beats out with random back-pressure, the busy cycles of each
sample counted."""

from __future__ import annotations

import random

import torch
from amaranth.sim import Simulator

from hwsnn.hdl.processor import SerialProcessor
from hwsnn.hdl.serial import SerialPlan

from .stream_bench import put, take


def run_processor(plan: SerialPlan, codes: torch.Tensor, *, seed: int = 0,
                  busy: float = 0.3, limit: int = 5_000_000, loadable: bool = False):
    """(readout values [B, classes], argmax [B], busy cycles [B]) of ``codes``. With
    ``loadable``, the weights are written through the ``load`` port first, byte by byte
    with random gaps, the words in a random order."""
    dut = SerialProcessor(plan.with_loadable(True) if loadable else plan)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    rng = random.Random(seed)
    classes = plan.net.output.size
    values, argmax, cycles = [], [], []

    async def feed(ctx):
        for sel, spec in enumerate(dut.stores):
            blob, n = spec.encode(), spec.bytes_per_word
            for addr in rng.sample(range(spec.depth), spec.depth):
                for byte in range(n):
                    while rng.random() < busy:
                        await ctx.tick()
                    ctx.set(dut.load.en, 1)
                    ctx.set(dut.load.sel, sel)
                    ctx.set(dut.load.addr, addr)
                    ctx.set(dut.load.byte, byte)
                    ctx.set(dut.load.data, blob[addr * n + byte])
                    await ctx.tick()
                    ctx.set(dut.load.en, 0)
        for sample in codes:
            for code in sample.reshape(-1).tolist():
                await put(ctx, dut.pixels, code, rng, busy)

    async def collect(ctx):
        for _ in range(len(codes)):
            row = []
            for index in range(classes):
                beat = await take(ctx, dut.o, rng, busy)
                assert beat.index == index and bool(beat.last) == (index == classes - 1)
                row.append(beat.value)
            values.append(row)
            argmax.append(beat.argmax)

    async def count(ctx):
        n, was = 0, False
        for _ in range(limit):
            await ctx.tick()
            now = ctx.get(dut.busy)
            n += now
            if was and not now:
                cycles.append(n)
                n = 0
            was = now
            if len(values) == len(codes):
                return
        raise AssertionError(f"the processor ran {limit} cycles without finishing")

    sim.add_testbench(feed, background=True)
    sim.add_testbench(collect)
    sim.add_testbench(count)
    sim.run()
    return (torch.tensor(values, dtype=torch.int64), torch.tensor(argmax),
            torch.tensor(cycles, dtype=torch.int64))
