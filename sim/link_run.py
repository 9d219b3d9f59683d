"""The UART host link in cocotb: write the Verilog of a ``HostLink`` around a QNet, build it
with Verilator or Icarus, and run ``link_bench`` (the real ``hwsnn.flow.host.Client`` over a
simulated serial line) on samples, against the golden model.

    from hwsnn.sim.link_run import simulate_link
    record = simulate_link(net, codes, "build/link", simulator="verilator")
    assert record["passed"]

``build_link`` and ``run_link`` split the two, so that one build serves several runs.

``build_fuzz`` and ``run_fuzz`` do the same for ``link_fuzz_bench``: the link in a
byte-level harness (``fuzz_harness``) under random, truncated and corrupted frames, every
reply checked against ``link_model.LinkModel`` (docs/link.md, "Fuzzing").

    design = build_fuzz(net, "build/fuzz")
    record = run_fuzz(design, bad_frames=10_000, seed=1)
    assert record["passed"] and record["hangs"] == record["wrong_answers"] == 0
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from ..flow import host
from ..hdl.link import HostLink
from ..hdl.plan import layout_id
from ..hdl.sdram import ULX3S_SDRAM, pin_signature
from ..hdl.verilog import fingerprint
from ..snn import golden
from ..snn.qnet import QNet
from .run import (
    PERIOD_NS,
    SIMULATORS,
    VERILATOR_QUIET,
    SimulatorError,
    _build,
    _run_bench,
    _runner,
    tool_env,
)

LINK_TOP = "hwsnn_link"
LINK_BENCH = "link_bench"
BAUD = 115200  # nominal: the clock is ``divisor`` times the baud rate
FUZZ_TOP = "hwsnn_link_fuzz"
FUZZ_BENCH = "link_fuzz_bench"
FUZZ_QUEUE = 4096  # symbols and reply bytes the harness holds (a power of 2)


@dataclass
class LinkDesign:
    """A built link: what ``run_link`` needs."""

    net: QNet
    simulator: str
    work: Path
    source: Path
    divisor: int
    timeout_cycles: int
    lanes: int
    stores: list
    fingerprint: str
    pixels: int
    classes: int
    build_seconds: float
    env: dict
    runner: object
    top: str = LINK_TOP


def link_verilog(net: QNet, *, lanes: int = 1, divisor: int = 4, timeout_bytes: int = 3,
                 loadable=(), primitives: bool = False, input_lanes: int = 0,
                 serial=None) -> tuple[HostLink, str]:
    """The link and its Verilog (module ``hwsnn_link``: clk, rst, rx, tx, busy,
    last_error), at ``divisor`` clock cycles per bit. ``loadable``: projections whose
    weights are loaded over the link (``hdl.store``); ``primitives``: those stores as
    UP5K ``SB_SPRAM256KA`` instances rather than behavioural memories. ``serial``: a
    ``hdl.serial.SerialPlan`` of ``net``: its layer-serial processor behind the link
    instead of the dataflow network (its weights loaded at run time with its
    ``loadable``)."""
    from amaranth.back import verilog

    from ..hdl.processor import SerialProcessor
    from ..hdl.store import UP5KPrimitives
    external = serial is not None and serial.external
    # (external: the SDRAM controller counts the chip's delays at SDRAM_CLOCK_HZ, the model
    # is told the same; the link's own rate is divisor cycles a bit, whatever that is)
    engine = None if serial is None else (
        SerialProcessor(serial, clock_hz=SDRAM_CLOCK_HZ, chip=SIM_CHIP) if external
        else SerialProcessor(serial))
    link = HostLink(net, clk_hz=divisor * BAUD, baud=BAUD, lanes=lanes,
                    timeout_bytes=timeout_bytes, loadable=loadable, input_lanes=input_lanes,
                    network=engine)
    if external:
        from .sdram import chip_wrapper
        core = _LinkWithSdram(link)
        text = verilog.convert(core, name=f"{LINK_TOP}_core", emit_src=False)
        ports = [("input", 1, "clk"), ("input", 1, "rst"), ("input", 1, "rx"),
                 ("output", 1, "tx"), ("output", 1, "busy"), ("output", 8, "last_error")]
        return link, text + chip_wrapper(LINK_TOP, f"{LINK_TOP}_core", ports, engine.chip,
                                         SDRAM_CLOCK_HZ, io_registers=engine.io_registers)
    return link, verilog.convert(link, name=LINK_TOP, emit_src=False,
                                 platform=UP5KPrimitives() if primitives else None)


SDRAM_CLOCK_HZ = 60e6
# (the chip's power-up shortened to 2 µs, and its model told so: the bench talks at once)
SIM_CHIP = dataclasses.replace(ULX3S_SDRAM, t_init=2000.0)


class _LinkWithSdram(wiring.Component):
    """A ``HostLink`` whose processor keeps its weights in SDRAM, with the processor's
    SDRAM signals among its ports (a board top takes them to the pins instead)."""

    def __init__(self, link: HostLink):
        self.link = link
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "last_error": Out(8),
                          "sdram": Out(pin_signature(link.network.chip))})

    def elaborate(self, platform):
        m = Module()
        link = self.link
        m.submodules.link = link
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), self.busy.eq(link.busy),
                     self.last_error.eq(link.last_error)]
        wiring.connect(m, wiring.flipped(self.sdram), link.network.sdram)
        return m


def build_link(net: QNet, work, *, simulator: str = "verilator", lanes: int = 1,
               divisor: int = 4, timeout_bytes: int = 3, loadable=(),
               primitives: bool = False, quick_build: bool = False,
               input_lanes: int = 0, serial=None) -> LinkDesign:
    """Write ``work/hwsnn_link.v`` (unless it is already there, unchanged) and build it.
    ``quick_build``: Verilator compiles its C++ without optimisation, in about half the
    time, for a slower simulation (worth it for short runs)."""
    if simulator not in SIMULATORS:
        raise ParameterError(f"unknown simulator {simulator!r}: choose from "
                             f"{', '.join(SIMULATORS)}")
    env = tool_env(simulator)
    if quick_build and simulator == "verilator":
        env["MAKEFLAGS"] += " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    link, text = link_verilog(net, lanes=lanes, divisor=divisor, timeout_bytes=timeout_bytes,
                              loadable=loadable, primitives=primitives,
                              input_lanes=input_lanes, serial=serial)
    source = work / f"{LINK_TOP}.v"
    if not source.is_file() or source.read_text() != text:
        source.write_text(text)
    extra = []
    if serial is not None and serial.external:
        from .sdram import MODEL
        extra.append(MODEL)
    if primitives and link.stores:
        from ..hdl.store import spram_model
        model = work / "sb_spram256ka.v"
        model.write_text(spram_model())
        extra.append(model)
    t = time.time()
    runner = _build(simulator, env, source, LINK_TOP, work, False, extra)
    return LinkDesign(net=net, simulator=simulator, work=work, source=source,
                      divisor=link.divisor, timeout_cycles=link.timeout_cycles, lanes=lanes,
                      stores=link.stores,
                      fingerprint=fingerprint(net), pixels=link.pixels,
                      classes=link.classes, build_seconds=time.time() - t, env=env,
                      runner=runner)


def golden_samples(res, codes: torch.Tensor) -> list[dict]:
    """Each sample's pixel codes (C order) with the class and readout of ``res``, the
    golden model's run on them."""
    return [{"codes": c.reshape(-1).tolist(), "prediction": int(p), "readout": r.tolist()}
            for c, r, p in zip(codes, res.readout, res.predictions, strict=True)]


