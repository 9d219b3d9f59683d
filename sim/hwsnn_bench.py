"""cocotb bench: drive a generated hwsnn network through its ports and record what it does.

The bench runs inside the simulator and imports nothing from hwsnn (so that it starts
fast and sees only the Verilog): ``HWSNN_BENCH`` names a JSON file with the pixel codes
of every sample, the tap ports to watch, optional random stalls, a cycle limit and where
to write. It feeds the pixels, takes the readout beats, and records every transfer with
the number of the rising clock edge at which it happened (edge 0 is the first after
reset). An output seen as X or Z (after reset) ends the run, and the record says which
and when; so does, when the configuration asks for it (``watch``), the first tap event
that differs from the golden model's. ``hwsnn.sim.run`` compares the record against the
golden model.

Signals are driven half a period before a rising edge and sampled in the read-only phase
just before it, so a recorded transfer is exactly what the edge sees.
"""

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly
from cocotb.utils import get_sim_time
from tap_watch import TapWatch

RESET_CYCLES = 3


class Unknown(Exception):
    """An output the bench reads is X or Z."""

    def __init__(self, port, value):
        super().__init__(f"{port} is {value}")
        self.port, self.value = port, str(value)


def _int(handle, name):
    value = handle.value
    if not value.is_resolvable:
        raise Unknown(name, value)
    return int(value)


@cocotb.test()
async def run_samples(dut):
    with open(os.environ["HWSNN_BENCH"]) as f:
        cfg = json.load(f)
    samples = cfg["pixels"]
    beats_per_sample = cfg["classes"]
    period = cfg.get("period_ns", 10)
    stall = float(cfg.get("stall", 0.0))
    rng = random.Random(cfg.get("seed", 0))
    limit = int(cfg["max_cycles"])
    idle_limit = int(cfg.get("idle_cycles", limit))  # a design silent this long has hung
    progress_path = cfg.get("progress")

    taps = [(name, getattr(dut, f"{name}__valid"), getattr(dut, f"{name}__payload"))
            for name in cfg.get("taps", [])]
    tap_log = {name: [] for name, _, _ in taps}

    cocotb.start_soon(Clock(dut.clk, period, unit="ns").start())
    dut.rst.value = 1
    dut.pixels__valid.value = 0
    dut.pixels__payload.value = 0
    dut.o__ready.value = 0
    for _ in range(RESET_CYCLES):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    flat = [v for sample in samples for v in sample]
    per_sample = len(samples[0]) if samples else 0
    want_beats = beats_per_sample * len(samples)
    pixel_cycles = []  # edge at which each sample's first pixel was taken
    readout = []  # [edge, payload]
    done_samples = 0
    next_px = 0
    cycle = 0
    valid_now = 0
    ready_now = 0
    t_start = time.time()
    t0_edge_ns = None
    last_activity = 0
    unknown = None  # the first output seen as X or Z: the bench stops there
    watch = TapWatch(cfg["watch"]) if cfg.get("watch") else None  # stop at a divergence
    diverged = False
    while (len(readout) < want_beats and cycle < limit and cycle - last_activity < idle_limit
           and unknown is None and not diverged):
        await FallingEdge(dut.clk)
        # Drive for the coming edge.
        want_valid = int(next_px < len(flat) and not (stall and rng.random() < stall))
        if want_valid:
            dut.pixels__payload.value = flat[next_px]
        if want_valid != valid_now:
            dut.pixels__valid.value = want_valid
            valid_now = want_valid
        want_ready = int(not (stall and rng.random() < stall))
        if want_ready != ready_now:
            dut.o__ready.value = want_ready
            ready_now = want_ready
        await ReadOnly()
        if t0_edge_ns is None:
            t0_edge_ns = get_sim_time("ns") + period / 2
        # What the coming edge (number ``cycle``) does.
        try:
            if valid_now and _int(dut.pixels__ready, "pixels__ready"):
                if next_px % per_sample == 0:
                    pixel_cycles.append(cycle)
                next_px += 1
                last_activity = cycle
            if ready_now and _int(dut.o__valid, "o__valid"):
                readout.append([cycle, _int(dut.o__payload, "o__payload")])
                last_activity = cycle
                if len(readout) % beats_per_sample == 0:
                    done_samples += 1
                    if progress_path:
                        with open(progress_path, "w") as f:
                            f.write(str(done_samples))
            for name, valid, payload in taps:
                if _int(valid, f"{name}__valid"):
                    raw = _int(payload, f"{name}__payload")
                    tap_log[name].append([cycle, raw])
                    last_activity = cycle
                    if watch is not None:
                        diverged = watch.event(name, raw, cycle)
        except Unknown as exc:
            unknown = {"port": exc.port, "value": exc.value, "cycle": cycle}
        cycle += 1
    await FallingEdge(dut.clk)
    work = {name: getattr(dut, name).value for name in cfg.get("work", [])}
    work = {name: int(v) for name, v in work.items() if v.is_resolvable}
    cycles_port = dut.cycles.value
    result = {
        "finished": len(readout) >= want_beats,
        "cycles": cycle,
        "hung": len(readout) < want_beats and cycle - last_activity >= idle_limit,
        "unknown": unknown,
        "stopped_at": watch.diverged[1] if watch is not None and watch.diverged else None,
        "cycles_port": int(cycles_port) if cycles_port.is_resolvable else None,
        "period_ns": period,
        "t0_edge_ns": t0_edge_ns,
        "pixel_cycles": pixel_cycles,
        "pixels_taken": next_px,
        "readout": readout,
        "taps": tap_log,
        "work": work,
        "wall_s": time.time() - t_start,
    }
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, cfg["out"])
