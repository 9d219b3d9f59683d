"""The SDR SDRAM model (sim/sdram_model.v) on its own, through a raw-command testbench
(sim/sdram_model_tb.v) that plays scripts of controller cycles: a legal sequence moves the
right data at the right edges with no violation, and each rule, broken by one edge (or one
bit), is reported by name and counted. Icarus and Verilator each build the bench once and
run every script on that build."""

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hwsnn.sim.run import tool_env

SIM = Path(__file__).resolve().parents[1] / "sim"
MODEL = SIM / "sdram_model.v"
BENCH = SIM / "sdram_model_tb.v"
TOP = "hwsnn_sdram_model_tb"

# The model's defaults (a -7E/-6A class part), and the bench's small memory (the address
# bus needs A10, so rows stay at 11 bits and columns shrink).
DATASHEET = dict(TCK_PS=16000, T_RCD_PS=18000, T_RP_PS=18000, T_RC_PS=60000, T_RAS_PS=42000,
                 T_RAS_MAX_PS=120000000, T_RRD_PS=12000, T_WR_PS=12000, T_RFC_PS=66000,
                 T_MRD_CK=2, T_REFI_PS=7812500, MAX_POSTPONED=8, T_INIT_PS=100000000,
                 INIT_REFRESHES=2, CL_MAX=3, FATAL=0)
SMALL = dict(ROW_BITS=11, COL_BITS=4, BANK_BITS=2)
# The build every simulator runs all scripts on: 100 MHz, where every delay takes two
# edges or more (so each can be missed by one edge); tRC raised above tRAS + tRP (which it
# never exceeds at the datasheet's numbers) so that it can be broken alone; power-up,
# refresh interval and tRAS max short enough to reach in a few hundred edges.
MAIN = {**DATASHEET, **SMALL, "TCK_PS": 10000, "T_RC_PS": 80000, "T_INIT_PS": 200000,
        "T_REFI_PS": 640000, "T_RAS_MAX_PS": 2000000}

CMD = {"NOP": 0b0111, "INHIBIT": 0b1111, "ACT": 0b0011, "READ": 0b0101, "WRITE": 0b0100,
       "BST": 0b0110, "PRE": 0b0010, "REF": 0b0001, "LMR": 0b0000}
A10 = 1 << 10
IMAGE = {(3, 100, 5): 0xBEEF, (1, 2, 15): 0x1234}  # the INIT_FILE words: (bank, row, col)


