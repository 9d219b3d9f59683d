"""Fuzzing the UART host link: what the device must answer, and frames to try it with.

``LinkModel`` is the device of docs/link.md in Python: given the symbols a host puts on
the line (bytes, a stop bit each, idle cycles before each) it predicts every reply the
link sends (ERROR codes, IDENTIFY, STATUS with its counters, INFER with the golden
model's class and readout, LOAD, COMMIT), which requests are rejected and which replies
are not sent (busy, one reply waiting at a time), and what the weight stores hold. It
works in clock cycles, from the protocol's timing: bytes of ``10 · divisor`` cycles, the
``timeout_cycles`` of silence that truncate a frame, the busy time of a reply. Where a
prediction depends on which of two moments comes first and they lie within ``margin``
cycles of each other (or on an inference's duration, which the protocol does not fix)
it raises ``Ambiguous`` rather than guess; the generator then tries another case. The
few cycles the link's pipeline adds (its receiver's synchroniser and registers, the
request slot, a cycle per reply byte) are the RTL's own: the bench checks that every
reply starts on the cycle the model gives, so a change there shows at once.

``Fuzzer`` draws cases from a seeded ``random.Random``: well-formed requests of every
kind, and bad ones (a corrupted CRC or bit, a frame cut at every position in turn, a
wrong length, an unknown command, a low stop bit, random bytes, runs of sync bytes,
silences inside a frame longer than the timeout, frames back to back, and with weight
stores LOADs outside them or of wrong bytes, INFER before COMMIT, a whole weight load
with a frame hit on the line), and the cases of bugs it once found (``FIXED``). The bench
(``link_fuzz_bench``) sends them through ``hwsnn.flow.host.Client`` and checks every reply.

Plain Python: only ``hwsnn.flow.host`` is needed (the bench imports this module inside the
simulator, without torch).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hwsnn.flow import host

INF = float("inf")
TX_LATENCY = 1  # from the cycle a reply byte goes to the transmitter to its start bit
COMMANDS = (host.CMD_IDENTIFY, host.CMD_INFER, host.CMD_STATUS, host.CMD_INFER_PACKED)
INFERS = (host.CMD_INFER, host.CMD_INFER_PACKED)
STORE_COMMANDS = (host.CMD_LOAD, host.CMD_COMMIT)


@dataclass(frozen=True)
class Symbol:
    """One UART character on the line to the device."""

    byte: int
    stop: bool = True  # False: the stop bit is low (a framing error)
    gap: int = 0  # idle (high) cycles before the start bit


def line(data: bytes, gap: int = 0) -> list[Symbol]:
    """``data`` as symbols, the first ``gap`` idle cycles after the previous one."""
    return [Symbol(b, True, gap if i == 0 else 0) for i, b in enumerate(bytes(data))]


def symbol_cycles(s: Symbol, divisor: int) -> int:
    """Cycles a symbol holds the line: its gap, 10 bits, and 2 more high after a low stop
    bit (so that the receiver sees the line idle before the next start bit)."""
    return s.gap + 10 * divisor + (0 if s.stop else 2 * divisor)


class Ambiguous(Exception):
    """The protocol does not decide the outcome of this case (events too close)."""


@dataclass(frozen=True)
class Store:
    """A weight store as the host sees it: its depth in words, bytes per word, and the
    correct contents (``StoreSpec.encode()``)."""

    depth: int
    bytes_per_word: int
    data: bytes


@dataclass(frozen=True)
class Device:
    """What the model needs to know of a built link."""

    divisor: int
    timeout_cycles: int
    pixels: int
    classes: int
    identity: bytes  # the IDENTIFY payload
    stores: tuple[Store, ...] = ()
    golden: dict = field(default_factory=dict)  # pixel bytes -> (class, readout values)
    margin: int = 0  # cycles; 0: two bit periods

    @property
    def commands(self) -> tuple[int, ...]:
        return COMMANDS + (STORE_COMMANDS if self.stores else ())

    @property
    def byte_cycles(self) -> int:
        return 10 * self.divisor

    @property
    def reply_byte_cycles(self) -> int:
        """Cycles between the link's reply bytes: its transmitter takes the next byte the
        cycle after a byte's stop bit ended."""
        return 10 * self.divisor + 1

    @property
    def guard(self) -> int:
        return self.margin or 2 * self.divisor

    @property
    def got_latency(self) -> int:
        """From a byte's start bit on ``rx`` to the cycle the receiver takes the byte: two
        synchroniser flip-flops, the middle of the start bit, 8 data bits and the stop
        bit at mid-bit, the receiver's strobe and the link's input register."""
        d = self.divisor
        return 4 + d // 2 + 9 * d

    def reply_length(self, kind: int) -> int:
        return {host.CMD_IDENTIFY: host.IDENTIFY_LEN, host.CMD_STATUS: host.STATUS_LEN,
                host.CMD_INFER: host.INFER_HEADER_LEN + 4 * self.classes,
                host.CMD_INFER_PACKED: host.INFER_HEADER_LEN + 4 * self.classes,
                host.CMD_LOAD: 0, host.CMD_COMMIT: 0, host.CMD_ERROR: 1}[kind]

    def frame_bytes(self, reply: Reply) -> int:
        """Bytes of a reply frame on the line."""
        return 5 + (len(reply.payload) if reply.infer is None
                    else self.reply_length(host.CMD_INFER))

    def longest_reply_cycles(self) -> int:
        longest = max(self.reply_length(k) for k in (host.CMD_IDENTIFY, host.CMD_STATUS,
                                                     host.CMD_INFER, host.CMD_ERROR))
        return (5 + longest) * self.reply_byte_cycles


