"""Hardware figures of two revisions of hwsnn, side by side: did a change that should not
change the hardware keep it?

For each git revision given (default: ``HEAD`` and the working tree), the bench's board
designs (``hwsnn.tools.bench.DESIGNS`` and the MNIST MLP, every one at its board's own clock so
that nextpnr runs once, seed 1) are built with that revision's code, and its designs are
simulated in Verilator on the same test samples. Printed and written as JSON: logic
cells / LUTs, flip-flops, RAM blocks, DSPs, post-route Fmax, and the cycles per inference
against the golden model's ideal, with the change of each figure in percent.

    python benchmarks/revisions.py --before 4bfc6df --json build/revisions.json
    python benchmarks/revisions.py --before 4bfc6df --only mlp/icebreaker --samples 20

``--edges N`` compares behaviour edge for edge instead: each ``rtl/`` example design as
the before revision committed it (``git show REV:rtl/TOP.v``) and as this working tree
generates it are simulated in Verilator on N test samples with 30 % random stalls, and
their records (the clock edge of every pixel taken, readout beat and debug-tap event,
and each engine's work counter) must be identical.

    python benchmarks/revisions.py --before 4bfc6df --edges 20

A revision is checked out into a temporary clone and imported from there (the same
Python environment, so the dependencies must not differ). ``--after`` defaults to the
working tree as it is (uncommitted changes included). Measuring one side alone
(``--measure DIR``) is what each side runs in its own process.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    """This process's ``hwsnn.tools.bench`` (``hwsnn.bench`` in a revision from before
    the package was grouped by stage; decided by the files of the tree imported, since
    an editable install of another tree would find its own ``hwsnn.tools``)."""
    import hwsnn
    flat = not (Path(hwsnn.__file__).parent / "tools" / "bench.py").is_file()
    return importlib.import_module("hwsnn.bench" if flat else "hwsnn.tools.bench")


def designs(only=None):
    bench = _bench()
    out = []
    for d in (*bench.DESIGNS, *bench.MNIST_DESIGNS[:1]):
        for b in d.boards:
            if only and f"{d.name}/{b}" not in only:
                continue
            out.append((dataclasses.replace(d, clock="board"), b))
    return out


def _board_build(bench, d, board: str, work: Path, seed: int) -> dict:
    """``bench.board_build`` at nextpnr ``seed``, also for a revision whose
    ``board_build`` has no seed parameter (its ``build`` is given the seed)."""
    if "seed" in inspect.signature(bench.board_build).parameters:
        return bench.board_build(d, board, work, seed=seed)
    flow_build = importlib.import_module(  # (hwsnn.build before the regrouping)
        "hwsnn.build" if bench.__name__ == "hwsnn.bench" else "hwsnn.flow.build")
    plain = flow_build.build
    flow_build.build = functools.partial(plain, seed=seed)
    try:
        return bench.board_build(d, board, work)
    finally:
        flow_build.build = plain


def measure(work: Path, samples: int, only, boards: bool, seed: int = 1) -> dict:
    """This process's hwsnn: every design simulated and built."""
    import hwsnn
    bench = _bench()
    work.mkdir(parents=True, exist_ok=True)
    result = {"hwsnn": str(Path(hwsnn.__file__).parent), "designs": []}
    seen = set()
    for d, b in designs(only):
        row = {"design": d.name, "board": b, "describe": d.describe()}
        if d.name not in seen and samples:
            seen.add(d.name)
            t = time.time()
            s = bench.simulation(d, samples, work / "sim")
            row["simulation"] = {k: s[k] for k in ("samples", "exact", "mismatches",
                                                   "cycles_per_inference",
                                                   "ideal_cycles_per_inference",
                                                   "cycle_ratio", "latency_cycles")}
            print(f"  {d.name}: simulated {samples} samples in {time.time() - t:.0f} s, "
                  f"exact {s['exact']}, cycle ratio {s['cycle_ratio']:.4f}", flush=True)
        if boards:
            t = time.time()
            r = _board_build(bench, d, b, work / "boards", seed)
            row["build"] = {"fits": r["fits"], "fmax_mhz": r["fmax_mhz"], "seed": r.get("seed"),
                            "resources": {k: v["used"] for k, v in r["resources"].items()},
                            "latency_cycles": r["latency_cycles"],
                            "seconds": time.time() - t}
            print(f"  {d.name}/{b}: built in {time.time() - t:.0f} s, "
                  f"Fmax {r['fmax_mhz']:.1f} MHz (seed {r.get('seed')}), "
                  f"{row['build']['resources']}", flush=True)
        result["designs"].append(row)
    return result


