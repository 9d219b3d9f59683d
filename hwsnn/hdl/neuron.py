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
  With offset-spike calibration (cos) it also keeps each neuron's statistics over the ρ
  pre-simulation steps (``stats_layout``: read by the datapath for stage 5, the new ones
  given for stage 7) and in the last of them replaces V by the calibrated V0.
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


def stats_layout(plan: EnginePlan) -> data.StructLayout:
    """A neuron's cos statistics over the pre-simulation steps so far: whether it fired
    (n > 0) and stayed quiet in any, the lowest V after a firing step's reset and the
    highest V of a quiet step (each meaningful only with its flag)."""
    return data.StructLayout({"fired": 1, "quiet": 1, "min_fire": signed(plan.vbits),
                              "max_quiet": signed(plan.vbits)})


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
        if plan.keeps_statistics:
            members["stats"] = In(data.ArrayLayout(stats_layout(plan), P))
            members["stats_next"] = Out(data.ArrayLayout(stats_layout(plan), P))
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
            fires = [dv >= 0 for dv in diffs]

            def soft_reset(p=p, r=r, diffs=diffs, fires=fires):
                """V after the spikes: V − sΘ (the highest member that fires wins)."""
                kept = Signal(signed(plan.vbits), name=f"kept{p}")
                m.d.comb += kept.eq(r)
                for dv, f in zip(diffs, fires, strict=True):
                    with m.If(f):
                        m.d.comb += kept.eq(dv)
                return kept

            # (cos: the calibration's registers take every cycle's operation, so V after
            # the spikes is formed outside the sweep's branch)
            new = self._calibrate(m, p, soft_reset(), fires[0]) if plan.cos_steps else None
            with m.If(self.s6.kind == ACC):
                m.d.comb += self.result[p].eq(r)
            with m.Else():
                m.d.comb += self.counts[p].eq(sum(fires))
                if new is None:
                    new = soft_reset()
                m.d.comb += self.result[p].eq(Mux(self.s6.last_step, pop.v0, new))
        return m

    def _calibrate(self, m, p, kept, fired):
        """cos, lane p: V0 in the last pre-simulation step (docs/qnet.md), from the
        statistics before it (a step whose V ends below 0 did not fire; one whose V ends at
        Θ or above did, with all τ members: so this step never changes the statistics the
        rule reads), and the statistics after each step."""
        pop, theta, vbits = self.plan.pop, self.plan.pop.threshold, self.plan.vbits
        s5, s6, st = self.s5, self.s6, self.stats[p]
        wide = signed(vbits + 2)
        # Stage 5: the statistics so far (none before the first step) registered, and the
        # two tests of the sum.
        pf, pq = Signal(name=f"pf{p}"), Signal(name=f"pq{p}")
        mf, mq = Signal(signed(vbits), name=f"mf{p}"), Signal(signed(vbits), name=f"mq{p}")
        neg, over = Signal(name=f"neg{p}"), Signal(name=f"over{p}")
        m.d.sync += [pf.eq(st.fired & ~s5.first), pq.eq(st.quiet & ~s5.first),
                     mf.eq(st.min_fire), mq.eq(st.max_quiet),
                     neg.eq(self.val[p] < 0),
                     over.eq(self.val[p] >= (pop.group_size + 1) * theta)]
        # Stage 6: V0 replaces V in the last pre-simulation step. down = v0 − max(Θ,
        # min + 1) = min(v0 − Θ, v0 − 1 − min) and up = v0 + max(Θ, Θ + 1 − max) =
        # max(v0 + Θ, v0 + Θ + 1 − max): one subtraction from a constant beside one
        # comparison each, from registers (not from the RAM's read data).
        down, up = Signal(wide, name=f"down{p}"), Signal(wide, name=f"up{p}")
        v0 = Signal(signed(vbits), name=f"v0cal{p}")
        m.d.comb += [down.eq(Mux(mf >= theta, pop.v0 - 1 - mf, pop.v0 - theta)),
                     up.eq(Mux(pq & (mq < 1), pop.v0 + theta + 1 - mq, pop.v0 + theta)),
                     v0.eq(Mux(neg & pf, down, Mux(over, up, pop.v0)))]
        # Stage 7: the statistics with this step.
        f7, k7 = Signal(name=f"f7_{p}"), Signal(signed(vbits), name=f"k7_{p}")
        pf7, pq7 = Signal(name=f"pf7_{p}"), Signal(name=f"pq7_{p}")
        mf7, mq7 = Signal.like(mf, name=f"mf7_{p}"), Signal.like(mq, name=f"mq7_{p}")
        m.d.sync += [f7.eq(fired), k7.eq(kept), pf7.eq(pf), pq7.eq(pq), mf7.eq(mf),
                     mq7.eq(mq)]
        nxt = self.stats_next[p]
        m.d.comb += [nxt.fired.eq(pf7 | f7), nxt.quiet.eq(pq7 | ~f7),
                     nxt.min_fire.eq(Mux(f7 & (~pf7 | (k7 < mf7)), k7, mf7)),
                     nxt.max_quiet.eq(Mux(~f7 & (~pq7 | (k7 > mq7)), k7, mq7))]
        return Mux(s6.calibrate, v0, kept)


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
            with m.Else():  # (cos: the pre-simulation's sweep only clears)
                m.d.comb += [self.values[p].eq(self.r[p]), self.result[p].eq(0)]
        return m


RULES = {"gn": GroupRule, "ilif": IlifRule, "readout": ReadoutRule}


def neuron_rule(plan: EnginePlan) -> NeuronRule:
    """The rule of ``plan``'s population."""
    return RULES[plan.pop.kind](plan)
