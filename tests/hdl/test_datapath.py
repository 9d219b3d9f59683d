# amaranth: UnusedElaboratable=no
"""The Datapath alone in amaranth.sim: random legal operation sequences (accumulations in
any order, back to back on one address and at every distance the forwarding covers, with
random gaps; sweeps over every address followed by the sequencer's two idle cycles) against
a Python model of the membrane and current memories built from the QNet's own weights
and biases and the documented layout."""

import random
from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.datapath import Datapath
from hwsnn.hdl.ops import ACC, SWEEP
from hwsnn.hdl.plan import EnginePlan
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import set_membrane_widths, signed_bits


# -- networks -------------------------------------------------------------------------------
def _population(npr, name, kind, shape, projs, theta, tau, v0, steps, per_channel=False,
                bias=(-20, 20)):
    b = npr.integers(bias[0], bias[1] + 1, shape).astype(np.int64)
    if per_channel and len(shape) == 3:
        b = np.broadcast_to(b[:, :1, :1], shape).copy()
    return QPopulation(name, kind, tuple(shape), theta, tau, steps[0], steps[1], v0, b, projs,
                       signed_bits(int(b.min()), int(b.max())), 32, False, 1.0, 1.0,
                       1.0 if kind == "readout" else None)


def _weights(npr, shape, wmax=20, shift=0):
    w = npr.integers(-wmax, wmax + 1, shape)
    w[npr.random(shape) < 0.25] = 0
    return (w << shift).astype(np.int64)


def net_vector_gn():
    """input (6) → h1 (5, τ 2, dense from the image: the current RAM) → h2 (4, τ 3, two
    dense projections from h1, one stored shifted) → readout (3)."""
    npr = np.random.default_rng(11)
    T = 2
    h1 = _population(npr, "h1", "gn", (5,), [QProjection("input", "dense",
                                                         _weights(npr, (5, 6)))],
                     600, 2, 300, (T, T), bias=(-200, 200))
    h2 = _population(npr, "h2", "gn", (4,),
                     [QProjection("h1", "dense", _weights(npr, (4, 5), 9)),
                      QProjection("h1", "dense", _weights(npr, (4, 5), 5, 1), weight_shift=1)],
                     12, 3, 6, (T, T))
    out = _population(npr, "out", "readout", (3,), [QProjection("h2", "dense",
                                                                _weights(npr, (3, 4)))],
                      2, 1, 0, (T, T))
    net = QNet("gn", T, 0, InputSpecQ((6,)), [h1, h2, out], 8, 40)
    set_membrane_widths(net)
    validate(net)
    return net


def net_spatial_gn():
    """input (1, 4, 4) → h1 (2, 4, 4, conv k3 s1 p1 from the image, a bias per neuron) →
    h2 (3, 2, 2, τ 3, conv k3 s2 p1, a bias per channel) → readout (2)."""
    npr = np.random.default_rng(12)
    T = 3
    h1 = _population(npr, "h1", "gn", (2, 4, 4),
                     [QProjection("input", "conv", _weights(npr, (2, 1, 3, 3)), 1, 1)],
                     900, 1, 450, (T, T), bias=(-300, 300))
    h2 = _population(npr, "h2", "gn", (3, 2, 2),
                     [QProjection("h1", "conv", _weights(npr, (3, 2, 3, 3), 9), 2, 1)],
                     14, 3, 7, (T, T), per_channel=True)
    out = _population(npr, "out", "readout", (2,), [QProjection("h2", "dense",
                                                                _weights(npr, (2, 12)))],
                      2, 1, 0, (T, T))
    net = QNet("gn", T, 0, InputSpecQ((1, 4, 4)), [h1, h2, out], 8, 40)
    set_membrane_widths(net)
    validate(net)
    return net


def net_ilif():
    """input (1, 3, 3) → h1 (2, 3, 3, ILIF, conv k3 s1 p1 from the image) → h2 (4, ILIF,
    dense, stored shifted by 2) → readout (3, bit-serial)."""
    npr = np.random.default_rng(13)
    T = 2
    h1 = _population(npr, "h1", "ilif", (2, 3, 3),
                     [QProjection("input", "conv", _weights(npr, (2, 1, 3, 3)), 1, 1)],
                     1000, 1, 500, (8, T), bias=(-400, 400))
    h2 = _population(npr, "h2", "ilif", (4,),
                     [QProjection("h1", "dense", _weights(npr, (4, 18), 7, 2),
                                  weight_shift=2)], 60, 1, 30, (T, T))
    out = _population(npr, "out", "readout", (3,), [QProjection("h2", "dense",
                                                                _weights(npr, (3, 4)))],
                      2, 1, 0, (T, 1))
    net = QNet("ilif", T, 0, InputSpecQ((1, 3, 3)), [h1, h2, out], 8, 40)
    set_membrane_widths(net)
    validate(net)
    return net


