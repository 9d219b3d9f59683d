"""Output serializers: the lane groups of an engine's output queue leave one beat at a time.

``EventSerializer`` sends every non-zero spike count of a group as one event (lowest lane
first), then takes the next group; a group marked ``end`` leaves as the end-of-step beat
once its spikes are out. ``ReadoutSerializer`` sends every value of the readout with its
index, keeping the running argmax (lowest index among equal maxima), which the last beat
of a sample carries.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .events import event_signature, readout_signature
from .ops import queue_layout
from .plan import EnginePlan


class EventSerializer(wiring.Component):
    """Members: ``i`` (In stream of ``queue_layout``): lane groups of spike counts;
    ``o`` (Out event stream of the population).

    Every group must have a spike or be an end-of-step group (the datapath pushes no
    other): a group without either would leave as an extra end beat."""

    def __init__(self, plan: EnginePlan):
        self.plan = plan
        super().__init__({"i": In(stream.Signature(queue_layout(plan))),
                          "o": Out(event_signature(plan.pop.shape, plan.out_count))})

    def elaborate(self, platform):
        m = Module()
        plan, head, payload = self.plan, self.i.payload, self.o.payload
        P = plan.lanes
        done = Signal(P)  # lanes of the head group already sent
        # The last lane group of a population whose size is not a multiple of P has lanes
        # that belong to no neuron. They hold V0 with no bias and no input, so they fire
        # exactly when V0 ≥ Θ (possible in a QNet, e.g. from NIR or a calibration): their
        # spikes are never sent.
        real = plan.channels - (plan.groups - 1) * P  # lanes of the last group with neurons
        padding_fires = plan.kind == "gn" and real < P and plan.pop.v0 >= plan.pop.threshold
        pending = Signal(P)
        for p in range(P):
            sent = (head.counts[p] != 0) & ~done[p]
            if padding_fires and p >= real:
                sent = sent & (head.g != plan.groups - 1)
            m.d.comb += pending[p].eq(sent)
        lane = Signal(range(max(2, P)))
        for p in reversed(range(P)):
            with m.If(pending[p]):
                m.d.comb += lane.eq(p)
        c_full = head.g * P + lane
        if plan.spatial:
            m.d.comb += [payload.c.eq(c_full), payload.y.eq(head.y), payload.x.eq(head.x)]
        else:
            m.d.comb += payload.index.eq(c_full)
        counts = Array(head.counts[p] for p in range(P))

        def next_group():
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += done.eq(0)

        with m.If(self.i.valid):
            with m.If(pending != 0):
                m.d.comb += [self.o.valid.eq(1), payload.count.eq(counts[lane])]
                with m.If(self.o.ready):
                    only = (pending & (pending - 1)) == 0
                    with m.If(only & ~head.end):
                        next_group()
                    with m.Else():
                        m.d.sync += done.eq(done | (Const(1, P) << lane))
            if padding_fires:
                with m.Elif(~head.end):  # a group with spikes of padding lanes only
                    next_group()
            with m.Else():
                # Every spike of the group is out; an end-of-step group ends the step.
                m.d.comb += [self.o.valid.eq(1), payload.end.eq(1)]
                with m.If(self.o.ready):
                    next_group()
        return m


class ReadoutSerializer(wiring.Component):
    """Members: ``i`` (In stream of ``queue_layout``): lane groups of readout values;
    ``o`` (Out readout stream). Each value takes two cycles: its comparison with the best
    so far is registered first (a sample has few readout values; the argmax stays off the
    timing paths)."""

    def __init__(self, plan: EnginePlan):
        self.plan = plan
        super().__init__({"i": In(stream.Signature(queue_layout(plan))),
                          "o": Out(readout_signature(plan.pop.size, plan.vbits))})

    def elaborate(self, platform):
        m = Module()
        plan, head, payload = self.plan, self.i.payload, self.o.payload
        P, n = plan.lanes, plan.pop.size
        done = Signal(P)
        lane = Signal(range(max(2, P)))
        for p in reversed(range(P)):
            with m.If(~done[p]):
                m.d.comb += lane.eq(p)
        index = Signal(range(max(2, plan.addresses * P)))
        m.d.comb += index.eq(head.addr * P + lane)
        last_lane = Signal()
        m.d.comb += last_lane.eq((lane == P - 1) | (index == n - 1))
        value = Array(head.values[p] for p in range(P))[lane]
        best_val = Signal(signed(plan.vbits))
        best_idx = Signal(range(max(2, n)))
        first = Signal(init=1)  # the first value of a sample
        compared, better = Signal(), Signal()
        m.d.comb += [payload.index.eq(index), payload.value.eq(value),
                     payload.last.eq(index == n - 1),
                     payload.argmax.eq(Mux(better, index, best_idx))]
        with m.If(self.i.valid & ~compared):
            m.d.sync += [better.eq(first | (value > best_val)), compared.eq(1)]
        with m.If(self.i.valid & compared):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                m.d.sync += [first.eq(payload.last), compared.eq(0)]
                with m.If(better):
                    m.d.sync += [best_val.eq(value), best_idx.eq(index)]
                with m.If(last_lane):
                    m.d.comb += self.i.ready.eq(1)
                    m.d.sync += done.eq(0)
                with m.Else():
                    m.d.sync += done.eq(done | (Const(1, P) << lane))
        return m


def serializer(plan: EnginePlan):
    return (ReadoutSerializer if plan.pop.kind == "readout" else EventSerializer)(plan)
