"""The SDRAM controller's bandwidth (docs/sdram.md), measured in simulation against the
chip's timing-checking model (``hwsnn.sim.sdram``): a stream of consecutive words written
and read back on one port, never stalled (the controller's peak: a command every cycle
but at row changes and refreshes), and random traffic on three ports that close each
other's rows (each port stalled at random), at a few clocks. Prints words per cycle and
MB/s (2 bytes a word), and the chip's counters; every run is checked: no violated
constraint and every read returning what was written.

    .venv/bin/python benchmarks/sdram_bandwidth.py
    .venv/bin/python benchmarks/sdram_bandwidth.py --clock 50 --clock 62.5 --words 50000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile

from hwsnn.hdl.sdram import ULX3S_SDRAM, SDRAMController
from hwsnn.sim.sdram import simulate_controller


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clock", type=float, action="append",
                    help="controller clock in MHz (repeatable; default 50, 60, 75)")
    ap.add_argument("--words", type=int, default=40_000, help="words of the stream")
    ap.add_argument("--ops", type=int, default=3000, help="operations per port (random)")
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    # (the power-up wait shortened, and the model told so: it is not what is measured)
    chip = dataclasses.replace(ULX3S_SDRAM, t_init=2000.0)
    rows = []
    for mhz in args.clock or [50.0, 60.0, 75.0]:
        with tempfile.TemporaryDirectory() as work:
            ctrl = SDRAMController(chip=chip, clock_hz=mhz * 1e6, ports=1)
            s = simulate_controller(ctrl, f"{work}/stream", traffic="stream",
                                    ops=args.words, simulator=args.simulator,
                                    max_cycles=4 * args.words + 10_000)
            ctrl3 = SDRAMController(chip=chip, clock_hz=mhz * 1e6, ports=3)
            r = simulate_controller(ctrl3, f"{work}/random", ops=args.ops, stall=0.2,
                                    simulator=args.simulator, max_cycles=40 * args.ops)
        for rec in (s, r):
            if rec["violations"] or rec["mismatches"] or not rec["done"]:
                print(f"FAILED at {mhz} MHz: {rec}", file=sys.stderr)
                return 1
        moved = r["reads"] + r["writes"]
        busy = r["cycles"] - r["ready_at"]
        row = {"mhz": mhz, "timing": dataclasses.asdict(ctrl.timing),
               "write_words_per_cycle": s["words"] / s["write_cycles"],
               "read_words_per_cycle": s["words"] / s["read_cycles"],
               "random_words_per_cycle": moved / busy,
               "random_activates_per_word": r["activates"] / moved,
               "refreshes": s["refreshes"]}
        row["peak_mb_s"] = row["read_words_per_cycle"] * 2 * mhz
        rows.append(row)
    print(f"{ULX3S_SDRAM.name} ({', '.join(ULX3S_SDRAM.parts)}), CAS latency 3; "
          f"stream of {args.words} words, random traffic of 3 × {args.ops} operations")
    print("| clock | stream write (words/cycle) | stream read | peak read MB/s | "
          "random, 3 ports (words/cycle) | ACTIVEs per word |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mhz']:g} MHz | {row['write_words_per_cycle']:.3f} | "
              f"{row['read_words_per_cycle']:.3f} | {row['peak_mb_s']:.1f} | "
              f"{row['random_words_per_cycle']:.3f} | "
              f"{row['random_activates_per_word']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