def read_timeout_cycles(design: LinkDesign, res) -> int:
    """The client's read timeout: well over an inference (of ``res``, the golden run with
    the design's lanes) and a reply, and over the link's own timeout (so that a truncated
    frame's ERROR reply comes within it)."""
    work = int(res.ideal_cycles_total.max())
    reply = 6 + host.INFER_HEADER_LEN + 4 * design.classes
    return 4 * work + 4 * design.timeout_cycles + 10 * design.divisor * reply + 1000


def run_link(design: LinkDesign, codes: torch.Tensor, *, faults: bool = True,
             expected: list[tuple[int, list[int]]] | None = None,
             load_chunk: int = 64, throughput: str | None = None) -> dict:
    """Run the bench on ``codes`` ([B, *input shape], 0..255): IDENTIFY, every sample in
    turn, STATUS, and with ``faults`` the corrupt-frame cases, each followed by an INFER
    that must give the golden answer again; a design with run-time weight stores gets
    them first, in LOAD frames of ``load_chunk`` bytes. ``expected`` replaces the golden model's
    (class, readout) per sample (to show that a wrong expectation fails the run).
    ``throughput`` ("pipelined": packed through ``Client.infer_many``; "sequential": one
    plain INFER at a time) runs only the samples, timed: the record's ``throughput`` has
    the cycles from the first byte written to the last reply byte read.

    Returns the bench's record (``passed``, ``checks``, ``failed``, ``inferences``,
    ``errors``, ``statuses``, ``counts``, ...) with ``cocotb_tests`` and ``cocotb_failed``
    from the simulator's results file, ``simulator``, ``build_seconds``, ``sim_seconds``
    and ``log``."""
    codes = torch.as_tensor(codes)
    if codes.ndim < 1 or len(codes) < 1:
        raise ParameterError("run_link needs at least one sample")
    res = golden.run(design.net, codes, lanes=design.lanes)
    samples = golden_samples(res, codes)
    if expected is not None:
        if len(expected) != len(samples):
            raise ParameterError(f"{len(expected)} expectations for {len(samples)} samples")
        for s, (prediction, readout) in zip(samples, expected, strict=True):
            s["prediction"], s["readout"] = int(prediction), [int(v) for v in readout]
    work = design.work
    cfg = {"period_ns": PERIOD_NS, "divisor": design.divisor,
           "timeout_cycles": design.timeout_cycles,
           "read_timeout_cycles": read_timeout_cycles(design, res),
           "fingerprint": design.fingerprint, "classes": design.classes,
           "pixels": design.pixels, "samples": samples, "faults": bool(faults),
           "stores": [{"bytes_per_word": s.bytes_per_word, "data": s.encode().hex()}
                      for s in design.stores],
           "layout": layout_id(design.stores).hex() if design.stores else None,
           "load_chunk": int(load_chunk), "throughput": throughput,
           "out": str((work / "record.json").resolve())}
    (work / "bench.json").write_text(json.dumps(cfg))
    (work / "record.json").unlink(missing_ok=True)
    results = (work / "results.xml").resolve()
    t = time.time()
    _run_bench(design.runner, design.simulator, design.env, LINK_TOP, work, False,
               len(samples), False, module=LINK_BENCH, results_xml=str(results))
    sim_s = time.time() - t
    record = json.loads((work / "record.json").read_text())
    from cocotb_tools.check_results import get_results
    try:
        tests, failed = get_results(results)
    except RuntimeError as exc:
        raise SimulatorError(f"the {design.simulator} run left no results: {exc}") from None
    record.update(cocotb_tests=tests, cocotb_failed=failed, simulator=design.simulator,
                  build_seconds=design.build_seconds, sim_seconds=sim_s,
                  log=str(work / "test.log"))
    return record


