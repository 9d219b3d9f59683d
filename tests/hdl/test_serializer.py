# amaranth: UnusedElaboratable=no
"""EventSerializer and ReadoutSerializer alone in amaranth.sim: random lane groups in, with
random gaps and random back-pressure, against the event (or readout) sequence a Python
model expects."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.plan import EnginePlan
from hwsnn.hdl.serializer import EventSerializer, ReadoutSerializer
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import set_membrane_widths, signed_bits


def _net(method, shape, tau=1, v0=2, theta=4, classes=3):
    """input (4) → h1 (``shape``) → readout (``classes``)."""
    rng = np.random.default_rng(0)
    kind = "ilif" if method == "ilif" else "gn"
    if len(shape) == 3:
        inp = (1, shape[1], shape[2])
        q1 = QProjection("input", "conv", rng.integers(-3, 4, (shape[0], 1, 1, 1)))
    else:
        inp = (4,)
        q1 = QProjection("input", "dense", rng.integers(-3, 4, (shape[0], 4)))
    n = int(np.prod(shape))
    q2 = QProjection("h1", "dense", rng.integers(-9, 10, (classes, n)))
    b1, b2 = np.zeros(shape, dtype=np.int64), rng.integers(-50, 51, classes)
    pops = [QPopulation("h1", kind, tuple(shape), theta, tau, 8 if method == "ilif" else 2, 2,
                        v0, b1, [q1], 1, 32, False, 1.0, 1.0),
            QPopulation("out", "readout", (classes,), 2, 1, 2, 1 if method == "ilif" else 2, 0,
                        b2, [q2], signed_bits(-50, 50), 32, False, 1.0, 1.0, 1.0)]
    net = QNet(method, 2, 0, InputSpecQ(inp), pops, 8, 32)
    set_membrane_widths(net)
    validate(net)
    return net


def _padding_fires(plan):
    real = plan.channels - (plan.groups - 1) * plan.lanes
    return plan.kind == "gn" and real < plan.lanes and plan.pop.v0 >= plan.pop.threshold


def _groups(rng, plan, n):
    """Random lane groups as the datapath pushes them: any spike counts on the lanes that
    hold neurons (on padding lanes only where those fire, V0 ≥ Θ), some marked ``end``;
    never a group with neither spikes nor ``end``."""
    P, G = plan.lanes, plan.groups
    fires = _padding_fires(plan)
    out = []
    while len(out) < n:
        g = rng.randrange(G)
        counts = []
        for p in range(P):
            neuron = g * P + p < plan.channels
            if (neuron or fires) and rng.random() < 0.5:
                counts.append(rng.randint(1, plan.out_count))
            else:
                counts.append(0)
        end = int(rng.random() < 0.25)
        if any(counts) or end:
            out.append({"counts": counts, "g": g, "y": rng.randrange(plan.height),
                        "x": rng.randrange(plan.width), "end": end})
    return out


def expected_events(plan, groups):
    """Each group's non-zero counts, lowest lane first, as events of neuron c = g·P + lane
    (padding lanes never), then the end-of-step beat if the group has ``end``."""
    out = []
    for grp in groups:
        for p, n in enumerate(grp["counts"]):
            c = grp["g"] * plan.lanes + p
            if n and c < plan.channels:
                where = (c, grp["y"], grp["x"]) if plan.spatial else (c,)
                out.append(("spike", where, n))
        if grp["end"]:
            out.append(("end",))
    return out


def _beat(plan, b):
    if b.end:
        return ("end",)
    where = (int(b.c), int(b.y), int(b.x)) if plan.spatial else (int(b.index),)
    return ("spike", where, int(b.count))


def _run(dut, items, n_out, decode, seed, busy):
    """Feed ``items`` into ``dut.i`` and take ``n_out`` beats from ``dut.o``, each side
    idle with probability ``busy`` (no helper that waits forever: a missing beat fails
    the comparison rather than hanging)."""
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1000)
    got = []

    async def producer(ctx):
        for it in items:
            while rng_in.random() < busy:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, it)
            while not (await ctx.tick().sample(dut.i.ready))[2]:
                pass
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        for _ in range(40 * len(items) + 200):
            if len(got) == n_out:
                break
            ready = rng_out.random() >= busy
            ctx.set(dut.o.ready, ready)
            _, _, valid, beat = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if ready and valid:
                got.append(decode(beat))
        for _ in range(20):  # nothing more comes out
            ctx.set(dut.o.ready, 1)
            _, _, valid, beat = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append(decode(beat))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return got


# (method, shape, τ, V0, Θ, lanes): lanes that split the neurons unevenly, maps, ILIF bits,
# and padding lanes that fire (V0 ≥ Θ) but are never sent.
EVENT_PLANS = [("gn", (7,), 3, 2, 4, 3), ("gn", (3, 2, 3), 2, 2, 4, 2),
               ("ilif", (4, 2, 2), 1, 2, 4, 4), ("if", (5,), 1, 2, 4, 1),
               ("gn", (5,), 2, 6, 4, 3), ("gn", (3, 2, 2), 1, 4, 4, 2)]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("plan_args", EVENT_PLANS)
def test_event_serializer(plan_args, seed):
    """Every non-zero count leaves as one event (lowest lane first, neuron g·P + lane at
    the group's position), an ``end`` group then leaves its end-of-step beat, and nothing
    else leaves (the padding lanes' spikes neither)."""
    method, shape, tau, v0, theta, lanes = plan_args
    plan = EnginePlan(_net(method, shape, tau, v0, theta), "h1", lanes)
    assert _padding_fires(plan) == (v0 >= theta and shape[0] % lanes != 0)
    rng = random.Random(seed)
    groups = _groups(rng, plan, 120)
    want = expected_events(plan, groups)
    got = _run(EventSerializer(plan), groups, len(want), lambda b: _beat(plan, b), seed, 0.4)
    assert got == want


def test_event_serializer_full_speed():
    """Input always valid, output always ready: one event (or end beat) per cycle."""
    plan = EnginePlan(_net("gn", (7,), 3, 2, 4), "h1", 3)
    groups = _groups(random.Random(5), plan, 60)
    want = expected_events(plan, groups)
    dut = EventSerializer(plan)
    got, cycles = [], [0]

    async def bench(ctx):
        k = 0
        ctx.set(dut.o.ready, 1)
        while len(got) < len(want) and cycles[0] < 10 * len(want):
            ctx.set(dut.i.valid, k < len(groups))
            if k < len(groups):
                ctx.set(dut.i.payload, groups[k])
            if ctx.get(dut.o.valid):
                got.append(_beat(plan, ctx.get(dut.o.payload)))
            if k < len(groups) and ctx.get(dut.i.ready):
                k += 1
            cycles[0] += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == want
    assert cycles[0] == len(want)


def expected_readout(values, n):
    """Beats (index, value, last) of one sample; the last carries the argmax, the lowest
    index among equal maxima."""
    best = max(values)
    arg = values.index(best)
    return [(i, v, int(i == n - 1), arg if i == n - 1 else None)
            for i, v in enumerate(values)]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("classes,lanes", [(7, 3), (4, 1), (5, 5), (6, 4)])
def test_readout_serializer(classes, lanes, seed):
    """Samples of readout groups (addresses in order, the last group's padding lanes
    holding the largest value of all): each value leaves with its index, ``last`` on the
    sample's last, which carries the argmax, lowest index first among ties; one sample's
    maximum does not leak into the next."""
    plan = EnginePlan(_net("gn", (5,), classes=classes), "out", lanes)
    P, A, n = lanes, plan.addresses, classes
    top, low = 2 ** (plan.vbits - 1) - 1, -(2 ** (plan.vbits - 1))
    rng = random.Random(seed)
    pool = [low, -3, 0, 0, 5, 5, 17, top - 1]
    samples = [[rng.choice(pool) for _ in range(n)] for _ in range(6)]
    samples += [[top - 1] * n, [low] * n, [rng.choice([low, -3]) for _ in range(n)]]
    groups, want = [], []
    for vals in samples:
        padded = vals + [top] * (A * P - n)
        groups += [{"values": padded[a * P:(a + 1) * P], "addr": a} for a in range(A)]
        want += expected_readout(vals, n)

    def decode(b):
        last = int(b.last)
        return (int(b.index), int(b.value), last, int(b.argmax) if last else None)

    got = _run(ReadoutSerializer(plan), groups, len(want), decode, seed, 0.4)
    assert got == want
