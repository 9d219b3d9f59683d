"""Offset-spike calibration (cos) in hardware against IF at the same T: bit-exactness in
Verilator, cycles per inference (measured and the golden model's ideal), accuracy on the
whole test split, and what the calibration costs in memory and logic on a board.

Per design (the bundled digits MLP on the iCEBreaker, the digits CNN on the ULX3S-85F,
each at the lanes of `hwsnn bench`): IF and COS(ρ) at T steps, each converted with 8-bit
weights, written as Verilog and simulated on ``--samples`` test images. Memory and logic
come from the estimate the fit check uses (no tools); ``--build`` also places and routes
both on their board (minutes each) for logic, block RAMs and Fmax.

    .venv/bin/python benchmarks/cos_hardware.py                 # 200 samples each
    .venv/bin/python benchmarks/cos_hardware.py --build --record

``--record`` keeps the figures in benchmarks/figures/cos_hardware.json, from which
`hwsnn bench` renders a section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hwsnn import boards
from hwsnn.hdl.estimate import estimate
from hwsnn.hdl.plan import NetworkPlan
from hwsnn.snn import golden
from hwsnn.snn.qnet import load
from hwsnn.tools.bench import (
    COS_JSON,
    FIGURES,
    Design,
    _graph,
    board_build,
    cos_table,
    record_figures,
    simulation,
)

# (model, lanes, board)
TARGETS = (("digits-mlp", 1, "icebreaker"), ("digits-cnn", 16, "ulx3s-85f"))


def measure(model: str, lanes: int, board_name: str, method: str, args, work: Path) -> dict:
    d = Design(f"{model}-{method}", model, method, args.timesteps, None, lanes)
    sim = simulation(d, args.samples, work)
    net = load(work / d.name)
    assert net.method == method and net.cos_steps == (8 if method == "cos" else 0), \
        "hwsnn.tools.bench converts cos with ρ = 8"
    _, x, y = _graph(model)
    accuracy = float((golden.run(net, golden.encode(net, x)).predictions == y)
                     .double().mean())
    board = boards.get(board_name)
    est = estimate(NetworkPlan(net, lanes), board.device)
    stats = sum(m.bits for m in est.memories if m.name == "cos statistics")
    membranes = sum(m.bits for m in est.memories if m.name == "membranes")
    queues = sum(m.bits for m in est.memories if m.name == "output queue")
    row = {"model": model, "method": method, "rho": net.cos_steps,
           "timesteps": net.timesteps, "lanes": lanes,
           "board": board.name, "samples": sim["samples"], "exact": sim["exact"],
           "mismatches": sim["mismatches"], "cycles": sim["cycles_per_inference"],
           "ideal_cycles": sim["ideal_cycles_per_inference"],
           "cycle_ratio": sim["cycle_ratio"], "latency_cycles": sim["latency_cycles"],
           "accuracy": accuracy, "test_samples": len(y),
           "estimate": {est.logic_kind: est.logic, "ffs": est.ffs,
                        "bram_blocks": est.bram_blocks,
                        "memory_bits": sum(m.bits for m in est.memories),
                        "membrane_bits": membranes, "statistics_bits": stats,
                        "queue_bits": queues}}
    if args.build:
        b = board_build(d, board.name, work, seed=args.seed)
        row["build"] = {"fmax_mhz": b["fmax_mhz"], "seed": b["seed"],
                        **{k: v["used"] for k, v in b["resources"].items()}}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200, help="test images simulated")
    ap.add_argument("--timesteps", type=int, default=2, help="T of both methods")
    ap.add_argument("--build", action="store_true", help="also build for the boards")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr seed of --build")
    ap.add_argument("--only", choices=[t[0] for t in TARGETS], action="append")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--record", action="store_true",
                    help=f"write them to {FIGURES}/{COS_JSON} for BENCHMARKS.md")
    args = ap.parse_args(argv)
    command = "python benchmarks/cos_hardware.py " + " ".join(argv or sys.argv[1:])
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwsnn-cos-") as tmp:
        for model, lanes, board in TARGETS:
            if args.only and model not in args.only:
                continue
            for method in ("if", "cos"):
                print(f"{model} {method}: converting, simulating {args.samples} samples"
                      f"{', building' if args.build else ''}…", file=sys.stderr, flush=True)
                rows.append(measure(model, lanes, board, method, args, Path(tmp)))
    print("\n".join(cos_table(rows)))
    record_figures(rows, command, COS_JSON, json_path=args.json, record=args.record)
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
