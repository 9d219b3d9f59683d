"""Fault injection: change one weight in an engine's ROM in generated Verilog
(``set_weight``, dense projections), or in a QNet whose Verilog is then generated
(``zeroed_weight``, any projection), where the golden model shows the fault."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import numpy as np

from hwsnn import golden
from hwsnn.hdl.plan import EnginePlan


def set_weight(text: str, top: str, net, population: str, projection: int,
               target: int, source: int, value: int, lanes) -> str:
    """Verilog ``text`` with W[target, source] of a dense projection set to ``value``."""
    plan = EnginePlan(net, population, lanes)
    proj = plan.projections[projection]
    assert proj.kind == "dense"
    wbits = proj.proj.weight_bits
    address = source * plan.groups + target // lanes
    lane = target % lanes
    start = text.index(f"module \\{top}.engine_{population} ")
    end = text.index("endmodule", start)
    body = text[start:end]
    # Yosys writes narrow words in decimal, wide ones in hexadecimal.
    pattern = re.compile(rf"(wrom{projection}\[{address}\] = \d+'([dh]))([0-9a-fA-F]+);")
    match = pattern.search(body)
    assert match, f"no ROM word {address} in engine {population}"
    base = 16 if match.group(2) == "h" else 10
    word = int(match.group(3), base)
    mask = ((1 << wbits) - 1) << (lane * wbits)
    word = (word & ~mask) | ((value & ((1 << wbits) - 1)) << (lane * wbits))
    digits = f"{word:x}" if base == 16 else str(word)
    body = body[:match.start()] + f"{match.group(1)}{digits};" + body[match.end():]
    return text[:start] + body + text[end:]


def _engine_span(text: str, top: str, population: str) -> tuple[int, int]:
    start = text.index(f"module \\{top}.engine_{population} ")
    return start, text.index("endmodule", start)


def with_weights_of(text: str, top: str, net, bad, population: str, lanes) -> str:
    """Verilog ``text`` of ``net`` with the weight ROM words of ``population`` that differ
    in the QNet ``bad`` (same structure, other weights) rewritten as ``bad``'s Verilog has
    them: the words come from the engine's plan (any projection kind), packed lane by lane;
    every word rewritten must hold ``net``'s word before."""
    start, end = _engine_span(text, top, population)
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
            assert match, f"no ROM word {address} of projection {k} in engine {population}"
            base = 16 if match.group(2) == "h" else 10
            assert int(match.group(3), base) == sum((v & mask) << (i * wbits)
                                                    for i, v in enumerate(wo)), \
                f"ROM word {address} of engine {population} is not packed as assumed"
            word = sum((v & mask) << (i * wbits) for i, v in enumerate(wn))
            digits = f"{word:x}" if base == 16 else str(word)
            body = body[:match.start()] + f"{match.group(1)}{digits};" + body[match.end():]
    return text[:start] + body + text[end:]


@dataclass
class Fault:
    """One weight of ``population`` (its first projection, at ``index``) set to zero, and
    what the golden model says it changes on the samples it was chosen for: the first
    step whose events differ (hidden populations; None for the readout) and, in it, every
    neuron (coordinates) or readout index that differs, with (expected, observed)."""

    population: str
    index: tuple[int, ...]
    weight: int
    step: int | None
    differences: dict[tuple[int, ...], tuple[int, int]]

    def apply(self, net):
        bad = copy.deepcopy(net)
        w = bad.population(self.population).projections[0].weight
        assert w[self.index] == self.weight
        w[self.index] = 0
        return bad


def zeroed_weight(net, population: str, codes, tries: int = 64) -> Fault:
    """A fault of ``population`` that sample 0 of ``codes`` shows: among the ``tries``
    largest weights (largest first, so most likely to matter), the first whose zeroing
    changes the golden model's events of ``population`` (or, for the readout, its values)
    on that sample. Zeroing only shrinks the membrane bounds, so the corrupted network's
    widths still hold every value, and its golden model is what its Verilog computes."""
    codes = codes[:1]
    base = golden.run(net, codes, record=True)
    pop = net.population(population)
    w = pop.projections[0].weight
    order = np.argsort(-np.abs(w), axis=None, kind="stable")[:tries]
    for flat in order:
        index = tuple(int(i) for i in np.unravel_index(flat, w.shape))
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
            return fault
    raise AssertionError(f"none of the {tries} largest weights of {population} changes "
                         "what it does on this sample")
