# amaranth: UnusedElaboratable=no
"""The host link's framing (hwsnn.hdl.frames) in amaranth.sim, each component alone against
a small Python model, under seeded random gaps and back-pressure: the frame receiver
(verdicts, payload beats and the cycle of each), the sample and weight writers (what they
write, their ``bad`` flags) and the reply transmitter (framed replies, byte for byte)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from hwsnn.flow import host
from hwsnn.hdl.frames import (
    _REPLY_CMD,
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
    reply_lengths,
)

from .stream_bench import put, take, wait

SEEDS = [3, 11, 2024]
PIXELS = 5
BYTE_GAP = 40  # cycles from one received byte to the next at least (10 bits at divisor 4)
TIMEOUT = 3 * BYTE_GAP
LEVELS = ("busy", "waiting", "sample_bad", "weights_bad", "loaded")

# ---------------------------------------------------------------------------------------
# FrameReceiver


def receiver_stimulus(rng: random.Random, loadable: bool):
    """Received beats ``(cycle, data, error)`` of random good and bad frames, with gaps of
    at least a byte time (sometimes the timeout, give or take a cycle), and the input
    levels, a list per cycle each (changed at random moments)."""
    damage = ["crc", "flip", "unknown", "length", "junk", "cut", "stop"]
    kinds = damage + [None] * 16
    rng.shuffle(kinds)
    cases = []
    for what in kinds:
        pix = bytes(rng.choice([0, 0, 7, rng.randrange(256)]) for _ in range(PIXELS))
        cmd = rng.choice([host.CMD_IDENTIFY, host.CMD_STATUS, host.CMD_INFER,
                          host.CMD_INFER_PACKED] + [host.CMD_LOAD, host.CMD_COMMIT] * loadable)
        payload = {host.CMD_INFER: pix, host.CMD_INFER_PACKED: host.pack_zero_runs(pix),
                   host.CMD_LOAD: bytes(rng.randrange(256) for _ in range(rng.randrange(4, 9)))
                   }.get(cmd, b"")
        data = bytearray(host.encode_frame(cmd, payload))
        if what == "crc":
            data[-1] ^= 1 << rng.randrange(8)
        elif what == "flip":
            data[rng.randrange(1, len(data))] ^= 1 << rng.randrange(8)
        elif what == "unknown":
            data = bytearray(host.encode_frame(rng.choice([0, 7, 0x42, 0xA5]), b""))
        elif what == "length":
            data = bytearray(rng.choice([host.encode_frame(host.CMD_INFER, pix + b"\x01"),
                                         host.encode_frame(host.CMD_STATUS, b"\x01")]))
        elif what == "junk":
            data = bytearray(rng.choice([0xA5, 0x02, 0x00, 0x55]) for _ in range(4))
        cases.append((data, what))
    beats, t = [], 50
    for data, what in cases:
        cut = rng.randrange(1, len(data)) if what == "cut" else None  # truncated
        bad_stop = rng.randrange(1, len(data)) if what == "stop" else None
        for k, byte in enumerate(data):
            if k == cut:
                t += TIMEOUT + rng.choice([1, 2, 30])
            beats.append((t, byte, int(k == bad_stop)))
            t += rng.choice([BYTE_GAP] * 12 + [BYTE_GAP + rng.randrange(30)] * 4 + (
                [TIMEOUT - 1, TIMEOUT, TIMEOUT + 1] if what is None else []))
        if what == "junk":  # (its sync bytes start frames: let them time out)
            t += TIMEOUT
    end = t + 2 * TIMEOUT
    levels = {}
    for name in LEVELS:
        level, values = rng.random() < 0.5, []
        while len(values) < end:
            values += [int(level)] * rng.randrange(20, 600)
            level = rng.random() < (0.7 if name == "loaded" else 0.3)
        levels[name] = values[:end]
    if not loadable:
        levels["loaded"] = [1] * end
    return beats, levels, end


def receiver_model(beats, levels, loadable: bool):
    """What the receiver does (docs/link.md, "Frames", "Receiving", "Busy"): its posts
    ``(cycle, kind, code)``, its sample beats ``(cycle, data, start, packed)`` and weight
    beats ``(cycle, data, start, commit)`` (``data`` None where unused; both a cycle after
    their byte was taken). A byte is taken the cycle after its beat, a framing error in its
    beat's cycle; a frame quiet for ``TIMEOUT`` cycles after its last byte was taken is
    truncated."""
    commands = {host.CMD_IDENTIFY, host.CMD_INFER, host.CMD_STATUS, host.CMD_INFER_PACKED}
    if loadable:
        commands |= {host.CMD_LOAD, host.CMD_COMMIT}
    posts, samples, weights = [], [], []
    state, f = "HUNT", None

    def seen(name, t):  # the level was high from the sync byte's beat to cycle t − 1
        return any(levels[name][f.sync - 1:t])

    for beat, byte, error in beats:
        t = beat if error else beat + 1
        if state != "HUNT" and t > f.last + TIMEOUT:
            posts.append((f.last + TIMEOUT, K_ERROR, host.ERR_TRUNCATED))
            state = "HUNT"
        if error:
            if state != "HUNT":
                posts.append((t, K_ERROR, host.ERR_FRAMING))
                state = "HUNT"
            continue
        if state == "HUNT":
            if byte == host.SYNC:
                state, f = "CMD", SimpleNamespace(sync=t, last=t, crc=0, cmd=None)
            continue
        f.last = t
        infer = f.cmd in (host.CMD_INFER, host.CMD_INFER_PACKED)
        load = f.cmd == host.CMD_LOAD
        packed = int(f.cmd == host.CMD_INFER_PACKED)
        if state in ("LEN1", "PAYLOAD"):
            start = int(state == "LEN1")
            if infer and not seen("waiting", t):
                samples.append((t + 1, None if start else byte, start, packed))
            if load and loadable and not seen("busy", t):
                weights.append((t + 1, None if start else byte, start, 0))
        if state == "CMD":
            f.cmd = byte
            state = "LEN0" if byte in commands else "HUNT"
            if state == "HUNT":
                posts.append((t, K_ERROR, host.ERR_COMMAND))
        elif state == "LEN0":
            f.lo, state = byte, "LEN1"
        elif state == "LEN1":
            n = f.lo | byte << 8
            if load:
                bad = n < host.LOAD_HEADER_LEN + 1
            elif packed:
                bad = n == 0 or n > 2 * PIXELS
            else:
                bad = n != (PIXELS if infer else 0)
            f.left = n
            if bad:
                posts.append((t, K_ERROR, host.ERR_LENGTH))
            state = "HUNT" if bad else "PAYLOAD" if infer or load else "CRC"
        elif state == "PAYLOAD":
            f.left -= 1
            state = "CRC" if f.left == 0 else "PAYLOAD"
        elif state == "CRC":
            state = "HUNT"
            if byte != f.crc:
                code = host.ERR_CRC
            elif seen("busy" if load else "waiting", t):
                code = host.ERR_BUSY
            elif infer and not levels["loaded"][t]:
                code = host.ERR_NOT_LOADED
            elif packed and levels["sample_bad"][t]:
                code = host.ERR_ENCODING
            elif load and levels["weights_bad"][t]:
                code = host.ERR_ADDRESS
            else:
                posts.append((t, f.cmd - 1, 0))
                if f.cmd == host.CMD_COMMIT:
                    weights.append((t + 1, None, 0, 1))
                continue
            posts.append((t, K_ERROR, code))
            continue
        f.crc = host.crc8(bytes([byte]), f.crc)
    if state != "HUNT":
        posts.append((f.last + TIMEOUT, K_ERROR, host.ERR_TRUNCATED))
    return posts, samples, weights


@pytest.mark.parametrize("loadable", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_receiver_against_model(seed, loadable):
    """Every verdict, payload beat and COMMIT on the cycle the model gives."""
    rng = random.Random(seed)
    beats, levels, end = receiver_stimulus(rng, loadable)
    dut = FrameReceiver(pixels=PIXELS, timeout_cycles=TIMEOUT, loadable=loadable)
    got = ([], [], [])
    at = {t: (byte, error) for t, byte, error in beats}

    inputs = {name: getattr(dut, name) for name in LEVELS if name != "weights_bad" or loadable}
    watched = [dut.post.valid, dut.post.payload, dut.sample.valid, dut.sample.payload] + (
        [dut.weights.valid, dut.weights.payload] if loadable else [])

    async def bench(ctx):
        assert ctx.get(dut.i.ready)
        last = {}
        for t in range(end):
            ctx.set(dut.i.valid, t in at)
            if t in at:
                ctx.set(dut.i.payload, {"data": at[t][0], "error": at[t][1]})
            for name, port in inputs.items():  # (only changes: each set costs)
                if last.get(name) != levels[name][t]:
                    ctx.set(port, levels[name][t])
                    last[name] = levels[name][t]
            _, _, *out = await ctx.tick().sample(*watched)
            if out[0]:
                got[0].append((t, out[1].kind, out[1].code))
            if out[2]:
                s = out[3]
                got[1].append((t, None if s.start else s.data, s.start, s.packed))
            if loadable and out[4]:
                w = out[5]
                got[2].append((t, None if w.start or w.commit else w.data, w.start,
                               w.commit))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    posts, samples, weights = receiver_model(beats, levels, loadable)
    assert got[0] == posts
    assert got[1] == samples
    assert got[2] == weights
    codes = {code for _, kind, code in posts if kind == K_ERROR}
    assert {host.ERR_CRC, host.ERR_LENGTH, host.ERR_COMMAND, host.ERR_TRUNCATED,
            host.ERR_FRAMING, host.ERR_BUSY} <= codes  # (the stimulus has them all)


# ---------------------------------------------------------------------------------------
# SampleWriter


def sample_payloads(rng: random.Random, n: int, count: int):
    """``count`` (packed, payload) pairs for ``n`` pixels: good samples, plain and packed
    (with zero runs of 32, the longest, where ``n`` allows), and broken codings."""
    out = []
    kinds = ["plain", "packed", "packed", "bad", "bad"] * count
    rng.shuffle(kinds)
    for k, kind in enumerate(kinds[:count]):
        pix = bytes(rng.choice([0, 0, 0, 9, rng.randrange(1, 256)]) for _ in range(n))
        if k % 2 == 0 and n > 33:  # a long run of zeros somewhere
            at = rng.randrange(n - 32)
            pix = (pix[:at] + bytes(rng.choice([32, 33, n - at])) + pix[at:])[:n]
        packed = host.pack_zero_runs(pix)
        if kind == "plain":
            out.append((0, pix))
        elif kind == "packed":
            out.append((1, packed))
        else:
            bad = rng.choice([packed[:-1], packed + b"\x03", b"\x00\x00" + packed,
                              b"\x00\x21" + packed[2:], packed + b"\x00",
                              b"\x00" + bytes([n + 1]), pix[:-1]])
            out.append((rng.randrange(2), bad))
    return out


def writer_model(ram: list[int], n: int, bank: int, packed: int, payload: bytes) -> bool:
    """Writes ``payload`` into ``ram`` as the sample writer does; returns its ``bad``."""
    addr, end, bad, run = bank * n, (bank + 1) * n, False, False
    for b in payload:
        if packed and run:
            run = False
            bad |= not 1 <= b <= host.ZERO_RUN_MAX
            codes = [0] * b if 1 <= b <= host.ZERO_RUN_MAX else []
        elif packed and b == 0:
            run, codes = True, []
        else:
            codes = [b]
        for c in codes:
            if addr == end:
                bad = True
            else:
                ram[addr], addr = c, addr + 1
    return bad or run or addr != end


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [PIXELS, 40])
def test_sample_writer_against_model(seed, n):
    """Payloads into random banks, beats at random gaps (a zero run's pixels are written
    before the next): the whole pixel RAM and ``bad`` after each."""
    rng = random.Random(seed)
    m = Module()
    m.submodules.dut = dut = SampleWriter(n)
    init = [rng.randrange(256) for _ in range(2 * n)]
    m.submodules.ram = ram = memory.Memory(shape=8, depth=2 * n, init=init)
    wiring.connect(m, dut.w, ram.write_port())
    model = list(init)
    checked = []

    async def bench(ctx):
        for packed, payload in sample_payloads(rng, n, 14 if n < 33 else 8):
            bank = rng.randrange(2)
            ctx.set(dut.bank, bank)
            await put(ctx, dut.i, {"start": 1, "packed": packed, "data": rng.randrange(256)},
                      rng, 0.5)
            ctx.set(dut.bank, rng.randrange(2))  # read at the start beat only
            for b in payload:
                await wait(ctx, host.ZERO_RUN_MAX + rng.randrange(10))
                await put(ctx, dut.i, {"start": 0, "packed": packed, "data": b})
            await wait(ctx, host.ZERO_RUN_MAX + 2)
            bad = writer_model(model, n, bank, packed, payload)
            assert ctx.get(dut.bad) == bad, (packed, payload)
            assert [ctx.get(ram.data[a]) for a in range(2 * n)] == model, payload
            checked.append(bad)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert True in checked and False in checked


# ---------------------------------------------------------------------------------------
# WeightWriter

STORES = [SimpleNamespace(depth=5, bytes_per_word=2), SimpleNamespace(depth=3, bytes_per_word=1),
          SimpleNamespace(depth=4, bytes_per_word=3)]
LOAD_SIGNATURE = wiring.Signature({"en": Out(1), "sel": Out(range(3)), "addr": Out(range(5)),
                                   "byte": Out(range(3)), "data": Out(8)})


@pytest.mark.parametrize("seed", SEEDS)
def test_weight_writer_against_model(seed):
    """LOAD payloads (stores and addresses in range and not, words cut anywhere) and
    COMMITs at random gaps: each write on the cycle after its byte, ``bad`` per frame,
    ``loaded`` after every beat."""
    rng = random.Random(seed)
    m = Module()
    m.submodules.dut = dut = WeightWriter(STORES, LOAD_SIGNATURE)
    clock = Signal(32)
    m.d.sync += clock.eq(clock + 1)
    writes, want, flags = [], [], []

    async def bench(ctx):
        loaded = 0
        for _ in range(16):
            if rng.random() < 0.25:
                await put(ctx, dut.i, {"data": 0, "start": 0, "commit": 1}, rng, 0.7)
                loaded = 1
                await wait(ctx, 1)
                flags.append((ctx.get(dut.loaded), loaded, "commit"))
                continue
            sel = rng.choice([0, 1, 2, 2, 3])
            depth = STORES[sel].depth if sel < 3 else 4
            addr = rng.choice([0, rng.randrange(depth), depth - 1, depth, 300])
            data = [rng.randrange(256) for _ in range(rng.randrange(1, 9))]
            await put(ctx, dut.i, {"data": 0, "start": 1, "commit": 0}, rng, 0.7)
            for b in [sel, addr & 0xFF, addr >> 8]:
                await wait(ctx, 1 + rng.randrange(4))
                await put(ctx, dut.i, {"data": b, "start": 0, "commit": 0})
            bad, word, nbyte = False, addr, 0
            for b in data:
                await wait(ctx, 1 + rng.randrange(4))
                t = await put(ctx, dut.i, {"data": b, "start": 0, "commit": 0}, clock=clock)
                loaded = 0
                if sel < 3 and word < STORES[sel].depth:
                    want.append((t + 1, sel, word, nbyte, b))
                else:
                    bad = True
                nbyte += 1
                if sel >= 3 or nbyte == STORES[sel].bytes_per_word:
                    word, nbyte = word + 1, 0
            await wait(ctx, 1)
            flags.append((ctx.get(dut.bad), bad, "bad"))
            flags.append((ctx.get(dut.loaded), loaded, "loaded"))

    async def watch(ctx):
        while True:
            _, _, en, sel, addr, byte, data, t = await ctx.tick().sample(
                dut.load.en, dut.load.sel, dut.load.addr, dut.load.byte, dut.load.data, clock)
            if en:
                writes.append((t, sel, addr, byte, data))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert writes == want
    assert all(got == expected for got, expected, _ in flags), flags
    assert {(b, what) for _, b, what in flags} >= {(True, "bad"), (False, "bad")}


# ---------------------------------------------------------------------------------------
# ReplyTransmitter

CLASSES = 3
VALUE_SHAPE = signed(11)
IDENTITY = bytes(range(100, 100 + host.IDENTIFY_LEN))


def reply_payload(kind, code, klass, cycles, values, status) -> bytes:
    """The payload of a reply as docs/link.md gives it."""
    if kind == K_IDENTIFY:
        return IDENTITY
    if kind == K_STATUS:
        return b"".join(status[k].to_bytes(4, "little")
                        for k in ("accepted", "rejected", "inferences")) \
            + bytes([status["last_error"], status["loaded"]])
    if kind in (K_INFER, K_INFER_PACKED):
        return bytes([klass]) + cycles.to_bytes(4, "little") + b"".join(
            v.to_bytes(4, "little", signed=True) for v in values)
    if kind == K_ERROR:
        return bytes([code])
    return b""


@pytest.mark.parametrize("seed,busy", [(1, 0.0), (2, 0.5), (3, 0.95), (4, 0.3)])
def test_reply_transmitter_against_model(seed, busy):
    """Random replies, offered after random gaps, their bytes taken with random
    back-pressure (``busy`` 0: every cycle): the byte stream is exactly the frames of
    docs/link.md, and each reply is taken while its CRC byte waits to be taken."""
    rng = random.Random(seed)
    m = Module()
    m.submodules.dut = dut = ReplyTransmitter(identity=IDENTITY, classes=CLASSES,
                                              value_shape=VALUE_SHAPE)
    m.submodules.ram = ram = memory.Memory(shape=VALUE_SHAPE, depth=CLASSES, init=[])
    wiring.connect(m, dut.values, ram.read_port())
    clock = Signal(32)
    m.d.sync += clock.eq(clock + 1)
    kinds = [K_IDENTIFY, K_INFER, K_STATUS, K_LOAD, K_COMMIT, K_INFER_PACKED, K_ERROR]
    want, taken, received = bytearray(), [], []
    total = 16

    async def offer(ctx):
        for _ in range(total):
            kind = rng.choice(kinds)
            reply = {"kind": kind, "code": rng.randrange(1, 10), "klass": rng.randrange(CLASSES),
                     "cycles": rng.randrange(2**32)}
            values = [rng.randrange(-2**10, 2**10) for _ in range(CLASSES)]
            for i, v in enumerate(values):
                ctx.set(ram.data[i], v)
            status = {"accepted": rng.randrange(2**32), "rejected": rng.randrange(2**32),
                      "inferences": rng.randrange(2**32), "last_error": rng.randrange(10),
                      "loaded": rng.randrange(2)}
            ctx.set(dut.status, status)
            payload = reply_payload(kind, reply["code"], reply["klass"], reply["cycles"],
                                    values, status)
            assert len(payload) == reply_lengths(CLASSES)[kind]
            want.extend(host.encode_frame(_REPLY_CMD[kind], payload))
            taken.append(await put(ctx, dut.reply, reply, rng, 0.8, clock=clock))
        for _ in range(10_000):  # the last CRC byte leaves after its reply was taken
            if len(received) >= len(want):
                break
            await ctx.tick()

    async def read(ctx):
        while True:
            received.append(await take(ctx, dut.o, rng, busy, clock=clock))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(offer)
    sim.add_testbench(read, background=True)
    sim.run()
    assert bytes(b for b, _ in received) == bytes(want)
    at = 0
    for i in range(total):  # released after the byte before the CRC left, before the CRC
        length = received[at + 2][0] | received[at + 3][0] << 8
        at += 5 + length
        assert received[at - 2][1] < taken[i] < received[at - 1][1]
        assert i + 1 == total or taken[i] < received[at][1]  # (the next frame's SYNC)
