"""Dask fan-out: wall time of the same work on a local cluster of 1 worker and of 2.

Each case is run on a ``LocalCluster`` of one single-threaded worker process, then on one
of two, in the same run: the clusters are started and warmed first (imports, and for the
simulation regression every worker's own Verilator build), so the times compare the work
itself; the start-up of each cluster is reported apart. Each timing is taken ``--repeat``
times, alternating the clusters, and the fastest kept (the machines are shared and
noisy). The results on 1 and 2 workers must be identical (timing aside): the script
checks it.

    .venv/bin/python benchmarks/dask_speedup.py --samples all --shard-size 50 \\
        --json build/bench/dask_speedup.json

Cases (``CASES``): ``sim-regression`` (``hwsnn sim DIR --samples all`` on digits-mlp GN
T=2, 16 lanes, in Verilator, sharded); room for more (``explore --pick``...): a case is a
name, a ``setup(args, out)`` that returns its state, a ``warm(state, client)`` that runs
on every worker once, and a ``run(state, scheduler)`` that returns (result to compare,
what it did).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Case:
    name: str
    setup: object  # (args, out: Path) -> state
    warm: object  # (state, client) -> None: once on every worker of the cluster
    run: object  # (state, scheduler: str) -> (comparable result, description dict)


# ---------------------------------------------------------------------------------------
# sim-regression


def _sim_setup(args, out: Path):
    from hwsnn.frontends.pytorch import trace
    from hwsnn.hdl import verilog
    from hwsnn.models import BUNDLED
    from hwsnn.snn.convert import convert
    from hwsnn.snn.qnet import load as load_qnet
    from hwsnn.snn.quantize import quantize
    directory = out / f"{args.model}-gn-T2-P{args.lanes}"
    if not (directory / "qnet.json").is_file():
        spec = BUNDLED[args.model]
        graph = trace(spec.load(), torch.zeros(2, *spec.input_shape))
        net = quantize(convert(graph, method="gn", timesteps=2, group_size=4,
                               progress=False))
        directory.mkdir(parents=True, exist_ok=True)
        net.save(directory)
        verilog.write(directory, net, lanes=args.lanes)
    load_qnet(directory)
    samples = args.samples if args.samples == "all" else int(args.samples)
    return {"directory": directory, "samples": samples, "shard_size": args.shard_size}


def _sim_warm(state, client):
    """One one-sample shard on every worker, each pinned to it: every worker imports the
    simulation code and builds (or finds) Verilator in its own work slot."""
    from hwsnn.sim.regress import run_shard
    futures = [client.submit(run_shard, {
        "design": 0, "index": 0, "directory": str(Path(state["directory"]).resolve()),
        "simulator": "verilator", "offset": 0, "samples": 1, "top": None, "stall": 0.0,
        "seed": 0, "data_path": None, "bench": "free"}, workers=[w],
        allow_other_workers=False, pure=False) for w in client.scheduler_info()["workers"]]
    for f in futures:
        f.result()


def _sim_run(state, scheduler):
    from hwsnn.sim.regress import regress
    r = regress(state["directory"], simulator="verilator", samples=state["samples"],
                shard_size=state["shard_size"], scheduler=scheduler, progress=False)
    d = r["designs"][0]
    what = {"samples": r["samples"], "shards": d["shards"], "exact": r["exact"],
            "hardware_accuracy": d["hardware_accuracy"],
            "workers_used": r["timing"]["workers"]}
    return {k: v for k, v in r.items() if k != "timing"}, what


CASES = [
    Case("sim-regression", _sim_setup, _sim_warm, _sim_run),
    # explore --pick: filled in separately (same Case shape).
]


# ---------------------------------------------------------------------------------------


def _cluster(n: int):
    from dask.distributed import Client, LocalCluster
    t = time.time()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    client.wait_for_workers(n)
    return cluster, client, time.time() - t


def measure(case: Case, args, out: Path) -> dict:
    state = case.setup(args, out)
    clusters = {}
    try:
        for n in (1, 2):
            cluster, client, start_s = _cluster(n)
            clusters[n] = (cluster, client)
            t = time.time()
            case.warm(state, client)
            clusters[n] += (start_s, time.time() - t)
        times: dict[int, list[float]] = {1: [], 2: []}
        results, what = {}, {}
        loads = []
        for _ in range(args.repeat):
            for n in (1, 2):
                t = time.time()
                results[n], what[n] = case.run(state, clusters[n][0].scheduler_address)
                times[n].append(time.time() - t)
                loads.append(os.getloadavg()[0])
    finally:
        for cluster, client, *_ in clusters.values():
            client.close()
            cluster.close()
    same = json.dumps(results[1], sort_keys=True) == json.dumps(results[2], sort_keys=True)
    row = {"case": case.name, "what": what[2], "identical_results": same,
           "wall_s_1_worker": min(times[1]), "wall_s_2_workers": min(times[2]),
           "all_wall_s_1_worker": times[1], "all_wall_s_2_workers": times[2],
           "speedup": min(times[1]) / min(times[2]),
           "cluster_start_s": {n: c[2] for n, c in clusters.items()},
           "warm_s": {n: c[3] for n, c in clusters.items()},
           # The 1-minute load average after each timing: other work on the machine.
           "load_average": loads}
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=[c.name for c in CASES],
                    choices=[c.name for c in CASES])
    ap.add_argument("--model", default="digits-mlp")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--samples", default="all", help="a count or all (the test split)")
    ap.add_argument("--shard-size", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2, help="timings per cluster (fastest "
                    "kept), alternating 1 and 2 workers")
    ap.add_argument("--out", default="build/bench/dask", help="working directory")
    ap.add_argument("--json", metavar="FILE", help="write the figures here")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in CASES:
        if case.name not in args.cases:
            continue
        row = measure(case, args, out)
        rows.append(row)
        print(f"{row['case']}: {row['what']}\n  1 worker {row['wall_s_1_worker']:.2f} s, "
              f"2 workers {row['wall_s_2_workers']:.2f} s: speed-up "
              f"{row['speedup']:.2f}x (results identical: {row['identical_results']}; "
              f"cluster start-up {row['cluster_start_s'][1]:.1f} s / "
              f"{row['cluster_start_s'][2]:.1f} s, not counted)", flush=True)
    report = {"rows": rows, "cpus": len(os.sched_getaffinity(0)),
              "python": platform.python_version(),
              "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0 if all(r["identical_results"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
