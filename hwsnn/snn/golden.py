"""Golden model: the exact integer semantics of a QNet, batched, on int64 tensors.

This is what the hardware must compute, bit for bit (docs/qnet.md states the semantics).
Membranes, spike counts and biases are int64. Synaptic sums are evaluated with float64
matrix products and convolutions, which are exact here: every operand and partial sum is
an integer below 2^52 in magnitude (``quantize`` refuses any QNet whose bounds are not).

Besides the readout values and predictions, ``run`` reports per sample: spikes and events
per population and step, synaptic events (weight additions) and SOPs, and the ideal cycle
count of the event-driven hardware with P lanes (``cycles``; P per population, from an
int, a dict or a ``hdl.plan.NetworkPlan``):

- an input event into a dense projection costs ceil(N_out/P) cycles; into a convolution,
  ceil(C_out/P) cycles for every output position it reaches;
- every output step of a population ends with a fire sweep of ceil(N/P) cycles (the
  readout reports its N values once, at the end, in N cycles; with cos it also clears
  itself after the pre-simulation); a spatial population [C, H, W]
  keeps P channels of one position per word, so its sweep is H·W·ceil(C/P) cycles;
- for rate methods the input stage turns the 8 bit-planes of the image into the first
  layer's current once per sample (set bits are the events); it is charged to step 0.
  With M input lanes (``input_lanes``), a projection that ``widths.mac_input`` gives the
  multiply-accumulate input stage (a dense one from the image into group neurons)
  computes it with multipliers instead: ceil(N/M) passes over the non-zero pixels, each
  pass two cycles longer (bias in, currents out).

The golden model reads only the QNet (``hwsnn.snn.qnet``) and the rules derived from it
(``hwsnn.snn.widths``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import ShapeError
from .qnet import INPUT, PIXEL_BITS, PIXEL_LEVELS, QNet, QPopulation, QProjection
from .widths import mac_input


@dataclass
class GoldenResult:
    readout: torch.Tensor  # [B, classes] int64: the readout membranes after the last step
    logits: torch.Tensor  # [B, classes] float64: readout · readout_scale
    predictions: torch.Tensor  # [B] argmax, lowest index wins ties
    spikes: dict[str, torch.Tensor]  # population → [B, steps_out] spike count per step
    events: dict[str, torch.Tensor]  # population or "input" → [B, steps] non-zero events
    synaptic_events: torch.Tensor  # [B] weight additions (input events × fan-out)
    sops: torch.Tensor  # [B] synaptic operations (input spikes × fan-out)
    cycles: dict[str, torch.Tensor]  # population → [B, steps] ideal cycles per step
    lanes: int | dict[str, int]  # as given to run (a plan's: its dict)
    outputs: dict[str, torch.Tensor] | None = None  # population → [B, steps_out, *shape]
    membranes: dict[str, torch.Tensor] = field(default_factory=dict)  # final V

    @property
    def ideal_cycles_bottleneck(self) -> torch.Tensor:
        """[B] cycles of the busiest engine: the pipelined network's cycles per inference."""
        return torch.stack([c.sum(1) for c in self.cycles.values()], 1).max(1).values

    @property
    def ideal_cycles_total(self) -> torch.Tensor:
        """[B] cycles of all engines together: one engine running every layer in turn."""
        return torch.stack([c.sum(1) for c in self.cycles.values()], 1).sum(1)


# ---------------------------------------------------------------------------------------
# Building blocks, shared with the per-layer checks of the hardware.


def saturate(v: torch.Tensor, pop: QPopulation) -> torch.Tensor:
    """Clamp to the membrane width when the population saturates; otherwise unchanged."""
    if not pop.saturate:
        return v
    half = 2 ** (pop.membrane_bits - 1)
    return v.clamp(-half, half - 1)


def gn_fire(v: torch.Tensor, threshold: int, group_size: int):
    """Group-neuron fire: ``s = clip(floor(V/Θ), 0, τ)``, ``V − s·Θ``. Returns (s, V)."""
    s = torch.div(v, threshold, rounding_mode="floor").clamp(0, group_size)
    return s, v - s * threshold