def run_side(label: str, rev: str | None, args) -> dict:
    """Measure one revision in its own process (``rev`` None: this working tree)."""
    with tempfile.TemporaryDirectory(prefix=f"hwsnn-rev-{label}-") as tmp:
        tree = ROOT
        if rev is not None:
            tree = Path(tmp) / "tree"
            subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(tree)],
                           check=True)
            subprocess.run(["git", "-C", str(tree), "checkout", "-q", rev], check=True)
        out = Path(tmp) / "side.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", str(out),
               "--work", str(Path(tmp) / "work"), "--samples", str(args.samples),
               "--seed", str(args.seed)]
        cmd += [x for o in args.only or () for x in ("--only", o)]
        cmd += [] if args.boards else ["--no-boards"]
        env = dict(os.environ, PYTHONPATH=str(tree))
        print(f"{label}: {rev or 'working tree'} ({tree})", flush=True)
        subprocess.run(cmd, check=True, env=env, cwd=tree)
        side = json.loads(out.read_text())
        side["revision"] = rev or "working tree"
        if rev is not None:
            side["commit"] = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()
        return side


def edges(rev: str, samples: int, stall: float = 0.3, seed: int = 7) -> list[dict]:
    """Every rtl/ example: ``rev``'s committed Verilog against this tree's, edge for edge."""
    from hwsnn.hdl import verilog
    from hwsnn.sim.run import simulate
    from hwsnn.tools.examples import EXAMPLES, example_qnet

    def show(path):
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
                              capture_output=True, text=True, check=True).stdout

    rows = []
    with tempfile.TemporaryDirectory(prefix="hwsnn-edges-") as tmp:
        for top, spec in EXAMPLES.items():
            d = Path(tmp) / top
            d.mkdir()
            net = example_qnet(top)
            net.save(d)
            verilog.write(d, net, lanes=spec[-1], top=top)
            old = d / "before.v"
            old.write_text(show(f"rtl/{top}.v"))
            ports_same = (json.loads(show(f"rtl/{top}.json")).get("ports")
                          == json.loads((d / "rtl" / f"{top}.json").read_text()).get("ports"))
            records = {}
            for side, path in (("before", old), ("after", None)):
                rep = simulate(d, samples=samples, stall=stall, seed=seed, progress=False,
                               verilog_path=str(path) if path else None,
                               work_dir=d / f"sim-{side}")
                rec = json.loads((d / f"sim-{side}" / "record.json").read_text())
                records[side] = ({k: v for k, v in rec.items()
                                  if k not in ("wall_s", "read_s", "sim_s")}, rep)
            (a, ra), (b, rb) = records["before"], records["after"]
            row = {"design": top, "ports_same": ports_same, "edges": a.get("cycles"),
                   "exact": [ra.exact, rb.exact],
                   "differing": sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)),
                   "tap_events": sum(len(v) for v in a.get("taps", {}).values()),
                   "readout_beats": len(a.get("readout", []))}
            row["identical"] = ports_same and not row["differing"]
            print(f"{top}: {'identical' if row['identical'] else 'DIFFERENT'} "
                  f"({row['edges']} edges, {row['tap_events']} tap events, "
                  f"{row['readout_beats']} readout beats; exact before/after {row['exact']}"
                  + (f"; differing: {row['differing']}" if row["differing"] else "") + ")",
                  flush=True)
            rows.append(row)
    return rows