def simulate_link(net: QNet, codes: torch.Tensor, work, *, simulator: str = "verilator",
                  lanes: int = 1, divisor: int = 4, timeout_bytes: int = 3,
                  faults: bool = True, expected=None, quick_build: bool = False,
                  loadable=(), primitives: bool = False) -> dict:
    """``build_link`` then ``run_link``."""
    design = build_link(net, work, simulator=simulator, lanes=lanes, divisor=divisor,
                        timeout_bytes=timeout_bytes, quick_build=quick_build,
                        loadable=loadable, primitives=primitives)
    return run_link(design, codes, faults=faults, expected=expected)


# ---------------------------------------------------------------------------------------
# The fuzz harness: the link with its clock, reset and both UART ends in Verilog, so that
# the bench works a byte at a time (sim/link_fuzz_bench.py).


def fuzz_harness(divisor: int, *, period_ns: int = PERIOD_NS, queue: int = FUZZ_QUEUE) -> str:
    """Verilog of ``hwsnn_link_fuzz``: ``hwsnn_link`` with a free-running clock, a reset
    for its first 3 cycles, a cycle counter, and at byte level:

    - a line driver on ``rx``: the bench writes symbols ``{idle cycles before the start
      bit (16), stop bit (1), byte (8)}`` into ``out_mem`` and moves ``out_wr`` on; each
      symbol is ``idle + 10·divisor`` cycles (``+ 2·divisor`` of high line after a low
      stop bit), the next following without a gap; ``out_sent`` counts the symbols sent;
    - an 8N1 receiver on ``tx``, independent of the link's, sampling every bit in its
      middle: reply bytes go to ``in_mem`` with the cycle of their start bit in
      ``in_at``, ``in_wr`` counts them; ``bad_stop`` and ``glitches`` count malformed ones.

    The link's ``busy`` and ``last_error`` ports are ``busy`` and ``last_error`` here."""
    if queue & (queue - 1):
        raise ValueError(f"the harness queue must be a power of 2, not {queue}")
    d = divisor
    a = queue.bit_length() - 1
    pub = "/*verilator public_flat_rw*/"
    return f"""`timescale 1ns/1ps
// Generated by hwsnn.sim.link_run.fuzz_harness: the UART host link at byte level.
module {FUZZ_TOP};
  localparam D = {d};
  reg clk {pub};
  reg [63:0] cycle {pub};
  initial begin clk = 1'b0; cycle = 64'd0; end
  always #{period_ns / 2:g} clk = ~clk;
  always @(posedge clk) cycle <= cycle + 64'd1;
  wire rst = cycle < 64'd3;
  wire rx, tx;
  wire busy {pub};
  wire [7:0] last_error {pub};
  {LINK_TOP} link(.clk(clk), .rst(rst), .rx(rx), .tx(tx), .busy(busy),
                  .last_error(last_error));

  // host -> link
  reg [24:0] out_mem [0:{queue - 1}] {pub};
  reg [15:0] out_wr {pub};
  reg [15:0] out_sent {pub};
  reg [63:0] out_began {pub};
  reg [15:0] out_rd;
  reg active;
  reg [17:0] c;
  reg [15:0] w;
  reg [8:0] sym;
  initial begin out_wr = 16'd0; out_sent = 16'd0; out_rd = 16'd0; active = 1'b0; end
  wire [17:0] len = {{2'd0, w}} + 18'd{10 * d} + (sym[8] ? 18'd0 : 18'd{2 * d});
  wire done = active && c == len - 18'd1;
  wire [17:0] b = (c - {{2'd0, w}}) / D;
  assign rx = !active || c < {{2'd0, w}} ? 1'b1 : b == 18'd0 ? 1'b0 :
              b <= 18'd8 ? sym[b - 18'd1] : b == 18'd9 ? sym[8] : 1'b1;
  always @(posedge clk) begin
    if (!active || done) begin
      if (out_rd != out_wr) begin
        {{w, sym}} <= out_mem[out_rd[{a - 1}:0]];
        c <= 18'd0;
        active <= 1'b1;
        if (!active)
          out_began <= cycle;
        out_rd <= out_rd + 16'd1;
      end else
        active <= 1'b0;
      if (done)
        out_sent <= out_sent + 16'd1;
    end else
      c <= c + 18'd1;
  end

  // link -> host
  reg [7:0] in_mem [0:{queue - 1}] {pub};
  reg [63:0] in_at [0:{queue - 1}] {pub};
  reg [15:0] in_wr {pub};
  reg [15:0] bad_stop {pub};
  reg [15:0] glitches {pub};
  reg rbusy;
  reg [17:0] rc;
  reg [7:0] rsh;
  reg [63:0] rstart;
  initial begin in_wr = 16'd0; bad_stop = 16'd0; glitches = 16'd0; rbusy = 1'b0; end
  always @(posedge clk) begin
    if (!rbusy) begin
      if (!tx) begin
        rbusy <= 1'b1;
        rc <= 18'd1;
        rstart <= cycle;
      end
    end else begin
      rc <= rc + 18'd1;
      if (rc == 18'd{d // 2} && tx) begin
        glitches <= glitches + 16'd1;
        rbusy <= 1'b0;
      end
      if (rc > 18'd{d // 2} && rc < 18'd{d // 2 + 9 * d} && (rc - 18'd{d // 2}) % D == 0)
        rsh <= {{tx, rsh[7:1]}};
      if (rc == 18'd{d // 2 + 9 * d}) begin
        if (!tx)
          bad_stop <= bad_stop + 16'd1;
        in_mem[in_wr[{a - 1}:0]] <= rsh;
        in_at[in_wr[{a - 1}:0]] <= rstart;
        in_wr <= in_wr + 16'd1;
        rbusy <= 1'b0;
      end
    end
  end
endmodule
"""