NETS = {"vector-gn": net_vector_gn, "spatial-gn": net_spatial_gn, "ilif": net_ilif}


# -- the operations an event issues (the documented layout) ---------------------------------
def event_ops(plan, k, where, count, shift):
    """Accumulations of projection ``k``'s event from source neuron ``where`` ((c, y, x)
    or (j,)): (addr, waddr, the lane weights of the QNet, count, shift) per reached output
    and lane group; lane l of group g is output channel g·P + l (weight 0 past the last)."""
    pp = plan.projections[k]
    q, G, P, C = pp.proj, plan.groups, plan.lanes, plan.channels
    ops = []
    if q.kind == "dense":
        j = int(np.ravel_multi_index(where, pp.src_shape))
        for g in range(G):
            w = [int(q.weight[g * P + lane, j]) if g * P + lane < C else 0
                 for lane in range(P)]
            ops.append((g, j * G + g, w, count, shift))
        return ops
    c, y, x = where
    kk, s, pad = q.kernel, q.stride, q.padding
    for oy in range(plan.height):
        for ox in range(plan.width):
            ky, kx = y + pad - oy * s, x + pad - ox * s
            if 0 <= ky < kk and 0 <= kx < kk:
                for g in range(G):
                    w = [int(q.weight[g * P + lane, c, ky, kx]) if g * P + lane < C else 0
                         for lane in range(P)]
                    ops.append(((oy * plan.width + ox) * G + g,
                                ((c * kk + ky) * kk + kx) * G + g, w, count, shift))
    return ops


def _neurons(shape):
    return list(np.ndindex(*shape))


def step_ops(plan, rng, k, shift=0):
    """One step of projection ``k``'s source: each neuron spikes (count 1..max) or not."""
    pp = plan.projections[k]
    ops = []
    for where in _neurons(pp.src_shape):
        if rng.random() < 0.45:
            count = rng.randint(1, pp.max_count)
            ops += event_ops(plan, k, where, count, shift)
    return ops


def image_ops(plan, rng):
    """A random image through the input projection: bit b of pixel j adds W << b."""
    k = plan.input_index
    ops = []
    for where in _neurons(plan.projections[k].src_shape):
        code = rng.choice([0, 255, rng.randrange(256), 1 << rng.randrange(8)])
        for b in range(8):
            if code >> b & 1:
                ops += event_ops(plan, k, where, 1, b)
    return ops