@dataclass
class State:
    """The device's counters and flags and what its weight stores hold (``None``: not
    known, e.g. never written since power-up)."""

    accepted: int = 0
    rejected: int = 0
    inferences: int = 0
    last_error: int = 0
    loaded: bool = True
    images: list = field(default_factory=list)  # per store: list of byte or None

    @classmethod
    def initial(cls, device: Device) -> State:
        return cls(loaded=not device.stores,
                   images=[[None] * (s.depth * s.bytes_per_word) for s in device.stores])

    def copy(self) -> State:
        return State(self.accepted, self.rejected, self.inferences, self.last_error,
                     self.loaded, [list(i) for i in self.images])

    def intact(self, device: Device) -> bool:
        """Whether every store holds its correct weights."""
        return all(img == list(s.data) for img, s in zip(self.images, device.stores,
                                                         strict=True))

    def ready(self, device: Device) -> bool:
        """Whether an INFER runs on the right weights."""
        return self.loaded and self.intact(device)

    def damaged(self, device: Device) -> list[tuple[int, int, int]]:
        """(store, first word, words) runs of words that differ from the correct ones."""
        runs = []
        for i, (img, s) in enumerate(zip(self.images, device.stores, strict=True)):
            n = s.bytes_per_word
            bad = [w for w in range(s.depth)
                   if img[w * n:(w + 1) * n] != list(s.data[w * n:(w + 1) * n])]
            for w in bad:
                if runs and runs[-1][0] == i and runs[-1][1] + runs[-1][2] == w:
                    runs[-1] = (i, runs[-1][1], runs[-1][2] + 1)
                else:
                    runs.append((i, w, 1))
        return runs

    def status(self) -> host.Status:
        return host.Status(self.accepted & 0xFFFFFFFF, self.rejected & 0xFFFFFFFF,
                           self.inferences & 0xFFFFFFFF, self.last_error, self.loaded)


@dataclass(frozen=True)
class Reply:
    """A reply the device must send: ``cmd`` and ``payload``; for INFER the payload's
    class and values (``infer``), the cycle count being the device's own."""

    cmd: int
    payload: bytes = b""
    infer: tuple | None = None  # (class, readout values)
    image: bytes = b""  # an INFER's pixel codes

    def matches(self, frame) -> bool:
        if frame.cmd != self.cmd:
            return False
        if self.infer is None:
            return bytes(frame.payload) == self.payload
        try:
            got = host.Inference.decode(frame.payload)
        except host.LinkError:
            return False
        return (got.prediction, list(got.values)) == (self.infer[0], list(self.infer[1])) \
            and got.cycles > 0

    def describe(self) -> str:
        if self.cmd == host.CMD_ERROR:
            return f"ERROR {self.payload[0]}"
        name = {host.CMD_IDENTIFY: "IDENTIFY", host.CMD_INFER: "INFER",
                host.CMD_STATUS: "STATUS", host.CMD_LOAD: "LOAD",
                host.CMD_COMMIT: "COMMIT", host.CMD_INFER_PACKED: "INFER_PACKED"}.get(
                    self.cmd & 0x7F, f"0x{self.cmd:02X}")
        if self.infer is not None:
            return f"{name} class {self.infer[0]}"
        return f"{name} {self.payload.hex()}" if self.payload else name


def error(code: int) -> Reply:
    return Reply(host.CMD_ERROR, bytes([code]))


@dataclass
class Prediction:
    """What a run of symbols does to the device."""

    replies: list[Reply]
    state: State
    errors: list[int]  # every error detected, in order, answered or not
    dropped: int  # errors counted but not answered (a reply was already waiting)
    executed: list[int]  # commands accepted and executed, in order
    starts: list[tuple]  # per reply: (earliest, latest) cycle its SYNC byte goes out


# ---------------------------------------------------------------------------------------
# Times: receiver events are exact cycles; the executor's are (earliest, latest) pairs,
# the latest infinite after an inference (the protocol does not fix its duration).


def _span(lo, hi=None):
    return (lo, lo if hi is None else hi)


def _add(t, n):
    return (t[0] + n, t[1] + n)


def _max(a, b):
    return (max(a[0], b[0]), max(a[1], b[1]))


@dataclass
class _Job:
    kind: int
    code: int = 0
    posted: int = 0  # cycle the receiver posted it
    take: tuple = (0, 0)  # cycle the executor takes it from the request slot
    end: tuple = (0, 0)  # cycle its reply's CRC byte goes to the transmitter
    release: tuple = (0, 0)  # cycle the transmitter takes the reply (CRC byte loaded)
    start: tuple = (0, 0)  # cycle its reply's SYNC byte goes to the transmitter
    pixels: bytes = b""
    inferences_before: int = 0