def _build_verilator(env: dict, sources: list[Path], top: str, work: Path) -> object:
    """Verilator build of ``top`` for cocotb without ``--public-flat-rw`` (which the cocotb
    runner always adds, and which makes every cycle about 40 times slower here): only
    the signals the harness marks ``public_flat_rw`` are visible to the bench. The
    harness's clock is a Verilog delay, hence ``--timing`` (C++20 coroutines)."""
    import cocotb_tools.config as cfg

    build_dir = work / "build-fuzz"
    build_dir.mkdir(parents=True, exist_ok=True)
    env = dict(env)
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout
    flags = " CFG_CXXFLAGS_STD=-std=gnu++20"
    if "clang" not in cxx.lower():
        flags += " CFG_CXXFLAGS_COROUTINES=-fcoroutines"
    env["MAKEFLAGS"] = env.get("MAKEFLAGS", "") + flags
    libs = cfg.libs_dir
    verilate = ["verilator", "-cc", "--exe", "-Mdir", str(build_dir), "--top-module", top,
                "--vpi", "--timing", "--prefix", "Vtop", "-o", top, "-LDFLAGS",
                f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator", *VERILATOR_QUIET,
                "--timescale", "1ns/1ps",
                str(cfg.share_dir / "lib" / "verilator" / "verilator.cpp"),
                *map(str, sources)]
    make = ["make", "-j", str(max(1, min(4, os.cpu_count() or 1))), "-C", str(build_dir),
            "-f", "Vtop.mk", "VM_TRACE=0"]
    log = work / "build.log"
    stamp = build_dir / "sources.txt"
    key = "\n".join([*verilate, *(p.read_text() for p in sources), env["MAKEFLAGS"]])
    if not (stamp.is_file() and stamp.read_text() == key and (build_dir / top).is_file()):
        with open(log, "w") as out:
            for cmd in (verilate, make):
                done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
                if done.returncode:
                    raise SimulatorError(f"verilator could not build {sources[0]}: "
                                         f"{' '.join(cmd[:2])} failed; see {log}")
        stamp.write_text(key)
    runner = _runner("verilator")
    # what runner.test needs of a build: the directory (it runs build_dir / top) and the
    # sources (the top level's language)
    runner.build_dir = build_dir
    runner.verilog_sources, runner.vhdl_sources, runner.sources = sources, [], []
    return runner


