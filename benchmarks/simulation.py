"""Whole networks as Verilog in cocotb: bit-exactness, cycles per inference, simulator speed.

For every bundled model and method it converts the model, writes the Verilog (with debug
taps), lints it with ``verilator --lint-only -Wall``, and runs the same test samples on
each simulator: every readout value, every class and every population's events are
compared with the golden model. It reports cycles per inference against the golden
model's ideal for the pipelined network (the busiest engine's work), per layer, and the
simulated samples per second and clock rate of each simulator with their ratio (one run,
same machine), on the free-running bench (the default) and, with ``--benches free edge``,
on the per-edge cocotb bench too, with the ratio of the two.

    .venv/bin/python benchmarks/simulation.py --samples 500 --lanes 16
    .venv/bin/python benchmarks/simulation.py --methods gn --benches free edge \
        --edge-samples 50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hwsnn.frontends.pytorch import trace
from hwsnn.hdl import verilog
from hwsnn.models import BUNDLED
from hwsnn.sim.run import ALL_SIMULATORS, BENCHES, YOSYS, lint, simulate
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

CONFIGS = {  # name → (method, T, τ)
    "if": ("if", 4, None),
    "gn": ("gn", 2, 4),
    "ilif": ("ilif", 4, None),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--models", nargs="+", default=["digits-mlp", "digits-cnn"])
    ap.add_argument("--methods", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--simulators", nargs="+", default=["verilator", "icarus"],
                    choices=list(ALL_SIMULATORS))
    ap.add_argument("--benches", nargs="+", default=["free"], choices=list(BENCHES))
    ap.add_argument("--edge-samples", type=int, default=None,
                    help="samples for the (slow) per-edge bench (default: --samples)")
    ap.add_argument("--out", default="build/bench/sim", help="working directory")
    ap.add_argument("--json", metavar="FILE", help="write every figure here")
    args = ap.parse_args()

    rows = []
    t_all = time.time()
    for model in args.models:
        graph = trace(BUNDLED[model].load(), torch.zeros(2, *BUNDLED[model].input_shape))
        for name in args.methods:
            method, T, tau = CONFIGS[name]
            net = quantize(convert(graph, method=method, timesteps=T, group_size=tau,
                                   progress=False))
            directory = Path(args.out) / f"{model}-{name}-P{args.lanes}"
            directory.mkdir(parents=True, exist_ok=True)
            net.save(directory)
            desc = verilog.write(directory, net, lanes=args.lanes)
            checked = lint(desc["files"]["verilog"], desc["top"])
            print(f"{model} {name} T={T}: {desc['verilog_lines']} lines; verilator lint "
                  f"-Wall: {len(checked['errors'])} errors, "
                  f"{sum(checked['warnings'].values())} warnings", flush=True)
            for sim, bench in [(s, b) for s in args.simulators for b in args.benches
                               if s != YOSYS or b == args.benches[0]]:
                n = args.edge_samples if bench == "edge" and args.edge_samples else \
                    args.samples
                r = simulate(directory, simulator=sim, samples=n, bench=bench).to_json()
                r.update(model=model, method=name, timesteps=T, lanes=args.lanes,
                         lint_errors=len(checked["errors"]), lint_warnings=checked["warnings"])
                rows.append(r)
                layers = ", ".join(
                    f"{x['population']} {x['ideal_cycles_per_inference']:.0f}/"
                    f"{x.get('work_cycles_per_inference', float('nan')):.0f}"
                    for x in r["layers"])
                print(f"  {sim:9s} {r['bench']:4s} {r['samples']} samples: "
                      f"{'bit-exact' if r['exact'] else 'MISMATCH'} "
                      f"({r['mismatches']} samples differ; taps {','.join(r['checked_taps'])})"
                      f"; cycles/inference {r['cycles_per_inference']:.0f} vs ideal "
                      f"{r['ideal_cycles_per_inference']:.0f} = {r['cycle_ratio']:.3f}; "
                      f"{r['samples_per_second']:.2f} samples/s, "
                      f"{r['simulated_hz'] / 1e3:.1f} kHz simulated; layers ideal/work: {layers}",
                      flush=True)
                if not r["exact"]:
                    print(f"    first divergence: {r['first_divergence_text']}", flush=True)
    print()
    print(f"{'model':11s} {'method':6s} {'sim':9s} {'bench':5s} {'samples':>7s} "
          f"{'exact':>5s} {'cyc/inf':>8s} {'ideal':>8s} {'ratio':>6s} {'samp/s':>8s} "
          f"{'kHz':>7s}")
    for r in rows:
        print(f"{r['model']:11s} {r['method']:6s} {r['simulator']:9s} {r['bench']:5s} "
              f"{r['samples']:7d} {'yes' if r['exact'] else 'NO':>5s} "
              f"{r['cycles_per_inference']:8.0f} {r['ideal_cycles_per_inference']:8.0f} "
              f"{r['cycle_ratio']:6.3f} {r['samples_per_second']:8.2f} "
              f"{r['simulated_hz'] / 1e3:7.1f}")
    speed = {}
    for r in rows:
        speed.setdefault((r["model"], r["method"]), {})[(r["simulator"], r["bench"])] = \
            r["samples_per_second"]
    ratios = []
    for (model, name), s in speed.items():
        row = {"model": model, "method": name}
        if ("verilator", "free") in s and ("icarus", "free") in s:
            row["verilator_over_icarus"] = s["verilator", "free"] / s["icarus", "free"]
        for sim in ("verilator", "icarus", "icarus-sv"):
            if (sim, "free") in s and (sim, "edge") in s:
                row[f"{sim}_free_over_edge"] = s[sim, "free"] / s[sim, "edge"]
        if len(row) > 2:
            ratios.append(row)
            print(f"{model} {name}: " + ", ".join(
                f"{k.replace('_', ' ')} {v:.1f}x" for k, v in row.items()
                if k not in ("model", "method")))
    worst = max((r["cycle_ratio"] for r in rows), default=float("nan"))
    print(f"all bit-exact: {all(r['exact'] for r in rows)}; worst cycle ratio {worst:.3f}; "
          f"({time.time() - t_all:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "speed_ratios": ratios},
                                              indent=1))


if __name__ == "__main__":
    main()
