"""Golden-model throughput: samples/s of the integer golden model, batched, against a
plain per-step float simulation of the same network (the float SNN simulator) and against
the golden model run one sample at a time. All measured in one run, reported as ratios.

    .venv/bin/python benchmarks/golden_throughput.py [--model digits-cnn] [--timesteps 4]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hwsnn.frontends import data
from hwsnn.frontends.pytorch import trace
from hwsnn.models import BUNDLED
from hwsnn.snn import floatsim, golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-cnn", choices=sorted(BUNDLED))
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--method", default="gn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # comparable figures on a shared machine
    x, _ = data.load(BUNDLED[args.model].dataset, "test")
    graph = trace(BUNDLED[args.model].load(), x[:2])
    snn = convert(graph, method=args.method, timesteps=args.timesteps, progress=False)
    net = quantize(snn)
    codes = golden.encode(net, x)
    single = codes[:32]
    t_golden = best_of(lambda: golden.run(net, codes), args.repeats)
    t_float = best_of(lambda: floatsim.run(snn, x), args.repeats)
    t_single = best_of(lambda: [golden.run(net, single[i:i + 1]) for i in range(len(single))],
                       args.repeats)
    r = {"model": args.model, "method": args.method, "timesteps": args.timesteps,
         "samples": len(x), "threads": 1,
         "golden_batched_samples_per_s": len(x) / t_golden,
         "float_per_step_samples_per_s": len(x) / t_float,
         "golden_one_at_a_time_samples_per_s": len(single) / t_single}
    r["golden_vs_float_ratio"] = r["golden_batched_samples_per_s"] / \
        r["float_per_step_samples_per_s"]
    r["batched_vs_one_at_a_time_ratio"] = r["golden_batched_samples_per_s"] / \
        r["golden_one_at_a_time_samples_per_s"]
    if args.json:
        print(json.dumps(r))
        return
    print(f"{args.model}, {args.method}, T={args.timesteps}, {len(x)} samples, 1 thread")
    print(f"  integer golden, batched      {r['golden_batched_samples_per_s']:9.0f} samples/s")
    print(f"  float SNN, per-step, batched {r['float_per_step_samples_per_s']:9.0f} samples/s")
    print(f"  integer golden, one by one   {r['golden_one_at_a_time_samples_per_s']:9.0f} "
          "samples/s")
    print(f"  golden / float: {r['golden_vs_float_ratio']:.2f}×   batched / one by one: "
          f"{r['batched_vs_one_at_a_time_ratio']:.1f}×")


if __name__ == "__main__":
    main()
