"""cocotb bench: the Verilog of a UART host link (``hwsnn.hdl.link.HostLink``) driven by
the real host client (``hwsnn.flow.host.Client``, unchanged) through an in-process serial shim.

``HWSNN_BENCH`` names a JSON file (written by ``hwsnn.sim.link_run``) with the design's
fingerprint and sizes, the UART divisor, the link's timeout, the client's read timeout in
clock cycles, the samples' pixel codes with the golden model's class and readout values,
whether to run the corrupt-frame cases, and where to write the record.

The client runs in a thread made with ``cocotb.task.bridge``; the shim's ``write`` and
``read`` call coroutines made blocking with ``cocotb.task.resume``, so the simulation
advances only while the client waits on the line, as with a serial port. ``write``
bit-bangs 8N1 on ``rx`` (a fault can be injected into the next write: a flipped bit, a
cut, garbage before the frame, a low stop bit); a background task decodes ``tx``; ``read``
returns up to ``n`` bytes, fewer or none after the read timeout. Every check is recorded;
the record is written, then the test fails if any check did.

rx changes half a clock period after a rising edge, and tx (a register) is sampled there
too, in the middle of each bit.
"""

import importlib
import importlib.util
import json
import os
import sys
import time

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, Timer
from cocotb.utils import get_sim_steps, get_sim_time


def _import_host():
    """``hwsnn.flow.host`` as it is, without running the package's ``__init__`` first: that
    imports torch, which costs seconds at every simulator start, and the client needs
    only ``hwsnn.flow.host`` and ``hwsnn.errors`` (plain Python)."""
    if "hwsnn" not in sys.modules:
        spec = importlib.util.find_spec("hwsnn")
        sys.modules["hwsnn"] = importlib.util.module_from_spec(spec)  # not executed
    return importlib.import_module("hwsnn.flow.host")


host = _import_host()

RESET_CYCLES = 3
GARBAGE = b"\x00\x13\xff\x5a"  # no SYNC byte: a receiver hunting for a frame skips it all


