"""cocotb bench: random, truncated and corrupted frames against the UART host link, sent
and answered through the real host client (``hwsnn.flow.host.Client``), every reply checked
against ``link_model.LinkModel`` (docs/link.md; INFER against the golden model).

The design is ``hwsnn_link_fuzz`` (``hwsnn.sim.link_run.fuzz_harness``): the link with a
Verilog clock and both UART ends at byte level, so that the bench wakes up about once a
frame instead of once a bit. ``HWSNN_BENCH`` names a JSON file (``link_run.run_fuzz``)
with the link's parameters, its weight stores, the images with their golden answers, the
seed, the number of frames and where to write the record.

The client runs in a thread made with ``cocotb.task.bridge``; the port's ``write`` and
``read`` call coroutines made blocking with ``cocotb.task.resume``, so simulated time
passes only while the client waits on the line. Cases alternate: a bad one (or a
protocol-valid one that the link must still refuse, e.g. a frame while busy), then a
good request, which must be answered correctly. A case whose replies differ from the
model's is a wrong answer; a reply that does not come within the client's read timeout
is a hang. Either way the bench records it, lets the line go quiet, takes the counters
from STATUS and goes on.
"""

import importlib
import importlib.util
import json
import os
import random
import sys
import time
from collections import Counter, deque

import cocotb
from cocotb.task import bridge, resume
from cocotb.triggers import First, Timer, ValueChange


def _import_host():
    """``hwsnn.flow.host`` without running the package's ``__init__`` (it imports torch)."""
    if "hwsnn" not in sys.modules:
        spec = importlib.util.find_spec("hwsnn")
        sys.modules["hwsnn"] = importlib.util.module_from_spec(spec)  # not executed
    return importlib.import_module("hwsnn.flow.host")


host = _import_host()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this directory first
import link_model as fz  # noqa: E402 - after hwsnn.flow.host is importable without torch

QUEUE = 4096
MAX_FAILURES = 20  # recorded in full; the rest are counted
DRAWS = 50  # tries for a case the model can decide


class HarnessPort:
    """A serial port (``write``, ``read``, ``reset_input_buffer``) on the harness's UART
    ends. ``plan(symbols, clean)`` makes the next ``write`` of ``clean`` put ``symbols``
    on the line instead (a fault, silences)."""

    def __init__(self, dut, divisor: int, period_ns: int, read_timeout_cycles: int):
        self.dut = dut
        self.d = divisor
        self.period = period_ns
        self.read_timeout = read_timeout_cycles
        self.wr = 0
        self.taken = 0  # reply bytes fetched from the harness
        self.buffer = bytearray()
        self.arrivals: list[int] = []  # cycle of every reply byte's start bit
        self.began = 0  # cycle 0 of the last write's first symbol
        self.plans: deque = deque()
        self.mismatched_writes = 0
        self.unplanned = 0  # writes of a client call beyond the frames planned for it
        self.overflow = False

    def now(self) -> int:
        return int(self.dut.cycle.value)

    def _pull(self) -> None:
        n = (int(self.dut.in_wr.value) - self.taken) & 0xFFFF
        if n > QUEUE:
            self.overflow = True
        for _ in range(n):
            i = self.taken % QUEUE
            self.buffer.append(int(self.dut.in_mem[i].value))
            self.arrivals.append(int(self.dut.in_at[i].value))
            self.taken += 1

    async def _send(self, symbols) -> None:
        if not symbols:
            return
        if len(symbols) > QUEUE:
            raise ValueError(f"{len(symbols)} symbols at once; the harness holds {QUEUE}")
        for s in symbols:
            if not 0 <= s.gap < 1 << 16:
                raise ValueError(f"an idle gap of {s.gap} cycles (the harness takes < 65536)")
            self.dut.out_mem[self.wr % QUEUE].value = s.gap << 9 | int(s.stop) << 8 | s.byte
            self.wr += 1
        self.dut.out_wr.value = self.wr & 0xFFFF
        cycles = sum(fz.symbol_cycles(s, self.d) for s in symbols)
        await Timer(cycles * self.period, "ns")
        while int(self.dut.out_sent.value) != self.wr & 0xFFFF:
            await ValueChange(self.dut.out_sent)
        self.began = int(self.dut.out_began.value) + 1

    async def _read(self, n: int) -> bytes:
        deadline = self.now() + self.read_timeout
        self._pull()
        while len(self.buffer) < n:
            left = deadline - self.now()
            if left <= 0:
                break
            await First(ValueChange(self.dut.in_wr), Timer(left * self.period, "ns"))
            self._pull()
            more = n - len(self.buffer)
            if more > 1:  # they cannot come faster than a byte in 10 bit periods
                wait = min((more - 1) * 10 * self.d, deadline - self.now())
                if wait > 0:
                    await Timer(wait * self.period, "ns")
                    self._pull()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def _wait(self, cycles: int) -> None:
        if cycles > 0:
            await Timer(cycles * self.period, "ns")
        self._pull()

    # -- called from the client's thread ------------------------------------------------
    def plan(self, symbols, clean: bytes) -> None:
        self.plans.append((symbols, bytes(clean)))

    def write(self, data: bytes) -> int:
        data = bytes(data)
        if self.plans:
            symbols, clean = self.plans.popleft()
            if clean != data:
                self.mismatched_writes += 1
        else:
            symbols = fz.line(data)
            self.unplanned += 1
        resume(self._send)(symbols)
        return len(data)

    def send(self, symbols) -> None:
        resume(self._send)(symbols)

    def read(self, n: int = 1) -> bytes:
        return resume(self._read)(n)

    def wait(self, cycles: int) -> None:
        resume(self._wait)(cycles)

    def unread(self) -> int:
        resume(self._wait)(0)
        return len(self.buffer)

    def reset_input_buffer(self) -> None:
        self.buffer.clear()


