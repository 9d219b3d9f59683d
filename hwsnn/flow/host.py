"""Host side of the UART link to a ``hwsnn.hdl.link.HostLink`` (protocol version 3).

Pure Python, no hardware and no serial library needed: ``crc8`` and ``encode_frame`` build
frames, ``FrameParser`` takes received bytes in any pieces and returns complete frames,
``Identity``/``Inference``/``Status`` decode reply payloads, ``pack_zero_runs`` codes an
image compactly (INFER_PACKED), and ``Client`` runs requests, or a pipelined stream of
inferences (``infer_many``), over any byte port with ``write(bytes)`` and
``read(n) -> bytes`` (a pyserial ``Serial`` opened with a read timeout, or a test shim).
docs/link.md is the protocol reference.

A frame, both directions: ``0xA5``, CMD, LEN (2 bytes little-endian), LEN payload bytes,
CRC-8 (polynomial 0x07, init 0, not reflected, no final XOR) over CMD, LEN and payload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import HwsnnError

PROTOCOL_VERSION = 3
SYNC = 0xA5
CRC_POLY = 0x07
MAX_LEN = 0xFFFF

CMD_IDENTIFY = 0x01
CMD_INFER = 0x02
CMD_STATUS = 0x03
CMD_LOAD = 0x04
CMD_COMMIT = 0x05
CMD_INFER_PACKED = 0x06
REPLY_BIT = 0x80
CMD_ERROR = 0xFF

ERR_CRC = 1
ERR_LENGTH = 2
ERR_COMMAND = 3
ERR_TRUNCATED = 4
ERR_FRAMING = 5
ERR_BUSY = 6
ERR_NOT_LOADED = 7
ERR_ADDRESS = 8
ERR_ENCODING = 9

ERROR_NAMES = {
    0: "none",
    ERR_CRC: "bad CRC",
    ERR_LENGTH: "bad length",
    ERR_COMMAND: "unknown command",
    ERR_TRUNCATED: "truncated frame (timeout inside a frame)",
    ERR_FRAMING: "UART framing error (stop bit low)",
    ERR_BUSY: "busy (frame arrived while a request was still waiting to be handled)",
    ERR_NOT_LOADED: "weights not loaded (INFER before COMMIT, or after a LOAD)",
    ERR_ADDRESS: "LOAD outside the weight stores (store index or word address)",
    ERR_ENCODING: "bad INFER_PACKED payload (a zero run of 0 or over 32, or not exactly the "
                  "pixels of a sample)",
}

IDENTIFY_MAGIC = b"HWSN"
IDENTIFY_LEN = 21
STATUS_LEN = 14
LOAD_HEADER_LEN = 3  # store (1) + first word address (2); then the bytes
NO_LAYOUT = bytes(4)
INFER_HEADER_LEN = 5  # class (1) + cycles (4); then 4 bytes per class
ZERO_RUN_MAX = 32  # INFER_PACKED: ``0x00 n`` stands for n zero pixels, 1 <= n <= 32
PIPELINE_DEPTH = 2  # requests a host may have sent and not yet had answered


def pack_zero_runs(codes) -> bytes:
    """The INFER_PACKED payload of a sample's pixel codes (C order): a non-zero code is
    itself, a run of n zeros is ``0x00 n`` (runs longer than 32 split). A real MNIST digit
    (150 non-zero pixels of 784) packs into about 216 bytes."""
    raw = _codes_bytes(codes)
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        if raw[i]:
            out.append(raw[i])
            i += 1
            continue
        j = i
        while j < n and not raw[j] and j - i < ZERO_RUN_MAX:
            j += 1
        out += bytes([0, j - i])
        i = j
    return bytes(out)


def unpack_zero_runs(payload: bytes, pixels: int) -> bytes | None:
    """The pixel codes an INFER_PACKED payload stands for, or ``None`` where the device
    answers ERROR 9 (a run of 0 or over 32 zeros, a ``0x00`` last, not ``pixels`` codes)."""
    out = bytearray()
    it = iter(bytes(payload))
    for b in it:
        if b:
            out.append(b)
            continue
        n = next(it, None)
        if n is None or not 1 <= n <= ZERO_RUN_MAX:
            return None
        out += bytes(n)
        if len(out) > pixels:
            return None
    return bytes(out) if len(out) == pixels else None


class LinkError(HwsnnError):
    """The device answered with ERROR, a reply was corrupt or unexpected, or none came.

    ``code`` is the device's error code (1..9) for an ERROR reply, else ``None``."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"unknown error code {code}")