class SimSerial:
    """A serial port whose far end is the simulated design: ``write(bytes)``, ``read(n)``
    and ``reset_input_buffer()``, as ``hwsnn.flow.host.Client`` uses a ``serial.Serial``."""

    def __init__(self, dut, period_ns: int, divisor: int, read_timeout_cycles: int):
        self.dut = dut
        self.period = period_ns
        self.divisor = divisor
        self.bit_ns = divisor * period_ns
        self.read_timeout = get_sim_steps(read_timeout_cycles * period_ns, "ns")
        self.incoming = bytearray()
        self.arrivals: list[float] = []  # time (ns) of every reply byte's start bit
        self.bad_stop_bits = 0
        self.glitches = 0
        self.last_sent_ns = 0.0  # when the last stop bit written ended
        self.sent = 0  # bytes put on the line
        self._arrived = Event()
        self._fault = None

    # -- the line ------------------------------------------------------------------------
    async def listen(self):
        """Decode ``tx`` forever (a background task)."""
        tx = self.dut.tx
        half = self.period // 2
        while True:
            await FallingEdge(tx)
            start = get_sim_time("ns")
            await Timer(half + (self.divisor // 2) * self.period, "ns")  # mid start bit
            if int(tx.value):
                self.glitches += 1
                continue
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, "ns")
                byte |= int(tx.value) << i
            await Timer(self.bit_ns, "ns")
            if not int(tx.value):
                self.bad_stop_bits += 1
            self.arrivals.append(start)
            self.incoming.append(byte)
            self._arrived.set()

    async def _send(self, symbols):
        rx = self.dut.rx
        await FallingEdge(self.dut.clk)
        for byte, stop in symbols:
            for bit in (0, *((byte >> i) & 1 for i in range(8)), stop):
                rx.value = bit
                await Timer(self.bit_ns, "ns")
            self.sent += 1
            if not stop:  # the line goes high again before anything else
                rx.value = 1
                await Timer(2 * self.bit_ns, "ns")
        self.last_sent_ns = get_sim_time("ns")

    async def _read(self, n: int) -> bytes:
        deadline = get_sim_time() + self.read_timeout  # in simulator steps
        while len(self.incoming) < n:
            left = deadline - get_sim_time()
            if left <= 0:
                break
            self._arrived.clear()
            await First(self._arrived.wait(), Timer(left, "step"))
        out = bytes(self.incoming[:n])
        del self.incoming[:n]
        return out

    async def _wait(self, cycles: int) -> None:
        await Timer(cycles * self.period, "ns")

    # -- the port (called from the client's thread) -------------------------------------
    def inject(self, fault) -> None:
        """``fault(data) -> [(byte, stop bit), ...]`` replaces the next write's symbols."""
        self._fault = fault

    def write(self, data: bytes) -> int:
        data = bytes(data)
        fault, self._fault = self._fault, None
        symbols = fault(data) if fault else [(b, 1) for b in data]
        resume(self._send)(symbols)
        return len(data)

    def read(self, n: int = 1) -> bytes:
        return resume(self._read)(n)

    def reset_input_buffer(self) -> None:
        self.incoming.clear()

    def wait(self, cycles: int) -> None:
        """Let the simulation run ``cycles`` clock cycles with the line idle."""
        resume(self._wait)(cycles)

    def now_cycles(self) -> float:
        return get_sim_time("ns") / self.period


# ---------------------------------------------------------------------------------------
# Faults: each takes the frame the client writes and gives the symbols that go out.


def flip_payload(data):
    frame = bytearray(data)
    frame[4 + min(1, len(frame) - 6)] ^= 0x10
    return [(b, 1) for b in frame]


def flip_crc(data):
    frame = bytearray(data)
    frame[-1] ^= 0x01
    return [(b, 1) for b in frame]


def cut(keep):
    def fault(data):
        return [(b, 1) for b in data[:min(keep, len(data) - 2)]]
    return fault


def garbage_first(data):
    return [(b, 1) for b in GARBAGE + bytes(data)]


def low_stop(at):
    """Bytes up to ``at`` (the frame's LEN0 for 3), the last with its stop bit low."""
    def fault(data):
        return [(b, 1) for b in data[:at - 1]] + [(data[at - 1], 0)]
    return fault


# ---------------------------------------------------------------------------------------
# The scenario (runs in the client's thread).


class Scenario:
    def __init__(self, cfg, port: SimSerial):
        self.cfg = cfg
        self.port = port
        self.client = host.Client(port)
        self.samples = cfg["samples"]
        self.checks: list[dict] = []
        self.inferences: list[dict] = []
        self.errors: list[dict] = []
        self.statuses: list[dict] = []
        self.status = {"accepted": 0, "rejected": 0, "inferences": 0, "last_error": 0,
                       "loaded": not cfg.get("stores")}
        self.next_sample = 0
        self.throughput = None
        self.settle = 2 * int(cfg["timeout_cycles"]) + 20 * int(cfg["divisor"])

    def check(self, name, ok, expected=None, observed=None):
        self.checks.append({"name": name, "ok": bool(ok), "expected": expected,
                            "observed": observed})
        return ok

    # -- requests, counted as the device should count them ------------------------------
    def good(self, inference=False):
        self.status["accepted"] += 1
        self.status["inferences"] += int(inference)

    def bad(self, code):
        self.status["rejected"] += 1
        self.status["last_error"] = code

    def identify(self):
        try:
            ident = self.client.identify()
        except host.LinkError as exc:
            self.recover()
            return self.check("identify", False, observed=f"LinkError: {exc}")
        self.good()
        fp = self.cfg["fingerprint"]
        stores = self.cfg.get("stores") or []
        want = host.Identity(host.PROTOCOL_VERSION, bytes.fromhex(fp)[:8],
                             self.cfg["classes"], self.cfg["pixels"], len(stores),
                             bytes.fromhex(self.cfg["layout"]) if stores else host.NO_LAYOUT)
        self.check("identify", ident == want and ident.matches(fp),
                   expected=_identity_json(want), observed=_identity_json(ident))

    def infer(self, context, index=None, reply=None):
        """One INFER of a sample (the next in turn unless ``index``), against the golden
        model; ``reply`` is a frame already received instead of a request."""
        if index is None:
            index = self.next_sample % len(self.samples)
            self.next_sample += 1
        sample = self.samples[index]
        row = {"context": context, "sample": index, "expected_prediction":
               sample["prediction"], "expected_values": sample["readout"]}
        try:
            if reply is None:
                got = self.client.infer(sample["codes"])
            elif reply.cmd != host.CMD_INFER | host.REPLY_BIT:
                raise host.LinkError(f"expected the INFER reply, got 0x{reply.cmd:02X} "
                                     f"{reply.payload.hex()}")
            else:
                got = host.Inference.decode(reply.payload)
        except host.LinkError as exc:
            row.update(ok=False, error=str(exc), code=exc.code)
            self.recover()
        else:
            self.good(inference=True)
            row.update(prediction=got.prediction, values=list(got.values), cycles=got.cycles)
            row["ok"] = (got.prediction == sample["prediction"]
                         and list(got.values) == sample["readout"] and got.cycles > 0)
        self.inferences.append(row)
        self.check(f"infer sample {index} ({context})", row["ok"],
                   expected=[sample["prediction"], sample["readout"]],
                   observed=[row.get("prediction"), row.get("values")] if "values" in row
                   else row.get("error"))

    def infer_many(self, context, packed, one_by_one=False):
        """Every sample through ``Client.infer_many`` (pipelined; or ``one_by_one`` with
        ``Client.infer``), against the golden model; the simulated cycles from the first
        byte written to the last reply byte read give images per second."""
        samples = self.samples
        start = self.port.now_cycles()
        sent = self.port.sent
        try:
            if one_by_one:
                got = [self.client.infer(s["codes"], packed=packed) for s in samples]
            else:
                got = self.client.infer_many([s["codes"] for s in samples], packed=packed,
                                             attempts=1)
        except host.LinkError as exc:
            self.recover()
            return self.check(f"infer_many ({context})", False, observed=str(exc))
        cycles = self.port.now_cycles() - start
        wrong = [i for i, (g, s) in enumerate(zip(got, samples, strict=True))
                 if (g.prediction, list(g.values)) != (s["prediction"], s["readout"])
                 or g.cycles <= 0]
        for _ in got:
            self.good(inference=True)
        self.throughput = {"context": context, "samples": len(samples),
                           "cycles_elapsed": cycles, "bytes_sent": self.port.sent - sent,
                           "packed": packed, "pipelined": not one_by_one,
                           "inference_cycles": [g.cycles for g in got]}
        self.check(f"infer_many: {len(samples)} samples ({context})", not wrong,
                   expected="all golden", observed=f"samples {wrong[:10]} differ")

    def check_status(self, context):
        try:
            got = self.client.status()
        except host.LinkError as exc:
            self.recover()
            self.statuses.append({"context": context, "ok": False, "error": str(exc)})
            return self.check(f"status ({context})", False, observed=str(exc))
        self.good()
        observed = {"accepted": got.accepted, "rejected": got.rejected,
                    "inferences": got.inferences, "last_error": got.last_error,
                    "loaded": got.loaded}
        ok = observed == self.status
        self.statuses.append({"context": context, "ok": ok, "expected": dict(self.status),
                              "observed": observed})
        self.check(f"status ({context})", ok, expected=dict(self.status), observed=observed)

    def expect_error(self, case, code, request, fault=None):
        """``request()`` (with ``fault`` on its frame) must raise LinkError with ``code``;
        then the line is let settle, the client reset, and the link must answer again."""
        self.port.inject(fault)
        received = len(self.port.arrivals)
        row = {"case": case, "expected_code": code}
        try:
            request()
        except host.LinkError as exc:
            row.update(code=exc.code, message=str(exc))
        else:
            row.update(code=None, message="no error")
        if row["code"] is not None:
            self.bad(row["code"])
        if case == "truncated" and len(self.port.arrivals) > received:
            # from the last bit written to the start of the ERROR reply
            quiet = (self.port.arrivals[received] - self.port.last_sent_ns) \
                / self.cfg["period_ns"]
            row["quiet_cycles"] = quiet
            t, d = self.cfg["timeout_cycles"], self.cfg["divisor"]
            self.check("truncated frame: the device waited its timeout",
                       t - d <= quiet <= t + 20 * d, expected=t, observed=quiet)
        row["ok"] = row["code"] == code
        self.errors.append(row)
        self.check(f"{case}: ERROR {code}", row["ok"], expected=code, observed=row["code"])
        self.recover()

    def recover(self):
        """After an error: let the line settle, and forget what the client had."""
        self.port.wait(self.settle)
        self.client.reset()

    # -- the whole run ---------------------------------------------------------------------
    def load_weights(self):
        """Weights in run-time stores: INFER is refused before they are loaded; then
        LOAD frames (several per store) and COMMIT."""
        stores = [_Store(bytes.fromhex(s["data"]), s["bytes_per_word"])
                  for s in self.cfg["stores"]]
        self.expect_error("infer before the weights are loaded", host.ERR_NOT_LOADED,
                          lambda: self.client.infer(self.samples[0]["codes"]))
        chunk = int(self.cfg.get("load_chunk", 64))
        frames = 1 + sum(-(-len(s.blob) // max(s.bytes_per_word, chunk // s.bytes_per_word
                                                * s.bytes_per_word)) for s in stores)
        try:
            sent = self.client.load_weights(stores, chunk_bytes=chunk, attempts=1)
        except host.LinkError as exc:
            self.recover()
            return self.check("load weights", False, observed=f"LinkError: {exc}")
        for _ in range(frames):
            self.good()
        self.status["loaded"] = True
        self.check("load weights", sent == sum(len(s.blob) for s in stores),
                   expected=sum(len(s.blob) for s in stores), observed=sent)

    def run(self):
        self.identify()
        self.check_status("after IDENTIFY")
        if self.cfg.get("stores"):
            self.load_weights()
            self.check_status("after loading the weights")
        mode = self.cfg.get("throughput")
        if mode:  # only the samples, timed: "pipelined" (packed) or "sequential" (not)
            if mode == "pipelined":
                self.infer_many("pipelined, packed", packed=True)
            else:
                self.infer_many("one at a time, not packed", packed=False, one_by_one=True)
            self.check_status("after the samples")
            return
        for i in range(len(self.samples)):
            self.infer("in turn", index=i)
        self.next_sample = len(self.samples)
        self.infer_many("pipelined, packed", packed=True)
        self.check_status("after the samples")
        if not self.cfg.get("faults", True):
            return

        def send_infer():
            self.client.infer(self.samples[self.next_sample % len(self.samples)]["codes"])

        self.expect_error("bad CRC (payload bit)", host.ERR_CRC, send_infer, flip_payload)
        self.infer("after a bad payload bit")
        self.check_status("after a bad payload bit")

        self.expect_error("bad CRC (CRC byte)", host.ERR_CRC, self.client.identify, flip_crc)
        self.infer("after a bad CRC byte")

        self.expect_error("truncated", host.ERR_TRUNCATED, send_infer, cut(6))
        self.infer("after a truncated frame")
        self.check_status("after a truncated frame")

        self.port.inject(garbage_first)
        self.infer("garbage before the frame")

        self.expect_error("framing", host.ERR_FRAMING, send_infer, low_stop(3))
        self.infer("after a framing error")

        self.expect_error("bad length", host.ERR_LENGTH,
                          lambda: self.client.request(host.CMD_STATUS, b"\x00"))
        self.expect_error("unknown command", host.ERR_COMMAND,
                          lambda: self.client.request(0x42))
        self.infer("after bad length and unknown command")
        self.check_status("after bad length and unknown command")

        # Pipelining: a STATUS sent while the INFER before it is computed and answered
        # waits and is answered after it; a second STATUS finds the first one waiting:
        # ERROR 6, counted but not answered (the slot is still full at its CRC byte).
        index = self.next_sample % len(self.samples)
        self.next_sample += 1
        self.port.write(host.encode_frame(host.CMD_INFER, bytes(self.samples[index]["codes"])))
        self.port.write(host.encode_frame(host.CMD_STATUS) * 2)
        try:
            first = self.client.receive()
            second = self.client.receive()
        except host.LinkError as exc:
            self.check("pipelined: two replies", False, observed=str(exc))
        else:
            self.infer("answered while two frames arrived", index=index, reply=first)
            self.good()
            self.check("pipelined: the STATUS after it answered",
                       second.cmd == host.CMD_STATUS | host.REPLY_BIT,
                       expected=host.CMD_STATUS | host.REPLY_BIT, observed=second.cmd)
            self.bad(host.ERR_BUSY)
            self.errors.append({"case": "busy", "expected_code": host.ERR_BUSY,
                                "code": host.ERR_BUSY, "ok": True})
        self.recover()
        self.infer("after busy")
        self.check_status("at the end")


