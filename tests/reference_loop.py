"""A deliberately naive reference of the QNet semantics (docs/qnet.md), one sample at a time.

Pure Python: plain ``int`` arithmetic and nested loops over neurons and synapses; no torch, no
matrix products, no convolutions. It reads a ``hwsnn.snn.qnet.QNet`` only for its numbers. It is
written from docs/qnet.md and the cost model at the top of hwsnn/snn/golden.py, independently of
``hwsnn.snn.golden``, so that the two can be checked against each other.

``run_reference(net, codes, lanes)`` returns a ``Reference`` holding, for the one sample:

- ``readout`` (the readout membranes after the last step) and ``prediction`` (argmax, the
  lowest index wins ties);
- ``outputs[pop]``: per output step, the flat list of counts the population sent (GN: 0..τ;
  ILIF: one bit-plane, MSB first; cos: the ρ pre-simulation steps come first);
- ``membranes[pop]``: the final membranes (GN: after the last fire; ILIF and readout: after
  adding bias and offset);
- ``events[pop]`` (and ``events["input"]``: the 8 input bit-planes), ``spikes[pop]``: per step,
  the number of non-zero outputs and the sum of the outputs;
- ``cycles[pop]``: ideal cycles per step with ``lanes`` lanes P, as the top of hwsnn/snn/golden.py
  documents them (GN: every step ends with a fire sweep; ILIF: one entry per input bit-plane,
  then one sweep per output bit-plane; readout: a sweep at its last step); ``synaptic_events``,
  ``sops``;
- ``vmin[pop]``, ``vmax[pop]``: the extreme membrane values ever held (initial values, after
  every update, after every fire), and ``saturations[pop]``: how many times a clamp changed V;
- ``cos_rule[pop]`` (cos only): per neuron, which V0 rule applied: "keep", "down" (by Θ),
  "down, by min_fire" (by min_fire + 1 > Θ), "up" (by Θ), "up, by max_quiet" (by
  Θ + 1 − max_quiet > Θ), "up, never quiet".
"""

from __future__ import annotations

from dataclasses import dataclass, field

