"""The host link's request slot and executor (docs/link.md, "Busy" and "Pipelining").

``RequestSlot`` holds one request between the frame receiver and the executor: a good
frame to execute or an ERROR reply to send, and counts the frames for STATUS.
``Executor`` carries a request out (for INFER and INFER_PACKED: the sample's pixels into
the network, its readout into the readout RAM) and offers the reply to
``frames.ReplyTransmitter``, which takes it once the reply's last byte has gone out.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .frames import COUNTER_BITS, K_ERROR, K_INFER, K_INFER_PACKED, POST, REPLY, REQUEST


class RequestSlot(wiring.Component):
    """One request, from the receiver's verdicts (``post``, always ready) to the executor
    (``req``, ``REQUEST``). A verdict fills the slot a cycle after it came (registered): a
    good frame always (the receiver refuses one that finds a request waiting), an ERROR
    only if the slot is empty; otherwise the ERROR is counted but not answered.

    Ports out: ``bank``, the pixel bank the next sample goes into (it changes with every
    INFER or INFER_PACKED taken); ``busy``, the executor works (it is ready for a request
    only when idle) or a request waits; ``waiting``, a request waits; ``accepted`` and
    ``rejected``, the good frames and the errors; ``last_error``, the latest error code
    (0: none).
    """

    def __init__(self):
        super().__init__({"post": In(stream.Signature(POST, always_ready=True)),
                          "req": Out(stream.Signature(REQUEST)), "bank": Out(1),
                          "busy": Out(1), "waiting": Out(1),
                          "accepted": Out(COUNTER_BITS), "rejected": Out(COUNTER_BITS),
                          "last_error": Out(8)})

    def elaborate(self, platform):
        m = Module()
        req = self.req
        m.d.comb += [self.busy.eq(~req.ready | req.valid), self.waiting.eq(req.valid)]
        posted, kind, code = Signal(), Signal(3), Signal(8)
        m.d.sync += [posted.eq(self.post.valid), kind.eq(self.post.payload.kind),
                     code.eq(self.post.payload.code)]
        with m.If(posted):
            with m.If(kind == K_ERROR):
                m.d.sync += [self.rejected.eq(self.rejected + 1), self.last_error.eq(code)]
                with m.If(~req.valid):
                    m.d.sync += [req.valid.eq(1), req.payload.kind.eq(K_ERROR),
                                 req.payload.code.eq(code)]
            with m.Else():
                m.d.sync += [self.accepted.eq(self.accepted + 1), req.valid.eq(1),
                             req.payload.kind.eq(kind), req.payload.bank.eq(self.bank)]
                with m.If((kind == K_INFER) | (kind == K_INFER_PACKED)):
                    m.d.sync += self.bank.eq(~self.bank)  # the next sample: the other bank
        with m.If(req.valid & req.ready):
            m.d.sync += req.valid.eq(0)
        return m


class Executor(wiring.Component):
    """Carries out a request (``req``, ``REQUEST``; ready only while idle) and offers its
    reply (``reply``, ``REPLY``) until taken, then is idle again.

    INFER and INFER_PACKED: streams the ``pixels`` codes of the request's bank of the
    pixel RAM (``pix_r``: bank b at addresses b·pixels …, read a cycle ahead) into the
    network (``pixels``, its pixel stream), takes its readout (``readout``) into the
    readout RAM (``val_w``, a word per class), the predicted class and the cycles from the
    first pixel taken to the last readout beat; ``inferences`` counts them. Other kinds are
    answered at once. ``pixel_signature`` and ``readout_signature``: the network's streams.
    """

    def __init__(self, *, pixels: int, classes: int, pixel_signature: stream.Signature,
                 readout_signature: stream.Signature):
        self.n_pixels, self.classes = pixels, classes
        value_shape = readout_signature.members["payload"].shape["value"].shape
        super().__init__({
            "req": In(stream.Signature(REQUEST)), "pixels": Out(pixel_signature),
            "readout": In(readout_signature), "reply": Out(stream.Signature(REPLY)),
            "pix_r": Out(memory.ReadPort.Signature(addr_width=ceil_log2(2 * pixels),
                                                   shape=8).flip()),
            "val_w": Out(memory.WritePort.Signature(addr_width=ceil_log2(classes),
                                                    shape=value_shape).flip()),
            "inferences": Out(COUNTER_BITS)})

    def elaborate(self, platform):
        m = Module()
        n_pix = self.n_pixels
        req, pix, out, reply = self.req, self.pixels, self.readout, self.reply
        pix_r, val_w = self.pix_r, self.val_w
        ptr = Signal(range(2 * n_pix + 1))
        ptr1 = Signal(range(2 * n_pix + 2), init=1)  # ptr + 1, kept in a register
        ptr_end = Signal(range(2 * n_pix))  # the bank's last address
        ptr_last = Signal()  # ptr == ptr_end, registered
        feeding = Signal()
        counting = Signal()
        pix_xfer = pix.valid & pix.ready
        out_xfer = out.valid & out.ready
        m.d.comb += [pix.payload.eq(pix_r.data), pix_r.addr.eq(ptr),
                     val_w.addr.eq(out.payload.index), val_w.data.eq(out.payload.value)]

        # The pixels of an INFER: ``feeding`` is set entering RUN and cleared at the last
        # pixel, so it implies RUN (no state decoding on the pixel RAM's address path).
        m.d.comb += pix.valid.eq(feeding)
        with m.If(pix_xfer):
            m.d.comb += pix_r.addr.eq(ptr1)
            m.d.sync += [ptr.eq(ptr1), ptr1.eq(ptr1 + 1), ptr_last.eq(ptr1 == ptr_end)]
            with m.If(ptr_last):
                m.d.sync += feeding.eq(0)

        with m.FSM(name="exec_fsm"):
            with m.State("IDLE"):
                m.d.comb += req.ready.eq(1)
                base = Mux(req.payload.bank, n_pix, 0)
                m.d.sync += [ptr.eq(base), ptr1.eq(base + 1), ptr_end.eq(base + n_pix - 1),
                             ptr_last.eq(n_pix == 1), counting.eq(0)]
                with m.If(req.valid):
                    kind = req.payload.kind
                    m.d.sync += [reply.payload.kind.eq(kind),
                                 reply.payload.code.eq(req.payload.code)]
                    with m.If((kind == K_INFER) | (kind == K_INFER_PACKED)):
                        m.next = "READ"
                    with m.Else():
                        m.next = "REPLY"
            with m.State("READ"):  # the pixel RAM reads the bank's first address
                m.d.sync += feeding.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [out.ready.eq(1), val_w.en.eq(out_xfer)]
                last = out_xfer & out.payload.last
                cycles = reply.payload.cycles
                with m.If(counting & ~last):
                    m.d.sync += cycles.eq(cycles + 1)
                with m.If(pix_xfer & ~counting):  # the first pixel
                    m.d.sync += [cycles.eq(1), counting.eq(1)]
                with m.If(last):
                    m.d.sync += [reply.payload.klass.eq(out.payload.argmax),
                                 self.inferences.eq(self.inferences + 1)]
                    m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += reply.valid.eq(1)
                with m.If(reply.ready):
                    m.next = "IDLE"
        return m
