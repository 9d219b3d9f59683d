"""Layer engines: bit-exactness, cycles against the golden ideal, resources and throughput.

    .venv/bin/python benchmarks/engines.py exact  [--samples 200] [--lanes 16] [--random 40]
    .venv/bin/python benchmarks/engines.py cycles [--samples 16]
    .venv/bin/python benchmarks/engines.py synth  [--lanes 1 4 16]
    .venv/bin/python benchmarks/engines.py fmax   [--lanes 1 4 16]

``exact`` simulates every engine of the bundled digits MLP and CNN (GN, IF, ILIF) on the
first N test samples with random back-pressure, plus engines of random small layers, and
counts mismatching steps. ``cycles`` compares simulated cycles (no back-pressure) with the
golden model's ideal for P ∈ {1, 4, 16}. ``synth`` synthesizes engines with Yosys for
iCE40 and ECP5; ``fmax`` places and routes the dense engine on an UP5K and an ECP5-85F
and reports peak synaptic operations per second per logic cell (Fmax × P / cells). Every
figure is computed in the run that prints it; add ``--json FILE`` to keep them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from hwsnn.frontends import data
from hwsnn.frontends.pytorch import trace
from hwsnn.hdl.check import check_engine
from hwsnn.hdl.engine import LayerEngine
from hwsnn.models import BUNDLED
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

ROOT = Path(__file__).resolve().parent.parent


def bundled_nets(methods=("gn", "if", "ilif"), timesteps=2):
    x, _ = data.load("digits", "test")
    nets = {}
    for model in ("digits-mlp", "digits-cnn"):
        graph = trace(BUNDLED[model].load(), x[:2])
        for method in methods:
            nets[model, method] = quantize(convert(graph, method=method, timesteps=timesteps,
                                                   progress=False))
    return nets, x


def cmd_exact(args):
    nets, x = bundled_nets(methods=tuple(args.methods))
    rows = []
    for (model, method), net in nets.items():
        codes = golden.encode(net, x[:args.samples])
        for pop in net.populations:
            start = time.time()
            r = check_engine(net, pop.name, codes, lanes=args.lanes, busy=0.2, seed=1)
            rows.append({"model": model, "method": method, "population": pop.name,
                         "lanes": args.lanes, "samples": r.samples, "ok": r.ok,
                         "mismatches": len(r.mismatches), "seconds": time.time() - start})
            print(f"{model:10s} {method:4s} {pop.name:6s} P={args.lanes:<2d} "
                  f"{r.samples} samples: {'bit-exact' if r.ok else r.mismatches[:2]} "
                  f"({time.time() - start:.0f} s)", flush=True)
    sys.path.insert(0, str(ROOT / "tests"))
    from hdl.random_nets import random_qnet
    layers = exact = 0
    for seed in range(args.random):
        rng = random.Random(seed)
        method = ("gn", "if-shift", "ilif")[seed % 3]
        net = random_qnet(rng, method)
        codes = torch.randint(0, 256, (4, *net.input.shape),
                              generator=torch.Generator().manual_seed(seed))
        for pop in net.populations:
            r = check_engine(net, pop.name, codes, lanes=1 + seed % 4, busy=0.25, seed=seed)
            layers += 1
            exact += r.ok
            if not r.ok:
                print(f"random layer seed {seed} {pop.name}: {r.mismatches[:2]}")
    print(f"random layers: {exact}/{layers} bit-exact")
    return {"digits": rows, "random_layers": layers, "random_layers_exact": exact}


def cmd_cycles(args):
    nets, x = bundled_nets(methods=("gn", "ilif"))
    rows = []
    for (model, method), net in nets.items():
        codes = golden.encode(net, x[:args.samples])
        for lanes in args.lanes:
            for pop in net.populations:
                r = check_engine(net, pop.name, codes, lanes=lanes)
                rows.append({"model": model, "method": method, "population": pop.name,
                             "lanes": lanes, "cycles": r.cycles, "ideal": r.ideal_cycles,
                             "ratio": r.cycle_ratio, "ok": r.ok})
                print(f"{model:10s} {method:4s} {pop.name:6s} P={lanes:<2d} cycles "
                      f"{r.cycles:8d} ideal {r.ideal_cycles:8d} ratio {r.cycle_ratio:.3f}"
                      f"{'' if r.ok else ' MISMATCH'}", flush=True)
    worst = max(r["ratio"] for r in rows)
    print(f"worst ratio {worst:.3f} over {len(rows)} engines")
    return {"rows": rows, "worst_ratio": worst}


ENGINES = (("digits-mlp", "gn", "fc1", "dense, input stage"),
           ("digits-mlp", "gn", "fc2", "dense"),
           ("digits-cnn", "gn", "conv2", "conv 3x3"),
           ("digits-cnn", "ilif", "conv3", "conv 6x6/2, ILIF"),
           ("digits-mlp", "gn", "fc3", "readout"))


def cmd_synth(args):
    from hwsnn.flow.synth import ToolError, synthesize
    nets, _ = bundled_nets(methods=("gn", "ilif"))
    rows = []
    for model, method, name, what in ENGINES:
        for lanes in args.lanes:
            for family in ("ice40", "ecp5"):
                try:
                    rep = synthesize(LayerEngine(nets[model, method], name, lanes=lanes),
                                     family)
                except ToolError as exc:  # Yosys 0.70 asserts on a few large ECP5 designs
                    print(f"{model:10s} {name:6s} P={lanes:<2d} {family:5s} "
                          f"{str(exc).splitlines()[0]}", flush=True)
                    rows.append({"model": model, "population": name, "lanes": lanes,
                                 "family": family, "error": str(exc).splitlines()[-1]})
                    continue
                row = {"model": model, "method": method, "population": name, "what": what,
                       "lanes": lanes, "family": family, **rep.as_dict()}
                row.pop("cells_by_type", None)
                rows.append(row)
                print(f"{model:10s} {name:6s} {what:20s} P={lanes:<2d} {family:5s} "
                      f"LUT {rep.luts:5d} FF {rep.flip_flops:5d} RAM {rep.ram_blocks:3d} "
                      f"DSP {rep.dsps:2d} depth {rep.logic_depth:3d}", flush=True)
    return {"rows": rows}


def cmd_fmax(args):
    from hwsnn.flow.synth import ToolError, place_and_route, registered_wrapper, synthesize
    nets, _ = bundled_nets(methods=("gn",))
    net = nets["digits-mlp", "gn"]
    rows = []
    devices = (("up5k", "ice40", "ICESTORM_LC"), ("85k", "ecp5", "TRELLIS_COMB"))
    for device, family, cells_key in [d for d in devices if d[0] in args.devices]:
        for lanes in args.lanes:
            core = synthesize(LayerEngine(net, "fc2", lanes=lanes), family)
            try:
                rep = place_and_route(registered_wrapper(LayerEngine(net, "fc2", lanes=lanes)),
                                      device, clock_mhz_target=100)
            except ToolError as exc:
                # Yosys 0.70 trips an internal assertion (ABC9 reintegration) on the wrapped
                # P=16 engine for ECP5; the bare engine's ports fit the 85F's pins.
                print(f"{device} P={lanes}: {str(exc).splitlines()[0]}; placing the bare "
                      "engine instead of the pin-reducing wrapper")
                try:
                    rep = place_and_route(LayerEngine(net, "fc2", lanes=lanes), device,
                                          clock_mhz_target=100)
                except ToolError as exc2:
                    reason = [ln for ln in str(exc2).splitlines() if "ERROR" in ln][-1:]
                    print(f"{device} P={lanes}: does not place: {' '.join(reason)}")
                    rows.append({"device": device, "lanes": lanes, "error": " ".join(reason)})
                    continue
            cells = rep.utilisation.get(cells_key, {}).get("used", 0)
            sops = rep.fmax_mhz * 1e6 * lanes
            row = {"device": device, "lanes": lanes, "fmax_mhz": rep.fmax_mhz,
                   "logic_cells": cells, "core_luts": core.luts,
                   "peak_sops": sops, "sops_per_cell": sops / max(1, cells)}
            rows.append(row)
            print(f"{device:5s} dense fc2 P={lanes:<2d} Fmax {rep.fmax_mhz:6.1f} MHz, "
                  f"{cells} logic cells (core LUTs {core.luts}), peak {sops / 1e6:7.1f} MSOP/s,"
                  f" {row['sops_per_cell'] / 1e3:7.1f} kSOP/s per cell", flush=True)
    return {"rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("exact")
    s.add_argument("--samples", type=int, default=200)
    s.add_argument("--lanes", type=int, default=16)
    s.add_argument("--random", type=int, default=40, help="random networks (3 layers each)")
    s.add_argument("--methods", nargs="+", default=["gn", "if", "ilif"])
    s = sub.add_parser("cycles")
    s.add_argument("--samples", type=int, default=16)
    s.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 16])
    s = sub.add_parser("synth")
    s.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 16])
    s = sub.add_parser("fmax")
    s.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 16])
    s.add_argument("--devices", nargs="+", default=["up5k", "85k"])
    for s in sub.choices.values():
        s.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    start = time.time()
    result = {"exact": cmd_exact, "cycles": cmd_cycles, "synth": cmd_synth,
              "fmax": cmd_fmax}[args.what](args)
    print(f"({time.time() - start:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
