"""The fit check's resource estimate against Yosys: block RAMs, flip-flops, logic and DSPs.

    .venv/bin/python benchmarks/estimate_accuracy.py [--family ecp5] [--design NAME ...]
        [--cache FILE] [--refresh] [--json]

Every design is the board top that ``hwsnn build`` synthesizes (the network behind the
UART host link, with the weight stores and input lanes the fit check chooses), synthesized
with Yosys alone (``hwsnn.flow.synth.synthesize``; no place and route, which changes none of
these counts) for the ULX3S-85F (ECP5) and, where it fits, the iCEBreaker (iCE40 UP5K).
The first four designs are those ``hwsnn bench`` builds; the others vary the method, the
lanes and the model. For each design and resource the table has the estimate
(``hdl.estimate``), Yosys's count and their ratio; ``--json`` prints every figure, with
the memories as Yosys's ``memory_libmap`` mapped them.

What is compared: block RAMs (DP16KD / SB_RAM40_4K), flip-flops (TRELLIS_FF / SB_DFF*),
DSPs, SPRAMs, and logic: on ECP5 LUT4s (the LUT4 cells, two per CCU2C carry cell and four
per TRELLIS_DPR16X4 LUT RAM), on iCE40 logic cells (LUT4s + 0.6 × flip-flops, which is
within 2 % of what nextpnr packs). Yosys runs take seconds to minutes each; their figures
are cached (``--cache``, default ``build/estimate_accuracy.json``) under a key of the
design, the QNet's fingerprint and the RTL's (so a changed engine is synthesized again);
``--refresh`` ignores the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from hwsnn import boards
from hwsnn.flow.build import BoardCore, fit_check, lanes_by_population
from hwsnn.flow.synth import ToolError, synthesize
from hwsnn.frontends.pytorch import trace
from hwsnn.hdl.store import UP5KPrimitives
from hwsnn.models import BUNDLED
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

ROOT = Path(__file__).resolve().parent.parent
BOARDS = {"ecp5": "ulx3s-85f", "ice40": "icebreaker"}
TOLERANCE = 0.10  # the estimate's goal for block RAMs and flip-flops


@dataclass(frozen=True)
class Case:
    """A design: a bundled model converted and built like ``hwsnn build`` does."""

    name: str
    model: str
    method: str
    timesteps: int
    group_size: int | None
    lanes: int
    input_lanes: int = 0
    queue_depth: int | None = None
    weight_bits: int = 8
    families: tuple[str, ...] = ("ecp5",)
    bench: bool = False  # one of the designs hwsnn bench builds

    def describe(self) -> str:
        tau = f" τ={self.group_size}" if self.group_size else ""
        inp = f", input lanes {self.input_lanes}" if self.input_lanes else ""
        q = f", queues {self.queue_depth}" if self.queue_depth else ""
        wb = f", {self.weight_bits}-bit" if self.weight_bits != 8 else ""
        return (f"{self.model} {self.method.upper()}{tau} T={self.timesteps}, "
                f"{self.lanes} lane{'s' if self.lanes > 1 else ''}{inp}{q}{wb}")


CASES = (
    # The designs of hwsnn bench (hwsnn.tools.bench.DESIGNS), on both families.
    Case("mlp", "digits-mlp", "gn", 2, 4, 1, families=("ecp5", "ice40"), bench=True),
    Case("cnn", "digits-cnn", "gn", 2, 4, 16, bench=True),
    Case("mnist-shaped", "digits28-mlp", "gn", 2, 4, 1, 8, families=("ecp5", "ice40"),
         bench=True),
    Case("cnn-up5k", "digits-cnn", "ilif", 2, None, 1, queue_depth=16,
         families=("ecp5", "ice40"), bench=True),
    # Other methods, lanes and models.
    Case("mlp-if-4", "digits-mlp", "if", 4, None, 4),
    Case("mlp-ilif-2", "digits-mlp", "ilif", 2, None, 2, families=("ecp5", "ice40")),
    Case("mlp-gn2-16", "digits-mlp", "gn", 1, 2, 16, weight_bits=6),
    Case("cnn-gn2-4", "digits-cnn", "gn", 1, 2, 4, weight_bits=6),
    Case("cnn-if-8", "digits-cnn", "if", 2, None, 8),
    Case("cnn-ilif-4", "digits-cnn", "ilif", 2, None, 4),
    Case("mnist-2", "digits28-mlp", "gn", 2, 4, 2),
)


def network(case: Case):
    spec = BUNDLED[case.model]
    graph = trace(spec.load(), torch.zeros(2, *spec.input_shape))
    snn = convert(graph, method=case.method, timesteps=case.timesteps,
                  group_size=case.group_size, progress=False)
    return quantize(snn, weight_bits=case.weight_bits)


def _estimated(fit: dict, family: str) -> dict:
    r = fit["resources"]
    logic = "logic_cells" if family == "ice40" else "luts"
    used = {k: v["used"] for k, v in r.items()}
    return {"logic": used.get(logic, used.get("luts")), "ffs": used["ffs"],
            "bram_blocks": used["bram_blocks"], "spram_blocks": used["spram_blocks"],
            "dsps": used["dsps"]}


_MAPPED = re.compile(r"^mapping memory (\S+) via (\S+)$", re.M)
_IN_LOGIC = re.compile(r"^using FF mapping for memory (\S+)$", re.M)


def memory_mappings(log: str) -> dict[str, str]:
    """Each memory of the design and where Yosys's memory_libmap put it."""
    out = {name: kind.strip("$_") for name, kind in _MAPPED.findall(log)}
    out.update({name: "logic" for name in _IN_LOGIC.findall(log)})
    return dict(sorted(out.items()))


