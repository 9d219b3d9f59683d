"""Fault injection into the bundled designs: catch rate and location of the first
divergence.

For every bundled design (``rtl/``) and every population, readout included, it takes the
``--faults`` largest weights whose zeroing the golden model shows on test sample 0
(``hwsnn.sim.faults``), writes each into the ROM of the bundled Verilog, and simulates the
corrupted file with ``hwsnn sim --verilog`` (one sample, stopping at the first wrong
event). A fault is caught when the design differs from the golden model, and located
when the first divergence names its population, its first differing step and a neuron
(or readout index) that differs there, with the corrupted network's value.

    .venv/bin/python benchmarks/faults.py --faults 5 --json build/bench/faults.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

from hwsnn.hdl import examples, verilog
from hwsnn.sim.faults import with_weights_of, zeroed_weights
from hwsnn.sim.run import ALL_SIMULATORS, simulate

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faults", type=int, default=5, help="faults per population")
    ap.add_argument("--designs", nargs="+", default=list(examples.EXAMPLES),
                    choices=list(examples.EXAMPLES))
    ap.add_argument("--simulator", default="icarus-sv", choices=ALL_SIMULATORS)
    ap.add_argument("--out", default="build/bench/faults", help="working directory")
    ap.add_argument("--json", metavar="FILE", help="write every fault and result here")
    args = ap.parse_args()

    rows = []
    t_all = time.time()
    for top in args.designs:
        d = Path(args.out) / top
        shutil.rmtree(d, ignore_errors=True)
        (d / "rtl").mkdir(parents=True)
        net = examples.example_qnet(top)
        net.save(d)
        for ext in (".v", ".json", ".md"):
            shutil.copy(ROOT / "rtl" / f"{top}{ext}", d / "rtl" / f"{top}{ext}")
        text = (d / "rtl" / f"{top}.v").read_text()
        codes, _ = verilog.example_codes(net)
        lanes = examples.EXAMPLES[top][4]
        for pop in net.populations:
            faults = list(itertools.islice(zeroed_weights(net, pop.name, codes),
                                           args.faults))
            for fault in faults:
                path = d / "corrupted.v"
                path.write_text(with_weights_of(text, top, net, fault.apply(net), pop.name,
                                                lanes))
                t = time.time()
                report = simulate(d, simulator=args.simulator, samples=1,
                                  verilog_path=str(path), progress=False,
                                  waves_on_mismatch=False, stop_at_divergence=True)
                first = report.comparison.first
                located = first is not None and (
                    first.population == pop.name and first.sample == 0
                    and first.step == fault.step and first.neuron is not None
                    and fault.differences.get(tuple(first.neuron))
                    == (first.expected, first.observed))
                rows.append({"design": top, "population": pop.name,
                             "weight": list(fault.index), "value": fault.weight,
                             "caught": not report.exact, "located": bool(located),
                             "first_divergence": report.to_json()["first_divergence_text"],
                             "seconds": time.time() - t})
                print(f"{top} {pop.name} W{list(fault.index)} = {fault.weight} -> 0: "
                      f"{'caught' if rows[-1]['caught'] else 'MISSED'}, "
                      f"{'located' if located else 'NOT LOCATED'}: "
                      f"{rows[-1]['first_divergence']} ({rows[-1]['seconds']:.1f} s)",
                      flush=True)
            if len(faults) < args.faults:
                print(f"{top} {pop.name}: only {len(faults)} of the largest weights change "
                      "sample 0", flush=True)
    print()
    print(f"{'design':16s} {'population':10s} {'faults':>6s} {'caught':>6s} {'located':>7s}")
    summary = []
    for (top, pop), group in itertools.groupby(rows, key=lambda r: (r["design"],
                                                                     r["population"])):
        group = list(group)
        summary.append({"design": top, "population": pop, "faults": len(group),
                        "caught": sum(r["caught"] for r in group),
                        "located": sum(r["located"] for r in group)})
        s = summary[-1]
        print(f"{top:16s} {pop:10s} {s['faults']:6d} {s['caught']:6d} {s['located']:7d}")
    n = len(rows)
    caught = sum(r["caught"] for r in rows)
    located = sum(r["located"] for r in rows)
    print(f"{n} faults: {caught} caught ({100 * caught / max(n, 1):.1f} %), {located} located "
          f"({100 * located / max(n, 1):.1f} %); {args.simulator}; "
          f"{time.time() - t_all:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"simulator": args.simulator, "rows": rows,
                                               "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
