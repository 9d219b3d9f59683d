"""The layer-serial processor's memory plan and cycles (docs/serial.md) for the small CIFAR
CNN of issue 19, against the block RAMs of a board: what the compiler pass
(``hwsnn.hdl.serial.SerialPlan``) places, per memory, at a few lane counts, membrane
depths and input-current choices, and the cycles per inference of the processor's model
(``hwsnn.hdl.serial_model``), run on random images and checked bit-exact against the
golden model.

The network (``hwsnn.snn.random_nets.small_cifar_qnet``): conv32-conv32-pool-conv64-
conv64-pool-fc on 3×32×32 inputs, random weights (seed 0), calibrated on random inputs
(no CIFAR data here), GN τ = 4, T = 2, 8-bit weights. Its dataflow design needs 534 block
RAMs, against the ULX3S-85F's 208.

    .venv/bin/python benchmarks/serial_plan.py
    .venv/bin/python benchmarks/serial_plan.py --point 18,1024,replay --samples 4
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from hwsnn import boards
from hwsnn.hdl.serial import SerialPlan
from hwsnn.hdl.serial_model import SerialMachine
from hwsnn.snn import golden
from hwsnn.snn.random_nets import small_cifar_qnet

# (lanes, membrane words or None for one tile per population, keep the input current)
DEFAULT_POINTS = ((16, None, True), (18, None, True), (18, 1024, True), (18, 1024, False),
                  (9, 1024, False))


def _point(text: str):
    try:
        lanes, words, current = text.split(",")
        return int(lanes), int(words) or None, {"keep": True, "replay": False}[current]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"--point {text!r}: give lanes,membrane_words,keep|replay (membrane words 0: "
            "one tile per population), e.g. 18,1024,replay") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--point", type=_point, action="append",
                    help="lanes,membrane_words,keep|replay (repeatable)")
    ap.add_argument("--samples", type=int, default=2,
                    help="random images run through the model (0: the plan only)")
    ap.add_argument("--json", type=str, help="write the figures here")
    args = ap.parse_args(argv)
    points = args.point or DEFAULT_POINTS
    board = boards.get(args.board)
    net = small_cifar_qnet()
    weights = sum(q.weight.size for p in net.populations for q in p.projections)
    # (the poolings folded into conv3 and the classifier: each weight stored once)
    kept = sum(d.weights for layer in SerialPlan(net).layers for d in layer.projections)
    weight_bits = 8 * kept
    print(f"small CIFAR CNN: {sum(p.size for p in net.populations):,} neurons, "
          f"{weights:,} weights of 8 bits, {kept:,} stored (poolings kept once); "
          f"{board.title}: "
          f"{board.device.bram_blocks} block RAMs of {board.device.bram_bits} bits")
    torch.manual_seed(1)
    codes = torch.randint(0, 256, (args.samples, *net.input.shape))
    rows = []
    names = ("weights", "biases", "membranes", "currents", "planes", "pixels", "program")
    print("| P | membrane words | input current | tiles | " + " | ".join(names)
          + " | total | weight bits / their RAM bits | cycles per inference |")
    print("|---" * (len(names) + 7) + "|")
    for lanes, words, keep in points:
        plan = SerialPlan(net, lanes=lanes, membrane_words=words, keep_current=keep)
        rams = plan.block_rams(board.device.bram_modes)
        total = sum(rams.values())
        share = weight_bits / (rams["weights"] * board.device.bram_bits)
        tiles = [len(layer.tiles) for layer in plan.layers]
        cycles = None
        if args.samples:
            run = SerialMachine(plan).run(codes)
            ref = golden.run(net, codes, lanes=lanes)
            if not torch.equal(run.readout, ref.readout):
                print(f"P = {lanes}: the model's readout differs from the golden model's")
                return 1
            cycles = (run.descriptor + run.scan + run.ops).double().mean().item()
        rows.append({"lanes": lanes, "membrane_words": plan.memories["membranes"][1],
                     "keep_current": keep, "tiles": tiles, "block_rams": rams,
                     "total": total, "weight_share": share, "cycles": cycles,
                     "fits": total <= board.device.bram_blocks})
        print(f"| {lanes} | {plan.memories['membranes'][1]} | "
              f"{'kept' if keep else 'replayed'} | {tiles} | "
              + " | ".join(str(rams[n]) for n in names)
              + f" | **{total}** | {share:.1%} | "
              + (f"{cycles:,.0f}" if cycles is not None else "–") + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"board": board.name, "samples": args.samples, "points": rows}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