def ilif_fire(v: torch.Tensor, threshold: int, bits: int) -> torch.Tensor:
    """Inverse-LIF fire: ``clip(floor(V/Θ), 0, 2^T − 1)`` (emitted MSB-first)."""
    return torch.div(v, threshold, rounding_mode="floor").clamp(0, 2**bits - 1)


def bit_planes(values: torch.Tensor, bits: int) -> list[torch.Tensor]:
    """The bit-planes of non-negative integers, most significant first."""
    return [(values >> (bits - 1 - t)) & 1 for t in range(bits)]


class _Weights:
    """Float64 copies of a QNet's integer weights (exact, see the module doc), made once."""

    def __init__(self, net: QNet):
        self.by_id = {id(q): torch.from_numpy(q.weight).to(torch.float64)
                      for p in net.populations for q in p.projections}

    def __call__(self, proj: QProjection) -> torch.Tensor:
        w = self.by_id.get(id(proj))
        return torch.from_numpy(proj.weight).to(torch.float64) if w is None else w


def projection_current(proj: QProjection, counts: torch.Tensor, out_shape,
                       weights: _Weights | None = None) -> torch.Tensor:
    """``Σ_j Wq[i, j] · counts_j`` for a batch of source counts; int64 ``[B, *out_shape]``."""
    w = weights(proj) if weights is not None else torch.from_numpy(proj.weight).double()
    b = counts.shape[0]
    x = counts.to(torch.float64)
    if proj.kind == "dense":
        out = x.reshape(b, -1) @ w.T
    else:
        out = F.conv2d(x, w, stride=proj.stride, padding=proj.padding)
    return out.reshape(b, *out_shape).to(torch.int64)


