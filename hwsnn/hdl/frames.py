"""The framing of the host link (docs/link.md): frames in, their payloads written, replies out.

``FrameReceiver`` turns the bytes from ``UartRx`` into verdicts (a good frame's command or
an ERROR code, ``post``) and hands the payloads on as they arrive: an INFER or
INFER_PACKED payload to ``SampleWriter`` (pixel codes into a bank of the pixel RAM), a LOAD
payload to ``WeightWriter`` (bytes into the network's run-time weight stores).
``ReplyTransmitter`` turns a reply (``REPLY``: what the executor did) into a framed reply,
byte by byte, for ``UartTx``. ``hwsnn.hdl.link.HostLink`` connects them.

Received bytes are at least ``10 · divisor`` ≥ 40 cycles apart, and the components rely on
it: results are registered, counted on to settle between two bytes.
"""

from __future__ import annotations

from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..flow import host
from .uart import RX_BYTE

COUNTER_BITS = 32

# What a request or a reply is, inside the link (the request slot and the executor).
# A good frame's kind is its CMD − 1.
K_IDENTIFY, K_INFER, K_STATUS, K_LOAD, K_COMMIT, K_INFER_PACKED = range(6)
K_ERROR = 7
_REPLY_CMD = {K_IDENTIFY: host.CMD_IDENTIFY | host.REPLY_BIT,
              K_INFER: host.CMD_INFER | host.REPLY_BIT,
              K_STATUS: host.CMD_STATUS | host.REPLY_BIT,
              K_LOAD: host.CMD_LOAD | host.REPLY_BIT,
              K_COMMIT: host.CMD_COMMIT | host.REPLY_BIT,
              K_INFER_PACKED: host.CMD_INFER_PACKED | host.REPLY_BIT, K_ERROR: host.CMD_ERROR}

# A verdict of the receiver: a good frame (``kind`` = CMD − 1) or an ERROR (``K_ERROR``,
# error ``code``).
POST = data.StructLayout({"kind": unsigned(3), "code": unsigned(8)})
# A beat of an INFER or INFER_PACKED payload: ``start`` (``data`` unused) comes when the
# frame's header has arrived, then a beat per payload byte; ``packed``: INFER_PACKED.
SAMPLE_BEAT = data.StructLayout({"data": unsigned(8), "start": unsigned(1),
                                 "packed": unsigned(1)})
# A beat of a LOAD payload (``start``, then a beat per payload byte, as ``SAMPLE_BEAT``),
# or ``commit``: a COMMIT frame was accepted.
WEIGHT_BEAT = data.StructLayout({"data": unsigned(8), "start": unsigned(1),
                                 "commit": unsigned(1)})
# A request in the slot: its ``kind``, an ERROR's ``code``, an INFER's pixel ``bank``.
REQUEST = data.StructLayout({"kind": unsigned(3), "code": unsigned(8), "bank": unsigned(1)})
# A reply to send: the request's ``kind`` and ``code``; for INFER the predicted class
# ``klass`` and the network's ``cycles`` (the values are in the readout RAM).
REPLY = data.StructLayout({"kind": unsigned(3), "code": unsigned(8), "klass": unsigned(8),
                           "cycles": unsigned(COUNTER_BITS)})
# The STATUS payload, as it is sent (14 bytes, little-endian).
STATUS = data.StructLayout({"accepted": unsigned(COUNTER_BITS),
                            "rejected": unsigned(COUNTER_BITS),
                            "inferences": unsigned(COUNTER_BITS), "last_error": unsigned(8),
                            "loaded": unsigned(1), "reserved": unsigned(7)})


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


def reply_lengths(classes: int) -> dict[int, int]:
    """The payload length of each reply kind, for a network of ``classes`` classes."""
    infer = host.INFER_HEADER_LEN + 4 * classes
    return {K_IDENTIFY: host.IDENTIFY_LEN, K_STATUS: host.STATUS_LEN, K_ERROR: 1,
            K_INFER: infer, K_INFER_PACKED: infer, K_LOAD: 0, K_COMMIT: 0}


