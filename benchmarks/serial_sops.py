"""Effective synaptic operations per second per logic cell of whole board designs (issue 19),
against tinyODIN's in the same open flow.

For each build given (``DIR`` or ``DIR:BOARD``: the network converted in DIR, built with
``hwsnn build DIR --board BOARD``), the SOPs of one inference are the golden model's
(spike × fan-out; a group neuron's count c is c spikes) on the images the build's latency
was measured on (its data set's test split, else its fixed example image); the time of one
inference is the build's cycles per inference (the golden model's ideal cycles of its
architecture, which simulation matches: docs/serial.md) at its post-route Fmax; the cells
are the whole board design's as placed (iCE40 logic cells, ECP5 LUT4s: host link
included). tinyODIN's figures, from the same Yosys/nextpnr flow (issue 19): UP5K 11.4 MHz,
3,876 logic cells, 2 cycles per SOP ≈ 1,471 SOP/s per cell; ECP5-85F 37.5 MHz, 2,981
LUT4s ≈ 6,290.

    hwsnn convert mnist-cnn -o build/mnist-cnn --weight-bits 4 --timesteps 1
    hwsnn build build/mnist-cnn --board icebreaker
    python -c "from hwsnn.snn.random_nets import small_cifar_qnet as q; q().save('build/cifar')"
    hwsnn build build/cifar --board ulx3s-85f   # (about 5 min)
    .venv/bin/python benchmarks/serial_sops.py "build/mnist-cnn:icebreaker=MNIST CNN" \
        "build/cifar:ulx3s-85f=small CIFAR CNN" --record

``--record`` keeps the figures in benchmarks/figures/serial_sops.json, from which
``hwsnn bench`` renders BENCHMARKS.md's section on them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from hwsnn.flow.build import latency_codes
from hwsnn.snn import golden
from hwsnn.snn.qnet import load
from hwsnn.tools.bench import (
    FIGURES,
    SERIAL_JSON,
    TINYODIN_SOP_PER_CELL,
    record_figures,
    serial_table,
)

TARGET = 20.0  # issue 19: at least 20× tinyODIN's


def measure(directory: Path, board: str | None, name: str | None = None) -> dict:
    """The figures of one build (``board``: its folder under DIR/build; None: the only
    one there)."""
    builds = sorted((directory / "build").glob("*/report.json"))
    if board is not None:
        builds = [b for b in builds if b.parent.name == board]
    if len(builds) != 1:
        raise SystemExit(f"{directory}: give one build (DIR:BOARD); found "
                         f"{[b.parent.name for b in builds] or 'none'}")
    report = json.loads(builds[0].read_text())
    if report.get("estimated", True):
        raise SystemExit(f"{builds[0]} is a fit check only: build the design first")
    net = load(directory)
    codes, what = latency_codes(net)
    sops = float(golden.run(net, codes, lanes=report["lanes"]).sops.double().mean())
    res = report["resources"]
    family = "ice40" if "logic_cells" in res else "ecp5"
    cells = res["logic_cells" if family == "ice40" else "luts"]["used"]
    per_second = sops * report["fmax_mhz"] * 1e6 / report["cycles_per_inference"]
    per_cell = per_second / cells
    weights = max(q.weight_bits for p in net.populations for q in p.projections)
    return {"design": name or (f"{directory.name} ({net.method}, T={net.timesteps}, "
                               f"{weights}-bit)"),
            "board": report["board"], "arch": report["arch"], "lanes": report["lanes"],
            "sops_per_inference": sops, "images": what,
            "cycles_per_inference": report["cycles_per_inference"],
            "fmax_mhz": report["fmax_mhz"], "cells": cells, "family": family,
            "bram_blocks": res["bram_blocks"]["used"],
            "spram_blocks": res.get("spram_blocks", {}).get("used", 0),
            "sop_per_second": per_second, "sop_per_second_per_cell": per_cell,
            "times_tinyodin": per_cell / TINYODIN_SOP_PER_CELL[family]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", help="DIR, DIR:BOARD or DIR:BOARD=NAME (the name "
                    "the table gives the design)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--record", action="store_true",
                    help=f"keep the figures in benchmarks/{Path(FIGURES).name}/{SERIAL_JSON} "
                         "for BENCHMARKS.md")
    args = ap.parse_args(argv)
    command = "python benchmarks/serial_sops.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    rows = []
    for item in args.builds:
        item, _, name = item.partition("=")
        directory, _, board = item.partition(":")
        rows.append(measure(Path(directory), board or None, name or None))
    print("\n".join(serial_table(rows)))
    for r in rows:
        if r["times_tinyodin"] < TARGET:
            print(f"below the {TARGET:g}× target: {r['design']} on {r['board']} "
                  f"({r['times_tinyodin']:.1f}×)", file=sys.stderr)
    record_figures(rows, command, SERIAL_JSON, json_path=args.json, record=args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