def reach(proj: QProjection, src_shape) -> torch.Tensor:
    """Output positions (or neurons, dense) one input event of each source position reaches:
    ``[H, W]`` for a convolution (its fan-out is this × C_out), a scalar for dense."""
    if proj.kind == "dense":
        return torch.tensor(1.0, dtype=torch.float64)
    _, h, w = src_shape
    k = proj.kernel
    ones_out = torch.ones(1, 1, (h + 2 * proj.padding - k) // proj.stride + 1,
                          (w + 2 * proj.padding - k) // proj.stride + 1, dtype=torch.float64)
    kernel = torch.ones(1, 1, k, k, dtype=torch.float64)
    spread = F.conv_transpose2d(ones_out, kernel, stride=proj.stride)[0, 0]
    # Rows and columns past the last window (when the stride does not divide) reach nothing.
    full = torch.zeros(h + 2 * proj.padding + k, w + 2 * proj.padding + k, dtype=torch.float64)
    full[:spread.shape[0], :spread.shape[1]] = spread
    return full[proj.padding:proj.padding + h, proj.padding:proj.padding + w]


class _Work:
    """Collects events, SOPs and ideal cycles for one run."""

    def __init__(self, net: QNet, batch: int, lanes: dict[str, int], input_lanes: int = 0):
        self.net, self.lanes, self.batch = net, lanes, batch  # lanes: by population
        self.input_lanes = input_lanes
        self.weights = _Weights(net)
        self.shapes = {INPUT: tuple(net.input.shape)}
        self.shapes.update({p.name: tuple(p.shape) for p in net.populations})
        self.reach = {}
        for p in net.populations:
            for q in p.projections:
                self.reach[id(q)] = reach(q, self.shapes[q.source])
        self.synaptic_events = torch.zeros(batch, dtype=torch.int64)
        self.sops = torch.zeros(batch, dtype=torch.int64)
        self.cycles: dict[str, list[torch.Tensor]] = {p.name: [] for p in net.populations}
        self.events: dict[str, list[torch.Tensor]] = {INPUT: []}
        self.events.update({p.name: [] for p in net.populations if p.kind != "readout"})
        self.spikes: dict[str, list[torch.Tensor]] = {p.name: [] for p in net.populations
                                                      if p.kind != "readout"}

    def input_cost(self, pop: QPopulation, proj: QProjection, counts: torch.Tensor):
        """Cycles for delivering one step of source ``counts`` through ``proj``; also
        accumulates synaptic events and SOPs."""
        b = counts.shape[0]
        lanes = self.lanes[pop.name]
        per_event = math.ceil(pop.shape[0] / lanes) if proj.kind == "conv" \
            else math.ceil(pop.size / lanes)
        fan = pop.shape[0] if proj.kind == "conv" else pop.size
        r = self.reach[id(proj)]
        mask = (counts != 0).to(torch.float64)
        c = counts.to(torch.float64)
        if proj.kind == "conv":
            reached_events = (mask.sum(1) * r).reshape(b, -1).sum(1)
            reached_spikes = (c.sum(1) * r).reshape(b, -1).sum(1)
        else:
            reached_events = mask.reshape(b, -1).sum(1)
            reached_spikes = c.reshape(b, -1).sum(1)
        self.synaptic_events += (reached_events * fan).to(torch.int64)
        self.sops += (reached_spikes * fan).to(torch.int64)
        return (reached_events * per_event).to(torch.int64)

    def sweep(self, pop: QPopulation) -> int:
        if pop.kind == "readout":  # reports its N values one per cycle
            return pop.size
        lanes = self.lanes[pop.name]
        if len(pop.shape) == 3:  # lanes hold channels: H·W positions × ceil(C/P)
            return pop.shape[1] * pop.shape[2] * math.ceil(pop.shape[0] / lanes)
        return math.ceil(pop.size / lanes)

    def emit(self, name: str, counts: torch.Tensor):
        b = counts.shape[0]
        self.events[name].append((counts != 0).reshape(b, -1).sum(1))
        if name in self.spikes:
            self.spikes[name].append(counts.reshape(b, -1).sum(1))


def _check_codes(net: QNet, codes: torch.Tensor) -> torch.Tensor:
    shape = tuple(net.input.shape)
    if not isinstance(codes, torch.Tensor) or tuple(codes.shape[1:]) != shape:
        got = tuple(getattr(codes, "shape", ()))
        raise ShapeError(f"input batch has shape {got}; the network expects "
                         f"[batch, {', '.join(map(str, shape))}]")
    if codes.dtype.is_floating_point:
        raise ShapeError(f"the golden model takes integer input codes 0..{PIXEL_LEVELS}; "
                         "quantize float images with hwsnn.snn.golden.encode(net, images)")
    codes = codes.to(torch.int64)
    if codes.numel() and (codes.min() < 0 or codes.max() > PIXEL_LEVELS):
        raise ShapeError(f"input codes must lie in 0..{PIXEL_LEVELS}")
    return codes


def encode(net: QNet, images: torch.Tensor) -> torch.Tensor:
    """Raw model inputs (in the QNet's input range) → 8-bit integer codes, half up."""
    lo, hi = net.input.lo, net.input.hi
    codes = (images.to(torch.float64) - lo) / (hi - lo) * PIXEL_LEVELS
    return torch.floor(codes + 0.5).clamp(0, PIXEL_LEVELS).to(torch.int64)


# ---------------------------------------------------------------------------------------
# Running a network.


def run(net: QNet, codes: torch.Tensor, *, lanes: int | dict[str, int] = 1,
        record: bool = False, batch_size: int = 512, input_lanes: int = 0,
        plan=None) -> GoldenResult:
    """Run the integer network on input codes ``[B, *input_shape]`` (0..255).

    ``lanes`` (an int for every population, or a dict by population name: the rest get 1)
    and ``input_lanes`` only change the ideal cycle counts; ``plan`` (a
    ``hdl.plan.NetworkPlan`` of ``net``) gives both."""
    if plan is not None:
        lanes, input_lanes = dict(plan.lanes), plan.input_lanes
    if isinstance(lanes, dict):
        from ..hdl.plan import lanes_by_population  # (the one check of lanes per population)
        lanes_of = lanes_by_population(net, lanes)
    elif isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"Lane count must be a positive integer, not {lanes!r}")
    else:
        lanes_of = {p.name: lanes for p in net.populations}
    if isinstance(input_lanes, bool) or not isinstance(input_lanes, int) or input_lanes < 0:
        raise ValueError(f"Input lane count must be a non-negative integer, not "
                         f"{input_lanes!r}")
    codes = _check_codes(net, codes)
    parts = [_run_batch(net, codes[i:i + batch_size], lanes_of, record, input_lanes, lanes)
             for i in range(0, max(len(codes), 1), batch_size)]
    return parts[0] if len(parts) == 1 else _concat(parts)


