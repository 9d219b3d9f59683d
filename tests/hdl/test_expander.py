# amaranth: UnusedElaboratable=no
"""Expander alone in amaranth.sim: every event becomes exactly the memory operations of
the outputs it reaches, checked cycle by cycle against a Python enumeration of the
documented layout (neuron (c, y, x) at (y·W + x)·G + c // P; dense ROM row j at j·G + g,
conv ROM row (c_in·k + ky)·k + kx at that times G plus g)."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.expander import Expander
from hwsnn.hdl.plan import EnginePlan
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import set_membrane_widths, signed_bits


def _pop(name, kind, shape, projs, tau=1):
    bias = np.zeros(shape, dtype=np.int64)
    return QPopulation(name, kind, tuple(shape), 4, tau, 2, 2, 2, bias, projs,
                       signed_bits(0, 0), 32, False, 1.0, 1.0,
                       1.0 if kind == "readout" else None)


def _net(src_shape, proj_kind, out_shape, k=1, stride=1, pad=0):
    """input → h1 (group neurons τ = 3, shape ``src_shape``) → h2 (``out_shape``, through
    the projection under test) → readout."""
    rng = np.random.default_rng(0)
    if len(src_shape) == 3:
        q1 = QProjection("input", "conv", rng.integers(-3, 4, (src_shape[0],) * 2 + (1, 1)))
        inp = src_shape
    else:
        inp = (3,)
        q1 = QProjection("input", "dense", rng.integers(-3, 4, (src_shape[0], 3)))
    n_src = int(np.prod(src_shape))
    if proj_kind == "conv":
        q2 = QProjection("h1", "conv", rng.integers(-3, 4, (out_shape[0], src_shape[0], k, k)),
                         stride, pad)
    else:
        q2 = QProjection("h1", "dense", rng.integers(-3, 4, (out_shape[0], n_src)))
    n_out = int(np.prod(out_shape))
    q3 = QProjection("h2", "dense", rng.integers(-3, 4, (2, n_out)))
    pops = [_pop("h1", "gn", src_shape, [q1], tau=3), _pop("h2", "gn", out_shape, [q2]),
            _pop("out", "readout", (2,), [q3])]
    net = QNet("gn", 2, 0, InputSpecQ(tuple(inp)), pops, 8, 32)
    set_membrane_widths(net)
    validate(net)
    return net


def expected_ops(plan, proj, ev):
    """The (addr, waddr, count, shift) of every output event ``ev`` reaches, outputs in
    row-major order (oy, then ox, then the lane group g)."""
    G, q = plan.groups, proj.proj
    ops = []
    if proj.kind == "dense":
        if len(proj.src_shape) == 3:
            _, h, w = proj.src_shape
            j = (ev["c"] * h + ev["y"]) * w + ev["x"]
        else:
            j = ev["index"]
        return [(g, j * G + g, ev["count"], ev["shift"]) for g in range(G)]
    k, s, pad = q.kernel, q.stride, q.padding
    for oy in range(plan.height):
        for ox in range(plan.width):
            ky, kx = ev["y"] + pad - oy * s, ev["x"] + pad - ox * s
            if 0 <= ky < k and 0 <= kx < k:
                for g in range(G):
                    ops.append(((oy * plan.width + ox) * G + g,
                                ((ev["c"] * k + ky) * k + kx) * G + g,
                                ev["count"], ev["shift"]))
    return ops


def _events(rng, proj, repeat=1):
    """Every source neuron (in a random order, ``repeat`` times), with random count and
    shift."""
    shape = proj.src_shape
    if len(shape) == 3:
        coords = [{"c": c, "y": y, "x": x} for c in range(shape[0]) for y in range(shape[1])
                  for x in range(shape[2])]
    else:
        coords = [{"index": i} for i in range(shape[0])]
    coords = coords * repeat
    rng.shuffle(coords)
    return [{**c, "count": rng.randint(1, proj.max_count), "shift": rng.randrange(16)}
            for c in coords]


def _simulate(plan, proj, events, rng, p_valid, p_ready):
    """Cycle-by-cycle model: ``o`` carries the head of the pending operations; ``i.ready``
    is high when none is pending, or the last one issues this cycle. Returns the list of
    mismatches (empty when every cycle agreed) and the operations seen."""
    dut = Expander(plan, proj)
    bad, seen = [], []

    async def bench(ctx):
        pending, nxt = [], 0
        total = sum(len(expected_ops(plan, proj, e)) for e in events)
        for cycle in range(20 * (total + len(events)) + 100):
            if nxt == len(events) and not pending:
                return
            offer = nxt < len(events) and rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, events[nxt])
            ctx.set(dut.o.ready, ready)
            valid = ctx.get(dut.o.valid)
            if valid != bool(pending) or ctx.get(dut.busy) != bool(pending):
                bad.append((cycle, "valid/busy", valid, len(pending)))
                return
            if valid:
                p = ctx.get(dut.o.payload)
                got = (p.addr, p.waddr, p.count, p.shift)
                if ready:
                    seen.append(got)
                if got != pending[0]:
                    bad.append((cycle, "op", got, pending[0]))
                    return
            want_ready = not pending or (len(pending) == 1 and ready)
            if ctx.get(dut.i.ready) != want_ready:
                bad.append((cycle, "i.ready", not want_ready, len(pending)))
                return
            if valid and ready:
                pending.pop(0)
            if offer and want_ready:
                pending = expected_ops(plan, proj, events[nxt])
                nxt += 1
            await ctx.tick()
        bad.append(("timeout", nxt, len(pending)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bad, seen


CONVS = [(s, p) for s in (1, 2) for p in (0, 1)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("lanes", [1, 2, 3])
@pytest.mark.parametrize("stride,pad", CONVS)
def test_conv_events_reach_their_outputs(lanes, stride, pad, seed):
    """Kernel 3 over a 5×6 map (2 input, 5 output channels): every source position, with
    random gaps on ``i`` and random back-pressure on ``o``, issues exactly its outputs'
    operations in order, and ``i.ready``/``o.valid``/``busy`` follow the handshake cycle by
    cycle (positions reaching no output, as at stride 2 without padding, issue none)."""
    src = (2, 5, 6)
    oh, ow = (5 + 2 * pad - 3) // stride + 1, (6 + 2 * pad - 3) // stride + 1
    net = _net(src, "conv", (5, oh, ow), 3, stride, pad)
    plan = EnginePlan(net, "h2", lanes)
    proj = plan.projections[0]
    rng = random.Random(seed * 100 + lanes * 10 + stride * 2 + pad)
    events = _events(rng, proj)
    bad, seen = _simulate(plan, proj, events, rng, 0.6, 0.6)
    assert not bad, bad
    assert len(seen) == sum(len(expected_ops(plan, proj, e)) for e in events)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("lanes", [1, 2, 3])
@pytest.mark.parametrize("src", [(7,), (2, 3, 2)])
def test_dense_events_reach_every_group(lanes, src, seed):
    """A dense projection (from a vector, or from a map through its flat index) issues one
    operation per lane group: addresses 0..G−1, ROM row j·G + g."""
    net = _net(src, "dense", (5,))
    plan = EnginePlan(net, "h2", lanes)
    proj = plan.projections[0]
    rng = random.Random(seed * 10 + lanes)
    events = _events(rng, proj, repeat=2)
    bad, _ = _simulate(plan, proj, events, rng, 0.5, 0.5)
    assert not bad, bad


@pytest.mark.parametrize("kind,lanes,stride,pad", [("conv", 1, 1, 1), ("conv", 2, 2, 1),
                                                    ("conv", 3, 1, 0), ("dense", 1, 1, 0),
                                                    ("dense", 2, 1, 0)])
def test_back_to_back_events_leave_no_gap(kind, lanes, stride, pad):
    """Events always valid, ``o`` always ready: the next event is taken in its
    predecessor's last-operation cycle, so an operation issues in every cycle (events
    that reach outputs only)."""
    src = (2, 5, 6)
    if kind == "conv":
        oh, ow = (5 + 2 * pad - 3) // stride + 1, (6 + 2 * pad - 3) // stride + 1
        net = _net(src, "conv", (5, oh, ow), 3, stride, pad)
    else:
        net = _net(src, "dense", (5,))
    plan = EnginePlan(net, "h2", lanes)
    proj = plan.projections[0]
    rng = random.Random(3)
    events = [e for e in _events(rng, proj) if expected_ops(plan, proj, e)]
    dut = Expander(plan, proj)
    valid_cycles = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        nxt = 0
        for _ in range(5000):
            ctx.set(dut.i.valid, nxt < len(events))
            if nxt < len(events):
                ctx.set(dut.i.payload, events[nxt])
                if ctx.get(dut.i.ready):
                    nxt += 1
            valid_cycles.append(ctx.get(dut.o.valid))
            if nxt == len(events) and not ctx.get(dut.busy):
                return
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    total = sum(len(expected_ops(plan, proj, e)) for e in events)
    first = valid_cycles.index(1)
    assert valid_cycles[first:first + total] == [1] * total
    assert first == 1 and sum(valid_cycles) == total
