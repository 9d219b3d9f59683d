"""Conversion figures on the bundled digits models: accuracy vs T per method, and the
group-neuron paper's error table (MSE between ANN logits and SNN readout, IF vs GN(τ=4)).

    .venv/bin/python benchmarks/conversion.py [--model digits-cnn] [--json FILE]

Every number is computed in this run on the digits test split (540 samples); nothing is
copied from elsewhere. Prints Markdown tables.
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

STEPS = (1, 2, 4, 8)
METHODS = (("IF", "if", None), ("IF+shift", "if-shift", None), ("GN(τ=4)", "gn", 4),
           ("ILIF", "ilif", None), ("COS(ρ=8)", "cos", None))


def measure(model: str, weight_bits: int = 8) -> dict:
    x, y = data.load(BUNDLED[model].dataset, "test")
    graph = trace(BUNDLED[model].load(), x[:2])
    ann_logits = graph.forward(graph.input.to_codes(x))[graph.output.name]
    result = {"model": model, "samples": len(x), "weight_bits": weight_bits,
              "ann_accuracy": golden.accuracy(ann_logits.argmax(1), y), "rows": []}
    for label, method, tau in METHODS:
        for t in STEPS:
            snn = convert(graph, method=method, timesteps=t, group_size=tau, progress=False)
            net = quantize(snn, weight_bits=weight_bits)
            flt = floatsim.run(snn, x)
            gold = golden.run(net, golden.encode(net, x))
            result["rows"].append({
                "method": label, "timesteps": t,
                "float_snn_accuracy": golden.accuracy(flt.predictions, y),
                "golden_accuracy": golden.accuracy(gold.predictions, y),
                "mse_float": float(((flt.logits - ann_logits) ** 2).mean()),
                "mse_golden": float(((gold.logits - ann_logits) ** 2).mean()),
                "sops": float(gold.sops.double().mean()),
            })
    return result


def markdown(r: dict) -> str:
    def row(method, t):
        return next(v for v in r["rows"] if v["method"] == method and v["timesteps"] == t)

    out = [f"### {r['model']}: accuracy on the digits test split ({r['samples']} samples), "
           f"{r['weight_bits']}-bit weights",
           "", f"ANN (QCFS, float): **{100 * r['ann_accuracy']:.2f} %**. Each cell: float "
           "SNN / integer golden.", "",
           "| method | " + " | ".join(f"T={t}" for t in STEPS) + " |",
           "|---|" + "---|" * len(STEPS)]
    for label, _, _ in METHODS:
        cells = [f"{100 * row(label, t)['float_snn_accuracy']:.2f} / "
                 f"{100 * row(label, t)['golden_accuracy']:.2f}" for t in STEPS]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += ["", "ILIF: T is the number of bits per value; COS adds ρ = 8 pre-simulation "
            "steps.", "", f"### {r['model']}: MSE between ANN logits and SNN readout "
            "(float SNN)", "",
            "| | " + " | ".join(f"T={t}" for t in STEPS) + " |", "|---|" + "---|" * len(STEPS)]
    for label in ("IF", "GN(τ=4)"):
        out.append(f"| SNN using {label} | " + " | ".join(
            f"{row(label, t)['mse_float']:.4f}" for t in STEPS) + " |")
    out.append("| ratio GN/IF | " + " | ".join(
        f"{100 * row('GN(τ=4)', t)['mse_float'] / row('IF', t)['mse_float']:.1f} %"
        for t in STEPS) + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(BUNDLED), action="append")
    parser.add_argument("--weight-bits", type=int, default=8)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    start = time.time()
    results = [measure(m, args.weight_bits) for m in args.model or ["digits-cnn"]]
    for r in results:
        print(markdown(r) + "\n")
    print(f"(measured in {time.time() - start:.0f} s, torch {torch.__version__})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
