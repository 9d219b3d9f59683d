# amaranth: UnusedElaboratable=no
"""The neuron rules (GroupRule, IlifRule, ReadoutRule) alone in amaranth.sim: random sums
and operations through the two stages, every output against the rule formulas."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.neuron import GroupRule, IlifRule, ReadoutRule, neuron_rule
from hwsnn.hdl.ops import ACC, SWEEP
from hwsnn.hdl.plan import EnginePlan
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import membrane_bounds, set_membrane_widths, signed_bits, stored_bounds


def _net(method, theta, tau, v0, T, n=5, bias=(-7, 9), cos_steps=0):
    """input (4) → h1 (``n`` neurons, dense) → readout (3)."""
    rng = np.random.default_rng(theta * 7 + tau)
    kind = "ilif" if method == "ilif" else "gn"
    b1 = rng.integers(bias[0], bias[1] + 1, n)
    b2 = rng.integers(-5, 6, 3)
    steps_in = 8 if method == "ilif" else T
    pops = [QPopulation("h1", kind, (n,), theta, tau, steps_in, T, v0, b1,
                        [QProjection("input", "dense", rng.integers(-20, 21, (n, 4)))],
                        signed_bits(int(b1.min()), int(b1.max())), 32, False, 1.0, 1.0),
            QPopulation("out", "readout", (3,), 2, 1, T, 1 if method == "ilif" else T, 0, b2,
                        [QProjection("h1", "dense", rng.integers(-20, 21, (3, n)))],
                        signed_bits(int(b2.min()), int(b2.max())), 32, False, 1.0, 1.0, 1.0)]
    net = QNet(method, T, cos_steps, InputSpecQ((4,)), pops, 8, 32)
    set_membrane_widths(net)
    validate(net)
    return net


def _wrap(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def expected(plan, op, v, clamped):
    """(r, result, counts or values) of an operation in stage 6 whose sum was ``v`` (lanes),
    ``clamped``: it was an ILIF sweep of fire step 0 in stage 5."""
    pop, P = plan.pop, plan.lanes
    theta = pop.threshold
    if plan.kind == "ilif":
        top = 2**plan.bits_out * theta - 1
        r = [min(x, top) if clamped else x for x in v]
    else:
        r = list(v)
    if op["kind"] == ACC:
        return r, [_wrap(x, plan.vbits) for x in r], None
    if plan.kind == "gn":
        counts = [sum(x >= i * theta for i in range(1, pop.group_size + 1)) for x in r]
        result = [pop.v0 if op["last_step"] else x - s * theta
                  for x, s in zip(r, counts, strict=True)]
        return r, result, counts
    if plan.kind == "ilif":
        k = op["fire_k"]
        w = theta * 2 ** (plan.bits_out - 1 - k)
        counts = [int(x >= w) for x in r]
        result = [0 if k == plan.bits_out - 1 else (x - w if f else x)
                  for x, f in zip(r, counts, strict=True)]
        return r, result, counts
    return r, [0] * P, r  # readout: report, clear


def _value(rng, plan, kind, fire_k):
    """A sum the datapath can give the rule: a membrane, or around a threshold."""
    pop, theta = plan.pop, plan.pop.threshold
    wide = max(plan.vbits, plan.cbits) + 1
    if kind == ACC:
        return rng.randint(-(2 ** (wide - 1)), 2 ** (wide - 1) - 1)
    if plan.kind == "gn":
        lo, hi = membrane_bounds(plan.net, pop)
        edges = [i * theta + d for i in range(pop.group_size + 2) for d in (-1, 0, 1)]
    else:
        lo, hi = stored_bounds(plan.net, pop)
        edges = [theta * 2 ** (plan.bits_out - 1 - fire_k) + d for d in (-1, 0, 1)]
        edges += [2**plan.bits_out * theta + d for d in (-2, -1, 0, 1)]
    edges = [e for e in edges if lo <= e <= hi]
    if edges and rng.random() < 0.5:
        return rng.choice(edges)
    return rng.randint(lo, hi)


def _op(rng, plan):
    """A stage operation: random kind, fire step, last step, and noise in every other
    field (the rules must ignore them)."""
    return {"valid": 1, "kind": rng.choice([ACC, SWEEP]), "cur": rng.randrange(2),
            "bank": rng.randrange(2), "addr": rng.randrange(max(2, plan.addresses)),
            "last_step": rng.randrange(2), "fire_k": rng.randrange(max(1, plan.bits_out)),
            "end": rng.randrange(2), "shift": rng.randrange(16)}


def _run(dut, bench, bad):
    """Simulate ``bench`` on ``dut``; ``bad`` is what it found wrong."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:3]


