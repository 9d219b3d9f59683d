"""Run the layer-serial processor (``hdl.processor``) in Verilator or Icarus through the
free-running cocotb bench (``freerun``) and compare it with the golden model.

    from hwsnn.sim.serial import simulate_serial
    report = simulate_serial(plan, codes, "build/serial-sim")

The processor's Verilog gets the ports of a dataflow network's top (``pixels``, ``o``,
``cycles``, and one work counter, ``work_processor``: its busy cycles), so the wrapper and
the bench that run the dataflow designs run it as they are.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import ParameterError
from ..hdl import verilog
from ..hdl.processor import SerialProcessor
from ..hdl.serial import SerialPlan
from ..snn import golden
from ..snn.qnet import PIXEL_BITS
from .compare import compare
from .freerun import wrapper_name, wrapper_verilog
from .run import FREE_BENCH_MODULE, PERIOD_NS, SIMULATORS, _build, _run_bench, tool_env

TOP = "hwsnn_serial"
SDRAM_COUNTERS = ("violations", "activates", "reads", "writes", "refreshes")


def description(plan: SerialPlan, processor: SerialProcessor) -> dict:
    """The ports of the processor's top, in the form of a dataflow design's description
    (``hdl.verilog.describe``) as far as the bench and ``compare`` read it."""
    o_layout = processor.o.payload.shape()
    net = plan.net
    return {
        "format": "hwsnn-ports", "version": 1, "top": TOP, "architecture": "serial",
        "made_from": {"lanes": {p.name: plan.lanes for p in net.populations},
                      "method": net.method, "timesteps": net.timesteps},
        "ports": [
            {"name": "clk", "direction": "input", "width": 1},
            {"name": "rst", "direction": "input", "width": 1},
            {"name": "pixels__valid", "direction": "input", "width": 1},
            {"name": "pixels__ready", "direction": "output", "width": 1},
            {"name": "pixels__payload", "direction": "input", "width": PIXEL_BITS},
            {"name": "o__valid", "direction": "output", "width": 1},
            {"name": "o__ready", "direction": "input", "width": 1},
            {"name": "o__payload", "direction": "output", "width": o_layout.size,
             "fields": verilog._fields(o_layout)},
            {"name": "cycles", "direction": "output", "width": len(processor.cycles)},
            {"name": "work_processor", "direction": "output",
             "width": len(processor.work_processor)},
            # (external: the SDRAM model's counters, from the simulation's top)
            *({"name": f"work_sdram_{c}", "direction": "output", "width": 32}
              for c in (SDRAM_COUNTERS if plan.external else ()))],
        "readout": {"population": net.output.name, "classes": net.output.size},
        "taps": [],
    }


def sdram_hex(plan: SerialPlan, chip=None) -> str:
    """The SDRAM model's ``$readmemh`` image of ``plan`` (external): the controller's word
    address row | bank | column placed at the model's index bank | row | column, a row
    (512 words) at a time."""
    from ..hdl.sdram import ULX3S_SDRAM
    chip = chip or ULX3S_SDRAM
    image = plan.sdram_image()
    cols, banks = 1 << chip.col_bits, 1 << chip.bank_bits
    hexes = np.char.mod("%04x", image)
    lines = []
    for at in range(0, len(image), cols):
        page = at >> chip.col_bits
        bank, row = page % banks, page // banks
        index = (bank << (chip.row_bits + chip.col_bits)) | (row << chip.col_bits)
        lines.append(f"@{index:x}")
        lines.extend(hexes[at:at + cols].tolist())
    return "\n".join(lines) + "\n"


def simulate_serial(plan: SerialPlan, codes: torch.Tensor, work_dir, *,
                    simulator: str = "verilator", stall: float = 0.0, seed: int = 0,
                    progress: bool = False, clock_hz: float = 60e6) -> dict:
    """Run ``codes`` through the processor of ``plan``; returns the comparison with the
    golden model (``exact``, the first divergence), the busy cycles per sample against
    the plan's ideal, and the wall times. A plan with external memory runs against the
    SDRAM's timing-checking model (``sim/sdram_model.v``), its weights preloaded as the
    host link would have loaded them, the controller counting delays at ``clock_hz``."""
    if simulator not in SIMULATORS:
        raise ParameterError(f"unknown simulator {simulator!r}: choose from "
                             f"{', '.join(SIMULATORS)}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    samples = len(codes)
    t = time.time()
    # (the weights in the bitstream's memories: the bench has no load port to fill
    # run-time stores; the tests load them over the link)
    plan = plan.with_loadable(False) if not plan.external else plan
    extra = []
    if plan.external:
        from .sdram import MODEL, chip_wrapper
        processor = SerialProcessor(plan, clock_hz=clock_hz)
        image = work / "sdram.hex"
        image.write_text(sdram_hex(plan, processor.chip))
        core = f"{TOP}_core"
        ports = [(p["direction"], p["width"], p["name"])
                 for p in description(plan, processor)["ports"]]
        # (the link's inputs held at 0: the image is preloaded)
        tied = ["committed", *(f"load__{n}" for n in
                               processor.signature.members["load"].signature.members)]
        text = verilog.to_verilog(processor, core) + chip_wrapper(
            TOP, core, ports, processor.chip, clock_hz, str(image.resolve()),
            io_registers=processor.io_registers, tied_inputs=tied, counters="work_sdram_")
        extra = [MODEL]
    else:
        processor = SerialProcessor(plan)
        text = verilog.to_verilog(processor, TOP)
    source = work / f"{TOP}.v"
    if not source.is_file() or source.read_text() != text:  # else keep the build
        source.write_text(text)
    desc = description(plan, processor)
    desc_path = work / f"{TOP}.json"
    desc_path.write_text(json.dumps(desc))
    ref = golden.run(plan.net, codes, lanes=plan.lanes)
    ideal = plan.ideal_cycles(ref, codes)
    stim, events = (work / "stim.hex").resolve(), (work / "events.txt").resolve()
    flat = codes.reshape(-1).tolist()
    stim.write_text("".join(f"{v:x}\n" for v in flat))
    wrapper = work / f"{wrapper_name(TOP)}.v"
    wtext = wrapper_verilog(desc, TOP)
    if not wrapper.is_file() or wrapper.read_text() != wtext:
        wrapper.write_text(wtext)
    per_sample = int(ideal.max()) * 2 + 10_000
    if plan.external:  # (the SDRAM's power-up, then every tile's weights and planes)
        t_init = processor.chip.timing(clock_hz).init
        per_sample += 2 * t_init + 4 * sum(plan.transfers().values())
    limit = int((per_sample * samples + 20_000) / (1 - stall) ** 2)
    for stale in ("record.json", "progress", "events.txt"):
        (work / stale).unlink(missing_ok=True)
    counters = [f"work_sdram_{c}" for c in SDRAM_COUNTERS] if plan.external else []
    cfg = {"classes": plan.net.classes, "taps": [], "work": ["work_processor", *counters],
           "stall": stall, "seed": seed, "max_cycles": limit, "idle_cycles": per_sample,
           "period_ns": PERIOD_NS, "out": str((work / "record.json").resolve()),
           "progress": str((work / "progress").resolve()), "samples": samples,
           "per_sample": len(flat) // samples, "events": str(events),
           "desc": str(desc_path.resolve())}
    (work / "bench.json").write_text(json.dumps(cfg))
    generate_s = time.time() - t
    env = tool_env(simulator)
    t = time.time()
    runner = _build(simulator, env, source, wrapper_name(TOP), work, False,
                    extra_sources=[wrapper, *extra], build_name="build-free", public=False)
    build_s = time.time() - t
    t = time.time()
    _run_bench(runner, simulator, env, wrapper_name(TOP), work, False, samples, progress,
               module=FREE_BENCH_MODULE, plusargs=[f"+hwsnn_stim={stim}",
                                                   f"+hwsnn_events={events}"])
    sim_s = time.time() - t
    record = json.loads((work / "record.json").read_text())
    cmp = compare(record, desc, ref.readout.tolist(), ref.predictions.tolist(), None)
    busy = record["work"].get("work_processor")
    first = cmp.first
    sdram = {c: record["work"][f"work_sdram_{c}"] for c in SDRAM_COUNTERS} if counters \
        else None
    return {
        # (external: the chip's counters over the run, and the words the plan moves a
        # sample: weights and plane reads are the chip's reads, plane writes its writes)
        "sdram": sdram, "sdram_plan": plan.transfers() if plan.external else None,
        "exact": cmp.exact, "finished": cmp.finished, "samples": samples,
        "mismatches": cmp.mismatches,
        "first_divergence": None if first is None else first.describe(),
        "busy_cycles_per_sample": busy / samples if busy is not None else None,
        "ideal_cycles_per_sample": float(ideal.double().mean()),
        "edges": record["cycles"], "generate_s": generate_s, "build_s": build_s,
        "sim_s": sim_s,
    }


def serial_plan_of(directory, lanes: int | None = None) -> SerialPlan:
    """The processor plan to simulate for conversion directory ``directory``: ``lanes``
    given, that many lanes, one tile per population, the input stage run every step;
    else the plan of the newest layer-serial build in ``directory/build`` (its report's
    plan arguments)."""
    from ..errors import HwsnnError
    from ..snn.qnet import load
    net = load(directory)
    if lanes is not None:
        return SerialPlan(net, lanes=lanes, keep_current=False)
    reports = sorted(Path(directory).glob("build/*/report.json"),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for report in reports:
        try:
            r = json.loads(report.read_text())
        except (OSError, ValueError):
            continue
        if r.get("arch") == "serial" and "plan" in r.get("serial", {}):
            return SerialPlan(net, **r["serial"]["plan"])
    raise HwsnnError(f"{directory} has no layer-serial build: give --lanes P (the processor's "
                     f"lanes), or build it first ('hwsnn build {directory} --board B --arch "
                     "serial')")


def simulate_serial_directory(directory, *, lanes: int | None = None, samples: int = 100,
                              offset: int = 0, data_path: str | None = None,
                              simulator: str = "verilator", stall: float = 0.0,
                              seed: int = 0, progress: bool = False) -> dict:
    """``hwsnn sim DIR --arch serial``: the processor of ``serial_plan_of(directory,
    lanes)`` on test samples ``offset`` .. ``offset + samples`` of the network's data (or
    ``data_path``), in ``directory/sim/serial-SIMULATOR``."""
    from ..flow.build import latency_codes
    plan = serial_plan_of(directory, lanes)
    codes, what = latency_codes(plan.net, data_path)
    if not 0 <= offset < len(codes):
        raise ParameterError(f"--offset {offset}: the test data has {len(codes)} samples")
    if samples < 1:
        raise ParameterError(f"--samples must be a positive integer, not {samples}")
    codes = codes[offset:offset + samples]
    r = simulate_serial(plan, codes, Path(directory) / "sim" / f"serial-{simulator}",
                        simulator=simulator, stall=stall, seed=seed, progress=progress)
    ideal = r["ideal_cycles_per_sample"]
    return {**r, "design": str(directory), "simulator": simulator, "data": what,
            "offset": offset, "plan": plan.arguments(),
            "cycle_ratio": r["busy_cycles_per_sample"] / ideal if ideal else None}
