"""The model of the UART link that the fuzz bench checks the RTL against
(hwsnn.sim.link_model), on cases worked out by hand from docs/link.md: replies, error
codes, counters, which errors go unanswered, the weight stores, and the cycle each reply
starts (the RTL is held to those cycles by tests/test_link_sim.py)."""

import random

import pytest

from hwsnn.flow import host
from hwsnn.sim.link_model import (
    Ambiguous,
    Device,
    Fuzzer,
    LinkModel,
    Reply,
    State,
    Store,
    Symbol,
    error,
    line,
)

D = 4  # cycles per bit
TO = 3 * 10 * D  # the timeout: 3 byte times
GOT = 4 + D // 2 + 9 * D  # start bit -> the receiver takes the byte
BYTE = 10 * D
REPLY_BYTE = 10 * D + 1
IMAGE = bytes([0, 128, 255, 7])
IDENTITY = host.Identity(3, bytes(range(8)), 2, 4).encode()
IDENTIFY = bytes.fromhex("A5 01 00 00 6B")  # the worked examples of docs/link.md
STATUS = bytes.fromhex("A5 03 00 00 BD")
INFER = bytes.fromhex("A5 02 04 00 00 80 FF 07 D4")


def device(stores=()):
    return Device(divisor=D, timeout_cycles=TO, pixels=4, classes=2, identity=IDENTITY,
                  stores=tuple(stores), golden={IMAGE: (1, (5, -9))})


def predict(symbols, dev=None, state=None):
    dev = dev or device()
    return LinkModel(dev).predict(state or State.initial(dev), symbols)


def test_worked_examples_are_answered():
    q = predict(line(IDENTIFY))
    assert [(r.cmd, r.payload) for r in q.replies] == [(0x81, IDENTITY)]
    q = predict(line(INFER))
    assert [(r.cmd, r.infer) for r in q.replies] == [(0x82, (1, (5, -9)))]
    assert (q.state.accepted, q.state.inferences, q.state.rejected) == (1, 1, 0)
    q = predict(line(STATUS))
    assert q.replies[0].payload == host.Status(1, 0, 0, 0, True).encode()


def test_reply_starts_four_cycles_after_the_crc_byte():
    # the CRC byte (the 5th) is taken at 4 byte times + GOT; the request is posted then,
    # waits in the slot 2 cycles, the executor offers the reply the cycle after, the
    # transmitter loads the SYNC byte into its output register then, and the UART takes
    # it the cycle after
    p = predict(line(IDENTIFY))
    assert p.starts == [(4 * BYTE + GOT + 4,) * 2]
    # an inference's reply comes after the network's work, which the protocol leaves open
    p = predict(line(INFER))
    assert p.starts[0][0] > 8 * BYTE + GOT and p.starts[0][1] == float("inf")


@pytest.mark.parametrize("data, code", [
    (IDENTIFY[:-1] + bytes([0x6C]), host.ERR_CRC),
    (bytes.fromhex("A5 03 01 00 00 6B"), host.ERR_LENGTH),
    (bytes.fromhex("A5 02 05 00 00 80 FF 07 D4"), host.ERR_LENGTH),
    (bytes.fromhex("A5 42 00 00 6B"), host.ERR_COMMAND),
    (bytes.fromhex("A5 04 04 00 00 00 00 00 00"), host.ERR_COMMAND),  # LOAD: no stores
])
def test_a_bad_frame_gets_its_error_and_counts(data, code):
    p = predict(line(data))
    assert p.replies == [error(code)] and p.errors == [code]
    assert (p.state.accepted, p.state.rejected, p.state.last_error) == (0, 1, code)


def test_a_cut_frame_times_out():
    p = predict(line(INFER[:4]))
    assert p.replies == [error(host.ERR_TRUNCATED)]
    # posted timeout_cycles after the last byte was taken
    assert p.starts == [(3 * BYTE + GOT + TO + 4,) * 2]


def test_a_silence_inside_a_frame_truncates_it_only_beyond_the_timeout():
    dev = device()
    short = [Symbol(b, True, TO - BYTE - 2 * dev.guard if i == 3 else 0)
             for i, b in enumerate(IDENTIFY)]
    assert predict(short).replies[0].cmd == 0x81
    long = [Symbol(b, True, TO - BYTE + 2 * dev.guard if i == 3 else 0)
            for i, b in enumerate(IDENTIFY)]
    # ERROR 4, then the rest of the frame is hunted through: 00 6B hold no sync byte
    assert predict(long).replies == [error(host.ERR_TRUNCATED)]
    edge = [Symbol(b, True, TO - BYTE if i == 3 else 0) for i, b in enumerate(IDENTIFY)]
    with pytest.raises(Ambiguous):
        predict(edge)


