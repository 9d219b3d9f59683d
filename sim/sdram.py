"""The SDRAM controller (``hdl.sdram``) against the chip's simulation model.

``sdram_model.v`` is a Verilog model of an SDR SDRAM that checks the datasheet's timing
as it runs (a violated tRCD, tRP, tRFC, CAS latency, refresh rate or a bus contention is
reported and counted, and ends the simulation when ``FATAL``). ``model_instance`` wires it
to a design's ``pins`` (``hdl.sdram.pin_signature``) inside a Verilog wrapper, clocked by
the inverted clock as the board's SDRAM is. ``simulate_controller`` runs a controller with
random traffic on its ports (``sdram_bench``) and returns what the chip saw and whether
every read returned what was written.

    from hwsnn.sim.sdram import simulate_controller
    record = simulate_controller(SDRAMController(clock_hz=60e6, ports=3), "build/sdram")
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import ParameterError
from ..hdl import verilog
from ..hdl.sdram import SDRAMChip, SDRAMController, command_layout, pin_signature
from .run import SIMULATORS, _build, _run_bench, tool_env

MODEL = Path(__file__).with_name("sdram_model.v")
MODEL_TOP = "hwsnn_sdram_model"
CONTROLLER_TOP = "hwsnn_sdram_ctrl"
BENCH_TOP = "hwsnn_sdram_tb"
COUNTERS = ("violations", "activates", "reads", "writes", "refreshes")


def model_parameters(chip: SDRAMChip, clock_hz: float, *, fatal: bool = True,
                     init_file: str = "") -> dict:
    """The model's parameters for ``chip`` clocked at ``clock_hz``: the datasheet's values,
    not the controller's cycle counts, so that a controller's rounding is checked too."""
    # (the period rounded up: a constraint met at exactly its bound still reads as met)
    ps = math.ceil(1e12 / clock_hz - 1e-6)

    def p(ns):
        return round(ns * 1000)

    return {"ROW_BITS": chip.row_bits, "COL_BITS": chip.col_bits,
            "BANK_BITS": chip.bank_bits, "DQ_BITS": chip.dq_bits, "TCK_PS": ps,
            "T_RCD_PS": p(chip.t_rcd), "T_RP_PS": p(chip.t_rp), "T_RC_PS": p(chip.t_rc),
            "T_RAS_PS": p(chip.t_ras), "T_RRD_PS": p(chip.t_rrd), "T_WR_PS": p(chip.t_wr),
            "T_RFC_PS": p(chip.t_rfc), "T_MRD_CK": chip.t_mrd_ck,
            "T_REFI_PS": p(chip.t_refi), "T_INIT_PS": p(chip.t_init),
            "INIT_REFRESHES": chip.init_refreshes, "FATAL": int(fatal),
            "INIT_FILE": init_file}


def model_instance(chip: SDRAMChip, clock_hz: float, pins: str, *, name: str = "chip",
                   counters: str | None = None, **kw) -> str:
    """Verilog: the model, named ``name``, on the active-high pin wires ``{pins}cs`` …
    (declared by the caller); its clock is ``~clk``; its counters on wires
    ``{counters}violations`` … when ``counters`` is given (else left open)."""
    params = model_parameters(chip, clock_hz, **kw)
    plist = ",\n    ".join(f".{k}({json.dumps(v) if isinstance(v, str) else v})"
                           for k, v in params.items())
    outs = "".join(f", .{c}({counters}{c})" if counters is not None else f", .{c}()"
                   for c in COUNTERS)
    return (f"  {MODEL_TOP} #(\n    {plist}\n  ) {name} (\n"
            f"    .clk(~clk), .cke({pins}clk_en), .cs_n(~{pins}cs), .ras_n(~{pins}ras),\n"
            f"    .cas_n(~{pins}cas), .we_n(~{pins}we), .ba({pins}ba), .a({pins}a),\n"
            f"    .dqm({pins}dqm), .dq_in({pins}dq_o), .dq_oe({pins}dq_oe),\n"
            f"    .dq_out({pins}dq_i), .dq_drive(){outs});\n")


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def _pin_widths(chip: SDRAMChip) -> dict[str, int]:
    """The chip's signals as the controller drives them (``pin_signature``): their widths."""
    from amaranth.hdl import Shape
    return {name: Shape.cast(member.shape).width
            for name, member in pin_signature(chip).members.items()}


