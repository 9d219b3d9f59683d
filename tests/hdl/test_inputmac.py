# amaranth: UnusedElaboratable=no
"""InputMac alone in amaranth.sim: weights and biases held in Python dicts serve its ``mem``
read ports (data one cycle after the address); the currents it writes must be bias + Σ W·x
for every neuron, with the weights' shift applied."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.inputmac import InputMac
from hwsnn.hdl.plan import EnginePlan
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import set_membrane_widths, signed_bits


def _net(rng, in_shape, n, wbits, shift):
    """input → h1 (``n`` group neurons, dense from the image; weights of ``wbits`` bits
    stored, times 2^``shift``) → readout."""
    npr = np.random.default_rng(rng.randrange(2**32))
    n_in = int(np.prod(in_shape))
    wmax = 2 ** (wbits - 1) - 1
    stored = npr.integers(-wmax, wmax + 1, (n, n_in))
    stored[npr.random((n, n_in)) < 0.3] = 0
    stored[0, :] = wmax  # one neuron at the largest current, one at the smallest
    stored[-1, :] = -wmax
    b1 = npr.integers(-300, 301, n)
    q1 = QProjection("input", "dense", stored << shift, weight_bits=wbits, weight_shift=shift)
    q2 = QProjection("h1", "dense", npr.integers(-5, 6, (2, n)))
    pops = [QPopulation("h1", "gn", (n,), 40, 2, 2, 2, 20, b1, [q1],
                        signed_bits(int(b1.min()), int(b1.max())), 32, False, 1.0, 1.0),
            QPopulation("out", "readout", (2,), 2, 1, 2, 2, 0, np.zeros(2, dtype=np.int64),
                        [q2], 1, 32, False, 1.0, 1.0, 1.0)]
    net = QNet("gn", 2, 0, InputSpecQ(tuple(in_shape)), pops, wbits, 48)
    set_membrane_widths(net)
    validate(net)
    return net


def _wrap(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _run(plan, samples, rng, p_valid, idle=(0, 4)):
    """One testbench, cycle by cycle: serves the read ports from the dicts, offers
    pixels with probability ``p_valid``, holds ``start`` until ``done``. Returns the
    problems found, the writes of each sample ({address: lanes}), and the active cycles
    of each sample."""
    q = plan.input_projection.proj
    M, G, P = plan.mac_lanes, plan.mac_groups, plan.lanes
    N, n_in = plan.channels, plan.input_size
    wbits, bbits = q.weight_bits, plan.bbits
    stored = q.stored.reshape(N, n_in)
    garbage = random.Random(99)

    def weight_word(addr):  # pixel j's group g at address j·G + g; neuron g·M + lane
        j, g = divmod(addr, G)
        return [int(stored[g * M + lane, j]) if j < n_in and g * M + lane < N
                else garbage.randint(-(2 ** (wbits - 1)), 2 ** (wbits - 1) - 1)
                for lane in range(M)]

    def bias_word(addr):  # neuron addr·P + lane
        return [int(plan.pop.bias[addr * P + lane]) if addr * P + lane < N
                else garbage.randint(-(2 ** (bbits - 1)), 2 ** (bbits - 1) - 1)
                for lane in range(P)]

    dut = InputMac(plan)
    mem = dut.mem
    flat = [c for s in samples for c in s]
    bad, writes, active = [], [], []

    async def bench(ctx):
        w_prev = b_prev = 0
        taken, sample, low, cur, busy = 0, 0, 0, {}, 0
        for cycle in range(60 * (len(flat) + 20) * G):
            if sample == len(samples):
                return
            ctx.set(mem.w_data, weight_word(w_prev))
            ctx.set(mem.b_data, bias_word(b_prev))
            start = low == 0
            ctx.set(dut.start, start)
            offer = taken < len(flat) and rng.random() < p_valid
            ctx.set(dut.pixels.valid, offer)
            if offer:
                ctx.set(dut.pixels.payload, flat[taken])
            if ctx.get(mem.c_en):
                a = ctx.get(mem.c_addr)
                if a in cur or not start:
                    bad.append((cycle, "write twice or while idle", a))
                cur[a] = [ctx.get(mem.c_data[lane]) for lane in range(P)]
            busy += ctx.get(dut.active)
            if ctx.get(dut.done):
                if ctx.get(mem.c_en) or taken != (sample + 1) * n_in:
                    bad.append((cycle, "done early", sample, taken))
                writes.append(cur)
                active.append(busy)
                cur, busy, sample = {}, 0, sample + 1
                low = rng.randint(*idle)
            elif not start:
                low -= 1
            if offer and ctx.get(dut.pixels.ready):
                taken += 1
            w_prev, b_prev = ctx.get(mem.w_addr), ctx.get(mem.b_addr)
            await ctx.tick()
        bad.append(("timeout", sample))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bad, writes, active


def expected_currents(net, codes):
    """bias + Σ_j W[i, j]·x_j for each neuron i (W with its shift: the QNet's weights)."""
    pop = net.populations[0]
    w = pop.projections[0].weight.reshape(pop.size, -1)
    return [int(pop.bias[i]) + int(np.dot(w[i], codes)) for i in range(pop.size)]


# (input shape, neurons, lanes P, input lanes M, weight bits, weight shift)
CASES = [((9,), 7, 1, 4, 8, 0), ((9,), 7, 2, 4, 6, 2), ((1, 3, 3), 6, 3, 3, 8, 0),
         ((5,), 3, 1, 8, 4, 1), ((6,), 10, 2, 6, 8, 0)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_currents_of_every_neuron(case, seed):
    """Samples of mixed, zero, full-scale and one-pixel codes with random pixel gaps: every
    current address written once per sample, bias + Σ W·x on every lane of a neuron;
    ``done`` after the last write; one operation per cycle, G_M·(non-zero pixels + 2)
    in all (``active``)."""
    in_shape, n, lanes, mac, wbits, shift = case
    rng = random.Random(seed * 31 + n)
    net = _net(rng, in_shape, n, wbits, shift)
    plan = EnginePlan(net, "h1", lanes, mac)
    assert plan.mac_lanes == mac
    n_in = plan.input_size
    one = [0] * n_in
    one[rng.randrange(n_in)] = rng.randrange(1, 256)
    samples = [[rng.choice([0, 255, rng.randrange(256)]) for _ in range(n_in)],
               [0] * n_in, [255] * n_in, one,
               [rng.choice([0, 0, 1, 128, 255]) for _ in range(n_in)]]
    bad, writes, active = _run(plan, samples, rng, 0.6)
    assert not bad, bad
    assert len(writes) == len(samples)
    P = plan.lanes
    for s, (codes, got) in enumerate(zip(samples, writes, strict=True)):
        assert sorted(got) == list(range(plan.addresses)), (s, sorted(got))
        want = expected_currents(net, codes)
        for i, v in enumerate(want):
            assert got[i // P][i % P] == _wrap(v, plan.cbits) == v, (s, i, got[i // P], v)
        nonzero = sum(c != 0 for c in codes)
        assert active[s] == plan.mac_groups * (nonzero + 2), (s, active[s])


def test_back_to_back_samples():
    """``start`` raised again right after ``done``, pixels always valid: the samples
    still come out right."""
    rng = random.Random(8)
    net = _net(rng, (8,), 9, 8, 0)
    plan = EnginePlan(net, "h1", 3, 6)
    samples = [[rng.randrange(256) for _ in range(8)] for _ in range(4)]
    bad, writes, _ = _run(plan, samples, rng, 1.0, idle=(0, 0))
    assert not bad, bad
    for codes, got in zip(samples, writes, strict=True):
        want = expected_currents(net, codes)
        assert [got[i // 3][i % 3] for i in range(9)] == want
