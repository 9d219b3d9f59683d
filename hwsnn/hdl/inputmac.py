"""The multiply-accumulate input stage of a layer engine (``input_lanes`` M > 0).

A group-neuron population with a dense projection from the image needs, once per sample,
its input current ``bias + W·x`` (x: the 8-bit pixel codes). The bit-event input stage of
``engine`` spends one pass over W's row per *set bit* of every pixel; this stage spends
one per *non-zero pixel* and computes M neurons at a time with M multipliers (the
UltraPlus SB_MAC16 blocks, the ECP5 MULT18X18D), output-stationary:

- pass 0 runs while the pixels arrive: every non-zero pixel (index j, code x) is kept in
  a list and multiplies weight word j·G_M (neurons 0..M−1) into M accumulators;
- passes g = 1 .. G_M − 1 read the list back and do the same for neurons g·M .. g·M+M−1;
- every pass starts with an operation that clears the accumulators and ends with one
  that hands them over; the M currents then go to the engine's current RAM, P lanes
  per cycle with the bias of those P neurons added (read from the engine's bias RAM,
  which the sweeps of such an engine do not need), while the next pass runs.

One operation per cycle, G_M·(non-zero pixels + 2) in all (the golden model's ideal
input cycles with ``input_lanes``). The pipeline: operation registered → weight read
→ weights registered (twice) → product registered → accumulate; a pass's last
operation finds its accumulators final one cycle later.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .events import PIXEL_BITS, const_mul, pixel_signature
from .plan import EnginePlan

DEPTH = 6  # operation registers mop[0..5]


def mac_memory_signature(plan: EnginePlan) -> wiring.Signature:
    """The input stage's side of the engine memories it shares (``hdl.datapath``):
    ``w_addr`` → ``w_data``, a weight read port of M lanes; ``b_addr`` → ``b_data``, a
    read port of the bias RAM (P lanes); ``c_en``, ``c_addr``, ``c_data``: writes of P
    lanes into the current RAM. Read data come one cycle after the address."""
    pp = plan.input_projection
    return wiring.Signature({
        "w_addr": Out(range(max(2, len(pp.init)))),
        "w_data": In(data.ArrayLayout(signed(pp.proj.weight_bits), plan.mac_lanes)),
        "b_addr": Out(range(max(2, plan.addresses))),
        "b_data": In(data.ArrayLayout(signed(plan.bbits), plan.lanes)),
        "c_en": Out(1), "c_addr": Out(range(max(2, plan.addresses))),
        "c_data": Out(data.ArrayLayout(signed(plan.cbits), plan.lanes)),
    })


class InputMac(wiring.Component):
    """Members: ``start`` (In, level): run one sample; ``done`` (Out): the currents of the
    sample are all written (one cycle); ``active`` (Out): an operation issues this cycle;
    ``pixels`` (In pixel stream): the pixels of the sample, in order; ``mem`` (Out,
    ``mac_memory_signature``): the engine's weight, bias and current memories."""

    def __init__(self, plan: EnginePlan):
        if not plan.mac_lanes:
            raise ValueError("the plan has no multiply-accumulate input stage")
        self.plan = plan
        pp = plan.input_projection
        self.M, self.G, self.P = plan.mac_lanes, plan.mac_groups, plan.lanes
        self.wbits = pp.proj.weight_bits
        super().__init__({"start": In(1), "done": Out(1), "active": Out(1),
                          "pixels": In(pixel_signature()),
                          "mem": Out(mac_memory_signature(plan))})

    def elaborate(self, platform):
        m = Module()
        plan, M, G, P = self.plan, self.M, self.G, self.P
        mem = self.mem
        n = plan.input_size
        cbits = plan.cbits
        pp_shift = plan.input_projection.proj.weight_shift  # the ROM holds weight >> shift
        words = max(2, n * G)

        # The non-zero pixels of the sample: index and code.
        entry = data.StructLayout({"j": range(max(2, n)), "code": PIXEL_BITS})
        m.submodules.nonzero = nz = memory.Memory(shape=entry, depth=n, init=[])
        nz_w, nz_r = nz.write_port(), nz.read_port()

        opl = data.StructLayout({"valid": 1, "first": 1, "last": 1, "waddr": range(words),
                                 "code": PIXEL_BITS, "g": range(max(2, G))})
        op = Signal(opl)
        mop = [Signal(opl, name=f"mop{i}") for i in range(DEPTH)]
        m.d.sync += mop[0].eq(op)
        m.d.sync += [mop[i + 1].eq(mop[i]) for i in range(DEPTH - 1)]
        m.d.comb += self.active.eq(op.valid)

        # -- datapath ------------------------------------------------------------------
        m.d.comb += mem.w_addr.eq(mop[0].waddr)
        # The weights are registered twice: a deep ROM's block RAMs are spread over the
        # chip and joined by a multiplexer (ECP5), which must not meet the multiplier.
        w2, w3 = Signal.like(mem.w_data), Signal.like(mem.w_data)
        m.d.sync += [w2.eq(mem.w_data), w3.eq(w2)]
        code = Cat(mop[3].code, Const(0, 1)).as_signed()  # 0..255 as a signed operand
        prod = [Signal(signed(self.wbits + PIXEL_BITS + 1), name=f"prod{lane}")
                for lane in range(M)]
        acc = [Signal(signed(cbits), name=f"acc{lane}") for lane in range(M)]
        for lane in range(M):
            m.d.sync += prod[lane].eq(w3[lane] * code)
            # (The first and last operations of a pass never add their product: the first
            # one may run before the weights are loaded.)
            with m.If(mop[4].valid & mop[4].first):
                m.d.sync += acc[lane].eq(0)
            with m.Elif(mop[4].valid & ~mop[4].last):
                m.d.sync += acc[lane].eq(acc[lane] + (prod[lane] << pp_shift))

        # Hand-over: the accumulators shift out P lanes per cycle, at consecutive addresses
        # (pass g has addresses g·M/P ..; the passes run in order); the bias of the
        # address is read meanwhile and added in the next cycle, as the RAM is written.
        chunks = M // P
        hold = [Signal(signed(cbits), name=f"hold{lane}") for lane in range(M)]
        dumping = Signal()
        left = Signal(range(max(2, chunks)))
        c_addr = Signal(range(max(2, G * chunks + 1)))
        pending = Signal()  # a pass's last operation issued, its currents not all written
        with m.If(mop[5].valid & mop[5].last):
            m.d.sync += [hold[lane].eq(acc[lane]) for lane in range(M)]
            m.d.sync += [dumping.eq(1), left.eq(chunks - 1)]
        with m.Elif(dumping):
            m.d.sync += [hold[lane].eq(hold[lane + P]) for lane in range(M - P)]
            m.d.sync += [c_addr.eq(c_addr + 1), left.eq(left - 1)]
            with m.If(left == 0):
                m.d.sync += [dumping.eq(0), pending.eq(0)]
        write, w_addr = Signal(), Signal.like(mem.c_addr)
        w_cur = [Signal(signed(cbits), name=f"cur{lane}") for lane in range(P)]
        m.d.comb += mem.b_addr.eq(c_addr)
        m.d.sync += [write.eq(dumping & (c_addr < plan.addresses)), w_addr.eq(c_addr)]
        m.d.sync += [w_cur[lane].eq(hold[lane]) for lane in range(P)]
        m.d.comb += [mem.c_en.eq(write), mem.c_addr.eq(w_addr)]
        m.d.comb += [mem.c_data[lane].eq(w_cur[lane] + mem.b_data[lane])
                     for lane in range(P)]

        # -- control -------------------------------------------------------------------
        g = Signal(range(max(2, G)))
        idx = Signal(range(n + 1))  # pixels received (pass 0) or entries read
        jg = Signal(range(words + G))  # idx · G_M
        nnz = Signal(range(n + 1))
        # A list entry on the read port (fv1); its weight row j·G_M + g registered (fv2).
        fv1, fv2 = Signal(), Signal()
        fetch_g = Signal.like(g)
        f_waddr, f_code = Signal.like(op.waddr), Signal(PIXEL_BITS)
        m.d.sync += [fv2.eq(fv1), f_code.eq(nz_r.data.code),
                     f_waddr.eq(const_mul(nz_r.data.j, G) + fetch_g)]
        with m.If(fv2):  # a fetched entry becomes this cycle's operation
            m.d.comb += [op.valid.eq(1), op.waddr.eq(f_waddr), op.code.eq(f_code),
                         op.g.eq(fetch_g)]
        m.d.sync += fv1.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [g.eq(0), nnz.eq(0), c_addr.eq(0)]
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                m.d.comb += [op.valid.eq(1), op.first.eq(1), op.waddr.eq(g), op.g.eq(g)]
                m.d.sync += [idx.eq(0), jg.eq(0), fetch_g.eq(g)]
                with m.If(g == 0):
                    m.next = "RECEIVE"
                with m.Else():
                    m.next = "FETCH"
            with m.State("RECEIVE"):
                m.d.comb += self.pixels.ready.eq(1)
                with m.If(self.pixels.valid):
                    m.d.sync += [idx.eq(idx + 1), jg.eq(jg + G)]
                    with m.If(self.pixels.payload != 0):
                        pix = self.pixels.payload
                        m.d.comb += [op.valid.eq(1), op.waddr.eq(jg), op.code.eq(pix),
                                     nz_w.addr.eq(nnz), nz_w.data.j.eq(idx),
                                     nz_w.data.code.eq(pix), nz_w.en.eq(1)]
                        m.d.sync += nnz.eq(nnz + 1)
                    with m.If(idx == n - 1):
                        m.next = "LAST"
            with m.State("FETCH"):
                with m.If(idx != nnz):
                    m.d.comb += nz_r.addr.eq(idx)
                    m.d.sync += [idx.eq(idx + 1), fv1.eq(1)]
                with m.Elif(~fv1):
                    m.next = "LAST"
            with m.State("LAST"):
                with m.If(~pending):
                    m.d.comb += [op.valid.eq(1), op.last.eq(1), op.waddr.eq(g), op.g.eq(g)]
                    m.d.sync += pending.eq(1)
                    with m.If(g == G - 1):
                        m.next = "FLUSH"
                    with m.Else():
                        m.d.sync += g.eq(g + 1)
                        m.next = "CLEAR"
            with m.State("FLUSH"):
                with m.If(~pending & ~write):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
