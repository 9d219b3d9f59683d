"""Exactness at scale: random networks through the engines and as whole designs in Verilator.

Two sweeps, each over a numbered list of cases that a seed determines completely (a case
that fails is reproduced by its seed alone, and the CI keeps such seeds as fixed tests):

- ``engines``: random QNets (``hwsnn.snn.random_nets``: the classic draws and the draws at the
  limits, every method) with random lane counts, sometimes the multiply-accumulate input
  stage; every population's engine is simulated in amaranth.sim with random back-pressure
  against the golden model (``hdl.check.check_engine``).
- ``networks``: random QNets written as Verilog (``hwsnn verilog``) and simulated in
  Verilator against the golden model (``hwsnn sim``: every readout value, class and spike).

Both fan out over Dask workers (``hwsnn.tools.cluster``: a local cluster of one process per core
by default, or an existing one with ``--scheduler``); the results are in case order
whatever the number of workers. ``python -m hwsnn.tools.exactness`` runs them from the shell;
``hwsnn bench`` reports them in BENCHMARKS.md.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from ..errors import HwsnnError
from ..snn.random_nets import METHODS, limit_qnet, random_codes, random_qnet
from .cluster import check_workers, default_workers

LANES = (1, 2, 3, 4, 16)


def draw(seed: int):
    """Case ``seed``: (QNet, input codes, lanes, input lanes, description). Even seeds draw
    at the limits, odd ones the classic networks; the method cycles through METHODS."""
    from ..hdl.plan import mac_eligible

    rng = random.Random(seed)
    method = METHODS[(seed // 2) % len(METHODS)]
    if seed % 2 == 0:
        generator, net = "limit", limit_qnet(rng, method)
        codes = random_codes(rng, net, 2)
    else:
        # (the classic generator knows IF as GN with τ = 1)
        generator, net = "classic", random_qnet(rng, "gn" if method == "if" else method)
        codes = random_codes(rng, net, 2)
    lanes = rng.choice(LANES)
    input_lanes = 0
    if any(mac_eligible(net, p) for p in net.populations) and rng.random() < 0.3:
        input_lanes = lanes * rng.choice([1, 2, 4])
    info = {"seed": seed, "generator": generator, "method": net.method, "lanes": lanes,
            "input_lanes": input_lanes, "populations": len(net.populations)}
    return net, codes, lanes, input_lanes, info


def engine_case(seed: int) -> dict:
    """Every engine of case ``seed`` against the golden model."""
    from ..hdl.check import check_engine

    net, codes, lanes, input_lanes, info = draw(seed)
    info.update(engines=0, failures=[], refused=[])
    for pop in net.populations:
        try:
            report = check_engine(net, pop.name, codes, lanes=lanes, input_lanes=input_lanes,
                                  busy=0.25, seed=seed)
        except HwsnnError as exc:  # a configuration the engines refuse, with a reason
            info["refused"].append(f"{pop.name}: {exc}")
            continue
        except Exception:  # noqa: BLE001 - a crash is a failure, reported with its trace
            info["failures"].append(f"{pop.name}: {traceback.format_exc(limit=3)}")
            continue
        info["engines"] += 1
        if not report.ok:
            info["failures"].append(f"{pop.name}: {'; '.join(report.mismatches[:3])}")
    info["ok"] = not info["failures"]
    return info


def network_case(seed: int, work: str, samples: int = 3) -> dict:
    """Case ``seed`` as a whole design in Verilator against the golden model."""
    from ..hdl import verilog
    from ..sim.run import simulate

    net, codes, lanes, input_lanes, info = draw(seed)
    codes = random_codes(random.Random(seed + 1), net, samples)
    directory = Path(work) / f"net{seed}"
    shutil.rmtree(directory, ignore_errors=True)
    net.save(directory)
    np.savez(directory / "data.npz", x=(codes.double() / 255).numpy(),
             y=np.zeros(len(codes), dtype=np.int64))
    info.update(samples=samples, failures=[], refused=[])
    try:
        verilog.write(directory, net, lanes=lanes, input_lanes=input_lanes)
        report = simulate(directory, simulator="verilator", samples=samples,
                          data_path=str(directory / "data.npz"), progress=False,
                          waves_on_mismatch=False)
    except HwsnnError as exc:
        info["refused"].append(str(exc))
    except Exception:  # noqa: BLE001
        info["failures"].append(traceback.format_exc(limit=3))
    else:
        info["build_seconds"], info["sim_seconds"] = report.build_seconds, report.sim_seconds
        if not report.exact:
            r = report.to_json()
            info["failures"].append(r["first_divergence_text"] or "not exact")
    info["ok"] = not info["failures"]
    if info["ok"]:
        shutil.rmtree(directory, ignore_errors=True)
    return info


def _call(item):
    fn, args = item
    return fn(*args)


def _pool_map(fn, args, workers: int | None, progress: bool, what: str,
              scheduler: str | None = None) -> list:
    """``[fn(*a) for a in args]`` on Dask workers (``hwsnn.tools.cluster.map_ordered``: one
    process per core by default, or the cluster at ``scheduler``), in order."""
    from .cluster import map_ordered
    return map_ordered(_call, [(fn, a) for a in args], scheduler=scheduler, workers=workers,
                       desc=what, progress=progress)


def _summary(cases: list[dict], seconds: float, workers: int) -> dict:
    by_method: dict[str, dict] = {}
    for c in cases:
        row = by_method.setdefault(c["method"], {"tried": 0, "failed": 0})
        row["tried"] += 1
        row["failed"] += not c["ok"]
    return {"tried": len(cases), "failed": sum(not c["ok"] for c in cases),
            "refused": sum(bool(c["refused"]) for c in cases),
            "failed_seeds": [c["seed"] for c in cases if not c["ok"]],
            "by_method": by_method, "seconds": seconds, "workers": workers,
            "cases": cases}


def _workers_text(workers: int | None, scheduler: str | None):
    return scheduler if scheduler is not None else (workers or default_workers())


def engines(count: int = 2000, *, first_seed: int = 0, workers: int | None = None,
            progress: bool = True, scheduler: str | None = None) -> dict:
    """``count`` random networks, every engine against the golden model."""
    check_workers(workers)
    start = time.time()
    cases = _pool_map(engine_case, [(first_seed + i,) for i in range(count)], workers,
                      progress, "random engines", scheduler)
    out = _summary(cases, time.time() - start, _workers_text(workers, scheduler))
    out["engines"] = sum(c["engines"] for c in cases)
    return out


def _network_task(seed: int, work: str, samples: int, ccache: bool) -> dict:
    """``network_case`` with Verilator's make flags set on the worker that runs it: the
    designs are tiny, compiled unoptimised, Verilator's run-time library in ccache where
    there is one."""
    flags = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    if ccache and shutil.which("ccache"):
        flags += " OBJCACHE=ccache"
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{old} {flags}".strip() if old else flags
    try:
        return network_case(seed, work, samples)
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def networks(count: int = 200, *, first_seed: int = 0, workers: int | None = None,
             samples: int = 3, progress: bool = True, scheduler: str | None = None) -> dict:
    """``count`` random networks as Verilog in Verilator against the golden model (in a
    temporary directory the workers must see: with ``scheduler``, a shared file system)."""
    check_workers(workers)
    work = tempfile.mkdtemp(prefix="hwsnn-exactness-")
    start = time.time()
    cases = _pool_map(_network_task, [(first_seed + i, work, samples, True)
                                      for i in range(count)],
                      workers, progress, "random networks in Verilator", scheduler)
    out = _summary(cases, time.time() - start, _workers_text(workers, scheduler))
    out["samples"] = samples
    if not out["failed"]:
        shutil.rmtree(work, ignore_errors=True)
    else:
        out["work"] = work
    return out


def main(argv=None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m hwsnn.tools.exactness", description=__doc__
                                .splitlines()[0])
    p.add_argument("--engines", type=int, default=2000, help="random networks whose every "
                   "engine is checked (default 2000)")
    p.add_argument("--networks", type=int, default=200, help="random networks simulated "
                   "whole in Verilator (default 200)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="Dask worker processes of a local cluster "
                   "(default: one per core)")
    p.add_argument("--scheduler", metavar="ADDR", help="run on the Dask cluster at ADDR "
                   "(tcp://HOST:PORT) instead of a local one")
    p.add_argument("--json", metavar="FILE", help="write every case as JSON")
    args = p.parse_args(argv)
    out = {}
    if args.engines:
        out["engines"] = engines(args.engines, first_seed=args.first_seed,
                                 workers=args.workers, scheduler=args.scheduler)
    if args.networks:
        out["networks"] = networks(args.networks, first_seed=args.first_seed,
                                   workers=args.workers, scheduler=args.scheduler)
    for name, r in out.items():
        print(f"{name}: {r['tried']} random networks, {r['failed']} failed "
              f"({r['refused']} with a refused population), {r['seconds']:.0f} s on "
              f"{r['workers']} workers" + (f"; failing seeds {r['failed_seeds']}"
                                            if r["failed"] else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0 if all(not r["failed"] for r in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
