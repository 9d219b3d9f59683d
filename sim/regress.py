"""Simulation regressions sharded over samples and designs, on Dask workers.

    from hwsnn.sim.regress import regress
    report = regress(["build/mlp", "build/cnn"], simulator="verilator", samples="all")

Each design's test samples are cut into shards of ``shard_size`` (fixed, so the shards,
their stall seeds and so the merged result do not depend on how many workers run them);
every shard is one ``simulate`` call on some worker (``hwsnn.tools.cluster.map_ordered``: a
``LocalCluster`` with one worker per core, or the cluster at ``scheduler``). A worker
keeps its simulator build between shards and runs: each shard runs in a *slot*,
``DIR/sim/SIMULATOR/worker-<i>``, held with a file lock for the shard's time, the same
slot again for the same process where it is free (so Verilator builds once per slot).

The report: per design the merge of its shards (counts summed, the first divergence with
its sample index in the test split and the command that runs it again with waves, cycles
and accuracies weighted by samples) and the shards themselves; everything that depends on
the run (times, which worker ran what, where) is under the top-level key ``timing``, so
``{k: v for k, v in report.items() if k != "timing"}`` is the same for any worker count.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import time
from pathlib import Path

from ..errors import ParameterError

DEFAULT_SHARD_SIZE = 100
MAX_SLOTS = 1024
SEED_STRIDE = 1_000_003  # shard i of a run with seed s stalls with seed s + i * SEED_STRIDE
# What a shard's result keeps of its SimReport (the rest is run-dependent: see _TIMING).
_RESULT = ("samples", "exact", "finished", "mismatches", "readout_mismatches",
           "class_mismatches", "event_mismatches", "checked_taps", "first_divergence",
           "first_divergence_text", "cycles_per_inference", "ideal_cycles_per_inference",
           "latency_cycles", "layers", "bottleneck", "golden_accuracy", "hardware_accuracy",
           "stopped_at")
_TIMING = ("sim_seconds", "build_seconds", "samples_per_second", "log")


def shard_seed(seed: int, index: int) -> int:
    """The stall seed of shard ``index`` (shard 0 has ``seed`` itself, as ``simulate``)."""
    return seed + SEED_STRIDE * index


def shards(offset: int, samples: int, shard_size: int) -> list[tuple[int, int]]:
    """(offset, samples) of each shard of samples [offset, offset + samples)."""
    return [(o, min(shard_size, offset + samples - o))
            for o in range(offset, offset + samples, shard_size)]


def split_size(directory, data_path: str | None = None) -> int:
    """How many samples the test data of conversion directory ``directory`` has."""
    from ..frontends import data
    from ..snn.qnet import load as load_qnet
    net = load_qnet(Path(directory))
    x, _ = data.load_for(tuple(net.input.shape), "test", data_path, meta=net.metadata,
                         value_range=(net.input.lo, net.input.hi))
    return len(x)


# Simulated clock cycles a second, roughly, on the bundled designs (one core): what a run
# is expected to take, to decide whether it is worth a cluster.
RATE_HZ = {"verilator": 250_000, "icarus": 1_500, "icarus-sv": 1_500, "yosys": 50}
# A run expected to take less than this (seconds) is done in one process: a local cluster
# takes some seconds to start, and each of its workers builds the design once.
SERIAL_SECONDS = 30.0
ESTIMATE_SAMPLES = 16


def expected_seconds(directory, simulator: str, samples: int, *, offset: int = 0,
                     data_path: str | None = None, top: str | None = None) -> float:
    """How long simulating ``samples`` test samples from ``offset`` is expected to take:
    the golden model's pipelined ideal cycles on the first few of them (at the design's
    smallest lane count), over the simulator's usual clock rate."""
    import torch

    from ..frontends import data
    from ..hdl import verilog
    from ..snn import golden
    from ..snn.qnet import load as load_qnet
    from .run import find_design
    directory = Path(directory)
    net = load_qnet(directory)
    try:
        made = verilog.read_description(find_design(directory, top))["made_from"]
        lanes = min(made["lanes"].values())
        input_lanes = made.get("input_lanes", 0)
    except Exception:  # noqa: BLE001 - no design yet: it is written with the defaults
        lanes, input_lanes = verilog.DEFAULT_LANES, 0
    x, _ = data.load_for(tuple(net.input.shape), "test", data_path, meta=net.metadata,
                         value_range=(net.input.lo, net.input.hi))
    x = x[offset:offset + min(samples, ESTIMATE_SAMPLES)]
    res = golden.run(net, golden.encode(net, x), lanes=lanes, input_lanes=input_lanes)
    per_sample = float(res.ideal_cycles_bottleneck.to(torch.float64).mean())
    return per_sample * samples / RATE_HZ.get(simulator, RATE_HZ["icarus"])