def _check(plan, seed, rule, cycles=400):
    rng = random.Random(seed)
    dut = neuron_rule(plan)
    assert type(dut) is rule
    P = plan.lanes
    bad = []

    async def bench(ctx):
        prev = None  # (op, sums, clamped) now in stage 6
        for cycle in range(cycles):
            op = _op(rng, plan)
            v = [_value(rng, plan, op["kind"], op["fire_k"]) for _ in range(P)]
            ctx.set(dut.s5, op)
            ctx.set(dut.s6, prev[0] if prev else {"valid": 0})
            for p in range(P):
                ctx.set(dut.val[p], v[p])
            if prev is not None:
                r, result, out = expected(plan, *prev)
                got_r = [ctx.get(dut.r[p]) for p in range(P)]
                got_res = [ctx.get(dut.result[p]) for p in range(P)]
                if plan.kind == "readout":
                    got_out = [ctx.get(dut.values[p]) for p in range(P)]
                else:
                    got_out = [ctx.get(dut.counts[p]) for p in range(P)]
                if got_r != r or got_res != result or (out is not None and got_out != out):
                    bad.append((cycle, prev, (got_r, got_res, got_out), (r, result, out)))
            clamped = op["kind"] == SWEEP and op["fire_k"] == 0
            prev = (op, v, clamped)
            await ctx.tick()

    _run(dut, bench, bad)


