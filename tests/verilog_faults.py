"""Fault injection into generated Verilog: change one weight of a dense projection in an
engine's ROM (``set_weight``; ``hwsnn.sim.faults`` zeroes weights of any projection)."""

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
    start = text.index(f"module \\{top}.engine_{population}.datapath ")  # the ROMs
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