class LinkModel:
    """The link as docs/link.md specifies it (see the module docstring)."""

    def __init__(self, device: Device):
        self.device = device

    # -- timing decisions ---------------------------------------------------------------
    def _order(self, a, b) -> bool:
        """Whether ``a`` comes before ``b`` (each a cycle or an (earliest, latest) pair),
        decided only when they are at least the guard apart."""
        a, b = (a if isinstance(a, tuple) else _span(a)), (b if isinstance(b, tuple)
                                                          else _span(b))
        g = self.device.guard
        if a[1] + g <= b[0]:
            return True
        if b[1] + g <= a[0]:
            return False
        raise Ambiguous(f"cycles {a} and {b} are within {g} of each other")

    def _waiting(self, jobs: list[_Job], t: int) -> bool:
        """Whether a request waits in the slot at cycle ``t``: from 2 cycles after its
        post to the cycle the executor takes it."""
        return self._covered(jobs, t, "take")

    def _busy(self, jobs: list[_Job], t: int) -> bool:
        """The link's busy flag at cycle ``t``: a request waits in the slot or the
        executor works (from the slot filling, 2 cycles after the post, to the cycle the
        transmitter takes its reply, a byte time before the reply's CRC byte goes out)."""
        return self._covered(jobs, t, "release")

    def _covered(self, jobs: list[_Job], t: int, until: str) -> bool:
        """Whether some request covers cycle ``t``, from 2 cycles after its post to its
        ``until`` cycle (``take`` or ``release``). One request certainly covering ``t``
        decides, even if another ends too close to ``t`` to tell."""
        unsure = None
        for job in jobs:
            try:
                if not self._order(t, job.posted + 2) and \
                        not self._order(getattr(job, until), t):
                    return True
            except Ambiguous as exc:
                unsure = exc
        if unsure is not None:
            raise unsure
        return False

    # -- the run ------------------------------------------------------------------------
    def predict(self, state: State, symbols: list[Symbol]) -> Prediction:
        """The replies to ``symbols`` sent from cycle 0 to a device that is idle and
        hunting for a frame, and the state after them; raises ``Ambiguous``."""
        dev = self.device
        st = state.copy()
        d, to = dev.divisor, dev.timeout_cycles
        jobs: list[_Job] = []
        counters: list[tuple[int, str, object]] = []  # (visible from cycle, field, value)
        errors: list[int] = []
        dropped = 0
        tx_free = (0, 0)
        free = (0, 0)

        def post(p: int, kind: int, code: int = 0, pixels: bytes = b""):
            nonlocal dropped, tx_free, free
            if kind == host.CMD_ERROR:
                st.rejected += 1
                st.last_error = code
                errors.append(code)
                counters.append((p + 2, "rejected", st.rejected))
                counters.append((p + 2, "last_error", code))
            else:
                st.accepted += 1
                counters.append((p + 2, "accepted", st.accepted))
            # the slot still holds the previous request at p + 1: this one is not answered
            if jobs and not self._order(jobs[-1].take, p + 1):
                if kind != host.CMD_ERROR:
                    raise AssertionError("a good frame found a request waiting")
                dropped += 1
                return
            job = _Job(kind, code, p, pixels=pixels)
            job.take = _max(_span(p + 2), free)
            length = dev.reply_length(kind)
            if kind in INFERS:
                if pixels not in dev.golden:
                    raise Ambiguous("an inference of an image without a golden answer")
                if dev.stores and not st.intact(dev):
                    raise Ambiguous("an inference on weights that are not the right ones")
                job.inferences_before = st.inferences
                st.inferences += 1
                job.start = _max((job.take[0] + 3 + dev.pixels, INF), tx_free)
            else:
                job.inferences_before = st.inferences
                job.start = _max(_add(job.take, 2), tx_free)
            job.end = _add(job.start, dev.reply_byte_cycles * (4 + length))
            # The transmitter loads the CRC byte (and takes the reply) the cycle after the
            # byte before it went out; the executor is idle the cycle after that.
            job.release = _add(job.end, 1 - dev.reply_byte_cycles)
            free = _add(job.release, 1)
            tx_free = _add(job.end, dev.reply_byte_cycles)
            jobs.append(job)

        def loaded(t: int, value: bool):
            st.loaded = value
            counters.append((t + 2, "loaded", value))  # (the beat is registered)

        # the receiver
        state_ = "HUNT"
        t = 0  # start of the current symbol
        last = 0  # cycle of the last event inside a frame (timeout reference)
        crc = cmd = lo = length = 0
        clash = waiting = False
        payload = bytearray()
        lsel = laddr = lbyte = lrem = 0
        lbad = False

        def bytes_per_word(sel):
            return dev.stores[sel].bytes_per_word if sel < len(dev.stores) else 1

        for s in symbols:
            start_bit = t + s.gap
            t += symbol_cycles(s, d)
            e = start_bit + dev.got_latency - (0 if s.stop else 1)
            if state_ != "HUNT" and not self._order(e, last + to + 1):
                post(last + to, host.CMD_ERROR, host.ERR_TRUNCATED)
                state_ = "HUNT"
            if not s.stop:
                if state_ != "HUNT":
                    post(e, host.CMD_ERROR, host.ERR_FRAMING)
                    state_ = "HUNT"
                continue
            b = s.byte
            if state_ == "HUNT":
                if b == host.SYNC:
                    state_, crc, last = "CMD", 0, e
                    clash = self._busy(jobs, e - 1)  # matters to LOAD only
                    waiting = self._waiting(jobs, e - 1)
                continue
            last = e
            if state_ != "CRC":
                crc = host.crc8(bytes([b]), crc)
            if state_ == "CMD":
                cmd = b
                if b in dev.commands:
                    state_ = "LEN0"
                else:
                    post(e, host.CMD_ERROR, host.ERR_COMMAND)
                    state_ = "HUNT"
            elif state_ == "LEN0":
                lo, state_ = b, "LEN1"
            elif state_ == "LEN1":
                length = lo | b << 8
                need = dev.pixels if cmd == host.CMD_INFER else 0
                if cmd == host.CMD_LOAD:
                    bad = length < host.LOAD_HEADER_LEN + 1
                elif cmd == host.CMD_INFER_PACKED:
                    bad = not 1 <= length <= min(2 * dev.pixels, host.MAX_LEN)
                else:
                    bad = length != need
                if bad:
                    post(e, host.CMD_ERROR, host.ERR_LENGTH)
                    state_ = "HUNT"
                elif cmd == host.CMD_INFER:
                    payload, state_ = bytearray(), "PAYLOAD"
                elif cmd == host.CMD_INFER_PACKED:
                    payload, lrem, state_ = bytearray(), length, "PACKED"
                elif cmd == host.CMD_LOAD:
                    lrem, lbad, state_ = length, False, "LSEL"
                else:
                    state_ = "CRC"
            elif state_ == "PAYLOAD":
                payload.append(b)
                if len(payload) == dev.pixels:
                    state_ = "CRC"
            elif state_ == "PACKED":
                payload.append(b)
                lrem -= 1
                if lrem == 0:
                    state_ = "CRC"
            elif state_ in ("LSEL", "LADR0", "LADR1"):
                lrem -= 1
                lbyte = 0
                if state_ == "LSEL":
                    lsel, laddr, state_ = b, 0, "LADR0"
                elif state_ == "LADR0":
                    laddr, state_ = b, "LADR1"
                else:
                    laddr, state_ = laddr | b << 8, "LDATA"
            elif state_ == "LDATA":
                if not clash:
                    loaded(e, False)
                    if lsel < len(dev.stores) and laddr < dev.stores[lsel].depth:
                        st.images[lsel][laddr * bytes_per_word(lsel) + lbyte] = b
                    else:
                        lbad = True
                lbyte += 1
                if lbyte == bytes_per_word(lsel):
                    lbyte, laddr = 0, laddr + 1
                lrem -= 1
                if lrem == 0:
                    state_ = "CRC"
            elif state_ == "CRC":
                state_ = "HUNT"
                pixels = bytes(payload) if cmd == host.CMD_INFER else \
                    host.unpack_zero_runs(payload, dev.pixels) \
                    if cmd == host.CMD_INFER_PACKED else b""
                if b != crc:
                    post(e, host.CMD_ERROR, host.ERR_CRC)
                elif clash if cmd == host.CMD_LOAD else waiting:
                    post(e, host.CMD_ERROR, host.ERR_BUSY)
                elif cmd in INFERS and not st.loaded:
                    post(e, host.CMD_ERROR, host.ERR_NOT_LOADED)
                elif pixels is None:
                    post(e, host.CMD_ERROR, host.ERR_ENCODING)
                elif cmd == host.CMD_LOAD and lbad:
                    post(e, host.CMD_ERROR, host.ERR_ADDRESS)
                else:
                    post(e, cmd, pixels=pixels)
                    if cmd == host.CMD_COMMIT:
                        loaded(e, True)
        if state_ != "HUNT":
            post(last + to, host.CMD_ERROR, host.ERR_TRUNCATED)

        replies = [self._reply(job, state, counters) for job in jobs]
        executed = [j.kind for j in jobs if j.kind != host.CMD_ERROR]
        return Prediction(replies, st, errors, dropped, executed, [j.start for j in jobs])

    def _reply(self, job: _Job, before: State, counters) -> Reply:
        dev = self.device
        if job.kind == host.CMD_ERROR:
            return error(job.code)
        if job.kind == host.CMD_IDENTIFY:
            return Reply(host.CMD_IDENTIFY | host.REPLY_BIT, dev.identity)
        if job.kind in INFERS:
            return Reply(job.kind | host.REPLY_BIT, infer=dev.golden[job.pixels],
                         image=job.pixels)
        if job.kind == host.CMD_STATUS:
            # every payload byte is read in the cycle the byte before it goes out (it is
            # loaded into the transmitter's output register the cycle after)
            out = bytearray()
            for j in range(host.STATUS_LEN):
                at = _add(job.start, dev.reply_byte_cycles * (3 + j))
                now = {"accepted": before.accepted, "rejected": before.rejected,
                       "last_error": before.last_error, "loaded": before.loaded}
                for visible, name, value in counters:
                    if self._order(visible - 1, at):
                        now[name] = value
                status = host.Status(now["accepted"] & 0xFFFFFFFF,
                                     now["rejected"] & 0xFFFFFFFF,
                                     job.inferences_before & 0xFFFFFFFF,
                                     now["last_error"], now["loaded"])
                out.append(status.encode()[j])
            return Reply(host.CMD_STATUS | host.REPLY_BIT, bytes(out))
        return Reply(job.kind | host.REPLY_BIT)