def yosys_counts(core, family: str, platform, synth_args) -> dict:
    """Synthesize ``core``: the counts, the LUT mapper and the memories' mapping."""
    mapper = "abc9"
    with tempfile.TemporaryDirectory(prefix="hwsnn-estimate-") as tmp:
        start = time.time()
        try:
            rep = synthesize(core, family, synth_args=synth_args, platform=platform,
                             workdir=tmp)
        except ToolError as exc:
            # Yosys 0.70's ABC9 asserts on some large ECP5 designs (hwsnn build then maps
            # LUTs with the classic ABC); the flip-flop and memory counts do not depend on
            # the LUT mapper.
            if family != "ecp5" or "Assert" not in str(exc):
                raise
            mapper = "abc"
            rep = synthesize(core, family, synth_args=synth_args, platform=platform,
                             lut_mapper=mapper, workdir=tmp)
        seconds = time.time() - start
        log = (Path(tmp) / "yosys.log").read_text(errors="replace")
    c = rep.cells_by_type
    if family == "ecp5":
        logic = rep.luts + 2 * c.get("CCU2C", 0) + 4 * c.get("TRELLIS_DPR16X4", 0)
        bram, spram = rep.ram_blocks, 0
    else:
        logic = round(rep.luts + 0.6 * rep.flip_flops)
        spram = c.get("SB_SPRAM256KA", 0)
        bram = rep.ram_blocks - spram
    return {"logic": logic, "ffs": rep.flip_flops, "bram_blocks": bram,
            "spram_blocks": spram, "dsps": rep.dsps, "lut_mapper": mapper,
            "seconds": round(seconds, 1), "cells_by_type": c,
            "memories": memory_mappings(log)}