def _pct(a, b) -> str:
    if a is None or b is None:
        return "n/a"
    if a == b:
        return "0"
    return f"{100 * (b - a) / a:+.2f} %" if a else "new"


def compare(before: dict, after: dict) -> list[dict]:
    rows = []
    measured = {(y["design"], y["board"]): y for y in after["designs"]}
    for x in before["designs"]:
        y = measured.get((x["design"], x["board"]))
        if y is None:  # (not measured on this side: --only)
            continue
        row = {"design": x["design"], "board": x["board"], "figures": []}
        if "simulation" in x and "simulation" in y:
            for k in ("cycles_per_inference", "cycle_ratio", "latency_cycles"):
                row["figures"].append((k, x["simulation"][k], y["simulation"][k]))
            row["figures"].append(("exact", x["simulation"]["exact"],
                                   y["simulation"]["exact"]))
        if "build" in x and "build" in y:
            row["figures"].append(("fmax_mhz", x["build"]["fmax_mhz"],
                                   y["build"]["fmax_mhz"]))
            for k in x["build"]["resources"]:
                row["figures"].append((k, x["build"]["resources"][k],
                                       y["build"]["resources"].get(k)))
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="HEAD", help="git revision measured first")
    ap.add_argument("--after", default=None,
                    help="git revision measured second (default: the working tree)")
    ap.add_argument("--samples", type=int, default=100,
                    help="test samples simulated per design (0: none)")
    ap.add_argument("--only", action="append", help="DESIGN/BOARD, repeatable")
    ap.add_argument("--no-boards", dest="boards", action="store_false")
    ap.add_argument("--seed", type=int, default=1,
                    help="nextpnr seed of every build (a build whose placer gives up moves "
                         "on to the next seeds)")
    ap.add_argument("--before-json", type=Path,
                    help="the before side's figures: read from this file if it exists "
                         "(measured earlier by this script), else measured and kept there")
    ap.add_argument("--before-only", action="store_true",
                    help="measure (or read) the before side and stop")
    ap.add_argument("--json", type=Path, help="write both sides and the comparison here")
    ap.add_argument("--edges", type=int, metavar="N",
                    help="compare the rtl/ examples edge for edge on N samples instead")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        args.measure.write_text(json.dumps(measure(args.work, args.samples, args.only,
                                                   args.boards, args.seed), indent=1))
        return 0
    start = time.time()
    if args.edges:
        rows = edges(args.before, args.edges)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"before": args.before, "edges": rows}, indent=1))
        return 0 if all(r["identical"] for r in rows) else 1
    if args.before_json and args.before_json.is_file():
        before = json.loads(args.before_json.read_text())
        print(f"before: {before['revision']} {before.get('commit', '')}, read from "
              f"{args.before_json}")
    else:
        before = run_side("before", args.before, args)
        if args.before_json:
            args.before_json.parent.mkdir(parents=True, exist_ok=True)
            args.before_json.write_text(json.dumps(before, indent=1))
    if args.before_only:
        return 0
    after = run_side("after", args.after, args)
    rows = compare(before, after)
    print(f"\nbefore: {before['revision']} {before.get('commit', '')}\n"
          f"after:  {after['revision']} {after.get('commit', '')}\n")
    print(f"{'design':<26}{'figure':<28}{'before':>14}{'after':>14}{'change':>12}")
    for row in rows:
        for k, a, b in row["figures"]:
            fa = f"{a:.2f}" if isinstance(a, float) else str(a)
            fb = f"{b:.2f}" if isinstance(b, float) else str(b)
            change = _pct(a, b) if not isinstance(a, bool) else ("same" if a == b else "DIFF")
            print(f"{row['design'] + '/' + row['board']:<26}{k:<28}{fa:>14}{fb:>14}"
                  f"{change:>12}")
    print(f"\n{time.time() - start:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"before": before, "after": after,
                                         "comparison": rows,
                                         "seconds": time.time() - start}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
