"""The layer-serial processor's memory plan (docs/serial.md) for the small CIFAR CNN of
issue 19, against the block RAMs of a board: what the compiler pass
(``hwsnn.hdl.serial.SerialPlan``) places, per memory, at a few lane counts and membrane
depths.

The network: conv32-conv32-pool-conv64-conv64-pool-fc on 3×32×32 inputs, random weights
(seed 0), QCFS-calibrated on random inputs (no CIFAR data here), GN τ = 4, T = 2, 8-bit
weights. Its dataflow design needs 534 block RAMs, against the ULX3S-85F's 208.

    .venv/bin/python benchmarks/serial_plan.py
    .venv/bin/python benchmarks/serial_plan.py --board ulx3s-85f --lanes 18 --membrane-words 1024
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn

from hwsnn import boards
from hwsnn.frontends.pytorch import trace
from hwsnn.hdl.serial import SerialPlan
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

# (lanes, membrane words or None for one tile per population)
DEFAULT_POINTS = ((16, None), (18, None), (18, 1024), (9, 1024))


def small_cifar_cnn():
    """The QNet of the small CIFAR CNN (random weights, calibrated on random inputs)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10)).eval()
    x = torch.rand(64, 3, 32, 32)
    return quantize(convert(trace(model, x[:2]), method="gn", timesteps=2, group_size=4,
                            calibration=x, progress=False))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--lanes", type=int, action="append",
                    help="lane count P (repeatable; with --membrane-words, pairwise)")
    ap.add_argument("--membrane-words", type=int, action="append",
                    help="membrane memory depth (0: one tile per population)")
    ap.add_argument("--json", type=str, help="write the figures here")
    args = ap.parse_args(argv)
    points = DEFAULT_POINTS
    if args.lanes:
        words = args.membrane_words or [0] * len(args.lanes)
        if len(words) != len(args.lanes):
            ap.error("give --membrane-words as often as --lanes, or not at all")
        points = tuple((p, w or None) for p, w in zip(args.lanes, words, strict=True))
    board = boards.get(args.board)
    net = small_cifar_cnn()
    weight_bits = sum(q.weight.size * q.weight_bits for p in net.populations
                      for q in p.projections)
    print(f"small CIFAR CNN: {sum(p.size for p in net.populations):,} neurons, "
          f"{weight_bits // 8:,} weights of 8 bits; {board.title}: "
          f"{board.device.bram_blocks} block RAMs of {board.device.bram_bits} bits")
    rows = []
    print("| P | membrane words | tiles | weights | biases | membranes | planes | total | "
          "weight bits / their RAM bits | plane scan cycles |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for lanes, words in points:
        plan = SerialPlan(net, lanes=lanes, membrane_words=words)
        rams = plan.block_rams(board.device.bram_modes)
        total = sum(rams.values())
        share = weight_bits / (rams["weights"] * board.device.bram_bits)
        tiles = [len(layer.tiles) for layer in plan.layers]
        rows.append({"lanes": lanes, "membrane_words": plan.memories["membranes"][1],
                     "tiles": tiles, "block_rams": rams, "total": total,
                     "weight_share": share, "scan_cycles": plan.scan_cycles(),
                     "fits": total <= board.device.bram_blocks})
        print(f"| {lanes} | {plan.memories['membranes'][1]} | {tiles} | {rams['weights']} | "
              f"{rams['biases']} | {rams['membranes']} | {rams['planes']} | "
              f"**{total}** | {share:.1%} | {plan.scan_cycles():,} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"board": board.name, "points": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
