"""The datapath of a layer engine: an eight-stage pipeline that never stalls.

Every operation the sequencer issues (an accumulation or a sweep, ``hdl.ops``) enters
``st[0]`` and moves one stage per cycle (``st[n]``: n cycles after its issue):

====  ===========================================================================
READ       0  weight ROM read
WEIGHT     1  weights registered
TERM       2  weight × count (shifted adds), or << shift; membrane, bias and current
              RAMs read
CHOOSE     3  the projection's term chosen; RAM data registered; forwarding hits
SUM        4  the sum (accumulation), or the fire rule's input (sweep)
COMPARE    5  neuron rule: comparisons
RULE       6  neuron rule: result and spikes
WRITE      7  write back; the lane group's spikes pushed to the output queue
====  ===========================================================================

Results still in flight are forwarded to a read of the same address, so events to one
neuron can follow each other on consecutive cycles: a read in stage 2 misses the writes
of the five operations ahead of it; their addresses are compared in stages 2 and 3 and
each operand of the stage-4 sum gets a one-hot choice of its source (a registered select:
an AND-OR, then one adder). An accumulation's value is final from stage 5 on, a sweep's
from stage 7 on: the sequencer's two idle cycles after every sweep keep a sweep's address
from being read by the two operations behind it.
"""

from __future__ import annotations

import enum
import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .events import PIXEL_BITS, bits_for
from .inputmac import mac_memory_signature
from .neuron import neuron_rule, stats_layout, sum_width
from .ops import ACC, SWEEP, issue_signature, queue_layout, stage_layout
from .plan import EnginePlan
from .ram import ram, registered_read
from .sequencer import position_counter
from .store import WeightStore, write_signature


def weight_memory(plan: EnginePlan, k: int) -> tuple[int, data.ArrayLayout]:
    """Depth and word layout of projection k's weight memory (a ROM, or a store)."""
    return (max(1, len(plan.projections[k].init)),
            data.ArrayLayout(signed(plan.projections[k].proj.weight_bits), plan.word_lanes(k)))


def load_signature(plan: EnginePlan, k: int) -> wiring.Signature:
    """The byte writes into projection k's weight store (``store.write_signature``)."""
    depth, layout = weight_memory(plan, k)
    return write_signature(depth, layout.size)


class Stage(enum.IntEnum):
    """The pipeline stages: an operation is in stage n in the n-th cycle after its issue."""
    READ = 0
    WEIGHT = 1
    TERM = 2
    CHOOSE = 3
    SUM = 4
    COMPARE = 5
    RULE = 6
    WRITE = 7


FORWARD = 5  # operations ahead whose writes a read in stage TERM misses


