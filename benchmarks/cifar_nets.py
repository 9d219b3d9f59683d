"""Issue 20's CIFAR-class networks on the layer-serial processor (docs/serial.md): ResNet-20,
ResNet-18 and VGG-11 (``hwsnn.snn.cifar_nets``), random weights calibrated on random
inputs (no CIFAR data here), 8-bit weights, GN τ = 4 and ILIF, T = 2.

For each network and method: its parameters, the QNet's weights and those the serial plan
stores (poolings folded into a projection's weights kept once: ``serial.pool_factor``),
their bytes at 8 bits, the plan's memories (width × depth, and block RAMs of a board's
device), the tiles at P lanes with 1024 and 2048 membrane words, the ideal cycles per
inference (``SerialPlan.ideal_cycles`` on golden runs of random images, mean), the golden
run's wall time and the SOPs per inference. Then, per network, every population's spike
planes (plane bits × positions × channels padded to P × steps), its tiles, and the
fraction of its neurons with a non-zero count on the first image.

    .venv/bin/python benchmarks/cifar_nets.py
    .venv/bin/python benchmarks/cifar_nets.py --nets resnet20 --methods gn --samples 4
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from hwsnn import boards
from hwsnn.hdl.serial import SerialPlan
from hwsnn.snn import golden
from hwsnn.snn.cifar_nets import MODELS, NAMES, cifar_qnet

METHODS = ("gn", "ilif")
MEMORIES = ("weights", "biases", "membranes", "currents", "planes", "pixels", "program")


def _kib(bits: int) -> str:
    return f"{bits / 8192:,.1f}"


def plane_sizes(plan: SerialPlan) -> dict[str, int]:
    """Bits of every population's spike planes, all steps: plane bits × positions ×
    channels padded to the lanes × output steps (the readout writes none)."""
    out = {}
    for pop in plan.net.populations:
        if pop.kind == "readout":
            continue
        channels = pop.shape[0] if len(pop.shape) == 3 else math.prod(pop.shape)
        positions = pop.shape[1] * pop.shape[2] if len(pop.shape) == 3 else 1
        padded = math.ceil(channels / plan.lanes) * plan.lanes
        out[pop.name] = plan.plane_bits * positions * padded * pop.steps_out
    return out


def activity(net, result) -> dict[str, float]:
    """Per hidden population, the fraction of its neurons with a non-zero count (GN: in any
    step; ILIF: a non-zero value) on the first image."""
    out = {}
    for pop in net.populations[:-1]:
        counts = result.outputs[pop.name][0]  # [steps, *shape]
        out[pop.name] = float((counts.sum(0) != 0).double().mean())
    return out


def measure(name: str, method: str, lanes: int, codes, board) -> dict:
    t0 = time.perf_counter()
    net = cifar_qnet(name, method=method)
    build = time.perf_counter() - t0
    params = sum(p.numel() for p in MODELS[name]().parameters())
    weights = sum(q.weight.size for p in net.populations for q in p.projections)
    plans = {w: SerialPlan(net, lanes=lanes, membrane_words=w, keep_current=False)
             for w in (1024, 2048)}
    plan = plans[1024]
    stored = sum(d.weights for layer in plan.layers for d in layer.projections)
    t0 = time.perf_counter()
    res = golden.run(net, codes, lanes=lanes, record=True)
    wall = time.perf_counter() - t0
    cycles = plan.ideal_cycles(res, codes).double()
    return {
        "net": name, "method": method, "build_s": build, "params": params,
        "qnet_weights": weights, "stored_weights": stored,
        "weight_bytes": stored * plan.weight_bits // 8,
        "memories": {k: list(v) for k, v in plan.memories.items()},
        "memory_bits": plan.memory_bits(),
        "block_rams": plan.block_rams(board.device.bram_modes),
        "tiles": {w: {layer.population: len(layer.tiles) for layer in p.layers}
                  for w, p in plans.items()},
        "cycles": cycles.mean().item(), "cycles_each": cycles.tolist(),
        "golden_s": wall, "sops": res.sops.double().mean().item(),
        "planes": plane_sizes(plan), "plane_bits": plan.plane_bits,
        "activity": activity(net, res),
        "shapes": {p.name: list(p.shape) for p in net.populations},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="+", choices=NAMES, default=list(NAMES))
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--samples", type=int, default=2, help="random images per golden run")
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--json", type=str, help="write the figures here")
    args = ap.parse_args(argv)
    board = boards.get(args.board)
    torch.manual_seed(1)
    codes = torch.randint(0, 256, (args.samples, 3, 32, 32))
    P = args.lanes
    rows = [measure(n, m, P, codes, board) for n in args.nets for m in args.methods]

    print(f"## CIFAR-class networks on the serial processor, P = {P}, 8-bit weights, T = 2 "
          f"(GN τ = 4), {args.samples} random images\n")
    print("| net | method | parameters | QNet weights | stored weights | weight bytes | "
          "tiles @1024 | tiles @2048 | ideal cycles / inference | SOPs / inference | "
          "golden wall (s) | build (s) |")
    print("|---" * 12 + "|")
    for r in rows:
        print(f"| {r['net']} | {r['method']} | {r['params']:,} | {r['qnet_weights']:,} | "
              f"{r['stored_weights']:,} | {r['weight_bytes']:,} | "
              f"{sum(r['tiles'][1024].values())} | {sum(r['tiles'][2048].values())} | "
              f"{r['cycles']:,.0f} | {r['sops']:,.0f} | {r['golden_s']:.2f} | "
              f"{r['build_s']:.1f} |")

    print(f"\n## Memories at membrane words 1024 (width × depth = KiB; block RAMs of "
          f"{board.title}: {board.device.bram_blocks} of {board.device.bram_bits} bits)\n")
    print("| net | method | " + " | ".join(MEMORIES) + " | total KiB | block RAMs |")
    print("|---" * (len(MEMORIES) + 4) + "|")
    for r in rows:
        cells = []
        for m in MEMORIES:
            w, d = r["memories"][m]
            cells.append(f"{w}×{d:,} = {_kib(w * d)} ({r['block_rams'][m]})")
        total_bits = sum(r["memory_bits"].values())
        print(f"| {r['net']} | {r['method']} | " + " | ".join(cells)
              + f" | {_kib(total_bits)} | {sum(r['block_rams'].values()):,} |")

    print("\n## Spike planes per population (plane bits × positions × channels padded to "
          f"{P} × steps), tiles at P = {P}, and the fraction of neurons with a non-zero "
          "count on image 0\n")
    for r in rows:
        planes = r["planes"]
        total = sum(planes.values())
        top = sorted(planes.items(), key=lambda kv: -kv[1])[:3]
        print(f"### {r['net']} {r['method']}: plane bits {r['plane_bits']}, all planes "
              f"{total:,} bits ({_kib(total)} KiB); the plan's plane memory (liveness "
              f"placed) {_kib(r['memory_bits']['planes'])} KiB; largest three: "
              + ", ".join(f"{n} {b:,} bits" for n, b in top) + "\n")
        print("| population | shape | plane bits | tiles @1024 | tiles @2048 | non-zero |")
        print("|---" * 6 + "|")
        for name, bits in planes.items():
            print(f"| {name} | {'×'.join(map(str, r['shapes'][name]))} | {bits:,} | "
                  f"{r['tiles'][1024][name]} | {r['tiles'][2048][name]} | "
                  f"{r['activity'][name]:.2f} |")
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"lanes": P, "samples": args.samples, "board": board.name,
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