# ---------------------------------------------------------------------------------------
# Framing.


def _crc8_byte(crc: int) -> int:
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


_CRC_TABLE = tuple(_crc8_byte(i) for i in range(256))


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8, polynomial 0x07, init ``crc`` (0), not reflected, no final XOR."""
    for b in bytes(data):
        crc = _CRC_TABLE[crc ^ b]
    return crc


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """``0xA5 CMD LEN(2, LE) PAYLOAD CRC`` for a command (or reply) byte and payload."""
    if isinstance(cmd, bool) or not isinstance(cmd, int) or not 0 <= cmd <= 0xFF:
        raise ValueError(f"command must be a byte 0..255, not {cmd!r}")
    payload = bytes(payload)
    if len(payload) > MAX_LEN:
        raise ValueError(f"payload of {len(payload)} bytes is over the limit of {MAX_LEN}")
    body = bytes([cmd]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + bytes([crc8(body)])


class Frame(NamedTuple):
    cmd: int
    payload: bytes


class FrameParser:
    """Takes bytes in any pieces and returns the complete frames they finish.

    Like the device: outside a frame every byte up to ``0xA5`` is discarded (counted in
    ``skipped``); a frame whose CRC does not check is dropped (``crc_errors``), and so is
    one whose LEN is over ``max_len`` (``length_errors``, without waiting for its payload);
    either way the parser hunts for the next ``0xA5`` from the byte after. ``reset()``
    abandons a partial frame (call it after a timeout).
    """

    def __init__(self, max_len: int = MAX_LEN):
        if isinstance(max_len, bool) or not isinstance(max_len, int) or \
                not 0 <= max_len <= MAX_LEN:
            raise ValueError(f"max_len must be an integer 0..{MAX_LEN}, not {max_len!r}")
        self.max_len = max_len
        self.skipped = 0
        self.crc_errors = 0
        self.length_errors = 0
        self.frames = 0
        self._buf = bytearray()  # CMD, LEN, payload, CRC of the current frame
        self._hunting = True

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started (its sync byte seen) and is not complete yet."""
        return not self._hunting

    def reset(self) -> None:
        self._buf.clear()
        self._hunting = True

    def wanted(self) -> int:
        """Bytes still needed, at least, before the current frame (or the next) completes."""
        if self._hunting:
            return 1 + 3 + 1
        if len(self._buf) < 3:
            return 3 - len(self._buf) + 1
        length = int.from_bytes(self._buf[1:3], "little")
        return 3 + length + 1 - len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        out = []
        for b in bytes(data):
            if self._hunting:
                if b == SYNC:
                    self._hunting = False
                    self._buf.clear()
                else:
                    self.skipped += 1
                continue
            self._buf.append(b)
            n = len(self._buf)
            if n < 3:
                continue
            length = int.from_bytes(self._buf[1:3], "little")
            if n == 3 and length > self.max_len:
                self.length_errors += 1
                self.reset()
            elif n == 3 + length + 1:
                body, crc = bytes(self._buf[:-1]), self._buf[-1]
                self.reset()
                if crc8(body) != crc:
                    self.crc_errors += 1
                else:
                    self.frames += 1
                    out.append(Frame(body[0], body[3:]))
        return out


# ---------------------------------------------------------------------------------------
# Replies.


def _need(payload: bytes, length: int, what: str) -> None:
    if len(payload) != length:
        raise LinkError(f"{what} reply has {len(payload)} payload bytes, not {length}")