def resolve_samples(samples, offset: int, total: int) -> int:
    """``samples`` (an int or ``"all"``: the rest of the test split from ``offset``)
    checked against the ``total`` samples there are."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ParameterError(f"--offset must be a non-negative integer, not {offset!r}")
    if samples == "all":
        if offset >= total:
            raise ParameterError(f"--offset {offset}: the test data has {total} samples")
        return total - offset
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ParameterError(f"--samples must be a positive integer or 'all', not "
                             f"{samples!r}")
    if offset + samples > total:
        raise ParameterError(f"--samples {samples} from {offset}: the test data has "
                             f"{total} samples")
    return samples


# ---------------------------------------------------------------------------------------
# On the workers.


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return f"local process {os.getpid()}"


_SLOT_OF: dict[str, int] = {}  # base directory -> the slot this process used last


@contextlib.contextmanager
def work_slot(base: Path):
    """A work directory ``base/worker-<i>`` that no other shard uses meanwhile (an
    exclusive ``flock`` on its ``.lock``, which the kernel drops when a process dies): the
    one this process had last if it is free, else the first free one. A slot whose last
    holder died in a run may still have that run's simulator (an orphan, working in it):
    it is ended first."""
    import fcntl
    base.mkdir(parents=True, exist_ok=True)
    key = str(base.resolve())
    order = [_SLOT_OF[key]] if key in _SLOT_OF else []
    for i in [*order, *range(MAX_SLOTS)]:
        d = base / f"worker-{i}"
        d.mkdir(exist_ok=True)
        f = open(d / ".lock", "a+")  # noqa: SIM115 - held until the block ends
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        break
    else:
        from .run import SimulatorError
        raise SimulatorError(f"all {MAX_SLOTS} work directories under {base} are in use")
    try:
        f.seek(0)
        if f.read().strip():  # its last holder did not end its shard
            _end_orphans(d)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {_worker_name()}\n")
        f.flush()
        _SLOT_OF[key] = i
        try:
            yield d
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def _end_orphans(work: Path) -> None:
    """Kill the processes (left by a worker that died) whose working directory is
    ``work`` or below (its simulator run, its build's compilers) and wait for them to go
    (Linux; elsewhere nothing)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    target = str(work.resolve())
    found = []
    for p in proc.iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(p / "cwd")
            if cwd == target or cwd.startswith(target + os.sep):  # a run, or a build
                os.kill(int(p.name), signal.SIGKILL)
                found.append(int(p.name))
        except OSError:
            continue
    deadline = time.time() + 10
    while found and time.time() < deadline:
        found = [pid for pid in found if (proc / str(pid)).exists()
                 and "Z" not in _state(pid)]
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def run_shard(task: dict) -> dict:
    """One shard: ``simulate`` on its samples in a work slot of this worker. Returns
    ``{"result": ..., "timing": ...}``."""
    from .run import SimulatorError, simulate, tool_env
    started = time.time()
    where = _worker_name()
    try:
        tool_env(task["simulator"])
    except SimulatorError as exc:
        raise SimulatorError(f"worker {where}: {exc}") from None
    base = Path(task["directory"]) / "sim" / task["simulator"]
    with work_slot(base) as work:
        rep = simulate(task["directory"], simulator=task["simulator"],
                       samples=task["samples"], offset=task["offset"], top=task["top"],
                       stall=task["stall"], seed=task["seed"], data_path=task["data_path"],
                       bench=task["bench"], progress=False, waves_on_mismatch=False,
                       work_dir=work)
    r = rep.to_json()
    result = {"index": task["index"], "offset": task["offset"], "seed": task["seed"],
              **{k: r[k] for k in _RESULT},
              "classes": [int(c) for c in rep.comparison.observed_classes]}
    timing = {"index": task["index"], "offset": task["offset"], "worker": where,
              "work_dir": str(work), "started": started, "ended": time.time(),
              **{k: r[k] for k in _TIMING}}
    timing["wall_seconds"] = timing["ended"] - started
    return {"result": result, "timing": timing}


# ---------------------------------------------------------------------------------------
# The regression.


def regress(directory_or_list, *, simulator: str = "verilator", samples=100,
            shard_size: int = DEFAULT_SHARD_SIZE, offset: int = 0,
            scheduler: str | None = None, workers: int | None = None,
            progress: bool = True, data_path: str | None = None, stall: float = 0.0,
            seed: int = 0, top: str | None = None, bench: str = "free") -> dict:
    """Simulate ``samples`` test samples (an int, or ``"all"``: the rest of the test
    split) from ``offset`` of each design (a conversion directory, or a list of them) in
    shards of ``shard_size`` on Dask workers, and merge the shards' comparisons with the
    golden model (see the module's docstring)."""
    from ..snn.qnet import load as load_qnet
    from ..tools.cluster import check_workers, map_ordered
    from .run import ALL_SIMULATORS, BENCHES, ICARUS_GENERATION, ensure_design
    if simulator not in ALL_SIMULATORS:
        raise ParameterError(f"unknown simulator {simulator!r}: choose from "
                             f"{', '.join(ALL_SIMULATORS)}")
    if bench not in BENCHES:
        raise ParameterError(f"unknown bench {bench!r}: choose from {', '.join(BENCHES)}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ParameterError(f"--shard-size must be a positive integer, not {shard_size!r}")
    if not 0.0 <= stall < 1.0:
        raise ParameterError(f"--stall must be a fraction in [0, 1), not {stall}")
    check_workers(workers)
    dirs = [directory_or_list] if isinstance(directory_or_list, (str, os.PathLike)) \
        else list(directory_or_list)
    if not dirs:
        raise ParameterError("no design to simulate")
    # Workers may run elsewhere (another working directory): give them absolute paths.
    dirs = [Path(d).resolve() for d in dirs]
    if data_path is not None and ":" not in str(data_path) and Path(data_path).exists():
        data_path = str(Path(data_path).resolve())
    tasks, plans = [], []
    for k, d in enumerate(dirs):
        net = load_qnet(d)
        # Written here, once, before the workers read it (simulate would write it too).
        json_path, _, _ = ensure_design(d, net, top=top)
        n = resolve_samples(samples, offset, split_size(d, data_path))
        cut = shards(offset, n, shard_size)
        plans.append({"directory": str(d), "design": str(json_path.with_suffix(".v")),
                      "samples": n, "shards": len(cut)})
        for i, (o, m) in enumerate(cut):
            tasks.append({"design": k, "index": i, "directory": str(d),
                          "simulator": simulator, "offset": o, "samples": m, "top": top,
                          "stall": stall, "seed": shard_seed(seed, i),
                          "data_path": data_path, "bench": bench})
    tools = ("iverilog", "vvp") if simulator in ICARUS_GENERATION else ()
    t = time.time()
    out = map_ordered(run_shard, tasks, scheduler=scheduler, workers=workers,
                      desc=f"{simulator} shards", progress=progress, tools=tools)
    wall = time.time() - t
    designs, timing = [], []
    for k, plan in enumerate(plans):
        mine = [o for task, o in zip(tasks, out, strict=True) if task["design"] == k]
        merged = _merge(plan, [o["result"] for o in mine], simulator=simulator,
                        offset=offset, shard_size=shard_size, stall=stall, top=top,
                        data_path=data_path, bench=bench)
        designs.append(merged)
        times = [o["timing"] for o in mine]
        span = max(x["ended"] for x in times) - min(x["started"] for x in times)
        timing.append({"directory": plan["directory"], "wall_seconds": span,
                       "samples_per_second": plan["samples"] / span if span else None,
                       "sim_seconds": sum(x["sim_seconds"] for x in times),
                       "build_seconds": sum(x["build_seconds"] for x in times),
                       "shards": times})
    total = sum(p["samples"] for p in plans)
    report = {"simulator": simulator, "samples": total, "offset": offset,
              "shard_size": shard_size, "stall": stall, "seed": seed, "bench": bench,
              "exact": all(d["exact"] for d in designs), "designs": designs,
              "timing": {"wall_seconds": wall,
                         "samples_per_second": total / wall if wall else None,
                         "scheduler": scheduler,
                         "workers": len({x["worker"] for d in timing for x in d["shards"]}),
                         "designs": timing}}
    for d, tm in zip(designs, timing, strict=True):
        path = Path(d["directory"]) / "sim" / simulator / "regress.json"
        with contextlib.suppress(OSError):
            path.write_text(json.dumps(dict(d, timing=tm), indent=1) + "\n")
    return report


def _weighted(rows: list[dict], key: str, n: list[int]) -> float | None:
    """The mean of ``row[key]`` over ``rows`` weighted by their sample counts ``n``,
    leaving out missing ones."""
    pairs = [(r.get(key), w) for r, w in zip(rows, n, strict=True)]
    pairs = [(v, w) for v, w in pairs if v is not None and not math.isnan(v)]
    weight = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / weight if weight else None


def _merge(plan: dict, parts: list[dict], *, simulator, offset, shard_size, stall, top,
           data_path, bench) -> dict:
    from .compare import Divergence
    n = [p["samples"] for p in parts]
    first, text, reproduce = None, None, None
    bad = next((p for p in parts if p["first_divergence"] is not None), None)
    if bad is not None:
        fd = dict(bad["first_divergence"])
        local = fd["sample"]
        fd["sample"] = bad["offset"] + local
        first = dict(fd, sample_in_shard=local, shard=bad["index"],
                     shard_offset=bad["offset"], shard_samples=bad["samples"])
        text = (Divergence(**fd).describe()
                + f" [clock edge of the run of shard {bad['index']}: samples "
                f"{bad['offset']}-{bad['offset'] + bad['samples'] - 1}]")
        cmd = ["hwsnn", "sim", plan["directory"], "--samples", str(local + 1), "--offset",
               str(bad["offset"])]
        if simulator != "verilator":
            cmd += ["--simulator", simulator]
        if top is not None:
            cmd += ["--top", top]
        if stall:
            cmd += ["--stall", str(stall), "--seed", str(bad["seed"])]
        if data_path is not None:
            cmd += ["--data", str(data_path)]
        if bench != "free":
            cmd += ["--bench", bench]
        reproduce = shlex.join([*cmd, "--waves"])
    elif not all(p["finished"] for p in parts):
        bad = next(p for p in parts if not p["finished"])
        text = f"shard {bad['index']} (from sample {bad['offset']}) did not finish"
    layers = []
    for i, row in enumerate(parts[0]["layers"]):
        rows = [p["layers"][i] for p in parts]
        merged = {"population": row["population"], "lanes": row["lanes"],
                  "ideal_cycles_per_inference":
                  _weighted(rows, "ideal_cycles_per_inference", n)}
        if all("work_cycles_per_inference" in r for r in rows):
            work = _weighted(rows, "work_cycles_per_inference", n)
            merged["work_cycles_per_inference"] = work
            ideal = merged["ideal_cycles_per_inference"]
            merged["ratio"] = work / ideal if ideal else None
        layers.append(merged)
    cycles = _weighted(parts, "cycles_per_inference", n)
    ideal = _weighted(parts, "ideal_cycles_per_inference", n)
    bottleneck = max(layers, key=lambda r: r["ideal_cycles_per_inference"] or 0.0) \
        if layers else None
    return {
        "directory": plan["directory"], "design": plan["design"], "simulator": simulator,
        "bench": bench, "offset": offset, "samples": sum(n), "shard_size": shard_size,
        "shards": len(parts),
        "exact": all(p["exact"] for p in parts),
        "finished": all(p["finished"] for p in parts),
        "mismatches": sum(p["mismatches"] for p in parts),
        "readout_mismatches": sum(p["readout_mismatches"] for p in parts),
        "class_mismatches": sum(p["class_mismatches"] for p in parts),
        "event_mismatches": sum(p["event_mismatches"] for p in parts),
        "checked_taps": parts[0]["checked_taps"],
        "first_divergence": first, "first_divergence_text": text,
        "reproduce": reproduce,
        "cycles_per_inference": cycles, "ideal_cycles_per_inference": ideal,
        "cycle_ratio": cycles / ideal if cycles is not None and ideal else None,
        "latency_cycles": parts[0]["latency_cycles"], "layers": layers,
        "bottleneck": bottleneck["population"] if bottleneck else "",
        "golden_accuracy": _weighted(parts, "golden_accuracy", n),
        "hardware_accuracy": _weighted(parts, "hardware_accuracy", n),
        # The design's class for each sample (fewer where a shard did not finish).
        "classes": [c for p in parts for c in p["classes"]],
        "shard_results": [{k: v for k, v in p.items() if k != "classes"} for p in parts],
    }


def summary_line(d: dict, timing: dict | None = None) -> str:
    """One line for a design of a regression report (and its ``timing`` entry)."""
    head = f"{d['simulator']}: {d['samples']} samples of {d['directory']} in {d['shards']} " \
           f"shard{'s' if d['shards'] != 1 else ''}"
    if d["exact"]:
        verdict = "bit-exact"
    else:
        verdict = f"NOT bit-exact: {d['mismatches']} of {d['samples']} samples differ " \
                  f"({d['class_mismatches']} with another class)"
    parts = [verdict]
    if d["hardware_accuracy"] is not None:
        parts.append(f"accuracy {100 * d['hardware_accuracy']:.2f} % (golden "
                     f"{100 * d['golden_accuracy']:.2f} %)")
    if d["cycles_per_inference"] is not None:
        parts.append(f"{d['cycles_per_inference']:.0f} cycles per inference (ideal "
                     f"{d['ideal_cycles_per_inference']:.0f})")
    if timing is not None and timing.get("samples_per_second"):
        parts.append(f"{timing['wall_seconds']:.1f} s, "
                     f"{timing['samples_per_second']:.1f} samples/s")
    line = f"{head}: " + "; ".join(parts)
    if d["first_divergence_text"]:
        line += f"\n  first divergence: {d['first_divergence_text']}"
    if d["reproduce"]:
        line += f"\n  run it again with waves: {d['reproduce']}"
    return line
