"""A UART host link around a ``Network``: frames in, inferences and replies out.

``HostLink(net, clk_hz=..., baud=...)`` is a ``wiring.Component`` with ``rx : In(1)``
(idle high) and ``tx : Out(1)``, speaking protocol version 3 of docs/link.md: IDENTIFY,
INFER, INFER_PACKED (zero runs coded) and STATUS frames with a CRC-8, ERROR replies for
bad frames, and for a network
with run-time weight stores (``loadable``, SPRAM on a UP5K) LOAD and COMMIT frames that
write its weights. For debugging it also has ``busy : Out(1)`` (a frame is being
executed or answered, or a reply is pending) and ``last_error : Out(8)`` (the latest
error code, 0 = none), e.g. for LEDs.

Inside: ``UartRx`` and ``UartTx`` (8N1, ``divisor`` clock cycles per bit), a receiver
that checks frames and writes the INFER payload into one of two pixel banks (and a LOAD
payload into the weight stores, byte by byte), and an executor that (only once the frame's
CRC has checked) streams the pixels into the network, collects the readout values in a
second RAM and sends the reply. The receiver keeps running while the executor works, so
the next request streams in while the current one computes (pipelining): a frame is
refused with ERROR 6 (busy) only when a request is already waiting for the executor (a
LOAD also while the executor works: the network reads the weights), and a refused frame's
payload never touches the pixel banks or the stores. A LOAD frame writes as it arrives,
so a corrupt one may have written: any LOAD clears the "loaded" flag, INFER is refused
(ERROR 7) until a COMMIT.
"""

from __future__ import annotations

import numbers
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..flow import host
from ..snn.qnet import QNet
from .network import Network
from .plan import layout_id
from .verilog import fingerprint

MIN_DIVISOR = 4
MAX_BAUD_ERROR = 0.03
COUNTER_BITS = 32


def crc8_update(crc, byte):
    """The CRC-8 (poly 0x07, not reflected) register after ``byte``: an XOR network.

    The update is linear in ``crc ^ byte``: output bit j is the XOR of the input bits i
    whose single-bit CRC has bit j set."""
    x = crc ^ byte
    bits = []
    for j in range(8):
        terms = [x[i] for i in range(8) if (host.crc8(bytes([1 << i])) >> j) & 1]
        bits.append(reduce(lambda a, b: a ^ b, terms) if terms else Const(0, 1))
    return Cat(*bits)


def _check_divisor(divisor) -> int:
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"UART divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be at least {MIN_DIVISOR} clock cycles per bit, "
                         f"not {divisor}")
    return divisor


