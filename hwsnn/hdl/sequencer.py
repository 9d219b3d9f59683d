"""The sequencer of a layer engine: what the datapath does in each cycle.

It accepts the engine's input events projection by projection (earliest source first)
until each one's end-of-step marker, has each expanded into memory operations, and at the
end of a step issues the fire sweep: one operation per lane group address, only while the
output queue has room for every sweep operation in flight (a credit), so that back-pressure
on the output never loses a spike. It counts the steps (GN, readout), the input planes and
the output bits (ILIF), and in the two-bank ILIF engines runs a second state machine that
fires one bank while the next sample accumulates into the other.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .events import event_signature
from .expander import Expander
from .ops import ACC, SWEEP, expander_op_layout, issue_signature
from .plan import EnginePlan


def position_counter(m, sizes, *, step, restart):
    """Digits of a mixed-radix counter (fastest first, ``sizes`` each) that moves on in
    every cycle with ``step`` and goes back to zero after one with ``restart`` too; a digit
    of size 1 is the constant 0."""
    digits = [Signal(range(n), name=f"pos{i}") if n > 1 else Const(0, 1)
              for i, n in enumerate(sizes)]
    live = [(d, n) for d, n in zip(digits, sizes, strict=True) if n > 1]

    def advance(i):
        if i == len(live):
            return
        d, n = live[i]
        with m.If(d == n - 1):
            m.d.sync += d.eq(0)
            advance(i + 1)
        with m.Else():
            m.d.sync += d.eq(d + 1)

    with m.If(step):
        with m.If(restart):
            m.d.sync += [d.eq(0) for d, _ in live]
        with m.Else():
            advance(0)
    return digits


class Sequencer(wiring.Component):
    """Control of the engine of ``plan`` with an output queue of ``queue_depth`` groups.

    Members: ``i0``, ``i1``, … (In event streams): the engine's event inputs, as
    ``plan.event_projections``; ``pixel_ops`` (In, op stream of the image's projection)
    when the bit-event input stage feeds it; ``input_start`` (Out, level) and
    ``input_done`` (In, one cycle) run the input stage (bit events or multiply-accumulate)
    for one sample; ``ops`` (Out, ``issue_signature``): the operation issued this cycle;
    ``dropped`` (In): a sweep operation left the pipeline without an entry for the queue;
    ``popped`` (In): the queue gave up an entry; ``active`` (Out): an operation issues, or
    one of the two idle cycles after a sweep passes.
    """

    def __init__(self, plan: EnginePlan, queue_depth: int):
        self.plan, self.queue_depth = plan, queue_depth
        members = {f"i{k}": In(event_signature(p.src_shape, p.max_count))
                   for k, p in enumerate(plan.event_projections)}
        if plan.input_projection is not None:
            members.update(input_start=Out(1), input_done=In(1))
            if not plan.mac_lanes:
                members["pixel_ops"] = In(stream.Signature(
                    expander_op_layout(plan, plan.input_projection)))
        members.update(ops=Out(issue_signature(plan)), dropped=In(1), popped=In(1),
                       active=Out(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        A = plan.addresses
        self.dual = dual = plan.pop.kind == "ilif"  # two membrane banks
        op = self.ops.payload
        self.sweep_now = sweep_now = Signal()  # a sweep operation takes the issue slot
        self.acc_bank, self.fire_bank = Signal(), Signal()
        self.full = [Signal(name="full0"), Signal(name="full1")]  # accumulated, not fired
        # Two idle cycles after the last operation of every sweep: the fire rule's result
        # is only final when it is written back, so its address must not be read for the
        # next two cycles (see the datapath's forwarding).
        bubble1, self.bubble = Signal(), Signal()
        m.d.sync += [bubble1.eq(sweep_now & op.end),
                     self.bubble.eq((sweep_now & op.end) | bubble1)]
        m.d.comb += self.active.eq(self.ops.valid | self.bubble)

        # Expanders: the image's (in the input stage) and one per event projection; an
        # accumulation issues whenever one has an operation. Sweeps and accumulations share
        # the issue slot only in the two-bank engines; elsewhere no expander runs in a sweep.
        for k in range(len(plan.event_projections)):
            m.submodules[f"expand{k}"] = Expander(plan, plan.event_projections[k])
        self.expanders = [m.submodules[f"expand{k}"]
                          for k in range(len(plan.event_projections))]
        streams = {i: ex.o for i, ex in zip(plan.event_indices, self.expanders, strict=True)}
        if plan.input_projection is not None and not plan.mac_lanes:
            streams[plan.input_index] = self.pixel_ops
        for k in sorted(streams):
            s = streams[k]
            m.d.comb += s.ready.eq(~sweep_now & ~self.bubble if dual else ~self.bubble)
            with m.If(s.valid & ~self.bubble):
                m.d.comb += [self.ops.valid.eq(1), op.kind.eq(ACC), op.addr.eq(s.payload.addr),
                             op.bank.eq(self.acc_bank), op.proj.eq(k),
                             op.count.eq(s.payload.count), op.shift.eq(s.payload.shift),
                             op.cur.eq(plan.projections[k].is_input and plan.has_current),
                             op.waddr.eq(s.payload.waddr)]

        # The credit: ``used`` counts the groups in the queue and the sweep operations
        # issued and not yet pushed or dropped; it is registered, so room for two more a
        # cycle ago is room for one now.
        used = Signal(range(self.queue_depth + 3))
        m.d.sync += used.eq(used + sweep_now - self.dropped - self.popped)
        self.credit = Signal()
        m.d.sync += self.credit.eq(used <= self.queue_depth - 2)

        self.step = Signal(range(max(2, plan.steps + 1)))
        self.plane = Signal(range(max(2, plan.steps_in + 1)))
        self.fire_k = Signal(range(max(2, plan.bits_out + 1)))
        self.sweep_addr = Signal(range(max(2, A)))
        self.sweep_last = Signal(init=A == 1)  # registered: sweep_addr == A − 1
        for port, ex in zip(self._ports(), self.expanders, strict=True):
            fields, ev = port.payload, ex.i.payload
            for name in ("c", "y", "x", "index", "count"):
                if hasattr(ev, name):
                    m.d.comb += getattr(ev, name).eq(getattr(fields, name))
            if plan.ilif:  # plane t of T_in adds W << (T_in − 1 − t): V ← 2V + W·bit
                m.d.comb += ev.shift.eq((plan.steps_in - 1 - self.plane)[:4])
        self._main_fsm(m)
        if dual:
            self._fire_fsm(m)
        if plan.bias_per_group:  # the lane group of the sweep's address, for the bias ROM
            (sweep_g,) = position_counter(m, (plan.groups,), step=sweep_now, restart=op.end)
            m.d.comb += op.bias_g.eq(sweep_g)
        return m

    def _ports(self):
        return [getattr(self, f"i{k}") for k in range(len(self.plan.event_projections))]

    def _sweep_issue(self, m, last_step, on_done):
        """Issue one sweep operation per cycle while the queue has room."""
        op, A = self.ops.payload, self.plan.addresses
        with m.If(self.credit & ~self.bubble):
            m.d.comb += [self.ops.valid.eq(1), op.kind.eq(SWEEP), op.addr.eq(self.sweep_addr),
                         op.bank.eq(self.fire_bank), self.sweep_now.eq(1),
                         op.last_step.eq(last_step), op.end.eq(self.sweep_last),
                         op.fire_k.eq(self.fire_k)]
            if self.plan.cos_steps:
                m.d.comb += [op.first.eq(self.step == 0),
                             op.calibrate.eq(self.step == self.plan.cos_steps - 1)]
            with m.If(self.sweep_last):
                m.d.sync += [self.sweep_addr.eq(0), self.sweep_last.eq(A == 1)]
                on_done()
            with m.Else():
                m.d.sync += [self.sweep_addr.eq(self.sweep_addr + 1),
                             self.sweep_last.eq(self.sweep_addr == A - 2)]

    def _accept_events(self, m, k, next_state):
        """Feed port k's events to its expander until the end-of-step marker."""
        port, ex = self._ports()[k], self.expanders[k]
        with m.If(port.valid):
            with m.If(port.payload.end):
                with m.If(~ex.busy):
                    m.d.comb += port.ready.eq(1)
                    next_state()
            with m.Else():
                m.d.comb += [ex.i.valid.eq(1), port.ready.eq(ex.i.ready)]

    def _hand_over(self, m):
        """Give the accumulated bank to the fire steps; go on in the other bank."""
        with m.If(self.acc_bank):
            m.d.sync += self.full[1].eq(1)
        with m.Else():
            m.d.sync += self.full[0].eq(1)
        m.d.sync += self.acc_bank.eq(~self.acc_bank)
        m.next = "WAIT"

    def _main_fsm(self, m):
        plan = self.plan
        n_ports = len(plan.event_projections)
        has_input = plan.input_projection is not None
        readout = plan.pop.kind == "readout"
        first = "ACC0" if n_ports else "INPUT"  # where the next step's input starts

        def after_accumulate():
            """End of one step (GN, readout) or plane (ILIF) of input."""
            if plan.ilif:
                with m.If(self.plane == plan.steps_in - 1):
                    m.d.sync += self.plane.eq(0)
                    if self.dual:
                        self._hand_over(m)
                    else:
                        m.next = "SWEEP"
                with m.Else():
                    m.d.sync += self.plane.eq(self.plane + 1)
                    m.next = first
            elif readout:
                # (cos: a sweep after the pre-simulation too, which clears the readout)
                with m.If((self.step == plan.steps - 1) | (self.step == plan.cos_steps - 1)
                          if plan.cos_steps else self.step == plan.steps - 1):
                    m.next = "SWEEP"
                with m.Else():
                    m.d.sync += self.step.eq(self.step + 1)
                    m.next = first
            else:
                m.next = "SWEEP"

        def sample_done():
            m.d.sync += [self.step.eq(0), self.fire_k.eq(0), self.plane.eq(0)]
            m.next = "INPUT" if has_input else ("ACC0" if n_ports else "SWEEP")

        def fired():  # ILIF (one bank): one output bit per sweep
            with m.If(self.fire_k == plan.bits_out - 1):
                sample_done()
            with m.Else():
                m.d.sync += self.fire_k.eq(self.fire_k + 1)

        def reported():  # readout: the last step's sweep (cos: or the pre-simulation's)
            if plan.cos_steps:
                with m.If(self.step == plan.steps - 1):
                    sample_done()
                with m.Else():
                    m.d.sync += self.step.eq(self.step + 1)
                    m.next = first
            else:
                sample_done()

        def swept():  # GN: one sweep per step
            with m.If(self.step == plan.steps - 1):
                sample_done()
            with m.Else():
                m.d.sync += self.step.eq(self.step + 1)
                m.next = "ACC0" if n_ports else "SWEEP"

        with m.FSM(init="INPUT" if has_input else ("ACC0" if n_ports else "SWEEP")):
            if has_input:
                with m.State("INPUT"):
                    m.d.comb += self.input_start.eq(1)
                    with m.If(self.input_done):
                        if self.dual and not n_ports and not plan.mac_lanes:
                            self._hand_over(m)  # the image is all of this sample's input
                        else:
                            m.next = "ACC0" if n_ports else "SWEEP"
            for k in range(n_ports):
                with m.State(f"ACC{k}"):
                    if k + 1 < n_ports:
                        self._accept_events(m, k, lambda k=k: setattr(m, "next", f"ACC{k + 1}"))
                    else:
                        self._accept_events(m, k, after_accumulate)
            if self.dual:
                with m.State("WAIT"):
                    with m.If(~Array(self.full)[self.acc_bank]):
                        m.next = "INPUT" if has_input else "ACC0"
            with m.State("SWEEP"):
                if self.dual:
                    pass
                elif plan.ilif and not readout:
                    self._sweep_issue(m, 0, fired)
                elif readout:
                    self._sweep_issue(m, 0, reported)
                else:
                    self._sweep_issue(m, self.step == plan.steps - 1, swept)

    def _fire_fsm(self, m):
        """The two-bank engines: fire a full bank while the other one accumulates."""
        plan = self.plan

        def fired_bank():
            with m.If(self.fire_k == plan.bits_out - 1):
                m.d.sync += [self.fire_k.eq(0), self.fire_bank.eq(~self.fire_bank)]
                with m.If(self.fire_bank):
                    m.d.sync += self.full[1].eq(0)
                with m.Else():
                    m.d.sync += self.full[0].eq(0)
                m.next = "IDLE"
            with m.Else():
                m.d.sync += self.fire_k.eq(self.fire_k + 1)

        with m.FSM(name="fire"):
            with m.State("IDLE"):
                with m.If(Array(self.full)[self.fire_bank]):
                    m.next = "SWEEP"
            with m.State("SWEEP"):
                self._sweep_issue(m, 0, fired_bank)
