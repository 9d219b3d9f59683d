"""Issue 20's CIFAR-class networks on the layer-serial processor with its weights and
spike planes in SDRAM (docs/sdram.md), in Verilator against the golden model and the
SDRAM's timing-checking model: ResNet-20, ResNet-18 and VGG-11 (``hwsnn.snn.cifar_nets``:
random weights calibrated on random inputs, 8-bit weights), GN (τ = 4) and ILIF, T = 2, and
the small CIFAR CNN. For each: bit-exact or not, the busy cycles per inference against
the plan's ideal, the SDRAM words the chip's model counted against the plan's, and the
simulation's wall time; where the ideal cycles go (``SerialPlan.cycle_parts``: compute,
reading spikes, loading weights) and the SDRAM bandwidth a sample uses against the
controller's peak (``--peak``, words a cycle, as ``benchmarks/sdram_bandwidth.py``
measured it). ``--record`` keeps the figures in ``benchmarks/figures/cifar_sdram.json``,
``--plot`` draws the time per inference at ``--clock`` MHz, by part, for docs/sdram.md.
``--no-sim`` computes the plan's figures only (seconds).

    .venv/bin/python benchmarks/cifar_sdram.py --samples 2 --record --plot
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
from hwsnn.snn import golden
from hwsnn.snn.cifar_nets import NAMES, cifar_qnet
from hwsnn.snn.random_nets import random_codes, small_cifar_qnet

FIGURES = Path(__file__).parent / "figures" / "cifar_sdram.json"
PLOT = Path(__file__).parent / "figures" / "cifar_sdram_time.png"
PARTS = ("compute", "spikes", "weights")


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
    ap.add_argument("--plot", action="store_true")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--clock", type=float, default=65.6,
                    help="MHz for the plot (default: the VGG-11 build's post-route Fmax)")
    ap.add_argument("--peak", type=float, default=0.977,
                    help="the controller's peak, SDRAM words a cycle")
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
            parts = plan.cycle_parts(golden.run(net, codes, lanes=plan.lanes), codes)
            parts = {k: float(v.double().mean()) for k, v in parts.items()}
            moved = plan.transfers()
            ideal = sum(parts.values())
            row = {"net": name, "method": method, "parts": parts, "ideal_cycles": ideal,
                   "sdram_words_per_cycle": sum(moved.values()) / ideal,
                   "of_peak": sum(moved.values()) / ideal / args.peak,
                   "weight_words": plan.weight_words, "sdram_words": plan.sdram_words,
                   "tiles": len(plan.tiles), "plan_words": moved}
            if args.no_sim:
                rows.append(row)
                print(f"{name:11s} {method:4s} ideal={ideal:,.0f} "
                      + " ".join(f"{k}={v / ideal:.0%}" for k, v in parts.items())
                      + f" SDRAM {row['of_peak']:.0%} of peak", flush=True)
                continue
            with tempfile.TemporaryDirectory() as work:
                r = simulate_serial(plan, codes, work, stall=args.stall, seed=3)
            n = r["samples"]
            row.update({"samples": n, "exact": r["exact"],
                   "first_divergence": r["first_divergence"],
                   "busy_cycles": r["busy_cycles_per_sample"],
                   "ideal_cycles": r["ideal_cycles_per_sample"],
                   "ratio": r["busy_cycles_per_sample"] / r["ideal_cycles_per_sample"],
                   "chip_reads_per_sample": r["sdram"]["reads"] / n,
                   "chip_writes_per_sample": r["sdram"]["writes"] / n,
                   "violations": r["sdram"]["violations"],
                   "words_match": (r["sdram"]["reads"] == n * (moved["weights"]
                                                              + moved["plane_reads"])
                                   and r["sdram"]["writes"] == n * moved["plane_writes"]),
                   "sim_s": r["sim_s"], "build_s": r["build_s"], "wall_s": time.time() - t})
            rows.append(row)
            print(f"{name:11s} {method:4s} exact={row['exact']} busy={row['busy_cycles']:,.0f} "
                  f"ideal={row['ideal_cycles']:,.0f} ({row['ratio']:.3f}x) "
                  f"words match={row['words_match']} sim {row['sim_s']:.0f} s", flush=True)
    if args.record:
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        _plot(rows, args.clock)
    return 0 if all(r.get("exact", True) and r.get("words_match", True) for r in rows) else 1


def _plot(rows, mhz: float):
    """Milliseconds per inference at ``mhz``, each network's bar cut into its parts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['net']} {r['method']}" for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    left = [0.0] * len(rows)
    for part, color in zip(PARTS, ("#4477aa", "#ee6677", "#228833"), strict=True):
        ms = [r["parts"][part] / (mhz * 1e3) for r in rows]
        ax.barh(labels, ms, left=left, color=color, label={
            "compute": "compute (operations)", "spikes": "reading spike planes and pixels",
            "weights": "loading weights from SDRAM"}[part])
        left = [a + b for a, b in zip(left, ms, strict=True)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.0f} ms, {1e3 / total:.1f}/s", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms per inference at {mhz:g} MHz (16 lanes, T = 2, the plan's ideal cycles)")
    ax.set_xlim(0, max(left) * 1.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Where an inference's time goes, weights and spikes in SDRAM", fontsize=10)
    fig.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    fig.savefig(PLOT, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
