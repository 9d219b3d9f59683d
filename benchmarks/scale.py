"""Simulation at scale, measured in one run: the free-running bench against the per-edge
bench (samples/s and simulated clock in Verilator and Icarus), a whole-test-split
regression of every bundled example design (``rtl/``) on a local Dask cluster, and the
speed-up of 2 Dask workers over 1 (``dask_speedup.py``'s cases: a simulation regression
and, when its case is there, ``explore --pick``).

Writes ``benchmarks/figures/scale.json`` and renders BENCHMARKS.md again from it and the
last full ``hwsnn bench`` run's ``bench.json`` (its section "Simulation at scale").

    .venv/bin/python benchmarks/scale.py            # about 15-20 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

SPEED_DESIGNS = {  # name -> (model, method, T, τ, lanes)
    "digits-mlp GN τ=4 T=2, 16 lanes": ("digits-mlp", "gn", 2, 4, 16),
    "digits-cnn GN τ=4 T=2, 16 lanes": ("digits-cnn", "gn", 2, 4, 16),
}
# Samples per (simulator, bench) and design: the per-edge bench and Icarus are slow.
SPEED_SAMPLES = {("verilator", "free"): (300, 100), ("verilator", "edge"): (30, 6),
                 ("icarus", "free"): (10, 2), ("icarus", "edge"): (10, 2)}


def _design(out: Path, model, method, steps, tau, lanes) -> Path:
    import torch

    from hwsnn.frontends.pytorch import trace
    from hwsnn.hdl import verilog
    from hwsnn.models import BUNDLED
    from hwsnn.snn.convert import convert
    from hwsnn.snn.quantize import quantize
    d = out / f"{model}-{method}-T{steps}-P{lanes}"
    if not (d / "qnet.json").is_file():
        spec = BUNDLED[model]
        graph = trace(spec.load(), torch.zeros(2, *spec.input_shape))
        net = quantize(convert(graph, method=method, timesteps=steps, group_size=tau,
                               progress=False))
        d.mkdir(parents=True, exist_ok=True)
        net.save(d)
        verilog.write(d, net, lanes=lanes)
    return d


def speed(out: Path) -> list[dict]:
    """Each design on each (simulator, bench): built first, so the runs time simulation."""
    from hwsnn.sim.run import simulate
    rows = []
    for name, cfg in SPEED_DESIGNS.items():
        d = _design(out, *cfg)
        k = list(SPEED_DESIGNS).index(name)
        for (sim, bench), counts in SPEED_SAMPLES.items():
            simulate(d, simulator=sim, samples=1, bench=bench, progress=False)  # build
            r = simulate(d, simulator=sim, samples=counts[k], bench=bench,
                         progress=False).to_json()
            rows.append({"design": name, "simulator": sim, "bench": bench,
                         "samples": r["samples"], "exact": r["exact"],
                         "samples_per_second": r["samples_per_second"],
                         "simulated_hz": r["simulated_hz"],
                         "cycles_per_inference": r["cycles_per_inference"]})
            print(f"{name} {sim} {bench}: {r['samples']} samples, exact {r['exact']}, "
                  f"{r['samples_per_second']:.2f} samples/s, "
                  f"{r['simulated_hz'] / 1e3:.1f} kHz", flush=True)
    return rows


def regression(out: Path, workers: int) -> dict:
    """Every example design of rtl/ on the whole digits test split in Verilator on a local
    cluster; Icarus's expected time for the same from its measured rate on a few samples."""
    from hwsnn.sim.regress import regress
    from hwsnn.sim.run import simulate
    from hwsnn.tools.examples import EXAMPLES
    dirs = [_design(out, m, meth, t, tau, lanes) for m, meth, t, tau, lanes
            in EXAMPLES.values()]
    t = time.time()
    r = regress(dirs, simulator="verilator", samples="all", workers=workers, progress=False)
    first = time.time() - t  # with each worker's Verilator builds
    t = time.time()
    r = regress(dirs, simulator="verilator", samples="all", workers=workers, progress=False)
    again = time.time() - t
    designs = [{"design": top, "samples": d["samples"], "exact": d["exact"],
                "cycles_per_inference": d["cycles_per_inference"],
                "hardware_accuracy": d["hardware_accuracy"]}
               for top, d in zip(EXAMPLES, r["designs"], strict=True)]
    icarus = []
    for top, d in zip(EXAMPLES, dirs, strict=True):
        simulate(d, simulator="icarus", samples=1, progress=False)  # build
        s = simulate(d, simulator="icarus", samples=2, progress=False).to_json()
        icarus.append({"design": top, "samples_per_second": s["samples_per_second"],
                       "simulated_hz": s["simulated_hz"], "exact": s["exact"]})
    total = sum(x["samples"] for x in designs)
    icarus_s = sum(1000 / x["samples_per_second"] for x in icarus) / workers
    print(f"regression: {total} samples of {len(dirs)} designs in Verilator on {workers} "
          f"workers: {again:.1f} s ({first:.1f} s with the builds); Icarus, 1,000 samples "
          f"each, expected {icarus_s / 60:.0f} min on {workers} workers", flush=True)
    return {"workers": workers, "designs": designs, "verilator_wall_s": again,
            "verilator_wall_s_with_builds": first, "exact": r["exact"],
            "icarus": icarus, "icarus_1000_expected_s": icarus_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/bench/scale", help="working directory")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["speed", "regression", "dask"])
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "figures" / "scale.json"))
    ap.add_argument("--no-render", action="store_true", help="leave BENCHMARKS.md alone")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    path = Path(args.json)
    result = json.loads(path.read_text()) if path.is_file() else {}
    if "speed" not in args.skip:
        result["speed"] = speed(out / "speed")
    if "regression" not in args.skip:
        result["regression"] = regression(out / "regression", workers=2)
    if "dask" not in args.skip:
        import dask_speedup
        ns = argparse.Namespace(model="digits-mlp", lanes=16, samples="all", shard_size=50,
                                repeat=3)
        rows = []
        for case in dask_speedup.CASES:
            row = dask_speedup.measure(case, ns, out / "dask")
            print(f"{case.name}: 1 worker {row['wall_s_1_worker']:.1f} s, 2 workers "
                  f"{row['wall_s_2_workers']:.1f} s, {row['speedup']:.2f}x, identical "
                  f"{row['identical_results']}", flush=True)
            rows.append(row)
        import dask_pick
        pick_json = out / "dask_pick.json"
        dask_pick.main(["--json", str(pick_json), "--repeats", "2"])
        pk = json.loads(pick_json.read_text())
        rows.append({"case": "explore --pick", "what": {
                         "model": pk["model"], "board": pk["board"],
                         "clock": f"{pk['clock_mhz']:g} MHz",
                         "front": len(pk["front"]), "picked": pk["picked"]},
                     "wall_s_1_worker": pk["serial_s"], "wall_s_2_workers": pk["parallel_s"],
                     "speedup": pk["speedup"], "identical_results": pk["same_answer"],
                     "detail": pk})
        print(f"explore --pick: {pk['serial_s']:.1f} s / {pk['parallel_s']:.1f} s, "
              f"{pk['speedup']:.2f}x", flush=True)
        result["dask"] = rows
    result.update(command="python benchmarks/scale.py" + (
        f" --skip {' '.join(args.skip)}" if args.skip else ""),
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        cpus=len(os.sched_getaffinity(0)), python=platform.python_version(),
        seconds=time.time() - start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    if not args.no_render:
        from hwsnn.tools import bench
        bench.render(ROOT)
        print(f"rendered {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
