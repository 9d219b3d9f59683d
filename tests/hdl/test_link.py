# amaranth: UnusedElaboratable=no
"""The UART host link (hwsnn.hdl.link.HostLink) in amaranth.sim, driven through the
host-side codec (hwsnn.flow.host) over a simulated serial line, against the golden model."""

from __future__ import annotations

import gc
import random
from collections import deque

import pytest
import torch
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hwsnn.flow import host
from hwsnn.hdl.link import HostLink, crc8_update
from hwsnn.hdl.network import Network
from hwsnn.hdl.plan import layout_id
from hwsnn.hdl.verilog import fingerprint
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

from .random_nets import random_qnet

DIVISOR = 4  # clock cycles per bit: the smallest the link takes, the fastest to simulate
BAUD = 115200
CLK_HZ = DIVISOR * BAUD
TIMEOUT_BYTES = 3
PERIOD = 1e-6


class SimPort:
    """A serial port whose far end is a simulated HostLink: ``write`` queues bytes for
    the line driver, ``read(n)`` runs the simulation until ``n`` bytes came back (or
    ``patience`` cycles passed: a short read, like a serial port's timeout)."""

    def __init__(self, link: HostLink, patience: int = 200_000):
        self.link = link
        self.d = link.divisor
        self.patience = patience
        self.outgoing: deque[tuple[int, int]] = deque()  # (byte, stop bit)
        self.incoming = bytearray()
        self.arrivals: list[int] = []  # network cycle counter at each reply byte's start
        self.bad_stop_bits = 0
        self.last_sent = 0  # network cycle counter after the last byte written
        self.inferences: list[int] = []  # cycles first pixel → last readout, measured here
        self.now = 0
        self.sim = Simulator(link)
        self.sim.add_clock(PERIOD)
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._listen, background=True)
        self.sim.add_testbench(self._watch, background=True)

    # -- the testbenches -------------------------------------------------------------
    async def _drive(self, ctx):
        async def wait(n):  # (plain awaits: a testbench left suspended must not hold an
            for _ in range(n):  # async generator, which cannot be closed cleanly)
                await ctx.tick()

        d, rx = self.d, self.link.rx
        ctx.set(rx, 1)
        while True:
            if not self.outgoing:
                await wait(d)
                continue
            byte, stop = self.outgoing.popleft()
            for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
                ctx.set(rx, bit)
                await wait(d)
            if not stop:  # let the receiver see the line high again
                ctx.set(rx, 1)
                await wait(2 * d)
            self.last_sent = ctx.get(self.link.network.cycles)

    async def _listen(self, ctx):
        d, tx = self.d, self.link.tx

        async def wait(n):
            for _ in range(n):
                await ctx.tick()

        while True:
            await ctx.negedge(tx)
            self.arrivals.append(ctx.get(self.link.network.cycles))
            await wait(d // 2)
            assert ctx.get(tx) == 0, "a glitch on tx, not a start bit"
            byte = 0
            for i in range(8):
                await wait(d)
                byte |= ctx.get(tx) << i
            await wait(d)
            if not ctx.get(tx):
                self.bad_stop_bits += 1
            self.incoming.append(byte)

    async def _watch(self, ctx):
        """Times every inference at the network's ports, independently of the link."""
        pix, out, cyc = self.link.network.pixels, self.link.network.o, \
            self.link.network.cycles
        while True:
            await ctx.posedge(pix.valid)
            first = None
            while True:
                _, _, pv, pr, ov, orr, last, t = await ctx.tick().sample(
                    pix.valid, pix.ready, out.valid, out.ready, out.payload.last, cyc)
                if first is None and pv and pr:
                    first = t
                if ov and orr and last:
                    self.inferences.append(t - first)
                    break

    # -- the port --------------------------------------------------------------------
    def run(self, cycles: int) -> None:
        self.now += cycles
        self.sim.run_until(self.now * PERIOD)

    def write(self, data: bytes, stop: int = 1) -> int:
        self.outgoing.extend((b, stop) for b in bytes(data))
        return len(data)

    def read(self, n: int) -> bytes:
        waited = 0
        while len(self.incoming) < n and waited < self.patience:
            self.run(10 * self.d)
            waited += 10 * self.d
        out = bytes(self.incoming[:n])
        del self.incoming[:n]
        return out

    def drain(self) -> None:
        """Send everything queued and wait until the line has been quiet for a while."""
        while self.outgoing:
            self.run(10 * self.d)
        self.run(3 * self.link.timeout_cycles)


def reply(port: SimPort) -> host.Frame:
    return host.Client(port).receive()


def expect_error(port: SimPort, code: int) -> None:
    frame = reply(port)
    assert frame == (host.CMD_ERROR, bytes([code])), f"expected ERROR {code}, got {frame}"


def golden_inference(net, codes) -> list[tuple[int, list[int]]]:
    res = golden.run(net, codes)
    return [(int(p), r.tolist()) for r, p in zip(res.readout, res.predictions, strict=True)]


# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# The host-side codec, without hardware.


def test_crc8_check_value():
    assert host.crc8(b"123456789") == 0xF4  # the catalogue check value of CRC-8/0x07
    assert host.crc8(b"") == 0
    assert host.crc8(b"\x01\x00\x00") == 0x6B  # the IDENTIFY example of docs/link.md
    data = bytes(random.Random(0).randrange(256) for _ in range(50))
    assert host.crc8(data[20:], host.crc8(data[:20])) == host.crc8(data)


def test_crc8_update_in_hardware_matches_host():
    m = Module()
    crc, byte, out = Signal(8), Signal(8), Signal(8)
    m.d.comb += out.eq(crc8_update(crc, byte))
    rng = random.Random(1)
    cases = [(c, b) for c in (0, 0x80, 0xFF, rng.randrange(256)) for b in range(256)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == host.crc8(bytes([b]), c), (c, b)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_encode_frame_layout():
    frame = host.encode_frame(host.CMD_INFER, bytes([1, 2, 3]))
    assert frame[:4] == bytes([0xA5, 0x02, 3, 0]) and frame[4:7] == bytes([1, 2, 3])
    assert frame[7] == host.crc8(frame[1:7]) and len(frame) == 8
    assert host.encode_frame(host.CMD_IDENTIFY) == bytes([0xA5, 0x01, 0x00, 0x00, 0x6B])
    assert host.encode_frame(0x10, bytes(300))[2:4] == (300).to_bytes(2, "little")
    with pytest.raises(ValueError, match="byte"):
        host.encode_frame(256)
    with pytest.raises(ValueError, match="limit"):
        host.encode_frame(1, bytes(70_000))


def test_frame_parser_resyncs():
    a = host.encode_frame(0x81, b"first")
    b = host.encode_frame(0x83, bytes(range(13)))
    bad = bytearray(host.encode_frame(0x82, b"\x00\x11\x22"))
    bad[5] ^= 0x04  # a flipped payload bit
    stream = b"\x00\xffjunk" + a + bytes(bad) + b"\x01" + b
    p = host.FrameParser()
    frames = []
    for i in range(0, len(stream), 3):  # in pieces that cut frames anywhere
        frames += p.feed(stream[i:i + 3])
    assert frames == [(0x81, b"first"), (0x83, bytes(range(13)))]
    assert (p.crc_errors, p.skipped, p.frames) == (1, 7, 2)
    assert not p.in_frame
    # A sync byte inside garbage starts a bogus frame; its CRC fails and the parser
    # hunts again from the byte after it, so the next real frame still comes through.
    p = host.FrameParser(max_len=16)
    assert p.feed(b"\xa5\x02\x40\x00" + a) == [(0x81, b"first")]  # LEN 64 > max_len
    assert p.length_errors == 1
    p = host.FrameParser()
    assert p.feed(b"\xa5\x02\x02\x00" + a[:1]) == [] and p.in_frame
    p.reset()
    assert p.feed(a) == [(0x81, b"first")]


def test_reply_decoders():
    values = [-5, 0, 2**31 - 1, -(2**31)]
    payload = bytes([3]) + (1234).to_bytes(4, "little") + b"".join(
        v.to_bytes(4, "little", signed=True) for v in values)
    assert host.Inference.decode(payload) == host.Inference(3, 1234, tuple(values))
    status = host.Status.decode(bytes([1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 1, 5, 0]))
    assert status == host.Status(1, 258, 2**24, 5, loaded=False)
    assert status.last_error_name.startswith("UART")
    ident = host.Identity.decode(b"HWSN\x03" + bytes(range(8)) + b"\x0a\x40\x00\x01wxyz")
    assert ident == host.Identity(3, bytes(range(8)), 10, 64, 1, b"wxyz")
    with pytest.raises(host.LinkError, match="protocol version 2"):
        host.Identity.decode(b"HWSN\x02" + bytes(range(8)) + b"\x0a\x40\x00")
    for bad in (b"HWSX" + bytes(17), b"HWSN", b"HWSN\x03" + bytes(12)):
        with pytest.raises(host.LinkError):
            host.Identity.decode(bad)
    with pytest.raises(host.LinkError):
        host.Inference.decode(bytes(7))


class FakePort:
    """A port with canned replies; ``read`` returns short when they run out."""

    def __init__(self, replies: bytes = b""):
        self.replies = bytearray(replies)
        self.written = bytearray()

    def write(self, data):
        self.written += data

    def read(self, n):
        out = bytes(self.replies[:n])
        del self.replies[:n]
        return out


def test_client_over_a_fake_port():
    status = bytes(range(14))
    port = FakePort(b"\x00" + host.encode_frame(0x83, status))
    assert host.Client(port).status() == host.Status.decode(status)
    assert port.written == host.encode_frame(host.CMD_STATUS)
    port = FakePort(host.encode_frame(0x82, bytes(5 + 8)))
    host.Client(port).infer(torch.zeros(2, 2, 2, dtype=torch.int64))
    assert port.written == host.encode_frame(host.CMD_INFER, bytes(8))
    with pytest.raises(host.LinkError, match="ERROR 4") as err:
        host.Client(FakePort(host.encode_frame(0xFF, b"\x04"))).identify()
    assert err.value.code == 4 and isinstance(err.value, host.HwsnnError)
    corrupt = bytearray(host.encode_frame(0x81, bytes(16)))
    corrupt[6] ^= 1
    with pytest.raises(host.LinkError, match="CRC"):
        host.Client(FakePort(bytes(corrupt))).identify()
    with pytest.raises(host.LinkError, match="timed out inside"):
        host.Client(FakePort(host.encode_frame(0x81, bytes(16))[:9])).identify()
    with pytest.raises(host.LinkError, match="timed out"):
        host.Client(FakePort()).identify()
    with pytest.raises(host.LinkError, match="expected reply 0x81"):
        host.Client(FakePort(host.encode_frame(0x83, bytes(13)))).identify()
    with pytest.raises(ValueError, match="0..255"):
        host.Client(FakePort()).infer([1, 2, 300])
    with pytest.raises(TypeError, match="write"):
        host.Client(object())


# ---------------------------------------------------------------------------------------
# The hardware.


@pytest.fixture(scope="module")
def small():
    """A small random QNet (5 pixels, 5 classes, T=3) and input codes that give five
    different readouts (checked here, so that a swapped sample would show)."""
    net = random_qnet(random.Random(33), "gn")
    codes = torch.randint(0, 256, (6, *net.input.shape),
                          generator=torch.Generator().manual_seed(33))
    assert len({tuple(r) for r in golden.run(net, codes).readout.tolist()}) >= 4
    return net, codes


def small_port(net) -> SimPort:
    return SimPort(HostLink(net, clk_hz=CLK_HZ, baud=BAUD, timeout_bytes=TIMEOUT_BYTES))


def assert_golden(net, codes, got: host.Inference):
    (want,) = golden_inference(net, codes[None])
    assert (got.prediction, list(got.values)) == want


@pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")
def test_parameters_are_checked(small):
    check_parameters(small[0])
    gc.collect()  # the links built here are never elaborated: warn now, while filtered


def check_parameters(net):
    with pytest.raises(ValueError, match="3 cycles per bit.*at least 4"):
        HostLink(net, clk_hz=3 * BAUD, baud=BAUD)
    with pytest.raises(ValueError, match=r"divisor 5 gives 100000 baud, \+8.5%"):
        HostLink(net, clk_hz=500_000, baud=92_160)
    link = HostLink(net, clk_hz=12e6, baud=115200)  # 104 cycles per bit: +0.2 %
    assert link.divisor == 104 and abs(link.baud_error) < 0.003
    with pytest.raises(TypeError, match="QNet"):
        HostLink("net", clk_hz=CLK_HZ)
    with pytest.raises(TypeError, match="number"):
        HostLink(net, clk_hz="12 MHz")
    with pytest.raises(ValueError, match="positive"):
        HostLink(net, clk_hz=CLK_HZ, baud=0)
    with pytest.raises(ValueError, match="timeout_bytes"):
        HostLink(net, clk_hz=CLK_HZ, timeout_bytes=0)
    with pytest.raises(TypeError, match="Network"):
        HostLink(net, clk_hz=CLK_HZ, network=object())
    other = random_qnet(random.Random(1), "gn")
    with pytest.raises(ValueError, match="different QNet"):
        HostLink(net, clk_hz=CLK_HZ, network=Network(other))


@pytest.fixture(scope="module")
def digits(bundled_graph, digits_test):
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    codes = golden.encode(net, digits_test[0][:2])
    return net, codes


def test_digits_identify_infer_status(digits):
    net, codes = digits
    port = SimPort(HostLink(net, clk_hz=CLK_HZ, baud=BAUD, lanes=4,
                            timeout_bytes=TIMEOUT_BYTES))
    client = host.Client(port)
    ident = client.identify()
    assert ident == host.Identity(host.PROTOCOL_VERSION, bytes.fromhex(fingerprint(net))[:8],
                                  net.classes, codes[0].numel())
    assert ident.matches(fingerprint(net))
    port.write(b"\x00\x13\xff\x5a")  # garbage before a frame is skipped
    got = [client.infer(c) for c in codes]
    assert [(g.prediction, list(g.values)) for g in got] == golden_inference(net, codes)
    assert [g.cycles for g in got] == port.inferences  # timed at the network's ports
    assert client.status() == host.Status(accepted=1 + len(codes) + 1, rejected=0,
                                          inferences=len(codes), last_error=0)
    assert port.bad_stop_bits == 0


def test_corrupt_frame_never_reaches_the_network(small):
    net, codes = small
    port = small_port(net)
    client = host.Client(port)
    assert_golden(net, codes[0], client.infer(codes[0]))
    frame = bytearray(host.encode_frame(host.CMD_INFER, bytes(codes[1].flatten().tolist())))
    frame[4 + 3] ^= 0x10  # one payload bit
    port.write(frame)
    expect_error(port, host.ERR_CRC)
    assert len(port.inferences) == 1  # only the first INFER ran
    assert_golden(net, codes[2], client.infer(codes[2]))
    assert client.status() == host.Status(3, 1, 2, host.ERR_CRC)


def test_bad_length_and_unknown_command(small):
    net, codes = small
    port = small_port(net)
    client = host.Client(port)
    short = bytes(codes[0].flatten().tolist())[:-1].replace(b"\xa5", b"\x00")
    frame = host.encode_frame(host.CMD_INFER, short)
    assert host.SYNC not in frame[1:]  # nothing in the rest can look like a new frame
    port.write(frame)
    expect_error(port, host.ERR_LENGTH)
    port.drain()
    with pytest.raises(host.LinkError, match="ERROR 2") as err:
        client.request(host.CMD_STATUS, b"\x00")  # STATUS takes no payload
    assert err.value.code == host.ERR_LENGTH
    port.drain()
    with pytest.raises(host.LinkError, match="unknown command") as err:
        client.request(0x42)
    assert err.value.code == host.ERR_COMMAND
    port.drain()
    assert port.incoming == b""  # one ERROR reply per bad frame, nothing else
    assert_golden(net, codes[1], client.infer(codes[1]))
    assert client.status() == host.Status(2, 3, 1, host.ERR_COMMAND)
    assert len(port.inferences) == 1


def test_truncated_frame_times_out(small):
    net, codes = small
    port = small_port(net)
    client = host.Client(port)
    frame = host.encode_frame(host.CMD_INFER, bytes(codes[0].flatten().tolist()))
    port.write(frame[:6])
    expect_error(port, host.ERR_TRUNCATED)
    quiet = port.arrivals[-6] - port.last_sent  # from the last byte sent to the reply
    timeout = port.link.timeout_cycles
    assert timeout <= quiet <= timeout + 20 * port.d
    assert port.link.timeout_cycles == TIMEOUT_BYTES * 10 * DIVISOR
    assert len(port.inferences) == 0
    assert_golden(net, codes[3], client.infer(codes[3]))
    assert client.status() == host.Status(2, 1, 1, host.ERR_TRUNCATED)


def test_framing_error(small):
    net, codes = small
    port = small_port(net)
    client = host.Client(port)
    port.write(b"\xa5\x02")
    port.write(b"\x08", stop=0)  # a LEN byte with its stop bit low
    expect_error(port, host.ERR_FRAMING)
    port.drain()
    assert port.incoming == b""
    assert_golden(net, codes[4], client.infer(codes[4]))
    assert client.status() == host.Status(2, 1, 1, host.ERR_FRAMING)


def test_frames_pipeline_and_a_third_is_busy(small):
    """A frame that arrives while the device works on the one before is taken (it waits in
    the request slot); one that arrives while a request already waits is refused with
    ERROR 6, and when the slot is still full at its end the ERROR is counted only."""
    net, codes = small
    port = small_port(net)
    client = host.Client(port)
    port.write(host.encode_frame(host.CMD_INFER, bytes(codes[5].flatten().tolist())))
    port.write(host.encode_frame(host.CMD_STATUS))  # sent before the INFER reply came
    assert_golden(net, codes[5], host.Inference.decode(reply(port).payload))
    assert host.Status.decode(reply(port).payload) == host.Status(2, 0, 1, 0)
    # A and B pipelined; C arrives while B waits for the executor (A still answering).
    for c in (codes[0], codes[1]):
        port.write(host.encode_frame(host.CMD_INFER, bytes(c.flatten().tolist())))
    port.write(host.encode_frame(host.CMD_STATUS))
    for c in (codes[0], codes[1]):
        assert_golden(net, c, host.Inference.decode(reply(port).payload))
    port.drain()
    assert port.incoming == b""  # C's ERROR 6 found B's request waiting: not answered
    assert client.status() == host.Status(5, 1, 3, host.ERR_BUSY)
    assert_golden(net, codes[2], client.infer(codes[2]))


def test_infer_many_pipelines_and_matches_golden(digits):
    """``Client.infer_many`` keeps the line busy: the same samples take fewer cycles than
    one request at a time, every answer is golden, packed or not."""
    net, codes = digits
    port = SimPort(HostLink(net, clk_hz=CLK_HZ, baud=BAUD, lanes=4,
                            timeout_bytes=TIMEOUT_BYTES))
    client = host.Client(port)
    want = golden_inference(net, codes)
    for packed in (False, True):
        start = port.now
        one = [client.infer(c, packed=packed) for c in codes]
        sequential = port.now - start
        start = port.now
        many = client.infer_many(codes, packed=packed)
        pipelined = port.now - start
        for got in (one, many):
            assert [(g.prediction, list(g.values)) for g in got] == want
        assert pipelined < 0.9 * sequential, (packed, pipelined, sequential)
    assert client.status() == host.Status(4 * len(codes) + 1, 0, 4 * len(codes), 0)


def test_packed_pixels(small):
    """INFER_PACKED: zero runs coded; every coding error is ERROR 9 and never reaches the
    network, and the next sample is golden again (the bank is rewritten whole)."""
    net, codes = small
    port = small_port(net)
    client = host.Client(port)
    n = codes[0].numel()
    samples = [codes[0], torch.zeros_like(codes[0]), torch.full_like(codes[0], 7),
               torch.tensor([0, 9, 0, 0, 3][:n]).reshape(codes[0].shape)]
    for c in samples:
        assert host.unpack_zero_runs(host.pack_zero_runs(c), n) == bytes(c.flatten().tolist())
        assert_golden(net, c, client.infer(c, packed=True))
    bad = [b"\x00\x00" + bytes([1] * (n - 1)), b"\x00\x21" + bytes(n),  # runs of 0, 33
           bytes([5] * (n - 1)) + b"\x00",  # a run without its length
           bytes([5] * (n - 1)), bytes([5] * (n + 1)),  # too few, too many pixels
           b"\x00" + bytes([n + 1])]  # a zero run past the last pixel
    for payload in bad:
        assert host.unpack_zero_runs(payload, n) is None
        with pytest.raises(host.LinkError, match="ERROR 9") as err:
            client.request(host.CMD_INFER_PACKED, payload)
        assert err.value.code == host.ERR_ENCODING
        assert_golden(net, codes[1], client.infer(codes[1], packed=True))
    for length in (0, 2 * n + 1):  # LEN outside 1 .. 2·pixels
        with pytest.raises(host.LinkError, match="ERROR 2"):
            client.request(host.CMD_INFER_PACKED, bytes([3] * length))
    assert client.status() == host.Status(len(samples) + len(bad) + 1,
                                          len(bad) + 2, len(samples) + len(bad),
                                          host.ERR_LENGTH)
    assert len(port.inferences) == len(samples) + len(bad)


def loadable_port(net, lanes=2) -> SimPort:
    """A link whose first population's input weights are loaded at run time."""
    return SimPort(HostLink(net, clk_hz=CLK_HZ, baud=BAUD, timeout_bytes=TIMEOUT_BYTES,
                            lanes=lanes, loadable=[(net.populations[0].name, 0)]))


def test_weights_loaded_over_the_link(small):
    """LOAD + COMMIT write the run-time weight store; INFER is refused until then and
    again after any LOAD, and then equals the golden model."""
    net, codes = small
    port = loadable_port(net)
    client = host.Client(port)
    (spec,) = port.link.stores
    ident = client.identify()
    assert (ident.stores, ident.layout) == (1, layout_id([spec]))
    assert not client.status().loaded
    with pytest.raises(host.LinkError, match="ERROR 7") as err:
        client.infer(codes[0])
    assert err.value.code == host.ERR_NOT_LOADED and port.inferences == []
    blob = spec.encode()
    assert len(blob) == spec.depth * spec.bytes_per_word
    sent = client.load_weights([spec], chunk_bytes=4)  # several frames
    assert sent == len(blob) and client.status().loaded
    assert_golden(net, codes[0], client.infer(codes[0]))
    # A corrupt LOAD frame is refused, and the weights count as not loaded until the
    # next COMMIT (its bytes were written before its CRC came).
    frame = bytearray(host.encode_frame(host.CMD_LOAD, b"\x00\x00\x00" + blob[:2]))
    frame[-2] ^= 0x01
    port.write(frame)
    expect_error(port, host.ERR_CRC)
    with pytest.raises(host.LinkError, match="ERROR 7"):
        client.infer(codes[1])
    client.load_weights([spec])
    assert_golden(net, codes[1], client.infer(codes[1]))
    # Outside the stores: a store index or a word address too high.
    for header in (b"\x01\x00\x00", b"\x00" + spec.depth.to_bytes(2, "little")):
        with pytest.raises(host.LinkError, match="ERROR 8") as err:
            client.request(host.CMD_LOAD, header + b"\x00")
        assert err.value.code == host.ERR_ADDRESS
    with pytest.raises(host.LinkError, match="ERROR 2"):  # LOAD without data
        client.request(host.CMD_LOAD, b"\x00\x00\x00")
    client.commit()  # the refused LOADs wrote nothing
    assert_golden(net, codes[2], client.infer(codes[2]))
    assert client.status().rejected == 6  # ERROR 7, 1, 7, 8, 8, 2


def test_load_is_an_unknown_command_without_stores(small):
    net, _ = small
    client = host.Client(small_port(net))
    assert client.identify().stores == 0 and client.status().loaded
    for cmd in (host.CMD_LOAD, host.CMD_COMMIT):
        with pytest.raises(host.LinkError, match="unknown command"):
            client.request(cmd, b"\x00\x00\x00\x00" if cmd == host.CMD_LOAD else b"")


def test_link_converts_to_verilog():
    net = random_qnet(random.Random(6), "gn")
    link = HostLink(net, clk_hz=12_000_000, baud=115200, lanes=2)
    text = verilog.convert(link, name="link_top", emit_src=False)
    assert "module link_top" in text
    for port in ("rx", "tx", "busy", "last_error"):
        assert f" {port}" in text


def test_the_serial_processor_behind_the_link(bundled_graph, digits_test):
    """The layer-serial processor (hdl.processor) in place of the dataflow network: the
    same frames, the golden model's readout and class, its compute cycles in the reply."""
    from hwsnn.hdl.processor import SerialProcessor
    from hwsnn.hdl.serial import SerialPlan
    net = quantize(convert(bundled_graph("digits-cnn"), method="ilif", timesteps=2,
                           progress=False))
    codes = golden.encode(net, digits_test[0][:2])
    processor = SerialProcessor(SerialPlan(net, lanes=8, keep_current=False))
    port = SimPort(HostLink(net, clk_hz=CLK_HZ, baud=BAUD, timeout_bytes=TIMEOUT_BYTES,
                            network=processor))
    client = host.Client(port)
    assert client.identify().matches(fingerprint(net))
    got = [client.infer(c) for c in codes]
    assert [(g.prediction, list(g.values)) for g in got] == golden_inference(net, codes)
    assert [g.cycles for g in got] == port.inferences
    assert client.status().inferences == len(codes)