# ---------------------------------------------------------------------------------------
# Cases.


@dataclass
class Case:
    """What the bench sends for one case, and how.

    ``segments``: the symbols of each request the host sends and waits the replies of
    (one, or one per frame of a weight load). ``call``: the client method that sends it
    (``("identify",)``, ``("status",)``, ``("infer", codes)``, ``("infer_packed",
    codes)``, ``("infer_many", [codes, ...])``, ``("load", store,
    address, data)``, ``("commit",)``, ``("request", cmd, payload)``, ``("load_weights",
    chunk_bytes)``), or ``None`` when the symbols go on the line as they are and the
    replies are read with ``Client.receive``. With a call, ``clean`` is the frame the
    client writes when ``segments`` differs from it (the fault the line puts in), and
    ``cleans`` the frame of every segment (several frames: a weight load). ``retry``:
    the segment of a weight load that must fail (the client then loads it all again)."""

    name: str
    bad: bool
    frames: int
    segments: list
    call: tuple | None = None
    clean: bytes | None = None
    cleans: list | None = None
    retry: int | None = None

    def writes(self) -> list[bytes]:
        """The frame the client writes for each segment."""
        if self.cleans is not None:
            return list(self.cleans)
        if self.clean is not None:
            return [self.clean]
        return [bytes(s.byte for s in seg) for seg in self.segments]


