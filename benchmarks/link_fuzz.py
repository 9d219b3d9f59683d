"""The UART host link under fuzz: random, truncated and corrupted frames in Verilator.

Each design is the link around a network (``hwsnn.hdl.link.HostLink``, as a board top
has it) in a byte-level Verilog harness (``hwsnn.sim.link_run.fuzz_harness``); the
frames go through the real host client (``hwsnn.flow.host.Client``). Cases alternate between a
bad one (a corrupted CRC or bit, a frame cut at each position in turn, a wrong length,
an unknown command, a low stop bit, random bytes, runs of sync bytes, a silence longer
than the timeout inside a frame, two frames back to back, LOAD outside a store, INFER
before COMMIT) and a good request (IDENTIFY, STATUS, INFER of a random image, LOAD,
COMMIT), which must be answered correctly. Every reply is checked against the protocol
of docs/link.md (``hwsnn.sim.link_model.LinkModel``: codes, counters, which errors get no
reply, the cycle each reply starts) and INFER against the golden model. A hang is a
reply that does not come within the client's read timeout (four times the slowest
inference, four link timeouts and the longest reply).

The simulated UART runs at 4 clock cycles per bit (the link's smallest divisor) with a
3-byte timeout: the protocol scaled in time, the same logic.

    .venv/bin/python benchmarks/link_fuzz.py                      # 10,000 bad frames each
    .venv/bin/python benchmarks/link_fuzz.py --designs small --bad-frames 1000 --json f.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hwsnn.sim.link_run import FUZZ_DESIGNS


def bit_level(name: str, work: Path, simulator: str, quick: bool, seed: int) -> dict:
    """The same link under ``sim/link_bench.py`` (cocotb drives and decodes every bit,
    Verilator with ``--public-flat-rw``): its scenario of round trips and bad frames,
    for simulated cycles and frames per second."""
    from hwsnn.sim.link_run import build_link, fuzz_design, fuzz_images, run_link

    net, kw = fuzz_design(name)
    d = build_link(net, work / f"{name}-bit-level", simulator=simulator, quick_build=quick,
                   **kw)
    r = run_link(d, fuzz_images(net, 4, seed))
    c = r["counts"]
    frames = 1 + c["inferences"] + c["errors"] + len(r["statuses"]) \
        + (len(d.stores) and 1 + sum(-(-len(s.encode()) // 64) for s in d.stores))
    return {"passed": r["passed"], "frames": frames, "cycles": r["cycles"],
            "wall_s": r["wall_s"], "frames_per_second": frames / r["wall_s"],
            "cycles_per_second": r["cycles"] / r["wall_s"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--designs", nargs="+", default=["digits-mlp", "digits-mlp-spram"],
                    choices=list(FUZZ_DESIGNS))
    ap.add_argument("--bad-frames", type=int, default=10_000,
                    help="bad frames to try per design (at least)")
    ap.add_argument("--frames", type=int, default=0, help="frames in all (at least)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--margin", type=int, default=0,
                    help="cycles that must separate two moments whose order decides a "
                         "reply (0: two bit periods); closer cases are drawn again")
    ap.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--quick-build", action="store_true",
                    help="compile the simulation without optimisation (faster build)")
    ap.add_argument("--baseline", action="store_true",
                    help="also run the bit-level bench (sim/link_bench.py) on each design "
                         "and compare its speed")
    ap.add_argument("--out", default="build/bench/link_fuzz", help="working directory")
    ap.add_argument("--json", metavar="FILE", help="write every figure here")
    args = ap.parse_args()

    from hwsnn.sim.link_run import build_fuzz, fuzz_design, run_fuzz

    rows = []
    for name in args.designs:
        t = time.time()
        net, kw = fuzz_design(name)
        d = build_fuzz(net, Path(args.out) / name, simulator=args.simulator,
                       quick_build=args.quick_build, **kw)
        built = time.time() - t
        r = run_fuzz(d, frames=args.frames, bad_frames=args.bad_frames, seed=args.seed,
                     margin=args.margin)
        row = {"design": name, "description": FUZZ_DESIGNS[name], "simulator": args.simulator,
               "pixels": d.pixels, "classes": d.classes, "stores": len(d.stores),
               "divisor": d.divisor, "timeout_cycles": d.timeout_cycles,
               "build_s": built, **{k: r[k] for k in (
                   "passed", "frames", "bad_frames", "answered_as_expected", "hangs",
                   "wrong_answers", "unanswered_errors", "replies", "error_replies",
                   "redrawn", "cycles", "wall_s", "frames_per_second", "kinds",
                   "failures", "late_count", "timing_offsets", "line",
                   "infer_cycles_varied")},
               "cycles_per_second": r["cycles"] / max(r["wall_s"], 1e-9)}
        rows.append(row)
        print(f"\n{name}: {FUZZ_DESIGNS[name]}")
        print(f"  frames tried {row['frames']}, bad {row['bad_frames']}, answered as "
              f"expected {row['answered_as_expected']}, hangs {row['hangs']}, wrong "
              f"answers {row['wrong_answers']}; {row['replies']} replies, "
              f"{row['unanswered_errors']} errors counted but not answered (busy)")
        print(f"  error replies by code: {row['error_replies']}")
        print(f"  {row['frames_per_second']:.0f} frames/s simulated "
              f"({row['cycles']:,} cycles in {row['wall_s']:.1f} s, "
              f"{row['cycles_per_second'] / 1e3:.0f}k cycles/s; build {built:.0f} s)")
        exact = row["timing_offsets"].get("0", 0)
        timed = sum(row["timing_offsets"].values())
        print(f"  replies starting on the cycle the model gives: {exact} of {timed} it fixes; "
              f"{row['late_count']} outside its margin")
        for f in row["failures"][:3]:
            print(f"  FAILED {f['case']}: {f['problem']}")
        if args.baseline:
            b = bit_level(name, Path(args.out), args.simulator, args.quick_build, args.seed)
            row["bit_level"] = b
            print(f"  bit by bit (sim/link_bench.py): {b['frames_per_second']:.1f} frames/s, "
                  f"{b['cycles_per_second'] / 1e3:.0f}k cycles/s; the fuzz harness "
                  f"{row['cycles_per_second'] / b['cycles_per_second']:.1f} times the "
                  f"cycles/s, {row['frames_per_second'] / b['frames_per_second']:.1f} "
                  "times the frames/s")

    print(f"\n{'design':<18} {'frames':>7} {'bad':>6} {'as expected':>12} {'hangs':>6} "
          f"{'wrong':>6} {'frames/s':>9}")
    for r in rows:
        print(f"{r['design']:<18} {r['frames']:>7} {r['bad_frames']:>6} "
              f"{r['answered_as_expected']:>12} {r['hangs']:>6} {r['wrong_answers']:>6} "
              f"{r['frames_per_second']:>9.0f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"seed": args.seed, "designs": rows},
                                              indent=1))
    sys.exit(0 if all(r["passed"] for r in rows) else 1)


if __name__ == "__main__":
    main()
