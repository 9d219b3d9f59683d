"""The layer-serial processor (docs/serial.md): one engine of P lanes that runs a whole
QNet, tile after tile, from the layer program and memory images of a ``SerialPlan``.

    pixels ─▶ pixel RAM ─▶ PixelScanner ─┐
                                          ├─▶ TileExpander ─ops─▶ pipeline ─▶ membranes ─▶ o
    plane RAM ─────────────▶ PlaneScanner ┘        ▲                 │    (readout values)
    program ROM ─▶ descriptor registers ───────────┘ (control)       └──▶ plane RAM

A sample: its pixels are written into the pixel RAM; then for every tile of the program
(``hdl.serial``), the control fetches the tile's descriptor, writes V0 into the tile's
membranes (one operation per membrane word), and for each step t feeds every projection's
events (the image's non-zero pixels through ``PixelScanner``, or step t's plane of the source
through ``scanner.PlaneScanner``) to ``tile_expander.TileExpander``, whose operations
accumulate weight terms into the membranes; then the fire sweep adds the biases and
applies the neuron rule, one operation per membrane word, writing the counts into step t's
plane (a readout: after its last step, its values stay in the membranes, from where the
``REPORT`` state sends them one beat per class). The pipeline drains before
and after every sweep, so only accumulations ever meet in flight (forwarded as in the
dataflow datapath).

The pipeline (an operation is in stage n in the n-th cycle after its issue):

====  ===========================================================================
0     weight banks addressed
1     their words registered (the RAMs' own registers), and registered again (the
      block RAMs' clock-to-output and their cascade take most of a cycle)
2     the weight funnel; count << shift; the membrane RAM addressed
3     the weight term: weight × (count << shift), a product per lane; the membrane
      word registered again (as the weights); the bias RAM addressed; forwarding hits
      against the four accumulations ahead
4     the sum: membrane (or a newer value in flight) + term, or membrane + bias: one adder
5     the neuron rule (GN: V − iΘ for i = 1..τ; thermometer; soft reset), in R units
      that the lanes share: a sweep issues each word P/R times, R lanes a time
6     written back: membrane, the counts into the plane RAM (a sweep's word with its
      last issue)
====  ===========================================================================

Weights are fields packed P a word, a row starting anywhere (``SerialPlan``): the weight
memory is two banks, the even and the odd words, so that the two words holding fields
f .. f + P − 1 are read in one cycle and a funnel shifter aligns them. P is a power of
two, so a field's word and lane are its bits.

Supported so far: networks of group or IF neurons (methods gn, if, if-shift) and ILIF
networks, with dense and convolutional projections, the input stage run in every step
(``keep_current=False``). Offset-spike calibration (cos) is refused by name.

With external memory (a plan with ``external``, docs/sdram.md) the weights and spike
planes are in SDRAM behind the processor's own controller (``hdl.sdram``): each tile's
weight image is read into one weight buffer before the tile runs (its rows are whole
words: no funnel), the plane scanner takes its words from a DMA stream, and the sweeps'
plane words go to SDRAM through a queue.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from ..snn.qnet import PIXEL_BITS
from ..snn.widths import widths
from .dma import SDRAMReader, SDRAMWriter, write_layout
from .events import bits_for, const_mul, pixel_signature, readout_signature
from .network import load_signature
from .ram import ram, registered_read
from .scanner import PlaneScanner
from .sdram import ULX3S_SDRAM, SDRAMController, pin_signature
from .serial import HEADER_FIELDS, KINDS, PROGRAM_WIDTH, RECORD_FIELDS, SerialPlan, lane_fields
from .store import WeightStore
from .tile_expander import TileExpander

__all__ = ["SerialProcessor", "PixelScanner", "check_supported", "ACC", "SWEEP", "INIT"]

ACC, SWEEP, INIT = 0, 1, 2  # operation kinds
DEPTH = 8  # pipeline stages 0..6, and 7: an operation a cycle past its write
CYCLE_BITS = 48  # the cycle counters' width
WRITE = 6  # the stage that writes back
PLANE_QUEUE = 16  # external: plane words waiting for the SDRAM
FORWARD = 4  # accumulations ahead whose writes a stage-2 membrane read misses


def check_supported(plan: SerialPlan) -> None:
    """Refuse, by name, what the processor's hardware does not do yet."""
    net = plan.net
    if net.method not in ("gn", "if", "if-shift", "ilif"):
        raise ParameterError(f"the serial processor runs methods gn, if, if-shift and ilif "
                             f"so far, not {net.method}: use --arch dataflow")
    if plan.keep_current and any(t.has_current for t in plan.tiles):
        raise ParameterError("the serial processor runs the input stage in every step so "
                             "far: plan it with keep_current=False")
    if net.method == "ilif" and max(t.steps_in for t in plan.tiles) > 8:
        raise ParameterError("the serial processor's ILIF shifts take 3 bits: at most 8 "
                             "input bit-planes (time steps)")
    if plan.lanes & (plan.lanes - 1):
        raise ParameterError(f"the serial processor needs a power of two lanes, not "
                             f"{plan.lanes}")


class PixelScanner(wiring.Component):
    """The image's input stage: reads pixel 0, 1, … of the pixel RAM and sends each
    non-zero pixel j = (c, y, x) as one event (c, y, x, row j, count = its code):
    the lanes' multipliers take the code whole. Then an end beat. One cycle per pixel,
    plus the start cycle, the first pixel's arrival and the end beat."""

    def __init__(self, shape, event_layout):
        self.shape = tuple(int(d) for d in shape)
        if len(self.shape) != 3:
            self.shape = (math.prod(self.shape), 1, 1)
        self.n = math.prod(self.shape)
        super().__init__({"start": In(1), "busy": Out(1),
                          "rd_addr": Out(range(max(2, self.n))), "rd_en": Out(1),
                          "rd_data": In(PIXEL_BITS),
                          "o": Out(stream.Signature(event_layout))})

    def elaborate(self, platform):
        m = Module()
        C, H, W = self.shape
        n, o = self.n, self.o
        busy, have = Signal(), Signal()  # scanning; ``byte`` holds a pixel
        byte = Signal(PIXEL_BITS)
        j = Signal(range(max(2, n + 1)))  # pixel in ``byte``
        nxt = Signal(range(max(2, n + 1)))  # next address to read
        starting = Signal()
        m.d.comb += starting.eq(self.start & ~busy)
        done_pixel = Signal()  # the pixel in ``byte`` leaves this cycle
        c, y, x = (Signal(range(max(2, d))) for d in (C, H, W))  # (of pixel j)
        m.d.comb += [self.busy.eq(busy), o.payload.c.eq(c), o.payload.y.eq(y),
                     o.payload.x.eq(x), o.payload.row.eq(j), o.payload.count.eq(byte)]
        with m.If(busy & have):
            with m.If(j == n):
                m.d.comb += [o.valid.eq(1), o.payload.end.eq(1)]
                with m.If(o.ready):
                    m.d.sync += [busy.eq(0), have.eq(0)]
            with m.Else():
                m.d.comb += [o.valid.eq(byte != 0), done_pixel.eq((byte == 0) | o.ready)]
        # Reads run one pixel ahead: the next pixel waits on rd_data (its enable low).
        m.d.comb += self.rd_addr.eq(nxt)
        with m.If(starting):
            m.d.comb += [self.rd_en.eq(1), self.rd_addr.eq(0)]
            m.d.sync += [busy.eq(1), have.eq(0), nxt.eq(1), j.eq(0), byte.eq(0),
                         c.eq(0), y.eq(0), x.eq(0)]
        with m.Elif(busy & ~have):  # pixel 0 arrives
            m.d.comb += self.rd_en.eq(1)
            m.d.sync += [have.eq(1), byte.eq(self.rd_data), nxt.eq(nxt + 1)]
        with m.Elif(done_pixel):
            m.d.comb += self.rd_en.eq(1)
            m.d.sync += [j.eq(j + 1), nxt.eq(nxt + 1),
                         byte.eq(Mux(j + 1 < n, self.rd_data, 0))]
            with m.If(x == W - 1):
                m.d.sync += x.eq(0)
                with m.If(y == H - 1):
                    m.d.sync += [y.eq(0), c.eq(c + 1)]
                with m.Else():
                    m.d.sync += y.eq(y + 1)
            with m.Else():
                m.d.sync += x.eq(x + 1)
        return m