class Datapath(wiring.Component):
    """The memories and pipeline of the engine of ``plan``.

    Members: ``ops`` (In, ``issue_signature``): the operation issued this cycle;
    ``push`` (Out stream of ``queue_layout``): a lane group for the output queue (the
    datapath never waits: the sequencer only issues a sweep with room in the queue, so
    ``push.ready`` is not looked at); ``dropped`` (Out): a sweep operation leaves the
    pipeline without spikes; ``mac`` (In, ``inputmac.mac_memory_signature``) when the
    multiply-accumulate input stage shares the weight, bias and current memories;
    ``load{k}`` (In, ``store.write_signature``) for each projection k in ``loadable``,
    whose weights live in a ``WeightStore`` written at run time.
    """

    def __init__(self, plan: EnginePlan, loadable=()):
        self.plan, self.loadable = plan, tuple(loadable)
        members = {"ops": In(issue_signature(plan)),
                   "push": Out(stream.Signature(queue_layout(plan))), "dropped": Out(1)}
        if plan.mac_lanes:
            members["mac"] = In(mac_memory_signature(plan))
        for k in self.loadable:
            members[f"load{k}"] = In(load_signature(plan, k))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        self.dual = plan.pop.kind == "ilif"  # two membrane banks (see hdl.sequencer)
        self.st = st = [Signal(stage_layout(plan), name=f"st{n}") for n in range(Stage.WRITE + 1)]
        m.d.sync += st[0].eq(Cat(self.ops.valid, self.ops.payload))
        m.d.sync += [st[n + 1].eq(st[n]) for n in range(len(st) - 1)]
        w_rd = self._weight_memories(m)
        addend = self._weight_terms(m, w_rd)
        val = self._sum(m, addend)
        m.submodules.rule = rule = neuron_rule(plan)
        m.d.comb += [rule.val.eq(val), rule.s5.eq(st[Stage.COMPARE]),
                     rule.s6.eq(st[Stage.RULE])]
        self._write_back(m, rule)
        if plan.keeps_statistics:
            self._statistics(m, rule)
        return m

    def _statistics(self, m, rule):
        """cos: each neuron's pre-simulation statistics (``neuron.stats_layout``), read in
        stage SUM for the rule's stage COMPARE, written in stage WRITE by every sweep. Only
        sweeps touch them, and a sweep's address comes back in the next step's sweep, at
        least two idle cycles and the other addresses later: with one address that is three
        cycles, when the read meets the write, so the read sees the write then."""
        plan, st, P = self.plan, self.st, self.plan.lanes
        m.submodules.smem = smem = memory.Memory(
            shape=data.ArrayLayout(stats_layout(plan), P), depth=plan.addresses, init=[])
        wr = smem.write_port()
        rd = smem.read_port(transparent_for=[wr] if plan.addresses == 1 else ())
        s7 = st[Stage.WRITE]
        m.d.comb += [rd.addr.eq(st[Stage.SUM].addr), rule.stats.eq(rd.data),
                     wr.addr.eq(s7.addr), wr.data.eq(rule.stats_next),
                     wr.en.eq(Mux(s7.valid & (s7.kind == SWEEP), (1 << P) - 1, 0))]

    # -- helpers -------------------------------------------------------------------------------
    def _vaddr(self, s):
        return s.addr + s.bank * self.plan.addresses if self.dual else s.addr

    def _same_address(self, x, y):
        return (x.addr == y.addr) & (x.bank == y.bank) if self.dual else x.addr == y.addr

    @staticmethod
    def _writes_v(s):
        return s.valid & ~((s.kind == ACC) & s.cur)

    def _writes_c(self, s):
        # (The multiply-accumulate input stage writes the whole current every sample; the
        # sweeps need not restore the bias.)
        if self.plan.mac_lanes:
            return Const(0, 1)
        return s.valid & (((s.kind == ACC) & s.cur) | ((s.kind == SWEEP) & s.last_step))

    def _is_mac(self, k) -> bool:
        return bool(self.plan.mac_lanes) and self.plan.projections[k].is_input

    # -- stages READ to CHOOSE: the weight term ---------------------------------------------
    def _weight_memories(self, m):
        """Each projection's weights: a ROM, or a WeightStore written through load{k}."""
        plan, w_rd = self.plan, []
        for k, p in enumerate(plan.projections):
            depth, layout = weight_memory(plan, k)
            if k in self.loadable:
                m.submodules[f"wstore{k}"] = ws = WeightStore(depth, layout.size)
                wiring.connect(m, wiring.flipped(getattr(self, f"load{k}")), ws.w)
                w_rd.append((ws.r.addr, data.View(layout, ws.r.data)))
            else:
                m.submodules[f"wrom{k}"] = rom = memory.Memory(shape=layout, depth=depth,
                                                               init=p.init)
                w_rd.append(registered_read(m, rom, name=f"w0_{k}"))
        return w_rd

    def _weight_terms(self, m, w_rd):
        """s·W as shifted adds (counts above 1 only come from group neurons; no multiplier,
        so no DSP block is spent on a 2- or 3-bit factor), W << b for the bit-events of
        pixels and ILIF planes; the term of the operation's projection, << its weight
        shift (the ROM holds weight >> shift), registered in stage CHOOSE."""
        plan, st, P = self.plan, self.st, self.plan.lanes
        for k, (addr, rdata) in enumerate(w_rd):
            if self._is_mac(k):
                m.d.comb += [addr.eq(self.mac.w_addr), self.mac.w_data.eq(rdata)]
            else:
                m.d.comb += addr.eq(st[Stage.READ].waddr)
        w1 = [Signal.like(rdata, name=f"w1_{k}") for k, (_, rdata) in enumerate(w_rd)]
        m.d.sync += [w1[k].eq(rdata) for k, (_, rdata) in enumerate(w_rd)]
        s2 = st[Stage.TERM]
        terms, abits = [], 1
        for k, pp in enumerate(plan.projections):
            wbits = pp.proj.weight_bits
            if self._is_mac(k):
                terms.append(None)
                continue
            if pp.max_count > 1:
                cb = bits_for(pp.max_count)
                pairs = []
                for j in range(0, cb, 2):
                    bits = [b for b in (j, j + 1) if b < cb]
                    t = [Signal(signed(wbits + max(bits) + 2), name=f"w2_{k}_{j}_{p}")
                         for p in range(P)]
                    m.d.sync += [t[p].eq(sum(Mux(s2.count[b], w1[k][p] << b, 0)
                                             for b in bits)) for p in range(P)]
                    pairs.append(t)
                terms.append([sum(t[p] for t in pairs) for p in range(P)])
                abits = max(abits, wbits + cb + 1 + pp.proj.weight_shift)
            else:
                # (the largest shift: a pixel's top bit, or an ILIF plane's)
                max_shift = (PIXEL_BITS - 1 if pp.is_input
                             else plan.steps_in - 1 if plan.ilif else 0)
                sbits = bits_for(max_shift) if max_shift else 0
                t = [Signal(signed(wbits + max_shift), name=f"w2_{k}_{p}") for p in range(P)]
                m.d.sync += [t[p].eq(w1[k][p] << s2.shift[:sbits] if sbits else w1[k][p])
                             for p in range(P)]
                terms.append(t)
                abits = max(abits, wbits + max_shift + pp.proj.weight_shift)
        addend = Signal(data.ArrayLayout(signed(abits), P))
        for k, t in enumerate(terms):
            if t is not None:
                shift = plan.projections[k].proj.weight_shift
                with m.If(st[Stage.CHOOSE].proj == k):
                    m.d.sync += [addend[p].eq(t[p] << shift) for p in range(P)]
        return addend

    # -- stages TERM to SUM: operands, forwarding, the sum ----------------------------------
    def _sum(self, m, addend):
        plan, st, P = self.plan, self.st, self.plan.lanes
        vshape = data.ArrayLayout(signed(plan.vbits), P)
        cshape = data.ArrayLayout(signed(plan.cbits), P)
        bshape = data.ArrayLayout(signed(plan.bbits), P)
        # ILIF engines keep two membrane banks: one sample fires from one bank while the
        # next one accumulates into the other (temporal separation, pipelined).
        banks = 2 if self.dual else 1
        v_init = plan.pop.v0 if plan.pop.kind == "gn" else 0
        # (A read in stage TERM that meets the write of stage WRITE to its address is a
        # forwarding hit at distance 5: its data is never used, so the membrane and, but
        # for the input stage's writes, the current RAM leave such a read undefined.)
        m.submodules.vmem = vmem = ram(shape=vshape, depth=banks * plan.addresses,
                                       init=[[v_init] * P] * (banks * plan.addresses),
                                       collisions="undefined")
        self.v_wr = vmem.write_port()
        v_addr, v_data = registered_read(m, vmem, name="v_rd", write=self.v_wr)
        m.submodules.bmem = bmem = memory.Memory(shape=bshape, depth=len(plan.bias_rom_words),
                                                 init=plan.bias_rom_words)
        b_addr, b_data = registered_read(m, bmem, name="b_rd")
        s2 = st[Stage.TERM]
        m.d.comb += v_addr.eq(self._vaddr(s2))
        if plan.mac_lanes:  # (only sweeps add the bias: the input stage has the port)
            m.d.comb += [b_addr.eq(self.mac.b_addr), self.mac.b_data.eq(b_data)]
        else:
            m.d.comb += b_addr.eq(s2.bias_g if plan.bias_per_group else s2.addr)
        v_raw, self.b_raw = Signal(vshape), Signal(bshape)
        c_raw = Signal(cshape)
        m.d.sync += [v_raw.eq(v_data), self.b_raw.eq(b_data)]
        if plan.has_current:
            m.submodules.cmem = cmem = ram(shape=cshape, depth=plan.addresses,
                                           init=plan.bias_words,
                                           collisions=plan.current_collisions)
            self.c_wr = cmem.write_port()
            c_addr, c_data = registered_read(m, cmem, name="c_rd", write=self.c_wr)
            m.d.comb += c_addr.eq(s2.addr)
            m.d.sync += c_raw.eq(c_data)

        # The values in flight, by distance: the sum (SUM), the rule's input (COMPARE),
        # and what stages WRITE, +1, +2 wrote (membrane res*, current cres*).
        wide = data.ArrayLayout(signed(sum_width(plan)), P)
        self.val, self.r6 = val, r6 = Signal(wide, name="val5"), Signal(wide, name="r6")
        self.res = [Signal(vshape, name=f"res{n}") for n in (7, 8, 9)]
        self.cres = [Signal(cshape, name=f"cres{n}") for n in (7, 8, 9)]
        m.d.sync += [self.res[1].eq(self.res[0]), self.res[2].eq(self.res[1]),
                     self.cres[1].eq(self.cres[0]), self.cres[2].eq(self.cres[1])]
        hit_v = [Signal(name=f"hit_v{d}") for d in range(1, FORWARD + 1)]
        hit_c = [Signal(name=f"hit_c{d}") for d in range(1, FORWARD + 1)]
        for d in range(1, FORWARD + 1):  # (compared in stage TERM; the distances stay)
            y = st[Stage.TERM + d]
            ok = self._same_address(s2, y)
            if d <= 2:
                ok = ok & (y.kind == ACC)
            m.d.sync += [hit_v[d - 1].eq(ok & self._writes_v(y)),
                         hit_c[d - 1].eq(ok & self._writes_c(y))]

        def newest(hits):
            """One-hot: the first hit (the newest write), and a last bit for none."""
            out, seen = [], Const(0, 1)
            for h in hits:
                out.append(h & ~seen)
                seen = seen | h
            return [*out, ~seen]

        # X: the membrane (or for an accumulation into the current, the current).
        # Y: the weight term (accumulation), bias + current or bias (sweep; an ILIF
        # sweep adds the bias in its first fire step only).
        s3 = st[Stage.CHOOSE]
        fwd_v, fwd_c = newest(hit_v), newest(hit_c)
        acc = s3.kind == ACC
        into_c = acc & s3.cur
        x_sources = [val, r6, *self.res, v_raw, *self.cres, c_raw]
        x_select = [(fwd_v[i] & ~into_c) | (fwd_c[i] & into_c) for i in range(2)]  # either
        x_select += [fwd_v[i] & ~into_c for i in range(2, 6)]
        x_select += [fwd_c[i] & into_c for i in range(2, 6)]
        y_sources = [addend, self.b_raw, val, r6, *self.cres, c_raw]
        if plan.has_current:
            y_select = [acc, Const(0, 1)] + [fwd_c[i] & ~acc for i in range(6)]
        else:
            sweep_bias = ~acc & (s3.fire_k == 0) if plan.ilif else ~acc
            y_select = [acc, sweep_bias] + [Const(0, 1)] * 6
        x_sel, y_sel = Signal(len(x_sources)), Signal(len(y_sources))
        m.d.sync += [x_sel.eq(Cat(*x_select)), y_sel.eq(Cat(*y_select))]
        # The current RAM holds bias + input current (its initial value, and what the last
        # sweep of a sample writes back), so a sweep adds one term.
        for p in range(P):
            x = reduce(operator.or_, [Mux(x_sel[i], src[p], 0)
                                      for i, src in enumerate(x_sources)])
            y = reduce(operator.or_, [Mux(y_sel[i], src[p], 0)
                                      for i, src in enumerate(y_sources)])
            m.d.sync += val[p].eq(x + y)
        return val

    # -- stage WRITE: write back, push the spikes -------------------------------------------
    def _write_back(self, m, rule):
        plan, st, P = self.plan, self.st, self.plan.lanes
        s6, s7 = st[Stage.RULE], st[Stage.WRITE]
        readout = plan.pop.kind == "readout"
        m.d.comb += self.r6.eq(rule.r)
        m.d.sync += self.res[0].eq(rule.result)
        b5, b6 = Signal.like(self.b_raw), Signal.like(self.b_raw)
        m.d.sync += [b5.eq(self.b_raw), b6.eq(b5)]
        if plan.has_current:
            for p in range(P):  # an accumulation's new current, or the sweep's bias
                m.d.sync += self.cres[0][p].eq(Mux(s6.kind == ACC, rule.r[p], b6[p]))
        all_lanes = (1 << P) - 1
        m.d.comb += [self.v_wr.addr.eq(self._vaddr(s7)), self.v_wr.data.eq(self.res[0]),
                     self.v_wr.en.eq(Mux(self._writes_v(s7), all_lanes, 0))]
        if plan.mac_lanes:  # bias + current of P neurons from the input stage
            m.d.comb += [self.c_wr.addr.eq(self.mac.c_addr), self.c_wr.data.eq(self.mac.c_data),
                         self.c_wr.en.eq(Mux(self.mac.c_en, all_lanes, 0))]
        elif plan.has_current:
            m.d.comb += [self.c_wr.addr.eq(s7.addr), self.c_wr.data.eq(self.cres[0]),
                         self.c_wr.en.eq(Mux(self._writes_c(s7), all_lanes, 0))]
        group = queue_layout(plan)
        entry, entry7 = Signal(group), Signal(group)
        push7 = Signal()
        sweeping = s6.valid & (s6.kind == SWEEP)
        written = self.push.payload
        m.d.comb += written.eq(entry7)
        if readout:
            m.d.comb += [entry.values.eq(rule.values), entry.addr.eq(s6.addr)]
            # (cos: the pre-simulation's last sweep clears the readout without a report)
            report = sweeping & ~s6.calibrate if plan.cos_steps else sweeping
            m.d.sync += [entry7.eq(entry), push7.eq(report)]
        else:
            m.d.comb += [entry.counts.eq(rule.counts), entry.end.eq(s6.end)]
            any_spike = rule.counts.as_value() != 0
            m.d.sync += [entry7.eq(entry), push7.eq(sweeping & (any_spike | s6.end))]
            # The group's position (g, y, x) is counted in stage WRITE rather than carried
            # down the pipeline: a sweep's operations reach it in address order.
            pos_g, pos_x, pos_y = position_counter(
                m, (plan.groups, plan.width, plan.height),
                step=s7.valid & (s7.kind == SWEEP), restart=s7.end)
            m.d.comb += [written.g.eq(pos_g), written.y.eq(pos_y), written.x.eq(pos_x)]
        m.d.comb += [self.push.valid.eq(push7),
                     self.dropped.eq(s7.valid & (s7.kind == SWEEP) & ~push7)]
