"""Fault injection into generated Verilog: change one weight in an engine's ROM."""

from __future__ import annotations

import re

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
    pattern = re.compile(rf"(wrom{projection}\[{address}\] = (\d+)'d)(\d+);")
    match = pattern.search(body)
    assert match, f"no ROM word {address} in engine {population}"
    word = int(match.group(3))
    mask = ((1 << wbits) - 1) << (lane * wbits)
    word = (word & ~mask) | ((value & ((1 << wbits) - 1)) << (lane * wbits))
    body = body[:match.start()] + f"{match.group(1)}{word};" + body[match.end():]
    return text[:start] + body + text[end:]