def _layout(spec, names) -> data.StructLayout:
    return data.StructLayout({n: (signed if spec[n][1] else unsigned)(spec[n][0])
                              for n in names})


def _words(layout) -> int:
    return max(1, -(-layout.size // PROGRAM_WIDTH))


class SerialProcessor(wiring.Component):
    """The processor of ``plan`` (a ``SerialPlan``; ``check_supported`` says what it runs).

    Members: ``pixels`` (In stream of pixel codes): a sample's pixels in stream order;
    ``o`` (Out readout stream): its readout values, index by index, the last beat with the
    argmax; ``busy`` (Out): high in every cycle the processor spends on a sample, from the
    one after its last pixel is taken to the end of its last tile (its readout values may
    still be leaving); ``cycles`` (Out): rising edges since reset; ``work_processor``
    (Out): the cycles ``busy`` was high since reset (the names and meaning of the dataflow
    networks' ports, so that the simulation benches serve both).

    With the plan's ``loadable``, the weights live in two run-time stores
    (``SerialPlan.weight_stores``: SPRAM on a UP5K, which the bitstream cannot fill) that
    start empty, and ``load`` (In, ``network.load_signature``) writes them a byte at a time
    while the processor waits for a sample, as the host link's LOAD frames do. ``stores``
    lists them (empty without: the weights are in block RAM, filled by the bitstream).

    With external memory (``plan.external``): ``sdram`` (Out, ``hdl.sdram.pin_signature``
    of ``chip``) are the SDRAM's signals, and ``clock_hz`` the clock the controller counts
    the chip's delays in; with ``io_registers`` (the default) they are to be registered
    by the FPGA's I/O cells (``hdl.sdram.SDRAMController``)."""

    def __init__(self, plan: SerialPlan, *, clock_hz: float | None = None,
                 chip=ULX3S_SDRAM, io_registers: bool = True):
        check_supported(plan)
        self.plan = plan
        self.external = plan.external
        if self.external and clock_hz is None:
            raise ParameterError("a processor with its weights and planes in SDRAM needs "
                                 "its clock (clock_hz): the SDRAM's delays are counted in it")
        self.clock_hz, self.chip, self.io_registers = clock_hz, chip, io_registers
        net, P = plan.net, plan.lanes
        self.net = net
        self.loadable = plan.loadable
        self.stores = plan.stores
        self.log_p = P.bit_length() - 1
        self.vbits = max(widths(net, p).membrane for p in net.populations)
        self.cmp_bits = max(widths(net, p).compare for p in net.populations)
        self.tau = max([p.group_size for p in net.populations if p.kind == "gn"] or [1])
        self.classes = net.output.size
        self.ilif = net.method == "ilif"  # (every population of a network has one method)
        members = {"pixels": In(pixel_signature()),
                   "o": Out(readout_signature(self.classes, self.vbits)),
                   "busy": Out(1), "cycles": Out(CYCLE_BITS),
                   "work_processor": Out(CYCLE_BITS)}
        if self.stores:
            members["load"] = In(load_signature(self.stores))
        if self.external:
            members["sdram"] = Out(pin_signature(chip))
            # the link's "loaded" (a COMMIT since the last LOAD), and whether the image read
            # back from SDRAM after it has the plan's checksum
            members["committed"] = In(1)
            members["verified"] = Out(1)
            members["sdram_ready"] = Out(1)  # (the chip initialised: LOADs may come)
        super().__init__(members)

    # -- sizes ------------------------------------------------------------------------------
    def _sizes(self):
        plan, net, P = self.plan, self.plan.net, self.plan.lanes
        shapes = [tuple(net.input.shape)] + [tuple(p.shape) for p in net.populations]

        def geom(s):
            return (s[0], s[1], s[2]) if len(s) == 3 else (math.prod(s), 1, 1)

        g = [geom(s) for s in shapes]
        self.max_c = max(c for c, _, _ in g)
        self.max_h = max(h for _, h, _ in g)
        self.max_w = max(w for _, _, w in g)
        self.max_groups = -(-self.max_c // P)
        self.wdepth = plan.memories["weights"][1] + 1
        self.field_bits = bits_for(self.wdepth * P + self.max_groups * P)
        self.mdepth = max(1, plan.memories["membranes"][1])
        self.pdepth = max(1, plan.plane_words_total())
        self.bdepth = max(1, plan.memories["biases"][1])
        self.count_bits = bits_for(self.tau)  # a neuron's count
        self.event_bits = max(self.count_bits, PIXEL_BITS)  # an event's (a pixel's code)
        self.max_wshift = max(q.weight_shift for p in net.populations for q in p.projections)
        self.shift_bits = bits_for(PIXEL_BITS - 1 + self.max_wshift)
        self.max_records = max(len(t.records) for t in plan.tiles)
        self.max_steps = max(t.steps_in for t in plan.tiles)
        self.max_out = max(t.steps_out for t in plan.tiles)

    def elaborate(self, platform):
        m = Module()
        plan, P = self.plan, self.plan.lanes
        self._sizes()
        spec = plan.program_fields()
        head_layout, rec_layout = _layout(spec, HEADER_FIELDS), _layout(spec, RECORD_FIELDS)
        hw, rw = _words(head_layout), _words(rec_layout)
        ev_layout = data.StructLayout({
            "c": range(max(2, self.max_c)), "y": range(max(2, self.max_h)),
            "x": range(max(2, self.max_w)),
            "row": range(max(2, self.max_c * self.max_h * self.max_w)),
            "count": self.event_bits, "end": 1})

        # -- memories --------------------------------------------------------------------
        program = plan.program_words()
        m.submodules.prog = prog = memory.Memory(shape=PROGRAM_WIDTH, depth=len(program),
                                                 init=program)
        p_addr, p_data = registered_read(m, prog, name="prog_rd")
        if self.external:  # one buffer, a tile's image loaded into it from SDRAM
            (w0_addr, w0_data), wbuf_wr = self._weight_buffer(m)
            w1_addr = w1_data = None
        else:
            (w0_addr, w0_data), (w1_addr, w1_data) = self._weight_banks(m)
            wbuf_wr = None
        bshape = data.ArrayLayout(signed(plan.bias_bits), P)
        m.submodules.bmem = bmem = memory.Memory(
            shape=bshape, depth=self.bdepth,
            init=[lane_fields(w, plan.bias_bits, P) for w in plan.memory_words("biases")])
        b_addr, b_data = registered_read(m, bmem, name="b_rd")
        vshape = data.ArrayLayout(signed(self.vbits), P)
        m.submodules.vmem = vmem = ram(shape=vshape, depth=self.mdepth, init=[],
                                       collisions="undefined")
        v_wr = vmem.write_port()
        v_addr, v_data = registered_read(m, vmem, name="v_rd", write=v_wr)
        B = plan.plane_bits
        if self.external:
            pl_wr = SimpleNamespace(addr=Signal(range(max(2, self.pdepth)), name="pl_addr"),
                                    data=Signal(P * B, name="pl_data"),
                                    en=Signal(name="pl_en"))
        else:
            m.submodules.planes = pmem = memory.Memory(shape=P * B, depth=self.pdepth,
                                                       init=[])
            pl_wr = pmem.write_port()
            pl_rd = pmem.read_port(transparent_for=())
        n_pix = math.prod(plan.net.input.shape)
        m.submodules.pixmem = xmem = memory.Memory(shape=PIXEL_BITS, depth=n_pix, init=[])
        px_wr = xmem.write_port()
        px_rd = xmem.read_port(transparent_for=())

        # -- sources and the expander -----------------------------------------------------
        descs = [d for layer in plan.layers for d in layer.projections]
        m.submodules.plane_scan = pscan = PlaneScanner(
            lanes=P, bits=B, max_channels=self.max_c, max_height=self.max_h,
            max_width=self.max_w, addr_width=bits_for(self.pdepth - 1),
            max_pool=max(d.pool for d in descs), stream_input=self.external)
        m.submodules.pixel_scan = xscan = PixelScanner(plan.net.input.shape, ev_layout)
        m.d.comb += [px_rd.addr.eq(xscan.rd_addr), px_rd.en.eq(xscan.rd_en),
                     xscan.rd_data.eq(px_rd.data)]
        if not self.external:
            m.d.comb += [pl_rd.addr.eq(pscan.rd_addr), pl_rd.en.eq(pscan.rd_en),
                         pscan.rd_data.eq(pl_rd.data)]
        m.submodules.expander = ex = TileExpander(
            # (external: the rows are the tile's lanes, its last group's padding included)
            lanes=P, max_channels=self.max_groups * P if self.external else self.max_c,
            max_height=self.max_h, max_width=self.max_w,
            max_source_channels=self.max_c,
            max_kernel=max(d.kernel for d in descs), max_stride=max(d.stride for d in descs),
            field_width=self.field_bits,
            addr_width=bits_for(max(self.mdepth, self.max_h * self.max_w * self.max_groups) - 1),
            count_bits=self.event_bits, shift_bits=3)

        # -- the descriptor registers ------------------------------------------------------
        head_bits = Signal(hw * PROGRAM_WIDTH)
        rec_bits = [Signal(rw * PROGRAM_WIDTH, name=f"rec{k}") for k in range(self.max_records)]
        head = data.View(head_layout, head_bits[:head_layout.size])
        recs = Array(data.View(rec_layout, r[:rec_layout.size]) for r in rec_bits)
        k = Signal(range(max(2, self.max_records)))  # the record being fed
        rec = recs[k]
        pc = Signal(range(max(2, len(program) + 1)))
        t = Signal(range(max(2, self.max_steps + 1)))  # the step
        groups = Signal(range(self.max_groups + 1))  # the population's lane groups
        m.d.comb += groups.eq((head.channels + P - 1) >> self.log_p)
        g0 = Signal(range(self.max_groups + 1))
        m.d.comb += g0.eq(head.c0 >> self.log_p)
        kind = head.kind
        readout = kind == KINDS.index("readout")

        # Expander and scanner configuration: from the record being fed.
        cfg = ex.cfg
        m.d.comb += [cfg.conv.eq(rec.conv), cfg.kernel.eq(rec.kernel), cfg.stride.eq(rec.stride),
                     cfg.padding.eq(rec.padding), cfg.channels.eq(head.channels),
                     cfg.height.eq(head.height), cfg.width.eq(head.width),
                     cfg.groups.eq(head.tile_groups), cfg.c0.eq(head.c0),
                     cfg.wfield.eq(rec.weight_field), cfg.src_height.eq(rec.src_height),
                     cfg.src_width.eq(rec.src_width)]
        if self.external:  # (a tile's weight rows are its own lanes, from field 0)
            m.d.comb += [cfg.channels.eq(head.tile_groups << self.log_p), cfg.c0.eq(0)]
        scfg = pscan.cfg
        # (registered: the control waits a cycle after changing the record or the step)
        src_base = Signal(range(max(2, self.pdepth + 1)))
        m.d.sync += src_base.eq(rec.source_plane + t * rec.source_step)
        m.d.comb += [scfg.base.eq(src_base),
                     scfg.channels.eq(rec.src_channels), scfg.height.eq(rec.src_height),
                     scfg.width.eq(rec.src_width), scfg.pool.eq(rec.pool),
                     scfg.groups.eq((rec.src_channels + P - 1) >> self.log_p)]
        # Events: from the image's scanner or the plane's, end beats kept for the control.
        src_valid, src_end = Signal(), Signal()
        src_ready = Signal()  # the control takes an end beat
        ip = ex.i.payload
        with m.If(rec.source_is_image):
            m.d.comb += [src_valid.eq(xscan.o.valid), src_end.eq(xscan.o.payload.end),
                         ip.c.eq(xscan.o.payload.c), ip.y.eq(xscan.o.payload.y),
                         ip.x.eq(xscan.o.payload.x), ip.row.eq(xscan.o.payload.row),
                         ip.count.eq(xscan.o.payload.count), ip.shift.eq(0),
                         xscan.o.ready.eq(Mux(src_end, src_ready, ex.i.ready))]
        with m.Else():
            m.d.comb += [src_valid.eq(pscan.o.valid), src_end.eq(pscan.o.payload.end),
                         ip.c.eq(pscan.o.payload.c), ip.y.eq(pscan.o.payload.y),
                         ip.x.eq(pscan.o.payload.x), ip.row.eq(pscan.o.payload.row),
                         ip.count.eq(pscan.o.payload.count),
                         # (ILIF: plane t of T_in adds W << (T_in − 1 − t), the Horner sum)
                         ip.shift.eq(head.steps_in - 1 - t if self.ilif else 0),
                         pscan.o.ready.eq(Mux(src_end, src_ready, ex.i.ready))]
        m.d.comb += ex.i.valid.eq(src_valid & ~src_end)

        # -- the operation issued this cycle (stage 0) --------------------------------------
        op_layout = data.StructLayout({
            "valid": 1, "kind": 2, "addr": range(max(2, self.mdepth)),
            "field": self.field_bits, "count": self.event_bits, "shift": self.shift_bits,
            "baddr": range(max(2, self.bdepth)), "paddr": range(max(2, self.pdepth)),
            "fire": range(max(2, self.max_out)),
            "first": 1, "sub": range(max(2, plan.sweep_cycles))})
        st = [Signal(op_layout, name=f"st{n}") for n in range(DEPTH)]
        m.d.sync += [st[n + 1].eq(st[n]) for n in range(DEPTH - 1)]
        issue = st[0]  # (combinational: what the control issues)
        m.d.comb += ex.o.ready.eq(1)
        with m.If(ex.o.valid):
            m.d.comb += [issue.valid.eq(1), issue.kind.eq(ACC), issue.addr.eq(ex.o.payload.addr),
                         issue.field.eq(ex.o.payload.field), issue.count.eq(ex.o.payload.count),
                         issue.shift.eq(ex.o.payload.shift + rec.weight_shift)]

        w = SimpleNamespace(issue=issue, head=head, head_bits=head_bits, rec=rec,
                            rec_bits=rec_bits, hw=hw, rw=rw, pc=pc, p_addr=p_addr, p_data=p_data,
                            k=k, t=t, groups=groups, g0=g0, readout=readout, pscan=pscan,
                            xscan=xscan, ex=ex, src_valid=src_valid, src_end=src_end,
                            src_base=src_base,
                            src_ready=src_ready, px_wr=px_wr, st=st, w0_addr=w0_addr,
                            w0_data=w0_data, w1_addr=w1_addr, w1_data=w1_data, b_addr=b_addr,
                            b_data=b_data, v_addr=v_addr, v_data=v_data, v_wr=v_wr, pl_wr=pl_wr,
                            v_word=Signal.like(v_data, name="vq"),
                            report_beat=Signal(self.o.payload.shape(), name="report_beat"),
                            report_full=Signal(),
                            report=Signal(), report_addr=Signal(range(max(2, self.mdepth))),
                            report_lane=Signal(range(max(2, P))), report_have=Signal())
        w.wbuf_wr = wbuf_wr
        if self.external:
            self._sdram(m, w)
        m.d.sync += w.v_word.eq(v_data)  # (the membrane word registered again)
        # The readout beats leave from a register (REPORT fills it): no path from the
        # membrane RAM or the argmax's comparison reaches the consumer's logic.
        m.d.comb += [self.o.valid.eq(w.report_full), self.o.payload.eq(w.report_beat)]
        with m.If(self.o.ready):
            m.d.sync += w.report_full.eq(0)
        self._control(m, w)
        self._pipeline(m, w)
        return m

    def _weight_banks(self, m):
        """The even and odd weight words: block RAMs filled by the bitstream, or with
        ``loadable`` the run-time stores ``load`` writes. Returns each bank's (address,
        data a cycle later)."""
        wshape = data.ArrayLayout(signed(self.plan.weight_bits), self.plan.lanes)
        if self.plan.weight_slices and not self.loadable:  # (a block RAM a slice: no cascade)
            return [self._sliced_bank(m, bank, words, wshape)
                    for bank, words in enumerate(self.plan.bank_words())]
        banks = []
        for bank, spec in enumerate(self.plan.weight_stores()):
            if self.loadable:
                m.submodules[f"wbank{bank}"] = store = WeightStore(spec.depth, spec.width)
                ld = self.load
                m.d.comb += [store.w.en.eq(ld.en & (ld.sel == bank)), store.w.addr.eq(ld.addr),
                             store.w.byte.eq(ld.byte), store.w.data.eq(ld.data)]
                banks.append((store.r.addr, store.r.data))
            else:
                m.submodules[f"wbank{bank}"] = mem = memory.Memory(
                    shape=wshape, depth=spec.depth, init=spec.words)
                banks.append(registered_read(m, mem, name=f"w{bank}_rd"))
        return banks

    def _weight_buffer(self, m):
        """External: the weight buffer, one word of P weights an operation, written a
        word at a time by the weight reader; in slices of ``weight_slices`` bits (each a
        block RAM) when the plan has them. Returns ((address, data a cycle later), the
        write port (addr, data, en))."""
        plan = self.plan
        wshape = data.ArrayLayout(signed(plan.weight_bits), plan.lanes)
        depth = max(1, plan.memories["weights"][1])
        addr = Signal(range(max(2, depth)), name="wb_addr")
        wr = SimpleNamespace(addr=Signal(range(max(2, depth)), name="wb_waddr"),
                             data=Signal(plan.lanes * plan.weight_bits, name="wb_wdata"),
                             en=Signal(name="wb_wen"))
        parts = []
        for k, (lo, bits) in enumerate(plan.weight_slice_spans()):
            m.submodules[f"wbuf{k}"] = mem = ram(shape=unsigned(bits), depth=depth, init=[],
                                                 collisions="undefined")
            port = mem.write_port()
            m.d.comb += [port.addr.eq(wr.addr), port.data.eq(wr.data[lo:lo + bits]),
                         port.en.eq(wr.en)]
            a, d = registered_read(m, mem, name=f"wb_rd{k}", write=port)
            m.d.comb += a.eq(addr)
            parts.append(d)
        return (addr, data.View(wshape, Cat(*parts))), wr

    def _sdram(self, m, w):
        """External: the SDRAM controller and its streams: port 0 the plane reader (the
        plane scanner's words), port 1 the plane writer (the sweeps' words, through a
        queue), port 2 the weight reader (a tile's image into the weight buffer)."""
        plan, chip = self.plan, self.chip
        m.submodules.sdram = ctrl = SDRAMController(chip=chip, clock_hz=self.clock_hz,
                                                    ports=4, io_registers=self.io_registers)
        wiring.connect(m, wiring.flipped(self.sdram), ctrl.pins)
        w.sdram_ready = ctrl.ready
        m.d.comb += self.sdram_ready.eq(ctrl.ready)
        plane_base = plan.sdram["planes"].base
        ppw, wpw = plan.plane_word_sdram, plan.weight_word_sdram
        # Plane reads: started with the scanner, the source plane's words from SDRAM.
        m.submodules.plane_reader = pr = SDRAMReader(
            chip, ratio=ppw, count_bits=bits_for(self.pdepth))
        m.d.comb += [pr.start.eq(w.pscan.start), pr.addr.eq(plane_base + w.src_base * ppw),
                     pr.count.eq(w.rec.source_step)]
        wiring.connect(m, pr.cmd, ctrl.cmd0)
        wiring.connect(m, ctrl.rdata0, pr.rdata)
        # (the reader's words are P·B bits; a plane word's rest is padding)
        m.d.comb += [w.pscan.words.valid.eq(pr.o.valid),
                     w.pscan.words.payload.eq(pr.o.payload),
                     pr.o.ready.eq(w.pscan.words.ready)]
        # Plane writes: the sweep's words into a queue, and from there to SDRAM.
        wl = write_layout(len(w.pl_wr.addr), ppw * chip.dq_bits)
        m.submodules.plane_queue = q = fifo.SyncFIFOBuffered(width=wl.size,
                                                             depth=PLANE_QUEUE)
        m.d.comb += [q.w_en.eq(w.pl_wr.en),
                     q.w_data.eq(Cat(w.pl_wr.addr, w.pl_wr.data))]
        m.submodules.plane_writer = pw = SDRAMWriter(
            chip, ratio=ppw, addr_bits=len(w.pl_wr.addr), base=plane_base)
        m.d.comb += [pw.i.valid.eq(q.r_rdy), pw.i.payload.eq(q.r_data), q.r_en.eq(pw.i.ready)]
        wiring.connect(m, pw.cmd, ctrl.cmd1)
        m.d.comb += ctrl.rdata1.ready.eq(1)
        w.plane_room = q.level <= PLANE_QUEUE - 8  # (a sweep word's issues in flight)
        w.planes_written = ~q.r_rdy & pw.idle
        # Weights: a tile's image into the weight buffer, word after word.
        m.submodules.weight_reader = wr = SDRAMReader(
            chip, ratio=wpw, count_bits=bits_for(plan.memories["weights"][1]))
        wiring.connect(m, wr.cmd, ctrl.cmd2)
        wiring.connect(m, ctrl.rdata2, wr.rdata)
        wa = Signal.like(w.wbuf_wr.addr)
        m.d.comb += [wr.o.ready.eq(1), w.wbuf_wr.en.eq(wr.o.valid), w.wbuf_wr.addr.eq(wa),
                     w.wbuf_wr.data.eq(wr.o.payload)]
        with m.If(wr.o.valid):
            m.d.sync += wa.eq(wa + 1)
        with m.If(wr.start):
            m.d.sync += wa.eq(0)
        m.d.comb += [wr.addr.eq(w.head.weight_addr * wpw), wr.count.eq(w.head.weight_words)]
        w.weight_reader = wr
        self._host_port(m, ctrl)

    def _host_port(self, m, ctrl):
        """External, port 3: the link's LOAD bytes written into SDRAM (store k is SDRAM
        words k·SDRAM_PAGE ..., a byte at a time by its byte enable), and after a COMMIT
        the weight image read back and its checksum (``serial.sdram_checksum``) compared
        with the plan's: ``verified``."""
        from .sdram import command_layout
        from .serial import SDRAM_PAGE
        plan, chip = self.plan, self.chip
        layout = command_layout(chip)
        ld = self.load
        m.submodules.load_queue = q = fifo.SyncFIFOBuffered(width=layout.size, depth=4)
        word = Signal(layout)
        m.d.comb += [word.addr.eq(ld.sel * SDRAM_PAGE + ld.addr), word.write.eq(1),
                     word.data.eq(Cat(ld.data, ld.data)), word.bytes.eq(1 << ld.byte),
                     q.w_data.eq(word), q.w_en.eq(ld.en)]
        image = plan.sdram["weights"].words
        m.submodules.checker = rd = SDRAMReader(chip, ratio=1, count_bits=bits_for(image))
        m.d.comb += [rd.addr.eq(0), rd.count.eq(image), rd.o.ready.eq(1)]
        cmd = ctrl.cmd3
        with m.If(rd.busy):
            m.d.comb += [cmd.valid.eq(rd.cmd.valid), cmd.payload.eq(rd.cmd.payload),
                         rd.cmd.ready.eq(cmd.ready)]
        with m.Else():
            m.d.comb += [cmd.valid.eq(q.r_rdy), cmd.payload.eq(q.r_data), q.r_en.eq(cmd.ready)]
        wiring.connect(m, ctrl.rdata3, rd.rdata)
        # The checksum: a = Σ words, b = Σ a, both modulo 2^32.
        a, b = Signal(32), Signal(32)
        seen = Signal()  # ``committed`` last cycle
        checking = Signal()
        m.d.sync += seen.eq(self.committed)
        with m.If(self.committed & ~seen & ~rd.busy):  # a COMMIT: read the image back
            m.d.comb += rd.start.eq(1)
            m.d.sync += [a.eq(0), b.eq(0), checking.eq(1), self.verified.eq(0)]
        with m.Elif(rd.o.valid):
            m.d.sync += [a.eq(a + rd.o.payload), b.eq(b + a + rd.o.payload)]
        with m.If(checking & ~rd.busy & ~rd.start):
            m.d.sync += [checking.eq(0),
                         self.verified.eq(Cat(a, b) == plan.sdram_checksum())]
        with m.If(~self.committed):  # (a LOAD since: not verified until the next COMMIT)
            m.d.sync += [self.verified.eq(0), checking.eq(0)]

    def _sliced_bank(self, m, bank, words, wshape):
        """Weight bank ``bank`` (its packed ``words``) as memories of the plan's
        ``weight_slice_spans``, read at one address: their data side by side is the
        word."""
        addr = Signal(range(max(2, len(words))), name=f"w{bank}_addr")
        parts = []
        for k, (lo, bits) in enumerate(self.plan.weight_slice_spans()):
            m.submodules[f"wbank{bank}_{k}"] = mem = memory.Memory(
                shape=unsigned(bits), depth=len(words),
                init=[(w >> lo) & ((1 << bits) - 1) for w in words])
            a, d = registered_read(m, mem, name=f"w{bank}_rd{k}")
            m.d.comb += a.eq(addr)
            parts.append(d)
        return addr, data.View(wshape, Cat(*parts))

    # -- control ----------------------------------------------------------------------------
    def _control(self, m, w):
        (issue, head, head_bits, rec, rec_bits, hw, rw, pc, p_addr, p_data, k, t, groups, g0,
         readout, pscan, xscan, ex, src_valid, src_end, src_ready, px_wr, st) = (
            w.issue, w.head, w.head_bits, w.rec, w.rec_bits, w.hw, w.rw, w.pc, w.p_addr,
            w.p_data, w.k, w.t, w.groups, w.g0, w.readout, w.pscan, w.xscan, w.ex,
            w.src_valid, w.src_end, w.src_ready, w.px_wr, w.st)
        n_pix = math.prod(self.plan.net.input.shape)
        pix = Signal(range(max(2, n_pix)))
        fetched = Signal(range(hw + rw * self.max_records + 1))  # words read so far
        arrived = Signal.like(fetched)  # words latched
        want = Signal.like(fetched)
        m.d.comb += p_addr.eq(pc)
        # sweep / init counters
        a = Signal(range(max(2, self.mdepth)))  # membrane address
        gi = Signal(range(self.max_groups + 1))  # lane group within the tile
        xi = Signal(range(max(2, self.max_w)))
        yi = Signal(range(max(2, self.max_h)))
        paddr = Signal(range(max(2, self.pdepth)))
        baddr = Signal(range(max(2, self.bdepth)))
        sub = Signal(range(max(2, self.plan.sweep_cycles)))  # a sweep word's issue
        last_word = (gi == head.tile_groups - 1) & (xi == head.width - 1) \
            & (yi == head.height - 1)
        pending = Signal()  # st[1..6] hold a valid operation (one yet to write)
        m.d.comb += pending.eq(Cat(*(s.valid for s in st[1:WRITE + 1])).any())
        last_t = t == head.steps_in - 1
        f = Signal(range(max(2, self.max_out)))  # ILIF: the output bit a sweep fires
        last_f = f == head.steps_out - 1
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        m.d.sync += [self.cycles.eq(self.cycles + 1),
                     self.work_processor.eq(self.work_processor + busy)]

        # The plane word a sweep starts at, for the step (ILIF: the output bit) now and
        # the next output bit: registered, a cycle after the step or bit changes (the
        # products are long carry chains on an iCE40; no sweep starts that soon after).
        sweep_step = f if self.ilif else t
        plane_now, plane_next = (Signal(range(max(2, self.pdepth + 1)), name=n)
                                 for n in ("plane_now", "plane_next"))
        m.d.sync += [plane_now.eq(head.plane + sweep_step * head.plane_step + g0),
                     plane_next.eq(head.plane + (f + 1) * head.plane_step + g0)]

        def start_walk(plane):
            """The first membrane word, the plane word ``plane`` and its bias word."""
            m.d.sync += [a.eq(0), gi.eq(0), xi.eq(0), yi.eq(0), paddr.eq(plane),
                         baddr.eq(head.bias_word + g0)]

        # From the last lane group of a tile's position to the first of the next: the
        # population's groups less the tile's, and one (registered: it follows the header).
        skip = Signal(range(self.max_groups + 2))
        m.d.sync += skip.eq(groups - head.tile_groups + 1)

        def step_walk():
            m.d.sync += a.eq(a + 1)
            with m.If(gi == head.tile_groups - 1):
                m.d.sync += [gi.eq(0), paddr.eq(paddr + skip)]
                with m.If(head.bias_per_channel):
                    m.d.sync += baddr.eq(head.bias_word + g0)
                with m.Else():
                    m.d.sync += baddr.eq(baddr + skip)
                with m.If(xi == head.width - 1):
                    m.d.sync += [xi.eq(0), yi.eq(yi + 1)]
                with m.Else():
                    m.d.sync += xi.eq(xi + 1)
            with m.Else():
                m.d.sync += [gi.eq(gi + 1), paddr.eq(paddr + 1), baddr.eq(baddr + 1)]

        def start_source():
            with m.If(rec.source_is_image):
                m.d.comb += xscan.start.eq(1)
            with m.Else():
                m.d.comb += pscan.start.eq(1)

        with m.FSM(name="control"):
            with m.State("LOAD"):
                # (external: once the SDRAM is initialised)
                open_ = w.sdram_ready if self.external else Const(1, 1)
                m.d.comb += self.pixels.ready.eq(open_)
                m.d.comb += [px_wr.addr.eq(pix), px_wr.data.eq(self.pixels.payload),
                             px_wr.en.eq(self.pixels.valid & open_)]
                with m.If(self.pixels.valid & open_):
                    with m.If(pix == n_pix - 1):
                        m.d.sync += [pix.eq(0), pc.eq(0), fetched.eq(0), arrived.eq(0),
                                     want.eq(hw), busy.eq(1)]
                        m.next = "FETCH"
                    with m.Else():
                        m.d.sync += pix.eq(pix + 1)
            with m.State("FETCH"):
                # One word a cycle; the header's record count sets how many follow.
                with m.If(fetched != want):
                    m.d.sync += [pc.eq(pc + 1), fetched.eq(fetched + 1)]
                with m.If(arrived != fetched):  # the word read last cycle
                    m.d.sync += arrived.eq(arrived + 1)
                    for i in range(hw):
                        with m.If(arrived == i):
                            m.d.sync += head_bits[i * PROGRAM_WIDTH:(i + 1) * PROGRAM_WIDTH] \
                                .eq(p_data)
                    with m.If(arrived == hw - 1):  # the header is in next cycle
                        m.next = "RECORDS"
            with m.State("RECORDS"):
                m.d.sync += want.eq(hw + head.projections * rw)
                with m.If(head.projections == 0):
                    m.next = "SETUP"
                with m.Else():
                    m.next = "FETCH_RECORDS"
            with m.State("FETCH_RECORDS"):
                with m.If(fetched != want):
                    m.d.sync += [pc.eq(pc + 1), fetched.eq(fetched + 1)]
                with m.If(arrived != fetched):
                    m.d.sync += arrived.eq(arrived + 1)
                    for r, bits in enumerate(rec_bits):
                        for i in range(rw):
                            with m.If(arrived == hw + r * rw + i):
                                m.d.sync += bits[i * PROGRAM_WIDTH:(i + 1) * PROGRAM_WIDTH] \
                                    .eq(p_data)
                with m.Elif(fetched == want):
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.sync += [t.eq(0), k.eq(0), f.eq(0)]
                start_walk(head.plane + g0)
                m.next = "WEIGHTS_START" if self.external else "INIT"
            if self.external:  # the tile's weight image into the weight buffer
                with m.State("WEIGHTS_START"):
                    m.d.comb += w.weight_reader.start.eq(1)
                    m.next = "WEIGHTS"
                with m.State("WEIGHTS"):
                    with m.If(~w.weight_reader.busy):
                        m.next = "INIT"
            with m.State("INIT"):
                m.d.comb += [issue.valid.eq(1), issue.kind.eq(INIT), issue.addr.eq(a)]
                step_walk()
                with m.If(last_word):
                    m.next = "INITIALISED"
            with m.State("INITIALISED"):  # (V0 written before any accumulation reads it)
                with m.If(~pending):
                    m.next = "FEED_START"
            def next_record():
                with m.If(k == head.projections - 1):
                    m.d.sync += k.eq(0)
                    if self.ilif:  # every input plane first, then the output bits
                        with m.If(last_t):
                            m.next = "DRAIN"
                        with m.Else():
                            m.d.sync += t.eq(t + 1)
                            m.next = "FEED_SETTLE"
                    else:
                        m.next = "DRAIN"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
                    m.next = "FEED_SETTLE"

            with m.State("FEED_SETTLE"):  # (the scanner's base follows the record, step)
                m.next = "FEED_START"
            with m.State("FEED_START"):
                with m.If(head.projections == 0):
                    m.next = "DRAIN"
                if self.ilif:  # the image's input stage sends its whole codes at once
                    with m.Elif(rec.source_is_image & (t != 0)):
                        next_record()
                with m.Else():
                    start_source()
                    m.next = "FEED"
            with m.State("FEED"):
                # Events flow scanner → expander → pipeline; the end beat is taken once the
                # expander holds nothing more.
                with m.If(src_valid & src_end & ~ex.busy):
                    m.d.comb += src_ready.eq(1)
                    next_record()
            with m.State("DRAIN"):
                with m.If(~pending & ~ex.o.valid):
                    start_walk(plane_now)
                    with m.If(~readout | last_t):
                        m.next = "SWEEP"
                    with m.Else():
                        m.next = "NEXT_STEP"
            with m.State("SWEEP"):
                # A word is issued once for each R of its lanes (``rule_units``): issue j
                # brings lanes jR .. jR + R − 1 to the rule units. (External: a word
                # starts only while the plane queue has room for those in flight.)
                go = (w.plane_room | (sub != 0)) if self.external else Const(1, 1)
                with m.If(go):
                    m.d.comb += [issue.valid.eq(1), issue.kind.eq(SWEEP), issue.addr.eq(a),
                                 issue.baddr.eq(baddr), issue.paddr.eq(paddr),
                                 issue.fire.eq(f),
                                 issue.first.eq(f == 0), issue.sub.eq(sub)]
                    with m.If(sub == self.plan.sweep_cycles - 1):
                        m.d.sync += sub.eq(0)
                        step_walk()
                        with m.If(last_word):
                            m.next = "SWEPT"
                    with m.Else():
                        m.d.sync += sub.eq(sub + 1)
            def report():  # (the last tile's sweep ends the sample's busy cycles)
                with m.If(head.last):
                    m.d.sync += busy.eq(0)
                m.next = "REPORT"

            with m.State("SWEPT"):
                with m.If(~pending):
                    if self.ilif:  # the next output bit, or the tile is done
                        with m.If(~readout & ~last_f):
                            m.d.sync += f.eq(f + 1)
                            start_walk(plane_next)
                            m.next = "SWEEP"
                        with m.Elif(readout):
                            report()
                        with m.Else():
                            m.next = "NEXT_STEP"
                    else:
                        with m.If(readout):
                            report()
                        with m.Else():
                            m.next = "NEXT_STEP"
            with m.State("REPORT"):
                self._report(m, w, head, g0)
            with m.State("NEXT_STEP"):
                # (external: the tile's plane words all in SDRAM before a later tile reads)
                written = w.planes_written if self.external else Const(1, 1)
                with m.If(last_t & ~written):
                    pass
                with m.Elif(last_t):
                    with m.If(head.last):
                        m.d.sync += busy.eq(0)
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += [fetched.eq(0), arrived.eq(0), want.eq(hw)]
                        m.next = "FETCH"
                with m.Else():
                    m.d.sync += t.eq(t + 1)
                    m.next = "FEED_SETTLE"

    def _report(self, m, w, head, g0):
        """The REPORT state: a readout tile's values, which its sweep left in the membrane
        RAM, read back a word (lane group) at a time and sent one beat per class, the last
        with the argmax; then ``NEXT_STEP``."""
        P, n, o = self.plan.lanes, self.classes, self.o
        lane, have = w.report_lane, w.report_have
        ra = w.report_addr
        index = Signal(range(max(2, (self.max_groups + 1) * P)))
        m.d.comb += [w.report.eq(1), index.eq(((g0 + ra) << self.log_p) | lane)]
        value = Array(w.v_word[p] for p in range(P))[lane]
        best_val, best_idx = Signal(signed(self.vbits)), Signal(range(max(2, n)))
        better = (index == 0) | (value > best_val)
        beat, full = w.report_beat, w.report_full
        # (the word at ra is in v_word two cycles on: the RAM's register, then its copy)
        pre = Signal()
        m.d.sync += [pre.eq(1), have.eq(pre)]
        with m.If(have):
            # A beat goes into the output register once that is free (or is skipped: a
            # padding lane past the classes).
            with m.If(~full | o.ready | (index >= n)):
                with m.If(index < n):
                    m.d.sync += [full.eq(1), beat.index.eq(index), beat.value.eq(value),
                                 beat.last.eq(index == n - 1),
                                 beat.argmax.eq(Mux(better, index, best_idx))]
                    with m.If(better):
                        m.d.sync += [best_val.eq(value), best_idx.eq(index)]
                with m.If((index >= n - 1) | ((lane == P - 1) & (ra == head.tile_groups - 1))):
                    m.d.sync += [lane.eq(0), ra.eq(0), pre.eq(0), have.eq(0)]
                    m.next = "NEXT_STEP"
                with m.Elif(lane == P - 1):
                    m.d.sync += [lane.eq(0), ra.eq(ra + 1), pre.eq(0), have.eq(0)]
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)

    # -- the pipeline -------------------------------------------------------------------------
    def _pipeline(self, m, w):
        (st, head, readout, w0_addr, w0_data, w1_addr, w1_data, b_addr, b_data, v_addr,
         v_wr, pl_wr) = (w.st, w.head, w.readout, w.w0_addr, w.w0_data, w.w1_addr, w.w1_data,
                         w.b_addr, w.b_data, w.v_addr, w.v_wr, w.pl_wr)
        plan, P, log_p = self.plan, self.plan.lanes, self.log_p
        wbits, B = plan.weight_bits, plan.plane_bits
        s0, s1, s2, s3, s4, s5, s6, s7 = st
        # Stage 0: the weights' addresses. Fields f .. f + P − 1 lie in words f >> log P
        # and the next.
        word = s0.field >> log_p
        w3 = Signal(data.ArrayLayout(signed(wbits), P), name="w3")
        if self.external:  # (a tile's rows are whole words: the word is the P weights)
            m.d.comb += w0_addr.eq(word)
            wq0 = Signal.like(w0_data, name="wq0")
            m.d.sync += [wq0.eq(w0_data), w3.eq(wq0)]
        else:
            m.d.comb += [w0_addr.eq((word + 1) >> 1), w1_addr.eq(word >> 1)]
            # Stage 1: the banks' words registered again.
            wq0, wq1 = (Signal.like(d, name=f"wq{i}")
                        for i, d in enumerate((w0_data, w1_data)))
            m.d.sync += [wq0.eq(w0_data), wq1.eq(w1_data)]
            # Stage 2: the funnel: the low word first, shifted down by the field's lane.
            odd = s2.field >> log_p & 1
            lane = s2.field & (P - 1) if P > 1 else Const(0, 1)
            lo = Mux(odd, Value.cast(wq1), Value.cast(wq0))
            hi = Mux(odd, Value.cast(wq0), Value.cast(wq1))
            both = Cat(lo, hi)
            m.d.sync += w3.eq((both >> (lane * wbits))[:P * wbits])
        # The multiplier count << shift, one for every lane: a pixel's code, a count ≤ τ,
        # or an ILIF plane's 1 << (≤ 7), each shifted by the weight shift.
        mult3 = Signal(max(PIXEL_BITS, self.count_bits + (PIXEL_BITS - 1 if self.ilif else 0))
                       + self.max_wshift, name="mult3")
        m.d.sync += mult3.eq(s2.count << s2.shift)
        # The membrane and bias words addressed (read this late, the read misses only the
        # writes of the four operations ahead, whose hits are compared in stage 3).
        m.d.comb += [v_addr.eq(Mux(w.report, w.report_addr, s2.addr)), b_addr.eq(s3.baddr)]
        # Stage 3: the term, a product per lane (a DSP block each where the device has
        # them: the fit check counts them); the membrane word registered again.
        tbits = wbits + len(mult3) + 1
        term4 = Signal(data.ArrayLayout(signed(tbits), P), name="term4")
        for p in range(P):
            m.d.sync += term4[p].eq(w3[p] * mult3)
        vq = w.v_word
        wide = max(self.vbits, self.cmp_bits) + 1
        val5 = Signal(data.ArrayLayout(signed(wide), P), name="val5")
        res6 = Signal(data.ArrayLayout(signed(self.vbits), P), name="res6")
        res7 = Signal(data.ArrayLayout(signed(self.vbits), P), name="res7")  # (written)
        res8 = Signal(data.ArrayLayout(signed(self.vbits), P), name="res8")
        m.d.sync += [res7.eq(res6), res8.eq(res7)]
        ahead = [(s.valid & (s.kind == ACC), s.addr) for s in (s4, s5, s6, s7)]
        hits = Signal(FORWARD)
        m.d.sync += hits.eq(Cat(*(ok & (addr == s3.addr) for ok, addr in ahead)))
        # Stage 4: the sum, from the newest value of the address: one adder, of the term
        # (an accumulation) or the bias (a sweep; ILIF: B + V0 with the first output bit
        # only). (A sweep's hits are all clear: no accumulation is in flight then.)
        sources = [val5, res6, res7, res8]  # (the operations now in stages 5 to 8)
        no_bias = (~s4.first) if self.ilif else Const(0, 1)
        for p in range(P):
            x = Signal(signed(wide), name=f"x{p}")
            m.d.comb += x.eq(vq[p])
            for d in reversed(range(FORWARD)):
                with m.If(hits[d]):
                    m.d.comb += x.eq(sources[d][p])
            addend = Mux(s4.kind == ACC, term4[p], Mux(no_bias, 0, b_data[p]))
            m.d.sync += val5[p].eq(x + addend)
        # Stage 5: the rule (GN: thermometer of V − iΘ ≥ 0 for i ≤ τ; soft reset), in the
        # R rule units the lanes share: a sweep's issue j brings lane jR + r to unit r.
        R, K = plan.rule_units, plan.sweep_cycles
        theta = head.threshold
        counts6 = Signal(data.ArrayLayout(unsigned(self.count_bits), P), name="counts6")
        units = []
        for r in range(R):
            v = Signal(signed(wide), name=f"rv{r}")
            m.d.comb += v.eq(Array(val5[j * R + r] for j in range(K))[s5.sub] if K > 1
                             else val5[r])
            diffs = [Signal(signed(wide + 1), name=f"d{i}_{r}")
                     for i in range(1, (0 if self.ilif else self.tau) + 1)]
            m.d.comb += [dv.eq(v - const_mul(theta, i)) for i, dv in enumerate(diffs, start=1)]
            count = Signal(self.count_bits, name=f"n{r}")
            kept = Signal(signed(wide + 1), name=f"kept{r}")
            if self.ilif:
                # One quotient bit of a restoring division per sweep: fire if V ≥
                # Θ·2^(T−1−k); the first clamps V + B + V0 to 2^T·Θ − 1.
                top = (theta << head.steps_out) - 1
                clamped = Signal(signed(wide + 1), name=f"vc{r}")
                m.d.comb += clamped.eq(Mux(s5.first & (v > top), top, v))
                diff = Signal(signed(wide + 1), name=f"diff{r}")
                shift = (head.steps_out - 1 - s5.fire).as_unsigned()
                m.d.comb += diff.eq(clamped - (theta << shift))
                m.d.comb += [count.eq(diff >= 0), kept.eq(Mux(diff >= 0, diff, clamped))]
            else:
                m.d.comb += kept.eq(v)
                for i, dv in enumerate(diffs, start=1):
                    with m.If((dv >= 0) & (head.group_size >= i)):
                        m.d.comb += [count.eq(i), kept.eq(dv)]
            units.append((count, kept))
        for p in range(P):
            count, kept = units[p % R]
            own = s5.sub == p // R  # (the sweep's issue that brings lane p to a unit)
            with m.If(s5.kind == ACC):
                m.d.sync += res6[p].eq(val5[p])
            with m.Elif(s5.kind == INIT):  # (V0 for GN and readouts; ILIF starts at 0)
                m.d.sync += res6[p].eq(Mux(head.kind == KINDS.index("ilif"), 0, head.v0))
            with m.Elif(readout):
                m.d.sync += res6[p].eq(val5[p])  # (reported from here)
            with m.Elif(own):  # (a sweep's other lanes keep their results)
                m.d.sync += res6[p].eq(kept)
            with m.If(own):
                m.d.sync += counts6[p].eq(count)
        # Stage 6: write back: an accumulation or V0, or a sweep's word with its last
        # issue (the earlier ones' lanes kept in res6 and counts6), its counts into the
        # plane (a readout: its values, reported from the membranes).
        last = (s6.kind != SWEEP) | (s6.sub == K - 1)
        m.d.comb += [v_wr.addr.eq(s6.addr), v_wr.data.eq(res6), v_wr.en.eq(s6.valid & last)]
        m.d.comb += [pl_wr.addr.eq(s6.paddr),
                     pl_wr.data.eq(Cat(*(_field(counts6[p], B)
                                         for p in range(P)))),
                     pl_wr.en.eq(s6.valid & (s6.kind == SWEEP) & ~readout & last)]


def _field(value, bits: int):
    """``value`` cut or zero-extended to ``bits`` bits."""
    if len(value) >= bits:
        return value[:bits]
    return Cat(value, Const(0, bits - len(value)))
