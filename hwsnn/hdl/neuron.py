"""Neuron rules: the two pipeline stages of a layer engine that turn a sum into the new
membrane value and the spikes (or the readout values), one component per kind of neuron.

Each takes ``val`` (the cycle-4 sum: membrane + weight term for an accumulation; membrane
+ bias (+ current) for a sweep) with the operations in stages 5 and 6, and gives ``r``
(the registered stage-6 value, which the datapath forwards), ``result`` (the membrane to
write back in stage 7) and the lane group's spike ``counts`` (or readout ``values``).
For an accumulation ``result`` is ``r``; the rule acts on sweeps only.

- ``GroupRule`` (GN and IF, τ = 1): τ member neurons with thresholds Θ, 2Θ, …, τΘ; the
  differences V − iΘ (stage 5) are both the comparisons and the soft-reset values, and the
  highest member that fires wins (a thermometer code). The last step resets V to V0.
- ``IlifRule``: the first fire step clamps V + bias + offset to 2^T·Θ − 1; each fire step
  takes one quotient bit of a restoring division: fire if V ≥ Θ·2^(T−1−k).
- ``ReadoutRule``: reports the membrane and clears it.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .events import bits_for
from .ops import ACC, SWEEP, stage_layout
from .plan import EnginePlan


def sum_width(plan: EnginePlan) -> int:
    """Bits of the cycle-4 sum (a membrane or an input current, plus one)."""
    return max(plan.vbits, plan.cbits) + 1


class NeuronRule(wiring.Component):
    """Members: ``val`` (In, ``sum_width`` bits × P lanes), ``s5``, ``s6`` (In,
    ``stage_layout``): the operations in stages 5 and 6; ``r`` (Out, registered),
    ``result`` (Out, membrane × P), and ``counts`` (Out, spike counts × P) or, for the
    readout, ``values`` (Out, membrane × P)."""

    def __init__(self, plan: EnginePlan):
        self.plan = plan
        P = plan.lanes
        wide = data.ArrayLayout(signed(sum_width(plan)), P)
        members = {"val": In(wide), "s5": In(stage_layout(plan)), "s6": In(stage_layout(plan)),
                   "r": Out(wide), "result": Out(data.ArrayLayout(signed(plan.vbits), P))}
        if plan.pop.kind == "readout":
            members["values"] = Out(data.ArrayLayout(signed(plan.vbits), P))
        else:
            members["counts"] = Out(data.ArrayLayout(unsigned(bits_for(plan.out_count)), P))
        super().__init__(members)


class GroupRule(NeuronRule):
    def elaborate(self, platform):
        m = Module()
        plan, pop = self.plan, self.plan.pop
        theta = pop.threshold
        for p in range(plan.lanes):
            m.d.sync += self.r[p].eq(self.val[p])
            diffs = [Signal(signed(plan.cmp_bits), name=f"d{i}_{p}")
                     for i in range(1, pop.group_size + 1)]
            m.d.sync += [dv.eq(self.val[p] - i * theta) for i, dv in enumerate(diffs, start=1)]
            r = self.r[p]
            with m.If(self.s6.kind == ACC):
                m.d.comb += self.result[p].eq(r)
            with m.Else():
                fires = [dv >= 0 for dv in diffs]
                m.d.comb += self.counts[p].eq(sum(fires))
                kept = Signal(signed(plan.vbits), name=f"kept{p}")
                m.d.comb += kept.eq(r)
                for dv, f in zip(diffs, fires, strict=True):
                    with m.If(f):
                        m.d.comb += kept.eq(dv)
                m.d.comb += self.result[p].eq(Mux(self.s6.last_step, pop.v0, kept))
        return m


class IlifRule(NeuronRule):
    def elaborate(self, platform):
        m = Module()
        plan, theta = self.plan, self.plan.pop.threshold
        s5, s6 = self.s5, self.s6
        top = 2**plan.bits_out * theta - 1
        weight = Array(Const(theta * 2 ** (plan.bits_out - 1 - k))
                       for k in range(plan.bits_out))[s6.fire_k]
        for p in range(plan.lanes):
            clamp = (s5.kind == SWEEP) & (s5.fire_k == 0) & (self.val[p] > top)
            m.d.sync += self.r[p].eq(Mux(clamp, top, self.val[p]))
            r = self.r[p]
            with m.If(s6.kind == ACC):
                m.d.comb += self.result[p].eq(r)
            with m.Else():
                diff = Signal(signed(plan.cmp_bits), name=f"diff{p}")
                m.d.comb += diff.eq(r - weight)
                fire = diff >= 0
                m.d.comb += self.counts[p].eq(fire)
                with m.If(s6.fire_k == plan.bits_out - 1):
                    m.d.comb += self.result[p].eq(0)
                with m.Else():
                    m.d.comb += self.result[p].eq(Mux(fire, diff, r))
        return m


class ReadoutRule(NeuronRule):
    def elaborate(self, platform):
        m = Module()
        for p in range(self.plan.lanes):
            m.d.sync += self.r[p].eq(self.val[p])
            with m.If(self.s6.kind == ACC):
                m.d.comb += self.result[p].eq(self.r[p])
            with m.Else():
                m.d.comb += [self.values[p].eq(self.r[p]), self.result[p].eq(0)]
        return m


RULES = {"gn": GroupRule, "ilif": IlifRule, "readout": ReadoutRule}


def neuron_rule(plan: EnginePlan) -> NeuronRule:
    """The rule of ``plan``'s population."""
    return RULES[plan.pop.kind](plan)