@dataclass(frozen=True)
class Identity:
    version: int
    model_id: bytes  # the first 8 bytes of the QNet's SHA-256 fingerprint
    classes: int
    pixels: int  # pixel codes per sample (the INFER payload length)
    stores: int = 0  # weight stores the host must LOAD before inference
    layout: bytes = NO_LAYOUT  # ``hdl.plan.layout_id`` of those stores

    @property
    def model_id_hex(self) -> str:
        return self.model_id.hex()

    def encode(self) -> bytes:
        """The IDENTIFY reply payload (what ``decode`` reads)."""
        return (IDENTIFY_MAGIC + bytes([self.version]) + bytes(self.model_id)
                + bytes([self.classes]) + self.pixels.to_bytes(2, "little")
                + bytes([self.stores]) + bytes(self.layout))

    def matches(self, fingerprint: str) -> bool:
        """Whether the device runs the QNet with this SHA-256 hex digest
        (``hwsnn.hdl.verilog.fingerprint(net)``)."""
        return bytes.fromhex(fingerprint)[:8] == self.model_id

    @classmethod
    def decode(cls, payload: bytes) -> Identity:
        if payload[:4] != IDENTIFY_MAGIC:
            raise LinkError(f"IDENTIFY reply starts with {payload[:4]!r}, not {IDENTIFY_MAGIC!r}")
        if len(payload) > 4 and payload[4] != PROTOCOL_VERSION:
            raise LinkError(f"the device speaks protocol version {payload[4]}, this host "
                            f"{PROTOCOL_VERSION}: rebuild and flash the design with this "
                            "version of hwsnn")
        _need(payload, IDENTIFY_LEN, "IDENTIFY")
        return cls(payload[4], bytes(payload[5:13]), payload[13],
                   int.from_bytes(payload[14:16], "little"), payload[16], bytes(payload[17:21]))


@dataclass(frozen=True)
class Inference:
    prediction: int  # the class (argmax of the readout, lowest index wins ties)
    cycles: int  # clock cycles from the first pixel to the last readout value
    values: tuple[int, ...]  # the readout values, one per class

    def encode(self) -> bytes:
        """The INFER reply payload (what ``decode`` reads)."""
        return (bytes([self.prediction]) + (self.cycles & 0xFFFFFFFF).to_bytes(4, "little")
                + b"".join(int(v).to_bytes(4, "little", signed=True) for v in self.values))

    @classmethod
    def decode(cls, payload: bytes) -> Inference:
        n = len(payload) - INFER_HEADER_LEN
        if n < 0 or n % 4:
            raise LinkError(f"INFER reply has {len(payload)} payload bytes, not 5 + 4·classes")
        values = tuple(int.from_bytes(payload[i:i + 4], "little", signed=True)
                       for i in range(INFER_HEADER_LEN, len(payload), 4))
        return cls(payload[0], int.from_bytes(payload[1:5], "little"), values)


@dataclass(frozen=True)
class Status:
    accepted: int  # frames accepted (and executed), this STATUS request included
    rejected: int  # frames answered (or, when busy, due to be answered) with ERROR
    inferences: int  # inferences completed
    last_error: int  # code of the latest error, 0 = none yet
    loaded: bool = True  # weights ready: no stores, or COMMIT since the last LOAD

    @property
    def last_error_name(self) -> str:
        return error_name(self.last_error)

    def encode(self) -> bytes:
        """The STATUS reply payload (what ``decode`` reads)."""
        return (b"".join(v.to_bytes(4, "little") for v in
                         (self.accepted, self.rejected, self.inferences))
                + bytes([self.last_error, int(bool(self.loaded))]))

    @classmethod
    def decode(cls, payload: bytes) -> Status:
        _need(payload, STATUS_LEN, "STATUS")
        words = [int.from_bytes(payload[i:i + 4], "little") for i in (0, 4, 8)]
        return cls(*words, payload[12], bool(payload[13] & 1))


# ---------------------------------------------------------------------------------------
# Client.

MAX_REPLY_LEN = INFER_HEADER_LEN + 4 * 255


def _codes_bytes(codes) -> bytes:
    if isinstance(codes, bytes | bytearray):
        return bytes(codes)
    flat = codes.reshape(-1).tolist() if hasattr(codes, "reshape") else list(codes)
    try:
        return bytes(int(v) for v in flat)
    except (ValueError, TypeError):
        raise ValueError("pixel codes must be integers 0..255") from None


