"""Layer engine: one population of integer neurons, event-driven, with P lanes.

The engine runs the QNet semantics of its population (docs/qnet.md) sample after sample:

- **input stage** (a projection from the image): every pixel code is split into its set
  bits; bit b of pixel j is an event that adds ``W[:, j] << b`` (adders only). For GN the
  sum is the input current, kept in its own RAM and added at every step; for ILIF it is
  the accumulation of the 8 input bit-planes.
- **accumulate**: an input event (neuron j, count s) adds ``s·W[:, j]`` (ILIF: the bit of
  plane t adds ``W[:, j] << (T_in − 1 − t)``, which is the Horner sum ``V ← 2V + W·bit``)
  to every membrane it reaches: ceil(N/P) cycles for a dense projection, ceil(C/P) per
  reached output position for a convolution.
- **fire sweep** at the end of a step: ceil(N/P) cycles apply the neuron rule to all
  membranes (GN: τ comparators against Θ, 2Θ, …, τΘ and a soft reset; ILIF: one quotient
  bit of a restoring division per step; readout: report), and emit the spikes.

Every operation is one pass through a pipeline: read (membrane, weight, bias RAMs) →
sums → neuron rule → write back; results still in flight are forwarded to a read of the
same address, so events to one neuron can follow each other on consecutive cycles. Spikes leave
through a small queue of lane groups; the sweep only issues when the queue has room, so
back-pressure on the output never loses a spike, and the input is simply not accepted
while the engine is busy.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from ..qnet import QNet
from .events import bits_for, event_signature, pixel_signature, readout_signature
from .plan import EnginePlan, ProjectionPlan

ACC, SWEEP = 0, 1


class _Expander(wiring.Component):
    """Turns one event of a projection into its memory operations, one per cycle.

    Members: ``load`` (In): take the event on ``ev_*`` this cycle; ``en`` (In): the
    operation on ``op_*`` is issued this cycle; ``ready`` (Out): an event may be loaded
    (idle, or issuing its last operation); ``op_valid``, ``op_addr``,
    ``op_waddr``, ``op_count``, ``op_shift`` (Out): the operation issued this cycle.
    """

    def __init__(self, engine: EnginePlan, proj: ProjectionPlan):
        self.engine, self.proj = engine, proj
        src = proj.src_shape
        spatial = len(src) == 3
        members = {
            "load": In(1), "ready": Out(1), "busy": Out(1), "en": In(1),
            "ev_count": In(bits_for(proj.max_count)), "ev_shift": In(4),
            "op_valid": Out(1), "op_addr": Out(range(max(2, engine.addresses))),
            "op_waddr": Out(range(max(2, proj.rows * engine.groups))),
            "op_count": Out(bits_for(proj.max_count)), "op_shift": Out(4),
        }
        if spatial:
            members.update(ev_c=In(range(max(2, src[0]))), ev_y=In(range(max(2, src[1]))),
                           ev_x=In(range(max(2, src[2]))))
        else:
            members["ev_index"] = In(range(max(2, src[0])))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        e, p = self.engine, self.proj
        g_max = e.groups
        busy = Signal()
        count = Signal.like(self.op_count)
        shift = Signal(4)
        g = Signal(range(max(2, g_max)))
        last_g = g == g_max - 1
        m.d.comb += [self.op_valid.eq(busy), self.op_count.eq(count), self.op_shift.eq(shift),
                     self.busy.eq(busy)]
        if p.kind == "dense":
            # Source neuron j (the flat index of a spatial source) selects the weight row.
            j = Signal(range(max(2, p.rows)))
            m.d.comb += [self.op_addr.eq(g), self.op_waddr.eq(j * g_max + g)]
            last = last_g
            with m.If(self.load):
                if len(p.src_shape) == 3:
                    _, h, w = p.src_shape
                    flat = (self.ev_c * (h * w) + self.ev_y * w + self.ev_x)
                else:
                    flat = self.ev_index
                m.d.sync += [j.eq(flat), count.eq(self.ev_count), shift.eq(self.ev_shift),
                             g.eq(0), busy.eq(1)]
            with m.Elif(busy & self.en):
                m.d.sync += g.eq(g + 1)
                with m.If(last):
                    m.d.sync += busy.eq(0)
        else:
            q = p.proj
            k, s, pad = q.kernel, q.stride, q.padding
            wout = e.width
            yr, xr = e.conv_ranges(p, 1), e.conv_ranges(p, 2)
            y_lo = Array(Const(lo, range(e.height + 1)) for lo, _ in yr)
            y_n = Array(Const(n, range(e.height + 2)) for _, n in yr)
            x_lo = Array(Const(lo, range(e.width + 1)) for lo, _ in xr)
            x_n = Array(Const(n, range(e.width + 2)) for _, n in xr)
            c = Signal(range(max(2, p.src_shape[0])))
            y = Signal(range(max(2, p.src_shape[1])))
            x = Signal(range(max(2, p.src_shape[2])))
            oy = Signal(range(max(2, e.height)))
            ox = Signal(range(max(2, e.width)))
            oy_end = Signal(range(e.height + 2))
            ox_first = Signal(range(max(2, e.width)))
            ox_end = Signal(range(e.width + 2))
            ky = Signal(range(-s * e.height - 1, k + pad + 2))
            kx = Signal(range(-s * e.width - 1, k + pad + 2))
            m.d.comb += [ky.eq(y + pad - oy * s), kx.eq(x + pad - ox * s)]
            row = (c * k + ky) * k + kx
            m.d.comb += [self.op_addr.eq((oy * wout + ox) * g_max + g),
                         self.op_waddr.eq(row * g_max + g)]
            last_x = ox + 1 == ox_end
            last_y = oy + 1 == oy_end
            last = last_g & last_x & last_y
            with m.If(self.load):
                ny, nx = y_n[self.ev_y], x_n[self.ev_x]
                m.d.sync += [c.eq(self.ev_c), y.eq(self.ev_y), x.eq(self.ev_x),
                             count.eq(self.ev_count), shift.eq(self.ev_shift), g.eq(0),
                             oy.eq(y_lo[self.ev_y]), ox.eq(x_lo[self.ev_x]),
                             ox_first.eq(x_lo[self.ev_x]),
                             oy_end.eq(y_lo[self.ev_y] + ny), ox_end.eq(x_lo[self.ev_x] + nx),
                             busy.eq((ny != 0) & (nx != 0))]
            with m.Elif(busy & self.en):
                with m.If(~last_g):
                    m.d.sync += g.eq(g + 1)
                with m.Else():
                    m.d.sync += g.eq(0)
                    with m.If(~last_x):
                        m.d.sync += ox.eq(ox + 1)
                    with m.Else():
                        m.d.sync += ox.eq(ox_first)
                        with m.If(~last_y):
                            m.d.sync += oy.eq(oy + 1)
                        with m.Else():
                            m.d.sync += busy.eq(0)
        m.d.comb += self.ready.eq(~busy | (last & self.en))
        return m


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
    """

    def __init__(self, net: QNet, population: str, *, lanes: int = 1,
                 queue_depth: int | None = None):
        self.plan = plan = EnginePlan(net, population, lanes)
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
        super().__init__(members)

    @property
    def event_inputs(self):
        return [getattr(self, f"i{k}") for k in range(len(self.plan.event_projections))]

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        pop = plan.pop
        P, A = plan.lanes, plan.addresses
        readout = pop.kind == "readout"
        ilif = plan.ilif

        # -- memories ---------------------------------------------------------------------
        # ILIF engines keep two membrane banks: one sample fires from one bank while the
        # next one accumulates into the other (temporal separation, pipelined).
        dual = pop.kind == "ilif"
        banks = 2 if dual else 1
        v_init = pop.v0 if pop.kind == "gn" else 0
        vshape = data.ArrayLayout(signed(plan.vbits), P)
        m.submodules.vmem = vmem = memory.Memory(shape=vshape, depth=banks * A,
                                                 init=[[v_init] * P] * (banks * A))
        v_rd, v_wr = vmem.read_port(), vmem.write_port()
        m.submodules.bmem = bmem = memory.Memory(
            shape=data.ArrayLayout(signed(plan.bbits), P), depth=A, init=plan.bias_words)
        b_rd = bmem.read_port()
        if plan.has_current:
            m.submodules.cmem = cmem = memory.Memory(
                shape=data.ArrayLayout(signed(plan.cbits), P), depth=A, init=[[0] * P] * A)
            c_rd, c_wr = cmem.read_port(), cmem.write_port()
        w_rd = []
        for k, p in enumerate(plan.projections):
            wbits = p.proj.weight_bits
            rom = memory.Memory(shape=data.ArrayLayout(signed(wbits), P),
                                depth=max(1, len(p.init)), init=p.init)
            m.submodules[f"wrom{k}"] = rom
            w_rd.append(rom.read_port())

        # -- event expanders ----------------------------------------------------------------
        expanders = []
        for k, p in enumerate(plan.projections):
            ex = _Expander(plan, p)
            m.submodules[f"expand{k}"] = ex
            expanders.append(ex)

        # -- issue stage ------------------------------------------------------------------------
        op_valid = Signal()
        op_kind = Signal()
        op_cur = Signal()  # the operation targets the input-current RAM
        op_addr = Signal(range(max(2, A)))
        op_proj = Signal(range(max(2, len(plan.projections))))
        op_count = Signal(bits_for(max(p.max_count for p in plan.projections)))
        op_shift = Signal(4)
        op_last_step = Signal()  # GN sweep: reset V to V0 after firing
        op_fire_k = Signal(range(max(2, plan.bits_out)))  # ILIF quotient bit
        op_end = Signal()  # last sweep operation of the step
        op_g = Signal(range(max(2, plan.groups)))
        op_y = Signal(range(max(2, plan.height)))
        op_x = Signal(range(max(2, plan.width)))
        op_bank = Signal()
        sweep_now = Signal()  # a sweep operation takes this cycle's issue slot
        acc_bank, fire_bank = Signal(), Signal()
        full = [Signal(name="full0"), Signal(name="full1")]  # bank accumulated, not fired
        # One idle cycle after the last operation of every sweep: the fire rule's result
        # is only final in stage 3, so its address must not be read the next cycle.
        bubble = Signal()
        for ex in expanders:
            m.d.comb += ex.en.eq(~sweep_now & ~bubble)

        for k, ex in enumerate(expanders):
            with m.If(ex.op_valid & ~bubble):
                m.d.comb += [op_valid.eq(1), op_kind.eq(ACC), op_addr.eq(ex.op_addr),
                             op_bank.eq(acc_bank),
                             op_proj.eq(k), op_count.eq(ex.op_count), op_shift.eq(ex.op_shift),
                             op_cur.eq(1 if (plan.projections[k].is_input and plan.has_current)
                                       else 0),
                             w_rd[k].addr.eq(ex.op_waddr)]

        # Lane groups waiting for the output; the sweep issues only with room for its
        # in-flight operations (credit), so nothing is ever dropped.
        s1_valid, s2_valid, s3_valid = Signal(), Signal(), Signal()
        s1_kind, s2_kind, s3_kind = Signal(), Signal(), Signal()
        inflight = ((s1_valid & (s1_kind == SWEEP)) + (s2_valid & (s2_kind == SWEEP)) +
                    (s3_valid & (s3_kind == SWEEP)))
        if readout:
            group = data.StructLayout({"values": data.ArrayLayout(signed(plan.vbits), P),
                                       "addr": range(max(2, A))})
        else:
            group = data.StructLayout({"counts": data.ArrayLayout(self.o.payload.count.shape(),
                                                                  P),
                                       "g": range(max(2, plan.groups)),
                                       "y": range(max(2, plan.height)),
                                       "x": range(max(2, plan.width)),
                                       "end": 1})
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=group.size,
                                                           depth=self.queue_depth)
        credit = queue.w_level + inflight < self.queue_depth

        # Control: the step/plane counters and the phases.
        step = Signal(range(max(2, plan.steps + 1)))
        plane = Signal(range(max(2, plan.steps_in + 1)))
        sweep_addr = Signal(range(max(2, A)))
        sweep_g = Signal(range(max(2, plan.groups)))
        sweep_y = Signal(range(max(2, plan.height)))
        sweep_x = Signal(range(max(2, plan.width)))
        fire_k = Signal(range(max(2, plan.bits_out + 1)))
        pixel_count = Signal(range(plan.input_size + 1))
        pix_bits = Signal(8)
        pix_c = Signal(range(max(2, plan.net.input.shape[0])))
        in_shape = tuple(plan.net.input.shape)
        pix_y = Signal(range(max(2, in_shape[1] if len(in_shape) == 3 else 1)))
        pix_x = Signal(range(max(2, in_shape[2] if len(in_shape) == 3 else 1)))
        pix_index = Signal(range(max(2, plan.input_size)))
        # Position of the next pixel to arrive (the held one's is in pix_*).
        nxt_c, nxt_y, nxt_x = Signal.like(pix_c), Signal.like(pix_y), Signal.like(pix_x)
        nxt_index = Signal.like(pix_index)

        ev_ports = self.event_inputs
        ev_plans = plan.event_projections
        ev_expanders = [expanders[i] for i in plan.event_indices]
        def sweep_issue(last_step, on_done):
            """Issue one sweep operation per cycle when the queue has room."""
            with m.If(credit & ~bubble):
                m.d.comb += [op_valid.eq(1), op_kind.eq(SWEEP), op_addr.eq(sweep_addr),
                             op_bank.eq(fire_bank), sweep_now.eq(1),
                             op_g.eq(sweep_g), op_y.eq(sweep_y), op_x.eq(sweep_x),
                             op_last_step.eq(last_step), op_end.eq(sweep_addr == A - 1),
                             op_fire_k.eq(fire_k)]
                with m.If(sweep_addr == A - 1):
                    m.d.sync += [sweep_addr.eq(0), sweep_g.eq(0), sweep_y.eq(0),
                                 sweep_x.eq(0)]
                    on_done()
                with m.Else():
                    m.d.sync += sweep_addr.eq(sweep_addr + 1)
                    with m.If(sweep_g == plan.groups - 1):
                        m.d.sync += sweep_g.eq(0)
                        with m.If(sweep_x == plan.width - 1):
                            m.d.sync += [sweep_x.eq(0), sweep_y.eq(sweep_y + 1)]
                        with m.Else():
                            m.d.sync += sweep_x.eq(sweep_x + 1)
                    with m.Else():
                        m.d.sync += sweep_g.eq(sweep_g + 1)

        def shift_for_plane():
            return Const(0, 4) if not ilif else (plan.steps_in - 1 - plane)[:4]

        def accept_events(k, next_state):
            """Feed port k's events to its expander until the end-of-step marker."""
            port, ex, pp = ev_ports[k], ev_expanders[k], ev_plans[k]
            fields = port.payload
            if len(pp.src_shape) == 3:
                m.d.comb += [ex.ev_c.eq(fields.c), ex.ev_y.eq(fields.y), ex.ev_x.eq(fields.x)]
            else:
                m.d.comb += ex.ev_index.eq(fields.index)
            m.d.comb += [ex.ev_count.eq(fields.count), ex.ev_shift.eq(shift_for_plane())]
            with m.If(port.valid):
                with m.If(fields.end):
                    with m.If(~ex.busy):
                        m.d.comb += port.ready.eq(1)
                        next_state()
                with m.Elif(ex.ready):
                    m.d.comb += [port.ready.eq(1), ex.load.eq(1)]

        n_ports = len(ev_ports)
        has_input = plan.input_projection is not None

        def hand_over():
            """Give the accumulated bank to the fire steps; go on in the other bank."""
            with m.If(acc_bank):
                m.d.sync += full[1].eq(1)
            with m.Else():
                m.d.sync += full[0].eq(1)
            m.d.sync += acc_bank.eq(~acc_bank)
            m.next = "WAIT"

        def after_accumulate():
            """End of one step (GN, readout) or plane (ILIF) of input."""
            if ilif:
                with m.If(plane == plan.steps_in - 1):
                    m.d.sync += plane.eq(0)
                    if dual:
                        hand_over()
                    else:
                        m.next = "SWEEP"
                with m.Else():
                    m.d.sync += plane.eq(plane + 1)
                    m.next = "ACC0" if n_ports else "INPUT"
            elif readout:
                with m.If(step == plan.steps - 1):
                    m.next = "SWEEP"
                with m.Else():
                    m.d.sync += step.eq(step + 1)
                    m.next = "ACC0" if n_ports else "INPUT"
            else:
                m.next = "SWEEP"

        def sample_done():
            m.d.sync += [step.eq(0), fire_k.eq(0), plane.eq(0)]
            m.next = "INPUT" if has_input else ("ACC0" if n_ports else "SWEEP")

        with m.FSM(init="INPUT" if has_input else ("ACC0" if n_ports else "SWEEP")):
            if has_input:
                with m.State("INPUT"):
                    ex = expanders[plan.input_index]
                    # The highest set bit of the held pixel is the next event.
                    bit = Signal(3)
                    for b in range(8):
                        with m.If(pix_bits[b]):
                            m.d.comb += bit.eq(b)
                    if len(in_shape) == 3:
                        m.d.comb += [ex.ev_c.eq(pix_c), ex.ev_y.eq(pix_y), ex.ev_x.eq(pix_x)]
                    else:
                        m.d.comb += ex.ev_index.eq(pix_index)
                    m.d.comb += [ex.ev_count.eq(1), ex.ev_shift.eq(bit)]
                    remaining = pix_bits & ~(Const(1, 8) << bit)
                    emptying = Signal()
                    with m.If(pix_bits != 0):
                        with m.If(ex.ready):
                            m.d.comb += ex.load.eq(1)
                            m.d.sync += pix_bits.eq(remaining)
                            m.d.comb += emptying.eq(remaining == 0)
                    with m.Else():
                        m.d.comb += emptying.eq(1)
                    # Take the next pixel once the held one has no bits left.
                    with m.If(emptying & (pixel_count < plan.input_size)):
                        m.d.comb += self.pixels.ready.eq(1)
                        with m.If(self.pixels.valid):
                            m.d.sync += [pix_bits.eq(self.pixels.payload),
                                         pixel_count.eq(pixel_count + 1),
                                         pix_c.eq(nxt_c), pix_y.eq(nxt_y), pix_x.eq(nxt_x),
                                         pix_index.eq(nxt_index)]
                            self._advance_pixel(m, in_shape, nxt_c, nxt_y, nxt_x, nxt_index)
                    with m.If((pixel_count == plan.input_size) & (pix_bits == 0) & ~ex.busy):
                        m.d.sync += [pixel_count.eq(0), nxt_c.eq(0), nxt_y.eq(0), nxt_x.eq(0),
                                     nxt_index.eq(0)]
                        if dual and not n_ports:
                            hand_over()  # the image is all of this sample's input
                        else:
                            m.next = "ACC0" if n_ports else "SWEEP"
            for k in range(n_ports):
                with m.State(f"ACC{k}"):
                    if k + 1 < n_ports:
                        accept_events(k, lambda k=k: setattr(m, "next", f"ACC{k + 1}"))
                    else:
                        accept_events(k, after_accumulate)
            if dual:
                with m.State("WAIT"):
                    with m.If(~Array(full)[acc_bank]):
                        m.next = "INPUT" if has_input else "ACC0"
            with m.State("SWEEP"):
                if dual:
                    pass
                elif ilif and not readout:
                    def fired():
                        with m.If(fire_k == plan.bits_out - 1):
                            sample_done()
                        with m.Else():
                            m.d.sync += fire_k.eq(fire_k + 1)
                    sweep_issue(0, fired)
                elif readout:
                    sweep_issue(0, sample_done)
                else:
                    def swept():
                        with m.If(step == plan.steps - 1):
                            sample_done()
                        with m.Else():
                            m.d.sync += step.eq(step + 1)
                            m.next = "ACC0" if n_ports else "SWEEP"
                    sweep_issue(step == plan.steps - 1, swept)

        if dual:
            with m.FSM(name="fire"):
                with m.State("IDLE"):
                    with m.If(Array(full)[fire_bank]):
                        m.next = "SWEEP"
                with m.State("SWEEP"):
                    def fired_bank():
                        with m.If(fire_k == plan.bits_out - 1):
                            m.d.sync += [fire_k.eq(0), fire_bank.eq(~fire_bank)]
                            with m.If(fire_bank):
                                m.d.sync += full[1].eq(0)
                            with m.Else():
                                m.d.sync += full[0].eq(0)
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += fire_k.eq(fire_k + 1)
                    sweep_issue(0, fired_bank)

        m.d.sync += bubble.eq(sweep_now & op_end)
        m.d.comb += self.active.eq(op_valid | bubble)

        # -- stage 0 → 1: memory reads ----------------------------------------------------
        op_vaddr = Signal(range(max(2, banks * A)))
        m.d.comb += op_vaddr.eq(op_addr + op_bank * A if dual else op_addr)
        m.d.comb += [v_rd.addr.eq(op_vaddr), b_rd.addr.eq(op_addr)]
        if plan.has_current:
            m.d.comb += c_rd.addr.eq(op_addr)
        s1_cur = Signal()
        s1_addr = Signal.like(op_vaddr)  # membrane address, bank included
        s1_proj = Signal.like(op_proj)
        s1_count = Signal.like(op_count)
        s1_shift = Signal(4)
        s1_last_step = Signal()
        s1_fire_k = Signal.like(op_fire_k)
        s1_end = Signal()
        s1_g = Signal.like(op_g)
        s1_y, s1_x = Signal.like(op_y), Signal.like(op_x)
        m.d.sync += [s1_valid.eq(op_valid), s1_kind.eq(op_kind), s1_cur.eq(op_cur),
                     s1_addr.eq(op_vaddr), s1_proj.eq(op_proj), s1_count.eq(op_count),
                     s1_shift.eq(op_shift), s1_last_step.eq(op_last_step),
                     s1_fire_k.eq(op_fire_k), s1_end.eq(op_end), s1_g.eq(op_g),
                     s1_y.eq(op_y), s1_x.eq(op_x)]

        # -- stage 1: sums, with forwarding of the writes in flight ---------------------
        # A write is in flight for three cycles after its read: in stage 2 (an
        # accumulation's sum is final there; a sweep's is not, and the cycle of bubble
        # after every sweep keeps its address from being read then), in stage 3 (being
        # written) and stage 4 (committed last cycle, unseen by a read issued then).
        cshape = data.ArrayLayout(signed(plan.cbits), P)
        wide = data.ArrayLayout(signed(plan.vbits + 1), P)
        s2_addr, s3_addr, s4_addr = (Signal.like(s1_addr, name=f"s{i}_addr")
                                     for i in (2, 3, 4))
        s2_vw, s3_vw, s4_vw = Signal(), Signal(), Signal()
        s2_cw, s3_cw, s4_cw = Signal(), Signal(), Signal()
        s2_val = Signal(wide)
        s3_v, s4_v = Signal(vshape), Signal(vshape)
        s2_c, s3_c, s4_c = Signal(cshape), Signal(cshape), Signal(cshape)

        def forwarded(read_data, shape, writes):
            out = Signal(shape)
            m.d.comb += out.eq(read_data)
            for hit, value in writes:  # oldest first: the newest write wins
                with m.If(hit):
                    m.d.comb += [out[p].eq(value[p]) for p in range(P)]
            return out

        def at(addr):
            return addr == s1_addr

        v_now = forwarded(v_rd.data, vshape,
                          [(s4_vw & at(s4_addr), s4_v), (s3_vw & at(s3_addr), s3_v),
                           (s2_vw & (s2_kind == ACC) & at(s2_addr), s2_val)])
        c_now = forwarded(c_rd.data, cshape,
                          [(s4_cw & at(s4_addr), s4_c), (s3_cw & at(s3_addr), s3_c),
                           (s2_cw & at(s2_addr), s2_c)]) if plan.has_current else None
        w_now = Signal(data.ArrayLayout(signed(16), P))
        for k, rd in enumerate(w_rd):
            with m.If(s1_proj == k):
                m.d.comb += [w_now[p].eq(rd.data[p]) for p in range(P)]

        theta = pop.threshold
        multi = any(p.max_count > 1 for p in plan.projections)
        val = Signal(wide)  # accumulation: the new sum; sweep: what the fire rule reads
        for p in range(P):
            base = Mux(s1_cur, c_now[p], v_now[p]) if plan.has_current else v_now[p]
            # Counts above 1 only come from group neurons; s·W is a few shifted adds (no
            # multiplier, so no DSP block is spent on a 2- or 3-bit factor).
            weight = w_now[p]
            if multi:
                weight = sum(Mux(s1_count[k], w_now[p] << k, 0)
                             for k in range(len(s1_count)))
            pre = v_now[p] + b_rd.data[p]
            if plan.has_current:
                pre = pre + c_now[p]
            if pop.kind == "ilif":
                # The first fire step adds bias and offset and clamps to 2^T·Θ − 1.
                top = 2**plan.bits_out * theta - 1
                pre = Mux(s1_fire_k == 0, Mux(pre > top, top, pre), v_now[p])
            with m.If(s1_kind == ACC):
                m.d.comb += val[p].eq(base + (weight << s1_shift))
            with m.Else():
                m.d.comb += val[p].eq(pre)

        acc_current = (s1_kind == ACC) & s1_cur
        s2_last_step = Signal()
        s2_fire_k = Signal.like(s1_fire_k)
        s2_end = Signal()
        s2_g, s2_y, s2_x = Signal.like(s1_g), Signal.like(s1_y), Signal.like(s1_x)
        s2_laddr = Signal(range(max(2, A)))
        m.d.sync += [s2_valid.eq(s1_valid), s2_kind.eq(s1_kind), s2_addr.eq(s1_addr),
                     s2_val.eq(val), s2_vw.eq(s1_valid & ~acc_current),
                     s2_last_step.eq(s1_last_step), s2_fire_k.eq(s1_fire_k),
                     s2_end.eq(s1_end), s2_g.eq(s1_g), s2_y.eq(s1_y), s2_x.eq(s1_x),
                     s2_laddr.eq(s1_addr if not dual else 0)]
        if plan.has_current:
            # The last sweep of a sample clears the current for the next one.
            m.d.sync += s2_cw.eq(s1_valid & (acc_current | ((s1_kind == SWEEP) &
                                                            s1_last_step)))
            for p in range(P):
                m.d.sync += s2_c[p].eq(Mux(s1_kind == ACC, val[p], 0))

        # -- stage 2: the neuron rule ----------------------------------------------------
        result = Signal(vshape)
        if readout:
            out_vals = Signal(data.ArrayLayout(signed(plan.vbits), P))
        else:
            out_counts = Signal(data.ArrayLayout(self.o.payload.count.shape(), P))
        for p in range(P):
            r = s2_val[p]
            with m.If(s2_kind == ACC):
                m.d.comb += result[p].eq(r)
            with m.Else():
                if readout:
                    m.d.comb += [out_vals[p].eq(r), result[p].eq(0)]
                elif pop.kind == "ilif":
                    weight = Array(Const(theta * 2 ** (plan.bits_out - 1 - k),
                                         unsigned(plan.vbits))
                                   for k in range(plan.bits_out))[s2_fire_k]
                    fire = r >= weight
                    m.d.comb += out_counts[p].eq(fire)
                    with m.If(s2_fire_k == plan.bits_out - 1):
                        m.d.comb += result[p].eq(0)
                    with m.Else():
                        m.d.comb += result[p].eq(r - Mux(fire, weight, 0))
                else:
                    tau = pop.group_size
                    # τ member neurons with thresholds Θ, 2Θ, …, τΘ.
                    spikes = sum(r >= (i * theta) for i in range(1, tau + 1))
                    s = Signal(range(tau + 1), name=f"spikes{p}")
                    m.d.comb += [s.eq(spikes), out_counts[p].eq(s)]
                    reset = Array(Const(i * theta, unsigned(bits_for(tau * theta)))
                                  for i in range(tau + 1))[s]
                    m.d.comb += result[p].eq(Mux(s2_last_step, pop.v0, r - reset))

        # -- stage 3: write back and queue the spikes -----------------------------------------
        m.d.sync += [s3_valid.eq(s2_valid), s3_kind.eq(s2_kind), s3_addr.eq(s2_addr),
                     s3_v.eq(result), s3_vw.eq(s2_vw), s3_cw.eq(s2_cw), s3_c.eq(s2_c),
                     s4_addr.eq(s3_addr), s4_v.eq(s3_v), s4_vw.eq(s3_vw), s4_cw.eq(s3_cw),
                     s4_c.eq(s3_c)]
        m.d.comb += [v_wr.addr.eq(s3_addr), v_wr.data.eq(s3_v),
                     v_wr.en.eq(Mux(s3_vw, (1 << P) - 1, 0))]
        if plan.has_current:
            m.d.comb += [c_wr.addr.eq(s3_addr), c_wr.data.eq(s3_c),
                         c_wr.en.eq(Mux(s3_cw, (1 << P) - 1, 0))]
        entry = Signal(group)
        s3_entry = Signal(group)
        s3_push = Signal()
        if readout:
            m.d.comb += [entry.values.eq(out_vals), entry.addr.eq(s2_laddr)]
            m.d.sync += [s3_entry.eq(entry), s3_push.eq(s2_valid & (s2_kind == SWEEP))]
        else:
            m.d.comb += [entry.counts.eq(out_counts), entry.g.eq(s2_g), entry.y.eq(s2_y),
                         entry.x.eq(s2_x), entry.end.eq(s2_end)]
            any_spike = Signal()
            m.d.comb += any_spike.eq(out_counts.as_value() != 0)
            m.d.sync += [s3_entry.eq(entry),
                         s3_push.eq(s2_valid & (s2_kind == SWEEP) & (any_spike | s2_end))]
        m.d.comb += [queue.w_data.eq(s3_entry), queue.w_en.eq(s3_push)]

        # -- output: serialize the lanes of the queued groups ---------------------------------
        head = data.View(group, queue.r_data)
        done = Signal(P)
        if readout:
            self._emit_readout(m, plan, queue, head, done)
        else:
            self._emit_events(m, plan, queue, head, done)
        return m

    @staticmethod
    def _advance_pixel(m, in_shape, pix_c, pix_y, pix_x, pix_index):
        if len(in_shape) == 3:
            _, h, w = in_shape
            with m.If(pix_x == w - 1):
                m.d.sync += pix_x.eq(0)
                with m.If(pix_y == h - 1):
                    m.d.sync += [pix_y.eq(0), pix_c.eq(pix_c + 1)]
                with m.Else():
                    m.d.sync += pix_y.eq(pix_y + 1)
            with m.Else():
                m.d.sync += pix_x.eq(pix_x + 1)
        else:
            m.d.sync += pix_index.eq(pix_index + 1)

    def _emit_events(self, m, plan, queue, head, done):
        P = plan.lanes
        pending = Signal(P)
        m.d.comb += pending.eq(Const(0, P))
        for p in range(P):
            m.d.comb += pending[p].eq((head.counts[p] != 0) & ~done[p])
        lane = Signal(range(max(2, P)))
        for p in reversed(range(P)):
            with m.If(pending[p]):
                m.d.comb += lane.eq(p)
        payload = self.o.payload
        c_full = head.g * P + lane
        if plan.spatial:
            m.d.comb += [payload.c.eq(c_full), payload.y.eq(head.y), payload.x.eq(head.x)]
        else:
            m.d.comb += payload.index.eq(c_full)
        counts = Array(head.counts[p] for p in range(P))
        with m.If(queue.r_rdy):
            with m.If(pending != 0):
                m.d.comb += [self.o.valid.eq(1), payload.count.eq(counts[lane])]
                with m.If(self.o.ready):
                    only = (pending & (pending - 1)) == 0
                    with m.If(only & ~head.end):
                        m.d.comb += queue.r_en.eq(1)
                        m.d.sync += done.eq(0)
                    with m.Else():
                        m.d.sync += done.eq(done | (Const(1, P) << lane))
            with m.Else():
                # Every spike of the group is out; an end-of-step group ends the step.
                m.d.comb += [self.o.valid.eq(1), payload.end.eq(1)]
                with m.If(self.o.ready):
                    m.d.comb += queue.r_en.eq(1)
                    m.d.sync += done.eq(0)

    def _emit_readout(self, m, plan, queue, head, done):
        P = plan.lanes
        n = plan.pop.size
        lane = Signal(range(max(2, P)))
        for p in reversed(range(P)):
            with m.If(~done[p]):
                m.d.comb += lane.eq(p)
        index = Signal(range(max(2, plan.addresses * P)))
        m.d.comb += index.eq(head.addr * P + lane)
        last_lane = Signal()
        m.d.comb += last_lane.eq((lane == P - 1) | (index == n - 1))
        values = Array(head.values[p] for p in range(P))
        best_val = Signal(signed(plan.vbits))
        best_idx = Signal(range(max(2, n)))
        value = values[lane]
        better = (index == 0) | (value > best_val)
        payload = self.o.payload
        m.d.comb += [payload.index.eq(index), payload.value.eq(value),
                     payload.last.eq(index == n - 1),
                     payload.argmax.eq(Mux(better, index, best_idx))]
        with m.If(queue.r_rdy):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                with m.If(better):
                    m.d.sync += [best_val.eq(value), best_idx.eq(index)]
                with m.If(last_lane):
                    m.d.comb += queue.r_en.eq(1)
                    m.d.sync += done.eq(0)
                with m.Else():
                    m.d.sync += done.eq(done | (Const(1, P) << lane))
