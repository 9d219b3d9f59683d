"""Issue 20's CIFAR-class networks on the layer-serial processor with its weights and
spike planes in SDRAM (docs/sdram.md), in Verilator against the golden model and the
SDRAM's timing-checking model: ResNet-20, ResNet-18 and VGG-11 (``hwsnn.snn.cifar_nets``:
random weights calibrated on random inputs, 8-bit weights), GN (τ = 4) and ILIF, T = 2, and
the small CIFAR CNN. For each: bit-exact or not, the busy cycles per inference against
the plan's ideal, the SDRAM words the chip's model counted against the plan's, and the
simulation's wall time. ``--record`` keeps the figures in
``benchmarks/figures/cifar_sdram.json`` for docs/sdram.md.

    .venv/bin/python benchmarks/cifar_sdram.py --samples 2 --record
    .venv/bin/python benchmarks/cifar_sdram.py --nets resnet20 --methods gn ilif
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from hwsnn.hdl.serial import SerialPlan
from hwsnn.sim.serial import simulate_serial
from hwsnn.snn.cifar_nets import NAMES, cifar_qnet
from hwsnn.snn.random_nets import random_codes, small_cifar_qnet

FIGURES = Path(__file__).parent / "figures" / "cifar_sdram.json"


def plan_for(net, lanes: int = 16) -> SerialPlan:
    """The plan measured: P lanes, 1,024 membrane words, the input stage replayed, a weight
    buffer of the fewest 1,024-word blocks that holds every population's one lane group."""
    rows = max(SerialPlan.rows_per_group(net).values())
    return SerialPlan(net, lanes, membrane_words=1024, keep_current=False, external=True,
                      weight_words=-(-rows // 1024) * 1024, weight_slices=4)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="+", default=[*NAMES, "small-cifar"])
    ap.add_argument("--methods", nargs="+", default=["gn", "ilif"])
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--stall", type=float, default=0.1)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for name in args.nets:
        for method in args.methods:
            if name == "small-cifar" and method != "gn":
                continue
            t = time.time()
            net = small_cifar_qnet() if name == "small-cifar" else cifar_qnet(name,
                                                                             method=method)
            plan = plan_for(net)
            codes = random_codes(random.Random(7), net, args.samples)
            with tempfile.TemporaryDirectory() as work:
                r = simulate_serial(plan, codes, work, stall=args.stall, seed=3)
            n = r["samples"]
            moved = r["sdram_plan"]
            row = {"net": name, "method": method, "samples": n, "exact": r["exact"],
                   "first_divergence": r["first_divergence"],
                   "busy_cycles": r["busy_cycles_per_sample"],
                   "ideal_cycles": r["ideal_cycles_per_sample"],
                   "ratio": r["busy_cycles_per_sample"] / r["ideal_cycles_per_sample"],
                   "weight_words": plan.weight_words, "sdram_words": plan.sdram_words,
                   "tiles": len(plan.tiles),
                   "plan_words": moved,
                   "chip_reads_per_sample": r["sdram"]["reads"] / n,
                   "chip_writes_per_sample": r["sdram"]["writes"] / n,
                   "violations": r["sdram"]["violations"],
                   "words_match": (r["sdram"]["reads"] == n * (moved["weights"]
                                                              + moved["plane_reads"])
                                   and r["sdram"]["writes"] == n * moved["plane_writes"]),
                   "sim_s": r["sim_s"], "build_s": r["build_s"], "wall_s": time.time() - t}
            rows.append(row)
            print(f"{name:11s} {method:4s} exact={row['exact']} busy={row['busy_cycles']:,.0f} "
                  f"ideal={row['ideal_cycles']:,.0f} ({row['ratio']:.3f}x) "
                  f"words match={row['words_match']} sim {row['sim_s']:.0f} s", flush=True)
    if args.record:
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["exact"] and r["words_match"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