def test_a_low_stop_bit_is_an_error_inside_a_frame_only():
    assert predict([Symbol(0xA5, False)] + line(IDENTIFY[1:])).replies == []
    syms = line(IDENTIFY)
    syms[2] = Symbol(0, False)
    assert predict(syms).replies == [error(host.ERR_FRAMING)]


def test_noise_without_a_sync_byte_is_ignored():
    p = predict(line(bytes([0x00, 0x13, 0xFF, 0x5A, 0x01, 0x6B])) + line(IDENTIFY))
    assert [r.cmd for r in p.replies] == [0x81]
    assert (p.state.accepted, p.state.rejected) == (1, 0)


def test_a_frame_is_taken_while_the_one_before_is_answered():
    # STATUS arrives while IDENTIFY is answered: it waits in the slot (pipelining), is
    # taken the cycle after the IDENTIFY reply's CRC byte goes to the transmitter, and its
    # SYNC byte follows that CRC byte on the line without a gap
    p = predict(line(IDENTIFY + STATUS))
    assert [r.describe() for r in p.replies] == [
        "IDENTIFY " + IDENTITY.hex(), "STATUS " + host.Status(2, 0, 0, 0, True).encode().hex()]
    assert p.starts[1][0] == p.starts[0][0] + (5 + host.IDENTIFY_LEN) * REPLY_BYTE
    # a third frame finds STATUS waiting: busy, and (the slot still full at its CRC byte)
    # counted but not answered
    p = predict(line(IDENTIFY + STATUS + IDENTIFY))
    assert len(p.replies) == 2 and p.errors == [host.ERR_BUSY] and p.dropped == 1
    assert (p.state.accepted, p.state.rejected, p.state.last_error) == (2, 1, 6)
    # a bad CRC is still reported as such
    p = predict(line(IDENTIFY + STATUS[:-1] + b"\x00"))
    assert p.replies[1] == error(host.ERR_CRC)


def test_a_load_while_the_executor_works_is_busy():
    # the network may be reading the weights: a LOAD is refused while anything executes
    dev = device([Store(2, 1, b"\x01\x02")])
    load = host.encode_frame(host.CMD_LOAD, b"\x00\x00\x00\x09")
    p = predict(line(IDENTIFY + load), dev)
    assert p.replies[1] == error(host.ERR_BUSY) and p.state.images == [[None, None]]
    p = predict(line(load), dev)
    assert p.replies == [Reply(host.CMD_LOAD | host.REPLY_BIT)]


def test_packed_pixels():
    packed = host.pack_zero_runs(IMAGE)
    assert packed == bytes([0, 1, 128, 255, 7])
    # the worked example of docs/link.md, and its ERROR 9 reply
    assert host.encode_frame(host.CMD_INFER_PACKED, packed) == \
        bytes.fromhex("A5 06 05 00 00 01 80 FF 07 1F")
    assert host.encode_frame(host.CMD_ERROR, b"\x09") == bytes.fromhex("A5 FF 01 00 09 85")
    p = predict(line(host.encode_frame(host.CMD_INFER_PACKED, packed)))
    assert [(r.cmd, r.infer) for r in p.replies] == [(0x86, (1, (5, -9)))]
    for bad in (b"\x00\x00" + IMAGE[1:], b"\x00\x21" + IMAGE[1:], IMAGE[1:] + b"\x00",
                IMAGE[1:], IMAGE[1:] + b"\x07\x07", b"\x00\x05"):
        p = predict(line(host.encode_frame(host.CMD_INFER_PACKED, bad)))
        assert p.replies == [error(host.ERR_ENCODING)], bad
    for n in (0, 9):  # LEN outside 1 .. 2·pixels
        p = predict(line(host.encode_frame(host.CMD_INFER_PACKED, bytes([1] * n))))
        assert p.replies == [error(host.ERR_LENGTH)]


def test_one_reply_waits_at_a_time():
    # three unknown commands, two bytes apart: the first is answered at once, the second
    # waits for that reply, the third finds it waiting: counted, never answered
    p = predict(line(bytes.fromhex("A5 42 A5 42 A5 42")))
    assert p.replies == [error(3), error(3)] and p.errors == [3, 3, 3] and p.dropped == 1
    assert p.state.rejected == 3