class _Store:
    """What ``Client.load_weights`` needs of a store."""

    def __init__(self, store: fz.Store):
        self.blob, self.bytes_per_word = store.data, store.bytes_per_word

    def encode(self) -> bytes:
        return self.blob


class Fuzz:
    """The run (in the client's thread)."""

    def __init__(self, cfg, port: HarnessPort):
        self.cfg = cfg
        self.port = port
        self.client = host.Client(port)
        stores = tuple(fz.Store(s["depth"], s["bytes_per_word"], bytes.fromhex(s["data"]))
                       for s in cfg["stores"])
        golden = {bytes(i["codes"]): (i["prediction"], tuple(i["readout"]))
                  for i in cfg["images"]}
        self.device = fz.Device(cfg["divisor"], cfg["timeout_cycles"], cfg["pixels"],
                                cfg["classes"], bytes.fromhex(cfg["identity"]), stores,
                                golden, int(cfg.get("margin", 0)))
        self.model = fz.LinkModel(self.device)
        self.state = fz.State.initial(self.device)
        self.rng = random.Random(cfg["seed"])
        self.fuzzer = fz.Fuzzer(self.device, self.rng, [bytes(i["codes"])
                                                        for i in cfg["images"]])
        self.quiet = self.device.timeout_cycles + self.device.longest_reply_cycles()
        self.stats = Counter()
        self.kinds: dict[str, Counter] = {}
        self.codes = Counter()  # error replies expected, by code
        self.failures: list[dict] = []
        self.cycles: dict[bytes, set] = {}  # INFER cycles seen per image
        self.stream = 0  # offset in port.arrivals of the next reply's first byte
        self.late = []  # |reply start − predicted| beyond the guard
        self.deviation = 0  # largest |reply start − predicted| seen
        self.offsets = Counter()  # reply start − predicted, where the model fixes it

    # -- one case ----------------------------------------------------------------------
    def draw(self, bad: bool, fixed: str | None = None):
        for _ in range(DRAWS):
            if fixed is not None:
                case = self.fuzzer.fixed(fixed, self.state)
            else:
                case = self.fuzzer.bad(self.state) if bad else self.fuzzer.good(self.state)
            try:
                preds, st = [], self.state
                for seg in case.segments:
                    p = self.model.predict(st, seg)
                    preds.append(p)
                    st = p.state
                if case.call is not None and case.call[0] == "load_weights" and \
                        not self.load_goes_as_planned(case, preds):
                    raise fz.Ambiguous("a weight load that does not fail where planned")
            except fz.Ambiguous as exc:
                if fixed is not None:
                    raise RuntimeError(f"the fixed case {fixed}: {exc}") from None
                self.stats["redrawn"] += 1
                continue
            return case, preds
        raise RuntimeError(f"no case the model can decide in {DRAWS} draws")

    @staticmethod
    def load_goes_as_planned(case, preds) -> bool:
        """Every frame of a weight load is acknowledged, but the one that must fail
        (``case.retry``), whose first reply (if any) is not."""
        acks = (host.CMD_LOAD | host.REPLY_BIT, host.CMD_COMMIT | host.REPLY_BIT)
        for i, p in enumerate(preds):
            first = p.replies[0].cmd if p.replies else None
            if i == case.retry:
                if first in acks:
                    return False
            elif first not in acks or len(p.replies) != 1:
                return False
        return True

    def run_case(self, case, preds) -> tuple[bool, str, list]:
        """Send the case, read its replies; (as expected, what went wrong, observed)."""
        expected = [r for p in preds for r in p.replies]
        observed = []
        problem = ""
        client = self.client
        call = case.call
        if call is not None and not expected:
            call = None  # no reply is due: the client would wait out its timeout
        if call is None:
            for seg in case.segments:
                self.port.send(seg)
            rest = expected
        else:
            for seg, clean in zip(case.segments, case.writes(), strict=True):
                self.port.plan(seg, clean)
            unplanned = self.port.unplanned
            problem, first = self.call(call, expected)
            observed.append(first)
            extra = self.port.unplanned - unplanned
            if not problem and (self.port.plans or extra):
                problem = f"wrong: the client wrote {extra} frames more and " \
                          f"{len(self.port.plans)} fewer than planned"
            rest = expected[1:] if call[0] not in ("load_weights", "infer_many") else []
        for want in rest:
            if problem:
                break
            try:
                got = client.receive()
            except host.LinkError as exc:
                kind = "hang" if "no reply" in str(exc) else "wrong"
                problem = f"{kind}: {exc} (expected {want.describe()})"
                observed.append(str(exc))
                break
            observed.append(f"0x{got.cmd:02X} {got.payload.hex()}")
            if not want.matches(got):
                problem = f"wrong: expected {want.describe()}, got {observed[-1]}"
            elif want.infer is not None:
                self.note_cycles(want, got)
        if not problem:
            self.check_timing(case, preds, expected)
        return not problem, problem, observed

    def call(self, call, expected):
        """The client method of ``call``; checks what it returns or raises against the
        first expected reply. Returns (problem, what was observed)."""
        client = self.client
        want = expected[0]
        name = call[0]
        try:
            if name == "identify":
                got = client.identify().encode()
            elif name == "status":
                got = client.status().encode()
            elif name == "infer":
                got = client.infer(call[1])
            elif name == "infer_packed":
                got = client.infer(call[1], packed=True)
            elif name == "infer_many":
                many = client.infer_many(call[1], packed=call[2], attempts=1)
                wants = [w.infer for w in expected]
                ok = len(wants) == len(many) and all(
                    w is not None and (g.prediction, list(g.values)) == (w[0], list(w[1]))
                    and g.cycles > 0 for g, w in zip(many, wants, strict=False))
                seen = [[g.prediction, list(g.values)] for g in many]
                return ("" if ok else f"wrong: expected {[w.describe() for w in expected]}, "
                        f"got {seen}"), seen
            elif name == "load":
                client.load(call[1], call[2], call[3])
                got = b""
            elif name == "commit":
                client.commit()
                got = b""
            elif name == "request":
                got = client.request(call[1], call[2])
            elif name == "load_weights":
                specs = [_Store(s) for s in self.device.stores]
                total = client.load_weights(specs, chunk_bytes=call[1], attempts=call[2])
                ok = total == sum(len(s.data) for s in self.device.stores)
                return ("" if ok else f"wrong: load_weights returned {total}"), total
            else:
                raise ValueError(f"unknown call {name}")
        except host.LinkError as exc:
            if exc.code is None and "no reply" in str(exc):
                return f"hang: {exc} (expected {want.describe()})", str(exc)
            if name == "load_weights":
                return f"wrong: load_weights raised {exc}", f"LinkError {exc.code}: {exc}"
            if want.cmd == host.CMD_ERROR:
                ok = exc.code == want.payload[0]
            else:
                own = self._own_reply(call)
                ok = exc.code is None and want.cmd != own
            return ("" if ok else f"wrong: expected {want.describe()}, the client raised "
                    f"{exc}"), f"LinkError {exc.code}: {exc}"
        if want.cmd != self._own_reply(call):
            return f"wrong: expected {want.describe()}, the client got an answer", repr(got)
        if name in ("infer", "infer_packed"):
            ok = (got.prediction, list(got.values)) == (want.infer[0], list(want.infer[1])) \
                and got.cycles > 0
            if ok:
                self.cycles.setdefault(bytes(call[1]), set()).add(got.cycles)
            return ("" if ok else f"wrong: expected {want.describe()}, got class "
                    f"{got.prediction} {list(got.values)}"), [got.prediction, list(got.values)]
        ok = bytes(got) == want.payload
        return ("" if ok else f"wrong: expected {want.describe()}, got {bytes(got).hex()}"), \
            bytes(got).hex()

    @staticmethod
    def _own_reply(call) -> int:
        cmd = {"identify": host.CMD_IDENTIFY, "status": host.CMD_STATUS,
               "infer": host.CMD_INFER, "load": host.CMD_LOAD, "commit": host.CMD_COMMIT,
               "infer_packed": host.CMD_INFER_PACKED, "infer_many": host.CMD_INFER}
        return (cmd[call[0]] if call[0] in cmd else call[1]) | host.REPLY_BIT

    def note_cycles(self, want, frame):
        got = host.Inference.decode(frame.payload)
        self.cycles.setdefault(want.image, set()).add(got.cycles)

    def check_timing(self, case, preds, expected):
        """Each reply's SYNC byte left when the model says (within its guard; after the
        earliest moment for an INFER), for a single-segment case."""
        if len(case.segments) != 1:
            self.stream = len(self.port.arrivals)
            return
        pred = preds[0]
        at = self.stream
        guard = self.device.guard
        for reply, (lo, hi) in zip(expected, pred.starts, strict=True):
            if at >= len(self.port.arrivals):
                break
            t = self.port.arrivals[at] - self.port.began - fz.TX_LATENCY
            dev = 0 if lo - guard <= t <= hi + guard else min(abs(t - lo), abs(t - hi))
            if hi == lo:
                self.deviation = max(self.deviation, abs(t - lo))
                self.offsets[t - lo] += 1
            if dev:
                self.late.append({"case": case.name, "reply": reply.describe(), "at": t,
                                  "predicted": [lo, hi if hi != fz.INF else None],
                                  "symbols": [[s.byte, int(s.stop), s.gap]
                                              for s in case.segments[0]]})
            at += self.device.frame_bytes(reply)
        self.stream = at

    # -- the run ------------------------------------------------------------------------
    def record_failure(self, case, preds, problem, observed):
        self.stats["hangs" if problem.startswith("hang") else "wrong"] += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures.append({
                "case": case.name, "problem": problem,
                "symbols": [[s.byte, int(s.stop), s.gap] for seg in case.segments
                            for s in seg][:200],
                "expected": [r.describe() for p in preds for r in p.replies],
                "observed": observed, "frames_before": self.stats["frames"]})

    def resync(self) -> bool:
        """After a failure: quiet line, counters from STATUS, stores unknown."""
        self.port.plans.clear()
        for _ in range(3):
            self.port.wait(4 * self.cfg["read_timeout_cycles"])
            self.client.reset()
            self.stream = len(self.port.arrivals)
            try:
                status = self.client.status()
            except host.LinkError:
                self.stats["hangs"] += 1
                continue
            self.state = fz.State(status.accepted, status.rejected, status.inferences,
                                  status.last_error, status.loaded,
                                  [[None] * len(i) for i in self.state.images])
            self.stream = len(self.port.arrivals)
            return True
        return False

    def settle(self, case) -> str:
        """After a bad case: nothing more may arrive (half the time the line is left
        quiet for a timeout and the longest reply first); the client forgets."""
        if self.rng.random() < 0.5:
            self.port.wait(self.quiet)
            self.stats["quiet_waits"] += 1
        extra = self.port.unread() + len(self.client._pending)
        problem = ""
        if extra:
            problem = f"wrong: {extra} bytes or frames more than expected"
        self.client.reset()
        self.stream = len(self.port.arrivals)
        return problem

    def check_ports(self) -> str:
        busy, last = int(self.port.dut.busy.value), int(self.port.dut.last_error.value)
        if busy or last != self.state.last_error:
            return f"wrong: ports busy={busy} last_error={last}, expected 0 and " \
                   f"{self.state.last_error}"
        return ""

    def run(self):
        frames = int(self.cfg["frames"])
        least_bad = int(self.cfg.get("bad_frames", 0))
        progress = self.cfg.get("progress")
        fixed = deque(self.cfg.get("fixed", []))
        bad = False
        t0 = time.time()
        while fixed or self.stats["frames"] < frames or self.stats["bad"] < least_bad:
            case, preds = self.draw(bad, fixed.popleft() if bad and fixed else None)
            ok, problem, observed = self.run_case(case, preds)
            if ok and case.bad:
                problem = self.settle(case)
                ok = not problem
            if ok:
                self.state = preds[-1].state
                problem = self.check_ports()
                ok = not problem
            k = self.kinds.setdefault(case.name, Counter())
            n_bad = case.frames - sum(len(p.executed) for p in preds)
            k.update(cases=1, frames=case.frames, bad=n_bad, ok=int(ok))
            self.stats.update(frames=case.frames, bad=n_bad, cases=1,
                              expected=case.frames if ok else 0,
                              replies=sum(len(p.replies) for p in preds),
                              dropped=sum(p.dropped for p in preds))
            for p in preds:
                self.codes.update(str(r.payload[0]) for r in p.replies
                                  if r.cmd == host.CMD_ERROR)
            if not ok:
                self.record_failure(case, preds, problem, observed)
                if not self.resync():
                    self.stats["aborted"] = 1
                    break
            bad = not bad
            if progress and self.stats["cases"] % 50 == 0:
                with open(progress, "w") as f:
                    f.write(str(self.stats["frames"]))
        self.stats["wall_s"] = time.time() - t0