def rtl_fingerprint() -> str:
    """A hash of the sources that make the hardware (a changed engine is synthesized
    again)."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "hwsnn" / "hdl").glob("*.py")):
        if path.name not in ("estimate.py", "memmap.py"):  # (the model, not the hardware)
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def measure(case: Case, family: str, cache: dict, refresh: bool) -> dict:
    from hwsnn.hdl.verilog import fingerprint
    board = boards.get(BOARDS[family])
    net = network(case)
    lanes = lanes_by_population(net, case.lanes)
    fit = fit_check(net, lanes, board, "auto", case.input_lanes, case.queue_depth)
    est = _estimated(fit, family)
    key = json.dumps([asdict(case) | {"families": None}, family, fingerprint(net),
                      rtl_fingerprint()])
    yosys = None if refresh else cache.get(key)
    if yosys is None:
        loadable = [tuple(k) for k in fit["loadable"]]
        core = BoardCore(net, board, lanes, loadable=loadable, input_lanes=case.input_lanes,
                         queue_depth=case.queue_depth)
        platform = UP5KPrimitives() if family == "ice40" and loadable else None
        args = ("-dsp",) if family == "ice40" and case.input_lanes else ()
        yosys = yosys_counts(core, family, platform, args)
        cache[key] = yosys
    return {"design": case.name, "describe": case.describe(), "bench": case.bench,
            "family": family, "board": board.name, "fits": fit["fits"],
            "loadable": fit["loadable"], "estimate": est, "yosys": yosys}


KINDS = ("bram_blocks", "ffs", "logic", "spram_blocks", "dsps")


def ratio(est, got):
    return est / got if got else (1.0 if not est else float("inf"))


def table(rows: list[dict]) -> str:
    names = {"bram_blocks": "block RAM", "ffs": "flip-flops", "spram_blocks": "SPRAM",
             "dsps": "DSP"}
    lines = [f"{'design':58s} {'family':6s} {'resource':11s} {'estimate':>8s} "
             f"{'Yosys':>7s} {'ratio':>6s}"]
    for r in rows:
        for kind in KINDS:
            e, y = r["estimate"][kind], r["yosys"][kind]
            if not e and not y:
                continue
            name = names.get(kind) or ("logic cells" if r["family"] == "ice40" else "LUT4s")
            flag = ""
            if kind in ("bram_blocks", "ffs") and abs(ratio(e, y) - 1) > TOLERANCE:
                flag = "  off by more than 10 %"
            label = ("* " if r["bench"] else "  ") + r["describe"]
            lines.append(f"{label:58s} {r['family']:6s} {name:11s} {e:8d} {y:7d} "
                         f"{ratio(e, y):6.2f}{flag}")
    return "\n".join(lines)


def summary(rows: list[dict]) -> dict:
    """The worst ratio of each resource and family, over the bench designs and all."""
    out = {}
    for family in sorted({r["family"] for r in rows}):
        for kind in KINDS:
            for scope in ("bench", "all"):
                rs = [ratio(r["estimate"][kind], r["yosys"][kind]) for r in rows
                      if r["family"] == family and (scope == "all" or r["bench"])
                      and (r["estimate"][kind] or r["yosys"][kind])]
                if rs:
                    worst = max(rs, key=lambda x: abs(x - 1))
                    out[f"{family} {kind} {scope}"] = {"worst_ratio": round(worst, 3),
                                                       "designs": len(rs)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=sorted(BOARDS), action="append",
                    help="only this family (repeatable; default both)")
    ap.add_argument("--design", action="append", choices=[c.name for c in CASES],
                    help="only this design (repeatable; default all)")
    ap.add_argument("--cache", default=str(ROOT / "build" / "estimate_accuracy.json"),
                    help="Yosys figures kept between runs")
    ap.add_argument("--refresh", action="store_true", help="synthesize again, cache or not")
    ap.add_argument("--json", action="store_true", help="every figure as JSON on stdout")
    args = ap.parse_args(argv)
    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    rows = []
    for case in CASES:
        if args.design and case.name not in args.design:
            continue
        for family in case.families:
            if args.family and family not in args.family:
                continue
            start = time.time()
            rows.append(measure(case, family, cache, args.refresh))
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
            print(f"{case.name} {family}: {time.time() - start:.0f} s", file=sys.stderr,
                  flush=True)
    result = {"rows": rows, "summary": summary(rows), "tolerance": TOLERANCE}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(table(rows))
        print("\n* a design of hwsnn bench; worst estimate / Yosys ratio:")
        for k, v in result["summary"].items():
            print(f"  {k:28s} {v['worst_ratio']:6.2f} ({v['designs']} designs)")
    return result


if __name__ == "__main__":
    main()