def _run_batch(net: QNet, codes: torch.Tensor, lanes: dict[str, int], record: bool,
               input_lanes: int, given) -> GoldenResult:
    work = _Work(net, codes.shape[0], lanes, input_lanes)
    outputs: dict[str, list[torch.Tensor]] | None = (
        {p.name: [] for p in net.populations if p.kind != "readout"} if record else None)
    if net.method == "ilif":
        readout, membranes = _run_ilif(net, codes, work, outputs)
    else:
        currents, input_cycles = _input_stage(net, codes, work)
        v0 = None
        if net.method == "cos":
            v0 = _cos_initial(net, codes, work, outputs, currents, input_cycles)
            input_cycles = {}  # the input currents stay in place for the second run
        readout, membranes = _run_rate(net, codes, net.timesteps, work, outputs, currents,
                                       input_cycles, v0)
    out = net.output
    logits = readout.to(torch.float64) * out.readout_scale
    return GoldenResult(
        readout=readout.reshape(len(codes), -1), logits=logits.reshape(len(codes), -1),
        predictions=readout.reshape(len(codes), -1).argmax(1),
        spikes={k: torch.stack(v, 1) for k, v in work.spikes.items()},
        events={k: torch.stack(v, 1) for k, v in work.events.items()},
        synaptic_events=work.synaptic_events, sops=work.sops,
        cycles={k: torch.stack(v, 1) for k, v in work.cycles.items()},
        lanes=given,
        outputs=None if outputs is None else {k: torch.stack(v, 1) for k, v in outputs.items()},
        membranes=membranes,
    )


def _input_stage(net: QNet, codes: torch.Tensor, work: _Work):
    """Rate methods: the first layers' input currents, computed once per sample from the
    8 bit-planes of the image (Horner: Σ_b 2^(7−b) W·plane_b = W·x)."""
    currents, cycles = {}, {}
    planes = bit_planes(codes, PIXEL_BITS)
    for plane in planes:
        work.emit(INPUT, plane)
    for pop in net.populations:
        for proj in pop.projections:
            if proj.source != INPUT:
                continue
            currents[id(proj)] = projection_current(proj, codes, pop.shape, work.weights)
            cost = sum(work.input_cost(pop, proj, plane) for plane in planes)
            # The multiply-accumulate input stage (the engines' rule: widths.mac_input).
            if work.input_lanes and mac_input(pop, proj):
                nonzero = (codes != 0).reshape(codes.shape[0], -1).sum(1)
                cost = math.ceil(pop.size / work.input_lanes) * (nonzero + 2)
            cycles[pop.name] = cycles.get(pop.name, 0) + cost
    return currents, cycles


