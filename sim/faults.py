"""Fault injection into generated Verilog: a weight of one population zeroed in its
engine's ROM, chosen with the golden model so that given samples show it.

    fault = next(zeroed_weights(net, "fc2", codes))
    text = with_weights_of(text, top, net, fault.apply(net), "fc2", lanes)

The faulty design must then differ from the golden model on those samples, and its first
divergence must be in that population: the populations before it are unchanged, and
those after it can only differ after it does. Zeroing only shrinks the membrane bounds,
so the corrupted network needs no wider datapath, and its own golden model is what the
corrupted Verilog computes (``differences`` says what that is).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..hdl.plan import EnginePlan
from ..snn import golden
from ..snn.qnet import QNet


@dataclass
class Fault:
    """One weight of ``population`` (its first projection, at ``index``) set to zero, and
    what the golden model says it changes on sample 0 of the samples it was chosen for:
    the first step whose events differ (hidden populations; None for the readout) and in
    it every neuron (coordinates) or readout index that differs, with (expected,
    observed)."""

    population: str
    index: tuple[int, ...]
    weight: int
    step: int | None
    differences: dict[tuple[int, ...], tuple[int, int]]

    def apply(self, net: QNet) -> QNet:
        """A copy of ``net`` with this weight zeroed."""
        bad = copy.deepcopy(net)
        w = bad.population(self.population).projections[0].weight
        if w[self.index] != self.weight:
            raise ValueError(f"weight {self.index} of {self.population} is {w[self.index]}, "
                             f"not {self.weight}: this fault was chosen for another QNet")
        w[self.index] = 0
        return bad


def zeroed_weights(net: QNet, population: str, codes, tries: int = 64) -> Iterator[Fault]:
    """The faults of ``population`` that sample 0 of ``codes`` shows: among its ``tries``
    largest weights (by magnitude, largest first: the likeliest to matter), each whose
    zeroing changes the golden model's events of ``population`` (for the readout, its
    values) on that sample."""
    codes = codes[:1]
    base = golden.run(net, codes, record=True)
    pop = net.population(population)
    w = pop.projections[0].weight
    for flat in np.argsort(-np.abs(w), axis=None, kind="stable")[:tries]:
        index = tuple(int(i) for i in np.unravel_index(flat, w.shape))
        if w[index] == 0:
            break
        fault = Fault(population, index, int(w[index]), None, {})
        res = golden.run(fault.apply(net), codes, record=True)
        if pop.kind == "readout":
            want, got = base.readout[0], res.readout[0]
            fault.differences = {(k,): (int(want[k]), int(got[k]))
                                 for k in (want != got).nonzero().flatten().tolist()}
        else:
            want, got = base.outputs[population][0], res.outputs[population][0]
            steps = (want != got).flatten(1).any(1).nonzero().flatten().tolist()
            if steps:
                t = fault.step = steps[0]
                fault.differences = {tuple(k): (int(want[t][tuple(k)]), int(got[t][tuple(k)]))
                                     for k in (want[t] != got[t]).nonzero().tolist()}
        if fault.differences:
            yield fault


def with_weights_of(text: str, top: str, net: QNet, bad: QNet, population: str,
                    lanes: int) -> str:
    """Verilog ``text`` of ``net`` (top module ``top``, ``lanes`` lanes) with the weight ROM
    words of ``population`` that differ in ``bad`` (same structure, other weights)
    rewritten as ``bad``'s Verilog has them: the words come from the engine's plan (any
    projection kind), packed lane by lane; every word rewritten must hold ``net``'s word
    before."""
    start = text.index(f"module \\{top}.engine_{population}.datapath ")  # the ROMs
    end = text.index("endmodule", start)
    body = text[start:end]
    old, new = EnginePlan(net, population, lanes), EnginePlan(bad, population, lanes)
    for k, (po, pn) in enumerate(zip(old.projections, new.projections, strict=True)):
        wbits = po.proj.weight_bits
        mask = (1 << wbits) - 1
        for address, (wo, wn) in enumerate(zip(po.init, pn.init, strict=True)):
            if wo == wn:
                continue
            # Yosys writes narrow words in decimal, wide ones in hexadecimal.
            match = re.search(rf"(wrom{k}\[{address}\] = \d+'([dh]))([0-9a-fA-F]+);", body)
            if match is None:
                raise ValueError(f"no ROM word {address} of projection {k} in engine "
                                 f"{population}")
            base = 16 if match.group(2) == "h" else 10
            if int(match.group(3), base) != sum((v & mask) << (i * wbits)
                                                for i, v in enumerate(wo)):
                raise ValueError(f"ROM word {address} of engine {population} is not "
                                 f"packed as assumed")
            word = sum((v & mask) << (i * wbits) for i, v in enumerate(wn))
            digits = f"{word:x}" if base == 16 else str(word)
            body = body[:match.start()] + f"{match.group(1)}{digits};" + body[match.end():]
    return text[:start] + body + text[end:]


def inject(work, *, faults: int = 3, tops=None, simulator: str = "icarus-sv",
           log=None) -> dict:
    """For every bundled example design (``hwsnn.tools.examples``, written into ``work``) and
    every population, readout included: the ``faults`` largest weights whose zeroing test
    sample 0 shows, each written into the design's ROM and simulated with
    ``simulate(verilog_path=...)`` (one sample, up to the first wrong event). A fault is
    caught when the design differs from the golden model, and located when the first
    divergence names its population, its first differing step and a neuron (or readout
    index) that differs there, with the corrupted network's value. Returns
    ``{"simulator", "rows", "summary", "faults", "caught", "located", "seconds"}``."""
    import itertools
    import shutil
    import time
    from pathlib import Path

    from ..hdl import verilog
    from ..tools import examples
    from .run import simulate

    rows = []
    start = time.time()
    for top in tops or examples.EXAMPLES:
        d = Path(work) / top
        shutil.rmtree(d, ignore_errors=True)
        net = examples.example_qnet(top)
        net.save(d)
        lanes = examples.EXAMPLES[top][4]
        desc = verilog.write(d, net, lanes=lanes, top=top)
        text = Path(desc["files"]["verilog"]).read_text()
        codes, _ = verilog.example_codes(net)
        for pop in net.populations:
            for fault in itertools.islice(zeroed_weights(net, pop.name, codes), faults):
                path = d / "corrupted.v"
                path.write_text(with_weights_of(text, top, net, fault.apply(net), pop.name,
                                                lanes))
                t = time.time()
                report = simulate(d, simulator=simulator, samples=1, top=top,
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
                if log:
                    r = rows[-1]
                    log(f"{top} {pop.name} W{r['weight']} = {r['value']} -> 0: "
                        f"{'caught' if r['caught'] else 'MISSED'}, "
                        f"{'located' if r['located'] else 'NOT LOCATED'}: "
                        f"{r['first_divergence']} ({r['seconds']:.1f} s)")
    summary = []
    for (top, pop), group in itertools.groupby(rows, key=lambda r: (r["design"],
                                                                     r["population"])):
        group = list(group)
        summary.append({"design": top, "population": pop, "faults": len(group),
                        "caught": sum(r["caught"] for r in group),
                        "located": sum(r["located"] for r in group)})
    return {"simulator": simulator, "rows": rows, "summary": summary, "faults": len(rows),
            "caught": sum(r["caught"] for r in rows),
            "located": sum(r["located"] for r in rows), "seconds": time.time() - start}
