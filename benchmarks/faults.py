"""Fault injection into the bundled designs: catch rate and location of the first
divergence (``hwsnn.sim.faults.inject``).

For every bundled design (``hwsnn.tools.examples``) and every population, readout included,
it takes the ``--faults`` largest weights whose zeroing the golden model shows on test
sample 0, writes each into the ROM of the design's Verilog, and simulates the corrupted
file with ``hwsnn sim --verilog`` (one sample, stopping at the first wrong event). A fault
is caught when the design differs from the golden model, and located when the first
divergence names its population, its first differing step and a neuron (or readout
index) that differs there, with the corrupted network's value.

    .venv/bin/python benchmarks/faults.py --faults 5 --json build/bench/faults.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hwsnn.sim.faults import inject
from hwsnn.sim.run import ALL_SIMULATORS
from hwsnn.tools import examples


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faults", type=int, default=5, help="faults per population")
    ap.add_argument("--designs", nargs="+", default=list(examples.EXAMPLES),
                    choices=list(examples.EXAMPLES))
    ap.add_argument("--simulator", default="icarus-sv", choices=ALL_SIMULATORS)
    ap.add_argument("--out", default="build/bench/faults", help="working directory")
    ap.add_argument("--json", metavar="FILE", help="write every fault and result here")
    args = ap.parse_args()

    r = inject(args.out, faults=args.faults, tops=args.designs, simulator=args.simulator,
               log=lambda text: print(text, flush=True))
    print()
    print(f"{'design':16s} {'population':10s} {'faults':>6s} {'caught':>6s} {'located':>7s}")
    for s in r["summary"]:
        print(f"{s['design']:16s} {s['population']:10s} {s['faults']:6d} {s['caught']:6d} "
              f"{s['located']:7d}")
    n = max(r["faults"], 1)
    print(f"{r['faults']} faults: {r['caught']} caught ({100 * r['caught'] / n:.1f} %), "
          f"{r['located']} located ({100 * r['located'] / n:.1f} %); {args.simulator}; "
          f"{r['seconds']:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