def _run_rate(net: QNet, codes, steps, work: _Work, outputs, input_currents, input_cycles,
              v0=None, trace=None):
    b = codes.shape[0]
    v = {p.name: (v0[p.name].clone() if v0 is not None and p.name in v0
                  else torch.full((b, *p.shape), p.v0, dtype=torch.int64))
         for p in net.populations}
    bias = {p.name: torch.from_numpy(p.bias).unsqueeze(0) for p in net.populations}
    for t in range(steps):
        counts = {}
        for pop in net.populations:
            cyc = input_cycles.get(pop.name, torch.zeros(b, dtype=torch.int64)) if t == 0 \
                else torch.zeros(b, dtype=torch.int64)
            i = bias[pop.name].expand(b, *pop.shape)
            for proj in pop.projections:
                if proj.source == INPUT:
                    i = i + input_currents[id(proj)]
                else:
                    src = counts[proj.source]
                    i = i + projection_current(proj, src, pop.shape, work.weights)
                    cyc = cyc + work.input_cost(pop, proj, src)
            v[pop.name] = saturate(v[pop.name] + i, pop)
            if pop.kind == "readout":
                if t == steps - 1:
                    cyc = cyc + work.sweep(pop)
                work.cycles[pop.name].append(cyc)
                continue
            s, v[pop.name] = gn_fire(v[pop.name], pop.threshold, pop.group_size)
            counts[pop.name] = s
            work.cycles[pop.name].append(cyc + work.sweep(pop))
            work.emit(pop.name, s)
            if outputs is not None:
                outputs[pop.name].append(s)
            if trace is not None:
                trace(pop, s, v[pop.name])
    return v[net.output.name], v


def _cos_initial(net: QNet, codes, work: _Work, outputs, currents,
                 input_cycles) -> dict[str, torch.Tensor]:
    """Offset-spike calibration: ρ pre-simulation steps, then V0 per neuron and sample."""
    b = codes.shape[0]
    big = torch.iinfo(torch.int64).max
    st = {p.name: {"n": torch.zeros(b, *p.shape, dtype=torch.int64),
                   "min_fire": torch.full((b, *p.shape), big, dtype=torch.int64),
                   "max_quiet": torch.full((b, *p.shape), -big, dtype=torch.int64),
                   "quiet_seen": torch.zeros(b, *p.shape, dtype=torch.bool)}
          for p in net.populations if p.kind != "readout"}

    def trace(pop, s, v):
        r = st[pop.name]
        fired = s > 0
        r["n"] += s
        r["min_fire"] = torch.where(fired, torch.minimum(r["min_fire"], v), r["min_fire"])
        r["max_quiet"] = torch.where(fired, r["max_quiet"], torch.maximum(r["max_quiet"], v))
        r["quiet_seen"] |= ~fired
        r["v"] = v

    _run_rate(net, codes, net.cos_steps, work, outputs, currents, input_cycles, trace=trace)
    v0 = {}
    for pop in net.populations:
        if pop.kind == "readout":
            continue
        r = st[pop.name]
        theta = pop.threshold
        down = pop.v0 - torch.clamp(r["min_fire"] + 1, min=theta)
        up_by = torch.where(r["quiet_seen"], theta + 1 - r["max_quiet"],
                            torch.full_like(r["n"], theta))
        up = pop.v0 + torch.clamp(up_by, min=theta)
        base = torch.full_like(r["n"], pop.v0)
        v0[pop.name] = saturate(torch.where((r["v"] < 0) & (r["n"] > 0), down,
                                            torch.where(r["v"] >= theta, up, base)), pop)
    return v0


def _run_ilif(net: QNet, codes, work: _Work, outputs):
    b = codes.shape[0]
    planes = {INPUT: bit_planes(codes, PIXEL_BITS)}
    for plane in planes[INPUT]:
        work.emit(INPUT, plane)
    membranes = {}
    for pop in net.populations:
        v = torch.zeros(b, *pop.shape, dtype=torch.int64)
        for t in range(pop.steps_in):
            i = torch.zeros_like(v)
            cyc = torch.zeros(b, dtype=torch.int64)
            for proj in pop.projections:
                src = planes[proj.source][t]
                i = i + projection_current(proj, src, pop.shape, work.weights)
                cyc = cyc + work.input_cost(pop, proj, src)
            v = saturate(2 * v + i, pop)
            work.cycles[pop.name].append(cyc)
        v = saturate(v + torch.from_numpy(pop.bias).unsqueeze(0) + pop.v0, pop)
        membranes[pop.name] = v
        if pop.kind == "readout":
            work.cycles[pop.name].append(torch.full((b,), work.sweep(pop), dtype=torch.int64))
            return v, membranes
        a = ilif_fire(v, pop.threshold, pop.steps_out)
        planes[pop.name] = bit_planes(a, pop.steps_out)
        for plane in planes[pop.name]:
            work.cycles[pop.name].append(torch.full((b,), work.sweep(pop), dtype=torch.int64))
            work.emit(pop.name, plane)
            if outputs is not None:
                outputs[pop.name].append(plane)
    raise AssertionError("a QNet ends with its readout")