@cocotb.test()
async def link_fuzz(dut):
    with open(os.environ["HWSNN_BENCH"]) as f:
        cfg = json.load(f)
    port = HarnessPort(dut, int(cfg["divisor"]), int(cfg["period_ns"]),
                       int(cfg["read_timeout_cycles"]))
    await Timer(10 * int(cfg["period_ns"]), "ns")  # past the reset
    fuzz = Fuzz(cfg, port)
    crashed = None
    try:
        await bridge(fuzz.run)()
    except Exception as exc:  # noqa: BLE001 - recorded, and fails the test below
        import traceback
        crashed = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    await Timer(fuzz.quiet * int(cfg["period_ns"]), "ns")
    port._pull()
    s = fuzz.stats
    line_ok = int(dut.bad_stop.value) == 0 and int(dut.glitches.value) == 0 \
        and not port.overflow and port.mismatched_writes == 0
    varied = {k.hex(): sorted(v) for k, v in fuzz.cycles.items() if len(v) > 1}
    record = {
        "passed": crashed is None and not s["hangs"] and not s["wrong"] and line_ok
        and not fuzz.late and not port.buffer,
        "crashed": crashed,
        "frames": s["frames"], "bad_frames": s["bad"], "cases": s["cases"],
        "answered_as_expected": s["expected"], "hangs": s["hangs"],
        "wrong_answers": s["wrong"], "replies": s["replies"],
        "unanswered_errors": s["dropped"], "redrawn": s["redrawn"],
        "quiet_waits": s["quiet_waits"], "aborted": bool(s["aborted"]),
        "error_replies": dict(sorted(fuzz.codes.items(), key=lambda kv: int(kv[0]))),
        "kinds": {k: dict(v) for k, v in sorted(fuzz.kinds.items())},
        "failures": fuzz.failures,
        "late_replies": fuzz.late[:MAX_FAILURES], "late_count": len(fuzz.late),
        "timing_deviation_cycles": fuzz.deviation,
        "timing_offsets": dict(sorted(fuzz.offsets.items())),
        "line": {"bad_stop_bits": int(dut.bad_stop.value),
                 "glitches": int(dut.glitches.value), "overflow": port.overflow,
                 "mismatched_writes": port.mismatched_writes,
                 "left_over_bytes": len(port.buffer)},
        "infer_cycles_varied": varied,
        "bytes_sent": port.wr, "bytes_received": port.taken,
        "divisor": fuzz.device.divisor, "timeout_cycles": fuzz.device.timeout_cycles,
        "read_timeout_cycles": int(cfg["read_timeout_cycles"]),
        "margin_cycles": fuzz.device.guard,
        "cycles": port.now(), "wall_s": s["wall_s"],
        "final_state": vars(fuzz.state) | {"images": None},
    }
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, cfg["out"])
    assert record["passed"], (crashed or fuzz.failures[:1] or fuzz.late[:1]
                              or record["line"])