INPUT = "input"
INPUT_BITS = 8


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def flatten(x) -> list[int]:
    """Nested lists / numpy arrays / scalars → flat list of Python ints in C order."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, list | tuple):
        out: list[int] = []
        for item in x:
            out.extend(flatten(item))
        return out
    return [int(x)]


def prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def bits_msb_first(value: int, bits: int) -> list[int]:
    return [(value >> (bits - 1 - t)) & 1 for t in range(bits)]


@dataclass
class Reference:
    readout: list[int] = field(default_factory=list)
    prediction: int = -1
    outputs: dict[str, list[list[int]]] = field(default_factory=dict)
    membranes: dict[str, list[int]] = field(default_factory=dict)
    events: dict[str, list[int]] = field(default_factory=dict)
    spikes: dict[str, list[int]] = field(default_factory=dict)
    cycles: dict[str, list[int]] = field(default_factory=dict)
    synaptic_events: int = 0
    sops: int = 0
    vmin: dict[str, int] = field(default_factory=dict)
    vmax: dict[str, int] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)
    cos_rule: dict[str, list[str]] = field(default_factory=dict)


class _Proj:
    """One projection as plain Python lists, with its source and target shapes."""

    def __init__(self, proj, src_shape, dst_shape):
        self.source = proj.source
        self.kind = proj.kind
        self.w = proj.weight.tolist()
        self.stride = int(proj.stride)
        self.padding = int(proj.padding)
        self.src_shape = tuple(int(d) for d in src_shape)
        self.dst_shape = tuple(int(d) for d in dst_shape)
        self.n_out = prod(dst_shape)

    def current(self, counts: list[int]) -> list[int]:
        """Σ_j W[i, j] · counts[j] for every target neuron i, by explicit loops."""
        out = [0] * self.n_out
        if self.kind == "dense":
            for i in range(self.n_out):
                acc = 0
                row = self.w[i]
                for j in range(len(counts)):
                    acc += row[j] * counts[j]
                out[i] = acc
            return out
        c_in, h, w = self.src_shape
        c_out, ho, wo = self.dst_shape
        k = len(self.w[0][0])
        for co in range(c_out):
            for oy in range(ho):
                for ox in range(wo):
                    acc = 0
                    for ci in range(c_in):
                        for ky in range(k):
                            iy = oy * self.stride - self.padding + ky
                            if iy < 0 or iy >= h:
                                continue  # zero padding
                            for kx in range(k):
                                ix = ox * self.stride - self.padding + kx
                                if ix < 0 or ix >= w:
                                    continue
                                acc += self.w[co][ci][ky][kx] * counts[(ci * h + iy) * w + ix]
                    out[(co * ho + oy) * wo + ox] = acc
        return out

    def reached(self, iy: int, ix: int) -> int:
        """Output positions of a convolution whose window covers source position (iy, ix)."""
        _, h, w = self.src_shape
        _, ho, wo = self.dst_shape
        k = len(self.w[0][0])
        n = 0
        for oy in range(ho):
            dy = iy - (oy * self.stride - self.padding)
            if not 0 <= dy < k:
                continue
            for ox in range(wo):
                dx = ix - (ox * self.stride - self.padding)
                if 0 <= dx < k:
                    n += 1
        return n

    def cost(self, counts: list[int], lanes: int) -> tuple[int, int, int]:
        """(cycles, synaptic events, SOPs) of delivering one step of ``counts``."""
        cycles = syn = sops = 0
        if self.kind == "dense":
            per_event = ceil_div(self.n_out, lanes)
            for c in counts:
                if c != 0:
                    cycles += per_event
                    syn += self.n_out
                    sops += c * self.n_out
            return cycles, syn, sops
        c_in, h, w = self.src_shape
        c_out = self.dst_shape[0]
        per_event = ceil_div(c_out, lanes)
        for ci in range(c_in):
            for iy in range(h):
                for ix in range(w):
                    c = counts[(ci * h + iy) * w + ix]
                    if c == 0:
                        continue
                    r = self.reached(iy, ix)
                    cycles += r * per_event
                    syn += r * c_out
                    sops += c * r * c_out
        return cycles, syn, sops


class _Pop:
    def __init__(self, pop, shapes):
        self.name = pop.name
        self.kind = pop.kind
        self.shape = tuple(int(d) for d in pop.shape)
        self.size = prod(self.shape)
        self.theta = int(pop.threshold)
        self.tau = int(pop.group_size)
        self.steps_in = int(pop.steps_in)
        self.steps_out = int(pop.steps_out)
        self.v0 = int(pop.v0)
        self.bias = flatten(pop.bias)
        self.saturate = bool(pop.saturate)
        self.bits = int(pop.membrane_bits)
        self.projs = [_Proj(q, shapes[q.source], self.shape) for q in pop.projections]


class _Run:
    def __init__(self, net, codes, lanes: int):
        self.lanes = lanes
        shapes = {INPUT: tuple(int(d) for d in net.input.shape)}
        self.pops: list[_Pop] = []
        for p in net.populations:
            shapes[p.name] = tuple(int(d) for d in p.shape)
            self.pops.append(_Pop(p, shapes))
        self.x = flatten(codes)
        assert len(self.x) == prod(shapes[INPUT]), "codes do not match the input shape"
        assert all(0 <= v <= 255 for v in self.x), "codes must be 0..255"
        self.planes = [[bits_msb_first(v, INPUT_BITS)[b] for v in self.x]
                       for b in range(INPUT_BITS)]
        self.ref = Reference()
        r = self.ref
        r.events[INPUT] = [sum(1 for v in plane if v != 0) for plane in self.planes]
        for p in self.pops:
            r.cycles[p.name] = []
            r.vmin[p.name] = 0 if p.kind == "ilif" or net.method == "ilif" else p.v0
            r.vmax[p.name] = r.vmin[p.name]
            r.saturations[p.name] = 0
            if p.kind != "readout":
                r.outputs[p.name] = []
                r.events[p.name] = []
                r.spikes[p.name] = []

    # -- helpers ----------------------------------------------------------------------------
    def sat(self, pop: _Pop, v: int) -> int:
        if pop.saturate:
            lo, hi = -(2 ** (pop.bits - 1)), 2 ** (pop.bits - 1) - 1
            c = min(max(v, lo), hi)
            if c != v:
                self.ref.saturations[pop.name] += 1
            v = c
        return v

    def seen(self, pop: _Pop, values):
        r = self.ref
        for v in values:
            if v < r.vmin[pop.name]:
                r.vmin[pop.name] = v
            if v > r.vmax[pop.name]:
                r.vmax[pop.name] = v

    def deliver(self, proj: _Proj, counts: list[int]) -> int:
        cycles, syn, sops = proj.cost(counts, self.lanes)
        self.ref.synaptic_events += syn
        self.ref.sops += sops
        return cycles

    def emit(self, pop: _Pop, counts: list[int]):
        r = self.ref
        r.outputs[pop.name].append(list(counts))
        r.events[pop.name].append(sum(1 for c in counts if c != 0))
        r.spikes[pop.name].append(sum(counts))

    def sweep(self, pop: _Pop) -> int:
        """The fire sweep: ceil(N/P) words; a spatial population [C, H, W] keeps P channels
        of one position per word, so it sweeps H·W·ceil(C/P)."""
        if pop.kind == "readout":  # reports its N values one per cycle
            return pop.size
        if len(pop.shape) == 3:
            c, h, w = pop.shape
            return h * w * ceil_div(c, self.lanes)
        return ceil_div(pop.size, self.lanes)

    # -- rate methods -----------------------------------------------------------------------
    def input_stage(self):
        """W·x of every input projection (once per sample) and the cost of its bit-planes."""
        currents: dict[int, list[int]] = {}
        charge: dict[str, int] = {}
        for pop in self.pops:
            for proj in pop.projs:
                if proj.source != INPUT:
                    continue
                currents[id(proj)] = proj.current(self.x)
                for plane in self.planes:
                    charge[pop.name] = charge.get(pop.name, 0) + self.deliver(proj, plane)
        return currents, charge

    def rate(self, steps: int, v: dict[str, list[int]], currents, charge, trace=None):
        for t in range(steps):
            counts: dict[str, list[int]] = {}
            for pop in self.pops:
                cyc = charge.get(pop.name, 0) if t == 0 else 0
                total = list(pop.bias)
                for proj in pop.projs:
                    if proj.source == INPUT:
                        add = currents[id(proj)]
                    else:
                        add = proj.current(counts[proj.source])
                        cyc += self.deliver(proj, counts[proj.source])
                    for i in range(pop.size):
                        total[i] += add[i]
                vv = v[pop.name]
                for i in range(pop.size):
                    vv[i] = self.sat(pop, vv[i] + total[i])
                self.seen(pop, vv)
                if pop.kind == "readout":
                    if t == steps - 1:
                        cyc += self.sweep(pop)
                    self.ref.cycles[pop.name].append(cyc)
                    continue
                s = [0] * pop.size
                for i in range(pop.size):
                    s[i] = min(max(vv[i] // pop.theta, 0), pop.tau)  # // floors towards −∞
                    vv[i] -= s[i] * pop.theta
                self.seen(pop, vv)
                counts[pop.name] = s
                self.ref.cycles[pop.name].append(cyc + self.sweep(pop))
                self.emit(pop, s)
                if trace is not None:
                    trace(pop, s, vv)
        return v

    def run_rate(self, net):
        currents, charge = self.input_stage()
        v = {p.name: [p.v0] * p.size for p in self.pops}
        if net.method == "cos":
            stats = {p.name: {"n": [0] * p.size, "min_fire": [None] * p.size,
                              "max_quiet": [None] * p.size, "v": [p.v0] * p.size}
                     for p in self.pops if p.kind != "readout"}

            def trace(pop, s, vv):
                st = stats[pop.name]
                for i in range(pop.size):
                    st["n"][i] += s[i]
                    if s[i] > 0:
                        if st["min_fire"][i] is None or vv[i] < st["min_fire"][i]:
                            st["min_fire"][i] = vv[i]
                    elif st["max_quiet"][i] is None or vv[i] > st["max_quiet"][i]:
                        st["max_quiet"][i] = vv[i]
                    st["v"][i] = vv[i]

            self.rate(int(net.cos_steps), v, currents, charge, trace)
            v = {}
            for pop in self.pops:
                if pop.kind == "readout":
                    v[pop.name] = [pop.v0] * pop.size  # the readout starts again
                    continue
                st = stats[pop.name]
                v0s, rules = [], []
                for i in range(pop.size):
                    vr, n = st["v"][i], st["n"][i]
                    if vr < 0 and n > 0:
                        mf = st["min_fire"][i]
                        v0s.append(pop.v0 - max(pop.theta, mf + 1))
                        rules.append("down" if mf + 1 <= pop.theta else "down, by min_fire")
                    elif vr >= pop.theta:
                        mq = st["max_quiet"][i]
                        up = pop.theta if mq is None else max(pop.theta, pop.theta + 1 - mq)
                        v0s.append(pop.v0 + up)
                        rules.append("up, never quiet" if mq is None else
                                     "up" if up == pop.theta else "up, by max_quiet")
                    else:
                        v0s.append(pop.v0)
                        rules.append("keep")
                self.ref.cos_rule[pop.name] = rules
                v0s = [self.sat(pop, x) for x in v0s]  # V0 is a membrane value too
                v[pop.name] = v0s
                self.seen(pop, v0s)
            charge = {}  # the input stage is charged once per sample
        self.rate(int(net.timesteps), v, currents, charge)
        for pop in self.pops:
            self.ref.membranes[pop.name] = list(v[pop.name])
        self.ref.readout = list(v[self.pops[-1].name])

    # -- ILIF ---------------------------------------------------------------------------------
    def run_ilif(self):
        planes: dict[str, list[list[int]]] = {INPUT: self.planes}
        for pop in self.pops:
            v = [0] * pop.size
            for t in range(pop.steps_in):
                total = [0] * pop.size
                cyc = 0
                for proj in pop.projs:
                    plane = planes[proj.source][t]
                    add = proj.current(plane)
                    cyc += self.deliver(proj, plane)
                    for i in range(pop.size):
                        total[i] += add[i]
                for i in range(pop.size):
                    v[i] = self.sat(pop, 2 * v[i] + total[i])
                self.seen(pop, v)
                self.ref.cycles[pop.name].append(cyc)
            for i in range(pop.size):
                v[i] = self.sat(pop, v[i] + pop.bias[i] + pop.v0)
            self.seen(pop, v)
            self.ref.membranes[pop.name] = list(v)
            if pop.kind == "readout":
                self.ref.cycles[pop.name].append(self.sweep(pop))
                self.ref.readout = list(v)
                return
            bits = pop.steps_out
            levels = 2**bits - 1
            a = [min(max(vi // pop.theta, 0), levels) for vi in v]
            planes[pop.name] = [[bits_msb_first(ai, bits)[t] for ai in a] for t in range(bits)]
            for plane in planes[pop.name]:
                self.ref.cycles[pop.name].append(self.sweep(pop))
                self.emit(pop, plane)
        raise AssertionError("a QNet ends with its readout")


def run_reference(net, codes, lanes: int = 1) -> Reference:
    """Run one sample (``codes`` of the input shape, 0..255) through ``net``."""
    run = _Run(net, codes, lanes)
    if net.method == "ilif":
        run.run_ilif()
    else:
        run.run_rate(net)
    ref = run.ref
    best = 0
    for i, v in enumerate(ref.readout):
        if v > ref.readout[best]:
            best = i
    ref.prediction = best
    return ref


def qcfs_loop(net, codes, levels: int):
    """The integer QCFS ANN by loops: a = clip(floor((Σ W·a_src + B + Θ/2)/Θ), 0, levels)."""
    shapes = {INPUT: tuple(int(d) for d in net.input.shape)}
    values = {INPUT: flatten(codes)}
    for p in net.populations:
        shapes[p.name] = tuple(int(d) for d in p.shape)
        pop = _Pop(p, shapes)
        total = list(pop.bias)
        for proj in pop.projs:
            add = proj.current(values[proj.source])
            for i in range(pop.size):
                total[i] += add[i]
        if pop.kind == "readout":
            return total, values
        values[pop.name] = [min(max((x + pop.theta // 2) // pop.theta, 0), levels)
                            for x in total]
    raise AssertionError("a QNet ends with its readout")