def frame(cmd: int, payload: bytes = b"") -> bytes:
    return host.encode_frame(cmd, payload)


class Fuzzer:
    """Random cases for ``device`` from ``rng``; INFER frames carry ``images`` (each one
    with a golden answer in ``device.golden``)."""

    BAD = {"crc": 2, "flip": 3, "truncate": 4, "length": 2, "command": 2, "framing": 2,
           "garbage": 3, "syncs": 1, "silence": 2, "back_to_back": 3, "encoding": 2}
    BAD_STORES = {"load_address": 1, "load_corrupt": 1, "load_retry": 1,
                  "infer_unloaded": 4}  # the last:
    # only while the weights are not committed
    GOOD = {"identify": 1, "status": 2, "infer": 3, "infer_packed": 3, "pipelined": 2,
            "gaps": 1}
    GOOD_STORES = {"load": 1}

    def __init__(self, device: Device, rng: random.Random, images: list[bytes]):
        self.dev = device
        self.rng = rng
        self.images = [bytes(i) for i in images]
        self.cuts: dict[int, int] = {}  # per command: the next position to cut a frame at

    # -- frames ---------------------------------------------------------------------------
    def image(self) -> bytes:
        return self.rng.choice(self.images)

    def load_frame(self) -> bytes:
        """A LOAD of a few correct words (maybe ending inside a word)."""
        rng = self.rng
        i = rng.randrange(len(self.dev.stores))
        s = self.dev.stores[i]
        n = s.bytes_per_word
        word = rng.randrange(s.depth)
        size = rng.randint(1, min(len(s.data) - word * n, 4 * n))
        data = s.data[word * n:word * n + size]
        return frame(host.CMD_LOAD, bytes([i]) + word.to_bytes(2, "little") + data)

    def any_frame(self) -> bytes:
        """A well-formed request of a random kind."""
        kinds = list(self.dev.commands)
        cmd = self.rng.choice(kinds + [host.CMD_INFER, host.CMD_INFER_PACKED])
        if cmd == host.CMD_INFER:
            return frame(cmd, self.image())
        if cmd == host.CMD_INFER_PACKED:
            return frame(cmd, host.pack_zero_runs(self.image()))
        if cmd == host.CMD_LOAD:
            return self.load_frame()
        return frame(cmd)

    def noise(self, n: int) -> list[Symbol]:
        """Random bytes, many of them sync bytes and commands, some with a low stop bit,
        some after a short silence."""
        rng = self.rng
        out = []
        for _ in range(n):
            r = rng.random()
            b = host.SYNC if r < 0.2 else rng.choice(self.dev.commands) if r < 0.35 \
                else rng.randrange(256)
            gap = rng.choice([0] * 6 + [rng.randrange(self.dev.byte_cycles)])
            out.append(Symbol(b, rng.random() > 0.05, gap))
        return out

    def lead(self) -> int:
        """Idle cycles before a case: mostly none, sometimes a short or a long silence."""
        r = self.rng.random()
        if r < 0.7:
            return 0
        if r < 0.95:
            return self.rng.randrange(1, 4 * self.dev.byte_cycles)
        return self.rng.randrange(self.dev.timeout_cycles, 4 * self.dev.timeout_cycles + 1)

    def call_for(self, data: bytes) -> tuple:
        """The client method that writes the frame ``data``."""
        cmd, payload = data[1], data[4:-1]
        if cmd == host.CMD_INFER_PACKED:
            codes = host.unpack_zero_runs(payload, self.dev.pixels)
            if codes is not None and host.pack_zero_runs(codes) == payload:
                return ("infer_packed", codes)
        if cmd == host.CMD_IDENTIFY and not payload:
            return ("identify",)
        if cmd == host.CMD_STATUS and not payload:
            return ("status",)
        if cmd == host.CMD_INFER and payload:
            return ("infer", payload)
        if cmd == host.CMD_COMMIT and not payload:
            return ("commit",)
        if cmd == host.CMD_LOAD and len(payload) > host.LOAD_HEADER_LEN:
            return ("load", payload[0], int.from_bytes(payload[1:3], "little"), payload[3:])
        return ("request", cmd, payload)

    # -- good requests ----------------------------------------------------------------------
    def good(self, state: State) -> Case:
        dev, rng = self.dev, self.rng
        if dev.stores and not state.ready(dev):
            return self.restore(state)
        kinds = dict(self.GOOD, **(self.GOOD_STORES if dev.stores else {}))
        name = rng.choices(list(kinds), list(kinds.values()))[0]
        gap = self.lead()
        if name == "identify":
            data = frame(host.CMD_IDENTIFY)
        elif name == "status":
            data = frame(host.CMD_STATUS)
        elif name == "infer":
            data = frame(host.CMD_INFER, self.image())
        elif name == "infer_packed":
            data = frame(host.CMD_INFER_PACKED, host.pack_zero_runs(self.image()))
        elif name == "pipelined":
            # Client.infer_many of two samples: both frames go out back to back, before
            # the first reply (one segment on the line, the second write adds nothing).
            images = [self.image() for _ in range(2)]
            packed = self.rng.random() < 0.5
            frames = [frame(host.CMD_INFER_PACKED, host.pack_zero_runs(i)) if packed
                      else frame(host.CMD_INFER, i) for i in images]
            return Case(name, False, 2, [line(frames[0] + frames[1], gap), []],
                        ("infer_many", images, packed), cleans=frames)
        elif name == "load":
            data = self.load_frame()
        else:  # gaps: silences between the bytes, each shorter than the timeout
            data = self.any_frame()
            room = dev.timeout_cycles - dev.byte_cycles - 2 * dev.guard
            syms = [Symbol(b, True, rng.randrange(max(1, room)) if rng.random() < 0.5
                           else 0) for b in data]
            return Case("gaps", False, 1, [syms], self.call_for(data), data)
        return Case(name, False, 1, [line(data, gap)], self.call_for(data))

    def restore(self, state: State) -> Case:
        """Weights back in the stores and committed: COMMIT if they are right, else the
        damaged words rewritten (or, when unknown or much, the whole load again)."""
        dev, rng = self.dev, self.rng
        if state.intact(dev):
            return Case("commit", False, 1, [line(frame(host.CMD_COMMIT))], ("commit",))
        runs = state.damaged(dev)
        words = sum(n for _, _, n in runs)
        if len(runs) > 4 or words > 64 or rng.random() < 0.1:
            chunk = rng.choice([16, 64, 256, 1024])
            segments = [line(f) for f in self.load_frames(chunk)]
            return Case("load_weights", False, len(segments), segments,
                        ("load_weights", chunk, 1))
        store, word, n = runs[0]
        s = dev.stores[store]
        k = s.bytes_per_word
        data = frame(host.CMD_LOAD, bytes([store]) + word.to_bytes(2, "little")
                     + s.data[word * k:(word + n) * k])
        return Case("repair", False, 1, [line(data)], self.call_for(data))

    def load_frames(self, chunk: int) -> list[bytes]:
        """The frames of ``Client.load_weights(..., chunk_bytes=chunk)``: LOADs, COMMIT."""
        out = []
        for i, s in enumerate(self.dev.stores):
            n = s.bytes_per_word
            step = max(n, chunk // n * n)
            out += [frame(host.CMD_LOAD, bytes([i]) + (at // n).to_bytes(2, "little")
                          + s.data[at:at + step]) for at in range(0, len(s.data), step)]
        return out + [frame(host.CMD_COMMIT)]

    # -- bad requests -------------------------------------------------------------------
    def bad(self, state: State) -> Case:
        dev, rng = self.dev, self.rng
        kinds = dict(self.BAD)
        if dev.stores:
            kinds.update(self.BAD_STORES)
            if state.loaded:
                del kinds["infer_unloaded"]
        name = rng.choices(list(kinds), list(kinds.values()))[0]
        return getattr(self, "bad_" + name)(state)

    def _faulty(self, name, data: bytes, syms: list[Symbol]) -> Case:
        syms[0] = Symbol(syms[0].byte, syms[0].stop, syms[0].gap + self.lead())
        return Case(name, True, 1, [syms], self.call_for(data), data)

    def bad_crc(self, state):
        data = self.any_frame()
        syms = line(data)
        syms[-1] = Symbol(data[-1] ^ self.rng.randrange(1, 256))
        return self._faulty("crc", data, syms)

    def bad_flip(self, state):
        data = self.any_frame()
        syms = line(data)
        at = self.rng.randrange(len(data))
        syms[at] = Symbol(data[at] ^ 1 << self.rng.randrange(8))
        return self._faulty("flip", data, syms)

    def bad_truncate(self, state):
        """A frame cut short: at each position in turn, per command."""
        data = self.any_frame()
        at = self.cuts.get(data[1], 1)
        if at >= len(data):
            at = 1
        self.cuts[data[1]] = at + 1
        return self._faulty("truncate", data, line(data[:at]))

    def bad_length(self, state):
        rng = self.rng
        cmd = rng.choice(self.dev.commands)
        need = self.dev.pixels if cmd == host.CMD_INFER else 0
        if cmd == host.CMD_LOAD:
            n = rng.randrange(host.LOAD_HEADER_LEN + 1)
        elif cmd == host.CMD_INFER_PACKED:
            need = self.dev.pixels
            n = rng.choice([0, 2 * need + 1, 2 * need + rng.randrange(1, 8), 0xFFFF])
        else:
            n = rng.choice([need + 1, max(0, need - 1) if need else 1,
                            rng.randrange(2 * need + 8), 0xFFFF])
            if n == need:
                n += 1
        payload = bytes(rng.randrange(256) for _ in range(min(n, 2 * need + 8)))
        if len(payload) == n:  # the client sends it
            data = frame(cmd, payload)
            return self._faulty("length", data, line(data))
        # the declared length is not what follows: LEN put in by hand
        body = bytes([cmd]) + n.to_bytes(2, "little") + payload
        data = bytes([host.SYNC]) + body + bytes([host.crc8(body)])
        return Case("length", True, 1, [line(data, self.lead())])

    def bad_encoding(self, state):
        """An INFER_PACKED frame, CRC right, whose zero runs break the coding: a run of 0
        or over 32, a 0x00 last, one pixel too few or too many, a run past the end."""
        rng, n = self.rng, self.dev.pixels
        packed = host.pack_zero_runs(self.image())
        kind = rng.randrange(5)
        if kind == 0:
            run = bytes([0, rng.choice([0] + list(range(host.ZERO_RUN_MAX + 1, 256)))])
            at = rng.randrange(len(packed) + 1)
            while at and at < len(packed) and packed[at - 1] == 0:
                at -= 1  # not between a 0x00 and its run length
            payload = packed[:at] + run + packed[at:]
        elif kind == 1:
            payload = packed + b"\x00"
        elif kind == 2:
            payload = host.pack_zero_runs(bytes(self.image())[:-1])
        elif kind == 3:
            payload = packed + bytes([rng.randrange(1, 256)])
        else:
            payload = packed + b"\x00" + bytes([rng.randint(1, host.ZERO_RUN_MAX)])
        payload = payload[:2 * n] or b"\x00"
        if host.unpack_zero_runs(payload, n) is not None:  # cut back into a good one
            payload = b"\x00\x00" + payload[2:]
        data = frame(host.CMD_INFER_PACKED, payload)
        return self._faulty("encoding", data, line(data))

    def bad_command(self, state):
        rng = self.rng
        cmd = rng.choice([c for c in range(256) if c not in self.dev.commands])
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
        data = frame(cmd, payload)
        return Case("command", True, 1, [line(data, self.lead())],
                    ("request", cmd, payload))

    def bad_framing(self, state):
        data = self.any_frame()
        syms = line(data)
        at = self.rng.randrange(len(data))
        syms[at] = Symbol(data[at], False)
        return self._faulty("framing", data, syms)

    def bad_garbage(self, state):
        return Case("garbage", True, 1, [self.noise(self.rng.randint(1, 24))])

    def bad_syncs(self, state):
        """Sync bytes in a run, then maybe a frame (whose own sync byte is then a command
        byte of a frame begun by the run), or a cut frame."""
        rng = self.rng
        syms = line(bytes([host.SYNC] * rng.randint(1, 4)), self.lead())
        r = rng.random()
        if r < 0.5:
            syms += line(self.any_frame())
        elif r < 0.8:
            data = self.any_frame()
            syms += line(data[:rng.randrange(1, len(data))])
        return Case("syncs", True, 1, [syms])

    def bad_silence(self, state):
        """A frame with a silence longer than the timeout inside it."""
        dev, rng = self.dev, self.rng
        data = self.any_frame()
        syms = line(data)
        at = rng.randrange(1, len(data))
        over = dev.timeout_cycles - dev.byte_cycles + 2 * dev.guard
        syms[at] = Symbol(data[at], True, over + rng.randrange(2 * dev.timeout_cycles))
        return self._faulty("silence", data, syms)

    def bad_back_to_back(self, state):
        """Two frames (or noise and a frame) without waiting for a reply in between."""
        rng = self.rng
        parts = []
        for _ in range(2):
            r = rng.random()
            if r < 0.6:
                parts.append(line(self.any_frame()))
            elif r < 0.8:
                data = self.any_frame()
                parts.append(line(data[:rng.randrange(1, len(data))]))
            else:
                parts.append(self.noise(rng.randint(1, 8)))
        syms = parts[0] + parts[1]
        gap = rng.choice([0, 0, rng.randrange(self.dev.timeout_cycles)])
        first = len(parts[0])
        syms[first] = Symbol(syms[first].byte, syms[first].stop, syms[first].gap + gap)
        return Case("back_to_back", True, 2, [syms])

    def bad_load_address(self, state):
        """A LOAD of a store that does not exist, or past the end of one."""
        dev, rng = self.dev, self.rng
        i = rng.randrange(len(dev.stores) + 1)
        if i == len(dev.stores) or rng.random() < 0.3:
            i = rng.randrange(len(dev.stores), 256)
            word, data = rng.randrange(1 << 16), bytes(rng.randrange(1, 9))
        else:
            s = dev.stores[i]
            n = s.bytes_per_word
            word = rng.randrange(max(0, s.depth - 2), s.depth + 3)
            ok = max(0, min(s.depth - word, 8)) * n
            data = s.data[word * n:word * n + ok] + bytes(rng.randint(1, 2 * n))
        data = frame(host.CMD_LOAD, bytes([i]) + word.to_bytes(2, "little") + data)
        return Case("load_address", True, 1, [line(data, self.lead())],
                    self.call_for(data))

    def bad_load_corrupt(self, state):
        """A LOAD whose data is not the weights: a flipped bit (bad CRC; the bytes before
        the CRC are written all the same) or, rarely, wrong bytes in a good frame."""
        data = self.load_frame()
        syms = line(data)
        at = self.rng.randrange(7, len(data) - 1) if len(data) > 8 else 7
        syms[at] = Symbol(data[at] ^ 1 << self.rng.randrange(8))
        if self.rng.random() < 0.2:
            body = bytearray(data[1:-1])
            body[at - 1] ^= 0x80
            bad = frame(host.CMD_LOAD, bytes(body[3:]))
            return Case("load_corrupt", True, 1, [line(bad)], self.call_for(bad))
        return self._faulty("load_corrupt", data, syms)

    def flip_bit(self, data: bytes) -> list[Symbol]:
        syms = line(data)
        at = self.rng.randrange(len(data))
        syms[at] = Symbol(data[at] ^ 1 << self.rng.randrange(8))
        return syms

    def cut(self, data: bytes) -> list[Symbol]:
        return line(data[:self.rng.randrange(1, len(data))])

    def sync_after_error(self, data: bytes, at: int | None = None) -> list[Symbol]:
        """The command byte hit (an unknown command: the rest is hunted through) and a
        later byte (``at``) turned into a sync byte, which starts a frame of its own."""
        syms = line(data)
        syms[1] = Symbol(data[1] ^ 0x40)
        at = self.rng.randrange(2, len(data)) if at is None else at
        syms[at] = Symbol(host.SYNC)
        return syms

    def bad_load_retry(self, state, faulty=None, chunk=None, k=None):
        """A whole weight load (``Client.load_weights``, 3 attempts) in which LOAD frame
        ``k`` is corrupted on the line (``faulty(frame) -> symbols``; by default a bit
        flipped, the frame cut, or ``sync_after_error``): the client must let the line go
        quiet, then load everything again."""
        rng = self.rng
        if chunk is None:  # small chunks, but a dozen frames or so for large stores
            total = sum(len(s.data) for s in self.dev.stores)
            chunk = max(rng.choice([4, 16, 64]), -(-total // 12))
        frames = self.load_frames(chunk)
        k = rng.randrange(len(frames) - 1) if k is None else k
        if faulty is None:
            faulty = rng.choice([self.flip_bit, self.cut, self.sync_after_error])
        syms = faulty(frames[k])
        segments = [line(f) for f in frames[:k]] + [syms] + [line(f) for f in frames]
        return Case("load_retry", True, len(segments), segments, ("load_weights", chunk, 3),
                    cleans=frames[:k + 1] + frames, retry=k)

    # -- fixed cases (bugs once found) ---------------------------------------------------
    FIXED = ("load_retry_sync_in_rest",)

    def fixed(self, name: str, state: State) -> Case:
        if name == "load_retry_sync_in_rest":
            # The first LOAD frame of a load in 4-byte chunks gets an unknown command and
            # a sync byte before its CRC byte: ERROR 3, then a frame begun by that sync
            # byte is still open (or a second ERROR still to come) when the first ERROR
            # has arrived. A client that loads again at once runs into it.
            case = self.bad_load_retry(state, lambda d: self.sync_after_error(d, len(d) - 2),
                                       chunk=4, k=0)
            case.name = name
            return case
        raise ValueError(f"no fixed case {name!r}: choose from {', '.join(self.FIXED)}")

    def bad_infer_unloaded(self, state):
        data = frame(host.CMD_INFER, self.image())
        return Case("infer_unloaded", True, 1, [line(data, self.lead())],
                    self.call_for(data))