def test_status_bytes_are_read_as_they_go_out():
    # an unknown command right after STATUS: posted before the reply's counters go out,
    # so STATUS already counts it; its ERROR follows the STATUS reply
    p = predict(line(STATUS + bytes.fromhex("A5 42")))
    assert p.replies[0].payload == host.Status(1, 1, 0, 3, True).encode()
    assert p.replies[1] == error(3)


def test_an_inference_with_no_golden_answer_is_not_predicted():
    with pytest.raises(Ambiguous):
        predict(line(host.encode_frame(host.CMD_INFER, bytes(4))))


def store_device():
    return device([Store(depth=4, bytes_per_word=2, data=bytes(range(10, 18)))])


def load(store, word, data):
    return host.encode_frame(host.CMD_LOAD, bytes([store]) + word.to_bytes(2, "little")
                             + bytes(data))


def test_loads_write_the_stores_and_commit_allows_inference():
    dev = store_device()
    st = State.initial(dev)
    assert not st.loaded
    p = predict(line(INFER), dev, st)
    assert p.replies == [error(host.ERR_NOT_LOADED)]
    p = predict(line(load(0, 1, [12, 13, 14])), dev, st)  # ends inside word 2
    assert [r.cmd for r in p.replies] == [0x84]
    assert p.state.images == [[None, None, 12, 13, 14, None, None, None]]
    st = predict(line(load(0, 0, range(10, 18))), dev, st).state
    assert st.intact(dev) and not st.loaded
    st = predict(line(host.encode_frame(host.CMD_COMMIT)), dev, st).state
    assert st.loaded and st.ready(dev)
    assert predict(line(INFER), dev, st).replies[0].infer == (1, (5, -9))


def test_a_load_outside_the_stores_writes_only_inside():
    dev = store_device()
    st = State.initial(dev)
    p = predict(line(load(0, 3, [1, 2, 3, 4])), dev, st)  # word 3 is the last
    assert p.replies == [error(host.ERR_ADDRESS)]
    assert p.state.images[0][6:] == [1, 2] and p.state.images[0][:6] == [None] * 6
    p = predict(line(load(1, 0, [1])), dev, st)  # no store 1
    assert p.replies == [error(host.ERR_ADDRESS)] and p.state.images == st.images


def test_which_loads_clear_the_loaded_flag():
    dev = store_device()
    st = State(loaded=True, images=[list(range(10, 18))])
    # a LOAD's data bytes clear it, even in a frame that fails its CRC
    bad_crc = load(0, 0, [10])[:-1] + b"\x00"
    p = predict(line(bad_crc), dev, st)
    assert p.replies == [error(host.ERR_CRC)] and not p.state.loaded
    # a LOAD refused before its data (bad length) or arriving while busy does not
    short = bytes.fromhex("A5 04 03 00 00 00 00") + bytes([host.crc8(bytes.fromhex(
        "04 03 00 00 00 00"))])
    assert predict(line(short), dev, st).state.loaded
    p = predict(line(IDENTIFY + load(0, 0, [99])), dev, st)
    assert p.replies[1] == error(host.ERR_BUSY)
    assert p.state.loaded and p.state.images == st.images


def test_the_fuzzer_is_seeded_and_cuts_frames_everywhere():
    dev = device()

    def draw(seed, n):
        fz = Fuzzer(dev, random.Random(seed), [IMAGE])
        st = State.initial(dev)
        return [(c.name, [(s.byte, s.stop, s.gap) for g in c.segments for s in g])
                for c in (fz.bad(st) for _ in range(n))]

    assert draw(1, 50) == draw(1, 50) != draw(2, 50)
    assert {name for name, _ in draw(3, 300)} == set(Fuzzer.BAD)
    fz = Fuzzer(dev, random.Random(4), [IMAGE])
    cuts = {}
    for _ in range(400):
        c = fz.bad_truncate(State.initial(dev))
        cuts.setdefault(c.clean[1], set()).add(len(c.segments[0]))
    # every command's frame is cut after each of its bytes but the last
    assert cuts == {host.CMD_IDENTIFY: {1, 2, 3, 4}, host.CMD_STATUS: {1, 2, 3, 4},
                    host.CMD_INFER: set(range(1, 9)),
                    host.CMD_INFER_PACKED: set(range(1, 10))}  # 00 01 80 FF 07