class _Store:
    """What ``host.Client.load_weights`` needs of a store: its bytes and word size."""

    def __init__(self, blob: bytes, bytes_per_word: int):
        self.blob, self.bytes_per_word = blob, bytes_per_word

    def encode(self) -> bytes:
        return self.blob


def _identity_json(ident):
    return {"version": ident.version, "model_id": ident.model_id.hex(),
            "classes": ident.classes, "pixels": ident.pixels, "stores": ident.stores,
            "layout": ident.layout.hex()}


@cocotb.test()
async def link_round_trip(dut):
    with open(os.environ["HWSNN_BENCH"]) as f:
        cfg = json.load(f)
    period = int(cfg.get("period_ns", 10))
    cocotb.start_soon(Clock(dut.clk, period, unit="ns").start())
    dut.rst.value = 1
    dut.rx.value = 1
    for _ in range(RESET_CYCLES):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)

    port = SimSerial(dut, period, int(cfg["divisor"]), int(cfg["read_timeout_cycles"]))
    cocotb.start_soon(port.listen())
    scenario = Scenario(cfg, port)
    t = time.time()
    crashed = None
    try:
        await bridge(scenario.run)()
    except Exception as exc:  # noqa: BLE001 - recorded, and fails the test below
        crashed = f"{type(exc).__name__}: {exc}"
    scenario.check("no bad stop bits or glitches on tx",
                   port.bad_stop_bits == 0 and port.glitches == 0, expected=0,
                   observed=port.bad_stop_bits + port.glitches)
    failed = [c for c in scenario.checks if not c["ok"]]
    record = {
        "passed": not failed and crashed is None,
        "crashed": crashed,
        "checks": scenario.checks,
        "failed": failed,
        "inferences": scenario.inferences,
        "errors": scenario.errors,
        "statuses": scenario.statuses,
        "counts": {
            "checks": len(scenario.checks), "failed": len(failed),
            "inferences": len(scenario.inferences),
            "inference_mismatches": sum(not r["ok"] for r in scenario.inferences),
            "errors": len(scenario.errors),
            "error_mismatches": sum(not r["ok"] for r in scenario.errors),
            "bytes_sent": port.sent, "bytes_received": len(port.arrivals),
        },
        "cycles": port.now_cycles(),
        "throughput": scenario.throughput,
        "wall_s": time.time() - t,
    }
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, cfg["out"])
    assert crashed is None, crashed
    assert not failed, f"{len(failed)} check(s) failed, the first: {failed[0]}"
