"""Layer engine: one population of integer neurons, event-driven, with P lanes.

The engine runs the QNet semantics of its population (docs/qnet.md) sample after sample:

- **input stage** (a projection from the image): every pixel code is split into its set
  bits; bit b of pixel j is an event that adds ``W[:, j] << b`` (adders only;
  ``hdl.pixels``). For GN the sum is the input current, kept in its own RAM and added at
  every step; for ILIF it is the accumulation of the 8 input bit-planes. With
  ``input_lanes`` M, a GN/IF population with a dense projection from the image computes
  its input current with multipliers instead, M neurons per non-zero pixel and cycle
  (``hdl.inputmac``).
- **accumulate**: an input event (neuron j, count s) adds ``s·W[:, j]`` (ILIF: the bit of
  plane t adds ``W[:, j] << (T_in − 1 − t)``, which is the Horner sum ``V ← 2V + W·bit``)
  to every membrane it reaches: ceil(N/P) cycles for a dense projection, ceil(C/P) per
  reached output position for a convolution (``hdl.expander``).
- **fire sweep** at the end of a step: ceil(N/P) cycles apply the neuron rule to all
  membranes (GN: τ comparators against Θ, 2Θ, …, τΘ and a soft reset; ILIF: one quotient
  bit of a restoring division per step; readout: report; ``hdl.neuron``), and emit the
  spikes.

The engine is built from components joined by streams (docs/hardware.md has the diagram):

    pixels ─▶ SkidBuffer ─▶ PixelEvents (or InputMac) ─┐
    i0, i1, … ─────────────────────────────────────────▶ Sequencer ─ops─▶ Datapath
    o ◀─ EventSerializer / ReadoutSerializer ◀─ RegisteredFIFO ◀─push────────┘

The ``Sequencer`` (``hdl.sequencer``) decides what each cycle does and issues one
operation into the ``Datapath`` (``hdl.datapath``), an eight-stage pipeline that never
stalls (weight read → weight term → membrane, bias, current read → one sum → neuron rule
(two stages) → write back, with forwarding, so that events to one neuron can follow each
other on consecutive cycles). Spikes leave through a small queue of lane groups; the
sweep only issues when the queue has room, so back-pressure on the output never loses a
spike, and the input is simply not accepted while the engine is busy.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..snn.qnet import QNet
from .buffers import RegisteredFIFO, SkidBuffer
from .datapath import Datapath, Stage, load_signature
from .events import PIXEL_BITS, event_signature, pixel_signature, readout_signature
from .inputmac import InputMac
from .ops import queue_layout
from .pixels import PixelEvents
from .plan import EnginePlan
from .sequencer import Sequencer
from .serializer import serializer

__all__ = ["LayerEngine", "Stage", "queue_layout"]


class LayerEngine(wiring.Component):
    """The engine of one QNet population.

    Parameters: ``net`` (a QNet), ``population`` (its name), ``lanes`` (P, output neurons
    updated per cycle), ``queue_depth`` (lane groups buffered before the output; by default
    two sweeps, so that a sweep rarely waits for spikes to leave one by one).

    Members: ``pixels : In(stream.Signature(8))`` when the population reads the image;
    ``i0``, ``i1``, … ``: In(event stream)`` for its other projections, earliest source
    first (``event_inputs`` lists them, ``plan.event_projections`` says which is which);
    ``o : Out(event stream)`` of its spikes, or for the readout ``o : Out(readout
    stream)`` of its values and argmax; ``active : Out(1)``, high in every cycle that the
    engine spends on its own work (an operation issues, or the idle cycle after a sweep),
    so that a counter of it measures the engine against the golden model's ideal cycles.

    ``loadable`` lists projections (indices into ``plan.projections``) whose weights live
    in a ``WeightStore`` (SPRAM on a UP5K) instead of a ROM: they start empty, and the
    engine has ``load{k} : In(store.write_signature)`` for each, written while it is idle.

    ``input_lanes`` (M > 0, a multiple of P) gives a GN/IF population with a dense
    projection from the image the multiply-accumulate input stage (``hdl.inputmac``);
    other populations ignore it.
    """

    def __init__(self, net: QNet, population: str, *, lanes: int = 1,
                 queue_depth: int | None = None, loadable=(), input_lanes: int = 0,
                 plan: EnginePlan | None = None):
        if plan is None:
            plan = EnginePlan(net, population, lanes, input_lanes)
        self.plan = plan
        loadable = tuple(sorted(set(loadable)))
        for k in loadable:
            if isinstance(k, bool) or not isinstance(k, int) \
                    or not 0 <= k < len(plan.projections):
                raise ValueError(f"population {population} has no projection {k!r} to load "
                                 f"(it has {len(plan.projections)})")
        self.loadable = loadable
        if queue_depth is None:
            queue_depth = plan.queue_depth
        if isinstance(queue_depth, bool) or not isinstance(queue_depth, int) \
                or queue_depth < 4:
            raise TypeError(f"Queue depth must be an integer of at least 4, not "
                            f"{queue_depth!r}")
        self.queue_depth = queue_depth
        members = {}
        if plan.input_projection is not None:
            members["pixels"] = In(pixel_signature())
        for k, p in enumerate(plan.event_projections):
            members[f"i{k}"] = In(event_signature(p.src_shape, p.max_count))
        pop = plan.pop
        if pop.kind == "readout":
            members["o"] = Out(readout_signature(pop.size, plan.vbits))
        else:
            members["o"] = Out(event_signature(pop.shape, plan.out_count))
        members["active"] = Out(1)
        for k in loadable:
            members[f"load{k}"] = In(load_signature(plan, k))
        super().__init__(members)

    @property
    def event_inputs(self):
        return [getattr(self, f"i{k}") for k in range(len(self.plan.event_projections))]

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        m.submodules.sequencer = seq = Sequencer(plan, self.queue_depth)
        m.submodules.datapath = dp = Datapath(plan, self.loadable)
        m.submodules.queue = queue = RegisteredFIFO(queue_layout(plan), depth=self.queue_depth)
        m.submodules.serializer = ser = serializer(plan)
        for k in range(len(plan.event_projections)):
            wiring.connect(m, wiring.flipped(getattr(self, f"i{k}")), getattr(seq, f"i{k}"))
        wiring.connect(m, seq.ops, dp.ops)
        wiring.connect(m, dp.push, queue.i)
        wiring.connect(m, queue.o, ser.i)
        wiring.connect(m, ser.o, wiring.flipped(self.o))
        m.d.comb += [seq.dropped.eq(dp.dropped), seq.popped.eq(queue.o.valid & queue.o.ready)]
        for k in self.loadable:
            wiring.connect(m, wiring.flipped(getattr(self, f"load{k}")),
                           getattr(dp, f"load{k}"))
        active = seq.active
        if plan.input_projection is not None:
            # Pixels arrive through a skid buffer (a registered ready).
            m.submodules.pixel_skid = skid = SkidBuffer(unsigned(PIXEL_BITS))
            wiring.connect(m, wiring.flipped(self.pixels), skid.i)
            if plan.mac_lanes:
                m.submodules.input_mac = stage = InputMac(plan)
                wiring.connect(m, stage.mem, dp.mac)
                active = active | stage.active
            else:
                m.submodules.input_stage = stage = PixelEvents(plan)
                wiring.connect(m, stage.o, seq.pixel_ops)
            wiring.connect(m, skid.o, stage.pixels)
            m.d.comb += [stage.start.eq(seq.input_start), seq.input_done.eq(stage.done)]
        m.d.comb += self.active.eq(active)
        return m