def ck(params, ps):
    """Edges a delay of ps takes at the build's clock."""
    return -(-ps // params["TCK_PS"])


def mode(cl=2, bl=0, interleaved=False, single_write=False, opmode=0):
    return bl | int(interleaved) << 3 | cl << 4 | opmode << 7 | int(single_write) << 9


# ---------------------------------------------------------------------------------------
# Scripts.


@dataclass
class Cycle:
    cmd: int = CMD["NOP"]
    ba: int = 0
    a: int = 0
    dqm: int = 0
    oe: int = 0
    dq: int = 0
    cke: int = 1
    check: int = 0
    drive: int = 0
    data: int = 0
    lanes: int = 3
    xcmd: int = 0

    def word(self, repeat=1):
        return (self.dq | self.oe << 16 | self.dqm << 17 | self.a << 19 | self.ba << 32
                | self.cmd << 34 | self.cke << 38 | self.check << 39 | self.drive << 40
                | self.data << 41 | self.lanes << 57 | self.xcmd << 59 | repeat << 64)


@dataclass
class Script:
    """Controller cycles by edge: ``t`` is where the next command goes."""
    p: dict
    cycles: list = field(default_factory=list)
    t: int = 0
    end: int = 0

    def at(self, i) -> Cycle:
        while len(self.cycles) <= i:
            self.cycles.append(Cycle())
        return self.cycles[i]

    def cmd(self, name, ba=0, a=0, at=None):
        i = self.t if at is None else at
        assert i >= self.t, f"{name} at {i} before the cursor {self.t}"
        c = self.at(i)
        assert c.cmd == CMD["NOP"], f"two commands at edge {i}"
        c.cmd, c.ba, c.a = CMD[name], ba, a
        self.t = i + 1
        return i

    def after(self, edge, n):
        """Put the next command n edges after ``edge`` (not before the cursor)."""
        assert edge + n >= self.t, f"edge {edge} + {n} is before the cursor {self.t}"
        self.t = edge + n
        return self

    def idle(self, n):
        self.t += n
        return self

    def drive(self, i, data, dqm=0):
        c = self.at(i)
        c.oe, c.dq, c.dqm = 1, data, dqm

    def dqm(self, i, m):
        self.at(i).dqm = m

    def expect(self, i, data=None, lanes=3):
        """dq after edge i: ``data`` driven (on ``lanes``), or nothing driven (None)."""
        c = self.at(i)
        assert not c.check, f"two expectations at edge {i}"
        c.check, c.drive, c.data, c.lanes = 1, int(data is not None), data or 0, lanes

    def write(self, ba, col, words, ap=False, dqm=None, at=None):
        """A WRITE (at the cursor), its words driven on that edge and the next ones."""
        i = self.cmd("WRITE", ba, col | (A10 if ap else 0), at=at)
        for k, w in enumerate(words):
            self.drive(i + k, w, 0 if dqm is None else dqm[k])
        return i

    def read(self, ba, col, words=(), ap=False, cl=2, at=None):
        """A READ (at the cursor); ``words`` (None: not driven) expected from edge i+CL."""
        i = self.cmd("READ", ba, col | (A10 if ap else 0), at=at)
        for k, w in enumerate(words):
            self.expect(i + cl + k, w)
        return i

    def init(self, cl=2, bl=0, lmr_first=False, **kw):
        """Power-up at the earliest edges: NOPs for T_INIT, PRECHARGE ALL, two AUTO REFRESH
        and LOAD MODE REGISTER (or LMR first). Returns the edge of the last, where
        initialisation completes (and refresh debt starts)."""
        p = self.p
        rp, rfc, mrd = ck(p, p["T_RP_PS"]), ck(p, p["T_RFC_PS"]), p["T_MRD_CK"]
        pre = self.cmd("PRE", a=A10, at=ck(p, p["T_INIT_PS"]))
        if lmr_first:
            lmr = self.after(pre, rp).cmd("LMR", a=mode(cl, bl, **kw))
            r1 = self.after(lmr, mrd).cmd("REF")
            last = self.after(r1, rfc).cmd("REF")
        else:
            r1 = self.after(pre, rp).cmd("REF")
            r2 = self.after(r1, rfc).cmd("REF")
            last = self.after(r2, rfc).cmd("LMR", a=mode(cl, bl, **kw))
        return last

    def lines(self):
        """The $readmemh text: repeated plain cycles folded into one word."""
        self.at(max(self.t, self.end))  # the last edge of the script is played too
        out, k = [], 0
        while k < len(self.cycles):
            c, n = self.cycles[k], 1
            if not c.check:
                while (k + n < len(self.cycles) and self.cycles[k + n] == c
                       and n < 0xFFFFFFFF):
                    n += 1
            out.append(f"{c.word(n):024x}")
            k += n
        out.append(f"{1 << 63:024x}")
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# Builds and runs.


@dataclass
class Result:
    text: str
    rules: list
    counters: dict
    mismatches: list
    returncode: int

    @property
    def done(self):
        return bool(self.counters)


class Bench:
    def __init__(self, simulator, params, work: Path):
        self.simulator, self.params, self.work = simulator, params, work
        self.env = tool_env(simulator)
        self.runs = 0
        work.mkdir(parents=True, exist_ok=True)
        if simulator == "icarus":
            self.exe = work / "bench.vvp"
            cmd = ["iverilog", "-g2005", "-o", str(self.exe), "-s", TOP]
            cmd += [f"-P{TOP}.{k}={self._value(v)}" for k, v in params.items()]
            cmd += [str(BENCH), str(MODEL)]
        else:
            self.exe = work / "obj" / "Vbench"
            cmd = ["verilator", "--binary", "--timing", "-j", "2", "--top-module", TOP,
                   "-Wno-fatal", "-Wno-lint", "-Wno-style", "--Mdir", str(work / "obj"),
                   "-o", "Vbench", "-CFLAGS", "-O1",
                   # --timing's coroutines: the PyPI build leaves these flags empty.
                   "-CFLAGS", "-std=gnu++20 -fcoroutines"]
            cmd += [f"-G{k}={self._value(v)}" for k, v in params.items()]
            cmd += [str(BENCH), str(MODEL)]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, cwd=work)
        assert proc.returncode == 0 and self.exe.exists(), proc.stdout + proc.stderr

    @staticmethod
    def _value(v):
        return f'"{v}"' if isinstance(v, str) else str(v)

    def run(self, script: Script) -> Result:
        self.runs += 1
        path = self.work / f"script{self.runs}.hex"
        path.write_text(script.lines())
        cmd = ([*(["vvp", "-n"] if self.simulator == "icarus" else []), str(self.exe),
                f"+script={path}"])
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                              cwd=self.work, timeout=120)
        text = proc.stdout + proc.stderr
        rules = re.findall(r"SDRAM model: (.+?) violated:", text)
        done = re.search(r"TB DONE (.*)", text)
        counters = ({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", done.group(1))}
                    if done else {})
        return Result(text, rules, counters, re.findall(r"TB MISMATCH.*", text),
                      proc.returncode)


SIMULATORS = ["icarus", "verilator"]


@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    """One build per (simulator, parameter set), made on first use."""
    cache = {}
    image = tmp_path_factory.mktemp("sdram-image") / "image.hex"
    image.write_text("".join(f"@{(b << 15) | (r << 4) | c:x}\n{v:04x}\n"
                             for (b, r, c), v in IMAGE.items()))

    def get(simulator, **overrides):
        params = {**MAIN, "INIT_FILE": str(image), **overrides}
        key = (simulator, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = Bench(simulator, params,
                               tmp_path_factory.mktemp(f"sdram-{simulator}"))
        return cache[key]

    return get


def clean(result: Result, **counters):
    assert result.done, result.text[-3000:]
    assert result.rules == [] and result.counters["violations"] == 0, result.text[-3000:]
    assert result.mismatches == [], result.text[-3000:]
    for k, v in counters.items():
        assert result.counters[k] == v, (k, result.counters)


def caught(result: Result, *rules, text=None):
    """Exactly these violations, in this order, counted, and the data all right."""
    assert result.done, result.text[-3000:]
    assert result.rules == list(rules), result.text[-3000:]
    assert result.counters["violations"] == len(rules), result.counters
    assert result.mismatches == [], result.text[-3000:]
    if text is not None:
        assert text in result.text, result.text[-3000:]


# ---------------------------------------------------------------------------------------
# The legal sequence.


def legal_sequence(p, cl=2, lmr_first=False):
    """Initialisation, then commands at the earliest edge the rules allow where it matters
    (tRCD, tRAS, tRP, tRC, tRRD, tWR, tRFC, tMRD exactly), with data checked at the edges
    CL after each READ: single words, DQM on writes and reads, bursts of 4 and 8 (sequential
    and interleaved, wrapping), full page, interrupted and truncated bursts, read-to-write
    turnaround, auto precharge, refresh, a row change in a bank, three banks open."""
    s = Script(p)
    rcd, rp, rc = ck(p, p["T_RCD_PS"]), ck(p, p["T_RP_PS"]), ck(p, p["T_RC_PS"])
    ras, rrd, wr = ck(p, p["T_RAS_PS"]), ck(p, p["T_RRD_PS"]), ck(p, p["T_WR_PS"])
    rfc, mrd = ck(p, p["T_RFC_PS"]), p["T_MRD_CK"]
    wr1 = max(wr, 1)
    last = s.init(cl=cl, lmr_first=lmr_first)
    counts = {"activates": 0, "reads": 0, "writes": 0, "refreshes": 2}

    def act(bank, row, at=None):
        counts["activates"] += 1
        return s.cmd("ACT", bank, row, at=at)

    def rd(bank, col, words, **kw):
        counts["reads"] += sum(w is not None for w in words)
        return s.read(bank, col, words, cl=cl, **kw)

    def wrt(bank, col, words, dqm=None, **kw):
        counts["writes"] += sum(m != 3 for m in (dqm or [0] * len(words)))
        return s.write(bank, col, words, dqm=dqm, **kw)

    def new_mode(**kw):
        """PRECHARGE ALL (tRAS after bank 0's ACTIVE), AUTO REFRESH tRP later, LOAD MODE
        REGISTER tRFC after it, ACTIVE bank 0 row 5 tMRD after that; returns its edge."""
        pre = s.cmd("PRE", a=A10, at=max(s.t, a0 + ras))
        f = s.after(pre, rp).cmd("REF")
        counts["refreshes"] += 1
        m = s.after(f, rfc).cmd("LMR", a=mode(cl=cl, **kw))
        return act(0, 5, at=m + mrd)

    def write_after_read(r, words):
        """The first edge a WRITE may take the bus after a READ at r of ``words`` words."""
        return r + cl + words + 1

    # Burst length 1. Bank 0 row 5: WRITE tRCD after ACTIVE, back-to-back words, a write
    # with the low byte masked, reads back to back; the bus idle before and after them.
    a0 = act(0, 5, at=last + (rfc if lmr_first else mrd))
    w = wrt(0, 3, [0x1111], at=a0 + rcd)
    wrt(0, 4, [0x2222])
    wrt(0, 3, [0xAAAA], dqm=[0b01])
    r = rd(0, 3, [0xAA11])
    rd(0, 4, [0x2222])
    s.expect(r + cl - 1)
    s.expect(r + cl + 2)
    s.idle(cl + 2)
    # Read DQM (two edges ahead): the high byte masked, then the whole word.
    r = rd(0, 3, [])
    s.dqm(r + cl - 2, 0b10)
    s.expect(r + cl, 0x11, lanes=0b01)
    counts["reads"] += 1
    r = rd(0, 4, [])
    s.dqm(r + cl - 2, 0b11)
    s.expect(r + cl)
    s.expect(r + cl + 1)
    # Banks 1 and 2 opened tRRD apart while bank 0 stays open; reads from all three.
    a1 = act(1, 7)
    a2 = act(2, 9, at=a1 + rrd)
    s.t = max(s.t, a2 + rcd)
    wrt(1, 0, [0x1001])
    wrt(2, 0, [0x2002])
    rd(0, 4, [0x2222])
    rd(1, 0, [0x1001])
    rd(2, 0, [0x2002])
    s.idle(cl + 2)
    # Row change in bank 0: PRECHARGE, ACTIVE row 6 exactly tRP later, a word there,
    # PRECHARGE exactly tWR after it, back to row 5 tRP or tRC later: its data kept.
    assert s.t >= max(w + 2 + wr1, a0 + ras)
    pre = s.cmd("PRE", 0)
    a0 = act(0, 6, at=pre + rp)
    w = wrt(0, 3, [0x6666], at=a0 + ras)
    pre = s.cmd("PRE", 0, at=w + wr1)
    a0 = act(0, 5, at=max(pre + rp, a0 + rc))
    rd(0, 3, [0xAA11], at=a0 + rcd)
    s.idle(cl + 2)
    # Bank 3: PRECHARGE exactly tRAS after ACTIVE, ACTIVE again exactly tRC (or tRP) on;
    # then row 100, whose column 5 holds a word of the INIT_FILE image.
    a3 = act(3, 1, at=max(s.t, a2 + rrd))
    pre = s.cmd("PRE", 3, at=a3 + ras)
    a3b = act(3, 2, at=max(a3 + rc, pre + rp))
    pre = s.cmd("PRE", 3, at=a3b + ras)
    a3 = act(3, 100, at=max(a3b + rc, pre + rp))
    rd(3, 5, [0xBEEF], at=a3 + rcd)
    s.idle(cl + 2)
    # PRECHARGE ALL, AUTO REFRESH exactly tRP later, another exactly tRFC later, ACTIVE
    # exactly tRFC after that.
    pre = s.cmd("PRE", a=A10, at=max(s.t, a3 + ras))
    f1 = s.cmd("REF", at=pre + rp)
    f2 = s.cmd("REF", at=f1 + rfc)
    counts["refreshes"] += 2
    a0 = act(0, 5, at=f2 + rfc)
    rd(0, 4, [0x2222], at=a0 + rcd)
    s.idle(cl + 2)

    # Burst length 4.
    a0 = new_mode(bl=2)
    w = wrt(0, 8, [0x4000, 0x4001, 0x4002, 0x4003], at=a0 + rcd)
    r = s.after(w, 4).t
    rd(0, 10, [0x4002, 0x4003, 0x4000, 0x4001])  # wraps within the aligned four
    s.expect(r + cl - 1)
    s.expect(r + cl + 4)
    # A burst starting at column 6 fills 6, 7, 4, 5.
    w = s.after(r, cl + 5).t
    wrt(0, 6, [0xA6, 0xA7, 0xA4, 0xA5])
    r = s.after(w, 4).t
    rd(0, 4, [0xA4, 0xA5, 0xA6, 0xA7])
    # DQM inside a write burst: masked words and lanes keep their old data.
    w = s.after(r, cl + 5).t
    wrt(0, 12, [0xC0, 0xC1, 0xC2, 0xC3])
    w = s.after(w, 4).t
    wrt(0, 12, [0x5000, 0x5001, 0x5002, 0x5003], dqm=[0, 3, 0, 0b01])
    r = s.after(w, 4).t
    rd(0, 12, [0x5000, 0xC1, 0x5002, 0x50C3])
    # A READ interrupted by a READ two edges on: two words of the first, four of the next.
    r = s.after(r, 4).t
    rd(0, 8, [0x4000, 0x4001])
    rd(0, 12, [0x5000, 0xC1, 0x5002, 0x50C3], at=r + 2)
    s.expect(r + 2 + cl + 4)
    # A WRITE interrupted by a WRITE: two words of the first, then four of the second.
    w = s.after(r + 2, cl + 5).t
    wrt(0, 8, [0xE8, 0xE9])
    s.after(w, 2)
    wrt(0, 0, [0xE0, 0xE1, 0xE2, 0xE3])
    r = s.after(w + 2, 4).t
    rd(0, 8, [0xE8, 0xE9, 0x4002, 0x4003])
    # A WRITE interrupted by a READ: one word written, the READ's data CL later.
    w = s.after(r, cl + 5).t
    wrt(0, 4, [0xB4])
    r = rd(0, 0, [0xE0, 0xE1, 0xE2, 0xE3])
    # READ to WRITE turnaround: the first read word kept, the next two masked by DQM two
    # edges ahead, the WRITE one edge after the last kept word's edge (the bus idle in
    # between), the rest of the read burst cut off by the WRITE.
    r = s.after(r, 4).t
    rd(0, 4, [0xB4])
    s.dqm(r + cl - 1, 0b11)
    s.dqm(r + cl, 0b11)
    for k in (1, 2, 3):
        s.expect(r + cl + k)
    w = s.after(r, cl + 2).t
    wrt(0, 0, [0xD0, 0xD1, 0xD2, 0xD3])
    r = s.after(w, 4).t
    rd(0, 0, [0xD0, 0xD1, 0xD2, 0xD3])
    # BURST TERMINATE two edges into a read burst: two words.
    r = s.after(r, 4).t
    rd(0, 8, [0xE8, 0xE9])
    s.cmd("BST", at=r + 2)
    s.expect(r + cl + 2)
    # A PRECHARGE of the bank two edges into its read burst: data up to CL-1 edges after
    # the PRECHARGE (two words), then nothing.
    r = s.after(r, 4).t
    rd(0, 0, [0xD0, 0xD1])
    pre = s.cmd("PRE", 0, at=r + 2)
    s.expect(r + cl + 2)
    # Auto precharge on a read burst: the bank precharges from the edge after the burst's
    # last column access (or tRAS after ACTIVE), ACTIVE exactly tRP (or tRC) after that.
    a0 = act(0, 5, at=pre + rp)
    r = s.after(a0, rcd).t
    rd(0, 8, [0xE8, 0xE9, 0x4002, 0x4003], ap=True)
    a0b = act(0, 5, at=max(max(r + 4, a0 + ras) + rp, a0 + rc))
    # Auto precharge on a write burst: tWR after its last word (or tRAS after ACTIVE).
    a0 = a0b
    w = max(a0 + rcd, write_after_read(r, 4))
    wrt(0, 12, [0xF0, 0xF1, 0xF2, 0xF3], ap=True, at=w)
    a0 = act(0, 5, at=max(max(w + 3 + wr1, a0 + ras) + rp, a0 + rc))
    rd(0, 12, [0xF0, 0xF1, 0xF2, 0xF3], at=a0 + rcd)
    s.idle(cl + 4)

    # Burst length 8, sequential then interleaved.
    a0 = new_mode(bl=3)
    w = s.after(a0, rcd).t
    wrt(0, 0, [0x8000 + k for k in range(8)])
    r = s.after(w, 8).t
    rd(0, 5, [0x8005, 0x8006, 0x8007, 0x8000, 0x8001, 0x8002, 0x8003, 0x8004])
    s.expect(r + cl + 8)
    s.idle(cl + 8)
    a0 = new_mode(bl=3, interleaved=True)
    r = s.after(a0, rcd).t
    rd(0, 5, [0x8005, 0x8004, 0x8007, 0x8006, 0x8001, 0x8000, 0x8003, 0x8002])
    s.idle(cl + 8)
    # Full page: a write wrapping at the page's end, stopped by BURST TERMINATE, and a
    # read running on until BURST TERMINATE.
    a0 = new_mode(bl=7)
    w = s.after(a0, rcd).t
    wrt(0, 14, [0x9E, 0x9F, 0x90])  # columns 14, 15, 0
    s.cmd("BST", at=w + 3)
    r = s.after(w + 3, 2).t
    rd(0, 13, [0xF1, 0x9E, 0x9F, 0x90, 0x8001])
    s.cmd("BST", at=r + 5)
    s.expect(r + cl + 5)
    s.idle(cl + 4)
    # Write burst mode single location: a WRITE stores one word, a READ bursts 4.
    a0 = new_mode(bl=2, single_write=True)
    w = s.after(a0, rcd).t
    wrt(0, 0, [0x7000])  # no data (and DQM low) on the three edges after it
    r = s.after(w, 4).t
    rd(0, 0, [0x7000, 0x8001, 0x8002, 0x8003])
    s.expect(r + cl + 4)
    s.end = r + cl + 6
    return s, counts


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("cl", [2, 3])
def test_legal_sequence(benches, simulator, cl):
    s, counts = legal_sequence(MAIN, cl=cl)
    clean(benches(simulator).run(s), **counts)


@pytest.mark.parametrize("tck,cl", [(16000, 2), (7000, 3), (20000, 2)])
def test_legal_sequence_at_datasheet_timings(benches, tck, cl):
    """The datasheet's own numbers (tRC bound by tRAS + tRP) at 62.5, 143 and 50 MHz."""
    p = {**MAIN, **{k: v for k, v in DATASHEET.items() if k.startswith("T_R")},
         "TCK_PS": tck}
    s, counts = legal_sequence(p, cl=cl)
    clean(benches("icarus", **p).run(s), **counts)


def test_mode_register_before_refreshes(benches):
    """JEDEC allows LOAD MODE REGISTER before the initial AUTO REFRESHes."""
    s, counts = legal_sequence(MAIN, lmr_first=True)
    clean(benches("icarus").run(s), **counts)


# ---------------------------------------------------------------------------------------
# Each rule broken by one edge.

P = MAIN
RCD, RP, RC = ck(P, P["T_RCD_PS"]), ck(P, P["T_RP_PS"]), ck(P, P["T_RC_PS"])
RAS, RRD, WR = ck(P, P["T_RAS_PS"]), ck(P, P["T_RRD_PS"]), ck(P, P["T_WR_PS"])
RFC, MRD, INIT = ck(P, P["T_RFC_PS"]), P["T_MRD_CK"], ck(P, P["T_INIT_PS"])
REFI = P["T_REFI_PS"] // P["TCK_PS"]
RAS_MAX = P["T_RAS_MAX_PS"] // P["TCK_PS"]
# Every delay must take two edges or more, so that one edge less is a command apart.
assert min(RCD, RP, RAS, RRD, WR, RFC, MRD) >= 2 and RC > RAS + RP
assert REFI * P["TCK_PS"] == P["T_REFI_PS"]


def opened(**init):
    """Initialised, bank 0 row 5 opened at the first edge allowed; returns (script,
    the ACTIVE's edge)."""
    s = Script(P)
    last = s.init(**init)
    return s, s.cmd("ACT", 0, 5, at=last + MRD)


def power_up_early():
    s = Script(P)
    pre = s.cmd("PRE", a=A10, at=INIT - 1)
    s.after(pre, RP).cmd("REF")
    s.after(s.t - 1, RFC).cmd("REF")
    s.after(s.t - 1, RFC).cmd("LMR", a=mode())
    s.after(s.t - 1, MRD).cmd("ACT", 0, 5)
    return s


def first_not_precharge_all():
    s = Script(P)
    f = s.cmd("REF", at=INIT)
    pre = s.after(f, RFC).cmd("PRE", a=A10)
    s.after(pre, RP).cmd("REF")
    s.after(s.t - 1, RFC).cmd("REF")
    s.after(s.t - 1, RFC).cmd("LMR", a=mode())
    return s


def active_before_init_complete():
    s = Script(P)
    pre = s.cmd("PRE", a=A10, at=INIT)
    s.after(pre, RP).cmd("REF")
    s.after(s.t - 1, RFC).cmd("LMR", a=mode())  # one AUTO REFRESH of two
    s.after(s.t - 1, MRD).cmd("ACT", 0, 5)
    return s


def read_before_trcd():
    s, a = opened()
    s.after(a, RCD - 1).cmd("READ", 0, 3)
    return s


def write_before_trcd():
    s, a = opened()
    s.after(a, RCD - 1).write(0, 3, [1])
    return s


def active_before_trp():
    s, a = opened()
    pre = s.after(a, RC).cmd("PRE", 0)
    s.after(pre, RP - 1).cmd("ACT", 0, 6)
    return s


def refresh_before_trp():
    s, a = opened()
    pre = s.after(a, RAS).cmd("PRE", a=A10)
    s.after(pre, RP - 1).cmd("REF")
    return s


def lmr_before_trp():
    s, a = opened()
    pre = s.after(a, RAS).cmd("PRE", 0)
    s.after(pre, RP - 1).cmd("LMR", a=mode())
    return s


def active_before_trp_after_read_autoprecharge():
    """BL8 READ with auto precharge tRCD after ACTIVE: the precharge starts 8 edges after
    the READ (after tRAS), the next ACTIVE one edge short of tRP after that."""
    s, a = opened(bl=3)
    r = s.after(a, RCD).cmd("READ", 0, A10)
    s.after(r + 8, RP - 1).cmd("ACT", 0, 6)
    return s


def active_before_trp_after_write_autoprecharge():
    s, a = opened(bl=2)
    w = s.after(a, RCD).write(0, 0, [1, 2, 3, 4], ap=True)
    assert w + 3 + WR >= a + RAS
    s.after(w + 3 + WR, RP - 1).cmd("ACT", 0, 6)
    return s


def active_before_trc():
    s, a = opened()
    pre = s.after(a, RAS).cmd("PRE", 0)
    assert a + RC - 1 >= pre + RP
    s.after(a, RC - 1).cmd("ACT", 0, 6)
    return s


def precharge_before_tras():
    s, a = opened()
    s.after(a, RAS - 1).cmd("PRE", 0)
    return s


def row_open_too_long():
    """Open one edge past tRAS max (reported at that edge, once), closed much later."""
    s, a = opened()
    s.after(a, RAS_MAX + 1).cmd("NOP")
    s.after(a, RAS_MAX + 50).cmd("PRE", 0)
    return s


def row_open_just_long_enough():
    s, a = opened()
    s.after(a, RAS_MAX).cmd("PRE", 0)
    return s


def active_before_trrd():
    s, a = opened()
    s.after(a, RRD - 1).cmd("ACT", 1, 5)
    return s


def precharge_before_twr():
    s, a = opened()
    w = s.after(a, RAS).write(0, 3, [1])
    s.after(w, WR - 1).cmd("PRE", 0)
    return s


def precharge_before_twr_after_burst():
    """The last unmasked word of a BL4 burst counts; its masked words do not."""
    s, a = opened(bl=2)
    w = s.after(a, RAS).write(0, 0, [1, 2, 3, 4], dqm=[0, 0, 0b01, 3])
    s.after(w + 2, WR - 1).cmd("PRE", 0)
    return s


def precharge_twr_after_masked_words():
    s, a = opened(bl=2)
    w = s.after(a, RAS).write(0, 0, [1, 2, 3, 4], dqm=[0, 0, 3, 3])
    s.after(w + 1, WR).cmd("PRE", 0)  # truncates the (masked) burst at its last word
    return s


def active_before_trfc():
    s = Script(P)
    init = s.init(lmr_first=True)  # the last init command is an AUTO REFRESH
    s.after(init, RFC - 1).cmd("ACT", 0, 5)
    return s


def refresh_before_trfc():
    s, a = opened()
    pre = s.after(a, RAS).cmd("PRE", 0)
    f = s.after(pre, RP).cmd("REF")
    s.after(f, RFC - 1).cmd("REF")
    return s


def active_before_tmrd():
    s = Script(P)
    init = s.init()
    s.after(init, MRD - 1).cmd("ACT", 0, 5)
    return s


def refresh_late(edges_late):
    """After initialisation the first AUTO REFRESH is due within MAX_POSTPONED + 1
    intervals: at that edge it is on time, one edge later it is not."""
    s = Script(P)
    init = s.init()
    s.after(init, (P["MAX_POSTPONED"] + 1) * REFI + edges_late).cmd("REF")
    s.idle(10)
    return s


def refresh_debt_twice():
    """Debt over the limit is reported once while it stays over, again when it goes over
    again after being paid down."""
    s = Script(P)
    init = s.init()
    assert REFI == 64 and RFC == 7 and P["MAX_POSTPONED"] == 8
    # Owed 9 at +576 (reported), 10 at +640; paid to 9 at +700, 10 at +704, then paid
    # every 7 edges: 9, 8 (below the limit again), 7, 6, 5 at +735; owed 6 at +768, 7,
    # 8, then 9 at +960: reported again.
    f = s.after(init, 700).cmd("REF")
    for _ in range(5):
        f = s.after(f, RFC).cmd("REF")
    s.end = init + 970
    return s


def refresh_pulled_in(edges_late):
    """Twelve AUTO REFRESHes right after initialisation: MAX_POSTPONED of them are
    credited ahead, the rest are extra; the next is then due 8 + 9 intervals on."""
    assert P["MAX_POSTPONED"] == 8 and 2 + 11 * RFC < 2 * REFI
    s = Script(P)
    init = s.init()
    f = s.cmd("REF", at=init + MRD)
    for _ in range(11):
        f = s.after(f, RFC).cmd("REF")
    # Owed -8 after the eighth; one owed at +64 and paid by the tenth; then owed -8 + k - 1
    # at +64k: 9 (over the limit unless paid at once) at +64 * 18.
    s.cmd("REF", at=init + 18 * REFI + edges_late)
    s.idle(10)
    return s


def read_bus_contention(edge):
    """The controller drives dq at READ + edge: the chip drives CL=2 .. 3 edges on."""
    s, a = opened()
    r = s.after(a, RCD).cmd("READ", 0, 3)
    s.drive(r + edge, 0x55)
    s.idle(6)
    return s


def write_after_read_without_gap():
    """READ to WRITE with DQM only on the word due at the WRITE's edge: the word before it
    still drives into the WRITE's cycle."""
    s, a = opened(bl=2)
    r = s.after(a, RCD).cmd("READ", 0, 0)
    s.dqm(r + 1, 3)
    s.after(r, 3).write(0, 0, [1, 2, 3, 4])
    s.idle(6)
    return s


def read_idle_bank():
    s, a = opened()
    s.after(a, RCD).cmd("READ", 1, 0)
    return s


def active_open_bank():
    s, a = opened()
    s.after(a, RC).cmd("ACT", 0, 6)
    return s


def refresh_with_open_bank():
    s, a = opened()
    s.after(a, RAS).cmd("REF")
    return s


def lmr_with_open_bank():
    s, a = opened()
    s.after(a, RAS).cmd("LMR", a=mode())
    return s


def column_out_of_range():
    s, a = opened()
    s.after(a, RCD).cmd("READ", 0, 1 << 9)
    return s


def lmr(value):
    def script():
        s = Script(P)
        init = s.init()
        s.after(init, MRD).cmd("LMR", a=value)
        return s
    return script


def cke_low():
    """CKE low twice for a few edges after initialisation: one report each time."""
    s = Script(P)
    init = s.init()
    for k in range(3):
        s.at(init + 5 + k).cke = 0
    for k in range(3):
        s.at(init + 20 + k).cke = 0
    s.t = init + 30
    return s


def self_refresh():
    s = Script(P)
    init = s.init()
    s.cmd("REF", at=init + 5)
    s.at(init + 5).cke = 0
    s.t = init + 10
    return s


def read_during_autoprecharge():
    s, a = opened(bl=2)
    r = s.after(a, RCD).cmd("READ", 0, A10)
    s.after(r, 2).cmd("READ", 0, 0)
    return s


def terminate_autoprecharge():
    s, a = opened(bl=2)
    r = s.after(a, RCD).cmd("READ", 0, A10)
    s.after(r, 2).cmd("BST")
    return s


def precharge_during_autoprecharge():
    s, a = opened(bl=2)
    r = s.after(a, RAS).cmd("READ", 0, A10)
    s.after(r, 2).cmd("PRE", 0)
    return s


def active_during_autoprecharge():
    s, a = opened(bl=3)
    r = s.after(a, RCD).cmd("READ", 0, A10)
    s.after(r, 5).cmd("ACT", 0, 6)
    return s


def full_page_autoprecharge():
    s, a = opened(bl=7)
    s.after(a, RCD).cmd("READ", 0, A10)
    return s


def cke_low_at_power_up(early):
    """CKE may stay low before the first command; the power-up delay counts from the first
    edge with CKE high."""
    s = Script(P)
    for k in range(10):
        s.at(k).cke = 0
    pre = s.cmd("PRE", a=A10, at=10 + INIT - early)
    s.after(pre, RP).cmd("REF")
    s.after(s.t - 1, RFC).cmd("REF")
    s.after(s.t - 1, RFC).cmd("LMR", a=mode())
    s.after(s.t - 1, MRD).cmd("ACT", 0, 5)
    return s


def read_before_init_complete():
    s = Script(P)
    pre = s.cmd("PRE", a=A10, at=INIT)
    s.after(pre, RP).cmd("REF")
    s.after(s.t - 1, RFC).cmd("REF")  # no LOAD MODE REGISTER
    s.after(s.t - 1, RFC).cmd("READ", 0, 0)
    return s


def write_without_data():
    s, a = opened()
    s.after(a, RCD).cmd("WRITE", 0, 3)
    return s


CASES = {
    "power-up": (power_up_early, ["power-up"]),
    "init: first command": (first_not_precharge_all, ["init sequence"]),
    "init: ACTIVE early": (active_before_init_complete, ["init sequence"]),
    "init: READ early": (read_before_init_complete, ["init sequence", "bank state"]),
    "power-up: CKE low first": (lambda: cke_low_at_power_up(0), []),
    "power-up: CKE low first, early": (lambda: cke_low_at_power_up(1), ["power-up"]),
    "tRCD read": (read_before_trcd, ["tRCD"]),
    "tRCD write": (write_before_trcd, ["tRCD"]),
    "tRP active": (active_before_trp, ["tRP"]),
    "tRP refresh": (refresh_before_trp, ["tRP"]),
    "tRP mode register": (lmr_before_trp, ["tRP"]),
    "tRP read auto-precharge": (active_before_trp_after_read_autoprecharge, ["tRP"]),
    "tRP write auto-precharge": (active_before_trp_after_write_autoprecharge, ["tRP"]),
    "tRC": (active_before_trc, ["tRC"]),
    "tRAS": (precharge_before_tras, ["tRAS"]),
    "tRAS max": (row_open_too_long, ["tRAS max"]),
    "tRAS max (boundary)": (row_open_just_long_enough, []),
    "tRRD": (active_before_trrd, ["tRRD"]),
    "tWR": (precharge_before_twr, ["tWR"]),
    "tWR burst": (precharge_before_twr_after_burst, ["tWR"]),
    "tWR masked words": (precharge_twr_after_masked_words, []),
    "tRFC active": (active_before_trfc, ["tRFC"]),
    "tRFC refresh": (refresh_before_trfc, ["tRFC"]),
    "tMRD": (active_before_tmrd, ["tMRD"]),
    "refresh rate (boundary)": (lambda: refresh_late(0), []),
    "refresh rate": (lambda: refresh_late(1), ["refresh rate"]),
    "refresh rate twice": (refresh_debt_twice, ["refresh rate"] * 2),
    "refresh rate pulled in (boundary)": (lambda: refresh_pulled_in(0), []),
    "refresh rate pulled in": (lambda: refresh_pulled_in(1), ["refresh rate"]),
    "contention: first read word": (lambda: read_bus_contention(2), ["bus contention"]),
    "contention: read word held": (lambda: read_bus_contention(3), ["bus contention"]),
    "contention: none before": (lambda: read_bus_contention(1), []),
    "contention: none after": (lambda: read_bus_contention(4), []),
    "contention: read to write": (write_after_read_without_gap, ["bus contention"]),
    "bank state: READ idle bank": (read_idle_bank, ["bank state"]),
    "bank state: ACTIVE open bank": (active_open_bank, ["bank state"]),
    "bank state: refresh": (refresh_with_open_bank, ["bank state"]),
    "bank state: mode register": (lmr_with_open_bank, ["bank state"]),
    "column range": (column_out_of_range, ["column range"]),
    "mode register: CAS latency": (lmr(mode(cl=4)), ["mode register"]),
    "mode register: CAS latency 1": (lmr(mode(cl=1)), ["mode register"]),
    "mode register: burst length": (lmr(mode(bl=5)), ["mode register"]),
    "mode register: full page interleaved": (lmr(mode(bl=7, interleaved=True)),
                                             ["mode register"]),
    "mode register: operating mode": (lmr(mode(opmode=1)), ["mode register"]),
    "CKE low": (cke_low, ["CKE"] * 2),
    "self refresh": (self_refresh, ["CKE"]),
    "auto-precharge: READ": (read_during_autoprecharge, ["auto-precharge"]),
    "auto-precharge: BURST TERMINATE": (terminate_autoprecharge, ["auto-precharge"]),
    "auto-precharge: PRECHARGE": (precharge_during_autoprecharge, ["auto-precharge"]),
    "auto-precharge: ACTIVE": (active_during_autoprecharge, ["auto-precharge"]),
    "auto-precharge: full page": (full_page_autoprecharge, ["auto-precharge"]),
    "write data": (write_without_data, ["write data"]),
}
TEXTS = {
    "tRCD read": "READ to bank 0",
    "tRP active": "required 18000 ps",
    "self refresh": "(SELF REFRESH)",
}


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", list(CASES))
def test_rule(benches, simulator, name):
    make, rules = CASES[name]
    result = benches(simulator).run(make())
    caught(result, *rules, text=TEXTS.get(name))


@pytest.mark.parametrize("command", ["READ", "WRITE"])
@pytest.mark.parametrize("late", [0, 1])
def test_autoprecharge_waits_for_tras(benches, command, late):
    """A single-word READ or WRITE with auto precharge right at tRCD ends before tRAS has
    passed: its precharge starts tRAS after the ACTIVE (the datasheet's "earliest valid
    stage"), and the next ACTIVE waits tRP after that (tRC, at the datasheet's 60 ns, is
    met one edge earlier)."""
    p = {**MAIN, "T_RC_PS": DATASHEET["T_RC_PS"]}
    assert ck(p, p["T_RC_PS"]) == RAS + RP - 1
    s = Script(p)
    a = s.cmd("ACT", 0, 5, at=s.init() + MRD)
    if command == "READ":
        s.read(0, 0, [], ap=True, at=a + RCD)
    else:
        s.write(0, 0, [0x1234], ap=True, at=a + RCD)
    assert a + RCD + WR < a + RAS
    s.cmd("ACT", 0, 6, at=a + RAS + RP - 1 + late)
    s.idle(4)
    result = benches("icarus", **p).run(s)
    caught(result, *([] if late else ["tRP"]))


def test_unknown_command_pins(benches):
    """Icarus: X on a command pin after the first command is reported (Verilator has no
    X)."""
    s, a = opened()
    s.at(a + 3).xcmd = 1
    s.idle(5)
    caught(benches("icarus").run(s), "command")


def test_message_names_bank_and_times(benches):
    """A violation says what, where and how far off: tRCD one edge (10 ns) short of
    18 ns at bank 2."""
    s = Script(P)
    a = s.cmd("ACT", 2, 5, at=s.init() + MRD)
    s.after(a, RCD - 1).cmd("READ", 2, 0)
    result = benches("icarus").run(s)
    caught(result, "tRCD")
    line = next(x for x in result.text.splitlines() if "tRCD violated" in x)
    assert "bank 2" in line and "10000 ps" in line and "required 18000 ps" in line, line


def test_fatal_stops_the_simulation(benches):
    bench = benches("icarus", FATAL=1)
    result = bench.run(read_before_trcd())
    assert "SDRAM model: tRCD violated" in result.text
    assert not result.done and result.returncode != 0, result.text[-2000:]
    s, _ = legal_sequence(MAIN)
    clean(bench.run(s))