def uart_divisor(clk_hz, baud) -> tuple[int, float]:
    """``(clk_hz // baud, relative baud error)``, checked: at least 4 cycles per bit and
    within 3 % of ``baud``."""
    for name, value in (("clock frequency", clk_hz), ("baud rate", baud)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, not {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")
    divisor = int(clk_hz // baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"a {clk_hz:g} Hz clock gives {divisor} cycles per bit at {baud:g} "
                         f"baud; the UART needs at least {MIN_DIVISOR}: lower the baud rate")
    achieved = clk_hz / divisor
    error = (achieved - baud) / baud
    if abs(error) > MAX_BAUD_ERROR:
        raise ValueError(f"a {clk_hz:g} Hz clock cannot make {baud:g} baud: divisor {divisor} "
                         f"gives {achieved:.0f} baud, {error:+.1%} off (at most "
                         f"±{MAX_BAUD_ERROR:.0%}); choose another baud rate or clock")
    return divisor, error


class UartTx(wiring.Component):
    """8N1 transmitter: a byte on ``i`` (a stream, ready when idle) goes out on ``tx``,
    start bit, 8 data bits LSB first, stop bit, each ``divisor`` cycles."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(unsigned(8))), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(8)
        left = Signal(range(11))  # bit periods left in this byte (0: idle)
        count = Signal(range(self.divisor))
        m.d.comb += self.i.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [self.tx.eq(0), shreg.eq(self.i.payload), left.eq(10),
                             count.eq(self.divisor - 1)]
        with m.Elif(count == 0):
            # data bits, then ones: the stop bit and idle
            m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(Cat(shreg[1:], 1)), left.eq(left - 1),
                         count.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += count.eq(count - 1)
        return m


class UartRx(wiring.Component):
    """8N1 receiver: ``rx`` (synchronised here) is sampled in the middle of every bit.
    A byte with a high stop bit strobes ``valid`` for one cycle with ``data``; a low stop
    bit strobes ``error`` instead, and the receiver waits for the line to go high again."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "data": Out(8), "valid": Out(1),
                          "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        count = Signal(range(d))
        nbit = Signal(range(8))
        shreg = Signal(8)
        m.d.sync += [self.valid.eq(0), self.error.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += count.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(~line):
                    m.d.sync += [count.eq(d - 1), nbit.eq(0)]
                    m.next = "DATA"
                with m.Else():
                    m.next = "IDLE"  # a glitch, not a start bit
            with m.State("DATA"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), nbit.eq(nbit + 1),
                                 count.eq(d - 1)]
                    with m.If(nbit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(line):
                    m.d.sync += [self.data.eq(shreg), self.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


# Reply kinds inside the link (the request slot and the executor).
# A good frame's kind is its CMD − 1.
K_IDENTIFY, K_INFER, K_STATUS, K_LOAD, K_COMMIT, K_INFER_PACKED = range(6)
K_ERROR = 7
_REPLY_CMD = {K_IDENTIFY: host.CMD_IDENTIFY | host.REPLY_BIT,
              K_INFER: host.CMD_INFER | host.REPLY_BIT,
              K_STATUS: host.CMD_STATUS | host.REPLY_BIT,
              K_LOAD: host.CMD_LOAD | host.REPLY_BIT,
              K_COMMIT: host.CMD_COMMIT | host.REPLY_BIT,
              K_INFER_PACKED: host.CMD_INFER_PACKED | host.REPLY_BIT, K_ERROR: host.CMD_ERROR}


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
        elif not isinstance(network, Network):
            raise TypeError(f"network must be a hwsnn.hdl.network.Network, not "
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
        infer = host.INFER_HEADER_LEN + 4 * self.classes
        return {K_IDENTIFY: host.IDENTIFY_LEN, K_STATUS: host.STATUS_LEN, K_ERROR: 1,
                K_INFER: infer, K_INFER_PACKED: infer, K_LOAD: 0, K_COMMIT: 0}[kind]

    def elaborate(self, platform):
        m = Module()
        n_pix, n_cls = self.pixels, self.classes
        m.submodules.network = net = self.network
        m.submodules.uart_rx = urx = UartRx(self.divisor)
        m.submodules.uart_tx = utx = UartTx(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # Two banks (bank b at addresses b·n_pix …): the receiver writes one while the
        # executor reads the other.
        m.submodules.pixel_ram = pixel_ram = memory.Memory(shape=8, depth=2 * n_pix, init=[])
        pix_w = pixel_ram.write_port()
        pix_r = pixel_ram.read_port()
        m.submodules.value_ram = value_ram = memory.Memory(shape=self.value_shape,
                                                           depth=n_cls, init=[])
        val_w = value_ram.write_port()
        val_r = value_ram.read_port()

        accepted = Signal(COUNTER_BITS)
        rejected = Signal(COUNTER_BITS)
        inferences = Signal(COUNTER_BITS)
        last_error = Signal(8)
        m.d.comb += self.last_error.eq(last_error)

        # The request slot between receiver and executor: one request (a good frame, or
        # an ERROR reply to send).
        req_valid = Signal()
        req_kind = Signal(3)
        req_code = Signal(8)
        req_bank = Signal()  # the pixel bank of an INFER request
        exec_idle = Signal()
        busy = Signal()
        m.d.comb += [busy.eq(~exec_idle | req_valid), self.busy.eq(busy)]

        # ---- receiver ---------------------------------------------------------------
        # Each received byte is registered with what the receiver asks of it (its
        # comparisons and the CRC update), one cycle before the receiver takes it: bytes
        # are at least 40 cycles apart, so nothing else moves in between.
        got, byte = Signal(), Signal(8)
        is_sync, is_command, crc_bad, length_bad = Signal(), Signal(), Signal(), Signal()
        rcmd = Signal(8)
        rlen_lo = Signal(8)
        rcount = Signal(range(n_pix + 1))
        rcrc = Signal(8)
        clash = Signal()  # the executor was busy at some point since this frame's sync
        waiting = Signal()  # a request waited in the slot at some point since the sync
        wbank = Signal()  # the bank the next INFER payload goes into
        waddr = Signal(range(2 * n_pix + 1))  # its next pixel's address
        wfull = Signal()  # every pixel of the sample written
        wlast = Signal()  # waddr is the bank's last pixel (registered)
        zeros = Signal(range(host.ZERO_RUN_MAX + 1))  # zeros still to write (packed)
        zcount = Signal()  # the next packed byte is a zero run's length
        zbad = Signal()  # the packed payload broke the coding
        wr = Signal()  # write ``wr_data`` at ``waddr`` this cycle
        wr_data = Signal(8)
        timer = Signal(range(self.timeout_cycles + 1))
        post = Signal()
        post_kind = Signal(3)
        post_code = Signal(8)
        # The receiver sees the executor's busy flag a cycle late (registered): a frame
        # starts at least 40 cycles after the last one was posted, so it cannot matter.
        busy_seen = Signal()
        waiting_seen = Signal()
        m.d.sync += [busy_seen.eq(busy), waiting_seen.eq(req_valid)]
        clash_now = clash | busy_seen
        waiting_now = waiting | waiting_seen
        crc_next = Signal(8)
        data = urx.data
        stores = self.stores
        commands = [host.CMD_IDENTIFY, host.CMD_INFER, host.CMD_STATUS, host.CMD_INFER_PACKED]
        if stores:
            commands += [host.CMD_LOAD, host.CMD_COMMIT]
        rlen = Cat(rlen_lo, data)
        is_zero, run_bad = Signal(), Signal()
        m.d.sync += [got.eq(urx.valid), byte.eq(data), crc_next.eq(crc8_update(rcrc, data)),
                     is_sync.eq(data == host.SYNC),
                     is_command.eq(reduce(lambda a, b: a | b, [data == c for c in commands])),
                     crc_bad.eq(data != rcrc), is_zero.eq(data == 0),
                     run_bad.eq((data == 0) | (data > host.ZERO_RUN_MAX)),
                     length_bad.eq(Mux(rcmd == host.CMD_LOAD,
                                       rlen < host.LOAD_HEADER_LEN + 1,
                                       Mux(rcmd == host.CMD_INFER_PACKED,
                                           (rlen == 0) | (rlen > min(2 * n_pix, host.MAX_LEN)),
                                           rlen != Mux(rcmd == host.CMD_INFER, n_pix, 0))))]
        # Weights loaded at run time (LOAD frames; see hdl.store): the payload after the
        # 3-byte header is written a byte per received byte, into word ``laddr``, byte
        # ``lbyte`` of store ``lsel``; ``lrem`` counts the payload bytes still to come.
        loaded = Signal(init=0 if stores else 1)  # COMMIT since reset and the last LOAD
        lsel = Signal(8)
        laddr = Signal(17)
        lbyte = Signal(8)
        lrem = Signal(16)
        lrem_last, lbyte_last, l_inside, l_bad = Signal(), Signal(), Signal(), Signal()
        m.d.sync += lrem_last.eq(lrem == 1)
        if stores:
            last_byte = Mux(lsel == 0, stores[0].bytes_per_word - 1, 0)
            inside = (lsel == 0) & (laddr < stores[0].depth)
            for i, spec in enumerate(stores[1:], start=1):
                last_byte = Mux(lsel == i, spec.bytes_per_word - 1, last_byte)
                inside = inside | ((lsel == i) & (laddr < spec.depth))
            m.d.sync += [lbyte_last.eq(lbyte == last_byte), l_inside.eq(inside)]
            load = net.load
            m.d.sync += load.en.eq(0)
        # The timeout compare is registered: timer reaches its last value this cycle if it
        # stood one below it last cycle and was not restarted then.
        near, restarted = Signal(), Signal()
        m.d.sync += [near.eq(timer == self.timeout_cycles - 2), restarted.eq(got | urx.error)]
        expired = near & ~restarted

        def post_error(code):
            m.d.comb += [post.eq(1), post_kind.eq(K_ERROR), post_code.eq(code)]

        def inside_frame():
            """Framing errors, the timeout and the clash flag, in every state after sync."""
            with m.If(busy_seen):
                m.d.sync += clash.eq(1)
            with m.If(waiting_seen):
                m.d.sync += waiting.eq(1)
            m.d.sync += timer.eq(Mux(got | urx.error, 0, timer + 1))
            with m.If(urx.error):
                post_error(host.ERR_FRAMING)
                m.next = "HUNT"
            with m.Elif(~got & expired):
                post_error(host.ERR_TRUNCATED)
                m.next = "HUNT"

        with m.FSM(name="rx_fsm"):
            with m.State("HUNT"):
                with m.If(got & is_sync):
                    m.d.sync += [rcrc.eq(0), timer.eq(0), clash.eq(busy_seen),
                                 waiting.eq(waiting_seen)]
                    m.next = "CMD"
            with m.State("CMD"):
                with m.If(got):
                    m.d.sync += [rcmd.eq(byte), rcrc.eq(crc_next)]
                    with m.If(is_command):
                        m.next = "LEN0"
                    with m.Else():
                        post_error(host.ERR_COMMAND)
                        m.next = "HUNT"
                inside_frame()
            with m.State("LEN0"):
                with m.If(got):
                    m.d.sync += [rlen_lo.eq(byte), rcrc.eq(crc_next)]
                    m.next = "LEN1"
                inside_frame()
            with m.State("LEN1"):
                with m.If(got):
                    m.d.sync += [rcrc.eq(crc_next), rcount.eq(0),
                                 lrem.eq(Cat(rlen_lo, byte)), l_bad.eq(0),
                                 waddr.eq(Mux(wbank, n_pix, 0)), wfull.eq(0),
                                 wlast.eq(n_pix == 1), zeros.eq(0), zcount.eq(0),
                                 zbad.eq(0)]
                    with m.If(length_bad):
                        post_error(host.ERR_LENGTH)
                        m.next = "HUNT"
                    with m.Elif(rcmd == host.CMD_INFER):
                        m.next = "PAYLOAD"
                    with m.Elif(rcmd == host.CMD_INFER_PACKED):
                        m.next = "PACKED"
                    if stores:
                        with m.Elif(rcmd == host.CMD_LOAD):
                            m.next = "LSEL"
                    with m.Else():
                        m.next = "CRC"
                inside_frame()
            if stores:
                for state, field, then in (("LSEL", lsel, "LADR0"),
                                           ("LADR0", laddr[:8], "LADR1"),
                                           ("LADR1", laddr[8:16], "LDATA")):
                    with m.State(state):
                        with m.If(got):
                            m.d.sync += [rcrc.eq(crc_next), field.eq(byte),
                                         lrem.eq(lrem - 1), lbyte.eq(0)]
                            if state == "LSEL":
                                m.d.sync += laddr[16].eq(0)
                            m.next = then
                        inside_frame()
                with m.State("LDATA"):
                    with m.If(got):
                        m.d.sync += [rcrc.eq(crc_next), lrem.eq(lrem - 1)]
                        with m.If(~clash_now):
                            m.d.sync += loaded.eq(0)
                            with m.If(l_inside):
                                m.d.sync += [load.en.eq(1), load.sel.eq(lsel),
                                             load.addr.eq(laddr), load.byte.eq(lbyte),
                                             load.data.eq(byte)]
                            with m.Else():
                                m.d.sync += l_bad.eq(1)
                        with m.If(lbyte_last):
                            m.d.sync += [lbyte.eq(0), laddr.eq(laddr + 1)]
                        with m.Else():
                            m.d.sync += lbyte.eq(lbyte + 1)
                        with m.If(lrem_last):
                            m.next = "CRC"
                    inside_frame()
            with m.State("PAYLOAD"):
                m.d.comb += [wr.eq(got), wr_data.eq(byte)]
                with m.If(got):
                    m.d.sync += [rcrc.eq(crc_next), rcount.eq(rcount + 1)]
                    with m.If(rcount == n_pix - 1):
                        m.next = "CRC"
                inside_frame()
            with m.State("PACKED"):
                # A non-zero byte is a pixel; ``0x00 n`` is n zero pixels, written one a
                # cycle after the n arrived (n <= 32: done before the next byte, which is
                # at least 40 cycles away).
                with m.If(got):
                    m.d.sync += [rcrc.eq(crc_next), lrem.eq(lrem - 1)]
                    with m.If(zcount):
                        m.d.sync += zcount.eq(0)
                        with m.If(run_bad):
                            m.d.sync += zbad.eq(1)
                        with m.Else():
                            m.d.sync += zeros.eq(byte)
                    with m.Elif(is_zero):
                        m.d.sync += zcount.eq(1)
                    with m.Else():
                        m.d.comb += [wr.eq(1), wr_data.eq(byte)]
                    with m.If(lrem_last):
                        m.next = "CRC"
                inside_frame()
            with m.State("CRC"):
                with m.If(got):
                    packed = rcmd == host.CMD_INFER_PACKED
                    with m.If(crc_bad):
                        post_error(host.ERR_CRC)
                    with m.Elif(Mux(rcmd == host.CMD_LOAD, clash_now, waiting_now)):
                        post_error(host.ERR_BUSY)
                    with m.Elif(((rcmd == host.CMD_INFER) | packed) & ~loaded):
                        post_error(host.ERR_NOT_LOADED)
                    with m.Elif(packed & (zbad | zcount | ~wfull)):
                        post_error(host.ERR_ENCODING)
                    with m.Elif((rcmd == host.CMD_LOAD) & l_bad):
                        post_error(host.ERR_ADDRESS)
                    with m.Else():
                        m.d.comb += [post.eq(1), post_kind.eq(rcmd - 1)]
                        if stores:
                            with m.If(rcmd == host.CMD_COMMIT):
                                m.d.sync += loaded.eq(1)
                    m.next = "HUNT"
                inside_frame()

        # Pixel writes: a payload byte, or a zero of a packed run (never in one cycle).
        # Only into the receiver's bank, and only when no request waited since the sync
        # (a refused frame never touches the banks); never past the sample's last pixel.
        with m.If(zeros != 0):
            m.d.comb += [wr.eq(1), wr_data.eq(0)]
            m.d.sync += zeros.eq(zeros - 1)
        m.d.comb += [pix_w.addr.eq(waddr), pix_w.data.eq(wr_data),
                     pix_w.en.eq(wr & ~wfull & ~waiting_now)]
        with m.If(wr):
            with m.If(wfull):
                m.d.sync += zbad.eq(1)
            with m.Else():
                m.d.sync += [waddr.eq(waddr + 1), wfull.eq(wlast)]
                if n_pix >= 2:
                    m.d.sync += wlast.eq((waddr == n_pix - 2) | (waddr == 2 * n_pix - 2))

        # A good frame always finds the slot empty (else it clashed); an error finding it
        # full (a reply already pending) is counted but not answered. The post is
        # registered first (the next frame is at least 40 cycles away).
        posted, posted_kind, posted_code = Signal(), Signal(3), Signal(8)
        m.d.sync += [posted.eq(post), posted_kind.eq(post_kind), posted_code.eq(post_code)]
        with m.If(posted):
            with m.If(posted_kind == K_ERROR):
                m.d.sync += [rejected.eq(rejected + 1), last_error.eq(posted_code)]
                with m.If(~req_valid):
                    m.d.sync += [req_valid.eq(1), req_kind.eq(K_ERROR),
                                 req_code.eq(posted_code)]
            with m.Else():
                m.d.sync += [accepted.eq(accepted + 1), req_valid.eq(1),
                             req_kind.eq(posted_kind), req_bank.eq(wbank)]
                with m.If((posted_kind == K_INFER) | (posted_kind == K_INFER_PACKED)):
                    m.d.sync += wbank.eq(~wbank)  # the next sample goes into the other

        # ---- executor ---------------------------------------------------------------
        kind = Signal(3)
        code = Signal(8)
        ptr = Signal(range(2 * n_pix + 1))
        ptr1 = Signal(range(2 * n_pix + 2), init=1)  # ptr + 1, kept in a register
        ptr_end = Signal(range(2 * n_pix))  # the bank's last address
        ptr_last = Signal()  # ptr == ptr_end, registered
        feeding = Signal()
        counting = Signal()
        cycles = Signal(COUNTER_BITS)
        klass = Signal(8)
        pix, out = net.pixels, net.o
        pix_xfer = pix.valid & pix.ready
        out_xfer = out.valid & out.ready

        tx = utx.i
        tx_xfer = tx.valid & tx.ready
        tcrc = Signal(8)
        longest = max(self.payload_length(k) for k in _REPLY_CMD)
        pos = Signal(range(longest + 1))  # payload byte index
        vbyte = Signal(2)
        vidx = Signal(range(n_cls + 1))
        plen = Signal(16)
        plen_last = Signal(16)  # plen − 1
        reply_cmd = Signal(8)
        with m.Switch(kind):
            for k, cmd in _REPLY_CMD.items():
                with m.Case(k):
                    # Registered: ``kind`` is set a SYNC byte (≥ 40 cycles) before use.
                    m.d.sync += [reply_cmd.eq(cmd), plen.eq(self.payload_length(k)),
                                 plen_last.eq(max(0, self.payload_length(k) - 1))]

        # The payload byte at ``pos`` for each kind.
        ident = Const(int.from_bytes(self.identity, "little"), 8 * host.IDENTIFY_LEN)
        status = Cat(accepted, rejected, inferences, last_error, loaded, Const(0, 7))
        value32 = Signal(signed(32))
        m.d.comb += value32.eq(val_r.data)
        header = Cat(klass, cycles)
        pay = Signal(8)
        with m.Switch(kind):
            with m.Case(K_IDENTIFY):
                m.d.comb += pay.eq(ident.word_select(pos[:5], 8))
            with m.Case(K_STATUS):
                m.d.comb += pay.eq(status.word_select(pos[:4], 8))
            with m.Case(K_INFER, K_INFER_PACKED):
                with m.If(pos < host.INFER_HEADER_LEN):
                    m.d.comb += pay.eq(header.word_select(pos[:3], 8))
                with m.Else():
                    m.d.comb += pay.eq(value32.as_unsigned().word_select(vbyte, 8))
            with m.Case(K_ERROR):
                m.d.comb += pay.eq(code)
        m.d.comb += [pix.payload.eq(pix_r.data), pix_r.addr.eq(ptr), val_r.addr.eq(vidx),
                     val_w.addr.eq(out.payload.index), val_w.data.eq(out.payload.value)]

        # The reply's CRC takes each sent byte a cycle after it left (registered): the
        # byte multiplexer and the CRC's XOR network are not one path. The next byte (or
        # the CRC byte) is taken at least 40 cycles later.
        sent, sent_byte = Signal(), Signal(8)
        m.d.sync += sent.eq(0)
        with m.If(sent):
            m.d.sync += tcrc.eq(crc8_update(tcrc, sent_byte))

        # Payload bytes leave from a register (``pay_q``): after each byte the position
        # (a cycle later), the value RAM's read and the byte multiplexer settle first.
        pay_q = Signal(8)
        settle = Signal(3)
        settled = Signal()
        advance = Signal()  # a payload byte left last cycle
        m.d.sync += [pay_q.eq(pay), advance.eq(0)]
        m.d.comb += settled.eq(settle == 5)
        with m.If(tx_xfer):
            m.d.sync += settle.eq(0)
        with m.Elif(~settled):
            m.d.sync += settle.eq(settle + 1)

        def send(value, then):
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(value)]
            with m.If(tx_xfer):
                m.d.sync += [sent.eq(1), sent_byte.eq(value)]
                m.next = then

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
                m.d.comb += exec_idle.eq(1)
                base = Mux(req_bank, n_pix, 0)
                m.d.sync += [ptr.eq(base), ptr1.eq(base + 1), ptr_end.eq(base + n_pix - 1),
                             ptr_last.eq(n_pix == 1), counting.eq(0)]
                with m.If(req_valid):
                    m.d.sync += [req_valid.eq(0), kind.eq(req_kind), code.eq(req_code)]
                    with m.If((req_kind == K_INFER) | (req_kind == K_INFER_PACKED)):
                        m.next = "LOAD"
                    with m.Else():
                        m.next = "SYNC"
            with m.State("LOAD"):  # the pixel RAM reads address 0
                m.d.sync += feeding.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [out.ready.eq(1), val_w.en.eq(out_xfer)]
                last = out_xfer & out.payload.last
                with m.If(counting & ~last):
                    m.d.sync += cycles.eq(cycles + 1)
                with m.If(pix_xfer & ~counting):  # the first pixel
                    m.d.sync += [cycles.eq(1), counting.eq(1)]
                with m.If(last):
                    m.d.sync += [klass.eq(out.payload.argmax), inferences.eq(inferences + 1)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(host.SYNC)]
                with m.If(tx_xfer):
                    m.d.sync += tcrc.eq(0)
                    m.next = "CMD"
            with m.State("CMD"):
                send(reply_cmd, "LEN0")
            with m.State("LEN0"):
                send(plen[:8], "LEN1")
                m.d.sync += [pos.eq(0), vbyte.eq(0), vidx.eq(0)]
            with m.State("LEN1"):
                send(plen[8:], "PAYLOAD")
                with m.If(tx_xfer & (plen == 0)):
                    m.next = "CRC"
            with m.State("PAYLOAD"):
                with m.If(settled):
                    send(pay_q, "PAYLOAD")
                with m.If(tx_xfer):
                    m.d.sync += advance.eq(1)
                    with m.If(pos == plen_last):
                        m.next = "CRC"
                # The position moves on a cycle after the byte left (registered).
                with m.If(advance):
                    m.d.sync += pos.eq(pos + 1)
                    with m.If(pos >= host.INFER_HEADER_LEN):
                        m.d.sync += vbyte.eq(vbyte + 1)
                        with m.If(vbyte == 3):
                            m.d.sync += vidx.eq(vidx + 1)  # read from the next cycle on
            with m.State("CRC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(tcrc)]
                with m.If(tx_xfer):
                    m.next = "IDLE"
        return m