def build_fuzz(net: QNet, work, *, simulator: str = "verilator", lanes: int = 1,
               divisor: int = 4, timeout_bytes: int = 3, loadable=(),
               primitives: bool = False, quick_build: bool = False,
               input_lanes: int = 0, serial=None) -> LinkDesign:
    """Write the link's Verilog and the fuzz harness around it (``fuzz_harness``) into
    ``work`` and build them for ``run_fuzz``; the arguments are ``build_link``'s."""
    if simulator not in SIMULATORS:
        raise ParameterError(f"unknown simulator {simulator!r}: choose from "
                             f"{', '.join(SIMULATORS)}")
    env = tool_env(simulator)
    if quick_build and simulator == "verilator":
        env["MAKEFLAGS"] += " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    link, text = link_verilog(net, lanes=lanes, divisor=divisor, timeout_bytes=timeout_bytes,
                              loadable=loadable, primitives=primitives,
                              input_lanes=input_lanes, serial=serial)
    files = {f"{LINK_TOP}.v": text, f"{FUZZ_TOP}.v": fuzz_harness(link.divisor)}
    if primitives and link.stores:
        from ..hdl.store import spram_model
        files["sb_spram256ka.v"] = spram_model()
    for name, body in files.items():
        path = work / name
        if not path.is_file() or path.read_text() != body:
            path.write_text(body)
    sources = [work / name for name in files]
    t = time.time()
    if simulator == "verilator":
        runner = _build_verilator(env, sources, FUZZ_TOP, work)
    else:
        runner = _build(simulator, env, sources[1], FUZZ_TOP, work, False,
                        [sources[0], *sources[2:]])
    return LinkDesign(net=net, simulator=simulator, work=work, source=sources[0],
                      divisor=link.divisor, timeout_cycles=link.timeout_cycles, lanes=lanes,
                      stores=link.stores, fingerprint=fingerprint(net), pixels=link.pixels,
                      classes=link.classes, build_seconds=time.time() - t, env=env,
                      runner=runner, top=FUZZ_TOP)


