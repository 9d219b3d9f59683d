"""The host client (hwsnn.flow.host.Client) on a scripted port: what it does after an error."""

from collections import deque

import pytest

from hwsnn.flow import host

ACK_LOAD = host.encode_frame(host.CMD_LOAD | host.REPLY_BIT)
ACK_COMMIT = host.encode_frame(host.CMD_COMMIT | host.REPLY_BIT)
ERROR_3 = host.encode_frame(host.CMD_ERROR, bytes([host.ERR_COMMAND]))


class ScriptedPort:
    """Each write gets the replies ``answer(frame)`` gives; they arrive one per read, in
    order (a read returns at most one reply frame, the way replies come a little
    apart), and a read with nothing to come times out with ``b""``."""

    def __init__(self, answer):
        self.answer = answer
        self.coming: deque[bytes] = deque()
        self.writes: list[bytes] = []

    def write(self, data):
        self.writes.append(bytes(data))
        self.coming.extend(self.answer(bytes(data), len(self.writes)))
        return len(data)

    def read(self, n=1):
        if not self.coming:
            return b""
        head = self.coming.popleft()
        if len(head) > n:
            self.coming.appendleft(head[n:])
        return head[:n]

    def reset_input_buffer(self):
        pass  # what is still coming has not arrived yet


class Spec:
    bytes_per_word = 2

    def encode(self):
        return bytes(range(8))


def answer_with_a_late_error(frame, count):
    """The first frame is hit on the line: the device answers ERROR 3 for it, and a
    second ERROR 3 follows for a frame begun by a corrupt byte in its rest."""
    if count == 1:
        return [ERROR_3, ERROR_3]
    return [ACK_LOAD if frame[1] == host.CMD_LOAD else ACK_COMMIT]


def test_load_weights_waits_for_the_line_to_go_quiet_before_loading_again():
    port = ScriptedPort(answer_with_a_late_error)
    client = host.Client(port)
    assert client.load_weights([Spec()], chunk_bytes=4, attempts=2) == 8
    frames = [host.encode_frame(host.CMD_LOAD, b"\x00" + bytes([w, 0]) + bytes(range(2 * w,
                                                                                2 * w + 4)))
              for w in (0, 2)] + [host.encode_frame(host.CMD_COMMIT)]
    # the first LOAD, then (the late ERROR 3 read and dropped) the whole load again
    assert port.writes == frames[:1] + frames
    assert not port.coming


def test_drain_discards_until_quiet_and_forgets_a_partial_reply():
    port = ScriptedPort(lambda frame, count: [ERROR_3, ERROR_3[:3]])
    client = host.Client(port)
    with pytest.raises(host.LinkError) as err:
        client.identify()
    assert err.value.code == host.ERR_COMMAND
    assert client.drain() == 3 and not client.parser.in_frame
    port.answer = lambda frame, count: [host.encode_frame(
        host.CMD_STATUS | host.REPLY_BIT, host.Status(1, 1, 0, 3).encode())]
    assert client.status() == host.Status(1, 1, 0, 3)