# -- the model ------------------------------------------------------------------------------
class Model:
    """Membranes (two banks), input currents and bias terms per (address, lane), from the
    QNet: GN V0 and B, ILIF 0 and B + V0, rate readout 0 and T·B, ILIF readout 0 and B."""

    def __init__(self, plan):
        self.plan = plan
        pop, P = plan.pop, plan.lanes
        v_init = pop.v0 if plan.kind == "gn" else 0
        A = plan.addresses
        self.v = [[[v_init] * P for _ in range(A)] for _ in range(2)]
        self.bias = [[0] * P for _ in range(A)]
        for a in range(A):
            for lane in range(P):
                where = self.neuron(a, lane)
                if where is None:
                    continue
                b = int(pop.bias[where])
                if plan.kind == "ilif":
                    b += pop.v0
                elif plan.kind == "readout" and not plan.ilif:
                    b *= pop.steps_in
                self.bias[a][lane] = b
        self.cur = [list(w) for w in self.bias]

    def neuron(self, a, lane):
        """(c, y, x) or (i,) at address ``a``, lane ``lane``; None for a padding lane."""
        plan = self.plan
        G, P = plan.groups, plan.lanes
        if plan.spatial:
            pos, g = divmod(a, G)
            c = g * P + lane
            return (c, pos // plan.width, pos % plan.width) if c < plan.channels else None
        i = a * P + lane
        return (i,) if i < plan.channels else None

    def acc(self, op):
        into = self.cur if op["cur"] else self.v[op["bank"]]
        word = into[op["addr"]]
        for lane, w in enumerate(op["w"]):
            word[lane] += (w * op["count"]) << op["shift"]

    def sweep(self, op):
        """The pushed group (or None when dropped)."""
        plan, pop = self.plan, self.plan.pop
        a, theta = op["addr"], pop.threshold
        v = self.v[op["bank"]][a]
        G = plan.groups
        if plan.kind == "readout":
            values = [v[lane] + self.bias[a][lane] for lane in range(plan.lanes)]
            self.v[op["bank"]][a] = [0] * plan.lanes
            return ("values", tuple(values), a)
        counts = []
        for lane in range(plan.lanes):
            if plan.kind == "gn":
                x = v[lane] + (self.cur if plan.has_current else self.bias)[a][lane]
                s = sum(x >= i * theta for i in range(1, pop.group_size + 1))
                v[lane] = pop.v0 if op["last_step"] else x - s * theta
                if plan.has_current and op["last_step"]:
                    self.cur[a][lane] = self.bias[a][lane]
            else:
                k, T = op["fire_k"], plan.bits_out
                x = v[lane] + (self.bias[a][lane] if k == 0 else 0)
                if k == 0:
                    x = min(x, 2**T * theta - 1)
                w = theta * 2 ** (T - 1 - k)
                s = int(x >= w)
                v[lane] = 0 if k == T - 1 else x - s * w
            counts.append(s)
        if not any(counts) and not op["end"]:
            return None
        pos, g = divmod(a, G)
        return ("counts", tuple(counts), g, pos // plan.width, pos % plan.width, op["end"])


# -- schedules ------------------------------------------------------------------------------
def _acc(plan, k, raw, bank=0):
    addr, waddr, w, count, shift = raw
    cur = plan.projections[k].is_input and plan.has_current
    return {"kind": ACC, "cur": int(cur), "bank": bank, "addr": addr, "waddr": waddr,
            "proj": k, "count": count, "shift": shift, "w": w}


def _sweep(plan, a, bank=0, last_step=0, fire_k=0):
    return {"kind": SWEEP, "addr": a, "bank": bank, "last_step": last_step, "fire_k": fire_k,
            "end": int(a == plan.addresses - 1), "bias_g": a % plan.groups}


def _gap(rng, p=0.5):
    """Idle cycles before an operation: none half the time, else 1..6 (every forwarding
    distance and beyond)."""
    return 0 if rng.random() < p else rng.randint(1, 6)


def _with_gaps(rng, ops, p=0.5):
    out = []
    for op in ops:
        out += [None] * _gap(rng, p)
        out.append(op)
        if op["kind"] == SWEEP and op["end"]:
            out += [None, None]  # the sequencer's two idle cycles after a sweep
    return out


def _mix(rng, ops):
    """A random order with runs on one address: pick an address at random, issue 1–4 of
    its accumulations back to back, repeat (back-to-back hits, and every distance)."""
    by_addr = {}
    for op in ops:
        by_addr.setdefault((op["cur"], op["addr"]), []).append(op)
    keys, out = list(by_addr), []
    while keys:
        key = rng.choice(keys)
        run = by_addr[key]
        for _ in range(min(len(run), rng.randint(1, 4))):
            out.append(run.pop(rng.randrange(len(run))))
        if not run:
            keys.remove(key)
    return out


def _event_projection_ops(plan, rng, shift=0, bank=0):
    ops = []
    for k in plan.event_indices:
        ops += [_acc(plan, k, raw, bank) for raw in step_ops(plan, rng, k, shift)]
    return ops


def schedule_rate(plan, rng, samples):
    """GN and rate readout: per sample the image (into the current RAM), then per step the
    events of every projection (``_mix``ed together), then (GN: every step; readout: after
    the last) a sweep of every address."""
    cycles = []
    A, T = plan.addresses, plan.steps
    for _ in range(samples):
        ops = []
        if plan.input_projection is not None:
            ops += [_acc(plan, plan.input_index, raw) for raw in image_ops(plan, rng)]
        for t in range(T):
            ops = _mix(rng, ops + _event_projection_ops(plan, rng))
            if plan.kind == "gn" or t == T - 1:
                ops += [_sweep(plan, a, last_step=int(t == T - 1 and plan.kind == "gn"))
                        for a in range(A)]
            cycles += _with_gaps(rng, ops)
            ops = []
    return cycles


def schedule_bit_serial(plan, rng, samples):
    """ILIF (two banks) and the ILIF readout: sample s accumulates its input planes (the
    image's bits, or plane t shifted by T_in − 1 − t) into bank s % 2 while sample s − 1's
    fire sweeps (one per output bit; one for the readout) run on the other bank, the two
    interleaved at random in the one issue slot."""
    dual = plan.kind == "ilif"
    rounds = samples + 1 if dual else samples
    sweeps = deque()
    cycles = []
    for s in range(rounds):
        bank = s % 2 if dual else 0
        accs = []
        if s < samples:
            if plan.input_projection is not None:
                accs += _mix(rng, [_acc(plan, plan.input_index, raw, bank)
                                   for raw in image_ops(plan, rng)])
            for t in range(plan.steps_in):
                if plan.event_indices:
                    accs += _mix(rng, _event_projection_ops(plan, rng, plan.steps_in - 1 - t,
                                                            bank))
        accs = deque(accs)
        if not dual:
            cycles += _with_gaps(rng, list(accs) + [_sweep(plan, a)
                                                    for a in range(plan.addresses)])
            continue
        while accs or sweeps:
            if sweeps and (not accs or rng.random() < 0.5):
                op = sweeps.popleft()
            else:
                op = accs.popleft()
            cycles += _with_gaps(rng, [op])
        if s < samples:
            sweeps = deque(_sweep(plan, a, bank=bank, fire_k=k)
                           for k in range(plan.bits_out) for a in range(plan.addresses))
    return cycles


# -- the run --------------------------------------------------------------------------------
def run(plan, cycles, seed):
    """Issue ``cycles`` (an operation or None each) and check every push and drop against
    the model, in order and at one fixed latency after its sweep."""
    model = Model(plan)
    want = []  # (issue cycle, expected push or None for a drop)
    for n, op in enumerate(cycles):
        if op is None:
            continue
        if op["kind"] == ACC:
            model.acc(op)
        else:
            want.append((n, model.sweep(op)))
    dut = Datapath(plan)
    got = []
    rng = random.Random(seed)
    readout = plan.kind == "readout"
    P = plan.lanes

    async def bench(ctx):
        for n in range(len(cycles) + 16):
            op = cycles[n] if n < len(cycles) else None
            ctx.set(dut.ops.valid, op is not None)
            if op is not None:
                ctx.set(dut.ops.payload, {k: v for k, v in op.items() if k != "w"})
            ctx.set(dut.push.ready, rng.random() < 0.5)  # (never looked at)
            if ctx.get(dut.push.valid):
                p = ctx.get(dut.push.payload)
                if readout:
                    got.append((n, ("values", tuple(p.values[lane] for lane in range(P)),
                                    p.addr)))
                else:
                    got.append((n, ("counts", tuple(p.counts[lane] for lane in range(P)),
                                    p.g, p.y, p.x, p.end)))
                if ctx.get(dut.dropped):
                    got.append((n, "push and dropped"))
            elif ctx.get(dut.dropped):
                got.append((n, None))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(want), (len(got), len(want))
    latency = got[0][0] - want[0][0]
    for i, ((tg, g), (tw, w)) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"sweep operation {i} (cycle {tw}): got {g}, model {w}"
        assert tg - tw == latency, f"sweep operation {i}: latency {tg - tw}, not {latency}"
    return want


CASES = [("vector-gn", "h1", 1), ("vector-gn", "h1", 2), ("vector-gn", "h1", 8),
         ("vector-gn", "h2", 1), ("vector-gn", "h2", 4), ("vector-gn", "out", 2),
         ("spatial-gn", "h1", 1), ("spatial-gn", "h1", 2), ("spatial-gn", "h2", 2),
         ("spatial-gn", "h2", 3), ("spatial-gn", "out", 1),
         ("ilif", "h1", 1), ("ilif", "h1", 2), ("ilif", "h2", 3), ("ilif", "h2", 4),
         ("ilif", "out", 2)]


@pytest.fixture(scope="module")
def nets():
    return {name: make() for name, make in NETS.items()}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("net_name,pop,lanes", CASES)
def test_datapath_against_memory_model(nets, net_name, pop, lanes, seed):
    """Random legal operation sequences (see the module): every sweep's pushed lane group
    (spike counts at its position with ``end``, or readout values at its address) or drop
    matches the model, in order, at one fixed latency; the spikes are not all zero."""
    plan = EnginePlan(nets[net_name], pop, lanes)
    rng = random.Random(seed * 1000 + lanes)
    if plan.ilif:
        cycles = schedule_bit_serial(plan, rng, 3)
    else:
        cycles = schedule_rate(plan, rng, 2)
    want = run(plan, cycles, seed)
    pushed = [w for _, w in want if w is not None]
    if plan.kind != "readout":
        assert any(any(w[1]) for w in pushed), "no spikes at all: a weak test"
        assert any(w is None for _, w in want) or plan.groups == 1


def test_same_address_back_to_back():
    """One lane group (every accumulation hits address 0): events issued in consecutive
    cycles and at every distance 1..7, each the newest value of the one before."""
    net = net_vector_gn()
    plan = EnginePlan(net, "h2", 4)
    assert plan.groups == 1
    rng = random.Random(5)
    cycles = []
    for _ in range(3):
        for gap in [0] * 8 + list(range(1, 8)) + [0] * 5:
            k = rng.choice(plan.event_indices)
            j = rng.randrange(5)
            (raw,) = event_ops(plan, k, (j,), rng.randint(1, 2), 0)
            cycles += [None] * gap + [_acc(plan, k, raw)]
        cycles += _with_gaps(rng, [_sweep(plan, 0)])
    run(plan, cycles, 5)