# (method, Θ, τ, V0, T): IF, group neurons with V0 = Θ/2, −1 and beyond Θ (padding lanes
# then fire), ILIF with Θ not a power of two and a power of two.
GN = [("if", 6, 1, 3, 2), ("gn", 10, 3, 5, 2), ("gn", 4, 4, -1, 3), ("gn", 8, 2, 9, 1)]
ILIF = [("ilif", 6, 1, 3, 2), ("ilif", 8, 1, 4, 3), ("ilif", 10, 1, 0, 1)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("method,theta,tau,v0,T", GN)
def test_group_rule(method, theta, tau, v0, T, lanes, seed):
    """GN: spikes = #{i in 1..τ : V ≥ iΘ}, new V = V − spikes·Θ (V0 on the last step);
    accumulations pass through (``r`` and ``result`` the sum)."""
    plan = EnginePlan(_net(method, theta, tau, v0, T), "h1", lanes)
    _check(plan, seed * 1000 + theta * 10 + lanes, GroupRule)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("method,theta,tau,v0,T", ILIF)
def test_ilif_rule(method, theta, tau, v0, T, lanes, seed):
    """ILIF: fire step 0 clamps the sum to 2^T·Θ − 1 (as ``r``, from the stage-5
    operation); fire step k fires when V ≥ Θ·2^(T−1−k) and subtracts it; the last fire
    step clears V; accumulations pass through unclamped."""
    plan = EnginePlan(_net(method, theta, tau, v0, T, bias=(0, 60)), "h1", lanes)
    _check(plan, seed * 1000 + theta * 10 + lanes, IlifRule)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("method", ["gn", "ilif"])
def test_readout_rule(method, lanes, seed):
    """Readout: a sweep reports the sum as ``values`` and clears the membrane;
    accumulations pass through."""
    plan = EnginePlan(_net(method, 6, 1, 3, 2), "out", lanes)
    _check(plan, seed * 10 + lanes, ReadoutRule)


def _cos_v0(pop, trace):
    """docs/qnet.md's V0 from one neuron's pre-simulation: ``trace`` is its (spikes, V after
    the step) of each step (written out here from the rule's text, not from golden.py)."""
    theta, v0 = pop.threshold, pop.v0
    n = sum(s for s, _ in trace)
    v_rho = trace[-1][1]
    fired = [v for s, v in trace if s > 0]
    quiet = [v for s, v in trace if s == 0]
    if v_rho < 0 and n > 0:
        return v0 - max(theta, min(fired) + 1)
    if v_rho >= theta:
        return v0 + (max(theta, theta + 1 - max(quiet)) if quiet else theta)
    return v0


# (Θ, τ, V0, T, ρ): IF (τ = 1, as conversions make it), a group neuron, ρ = 1 (the
# first pre-simulation step is also the last) and V0 ≠ Θ/2.
COS = [(6, 1, 3, 2, 4), (10, 3, 5, 1, 3), (4, 1, -1, 2, 1), (8, 2, 9, 1, 6)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("theta,tau,v0,T,rho", COS)
def test_group_rule_calibrates(theta, tau, v0, T, rho, lanes, seed):
    """cos: sweeps of 3 addresses (each one's statistics kept in a memory modelled here:
    read for stage 5, written from ``stats_next`` in stage 7), step after step over
    samples of ρ + T steps with random sums, accumulations between them; in the ρ-th step
    V0 replaces V, by the rule's formula applied to the spikes and membranes of the steps
    before; other steps as GN; accumulations pass through."""
    net = _net("cos", theta, tau, v0, T, cos_steps=rho)
    plan = EnginePlan(net, "h1", lanes)
    pop, P, A = plan.pop, lanes, 3
    assert plan.steps == rho + T
    rng = random.Random(seed * 100 + theta)
    ops = []  # (op, sums): every step's sweep of each address, for a few samples, with
    # accumulations (and cycles without an operation) between them
    for _sample in range(6):
        for t in range(plan.steps):
            for a in range(A):
                while rng.random() < 0.4:
                    op = {**_op(rng, plan), "kind": ACC, "valid": rng.randrange(2)}
                    ops.append((op, [_value(rng, plan, ACC, 0) for _ in range(P)]))
                op = {**_op(rng, plan), "kind": SWEEP, "addr": a,
                      "last_step": int(t == plan.steps - 1), "first": int(t == 0),
                      "calibrate": int(t == rho - 1)}
                ops.append((op, [_value(rng, plan, SWEEP, 0) for _ in range(P)]))
    dut = neuron_rule(plan)
    mem = {}
    traces = {}  # (address, lane) → this sample's (spikes, V after the step)
    bad = []

    async def bench(ctx):
        for cycle in range(len(ops) + 2):
            s5 = ops[cycle] if cycle < len(ops) else None
            s6 = ops[cycle - 1] if 0 < cycle <= len(ops) else None
            s7 = ops[cycle - 2] if 1 < cycle <= len(ops) + 1 else None
            ctx.set(dut.s5, s5[0] if s5 else {"valid": 0})
            ctx.set(dut.s6, s6[0] if s6 else {"valid": 0})
            if s5:
                for p in range(P):
                    ctx.set(dut.val[p], s5[1][p])
                    ctx.set(dut.stats[p].as_value(), mem.get((s5[0]["addr"], p), 0))
            if s6 and s6[0]["kind"] == ACC:  # (passes through)
                got = [ctx.get(dut.result[p]) for p in range(P)]
                if got != [_wrap(v, plan.vbits) for v in s6[1]]:
                    bad.append((cycle, "accumulation", got, s6[1]))
            elif s6:
                op, sums = s6
                for p in range(P):
                    count = sum(sums[p] >= i * theta for i in range(1, tau + 1))
                    after = sums[p] - count * theta
                    key = (op["addr"], p)
                    if op["first"]:
                        traces[key] = []
                    traces[key].append((count, after))
                    want = (v0 if op["last_step"] else
                            _cos_v0(pop, traces[key]) if op["calibrate"] else after)
                    got = (ctx.get(dut.counts[p]), ctx.get(dut.result[p]))
                    if got != (count, want):
                        bad.append((cycle, op["addr"], p, traces[key], got, (count, want)))
            if s7 and s7[0]["kind"] == SWEEP:  # (the datapath writes on sweeps)
                for p in range(P):
                    mem[(s7[0]["addr"], p)] = ctx.get(dut.stats_next[p].as_value())
            await ctx.tick()

    _run(dut, bench, bad)
