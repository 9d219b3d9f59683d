"""``hwsnn explore --pick`` on 1 and on 2 Dask workers: wall time of the pick (place and
route of the front's candidates, then the winner's simulation) and the ratio, measured in
one run, with the check that both runs pick the same point with the same figures.

A pick builds front points fastest first and stops at the first that builds and meets
the clock, so parallel builds can only gain when that is not the first point: when the
fastest point is the winner, one after another is one build, and on two workers it is
the same one build (the second worker's build is stopped). The case measured here is
one where the fastest point misses the clock: the digits MLP on the iCEBreaker (GN τ=2,
T=1, 6-bit weights, 1 lane; the design space narrowed to that, whose Pareto front is the
point with the multiply-accumulate input stage on the DSPs, 8 times faster, and the one
without), picked for a 40 MHz PLL clock (39 MHz: what the UP5K's PLL makes), which the
DSP input stage's Fmax misses and the plain one meets. One after another it is two
builds; on two workers both run at once and the second is the answer as soon as the
first has failed.

    .venv/bin/python benchmarks/dask_pick.py [--clock 40] [--samples 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hwsnn import boards
from hwsnn.flow import explore


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="digits-mlp")
    p.add_argument("--board", default="icebreaker")
    p.add_argument("--clock", type=float, default=40.0, help="the PLL clock (MHz) the pick "
                   "must meet")
    p.add_argument("--samples", type=int, default=8, help="simulated samples of the winner")
    p.add_argument("--workers", type=int, default=2, help="the parallel run's workers")
    p.add_argument("--repeats", type=int, default=1, help="runs of each, alternating (1 "
                   "worker, then N); the figures are the fastest of each (the machine is "
                   "shared: the other work on it slows some runs)")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--keep", metavar="DIR", help="keep both picks' directories in DIR")
    args = p.parse_args(argv)
    board = boards.get(args.board)
    t = time.perf_counter()
    result = explore.search(args.model, board, progress=False, methods=(("gn", 2),),
                            steps=(1,), weight_bits=(6,), lanes=(1,), queues=(None,))
    search_s = time.perf_counter() - t
    labels = [explore.Point(**q).label() for q in result["front"]]
    print(f"front ({len(labels)} points, search {search_s:.1f} s): {'; '.join(labels)}",
          file=sys.stderr)
    work = Path(args.keep or tempfile.mkdtemp(prefix="hwsnn-dask-pick-"))
    runs, walls, picks = {}, {1: [], args.workers: []}, []
    try:
        for workers in (1, args.workers) * args.repeats:
            directory = work / f"workers{workers}"
            shutil.rmtree(directory, ignore_errors=True)
            load = os.getloadavg()[0]
            t = time.perf_counter()
            got = explore.pick(result, board, directory, samples=args.samples,
                               progress=False, clock=args.clock, workers=workers)
            wall = time.perf_counter() - t
            picks.append(got)
            walls[workers].append({"wall_s": wall, "load_before": load,
                                   "load_after": os.getloadavg()[0]})
            if workers not in runs or wall < runs[workers]["wall_s"]:
                runs[workers] = {"wall_s": wall, "picked": got}
            print(f"{workers} worker(s): {wall:.1f} s, picked "
                  f"{explore.Point(**got['point']).label()}, passed over "
                  f"{got['passed_over']}; load average {load:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    one = runs[1]["picked"]

    def same(a, b):  # the figures, whatever the directory
        strip = {**a, "directory": None, "build": {**a["build"], "bitstream": None}}
        other = {**b, "directory": None, "build": {**b["build"], "bitstream": None}}
        return strip == other
    out = {"model": args.model, "board": board.name, "clock_mhz": args.clock,
           "front": labels, "search_s": search_s, "cpus": len(os.sched_getaffinity(0)),
           "serial_s": runs[1]["wall_s"], "parallel_s": runs[args.workers]["wall_s"],
           "workers": args.workers, "repeats": args.repeats,
           "runs": {"serial": walls[1], "parallel": walls[args.workers]},
           "speedup": runs[1]["wall_s"] / runs[args.workers]["wall_s"],
           "same_answer": all(same(one, got) for got in picks),
           "picked": explore.Point(**one["point"]).label(),
           "passed_over": one["passed_over"], "fmax_mhz": one["build"]["fmax_mhz"],
           "pll_clock_mhz": one["build"]["clock_mhz"],
           "exact": all(got["simulation"]["exact"] for got in picks)}
    print(f"explore --pick {args.model} on {board.name} at {args.clock:g} MHz: 1 worker "
          f"{out['serial_s']:.1f} s, {args.workers} workers {out['parallel_s']:.1f} s: "
          f"{out['speedup']:.2f}x; same answer: {out['same_answer']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out["same_answer"] else 1


if __name__ == "__main__":
    sys.exit(main())
