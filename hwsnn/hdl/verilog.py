"""A QNet as Verilog, with a port description that needs no Python to read.

``write(directory, net)`` puts three files into ``directory/rtl/``:

- ``TOP.v``: the network (``hdl.network.Network``) as one Verilog-2005 file,
  deterministic (no source locations, no paths, no time stamps: the same QNet and options
  give the same bytes), that simulates alike under Verilog and SystemVerilog rules (see
  ``to_verilog``);
- ``TOP.json``: the ports, their widths and bit fields, the handshake, the order of
  pixels and readout values, an example transaction from the golden model, and what the
  file was made from (QNet fingerprint, lanes, taps), so that ``hwsnn sim`` can tell a
  stale design from a current one;
- ``TOP.md``: the same for people.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch
from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil

from ..errors import HwsnnError, ParameterError
from ..snn import golden
from ..snn.qnet import PIXEL_BITS, PIXEL_LEVELS, QNet, _atomic_write
from .network import Network
from .plan import NetworkPlan

DEFAULT_TOP = "hwsnn_net"
DEFAULT_LANES = 4
RTL_DIR = "rtl"


def fingerprint(net: QNet) -> str:
    """SHA-256 of a QNet's contents (its JSON document and every array)."""
    doc, arrays = net.to_json()
    h = hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key], dtype=np.int64)
        h.update(key.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_top_name(name: str) -> str:
    if not name.isidentifier() or not name.isascii():
        raise ParameterError(f"top module name {name!r} is not a Verilog identifier: use "
                             "letters, digits and underscores, not starting with a digit")
    return name


def build(net: QNet, *, lanes=DEFAULT_LANES, taps: bool = True,
          input_lanes: int = 0, queue_depth: int | None = None,
          plan: NetworkPlan | None = None) -> Network:
    """The ``Network`` of ``net``: of ``plan`` when given, else of a ``NetworkPlan`` made
    from ``lanes`` (an int, a dict by population or ``"fc1=8,fc2=1"``), ``input_lanes``
    and ``queue_depth``."""
    try:
        if plan is not None:
            return Network(net, taps=taps, plan=plan)
        return Network(net, lanes=lanes, taps=taps, input_lanes=input_lanes,
                       queue_depth=queue_depth)
    except TypeError as exc:
        raise ParameterError(str(exc)) from None


# Yosys passes from Amaranth's RTLIL to Verilog. Amaranth's own Verilog back end runs
# ``proc -nomux`` and so keeps every combinational process as an ``always @*`` block,
# which Yosys starts at time 0 through a declaration initialiser (``reg \$auto$... = 0``
# read by every such block). Under Verilog-2005 rules that initialiser is an event;
# under SystemVerilog rules (IEEE 1800 6.8) it takes effect before time 0 and is none,
# so the blocks never run until one of their inputs changes, and signals of constant or
# registered inputs stay X (Icarus -g2012: the network stops). The full ``proc`` turns
# those processes into multiplexers, written as continuous assignments (and $pmux as
# functions), which every simulator evaluates at time 0. This is the lowering that
# Yosys's own synthesis does; ``opt_clean`` then drops the wires and cells that drive
# nothing (a quarter of the lines; it changes no logic). No ``-norename``: Icarus takes a
# call of a function named ``\$procmux$N`` for a system function; Yosys gives such private
# names ``_N_``.
YOSYS_SCRIPT = ("proc -norom", "opt_clean", "memory_collect", "write_verilog")


# What the Verilog file needs from a simulator or synthesis tool (in TOP.json and TOP.md).
VERILOG_NOTES = {
    "standard": "Verilog-2005 (IEEE 1364-2005); also read as SystemVerilog",
    "processes": "no always @* blocks: combinational logic is in continuous assignments "
                 "(assign), registers and memories in always @(posedge clk) blocks, so it "
                 "simulates alike under Verilog and SystemVerilog rules (Icarus -g2005 or "
                 "-g2012, Verilator, Yosys sim); no simulator option is needed",
    "initial_values": "registers have declaration initialisers and every memory (weights, "
                      "biases, membranes) an initial block with its contents: a simulator "
                      "must run initial blocks, and synthesis takes them as power-on values "
                      "and memory contents; the design is ready after rst has been high for "
                      "one rising edge",
}


def to_verilog(elaboratable, name: str, platform=None) -> str:
    """An Amaranth design as one Verilog-2005 file without ``always @*`` blocks: flip-flops
    and memories in ``always @(posedge ...)``, everything else in ``assign``s, so that it
    simulates the same under Verilog and SystemVerilog rules."""
    text = rtlil.convert(elaboratable, name=name, platform=platform, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_SCRIPT]
    return yosys.run(["-q", "-"], "\n".join(script))


def emit(net: QNet, *, lanes=DEFAULT_LANES, taps: bool = True, top: str = DEFAULT_TOP,
         network: Network | None = None, input_lanes: int = 0,
         plan: NetworkPlan | None = None) -> str:
    """The Verilog of ``net`` (one file, top module ``top``)."""
    check_top_name(top)
    network = network or build(net, lanes=lanes, taps=taps, input_lanes=input_lanes,
                               plan=plan)
    return to_verilog(network, top)


# ---------------------------------------------------------------------------------------
# Port description.


def _fields(layout) -> list[dict]:
    out = []
    for name, field in layout:
        shape = field.shape if hasattr(field.shape, "signed") else None
        out.append({"name": name, "lsb": field.offset, "msb": field.offset + field.width - 1,
                    "width": field.width, "signed": bool(shape.signed) if shape else False})
    return out


def example_codes(net: QNet) -> tuple[torch.Tensor, str]:
    from ..frontends import data
    try:
        name = data.shipped_for(tuple(net.input.shape), net.metadata)
        x, _ = data.load_for(tuple(net.input.shape), "test", dataset=name)
        return golden.encode(net, x[:1]), f"the first image of the bundled {name} test split"
    except HwsnnError:  # no shipped data set is known: a fixed random image
        gen = torch.Generator().manual_seed(0)
        return (torch.randint(0, PIXEL_LEVELS + 1, (1, *net.input.shape), generator=gen),
                "a fixed pseudo-random image (no shipped data set is known for this network)")


def describe(net: QNet, network: Network, top: str) -> dict:
    """The machine-readable port description of ``network`` (see ``write``)."""
    lanes = dict(network.plan.lanes)
    in_shape = list(net.input.shape)
    readout = network.engines[net.output.name]
    o_layout = readout.o.payload.shape()
    ports = [
        {"name": "clk", "direction": "input", "width": 1,
         "description": "clock; everything happens on its rising edge"},
        {"name": "rst", "direction": "input", "width": 1,
         "description": "synchronous reset, active high; hold it for at least one rising "
                        "edge before the first pixel"},
        {"name": "pixels__valid", "direction": "input", "width": 1,
         "description": "a pixel code is on pixels__payload"},
        {"name": "pixels__ready", "direction": "output", "width": 1,
         "description": "the network takes the pixel at this rising edge if valid is high"},
        {"name": "pixels__payload", "direction": "input", "width": PIXEL_BITS,
         "description": f"pixel code 0..{PIXEL_LEVELS}"},
        {"name": "o__valid", "direction": "output", "width": 1,
         "description": "a readout beat is on o__payload"},
        {"name": "o__ready", "direction": "input", "width": 1,
         "description": "the consumer takes the beat at this rising edge if valid is high"},
        {"name": "o__payload", "direction": "output", "width": o_layout.size,
         "description": "readout beat", "fields": _fields(o_layout)},
        {"name": "cycles", "direction": "output", "width": len(network.cycles),
         "description": "rising clock edges since reset (wraps around)"},
    ]
    taps = []
    if network.taps:
        for p in net.populations:
            ident = network.port_names[p.name]
            if p.kind != "readout":
                layout = network.engines[p.name].o.payload.shape()
                ports += [
                    {"name": f"tap_{ident}__valid", "direction": "output", "width": 1,
                     "description": f"population {p.name} hands an event to its readers "
                                    "in this cycle"},
                    {"name": f"tap_{ident}__payload", "direction": "output",
                     "width": layout.size, "description": f"that event of {p.name}",
                     "fields": _fields(layout)},
                ]
                taps.append({"population": p.name, "port": f"tap_{ident}",
                             "shape": list(p.shape),
                             "steps_per_sample": p.steps_out,
                             "count": "bit of the value, MSB first" if p.kind == "ilif"
                             else f"spikes 1..{p.group_size}"})
            ports.append({"name": f"work_{ident}", "direction": "output",
                          "width": len(getattr(network, f"work_{ident}")),
                          "description": f"cycles the engine of {p.name} spent on its own "
                                         "work since reset"})
    codes, origin = example_codes(net)
    res = golden.run(net, codes, lanes=1)
    values = [int(v) for v in res.readout[0].tolist()]
    pred = int(res.predictions[0])
    beats = [{"index": i, "value": v, "argmax": pred if i == len(values) - 1 else None,
              "last": int(i == len(values) - 1)} for i, v in enumerate(values)]
    return {
        "format": "hwsnn-ports", "version": 1, "top": top,
        "made_from": {"qnet_sha256": fingerprint(net), "lanes": lanes,
                      "input_lanes": network.input_lanes,
                      "queue_depth": network.queue_depth,
                      "taps": network.taps, "fifo_depth": network.fifo_depth,
                      "model": net.metadata.get("model"), "method": net.method,
                      "timesteps": net.timesteps},
        "ports": ports,
        "handshake": "valid/ready: a beat transfers at a rising edge of clk where valid and "
                     "ready are both high; the producer holds valid and payload steady until "
                     "then, and must not wait for ready before raising valid",
        "pixels": {"per_sample": int(np.prod(in_shape)), "shape": in_shape,
                   "order": "C order: channel, then row, then column; sample after sample, "
                            "with no gap needed",
                   "code": f"round_half_up(clip((x - {net.input.lo}) / ({net.input.hi} - "
                           f"{net.input.lo}), 0, 1) * {PIXEL_LEVELS})"},
        "verilog": VERILOG_NOTES,
        "readout": {"population": net.output.name,
                    "beats_per_sample": net.output.size, "classes": net.output.size,
                    "order": "index 0 first; the last beat has last = 1 and carries argmax "
                             "(the lowest index among equal maxima); argmax is not "
                             "meaningful on other beats",
                    "value": "the readout membrane after the last step (signed)",
                    "scale": net.output.readout_scale},
        "taps": taps,
        "example": {"image": origin, "pixels": [int(v) for v in codes.flatten().tolist()],
                    "readout": beats, "class": pred},
    }


def markdown(desc: dict) -> str:
    """``describe``'s result for people."""
    made = desc["made_from"]
    lines = [
        f"# `{desc['top']}`: ports",
        "",
        f"Generated by hwsnn from {made.get('model') or 'a QNet'} ({made['method']}, "
        f"T = {made['timesteps']}); QNet SHA-256 `{made['qnet_sha256'][:16]}…`; lanes "
        + ", ".join(f"{k}: {v}" for k, v in made["lanes"].items())
        + (f"; multiply-accumulate input stage of {made['input_lanes']} lanes"
           if made.get("input_lanes") else "")
        + f"; debug taps {'on' if made['taps'] else 'off'}.",
        "",
        "| port | dir | width | meaning |",
        "|---|---|---|---|",
    ]
    for p in desc["ports"]:
        text = p["description"]
        if "fields" in p:
            text += ": " + ", ".join(
                f"`{f['name']}` [{f['msb']}:{f['lsb']}]{' signed' if f['signed'] else ''}"
                for f in p["fields"])
        lines.append(f"| `{p['name']}` | {p['direction']} | {p['width']} | {text} |")
    px, ro = desc["pixels"], desc["readout"]
    lines += [
        "",
        "## Handshake",
        "",
        desc["handshake"] + ".",
        "",
        "## Pixels in",
        "",
        f"{px['per_sample']} codes per sample (input shape {px['shape']}), {px['order']}. "
        f"Code of a raw input x: {px['code']}.",
        "",
        "## Readout out",
        "",
        f"{ro['beats_per_sample']} beats per sample"
        + (f" (population `{ro['population']}`)" if ro.get("population") else "")
        + f", {ro['order']}. `value` is "
        f"{ro['value']}; multiplied by {ro['scale']} it approximates the ANN's logit.",
    ]
    if desc["taps"]:
        lines += ["", "## Debug taps", "",
                  "Every population's events, as its readers receive them. A beat with "
                  "`end` = 1 closes one step; a sample has `steps_per_sample` of them.", "",
                  "| population | port | shape | steps per sample | count |",
                  "|---|---|---|---|---|"]
        for t in desc["taps"]:
            lines.append(f"| {t['population']} | `{t['port']}` | {t['shape']} | "
                         f"{t['steps_per_sample']} | {t['count']} |")
    notes = desc.get("verilog")
    if notes:
        lines += ["", "## The Verilog", "", f"{notes['standard']}. It has "
                  f"{notes['processes']}.", "",
                  notes["initial_values"][0].upper() + notes["initial_values"][1:] + "."]
    ex = desc["example"]
    lines += [
        "", "## Example transaction", "",
        f"Input: {ex['image']}. Send these {len(ex['pixels'])} codes on `pixels`, in order:",
        "", "```", _wrap(ex["pixels"]), "```", "",
        f"and receive these beats on `o` (class {ex['class']}):", "",
        "| index | value | last | argmax |", "|---|---|---|---|",
    ]
    for b in ex["readout"]:
        arg = "" if b["argmax"] is None else str(b["argmax"])
        lines.append(f"| {b['index']} | {b['value']} | {b['last']} | {arg} |")
    return "\n".join(lines) + "\n"


def _wrap(values, per_line: int = 16) -> str:
    return "\n".join(" ".join(f"{v:3d}" for v in values[i:i + per_line])
                     for i in range(0, len(values), per_line))


def write(directory, net: QNet, *, lanes=DEFAULT_LANES, taps: bool = True,
          top: str = DEFAULT_TOP, out_dir=None, input_lanes: int = 0,
          queue_depth: int | None = None, plan: NetworkPlan | None = None) -> dict:
    """Write ``TOP.v``, ``TOP.json`` and ``TOP.md`` into ``directory/rtl`` (or
    ``out_dir``); returns the port description with the paths written. ``plan`` (a
    ``NetworkPlan`` of ``net``) replaces ``lanes``, ``input_lanes`` and ``queue_depth``."""
    check_top_name(top)
    network = build(net, lanes=lanes, taps=taps, input_lanes=input_lanes,
                    queue_depth=queue_depth, plan=plan)
    text = emit(net, top=top, network=network)
    desc = describe(net, network, top)
    out = Path(out_dir) if out_dir is not None else Path(directory) / RTL_DIR
    out.mkdir(parents=True, exist_ok=True)
    paths = {"verilog": out / f"{top}.v", "ports_json": out / f"{top}.json",
             "ports_md": out / f"{top}.md"}
    _atomic_write(paths["verilog"], lambda f: f.write(text))
    _atomic_write(paths["ports_json"], lambda f: f.write(json.dumps(desc, indent=1) + "\n"))
    _atomic_write(paths["ports_md"], lambda f: f.write(markdown(desc)))
    desc["files"] = {k: str(v) for k, v in paths.items()}
    desc["verilog_lines"] = text.count("\n")
    return desc


def read_description(path) -> dict:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------------------
# The ports of a Verilog file, against a description.

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/|\(\*.*?\*\)", re.S)
_TOKEN = re.compile(r"\\\S+|[A-Za-z_][\w$]*|\[[^\]]*\]|\S")
_DIRECTIONS = ("input", "output", "inout")
_TYPES = {"wire", "reg", "logic", "var", "signed", "unsigned", "tri", "bit"}


def _name(ident: str) -> str:
    return ident[1:] if ident.startswith("\\") else ident


def read_ports(path, top: str) -> dict[str, tuple[str, int]]:
    """The ports of module ``top`` in the Verilog file ``path``: name → (direction,
    width), from ANSI or Verilog-1995 style declarations with numeric ranges."""
    path = Path(path)
    try:
        text = _COMMENT.sub(" ", path.read_text(errors="replace"))
    except OSError as exc:
        raise HwsnnError(f"cannot read {path}: {exc.strerror}") from None
    head = re.search(rf"\bmodule\s+\\?{re.escape(top)}(?=[\s(#;])", text)
    if head is None:
        found = sorted({_name(m) for m in re.findall(r"\bmodule\s+(\\\S+|[A-Za-z_][\w$]*)",
                                                      text) if _name(m).isidentifier()})
        raise ParameterError(f"{path} has no module {top}"
                             + (f" (it has {', '.join(found[:5])}" + (", ..." if len(found) > 5
                                else "") + "): name the top module with --top" if found
                                else ": is it Verilog?"))
    end = text.find("endmodule", head.end())
    body = text[head.end():end if end >= 0 else len(text)]
    # (The inputs of functions and tasks are not ports.)
    body = re.sub(r"\bfunction\b.*?\bendfunction\b|\btask\b.*?\bendtask\b", " ", body,
                  flags=re.S)
    tokens = _TOKEN.findall(body)
    ports: dict[str, tuple[str, int]] = {}
    i = 0
    while i < len(tokens):
        if tokens[i] not in _DIRECTIONS:
            i += 1
            continue
        direction, width = tokens[i], 1
        i += 1
        while i < len(tokens) and tokens[i] in _TYPES:
            i += 1
        if i < len(tokens) and tokens[i].startswith("["):
            bounds = re.fullmatch(r"\[\s*(\d+)\s*:\s*(\d+)\s*\]", tokens[i])
            if bounds is None:
                after = _name(tokens[i + 1]) if i + 1 < len(tokens) else "?"
                raise ParameterError(f"{path}: the range {tokens[i]} of port {after} of {top} "
                                     "is not two numbers: hwsnn reads plain [msb:lsb] ranges")
            width = abs(int(bounds.group(1)) - int(bounds.group(2))) + 1
            i += 1
        # Names separated by commas, up to ';' or ')' or the next direction (ANSI).
        while i < len(tokens) and tokens[i] not in (";", ")") + _DIRECTIONS:
            if tokens[i] == "=":  # an initial value: skip to the next separator
                while i < len(tokens) and tokens[i] not in (",", ";", ")"):
                    i += 1
                continue
            if tokens[i] != ",":
                ports[_name(tokens[i])] = (direction, width)
            i += 1
    return ports


def check_ports(path, top: str, desc: dict, described_in=None) -> None:
    """Refuse the Verilog file ``path`` unless its module ``top`` has exactly the ports of
    the description ``desc``, with their directions and widths (one line naming each
    difference)."""
    have = read_ports(path, top)
    want = {p["name"]: (p["direction"], p["width"]) for p in desc["ports"]}
    where = described_in or f"the description of {desc['top']}"
    def kind(direction, width):
        return f"{direction}, {width} bit{'s' if width > 1 else ''}"

    problems = [f"no port {n} ({kind(*want[n])})" for n in want if n not in have]
    problems += [f"a port {n} that {where} does not have" for n in have if n not in want]
    problems += [f"port {n} is {kind(*have[n])}, not {kind(*want[n])}"
                 for n in want if n in have and have[n] != want[n]]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more"
                                          if len(problems) > 4 else "")
        raise ParameterError(f"{path}: module {top} does not have the ports of {where}: "
                             f"{shown}")
