"""The UART host link in cocotb: write the Verilog of a ``HostLink`` around a QNet, build it
with Verilator or Icarus, and run ``link_bench`` (the real ``hwsnn.host.Client`` over a
simulated serial line) on samples, against the golden model.

    from hwsnn.sim.link_run import simulate_link
    record = simulate_link(net, codes, "build/link", simulator="verilator")
    assert record["passed"]

``build_link`` and ``run_link`` split the two, so that one build serves several runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import golden, host
from ..errors import ParameterError
from ..hdl.link import HostLink
from ..hdl.plan import layout_id
from ..hdl.verilog import fingerprint
from ..qnet import QNet
from .run import PERIOD_NS, SIMULATORS, SimulatorError, _build, _run_bench, tool_env

LINK_TOP = "hwsnn_link"
LINK_BENCH = "link_bench"
BAUD = 115200  # nominal: the clock is ``divisor`` times the baud rate


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


def link_verilog(net: QNet, *, lanes: int = 1, divisor: int = 4, timeout_bytes: int = 3,
                 loadable=(), primitives: bool = False,
                 input_lanes: int = 0) -> tuple[HostLink, str]:
    """The link and its Verilog (module ``hwsnn_link``: clk, rst, rx, tx, busy,
    last_error), at ``divisor`` clock cycles per bit. ``loadable``: projections whose
    weights are loaded over the link (``hdl.store``); ``primitives``: those stores as
    UP5K ``SB_SPRAM256KA`` instances rather than behavioural memories."""
    from amaranth.back import verilog

    from ..hdl.store import UP5KPrimitives
    link = HostLink(net, clk_hz=divisor * BAUD, baud=BAUD, lanes=lanes,
                    timeout_bytes=timeout_bytes, loadable=loadable, input_lanes=input_lanes)
    return link, verilog.convert(link, name=LINK_TOP, emit_src=False,
                                 platform=UP5KPrimitives() if primitives else None)


def build_link(net: QNet, work, *, simulator: str = "verilator", lanes: int = 1,
               divisor: int = 4, timeout_bytes: int = 3, loadable=(),
               primitives: bool = False, quick_build: bool = False,
               input_lanes: int = 0) -> LinkDesign:
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
                              input_lanes=input_lanes)
    source = work / f"{LINK_TOP}.v"
    if not source.is_file() or source.read_text() != text:
        source.write_text(text)
    extra = []
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
             load_chunk: int = 64) -> dict:
    """Run the bench on ``codes`` ([B, *input shape], 0..255): IDENTIFY, every sample in
    turn, STATUS, and with ``faults`` the corrupt-frame cases, each followed by an INFER
    that must give the golden answer again; a design with run-time weight stores gets
    them first, in LOAD frames of ``load_chunk`` bytes. ``expected`` replaces the golden model's
    (class, readout) per sample (to show that a wrong expectation fails the run).

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
           "load_chunk": int(load_chunk),
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
