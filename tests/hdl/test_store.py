# amaranth: UnusedElaboratable=no
"""WeightStore alone in amaranth.sim (the generic RAM path, not a UP5K platform), against
a Python dict of bytes."""

import math
import random

import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.store import WeightStore

# (depth, width): one tile; several 16-bit columns with a partial top byte; an odd width
# of one byte; two rows of 16384 words (the row chosen a cycle after the address); words
# of a byte or less, two a location: an odd depth, and two rows of 32768 words.
SHAPES = [(5, 8), (37, 20), (12, 5), (16384 + 9, 12), (2 * 16384 + 9, 8), (9, 3)]
SEEDS = [1, 2, 3]


def _check(depth, width, rng, cycles, p_write, addrs):
    """Random cycles of byte writes or reads over ``addrs``: each read's data, a cycle
    later, is the word the Python model holds (bytes of the word, cut to ``width``)."""
    nbytes = math.ceil(width / 8)
    model = {}  # (addr, byte) → the byte written last
    dut = WeightStore(depth, width)
    bad, reads = [], [0]

    def word(a):
        v = sum(model.get((a, b), 0) << (8 * b) for b in range(nbytes))
        return v & ((1 << width) - 1)

    async def bench(ctx):
        want = None
        for _ in range(cycles):
            # This cycle's inputs are set first: the data of last cycle's read must not
            # follow them.
            last, want = want, None
            a = rng.choice(addrs)
            if rng.random() < p_write:
                b, v = rng.randrange(nbytes), rng.randrange(256)
                ctx.set(dut.w.en, 1)
                ctx.set(dut.w.addr, a)
                ctx.set(dut.w.byte, b)
                ctx.set(dut.w.data, v)
                ctx.set(dut.r.addr, rng.randrange(depth))  # ignored while writing
                model[a, b] = v
            else:
                ctx.set(dut.w.en, 0)
                ctx.set(dut.w.addr, rng.randrange(depth))
                ctx.set(dut.w.byte, rng.randrange(nbytes))
                ctx.set(dut.r.addr, a)
                want = (a, word(a))
            if last is not None:
                got = ctx.get(dut.r.data)
                if got != last[1]:
                    bad.append((last[0], got, last[1]))
                reads[0] += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bad, reads[0]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth,width", SHAPES)
def test_byte_writes_then_reads(seed, depth, width):
    """Bytes written in any order and overwritten, reads interleaved: every read, one
    cycle later, gives the word assembled from the bytes written so far (zero where none
    was), cut to the store's width."""
    rng = random.Random(seed)
    # A handful of addresses (written often), both rows of a two-row store.
    addrs = sorted({0, depth - 1, *(rng.randrange(depth) for _ in range(6))})
    if depth > 16384:
        addrs += [16383, 16384]
    if depth > 32768:
        addrs += [32766, 32767, 32768, 32769]
    bad, reads = _check(depth, width, rng, 1500, 0.5, addrs)
    assert reads > 500
    assert not bad, bad[:5]


def test_load_every_word_then_read_back():
    """A whole store loaded word after word (bytes lowest first, as the link sends them),
    then read back in a random order."""
    rng = random.Random(7)
    depth, width = 40, 28
    nbytes = math.ceil(width / 8)
    words = [rng.randrange(1 << width) for _ in range(depth)]
    dut = WeightStore(depth, width)
    got = {}

    async def bench(ctx):
        for a, v in enumerate(words):
            for b in range(nbytes):
                ctx.set(dut.w.en, 1)
                ctx.set(dut.w.addr, a)
                ctx.set(dut.w.byte, b)
                ctx.set(dut.w.data, (v >> (8 * b)) & 0xFF)
                await ctx.tick()
        ctx.set(dut.w.en, 0)
        order = list(range(depth))
        rng.shuffle(order)
        last = None
        for a in [*order, depth - 1 - order[-1]]:
            ctx.set(dut.r.addr, a)
            if last is not None:
                got[last] = ctx.get(dut.r.data)
            last = a
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [got[a] for a in range(depth)] == words
