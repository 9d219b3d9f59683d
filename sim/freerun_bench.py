"""cocotb bench for the free-running wrapper (``freerun``): the simulator runs the whole
regression on its own; Python only starts it, reports progress every ``CHECK_CYCLES``
cycles and writes the record (the same keys as ``hwsnn_bench``'s) at the end.

``HWSNN_BENCH`` names the JSON configuration (``hwsnn.sim.run`` writes it): the stimulus
and event files (also passed to the simulator as plusargs), the readout beats to wait
for, the cycle and idle limits, the stall fraction and seed, where to write.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time
from freerun import CHECK_CYCLES, STALL_ONE, parse_events

RESET_CYCLES = 3


@cocotb.test()
async def run_free(dut):
    with open(os.environ["HWSNN_BENCH"]) as f:
        cfg = json.load(f)
    with open(cfg["desc"]) as f:
        desc = json.load(f)
    period = cfg.get("period_ns", 10)
    want = cfg["classes"] * cfg["samples"]
    progress_path = cfg.get("progress")

    cocotb.start_soon(Clock(dut.clk, period, unit="ns").start())
    dut.rst.value = 1
    dut.cfg_beats.value = want
    dut.cfg_limit.value = int(cfg["max_cycles"])
    dut.cfg_idle.value = int(cfg.get("idle_cycles", cfg["max_cycles"]))
    dut.cfg_per_sample.value = int(cfg["per_sample"])
    dut.cfg_stall.value = min(STALL_ONE - 1, round(float(cfg.get("stall", 0.0)) * STALL_ONE))
    dut.cfg_seed.value = int(cfg.get("seed", 0)) & 0xFFFFFFFF
    for _ in range(RESET_CYCLES):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    t0_edge_ns = get_sim_time("ns") + period / 2
    t_start = time.time()
    done = RisingEdge(dut.done)
    while True:
        await First(done, Timer(CHECK_CYCLES * period, unit="ns"))
        if progress_path:
            with open(progress_path, "w") as f:
                f.write(str(int(dut.beats.value) // cfg["classes"]))
        if int(dut.done.value):
            break
    wall = time.time() - t_start
    with open(cfg["events"]) as f:
        record = parse_events(f.read(), desc, want_beats=want)
    record.update(period_ns=period, t0_edge_ns=t0_edge_ns, wall_s=wall)
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, cfg["out"])