def _concat(parts: list[GoldenResult]) -> GoldenResult:
    def cat(dicts):
        return {k: torch.cat([d[k] for d in dicts]) for k in dicts[0]}

    first = parts[0]
    return GoldenResult(
        readout=torch.cat([p.readout for p in parts]),
        logits=torch.cat([p.logits for p in parts]),
        predictions=torch.cat([p.predictions for p in parts]),
        spikes=cat([p.spikes for p in parts]), events=cat([p.events for p in parts]),
        synaptic_events=torch.cat([p.synaptic_events for p in parts]),
        sops=torch.cat([p.sops for p in parts]), cycles=cat([p.cycles for p in parts]),
        lanes=first.lanes,
        outputs=None if first.outputs is None else cat([p.outputs for p in parts]),
        membranes=cat([p.membranes for p in parts]),
    )


# ---------------------------------------------------------------------------------------
# The exact QCFS reference (the ANN counterpart of GN at T = 1 and of ILIF).


def qcfs_reference(net: QNet, codes: torch.Tensor, levels: int):
    """The integer QCFS ANN on the QNet's own weights: every hidden population computes
    ``a = clip(floor((Σ Wq·a_src + Bq + Θ/2) / Θ), 0, levels)`` in one shot.

    GN with τ = L at T = 1 and ILIF with T bits (L = 2^T − 1) must reproduce it exactly.
    Returns ``(readout [B, classes], predictions [B], activations by population)``.
    """
    codes = _check_codes(net, codes)
    b = codes.shape[0]
    weights = _Weights(net)
    values = {INPUT: codes}
    for pop in net.populations:
        i = torch.from_numpy(pop.bias).unsqueeze(0).expand(b, *pop.shape)
        for proj in pop.projections:
            i = i + projection_current(proj, values[proj.source], pop.shape, weights)
        if pop.kind == "readout":
            readout = i.reshape(b, -1)
            return readout, readout.argmax(1), values
        values[pop.name] = torch.div(i + pop.threshold // 2, pop.threshold,
                                     rounding_mode="floor").clamp(0, levels)
    raise AssertionError("a QNet ends with its readout")


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predictions == labels).to(torch.float64).mean()) if len(labels) else float("nan")


__all__ = ["GoldenResult", "run", "encode", "qcfs_reference", "gn_fire", "ilif_fire",
           "projection_current", "bit_planes", "saturate", "reach", "accuracy"]


# ---------------------------------------------------------------------------------------
# Per-population views, for checking one engine at a time.


def population_io(net: QNet, name: str, result: GoldenResult, codes: torch.Tensor):
    """What population ``name`` receives and emits in a recorded run (``record=True``):
    ``(inputs, outputs)`` where ``inputs`` maps each projection source to its counts per
    step ``[B, steps, *shape]`` (``"input"``: the codes ``[B, *shape]``), and ``outputs`` is
    the population's counts per output step (the readout: its values ``[B, classes]``)."""
    if result.outputs is None:
        raise ValueError("run the golden model with record=True")
    pop = net.population(name)
    inputs = {q.source: (codes if q.source == INPUT else result.outputs[q.source])
              for q in pop.projections}
    outputs = result.readout if pop.kind == "readout" else result.outputs[name]
    return inputs, outputs


def step_events(counts: torch.Tensor) -> list[tuple[tuple[int, ...], int]]:
    """The non-zero ``(neuron coordinates, count)`` of one step, in C order."""
    nz = torch.nonzero(counts, as_tuple=False)
    return [(tuple(int(v) for v in idx), int(counts[tuple(idx)])) for idx in nz]