def fuzz_images(net: QNet, count: int, seed: int) -> torch.Tensor:
    """``count`` images for INFER frames ([count, *input shape], codes 0..255): random
    codes, and a few made of bytes that look like a frame's start (0xA5) or are none."""
    shape = tuple(int(s) for s in net.input.shape)
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 256, (max(count, 4), *shape), generator=gen)
    codes[0] = host.SYNC
    codes[1] = 0
    codes[2] = 255
    flat = codes[3].reshape(-1)
    flat[::2] = host.SYNC
    return codes[:count] if count >= 4 else codes


def run_fuzz(design: LinkDesign, *, frames: int = 1000, bad_frames: int = 0, seed: int = 0,
             images: int = 256, margin: int = 0, answers=None, fixed=(),
             progress: bool = False) -> dict:
    """Run ``link_fuzz_bench`` on a ``build_fuzz`` design: at least ``frames`` frames and
    ``bad_frames`` bad ones (every bad case is followed by a good request) drawn from
    ``seed``, INFER frames carrying ``images`` random images (``fuzz_images``)
    checked against the golden model. ``margin``: the fewest cycles between two moments
    whose order decides a reply (``link_model.Device.margin``; 0: two bit periods).
    ``answers`` replaces the golden model's (class, readout) per image (to show that a
    wrong expectation fails the run). ``fixed``: cases of ``link_model.Fuzzer.FIXED``
    (bugs once found) to run first, each followed by a good request.

    Returns the bench's record (``passed``, ``frames``, ``bad_frames``,
    ``answered_as_expected``, ``hangs``, ``wrong_answers``, ``failures``, ``kinds``,
    ``error_replies``, ``cycles``, ``wall_s``, ...) with ``frames_per_second`` (frames over
    the bench's wall time), ``cocotb_tests``, ``cocotb_failed``, ``simulator``,
    ``build_seconds``, ``sim_seconds`` and ``log``."""
    if design.top != FUZZ_TOP:
        raise ParameterError("run_fuzz needs a design from build_fuzz")
    for name, n in (("frames", frames), ("bad_frames", bad_frames)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ParameterError(f"{name} must be a non-negative integer, not {n!r}")
    from .link_model import Fuzzer
    for name in fixed:
        if name not in Fuzzer.FIXED:
            raise ParameterError(f"no fixed fuzz case {name!r}: choose from "
                                 f"{', '.join(Fuzzer.FIXED)}")
    codes = fuzz_images(design.net, images, seed)
    res = golden.run(design.net, codes, lanes=design.lanes)
    stores = design.stores
    identity = host.Identity(host.PROTOCOL_VERSION, bytes.fromhex(design.fingerprint)[:8],
                             design.classes, design.pixels, len(stores),
                             layout_id(stores) if stores else host.NO_LAYOUT).encode()
    samples = golden_samples(res, codes)
    if answers is not None:
        if len(answers) != len(samples):
            raise ParameterError(f"{len(answers)} answers for {len(samples)} images")
        for s, (prediction, readout) in zip(samples, answers, strict=True):
            s["prediction"], s["readout"] = int(prediction), [int(v) for v in readout]
    work = design.work
    cfg = {"period_ns": PERIOD_NS, "divisor": design.divisor,
           "timeout_cycles": design.timeout_cycles,
           "read_timeout_cycles": read_timeout_cycles(design, res),
           "pixels": design.pixels, "classes": design.classes, "identity": identity.hex(),
           "stores": [{"depth": s.depth, "bytes_per_word": s.bytes_per_word,
                       "data": s.encode().hex()} for s in stores],
           "images": samples, "seed": int(seed), "frames": int(frames),
           "bad_frames": int(bad_frames), "margin": int(margin), "fixed": list(fixed),
           "progress": str((work / "progress").resolve()),
           "out": str((work / "record.json").resolve())}
    (work / "bench.json").write_text(json.dumps(cfg))
    (work / "record.json").unlink(missing_ok=True)
    (work / "progress").unlink(missing_ok=True)
    results = (work / "fuzz-results.xml").resolve()
    t = time.time()
    _run_bench(design.runner, design.simulator, design.env, FUZZ_TOP, work, False, frames,
               progress, module=FUZZ_BENCH, results_xml=str(results))
    sim_s = time.time() - t
    try:
        record = json.loads((work / "record.json").read_text())
    except FileNotFoundError:
        raise SimulatorError(f"the {design.simulator} fuzz run wrote no record; see "
                             f"{work / 'test.log'}") from None
    from cocotb_tools.check_results import get_results
    try:
        tests, failed = get_results(results)
    except RuntimeError as exc:
        raise SimulatorError(f"the {design.simulator} run left no results: {exc}") from None
    record.update(cocotb_tests=tests, cocotb_failed=failed, simulator=design.simulator,
                  build_seconds=design.build_seconds, sim_seconds=sim_s,
                  frames_per_second=record["frames"] / max(record["wall_s"], 1e-9),
                  log=str(work / "test.log"))
    return record


# -- the fuzzed designs (benchmarks/link_fuzz.py, hwsnn bench) ----------------------------
FUZZ_DESIGNS = {
    "small": "a random 5-pixel, 5-class GN network, 1 lane",
    "small-store": "the same with every projection's weights in a run-time store "
                   "(4 stores: LOAD, COMMIT), 2 lanes",
    "digits-mlp": "the bundled digits MLP (64 pixels, 10 classes), GN T=2 τ=4, 4 lanes",
    "digits-mlp-spram": "the digits MLP as the iCEBreaker builds the MNIST-shaped design: "
                        "input weights in SB_SPRAM256KA tiles (Yosys's model) loaded over "
                        "the link, an 8-lane multiply-accumulate input stage, 2 lanes",
}


def fuzz_design(name: str):
    """The QNet of a design and the link's arguments (``build_fuzz``, ``build_link``)."""
    from ..frontends.pytorch import trace
    from ..models import BUNDLED
    from ..snn.convert import convert
    from ..snn.quantize import quantize

    if name.startswith("small"):
        from ..snn.random_nets import random_qnet
        net = random_qnet(random.Random(33), "gn")
        kw = {"lanes": 2, "loadable": [(p.name, k) for p in net.populations
                                       for k in range(len(p.projections))]} \
            if name == "small-store" else {}
        return net, kw
    spec = BUNDLED["digits-mlp"]
    graph = trace(spec.load(), torch.zeros(2, *spec.input_shape))
    net = quantize(convert(graph, method="gn", timesteps=2, group_size=4, progress=False))
    kw = {"lanes": 4} if name == "digits-mlp" else {
        "lanes": 2, "loadable": [(net.populations[0].name, 0)], "primitives": True,
        "input_lanes": 8}
    return net, kw


# ---------------------------------------------------------------------------------------
# End-to-end throughput of a board build's link (benchmarks/link_throughput.py, bench).


def link_throughput(directory, board: str, samples: int = 200, sequential: int = 20,
                    work=None) -> dict:
    """Images per second end to end through the link of ``hwsnn build DIR --board
    BOARD`` (its network, lanes, input stage, run-time weight stores, the link at the
    build's clock and baud rate, read from ``DIR/build/BOARD/report.json``), simulated in
    Verilator under ``sim/link_bench.py`` with the real host client: the weights loaded
    over the link, then ``samples`` test images pipelined and packed
    (``Client.infer_many``), and ``sequential`` one at a time as plain INFER frames, every
    answer checked against the golden model. Images per second = images × clock /
    simulated cycles from the first byte written to the last reply byte read."""
    import tempfile

    from ..flow.build import DEFAULT_BAUD, lanes_by_population
    from ..frontends import data
    from ..snn.qnet import load
    directory = Path(directory)
    report = directory / "build" / board / "report.json"
    if not report.is_file():
        raise ParameterError(f"no build for {board} in {directory}: run 'hwsnn build "
                             f"{directory} --board {board}' first")
    rep = json.loads(report.read_text())
    net = load(directory)
    clk_hz = rep["clock_mhz"] * 1e6
    baud = rep.get("baud") or DEFAULT_BAUD
    lanes = set(lanes_by_population(net, rep["lanes"]).values())
    if len(lanes) != 1:
        raise ParameterError("link_throughput takes one lane count for every population")
    loadable = [tuple(k) for k in rep.get("loadable", [])]
    x, _ = data.load_for(tuple(net.input.shape), "test", None, meta=net.metadata,
                         value_range=(net.input.lo, net.input.hi))
    codes = golden.encode(net, x[:max(samples, sequential)])
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="hwsnn-link-"))
    t = time.time()
    design = build_link(net, work, lanes=lanes.pop(), divisor=int(clk_hz // baud),
                        timeout_bytes=20, loadable=loadable,
                        primitives=bool(loadable) and rep["device"].startswith("iCE40UP"),
                        input_lanes=rep.get("input_lanes", 0))
    build_s = time.time() - t
    runs = {}
    for mode, n in (("pipelined", samples), ("sequential", sequential)):
        if n <= 0:
            continue
        r = run_link(design, codes[:n], faults=False, throughput=mode)
        if not r["passed"]:
            raise SimulatorError(f"the {mode} link run failed: "
                                 f"{r['failed'][:1] or r['crashed']}")
        tp = r["throughput"]
        runs[mode] = {
            "samples": n, "cycles_elapsed": tp["cycles_elapsed"],
            "images_per_second": n * clk_hz / tp["cycles_elapsed"],
            "bytes_per_image": tp["bytes_sent"] / n,
            "inference_us_mean": sum(tp["inference_cycles"]) / n / clk_hz * 1e6,
            "all_golden": True, "sim_seconds": r["sim_seconds"]}
    pixels = int(codes[0].numel())
    compute_s = runs[next(iter(runs))]["inference_us_mean"] * 1e-6 if runs else 0.0
    # Protocol 2 at 115200 baud, from the same compute time: a plain frame, the
    # computation and the reply, one after the other.
    before = 1 / ((pixels + 5 + 5 + host.INFER_HEADER_LEN + 4 * net.classes) * 10 / 115200
                  + compute_s)
    return {"directory": str(directory), "board": board, "device": rep["device"],
            "clock_mhz": rep["clock_mhz"], "baud": baud, "divisor": int(clk_hz // baud),
            "pixels": pixels, "lanes": rep["lanes"], "input_lanes": rep.get("input_lanes", 0),
            "weights_loaded_over_the_link": bool(loadable), "load_bytes": rep.get("load_bytes"),
            "verilator_build_seconds": build_s, "runs": runs,
            "protocol2_115200_images_per_second": before}