class FrameReceiver(wiring.Component):
    """Frames in, verdicts out, payloads handed on as they arrive.

    Ports: ``i``, the received bytes (``RX_BYTE``, taken every cycle). ``post`` (always
    ready): a beat per frame at its end, a good frame's kind or an ERROR code (docs/link.md:
    checked as the bytes arrive, the checks at the CRC byte in the order 1, 6, 7, 9, 8; a
    frame quiet for ``timeout_cycles`` is truncated, ERROR 4). ``sample`` (always ready):
    an INFER or INFER_PACKED payload, for ``SampleWriter``; ``sample_bad`` back from it.
    With ``loadable``: ``weights`` (always ready), a LOAD payload and COMMIT, for
    ``WeightWriter``; ``weights_bad`` and ``loaded`` back from it (without, ``loaded`` is
    1). In from the request slot: ``busy`` (the executor works or a request waits) and
    ``waiting`` (a request waits). A frame during which a request waited is refused
    (ERROR 6), a LOAD also one during which the link was busy; their payloads are not
    handed on from then on. ``sample`` and ``weights`` beats leave from registers, a cycle
    after their byte was taken (a verdict in the cycle it is decided).
    """

    def __init__(self, *, pixels: int, timeout_cycles: int, loadable: bool = False):
        self.pixels, self.timeout_cycles, self.loadable = pixels, timeout_cycles, loadable
        members = {"i": In(stream.Signature(RX_BYTE)),
                   "post": Out(stream.Signature(POST, always_ready=True)),
                   "sample": Out(stream.Signature(SAMPLE_BEAT, always_ready=True)),
                   "sample_bad": In(1), "busy": In(1), "waiting": In(1),
                   "loaded": In(1, init=1)}
        if loadable:
            members.update(weights=Out(stream.Signature(WEIGHT_BEAT, always_ready=True)),
                           weights_bad=In(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n_pix = self.pixels
        m.d.comb += self.i.ready.eq(1)
        data, framing = self.i.payload.data, Signal()
        m.d.comb += framing.eq(self.i.valid & self.i.payload.error)
        # Each received byte is registered with what the receiver asks of it (its
        # comparisons and the CRC update), one cycle before the receiver takes it.
        got, byte, crc_next = Signal(), Signal(8), Signal(8)
        is_sync, is_command, crc_bad, length_bad = Signal(), Signal(), Signal(), Signal()
        rcmd, rlen_lo, rcrc = Signal(8), Signal(8), Signal(8)
        lrem, lrem_last = Signal(16), Signal()  # payload bytes still to come; == 1
        commands = [host.CMD_IDENTIFY, host.CMD_INFER, host.CMD_STATUS, host.CMD_INFER_PACKED]
        if self.loadable:
            commands += [host.CMD_LOAD, host.CMD_COMMIT]
        rlen = Cat(rlen_lo, data)
        m.d.sync += [got.eq(self.i.valid & ~self.i.payload.error), byte.eq(data),
                     crc_next.eq(crc8_update(rcrc, data)), is_sync.eq(data == host.SYNC),
                     is_command.eq(reduce(lambda a, b: a | b, [data == c for c in commands])),
                     crc_bad.eq(data != rcrc), lrem_last.eq(lrem == 1),
                     length_bad.eq(Mux(rcmd == host.CMD_LOAD,
                                       rlen < host.LOAD_HEADER_LEN + 1,
                                       Mux(rcmd == host.CMD_INFER_PACKED,
                                           (rlen == 0) | (rlen > min(2 * n_pix, host.MAX_LEN)),
                                           rlen != Mux(rcmd == host.CMD_INFER, n_pix, 0))))]
        # The slot's flags, a cycle late (registered): a frame starts at least 40 cycles
        # after the last one was posted. ``clash``/``waiting``: at some point since the sync.
        busy_seen, waiting_seen, clash, waiting = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [busy_seen.eq(self.busy), waiting_seen.eq(self.waiting)]
        clash_now, waiting_now = clash | busy_seen, waiting | waiting_seen
        # The timeout compare is registered: timer reaches its last value this cycle if it
        # stood one below it last cycle and was not restarted then.
        timer = Signal(range(self.timeout_cycles + 1))
        near, restarted = Signal(), Signal()
        m.d.sync += [near.eq(timer == self.timeout_cycles - 2), restarted.eq(got | framing)]
        expired = near & ~restarted

        # The payloads: a beat per byte (and ``start``) as long as the frame may write.
        packed = rcmd == host.CMD_INFER_PACKED
        infer = (rcmd == host.CMD_INFER) | packed
        load = rcmd == host.CMD_LOAD
        # Both leave from registers, a cycle after the byte was taken: the writers' logic
        # and the receiver's decoding are not one path. (The data is ``byte`` itself, a
        # register that holds until the next byte, at least 40 cycles on.)
        payload, start = Signal(), Signal()  # a payload beat this cycle; the start beat
        commit = Signal()  # a COMMIT frame is accepted this cycle
        m.d.sync += [self.sample.valid.eq(payload & infer & ~waiting_now),
                     self.sample.payload.start.eq(start),
                     self.sample.payload.packed.eq(packed)]
        m.d.comb += self.sample.payload.data.eq(byte)
        if self.loadable:
            weights = self.weights
            m.d.sync += [weights.valid.eq((payload & load & ~clash_now) | commit),
                         weights.payload.start.eq(start), weights.payload.commit.eq(commit)]
            m.d.comb += weights.payload.data.eq(byte)

        def post(kind, code=0):
            m.d.comb += [self.post.valid.eq(1), self.post.payload.kind.eq(kind),
                         self.post.payload.code.eq(code)]

        def inside_frame():
            """Framing errors, the timeout and the slot's flags, in every state after sync."""
            with m.If(busy_seen):
                m.d.sync += clash.eq(1)
            with m.If(waiting_seen):
                m.d.sync += waiting.eq(1)
            m.d.sync += timer.eq(Mux(got | framing, 0, timer + 1))
            with m.If(framing):
                post(K_ERROR, host.ERR_FRAMING)
                m.next = "HUNT"
            with m.Elif(~got & expired):
                post(K_ERROR, host.ERR_TRUNCATED)
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
                        post(K_ERROR, host.ERR_COMMAND)
                        m.next = "HUNT"
                inside_frame()
            with m.State("LEN0"):
                with m.If(got):
                    m.d.sync += [rlen_lo.eq(byte), rcrc.eq(crc_next)]
                    m.next = "LEN1"
                inside_frame()
            with m.State("LEN1"):
                m.d.comb += [payload.eq(got), start.eq(1)]
                with m.If(got):
                    m.d.sync += [rcrc.eq(crc_next), lrem.eq(Cat(rlen_lo, byte))]
                    with m.If(length_bad):
                        post(K_ERROR, host.ERR_LENGTH)
                        m.next = "HUNT"
                    with m.Elif(infer | (load if self.loadable else 0)):
                        m.next = "PAYLOAD"
                    with m.Else():
                        m.next = "CRC"
                inside_frame()
            with m.State("PAYLOAD"):
                m.d.comb += payload.eq(got)
                with m.If(got):
                    m.d.sync += [rcrc.eq(crc_next), lrem.eq(lrem - 1)]
                    with m.If(lrem_last):
                        m.next = "CRC"
                inside_frame()
            with m.State("CRC"):
                with m.If(got):
                    with m.If(crc_bad):
                        post(K_ERROR, host.ERR_CRC)
                    with m.Elif(Mux(load, clash_now, waiting_now)):
                        post(K_ERROR, host.ERR_BUSY)
                    with m.Elif(infer & ~self.loaded):
                        post(K_ERROR, host.ERR_NOT_LOADED)
                    with m.Elif(packed & self.sample_bad):
                        post(K_ERROR, host.ERR_ENCODING)
                    with m.Elif(load & (self.weights_bad if self.loadable else 0)):
                        post(K_ERROR, host.ERR_ADDRESS)
                    with m.Else():
                        post(rcmd - 1)
                        m.d.comb += commit.eq(rcmd == host.CMD_COMMIT)
                    m.next = "HUNT"
                inside_frame()
        return m


class SampleWriter(wiring.Component):
    """An INFER or INFER_PACKED payload (``i``, always ready: ``SAMPLE_BEAT``) into bank
    ``bank`` (read at the start beat) of the pixel RAM (``w``: ``2 · pixels`` bytes, bank b
    at addresses b·pixels …), a pixel per payload byte, or for a packed payload ``0x00 n``
    n zero pixels (1 ≤ n ≤ 32), written one a cycle after the beat of n. Never past the
    bank's last pixel. ``bad``: the payload since the start beat is not one whole sample
    (a coding error, too few pixels or too many)."""

    def __init__(self, pixels: int):
        self.pixels = pixels
        super().__init__({
            "i": In(stream.Signature(SAMPLE_BEAT, always_ready=True)), "bank": In(1),
            "w": Out(memory.WritePort.Signature(addr_width=ceil_log2(2 * pixels),
                                                shape=8).flip()),
            "bad": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n_pix, beat = self.pixels, self.i.payload
        waddr = Signal(range(2 * n_pix + 1))  # the next pixel's address
        wfull = Signal()  # every pixel of the sample written
        wlast = Signal()  # waddr is the bank's last pixel (registered)
        zeros = Signal(range(host.ZERO_RUN_MAX + 1))  # zeros still to write
        zcount = Signal()  # the next packed byte is a zero run's length
        zbad = Signal()  # the packed payload broke the coding
        wr, wr_data = Signal(), Signal(8)  # write ``wr_data`` at ``waddr`` this cycle
        m.d.comb += self.bad.eq(zbad | zcount | ~wfull)
        with m.If(self.i.valid & ~beat.start):
            with m.If(~beat.packed):
                m.d.comb += [wr.eq(1), wr_data.eq(beat.data)]
            with m.Elif(zcount):
                m.d.sync += zcount.eq(0)
                with m.If((beat.data == 0) | (beat.data > host.ZERO_RUN_MAX)):
                    m.d.sync += zbad.eq(1)
                with m.Else():
                    m.d.sync += zeros.eq(beat.data)
            with m.Elif(beat.data == 0):
                m.d.sync += zcount.eq(1)
            with m.Else():
                m.d.comb += [wr.eq(1), wr_data.eq(beat.data)]
        # A pixel byte, or a zero of a run (never in one cycle: bytes are 40 cycles apart).
        with m.If(zeros != 0):
            m.d.comb += [wr.eq(1), wr_data.eq(0)]
            m.d.sync += zeros.eq(zeros - 1)
        m.d.comb += [self.w.addr.eq(waddr), self.w.data.eq(wr_data),
                     self.w.en.eq(wr & ~wfull)]
        with m.If(wr):
            with m.If(wfull):
                m.d.sync += zbad.eq(1)
            with m.Else():
                m.d.sync += [waddr.eq(waddr + 1), wfull.eq(wlast)]
                if n_pix >= 2:
                    m.d.sync += wlast.eq((waddr == n_pix - 2) | (waddr == 2 * n_pix - 2))
        with m.If(self.i.valid & beat.start):
            m.d.sync += [waddr.eq(Mux(self.bank, n_pix, 0)), wfull.eq(0),
                         wlast.eq(n_pix == 1), zeros.eq(0), zcount.eq(0), zbad.eq(0)]
        return m


class WeightWriter(wiring.Component):
    """A LOAD payload (``i``, always ready: ``WEIGHT_BEAT``) into the run-time weight
    stores ``stores`` (``plan.StoreSpec`` s) through the network's ``load`` port (its
    signature ``load_signature``; written the cycle after each beat): the store, the
    word address (2 bytes, little-endian), then the data bytes, byte after byte, word
    after word. ``bad``: a data byte since the start beat fell outside the stores (not
    written). ``loaded``: a COMMIT beat came since reset and the last data byte."""

    def __init__(self, stores, load_signature: wiring.Signature):
        self.stores = list(stores)
        super().__init__({"i": In(stream.Signature(WEIGHT_BEAT, always_ready=True)),
                          "load": Out(load_signature), "bad": Out(1), "loaded": Out(1)})

    def elaborate(self, platform):
        m = Module()
        stores, beat, load = self.stores, self.i.payload, self.load
        field = Signal(range(4))  # 0: store, 1, 2: address bytes, 3: data
        lsel, laddr, lbyte = Signal(8), Signal(17), Signal(8)  # store, word, byte in it
        lbyte_last, inside, bad = Signal(), Signal(), Signal()
        last_byte = Mux(lsel == 0, stores[0].bytes_per_word - 1, 0)
        inside_now = (lsel == 0) & (laddr < stores[0].depth)
        for i, spec in enumerate(stores[1:], start=1):
            last_byte = Mux(lsel == i, spec.bytes_per_word - 1, last_byte)
            inside_now = inside_now | ((lsel == i) & (laddr < spec.depth))
        m.d.sync += [lbyte_last.eq(lbyte == last_byte), inside.eq(inside_now), load.en.eq(0)]
        m.d.comb += self.bad.eq(bad)
        with m.If(self.i.valid & beat.commit):
            m.d.sync += self.loaded.eq(1)
        with m.Elif(self.i.valid & beat.start):
            m.d.sync += [field.eq(0), bad.eq(0)]
        with m.Elif(self.i.valid):
            with m.Switch(field):
                with m.Case(0):
                    m.d.sync += [lsel.eq(beat.data), laddr[16].eq(0), lbyte.eq(0),
                                 field.eq(1)]
                with m.Case(1):
                    m.d.sync += [laddr[:8].eq(beat.data), lbyte.eq(0), field.eq(2)]
                with m.Case(2):
                    m.d.sync += [laddr[8:16].eq(beat.data), lbyte.eq(0), field.eq(3)]
                with m.Case(3):
                    m.d.sync += self.loaded.eq(0)
                    with m.If(inside):
                        m.d.sync += [load.en.eq(1), load.sel.eq(lsel), load.addr.eq(laddr),
                                     load.byte.eq(lbyte), load.data.eq(beat.data)]
                    with m.Else():
                        m.d.sync += bad.eq(1)
                    with m.If(lbyte_last):
                        m.d.sync += [lbyte.eq(0), laddr.eq(laddr + 1)]
                    with m.Else():
                        m.d.sync += lbyte.eq(lbyte + 1)
        return m


class ReplyTransmitter(wiring.Component):
    """A reply (``reply``: ``REPLY``, taken when its CRC byte is loaded into ``o``) as a
    frame on ``o`` (bytes, for ``UartTx``; ``valid`` and ``payload`` are registers): SYNC
    from the cycle after it is offered, CMD, LEN, the payload, CRC.
    The payload of each kind: ``identity`` (IDENTIFY), ``status`` (STATUS, read as each
    byte goes out), the class, ``cycles`` and the ``classes`` values of the readout RAM
    (``values``: ``value_shape``, sign-extended to 32 bits; INFER, INFER_PACKED), the
    ERROR code, nothing (LOAD, COMMIT).

    A byte is loaded only into an empty ``o`` (a cycle without a byte after each one
    taken); each payload byte 6 cycles after the byte before it at the earliest (the
    multiplexers settle), and the CRC takes each byte a cycle after it was loaded;
    behind ``UartTx`` (40 cycles a byte at least) none of this ever delays a byte."""

    def __init__(self, *, identity: bytes, classes: int, value_shape):
        self.identity, self.classes, self.value_shape = identity, classes, value_shape
        self.lengths = reply_lengths(classes)
        super().__init__({
            "reply": In(stream.Signature(REPLY)), "status": In(STATUS),
            "values": Out(memory.ReadPort.Signature(addr_width=ceil_log2(classes),
                                                    shape=value_shape).flip()),
            "o": Out(stream.Signature(unsigned(8)))})

    def elaborate(self, platform):
        m = Module()
        o, reply = self.o, self.reply.payload
        longest = max(self.lengths.values())
        pos = Signal(range(longest + 1))  # payload byte index
        vbyte = Signal(2)  # byte of the value
        vidx = Signal(range(self.classes + 1))  # the value
        plen, reply_cmd = Signal(16), Signal(8)
        empty = Signal()  # no payload
        plen_last = Signal.like(pos)  # the last payload byte's index (plen − 1)
        with m.Switch(reply.kind):
            for k, cmd in _REPLY_CMD.items():
                with m.Case(k):
                    # Registered: ``kind`` is set a SYNC byte (≥ 40 cycles) before use.
                    m.d.sync += [reply_cmd.eq(cmd), plen.eq(self.lengths[k]),
                                 empty.eq(self.lengths[k] == 0),
                                 plen_last.eq(max(0, self.lengths[k] - 1))]
        # ``pos`` is the last payload byte's, registered: ``pos`` moves a cycle after a
        # byte is loaded and the next is loaded 5 cycles later at the earliest.
        pos_last = Signal()
        m.d.sync += pos_last.eq(pos == plen_last)

        # The payload byte at ``pos`` for each kind.
        ident = Const(int.from_bytes(self.identity, "little"), 8 * host.IDENTIFY_LEN)
        value32 = Signal(signed(32))
        m.d.comb += [value32.eq(self.values.data), self.values.addr.eq(vidx)]
        header = Cat(reply.klass, reply.cycles)
        pay = Signal(8)
        with m.Switch(reply.kind):
            with m.Case(K_IDENTIFY):
                m.d.comb += pay.eq(ident.word_select(pos[:5], 8))
            with m.Case(K_STATUS):
                m.d.comb += pay.eq(self.status.as_value().word_select(pos[:4], 8))
            with m.Case(K_INFER, K_INFER_PACKED):
                with m.If(pos < host.INFER_HEADER_LEN):
                    m.d.comb += pay.eq(header.word_select(pos[:3], 8))
                with m.Else():
                    m.d.comb += pay.eq(value32.as_unsigned().word_select(vbyte, 8))
            with m.Case(K_ERROR):
                m.d.comb += pay.eq(reply.code)

        # ``o`` is a register: a byte is loaded into it (``emit``) only while it is empty,
        # so the state machine never waits on the consumer's ``ready`` in the same cycle.
        # The CRC takes each loaded byte a cycle later (the byte multiplexer and the CRC's
        # XOR network are not one path).
        free = ~o.valid
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        tcrc, sent, sent_byte = Signal(8), Signal(), Signal(8)
        m.d.sync += sent.eq(0)
        with m.If(sent):
            m.d.sync += tcrc.eq(crc8_update(tcrc, sent_byte))

        # Payload bytes come from a register (``pay_q``): after each byte the position
        # (a cycle later), the readout RAM's read and the byte multiplexer settle first.
        pay_q, settle, settled = Signal(8), Signal(3), Signal()
        advance = Signal()  # a payload byte was loaded last cycle
        m.d.sync += [pay_q.eq(pay), advance.eq(0)]
        m.d.comb += settled.eq(settle == 5)

        def emit(value, then):
            with m.If(free):
                m.d.sync += [o.valid.eq(1), o.payload.eq(value), sent.eq(1),
                             sent_byte.eq(value), settle.eq(0)]
                m.next = then

        with m.If(~settled):
            m.d.sync += settle.eq(settle + 1)

        with m.FSM(name="tx_fsm"):
            with m.State("SYNC"):
                with m.If(self.reply.valid & free):
                    m.d.sync += [o.valid.eq(1), o.payload.eq(host.SYNC), settle.eq(0)]
                    m.d.sync += tcrc.eq(0)
                    m.next = "CMD"
            with m.State("CMD"):
                emit(reply_cmd, "LEN0")
            with m.State("LEN0"):
                emit(plen[:8], "LEN1")
                m.d.sync += [pos.eq(0), vbyte.eq(0), vidx.eq(0)]
            with m.State("LEN1"):
                emit(plen[8:], "PAYLOAD")
                with m.If(free & empty):
                    m.next = "CRC"
            with m.State("PAYLOAD"):
                with m.If(settled):
                    emit(pay_q, "PAYLOAD")
                    with m.If(free):
                        m.d.sync += advance.eq(1)
                        with m.If(pos_last):
                            m.next = "CRC"
                # The position moves on a cycle after the byte was loaded (registered).
                with m.If(advance):
                    m.d.sync += pos.eq(pos + 1)
                    with m.If(pos >= host.INFER_HEADER_LEN):
                        m.d.sync += vbyte.eq(vbyte + 1)
                        with m.If(vbyte == 3):
                            m.d.sync += vidx.eq(vidx + 1)  # read from the next cycle on
            with m.State("CRC"):  # once the last byte is in the CRC
                with m.If(~sent & free):
                    m.d.comb += self.reply.ready.eq(1)
                    m.d.sync += [o.valid.eq(1), o.payload.eq(tcrc)]
                    m.next = "SYNC"
        return m