def chip_wrapper(top: str, core: str, ports, chip: SDRAMChip, clock_hz: float,
                 init_file: str = "", *, io_registers: bool = True, tied_inputs=(),
                 counters: str | None = None, core_pins: str = "sdram__",
                 fatal: bool = True) -> str:
    """Verilog: module ``top`` with ``ports`` ((direction, width, name), the design's
    own, ``clk`` first), wrapping ``core`` (the same ports, and its SDRAM signals
    ``sdram__*``: ``hdl.sdram.pin_signature``) and the chip's model on those signals
    (its image ``init_file``); with ``io_registers`` through a register each way, as a
    board's I/O cells hold them (``hdl.sdram``). ``tied_inputs``: core inputs held at 0;
    ``counters``: the prefix of ``top``'s outputs that are the model's counters (listed in
    ``ports``; not the core's); ``core_pins``: the prefix of the core's SDRAM signals;
    ``fatal``: the model ends the simulation at a violation."""
    widths = _pin_widths(chip)
    decl = [f"{d} {_range(w)}{n}" for d, w, n in ports]
    conn = [f".{n}({n})" for _, _, n in ports
            if counters is None or not n.startswith(counters)]
    conn += [f".{core_pins}{n}(sdram__{n})" for n in widths]
    conn += [f".{n}(0)" for n in tied_inputs]
    wires = "".join(f"  wire {_range(w)}sdram__{n};\n" for n, w in widths.items())
    if io_registers:  # (the core's sdram__* and the chip's pin__*: a register apart)
        wires += "".join(f"  reg {_range(w)}pin__{n};\n" for n, w in widths.items())
        wires += ("  always @(posedge clk) begin\n"
                  + "".join(f"    pin__{n} <= sdram__{n};\n" for n in widths if n != "dq_i")
                  + f"  end\n  wire {_range(chip.dq_bits)}chip_dq;\n"
                  + "  always @(posedge clk) pin__dq_i <= chip_dq;\n"
                  + "  assign sdram__dq_i = pin__dq_i;\n")
        pins = "pin__"
    else:
        pins = "sdram__"
    model = model_instance(chip, clock_hz, pins, init_file=init_file, counters=counters,
                           fatal=fatal)
    if io_registers:
        model = model.replace(f".dq_out({pins}dq_i)", ".dq_out(chip_dq)")
    return (f"module {top} (\n  " + ",\n  ".join(decl) + "\n);\n" + wires
            + f"  {core} core (\n    " + ",\n    ".join(conn) + "\n  );\n"
            + model + "endmodule\n")


def bench_verilog(ctrl: SDRAMController) -> str:
    """The wrapper ``hwsnn_sdram_tb``: the controller's ports, the chip inside (its
    counters as ``chip_violations`` …; a violation counted, not fatal)."""
    chip = ctrl.chip
    layout_bits = len(ctrl.cmd(0).payload.as_value())
    ports = [("input", 1, "clk"), ("input", 1, "rst"), ("output", 1, "ready")]
    for i in range(ctrl.ports):
        ports += [("input", 1, f"cmd{i}__valid"), ("output", 1, f"cmd{i}__ready"),
                  ("input", layout_bits, f"cmd{i}__payload"),
                  ("output", 1, f"rdata{i}__valid"), ("input", 1, f"rdata{i}__ready"),
                  ("output", chip.dq_bits, f"rdata{i}__payload")]
    ports += [("output", 32, f"chip_{c}") for c in COUNTERS]
    return chip_wrapper(BENCH_TOP, CONTROLLER_TOP, ports, chip, ctrl.clock_hz,
                        io_registers=ctrl.io_registers, counters="chip_",
                        core_pins="pins__", fatal=False)


def simulate_controller(ctrl: SDRAMController, work_dir, *, simulator: str = "icarus",
                        traffic: str = "random", ops: int = 2000, stall: float = 0.2,
                        seed: int = 0, max_cycles: int = 400_000) -> dict:
    """Run ``ctrl`` against the chip's model. ``traffic``: ``random`` (every port reads and
    writes its own rows, which share the chip's banks with the other ports', with random
    stalls of ``stall``) or ``stream`` (port 0 writes ``ops`` consecutive words, then
    reads them back, never stalled: the controller's peak). Returns the record: the
    model's counters (``violations`` first), ``mismatches`` (reads that did not return
    the last word written), and for ``stream`` the cycles of each phase."""
    if simulator not in SIMULATORS or simulator == "yosys":
        raise ParameterError(f"the SDRAM bench runs in icarus or verilator, not {simulator!r}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    env = tool_env(simulator)
    source = work / f"{CONTROLLER_TOP}.v"
    text = verilog.to_verilog(ctrl, CONTROLLER_TOP)
    if not source.is_file() or source.read_text() != text:
        source.write_text(text)
    tb = work / f"{BENCH_TOP}.v"
    tb.write_text(bench_verilog(ctrl))
    chip = ctrl.chip
    cfg = {"ports": ctrl.ports, "traffic": traffic, "ops": ops, "stall": stall, "seed": seed,
           "max_cycles": max_cycles, "addr_bits": chip.row_bits + chip.bank_bits
           + chip.col_bits, "col_bits": chip.col_bits, "bank_bits": chip.bank_bits,
           "dq_bits": chip.dq_bits,
           "fields": {n: [f.offset, f.width] for n, f in command_layout(chip)},
           "record": str((work / "record.json").resolve())}
    (work / "bench.json").write_text(json.dumps(cfg))
    record = work / "record.json"
    if record.exists():
        record.unlink()
    runner = _build(simulator, env, source, BENCH_TOP, work, False,
                    extra_sources=[tb, MODEL], build_name=f"build-{simulator}")
    _run_bench(runner, simulator, env, BENCH_TOP, work, False, 1, False,
               module="sdram_bench", results_xml=str((work / "results.xml").resolve()))
    return json.loads(record.read_text())
