# amaranth: UnusedElaboratable=no
"""The host link's request slot and executor (hwsnn.hdl.executor) in amaranth.sim: the
slot cycle by cycle against a Python model under random verdicts and back-pressure, the
executor against a stand-in network that takes pixels and gives readouts with random
gaps, and random requests and reply back-pressure."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.sim import Simulator

from hwsnn.hdl.executor import Executor, RequestSlot
from hwsnn.hdl.frames import (
    K_COMMIT,
    K_ERROR,
    K_IDENTIFY,
    K_INFER,
    K_INFER_PACKED,
    K_LOAD,
    K_STATUS,
)
from hwsnn.hdl.streams import run_until_done

from .stream_bench import put, take

SEEDS = [5, 8, 1234]
KINDS = [K_IDENTIFY, K_INFER, K_STATUS, K_LOAD, K_COMMIT, K_INFER_PACKED, K_ERROR]


class SlotModel:
    """The request slot, a cycle at a time: ``outputs(ready)`` this cycle, ``step`` to the
    next (a verdict fills the slot a cycle after it came)."""

    def __init__(self):
        self.posted = None  # (kind, code) of last cycle's verdict
        self.valid, self.req, self.bank = 0, {"kind": 0, "code": 0, "bank": 0}, 0
        self.accepted = self.rejected = self.last_error = 0

    def outputs(self, ready):
        return {"valid": self.valid, "busy": int(not ready or self.valid),
                "waiting": self.valid, "bank": self.bank, "accepted": self.accepted,
                "rejected": self.rejected, "last_error": self.last_error}

    def step(self, post, ready):
        taken = self.valid and ready
        if self.posted is not None:
            kind, code = self.posted
            if kind == K_ERROR:
                self.rejected += 1
                self.last_error = code
                if not self.valid:
                    self.valid, self.req = 1, {**self.req, "kind": K_ERROR, "code": code}
            else:
                self.accepted += 1
                self.valid, self.req = 1, {**self.req, "kind": kind, "bank": self.bank}
                if kind in (K_INFER, K_INFER_PACKED):
                    self.bank ^= 1
        if taken:
            self.valid = 0
        self.posted = post


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p_post,p_ready", [(0.2, 0.5), (0.5, 0.1), (0.05, 0.9)])
def test_slot_against_model(seed, p_post, p_ready):
    """Random verdicts (good and ERROR) and a random ready: every output, every cycle."""
    rng = random.Random(seed)
    dut = RequestSlot()
    model = SlotModel()
    seen = set()

    async def bench(ctx):
        for _ in range(1500):
            post = (rng.choice(KINDS), rng.randrange(1, 10)) if rng.random() < p_post else None
            ready = int(rng.random() < p_ready)
            ctx.set(dut.post.valid, post is not None)
            if post:
                ctx.set(dut.post.payload, {"kind": post[0], "code": post[1]})
            ctx.set(dut.req.ready, ready)
            want = model.outputs(ready)
            got = {"valid": ctx.get(dut.req.valid), "busy": ctx.get(dut.busy),
                   "waiting": ctx.get(dut.waiting), "bank": ctx.get(dut.bank),
                   "accepted": ctx.get(dut.accepted), "rejected": ctx.get(dut.rejected),
                   "last_error": ctx.get(dut.last_error)}
            assert got == want
            if want["valid"]:
                req = ctx.get(dut.req.payload)
                assert req.kind == model.req["kind"]
                if req.kind == K_ERROR:
                    assert req.code == model.req["code"]
                elif req.kind in (K_INFER, K_INFER_PACKED):
                    assert req.bank == model.req["bank"]
                seen.add((req.kind == K_ERROR, bool(ready)))
            model.step(post, ready)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert {(True, True), (False, True)} <= seen  # errors and requests taken


# ---------------------------------------------------------------------------------------
# Executor

PIXELS, CLASSES, VBITS = 4, 3, 10
READOUT = data.StructLayout({"index": unsigned(2), "value": signed(VBITS),
                             "argmax": unsigned(2), "last": unsigned(1)})


def harness(init):
    m = Module()
    m.submodules.dut = dut = Executor(pixels=PIXELS, classes=CLASSES,
                                      pixel_signature=stream.Signature(unsigned(8)),
                                      readout_signature=stream.Signature(READOUT))
    m.submodules.pixel_ram = pixel_ram = memory.Memory(shape=8, depth=2 * PIXELS, init=init)
    m.submodules.value_ram = value_ram = memory.Memory(shape=signed(VBITS), depth=CLASSES,
                                                       init=[])
    wiring.connect(m, dut.pix_r, pixel_ram.read_port())
    wiring.connect(m, dut.val_w, value_ram.write_port())
    clock = Signal(32)
    m.d.sync += clock.eq(clock + 1)
    return m, dut, value_ram, clock


@pytest.mark.parametrize("seed,busy", [(5, 0.0), (8, 0.5), (1234, 0.9)])
def test_executor_against_model(seed, busy):
    """Random requests (offered with random gaps; ERROR, IDENTIFY, ... and INFER of either
    bank) to a stand-in network (pixels taken and readouts given with random gaps, ``busy``)
    with random reply back-pressure: each reply in order with its request's kind and code,
    an INFER's class and cycles (first pixel taken to last readout beat), its pixels the
    bank's and its values in the readout RAM when the reply is taken; a request is taken
    only after the reply before it."""
    rng = random.Random(seed)
    init = [rng.randrange(256) for _ in range(2 * PIXELS)]
    m, dut, value_ram, clock = harness(init)
    requests = [{"kind": rng.choice(KINDS), "code": rng.randrange(1, 10),
                 "bank": rng.randrange(2)} for _ in range(14)]
    taken, replies, runs, pixels = [], [], [], []

    async def offer(ctx):
        for r in requests:
            taken.append(await put(ctx, dut.req, r, rng, 0.7, clock=clock))

    async def network(ctx):  # the pixels of one sample, then its readout
        while True:
            first = None
            for _ in range(PIXELS):
                code, t = await take(ctx, dut.pixels, rng, busy, clock=clock)
                pixels.append(code)
                first = t if first is None else first
            values = [rng.randrange(-2**(VBITS - 1), 2**(VBITS - 1)) for _ in range(CLASSES)]
            arg = values.index(max(values))
            for i, v in enumerate(values):
                t = await put(ctx, dut.readout, {"index": i, "value": v, "argmax": arg,
                                                 "last": i == CLASSES - 1}, rng, busy,
                              clock=clock)
            runs.append((values, arg, t - first))

    async def answer(ctx):
        while True:
            reply, t = await take(ctx, dut.reply, rng, 0.6, clock=clock)
            values = [ctx.get(value_ram.data[i]) for i in range(CLASSES)]
            replies.append((reply.kind, reply.code, reply.klass, reply.cycles, values, t))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(offer)
    sim.add_testbench(network, background=True)
    sim.add_testbench(answer, background=True)
    assert run_until_done(sim, lambda: len(replies) == len(requests), 60_000)
    infers = [r for r in requests if r["kind"] in (K_INFER, K_INFER_PACKED)]
    assert 0 < len(infers) < len(requests)
    assert len(runs) == len(infers)
    assert pixels == [p for r in infers for p in init[r["bank"] * PIXELS:][:PIXELS]]
    runs_left = iter(runs)
    for k, (r, (kind, code, klass, cycles, values, t)) in enumerate(
            zip(requests, replies, strict=True)):
        assert kind == r["kind"]
        if kind == K_ERROR:
            assert code == r["code"]
        if kind in (K_INFER, K_INFER_PACKED):
            want_values, arg, took = next(runs_left)
            assert (klass, cycles, values) == (arg, took, want_values)
        if k + 1 < len(requests):
            assert taken[k + 1] > t  # the next request waits for this reply


@pytest.mark.parametrize("seed", SEEDS[:1])
def test_executor_counts_inferences(seed):
    """``inferences`` counts the INFER and INFER_PACKED requests answered; while it answers,
    the executor takes no request."""
    rng = random.Random(seed)
    m, dut, _, clock = harness([1] * (2 * PIXELS))
    done = []

    async def bench(ctx):
        for kind in (K_INFER, K_STATUS, K_INFER_PACKED, K_ERROR, K_INFER):
            await put(ctx, dut.req, {"kind": kind, "code": 3, "bank": rng.randrange(2)})
            if kind in (K_INFER, K_INFER_PACKED):
                for _ in range(PIXELS):
                    await take(ctx, dut.pixels)
                for i in range(CLASSES):
                    await put(ctx, dut.readout, {"index": i, "value": 0, "argmax": 0,
                                                 "last": i == CLASSES - 1})
            assert not ctx.get(dut.req.ready)  # answering
            await take(ctx, dut.reply)
            done.append(ctx.get(dut.inferences))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert done == [1, 1, 2, 2, 3]
