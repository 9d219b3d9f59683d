# amaranth: UnusedElaboratable=no
"""hdl.ram: a registered read behaves as a synchronous read port in simulation, a read that
meets a write in a ``collisions="undefined"`` memory is all ones when poisoned, and Yosys
maps both kinds of read onto the block RAM with no logic beside it, where a plain
synchronous read port costs flip-flops."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwsnn.flow.synth import synthesize
from hwsnn.hdl.ram import poison_collisions, ram, registered_read

WIDTH, DEPTH = 16, 256


class Pair(wiring.Component):
    """One memory read two ways at one address: a synchronous port (``sync``) and
    ``registered_read`` (``reg``); one write port."""

    def __init__(self, collisions):
        self.collisions = collisions
        super().__init__({"ra": In(8), "wa": In(8), "wd": In(WIDTH), "we": In(1),
                          "sync": Out(WIDTH), "reg": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = ram(shape=WIDTH, depth=DEPTH, init=[],
                                     collisions=self.collisions)
        wr = mem.write_port()
        rd = mem.read_port()
        addr, data = registered_read(m, mem, name="q", write=wr)
        m.d.comb += [wr.addr.eq(self.wa), wr.data.eq(self.wd), wr.en.eq(self.we),
                     rd.addr.eq(self.ra), addr.eq(self.ra),
                     self.sync.eq(rd.data), self.reg.eq(data)]
        return m


def _run(collisions, poison, seed):
    """Random writes and reads, a third of them at the address being written; the
    (collided, sync, reg) of every read."""
    rng = random.Random(seed)
    with poison_collisions(poison):
        dut = Pair(collisions)
        sim = Simulator(dut)
    sim.add_clock(1e-6)
    out = []

    async def bench(ctx):
        for _ in range(300):
            wa = rng.randrange(16)
            ra = wa if rng.random() < 0.33 else rng.randrange(16)
            we = rng.random() < 0.6
            ctx.set(dut.wa, wa)
            ctx.set(dut.ra, ra)
            ctx.set(dut.wd, rng.randrange(1 << WIDTH))
            ctx.set(dut.we, we)
            await ctx.tick()
            out.append((we and wa == ra, ctx.get(dut.sync), ctx.get(dut.reg)))

    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("collisions,poison", [("old", True), ("undefined", False)])
def test_registered_read_is_a_synchronous_read(collisions, poison, seed):
    # (A memory that keeps the old data is never poisoned; nor is any without poisoning.)
    out = _run(collisions, poison, seed)
    assert sum(c for c, _, _ in out) > 50
    assert [s for _, s, _ in out] == [r for _, _, r in out]


@pytest.mark.parametrize("seed", [0, 1])
def test_poisoned_collisions_read_all_ones(seed):
    out = _run("undefined", True, seed)
    collided = [r for c, _, r in out if c]
    assert len(collided) > 50
    assert all(r == (1 << WIDTH) - 1 for r in collided)
    assert [s for c, s, _ in out if not c] == [r for c, _, r in out if not c]


def test_bad_collisions_is_refused():
    with pytest.raises(ValueError, match="collisions="):
        ram(shape=8, depth=4, init=[], collisions="new")
    mem = ram(shape=8, depth=4, init=[], collisions="undefined")
    mem._MustUse__silence = True  # (never elaborated: refused first)
    with pytest.raises(ValueError, match="q: a memory with undefined collisions"):
        registered_read(Module(), mem, name="q")


class One(wiring.Component):
    """A 256 × 16 RAM (or with ``rom``, a ROM) read through a synchronous read port
    (``how="port"``), or ``registered_read`` of a memory with ``collisions``."""

    def __init__(self, how, collisions="old", rom=False):
        self.how, self.collisions, self.rom = how, collisions, rom
        super().__init__({"ra": In(8), "wa": In(8), "wd": In(WIDTH), "we": In(1),
                          "q": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        init = [(i * 2654435761) % (1 << WIDTH) for i in range(DEPTH)] if self.rom else []
        if self.how == "port":
            m.submodules.mem = mem = memory.Memory(shape=WIDTH, depth=DEPTH, init=init)
        else:
            m.submodules.mem = mem = ram(shape=WIDTH, depth=DEPTH, init=init,
                                         collisions=self.collisions)
        wr = None if self.rom else mem.write_port()
        if self.how == "port":
            rd = mem.read_port()
            addr, data = rd.addr, rd.data
        else:
            addr, data = registered_read(m, mem, name="q", write=wr)
        m.d.comb += [addr.eq(self.ra), self.q.eq(data)]
        if wr is not None:
            m.d.comb += [wr.addr.eq(self.wa), wr.data.eq(self.wd), wr.en.eq(self.we)]
        return m


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_yosys_maps_registered_reads_without_logic(family, tmp_path):
    def synth(name, *args, **kwargs):
        with poison_collisions(False):  # (as a build: tests/hdl poison by default)
            r = synthesize(One(*args, **kwargs), family, workdir=tmp_path / name)
        assert r.ram_blocks == 1
        return r

    # The old data on a collision costs a copy of the written word (and its address) in
    # flip-flops, however the RAM is read; without it, and without a power-up value of
    # the read data, the RAM block is all. A ROM's read costs nothing either way.
    for r in (synth("port", "port"), synth("old", "reg")):
        assert r.flip_flops >= WIDTH and r.luts >= WIDTH
    for r in (synth("free", "reg", "undefined"), synth("rom", "reg", rom=True)):
        assert r.flip_flops <= 1 and r.luts <= 2
