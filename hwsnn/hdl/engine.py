"""Layer engine: one population of integer neurons, event-driven, with P lanes.

The engine runs the QNet semantics of its population (docs/qnet.md) sample after sample:

- **input stage** (a projection from the image): every pixel code is split into its set
  bits; bit b of pixel j is an event that adds ``W[:, j] << b`` (adders only). For GN the
  sum is the input current, kept in its own RAM and added at every step; for ILIF it is
  the accumulation of the 8 input bit-planes. With ``input_lanes`` M, a GN/IF population
  with a dense projection from the image computes its input current with multipliers
  instead, M neurons per non-zero pixel and cycle (``hdl.inputmac``).
- **accumulate**: an input event (neuron j, count s) adds ``s·W[:, j]`` (ILIF: the bit of
  plane t adds ``W[:, j] << (T_in − 1 − t)``, which is the Horner sum ``V ← 2V + W·bit``)
  to every membrane it reaches: ceil(N/P) cycles for a dense projection, ceil(C/P) per
  reached output position for a convolution.
- **fire sweep** at the end of a step: ceil(N/P) cycles apply the neuron rule to all
  membranes (GN: τ comparators against Θ, 2Θ, …, τΘ and a soft reset; ILIF: one quotient
  bit of a restoring division per step; readout: report), and emit the spikes.

Every operation is one pass through an eight-stage pipeline that never stalls: weight
read → weight term → membrane, bias, current read → one sum → neuron rule (two stages) →
write back; results still in flight are forwarded to a read of the same address, so
events to one neuron can follow each other on consecutive cycles (the stages are listed
in ``LayerEngine.elaborate``; every path is a few LUT levels and one carry chain). Spikes leave
through a small queue of lane groups; the sweep only issues when the queue has room, so
back-pressure on the output never loses a spike, and the input is simply not accepted
while the engine is busy.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..qnet import QNet
from .buffers import RegisteredFIFO, SkidBuffer
from .events import bits_for, const_mul, event_signature, pixel_signature, readout_signature
from .inputmac import InputMac
from .plan import EnginePlan, ProjectionPlan
from .store import WeightStore, write_signature

ACC, SWEEP = 0, 1
STAGES = 9  # pipeline registers st[0..8] (see LayerEngine.elaborate)
WRITE = 7  # the stage that writes back
FORWARD = 5  # operations ahead whose writes a read misses


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
        last_g = Signal()  # registered: g == g_max − 1
        m.d.comb += [self.op_valid.eq(busy), self.op_count.eq(count), self.op_shift.eq(shift),
                     self.busy.eq(busy)]
        # The ROM and membrane addresses are counters, stepped as the operation advances
        # (no multiplier between the event and the memories).
        addr = Signal.like(self.op_addr)
        waddr = Signal.like(self.op_waddr)
        m.d.comb += [self.op_addr.eq(addr), self.op_waddr.eq(waddr)]
        if p.kind == "dense":
            # Source neuron j (the flat index of a spatial source) selects the weight row.
            last = last_g
            with m.If(self.load):
                if len(p.src_shape) == 3:
                    _, h, w = p.src_shape
                    flat = (const_mul(self.ev_c, h * w) + const_mul(self.ev_y, w) + self.ev_x)
                else:
                    flat = self.ev_index
                m.d.sync += [waddr.eq(const_mul(flat, g_max)), addr.eq(0), count.eq(self.ev_count),
                             shift.eq(self.ev_shift), g.eq(0), last_g.eq(g_max == 1),
                             busy.eq(1)]
            with m.Elif(busy & self.en):
                m.d.sync += [g.eq(g + 1), addr.eq(addr + 1), waddr.eq(waddr + 1),
                             last_g.eq(g == g_max - 2)]
                with m.If(last):
                    m.d.sync += busy.eq(0)
        else:
            # An event at (c, y, x) reaches outputs oy in [oy0, oy0 + ny), ox in
            # [ox0, ox0 + nx) through kernel tap (ky, kx) = (y + pad − oy·s, x + pad − ox·s).
            # Membrane address (oy·W + ox)·G + g, ROM address ((c·k + ky)·k + kx)·G + g: both
            # step by one along g, and by constants from tables when ox or oy moves on.
            q = p.proj
            k, s, pad = q.kernel, q.stride, q.padding
            G, W = g_max, e.width
            yr, xr = e.conv_ranges(p, 1), e.conv_ranges(p, 2)

            def table(values):
                lo, hi = min(values + [0]), max(values + [0])
                return Array(Const(v, signed(max(lo.bit_length(), hi.bit_length()) + 1))
                             for v in values)

            y0_addr = table([lo * W * G for lo, _ in yr])
            x0_addr = table([lo * G for lo, _ in xr])
            y0_w = table([(y + pad - lo * s) * k * G for y, (lo, _) in enumerate(yr)])
            x0_w = table([(x + pad - lo * s) * G for x, (lo, _) in enumerate(xr)])
            # When ox moves on: +1 (g wraps); ROM: kx − s. When oy moves on: back to ox0.
            row_step = table([(W - n) * G + 1 for _, n in xr])
            wrow_step = table([(s * (n - 1) - s * k) * G - (G - 1) for _, n in xr])
            col_wstep = -(G - 1) - s * G
            y_n = Array(Const(n, range(e.height + 2)) for _, n in yr)
            x_n = Array(Const(n, range(e.width + 2)) for _, n in xr)
            xs = Signal(range(e.width + 2))  # outputs left in this row, after this one
            ys = Signal(range(e.height + 2))  # rows left, after this one
            xn = Signal(range(e.width + 2))  # outputs per row
            r_step = Signal.like(row_step[0])
            w_step = Signal.like(wrow_step[0])
            last_x, last_y = Signal(), Signal()  # registered: xs == 0, ys == 0
            last = last_g & last_x & last_y
            with m.If(self.load):
                ny, nx = y_n[self.ev_y], x_n[self.ev_x]
                m.d.sync += [count.eq(self.ev_count), shift.eq(self.ev_shift), g.eq(0),
                             addr.eq(y0_addr[self.ev_y] + x0_addr[self.ev_x]),
                             waddr.eq(const_mul(self.ev_c, k * k * G) + y0_w[self.ev_y]
                                      + x0_w[self.ev_x]),
                             xs.eq(nx - 1), ys.eq(ny - 1), xn.eq(nx - 1),
                             last_g.eq(G == 1), last_x.eq(nx == 1), last_y.eq(ny == 1),
                             r_step.eq(row_step[self.ev_x]), w_step.eq(wrow_step[self.ev_x]),
                             busy.eq((ny != 0) & (nx != 0))]
            with m.Elif(busy & self.en):
                with m.If(~last_g):
                    m.d.sync += [g.eq(g + 1), addr.eq(addr + 1), waddr.eq(waddr + 1),
                                 last_g.eq(g == G - 2)]
                with m.Else():
                    m.d.sync += [g.eq(0), last_g.eq(G == 1)]
                    with m.If(~last_x):
                        m.d.sync += [xs.eq(xs - 1), addr.eq(addr + 1),
                                     waddr.eq(waddr + col_wstep), last_x.eq(xs == 1)]
                    with m.Else():
                        m.d.sync += [xs.eq(xn), addr.eq(addr + r_step),
                                     waddr.eq(waddr + w_step), last_x.eq(xn == 0)]
                        with m.If(~last_y):
                            m.d.sync += [ys.eq(ys - 1), last_y.eq(ys == 1)]
                        with m.Else():
                            m.d.sync += busy.eq(0)
        m.d.comb += self.ready.eq(~busy | (last & self.en))
        return m


class _StorePort:
    """A ``WeightStore`` seen like a ROM read port: ``addr`` in, ``data`` (lanes) out."""

    def __init__(self, store: WeightStore, layout):
        self.addr = store.r_addr
        self.data = data.View(layout, store.r_data)


def _position_counter(m, sizes, *, step, restart):
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


def queue_layout(plan: EnginePlan) -> data.StructLayout:
    """One entry of the output queue: a lane group's values (readout) or spike counts
    with the group's position and the end-of-step flag."""
    if plan.pop.kind == "readout":
        return data.StructLayout({"values": data.ArrayLayout(signed(plan.vbits), plan.lanes),
                                  "addr": range(max(2, plan.addresses))})
    return data.StructLayout({"counts": data.ArrayLayout(unsigned(bits_for(plan.out_count)),
                                                         plan.lanes),
                              "g": range(max(2, plan.groups)),
                              "y": range(max(2, plan.height)),
                              "x": range(max(2, plan.width)),
                              "end": 1})


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
                 queue_depth: int | None = None, loadable=(), input_lanes: int = 0):
        self.plan = plan = EnginePlan(net, population, lanes, input_lanes)
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
            p = plan.projections[k]
            members[f"load{k}"] = In(write_signature(
                max(1, len(p.init)), plan.word_lanes(k) * p.proj.weight_bits))
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
            shape=data.ArrayLayout(signed(plan.bbits), P), depth=len(plan.bias_rom_words),
            init=plan.bias_rom_words)
        b_rd = bmem.read_port()
        if plan.has_current:
            m.submodules.cmem = cmem = memory.Memory(
                shape=data.ArrayLayout(signed(plan.cbits), P), depth=A, init=plan.bias_words)
            c_rd, c_wr = cmem.read_port(), cmem.write_port()
        w_rd = []
        for k, p in enumerate(plan.projections):
            wbits = p.proj.weight_bits
            layout = data.ArrayLayout(signed(wbits), plan.word_lanes(k))
            if k in self.loadable:
                m.submodules[f"wstore{k}"] = ws = WeightStore(max(1, len(p.init)),
                                                              plan.word_lanes(k) * wbits)
                wiring.connect(m, wiring.flipped(getattr(self, f"load{k}")), ws.w)
                w_rd.append(_StorePort(ws, layout))
                continue
            rom = memory.Memory(shape=layout, depth=max(1, len(p.init)), init=p.init)
            m.submodules[f"wrom{k}"] = rom
            w_rd.append(rom.read_port())

        # -- event expanders ----------------------------------------------------------------
        # (none for a projection that the multiply-accumulate input stage reads)
        mac = bool(plan.mac_lanes)
        expanders = []
        for k, p in enumerate(plan.projections):
            if mac and p.is_input:
                expanders.append(None)
                continue
            ex = _Expander(plan, p)
            m.submodules[f"expand{k}"] = ex
            expanders.append(ex)

        # -- issue stage ------------------------------------------------------------------------
        # The operation chosen this cycle (``issue``) is registered into ``st[0]`` and then
        # moves one stage per cycle down a stall-free pipeline (``st[n]``: n cycles later).
        n_proj = len(plan.projections)
        rom_depth = max(max(1, len(p.init)) for p in plan.projections)
        opl = data.StructLayout({
            "valid": 1, "kind": 1,
            "cur": 1,  # an accumulation into the input-current RAM
            "bank": 1, "addr": range(max(2, A)), "waddr": range(max(2, rom_depth)),
            "proj": range(max(2, n_proj)),
            "count": bits_for(max(p.max_count for p in plan.projections)), "shift": 4,
            "last_step": 1,  # GN sweep: reset V to V0 after firing
            "fire_k": range(max(2, plan.bits_out)),  # ILIF quotient bit
            "end": 1,  # last sweep operation of the step
            "bias_g": range(max(2, plan.groups)),  # a sweep's lane group (plan.bias_per_group)
        })
        issue = Signal(opl)
        op_valid, op_kind, op_cur, op_addr = issue.valid, issue.kind, issue.cur, issue.addr
        op_proj, op_count, op_shift = issue.proj, issue.count, issue.shift
        op_last_step, op_fire_k, op_end = issue.last_step, issue.fire_k, issue.end
        op_bank = issue.bank
        sweep_now = Signal()  # a sweep operation takes this cycle's issue slot
        acc_bank, fire_bank = Signal(), Signal()
        full = [Signal(name="full0"), Signal(name="full1")]  # bank accumulated, not fired
        # Two idle cycles after the last operation of every sweep: the fire rule's result
        # is only final in stage 7, so its address must not be read for the next two cycles
        # (see the forwarding below).
        bubble1, bubble = Signal(), Signal()  # the first idle cycle; either of the two
        # Sweeps and accumulations share the issue slot only in the two-bank ILIF engines;
        # elsewhere an expander is idle whenever a sweep runs.
        for ex in expanders:
            if ex is not None:
                m.d.comb += ex.en.eq(~sweep_now & ~bubble if dual else ~bubble)

        for k, ex in enumerate(expanders):
            if ex is None:
                continue
            with m.If(ex.op_valid & ~bubble):
                m.d.comb += [op_valid.eq(1), op_kind.eq(ACC), op_addr.eq(ex.op_addr),
                             op_bank.eq(acc_bank),
                             op_proj.eq(k), op_count.eq(ex.op_count), op_shift.eq(ex.op_shift),
                             op_cur.eq(1 if (plan.projections[k].is_input and plan.has_current)
                                       else 0),
                             issue.waddr.eq(ex.op_waddr)]

        # Lane groups waiting for the output; the sweep issues only with room for every
        # sweep operation in flight (credit), so nothing is ever dropped. ``used``
        # counts the groups in the queue and the sweep operations issued and not yet
        # pushed or dropped (stage 7); the credit is registered: room for two more a cycle
        # ago is room for one now.
        group = queue_layout(plan)
        m.submodules.queue = queue = RegisteredFIFO(width=group.size, depth=self.queue_depth)
        st = [Signal(opl, name=f"st{n}") for n in range(STAGES)]
        used = Signal(range(self.queue_depth + 3))  # queued groups and sweeps in flight
        dropped = Signal()  # a sweep operation without spikes leaves the pipeline
        m.d.sync += used.eq(used + sweep_now - dropped - (queue.r_en & queue.r_rdy))
        credit = Signal()
        m.d.sync += credit.eq(used <= self.queue_depth - 2)

        # Control: the step/plane counters and the phases.
        step = Signal(range(max(2, plan.steps + 1)))
        plane = Signal(range(max(2, plan.steps_in + 1)))
        sweep_addr = Signal(range(max(2, A)))
        sweep_last = Signal(init=A == 1)  # registered: sweep_addr == A − 1
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
                             op_last_step.eq(last_step), op_end.eq(sweep_last),
                             op_fire_k.eq(fire_k)]
                with m.If(sweep_last):
                    m.d.sync += [sweep_addr.eq(0), sweep_last.eq(A == 1)]
                    on_done()
                with m.Else():
                    m.d.sync += [sweep_addr.eq(sweep_addr + 1),
                                 sweep_last.eq(sweep_addr == A - 2)]

        def shift_for_plane():
            return Const(0, 4) if not ilif else (plan.steps_in - 1 - plane)[:4]

        def accept_events(k, next_state):
            """Feed port k's events to its expander until the end-of-step marker."""
            port, ex = ev_ports[k], ev_expanders[k]
            fields = port.payload
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

        # What each expander would load (it loads only when told to, in its state).
        for port, ex, pp in zip(ev_ports, ev_expanders, ev_plans, strict=True):
            fields = port.payload
            if len(pp.src_shape) == 3:
                m.d.comb += [ex.ev_c.eq(fields.c), ex.ev_y.eq(fields.y), ex.ev_x.eq(fields.x)]
            else:
                m.d.comb += ex.ev_index.eq(fields.index)
            m.d.comb += [ex.ev_count.eq(fields.count), ex.ev_shift.eq(shift_for_plane())]
        if has_input:
            # Pixels arrive through a skid buffer (a registered ready).
            m.submodules.pixel_skid = pskid = SkidBuffer(8)
            m.d.comb += [pskid.i_data.eq(self.pixels.payload),
                         pskid.i_valid.eq(self.pixels.valid),
                         self.pixels.ready.eq(pskid.i_ready)]
        if mac:
            m.submodules.input_mac = imac = InputMac(plan)
            m.d.comb += [imac.pix_valid.eq(pskid.o_valid), imac.pix_data.eq(pskid.o_data),
                         pskid.o_ready.eq(imac.pix_ready)]
            # The bias RAM's read port: the sweeps of an engine with an input current
            # add bias + current from the current RAM, so it is the input stage's.
            m.d.comb += [b_rd.addr.eq(imac.b_addr), imac.b_data.eq(b_rd.data)]
        elif has_input:
            ex = expanders[plan.input_index]
            # The held pixel's lowest set bit is the next event; flags say whether none or
            # one is left.
            pix_zero, pix_one = Signal(init=1), Signal()
            more_pixels = Signal(init=1)  # pixel_count < input size

            def hold_bits(value):
                m.d.sync += [pix_bits.eq(value), pix_zero.eq(value == 0),
                             pix_one.eq(reduce(operator.or_, [value == (1 << b)
                                                              for b in range(8)]))]

            # The held bits without the lowest set one (LUTs, no carry chain).
            below = [reduce(operator.or_, [pix_bits[i] for i in range(b)], Const(0, 1))
                     for b in range(8)]
            rest = Cat(*(pix_bits[b] & below[b] for b in range(8)))

            bit = Signal(3)
            for b in reversed(range(8)):
                with m.If(pix_bits[b]):
                    m.d.comb += bit.eq(b)
            if len(in_shape) == 3:
                m.d.comb += [ex.ev_c.eq(pix_c), ex.ev_y.eq(pix_y), ex.ev_x.eq(pix_x)]
            else:
                m.d.comb += ex.ev_index.eq(pix_index)
            m.d.comb += [ex.ev_count.eq(1), ex.ev_shift.eq(bit)]

        with m.FSM(init="INPUT" if has_input else ("ACC0" if n_ports else "SWEEP")):
            if mac:
                with m.State("INPUT"):
                    m.d.comb += imac.start.eq(1)
                    with m.If(imac.done):
                        m.next = "ACC0" if n_ports else "SWEEP"
            elif has_input:
                with m.State("INPUT"):
                    with m.If(~pix_zero & ex.ready):
                        m.d.comb += ex.load.eq(1)
                        hold_bits(rest)
                    # Take the next pixel once the held one has no bits left.
                    with m.If((pix_zero | (pix_one & ex.ready)) & more_pixels):
                        m.d.comb += pskid.o_ready.eq(1)
                        with m.If(pskid.o_valid):
                            hold_bits(pskid.o_data)
                            m.d.sync += [pixel_count.eq(pixel_count + 1),
                                         more_pixels.eq(pixel_count != plan.input_size - 1),
                                         pix_c.eq(nxt_c), pix_y.eq(nxt_y), pix_x.eq(nxt_x),
                                         pix_index.eq(nxt_index)]
                            self._advance_pixel(m, in_shape, nxt_c, nxt_y, nxt_x, nxt_index)
                    with m.If(~more_pixels & pix_zero & ~ex.busy):
                        m.d.sync += [pixel_count.eq(0), more_pixels.eq(1), nxt_c.eq(0),
                                     nxt_y.eq(0), nxt_x.eq(0), nxt_index.eq(0)]
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

        m.d.sync += [bubble1.eq(sweep_now & op_end), bubble.eq((sweep_now & op_end) | bubble1)]
        if plan.bias_per_group:  # the lane group of the sweep's address, for the bias ROM
            (sweep_g,) = _position_counter(m, (plan.groups,), step=sweep_now, restart=op_end)
            m.d.comb += issue.bias_g.eq(sweep_g)
        m.d.comb += self.active.eq(op_valid | bubble | (imac.active if mac else 0))

        # -- the pipeline -------------------------------------------------------------------
        # The operation in st[n] is in cycle n after its issue:
        #   0  weight ROM read                     4  the sum (accumulation), or the fire
        #   1  weights registered                     rule's input (sweep)
        #   2  weight × count, or << shift;        5  neuron rule: comparisons
        #      membrane/bias/current RAM read      6  neuron rule: result and spikes
        #   3  the projection's term chosen; RAM   7  write back; spikes queued
        #      data registered; forwarding hits
        # Nothing stalls once issued, so an operation n cycles older is n stages ahead.
        m.d.sync += st[0].eq(issue)
        for n in range(STAGES - 1):
            m.d.sync += st[n + 1].eq(st[n])

        def vaddr(s):
            return s.addr + s.bank * A if dual else s.addr

        def same_address(x, y):
            return (x.addr == y.addr) & (x.bank == y.bank) if dual else x.addr == y.addr

        def writes_v(s):
            return s.valid & ~((s.kind == ACC) & s.cur)

        def writes_c(s):
            # (The multiply-accumulate input stage writes the whole current every sample;
            # the sweeps need not restore the bias.)
            if mac:
                return Const(0, 1)
            return s.valid & (((s.kind == ACC) & s.cur) | ((s.kind == SWEEP) & s.last_step))

        # Weight terms: s·W as shifted adds (counts above 1 only come from group neurons;
        # no multiplier, so no DSP block is spent on a 2- or 3-bit factor), W << b for the
        # bit-events of pixels and ILIF planes.
        for k, rd in enumerate(w_rd):
            if mac and plan.projections[k].is_input:
                m.d.comb += [rd.addr.eq(imac.w_addr), imac.w_data.eq(rd.data)]
            else:
                m.d.comb += rd.addr.eq(st[0].waddr)
        w1 = [Signal.like(rd.data, name=f"w1_{k}") for k, rd in enumerate(w_rd)]
        m.d.sync += [w1[k].eq(rd.data) for k, rd in enumerate(w_rd)]
        terms, abits = [], 1
        for k, pp in enumerate(plan.projections):
            wbits = pp.proj.weight_bits
            if mac and pp.is_input:
                terms.append(None)
                continue
            if pp.max_count > 1:
                cb = bits_for(pp.max_count)
                pairs = []
                for j in range(0, cb, 2):
                    bits = [b for b in (j, j + 1) if b < cb]
                    shape = signed(wbits + max(bits) + 2)
                    t = [Signal(shape, name=f"w2_{k}_{j}_{p}") for p in range(P)]
                    for p in range(P):
                        m.d.sync += t[p].eq(sum(Mux(st[2].count[b], w1[k][p] << b, 0)
                                                for b in bits))
                    pairs.append(t)
                terms.append([sum(t[p] for t in pairs) for p in range(P)])
                abits = max(abits, wbits + cb + 1 + pp.proj.weight_shift)
            else:
                max_shift = 7 if pp.is_input else (plan.steps_in - 1 if ilif else 0)
                sbits = bits_for(max_shift) if max_shift else 0
                shape = signed(wbits + max_shift)
                t = [Signal(shape, name=f"w2_{k}_{p}") for p in range(P)]
                for p in range(P):
                    m.d.sync += t[p].eq(w1[k][p] << st[2].shift[:sbits] if sbits
                                        else w1[k][p])
                terms.append(t)
                abits = max(abits, wbits + max_shift + pp.proj.weight_shift)
        addend = Signal(data.ArrayLayout(signed(abits), P))
        for k, t in enumerate(terms):
            if t is None:
                continue
            shift = plan.projections[k].proj.weight_shift  # the ROM holds weight >> shift
            with m.If(st[3].proj == k):
                m.d.sync += [addend[p].eq(t[p] << shift) for p in range(P)]

        # Membrane, bias and current: read in cycle 2, registered in cycle 3.
        m.d.comb += v_rd.addr.eq(vaddr(st[2]))
        if not mac:  # (only sweeps add the bias)
            m.d.comb += b_rd.addr.eq(st[2].bias_g if plan.bias_per_group else st[2].addr)
        v_raw = Signal(vshape)
        b_raw = Signal(data.ArrayLayout(signed(plan.bbits), P))
        m.d.sync += [v_raw.eq(v_rd.data), b_raw.eq(b_rd.data)]
        cshape = data.ArrayLayout(signed(plan.cbits), P)
        c_raw = Signal(cshape)
        if plan.has_current:
            m.d.comb += c_rd.addr.eq(st[2].addr)
            m.d.sync += c_raw.eq(c_rd.data)

        # Forwarding: a read in cycle 2 misses the writes of the five operations ahead
        # of it (written in their cycle 7, at least one cycle after it). In cycles 2 and 3
        # their addresses are compared with its own, and each operand of the cycle-4 sum
        # gets a one-hot choice of its source (a registered select: an AND-OR in cycle 4, then
        # one adder). An accumulation's value is final from stage 5 on, a sweep's from
        # stage 7 on: the two idle cycles after every sweep keep a sweep's address from
        # being read by the two operations behind it.
        opw = max(plan.vbits, plan.cbits) + 1
        wide = data.ArrayLayout(signed(opw), P)
        val5, r6 = Signal(wide), Signal(wide)
        res7, res8, res9 = (Signal(vshape, name=f"res{n}") for n in (7, 8, 9))
        cres7, cres8, cres9 = (Signal(cshape, name=f"cres{n}") for n in (7, 8, 9))
        b5, b6 = Signal.like(b_raw), Signal.like(b_raw)
        m.d.sync += [res8.eq(res7), res9.eq(res8), cres8.eq(cres7), cres9.eq(cres8),
                     b5.eq(b_raw), b6.eq(b5)]
        # The address comparisons already happen in cycle 2 (the distances stay).
        s3 = st[3]
        hit_v = [Signal(name=f"hit_v{d}") for d in range(1, FORWARD + 1)]
        hit_c = [Signal(name=f"hit_c{d}") for d in range(1, FORWARD + 1)]
        for d in range(1, FORWARD + 1):
            y = st[2 + d]
            ok = same_address(st[2], y)
            if d <= 2:
                ok = ok & (y.kind == ACC)
            m.d.sync += [hit_v[d - 1].eq(ok & writes_v(y)), hit_c[d - 1].eq(ok & writes_c(y))]

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
        fwd_v = newest(hit_v)  # val5, r6, res7, res8, res9, raw
        fwd_c = newest(hit_c)  # val5, r6, cres7, cres8, cres9, raw
        acc = s3.kind == ACC
        into_c = acc & s3.cur
        x_sources = [val5, r6, res7, res8, res9, v_raw, cres7, cres8, cres9, c_raw]
        x_select = [(fwd_v[i] & ~into_c) | (fwd_c[i] & into_c) for i in range(2)]  # either
        x_select += [fwd_v[i] & ~into_c for i in range(2, 6)]
        x_select += [fwd_c[i] & into_c for i in range(2, 6)]
        y_sources = [addend, b_raw, val5, r6, cres7, cres8, cres9, c_raw]
        if plan.has_current:
            y_select = [acc, Const(0, 1)] + [fwd_c[i] & ~acc for i in range(6)]
        else:
            sweep_bias = ~acc & (s3.fire_k == 0) if ilif else ~acc
            y_select = [acc, sweep_bias] + [Const(0, 1)] * 6
        x_sel, y_sel = Signal(len(x_sources)), Signal(len(y_sources))
        m.d.sync += [x_sel.eq(Cat(*x_select)), y_sel.eq(Cat(*y_select))]

        # -- cycle 4: sums ----------------------------------------------------------------
        # The current RAM holds bias + input current (its initial value, and what the last
        # sweep of a sample writes back), so a sweep adds one term.
        for p in range(P):
            x = reduce(operator.or_, [Mux(x_sel[i], src[p], 0)
                                      for i, src in enumerate(x_sources)])
            y = reduce(operator.or_, [Mux(y_sel[i], src[p], 0)
                                      for i, src in enumerate(y_sources)])
            m.d.sync += val5[p].eq(x + y)

        # -- cycles 5 and 6: the neuron rule ---------------------------------------------------
        theta = pop.threshold
        s5, s6 = st[5], st[6]
        result = Signal(vshape)
        if readout:
            out_vals = Signal(data.ArrayLayout(signed(plan.vbits), P))
        else:
            out_counts = Signal(data.ArrayLayout(self.o.payload.count.shape(), P))
        for p in range(P):
            if pop.kind == "ilif":
                # The first fire step clamps V + bias + offset to 2^T·Θ − 1; every step
                # takes one quotient bit of a restoring division: fire if V ≥ Θ·2^(T−1−k).
                top = 2**plan.bits_out * theta - 1
                clamp = (s5.kind == SWEEP) & (s5.fire_k == 0) & (val5[p] > top)
                m.d.sync += r6[p].eq(Mux(clamp, top, val5[p]))
            else:
                m.d.sync += r6[p].eq(val5[p])
            if pop.kind == "gn":
                # τ member neurons with thresholds Θ, 2Θ, …, τΘ: the differences V − iΘ
                # (cycle 5) are both the comparisons and the soft-reset values.
                dshape = signed(plan.cmp_bits)
                diffs = [Signal(dshape, name=f"d{i}_{p}")
                         for i in range(1, pop.group_size + 1)]
                m.d.sync += [dv.eq(val5[p] - i * theta) for i, dv in enumerate(diffs, start=1)]
            r = r6[p]
            with m.If(s6.kind == ACC):
                m.d.comb += result[p].eq(r)
            with m.Else():
                if readout:
                    m.d.comb += [out_vals[p].eq(r), result[p].eq(0)]
                elif pop.kind == "ilif":
                    weight = Array(Const(theta * 2 ** (plan.bits_out - 1 - k))
                                   for k in range(plan.bits_out))[s6.fire_k]
                    diff = Signal(signed(plan.cmp_bits), name=f"diff{p}")
                    m.d.comb += diff.eq(r - weight)
                    fire = diff >= 0
                    m.d.comb += out_counts[p].eq(fire)
                    with m.If(s6.fire_k == plan.bits_out - 1):
                        m.d.comb += result[p].eq(0)
                    with m.Else():
                        m.d.comb += result[p].eq(Mux(fire, diff, r))
                else:
                    fires = [dv >= 0 for dv in diffs]
                    m.d.comb += out_counts[p].eq(sum(fires))
                    kept = Signal(vshape.elem_shape, name=f"kept{p}")
                    m.d.comb += kept.eq(r)
                    # A thermometer code: the highest member that fired wins.
                    for dv, f in zip(diffs, fires, strict=True):
                        with m.If(f):
                            m.d.comb += kept.eq(dv)
                    m.d.comb += result[p].eq(Mux(s6.last_step, pop.v0, kept))

        # -- cycle 7: write back and queue the spikes --------------------------------------
        s7 = st[WRITE]
        m.d.sync += res7.eq(result)
        if plan.has_current:
            for p in range(P):  # an accumulation's new current, or the sweep's bias
                m.d.sync += cres7[p].eq(Mux(s6.kind == ACC, r6[p], b6[p]))
        m.d.comb += [v_wr.addr.eq(vaddr(s7)), v_wr.data.eq(res7),
                     v_wr.en.eq(Mux(writes_v(s7), (1 << P) - 1, 0))]
        if mac:  # bias + current of P neurons from the input stage
            m.d.comb += [c_wr.addr.eq(imac.c_addr), c_wr.data.eq(imac.c_data),
                         c_wr.en.eq(Mux(imac.c_en, (1 << P) - 1, 0))]
        elif plan.has_current:
            m.d.comb += [c_wr.addr.eq(s7.addr), c_wr.data.eq(cres7),
                         c_wr.en.eq(Mux(writes_c(s7), (1 << P) - 1, 0))]
        entry = Signal(group)
        entry7 = Signal(group)
        push7 = Signal()
        sweeping = s6.valid & (s6.kind == SWEEP)
        written = Signal(group)  # what the queue takes
        m.d.comb += written.eq(entry7)
        if readout:
            m.d.comb += [entry.values.eq(out_vals), entry.addr.eq(s6.addr)]
            m.d.sync += [entry7.eq(entry), push7.eq(sweeping)]
        else:
            m.d.comb += [entry.counts.eq(out_counts), entry.end.eq(s6.end)]
            any_spike = Signal()
            m.d.comb += any_spike.eq(out_counts.as_value() != 0)
            m.d.sync += [entry7.eq(entry), push7.eq(sweeping & (any_spike | s6.end))]
            # The group's position (g, y, x) is counted in stage 7 rather than carried down
            # the pipeline: a sweep's operations reach it in address order.
            pos_g, pos_x, pos_y = _position_counter(
                m, (plan.groups, plan.width, plan.height),
                step=s7.valid & (s7.kind == SWEEP), restart=s7.end)
            m.d.comb += [written.g.eq(pos_g), written.y.eq(pos_y), written.x.eq(pos_x)]
        m.d.comb += [queue.w_data.eq(written), queue.w_en.eq(push7),
                     dropped.eq(s7.valid & (s7.kind == SWEEP) & ~push7)]

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
        # The last lane group of a population whose size is not a multiple of P has lanes
        # that belong to no neuron. They hold V0 with no bias and no input, so they fire
        # exactly when V0 ≥ Θ (possible in a QNet, e.g. from NIR or a calibration): their
        # spikes are never sent.
        real = plan.channels - (plan.groups - 1) * P  # lanes of the last group with neurons
        padding_fires = plan.kind == "gn" and real < P and plan.pop.v0 >= plan.pop.threshold
        pending = Signal(P)
        m.d.comb += pending.eq(Const(0, P))
        for p in range(P):
            sent = (head.counts[p] != 0) & ~done[p]
            if padding_fires and p >= real:
                sent = sent & (head.g != plan.groups - 1)
            m.d.comb += pending[p].eq(sent)
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
            if padding_fires:
                with m.Elif(~head.end):  # a group with spikes of padding lanes only
                    m.d.comb += queue.r_en.eq(1)
                    m.d.sync += done.eq(0)
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
        first = Signal(init=1)  # the first value of a sample
        # Each value takes two cycles: its comparison with the best so far is registered
        # first (a sample has few readout values; the argmax stays off the timing paths).
        compared, better = Signal(), Signal()
        payload = self.o.payload
        m.d.comb += [payload.index.eq(index), payload.value.eq(value),
                     payload.last.eq(index == n - 1),
                     payload.argmax.eq(Mux(better, index, best_idx))]
        with m.If(queue.r_rdy & ~compared):
            m.d.sync += [better.eq(first | (value > best_val)), compared.eq(1)]
        with m.If(queue.r_rdy & compared):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                m.d.sync += [first.eq(payload.last), compared.eq(0)]
                with m.If(better):
                    m.d.sync += [best_val.eq(value), best_idx.eq(index)]
                with m.If(last_lane):
                    m.d.comb += queue.r_en.eq(1)
                    m.d.sync += done.eq(0)
                with m.Else():
                    m.d.sync += done.eq(done | (Const(1, P) << lane))
