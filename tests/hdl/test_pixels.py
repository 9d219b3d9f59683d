# amaranth: UnusedElaboratable=no
"""PixelEvents alone in amaranth.sim: each pixel code becomes the events of its set bits
(lowest first, shift = bit), each expanded into the operations of the outputs it reaches
(computed here from the documented layout), with ``done`` after the sample's last pixel."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.pixels import PixelEvents
from hwsnn.hdl.plan import EnginePlan
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import set_membrane_widths, signed_bits


def _pop(name, kind, shape, projs, method):
    bias = np.zeros(shape, dtype=np.int64)
    steps_in = 8 if (method == "ilif" and projs[0].source == "input") else 2
    steps_out = 1 if kind == "readout" and method == "ilif" else 2
    return QPopulation(name, kind, tuple(shape), 4, 1, steps_in, steps_out, 2, bias, projs,
                       signed_bits(0, 0), 32, False, 1.0, 1.0,
                       1.0 if kind == "readout" else None)


def _net(method, in_shape, h1_shape, k=1, stride=1, pad=0):
    """input → h1 (through a conv when both are maps, else dense) → readout."""
    rng = np.random.default_rng(1)
    if len(h1_shape) == 3:
        q1 = QProjection("input", "conv", rng.integers(-3, 4, (h1_shape[0], in_shape[0], k, k)),
                         stride, pad)
    else:
        q1 = QProjection("input", "dense", rng.integers(-3, 4, (h1_shape[0],
                                                                int(np.prod(in_shape)))))
    q2 = QProjection("h1", "dense", rng.integers(-3, 4, (2, int(np.prod(h1_shape)))))
    kind = "ilif" if method == "ilif" else "gn"
    net = QNet(method, 2, 0, InputSpecQ(tuple(in_shape)),
               [_pop("h1", kind, h1_shape, [q1], method),
                _pop("out", "readout", (2,), [q2], method)], 8, 32)
    set_membrane_widths(net)
    validate(net)
    return net


def pixel_ops(plan, j, code):
    """The operations of pixel ``j`` (C order) with ``code``: for each set bit b, lowest
    first, the event (pixel, count 1, shift b) on every output it reaches."""
    G, proj = plan.groups, plan.input_projection
    shape = tuple(plan.net.input.shape)
    ops = []
    for b in range(8):
        if not code >> b & 1:
            continue
        if proj.kind == "dense":
            ops += [(g, j * G + g, 1, b) for g in range(G)]
            continue
        _, h, w = shape
        c, y, x = j // (h * w), j // w % h, j % w
        q = proj.proj
        k, s, pad = q.kernel, q.stride, q.padding
        for oy in range(plan.height):
            for ox in range(plan.width):
                ky, kx = y + pad - oy * s, x + pad - ox * s
                if 0 <= ky < k and 0 <= kx < k:
                    ops += [((oy * plan.width + ox) * G + g, ((c * k + ky) * k + kx) * G + g,
                             1, b) for g in range(G)]
    return ops


def _codes(rng, n, style):
    if style == "zero":
        return [0] * n
    if style == "single":
        return [1 << rng.randrange(8) for _ in range(n)]
    if style == "full":
        return [255] * n
    return [rng.choice([0, 1 << rng.randrange(8), 255, rng.randrange(256)]) for _ in range(n)]


def _run(plan, samples, rng, p_valid, p_ready, idle_after=3):
    """One testbench, cycle by cycle: pixels offered with probability ``p_valid``, ``o``
    ready with ``p_ready``, ``start`` high until ``done``, then low for a few cycles.
    Returns the list of problems found and the cycles from each start to its done."""
    dut = PixelEvents(plan)
    n = plan.input_size
    flat = [c for s in samples for c in s]
    want = [[op for j, c in enumerate(s) for op in pixel_ops(plan, j, c)] for s in samples]
    bad, spans = [], []

    async def bench(ctx):
        sample, taken, got, began, low = 0, 0, [], 0, 0
        for cycle in range(20 * (sum(map(len, want)) + len(flat)) + 100):
            if sample == len(samples):
                return
            start = low == 0
            ctx.set(dut.start, start)
            offer = taken < len(flat) and rng.random() < p_valid
            ready = rng.random() < p_ready
            ctx.set(dut.pixels.valid, offer)
            if offer:
                ctx.set(dut.pixels.payload, flat[taken])
            ctx.set(dut.o.ready, ready)
            valid, done = ctx.get(dut.o.valid), ctx.get(dut.done)
            if not start:
                if ctx.get(dut.pixels.ready) or valid or done:
                    bad.append((cycle, "activity while start is low"))
                low -= 1
            if done:
                if valid or got != want[sample] or taken != (sample + 1) * n:
                    bad.append((cycle, "done", sample, taken, len(got), len(want[sample])))
                    return
                spans.append(cycle - began)
                sample, got, low = sample + 1, [], idle_after
                began = cycle + idle_after + 1
            if valid and ready:
                p = ctx.get(dut.o.payload)
                got.append((p.addr, p.waddr, p.count, p.shift))
                k = len(got)
                if k > len(want[sample]) or got[-1] != want[sample][k - 1]:
                    bad.append((cycle, "op", sample, len(got) - 1, got[-1]))
                    return
            if offer and ctx.get(dut.pixels.ready):
                taken += 1
            await ctx.tick()
        bad.append(("timeout", sample))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bad, spans


NETS = {
    "dense-gn": ("gn", (6,), (5,)),
    "dense-ilif-map": ("ilif", (1, 2, 3), (4,)),
    "conv-k3-s1-p1": ("gn", (2, 2, 3), (3, 2, 3), 3, 1, 1),
    "conv-k3-s2-p0": ("ilif", (1, 5, 4), (2, 2, 1), 3, 2, 0),
}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("name", sorted(NETS))
def test_bit_events_of_every_pixel(name, lanes, seed):
    """Samples of zero, one-bit, full and mixed codes, with random pixel gaps and random
    back-pressure on ``o``: every operation in order, ``done`` once per sample with every
    pixel taken and every operation out, nothing taken or issued while ``start`` is low."""
    method, *shape = NETS[name]
    plan = EnginePlan(_net(method, *shape), "h1", lanes)
    rng = random.Random(seed)
    n = plan.input_size
    samples = [_codes(rng, n, style) for style in ("mixed", "zero", "single", "full", "mixed")]
    bad, _ = _run(plan, samples, rng, 0.6, 0.6)
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(NETS))
def test_no_gap_after_one_bit_pixels(name):
    """Pixels always valid, ``o`` always ready, one lane group (an event of a dense
    projection is one operation): each pixel costs its operations (a zero pixel one
    cycle), so a sample of one-bit and zero codes takes no more cycles than that, and
    ``done`` comes straight after the last operation."""
    method, *shape = NETS[name]
    plan = EnginePlan(_net(method, *shape), "h1", shape[1][0])
    assert plan.groups == 1
    rng = random.Random(4)
    n = plan.input_size
    sample = [rng.choice([0, 1 << rng.randrange(8)]) for _ in range(n)]
    bad, spans = _run(plan, [sample, sample], rng, 1, 1)
    assert not bad, bad
    cost = sum(max(1, len(pixel_ops(plan, j, c))) for j, c in enumerate(sample))
    assert spans[0] <= cost + 2, (spans, cost)
    assert spans[1] <= cost + 2, (spans, cost)
