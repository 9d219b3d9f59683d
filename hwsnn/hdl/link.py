"""A UART host link around a ``Network``: frames in, inferences and replies out.

``HostLink(net, clk_hz=..., baud=...)`` is a ``wiring.Component`` with ``rx : In(1)``
(idle high) and ``tx : Out(1)``, speaking protocol version 3 of docs/link.md: IDENTIFY,
INFER, INFER_PACKED (zero runs coded) and STATUS frames with a CRC-8, ERROR replies for
bad frames, and for a network
with run-time weight stores (``loadable``, SPRAM on a UP5K) LOAD and COMMIT frames that
write its weights. For debugging it also has ``busy : Out(1)`` (a frame is being
executed or answered, or a reply is pending) and ``last_error : Out(8)`` (the latest
error code, 0 = none), e.g. for LEDs.

Inside (docs/hardware.md, "Host link components"), connected by streams: ``UartRx`` →
``FrameReceiver`` (frames checked, verdicts out, payloads handed on as they arrive) →
``SampleWriter`` (an INFER payload into one of two pixel banks) and ``WeightWriter`` (a
LOAD payload into the weight stores, byte by byte); the verdicts → ``RequestSlot`` (one
request waiting) → ``Executor`` (only once the frame's CRC has checked: the pixels into
the network, its readout into a second RAM) → ``ReplyTransmitter`` (the reply framed) →
``UartTx``. The receiver keeps running while the executor works, so the next request
streams in while the current one computes (pipelining): a frame is refused with ERROR 6
(busy) only when a request is already waiting for the executor (a LOAD also while the
executor works: the network reads the weights), and a refused frame's payload never
touches the pixel banks or the stores. A LOAD frame writes as it arrives, so a corrupt one
may have written: any LOAD clears the "loaded" flag, INFER is refused (ERROR 7) until a
COMMIT.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..flow import host
from ..snn.qnet import QNet
from .executor import Executor, RequestSlot
from .frames import (
    COUNTER_BITS,
    K_COMMIT,
    K_ERROR,
    K_IDENTIFY,
    K_INFER,
    K_INFER_PACKED,
    K_LOAD,
    K_STATUS,
    FrameReceiver,
    ReplyTransmitter,
    SampleWriter,
    WeightWriter,
    crc8_update,
    reply_lengths,
)
from .network import Network
from .plan import layout_id
from .processor import SerialProcessor
from .ram import ram, registered_read
from .uart import MAX_BAUD_ERROR, MIN_DIVISOR, UartRx, UartTx, uart_divisor
from .verilog import fingerprint

# (what link.py defined before its parts moved into uart.py, frames.py and executor.py)
__all__ = ["HostLink", "UartRx", "UartTx", "crc8_update", "uart_divisor", "MIN_DIVISOR",
           "MAX_BAUD_ERROR", "COUNTER_BITS", "K_IDENTIFY", "K_INFER", "K_STATUS", "K_LOAD",
           "K_COMMIT", "K_INFER_PACKED", "K_ERROR"]


class HostLink(wiring.Component):
    """``net``'s ``Network`` (built with ``lanes``, or the given ``network``) behind a UART
    at ``baud`` from a ``clk_hz`` clock (divisor ``clk_hz // baud``, at least 4, within
    3 %). A frame that goes quiet for ``timeout_bytes`` byte times is truncated (ERROR 4).

    Ports: ``rx``, ``tx``; ``busy`` and ``last_error`` for debugging (module docstring).
    Attributes: ``divisor``, ``baud_error``, ``timeout_cycles``, ``pixels``, ``classes``,
    ``identity`` (the IDENTIFY payload), ``fingerprint``, ``network``.
    """

    def __init__(self, net: QNet, *, clk_hz, baud=115200, lanes=1, timeout_bytes=20,
                 network: Network | None = None, loadable=(), input_lanes: int = 0,
                 queue_depth: int | None = None):
        if not isinstance(net, QNet):
            raise TypeError(f"HostLink needs a QNet, not {type(net).__name__}")
        self.divisor, self.baud_error = uart_divisor(clk_hz, baud)
        if isinstance(timeout_bytes, bool) or not isinstance(timeout_bytes, int):
            raise TypeError(f"timeout_bytes must be an integer, not {timeout_bytes!r}")
        if not 1 <= timeout_bytes <= 10_000:
            raise ValueError(f"timeout_bytes must lie in 1..10000, not {timeout_bytes}")
        self.net = net
        self.fingerprint = fingerprint(net)
        self.pixels = 1
        for d in net.input.shape:
            self.pixels *= int(d)
        self.classes = net.output.size
        if not 1 <= self.pixels <= host.MAX_LEN:
            raise ValueError(f"an INFER frame carries at most {host.MAX_LEN} pixel codes; "
                             f"this network takes {self.pixels}")
        if not 1 <= self.classes <= 255:
            raise ValueError(f"the link reports at most 255 classes, not {self.classes}")
        if network is None:
            network = Network(net, lanes=lanes, loadable=loadable, input_lanes=input_lanes,
                              queue_depth=queue_depth)
        elif not isinstance(network, (Network, SerialProcessor)):
            raise TypeError(f"network must be a hwsnn.hdl.network.Network or a "
                            f"hwsnn.hdl.processor.SerialProcessor, not "
                            f"{type(network).__name__}")
        elif network.net is not net and fingerprint(network.net) != self.fingerprint:
            raise ValueError("the given network was built from a different QNet")
        self.network = network
        self.timeout_bytes = timeout_bytes
        self.timeout_cycles = timeout_bytes * 10 * self.divisor
        self.value_shape = network.o.payload.shape()["value"].shape
        if self.value_shape.width > 32:
            raise ValueError(f"readout values of {self.value_shape.width} bits do not fit the "
                             "link's 32-bit fields")
        self.stores = network.stores
        if len(self.stores) > 255:
            raise ValueError(f"the link addresses at most 255 weight stores, not "
                             f"{len(self.stores)}")
        self.identity = host.Identity(
            host.PROTOCOL_VERSION, bytes.fromhex(self.fingerprint)[:8], self.classes,
            self.pixels, len(self.stores),
            layout_id(self.stores) if self.stores else host.NO_LAYOUT).encode()
        assert len(self.identity) == host.IDENTIFY_LEN
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "last_error": Out(8)})

    def payload_length(self, kind: int) -> int:
        """The payload length of a reply of ``kind`` (``K_*``)."""
        return reply_lengths(self.classes)[kind]

    def elaborate(self, platform):
        m = Module()
        n_pix, n_cls = self.pixels, self.classes
        m.submodules.network = net = self.network
        m.submodules.uart_rx = urx = UartRx(self.divisor)
        m.submodules.uart_tx = utx = UartTx(self.divisor)
        m.submodules.receiver = rx = FrameReceiver(
            pixels=n_pix, timeout_cycles=self.timeout_cycles, loadable=bool(self.stores))
        m.submodules.sample_writer = sw = SampleWriter(n_pix)
        m.submodules.slot = slot = RequestSlot()
        ports = net.signature.members  # (``pixels`` and ``load`` are the network's inputs)
        m.submodules.executor = ex = Executor(
            pixels=n_pix, classes=n_cls, pixel_signature=ports["pixels"].signature.flip(),
            readout_signature=ports["o"].signature)
        m.submodules.transmitter = tx = ReplyTransmitter(
            identity=self.identity, classes=n_cls, value_shape=self.value_shape)
        # Two pixel banks (bank b at addresses b·n_pix …): the sample writer fills one
        # while the executor reads the other. The readout RAM holds the values until the
        # reply, whose class comes first but from the network last.
        # The transmitter reads the readout RAM only for a reply the executor offers, and
        # the executor writes it only after its reply was taken: a read that meets a
        # write is never used.
        m.submodules.pixel_ram = pixel_ram = memory.Memory(shape=8, depth=2 * n_pix, init=[])
        m.submodules.value_ram = value_ram = ram(shape=self.value_shape, depth=n_cls, init=[],
                                                 collisions="undefined")

        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o, rx.i)
        wiring.connect(m, rx.sample, sw.i)
        wiring.connect(m, sw.w, pixel_ram.write_port())
        wiring.connect(m, rx.post, slot.post)
        wiring.connect(m, slot.req, ex.req)
        pix_addr, pix_data = registered_read(m, pixel_ram, name="pix_rd")
        m.d.comb += [pix_addr.eq(ex.pix_r.addr), ex.pix_r.data.eq(pix_data)]
        wiring.connect(m, ex.pixels, net.pixels)
        wiring.connect(m, net.o, ex.readout)
        val_w = value_ram.write_port()
        wiring.connect(m, ex.val_w, val_w)
        wiring.connect(m, ex.reply, tx.reply)
        val_addr, val_data = registered_read(m, value_ram, name="val_rd", write=val_w)
        m.d.comb += [val_addr.eq(tx.values.addr), tx.values.data.eq(val_data)]
        wiring.connect(m, tx.o, utx.i)
        # (a LOAD while busy is refused, ERROR 6: so too while the processor's SDRAM powers
        # up, 200 µs after configuration, when its bytes could not be written)
        powering_up = ~net.sdram_ready if "sdram_ready" in ports else 0
        m.d.comb += [sw.bank.eq(slot.bank), rx.sample_bad.eq(sw.bad),
                     rx.busy.eq(slot.busy | powering_up), rx.waiting.eq(slot.waiting),
                     self.busy.eq(slot.busy), self.last_error.eq(slot.last_error)]
        status = tx.status
        m.d.comb += [status.accepted.eq(slot.accepted), status.rejected.eq(slot.rejected),
                     status.inferences.eq(ex.inferences),
                     status.last_error.eq(slot.last_error), status.loaded.eq(rx.loaded)]
        if self.stores:
            m.submodules.weight_writer = ww = WeightWriter(
                self.stores, ports["load"].signature.flip())
            wiring.connect(m, rx.weights, ww.i)
            wiring.connect(m, ww.load, net.load)
            m.d.comb += rx.weights_bad.eq(ww.bad)
            if "verified" in ports:  # (the processor's SDRAM: loaded once read back right)
                m.d.comb += [net.committed.eq(ww.loaded),
                             rx.loaded.eq(ww.loaded & net.verified)]
            else:
                m.d.comb += rx.loaded.eq(ww.loaded)
        return m