class Client:
    """Requests over ``port`` (``write(bytes)``; ``read(n)`` returns up to ``n`` bytes,
    fewer or none on a timeout): each method sends a frame and waits for its reply, but
    ``infer_many``, which keeps two requests in flight (pipelining). Raises ``LinkError``
    on an ERROR reply, a reply that fails its CRC, an unexpected reply, or no reply (the
    port's read timeout). After a ``LinkError`` call ``drain()`` (or ``reset()`` once the
    line has been quiet), then retry."""

    def __init__(self, port):
        if not callable(getattr(port, "write", None)) or not callable(getattr(port, "read", None)):
            raise TypeError("port must have write(bytes) and read(n) methods "
                            f"(a serial.Serial or alike), not {type(port).__name__}")
        self.port = port
        self.parser = FrameParser(max_len=MAX_REPLY_LEN)
        self._pending: list[Frame] = []

    @classmethod
    def open(cls, device: str, baud: int = 115200, timeout: float = 2.0) -> Client:
        """A client on a serial device (needs pyserial)."""
        try:
            import serial
        except ImportError:
            raise LinkError("pyserial is needed to open a serial port: "
                            "pip install pyserial") from None
        return cls(serial.Serial(device, baud, timeout=timeout))

    def reset(self) -> None:
        """Forget a partial reply and anything received but not read yet."""
        self.parser.reset()
        self._pending.clear()
        flush = getattr(self.port, "reset_input_buffer", None)
        if callable(flush):
            flush()

    def drain(self) -> int:
        """After an error: read and discard until the line is quiet (a read that times out
        with nothing), then ``reset``; returns the bytes discarded. The port's read
        timeout must exceed the link's timeout and its longest reply (docs/link.md, "What
        a host should do"), which a second does at 115200 baud: any partial frame on the
        device has then timed out and every reply still due has arrived."""
        discarded = 0
        while chunk := self.port.read(256):
            discarded += len(chunk)
        self.reset()
        return discarded

    def receive(self) -> Frame:
        """The next reply frame (of any command)."""
        crc_errors, length_errors = self.parser.crc_errors, self.parser.length_errors
        while not self._pending:
            chunk = self.port.read(self.parser.wanted())
            if not chunk:
                partial = self.parser.in_frame
                self.parser.reset()
                raise LinkError("no reply from the device (timed out"
                                + (" inside a reply frame)" if partial else ")"))
            self._pending.extend(self.parser.feed(chunk))
            if self.parser.crc_errors != crc_errors:
                raise LinkError("a reply from the device failed its CRC check")
            if self.parser.length_errors != length_errors:
                raise LinkError("a reply from the device has an impossible length")
        return self._pending.pop(0)

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send a command and return its reply's payload."""
        self.port.write(encode_frame(cmd, payload))
        return self._reply_payload(self.receive(), cmd)

    @staticmethod
    def _reply_payload(frame: Frame, cmd: int, context: str = "") -> bytes:
        """The payload of ``frame``, the reply to ``cmd``; ``LinkError`` for an ERROR reply
        (``context`` added to its message) or a reply to another command."""
        if frame.cmd == CMD_ERROR:
            code = frame.payload[0] if len(frame.payload) == 1 else None
            raise LinkError(f"the device answered ERROR {code}: "
                            f"{error_name(code) if code is not None else 'no code'}{context}",
                            code)
        if frame.cmd != cmd | REPLY_BIT:
            raise LinkError(f"expected reply 0x{cmd | REPLY_BIT:02X}, got 0x{frame.cmd:02X}")
        return frame.payload

    def identify(self) -> Identity:
        return Identity.decode(self.request(CMD_IDENTIFY))

    def infer(self, codes, *, packed: bool = False) -> Inference:
        """Run one sample: ``codes`` are its pixel codes 0..255 in C order (bytes, a list,
        or a numpy array / torch tensor of the input shape); ``packed`` sends them as
        INFER_PACKED (zero runs coded)."""
        if packed:
            return Inference.decode(self.request(CMD_INFER_PACKED, pack_zero_runs(codes)))
        return Inference.decode(self.request(CMD_INFER, _codes_bytes(codes)))

    def infer_many(self, samples, *, packed: bool = True, attempts: int = 3,
                   progress=None) -> list[Inference]:
        """Run every sample of ``samples`` (each as for ``infer``), pipelined: the next
        frame goes out while the device computes and answers the one before, at most
        ``PIPELINE_DEPTH`` (2) unanswered (docs/link.md, "Pipelining"), so that the line
        never idles. After a failure (an ERROR reply, a corrupt reply, a timeout) the
        line is drained and the samples from the first unanswered one on are sent again,
        up to ``attempts`` times in all; then ``LinkError``. ``progress(done, total)`` is
        called after every reply."""
        cmd = CMD_INFER_PACKED if packed else CMD_INFER
        frames = [encode_frame(cmd, pack_zero_runs(c) if packed else _codes_bytes(c))
                  for c in samples]
        out: list[Inference] = []
        failures = 0
        sent = 0
        while len(out) < len(frames):
            try:
                while sent < len(frames) and sent - len(out) < PIPELINE_DEPTH:
                    self.port.write(frames[sent])
                    sent += 1
                payload = self._reply_payload(self.receive(), cmd, f" to sample {len(out)}")
                out.append(Inference.decode(payload))
                if progress is not None:
                    progress(len(out), len(frames))
            except LinkError:
                failures += 1
                if failures >= attempts:
                    raise
                self.drain()  # every reply still due arrives and is dropped
                sent = len(out)
        return out

    def status(self) -> Status:
        return Status.decode(self.request(CMD_STATUS))

    def load(self, store: int, address: int, data: bytes) -> None:
        """Write ``data`` into weight store ``store`` from word ``address`` on (one LOAD
        frame: the bytes of consecutive words, each word's bytes little-endian)."""
        if not 0 <= store <= 0xFF or not 0 <= address <= 0xFFFF or not data:
            raise ValueError(f"LOAD needs a store 0..255, an address 0..65535 and data, not "
                             f"{store}, {address}, {len(data)} bytes")
        _need(self.request(CMD_LOAD, bytes([store]) + address.to_bytes(2, "little")
                           + bytes(data)), 0, "LOAD")

    def commit(self) -> None:
        """Declare the weights complete: INFER is accepted from now on."""
        _need(self.request(CMD_COMMIT), 0, "COMMIT")

    def _wait_verified(self, words: int, clock_hz: float = 10e6) -> None:
        """After COMMIT to a processor with its weights in SDRAM: STATUS until the device
        has read the ``words`` back and found the plan's checksum ("loaded"), for about
        twice the time a word a cycle at ``clock_hz`` (the slowest clock a build takes)
        and a second more; else ``LinkError``."""
        deadline = time.monotonic() + 1.0 + 2 * words / clock_hz
        while True:
            if self.status().loaded:
                return
            if time.monotonic() > deadline:
                raise LinkError("the device read the weights back from its SDRAM and their "
                                "checksum is not the one the bitstream was built with: the "
                                "load was corrupted, or the bitstream is another network's")
            time.sleep(0.01)

    def load_weights(self, specs, *, chunk_bytes: int = 1024, attempts: int = 3,
                     progress=None) -> int:
        """Write every store of ``specs`` (``hdl.plan.StoreSpec``, in link order) and
        COMMIT; returns the bytes sent. A frame that fails (CRC, timeout, …) starts the
        whole load again (a corrupt frame may have written anywhere) once the line is
        quiet (``drain``), up to ``attempts`` times. ``progress(done, total)`` is called
        after every frame."""
        blobs = [(i, s.encode(), s.bytes_per_word) for i, s in enumerate(specs)]
        total = sum(len(b) for _, b, _ in blobs)
        for attempt in range(attempts):
            done = 0
            try:
                for i, blob, n in blobs:
                    step = max(n, chunk_bytes // n * n)
                    for at in range(0, len(blob), step):
                        self.load(i, at // n, blob[at:at + step])
                        done += len(blob[at:at + step])
                        if progress is not None:
                            progress(done, total)
                self.commit()
                if any(hasattr(s, "page") for s in specs):  # (SDRAM: read back first)
                    self._wait_verified(sum(s.depth for s in specs))
                return total
            except LinkError:
                if attempt == attempts - 1:
                    raise
                # Replies to the failed frame may still be on their way, or the device
                # inside a frame begun by a corrupt byte: loading again at once would run
                # into them (ERROR 6 or a stale ERROR for the next frame, again and again).
                self.drain()
        raise AssertionError("unreachable")
