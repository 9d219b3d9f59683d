"""Yosys bench: run a generated hwsnn network in Yosys's own simulator (``sim``) and record
what it does, like the cocotb bench (``hwsnn_bench``) does in Icarus and Verilator.

    python yosys_bench.py BENCH.json

Yosys ``sim`` replays no testbench code: it steps a synthesizable circuit. So the bench
is a Verilog module around the design (``harness``) that holds the pixel codes in a
memory, resets the design for three rising edges, offers the pixels in order (valid/ready),
takes every readout beat (ready always high, no stalls) and ``$display``s every transfer
with the number of its rising edge (edge 0 is the first after reset). Yosys reads the
design as Verilog (its own front end, not the emitting flow's RTLIL) and simulates the
harness in chunks of rising edges, each starting from the state the previous one left
(``sim -w``), until every readout beat has come, the design has been silent for too
long, or the cycle limit is reached. The record has the format of ``hwsnn_bench``'s.

The script runs in its own process (``pyosys``, Yosys as a Python extension) and imports
nothing from hwsnn.
"""

import json
import os
import re
import sys
import time

from tap_watch import TapWatch

HARNESS = "hwsnn_yosys_bench"
RESET_CYCLES = 3
LINE = re.compile(r"^hwsnn (\w+) (\d+)((?: \S+)*)$")


def _range(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


def harness(cfg: dict) -> str:
    """The Verilog of the bench module: the design ``cfg["top"]`` fed with ``cfg["pixels"]``.
    Displays ``hwsnn KIND EDGE VALUES`` for every pixel taken (``p``), readout beat (``o``,
    with the work counters and the cycle counter after it: ``w``), tap event (``t``, the
    tap's index first) and edge at which a handshake output is X or Z (``x``)."""
    codes = [v for sample in cfg["pixels"] for v in sample]
    n = len(codes)
    outputs = cfg["outputs"]  # [(name, width)] of the design's outputs
    taps = cfg["taps"]
    work = cfg["work"]
    bits = max(n.bit_length(), 1)
    lines = [
        f"module {HARNESS}(clk);",
        "  input clk;",
        "  reg [1:0] reset_edges = 2'd0;",
        f"  wire rst = reset_edges != 2'd{RESET_CYCLES};",
        "  reg [31:0] edge_count = 32'd0;  // rising edges since reset",
        f"  reg [{bits - 1}:0] next = {bits}'d0;  // the next pixel",
        f"  reg [7:0] codes [0:{n - 1}];",
        "  initial begin",
        *(f"    codes[{i}] = 8'd{v};" for i, v in enumerate(codes)),
        "  end",
        f"  wire pixels__valid = !rst && next != {bits}'d{n};",
        f"  wire [7:0] pixels__payload = codes[next == {bits}'d{n} ? {bits}'d0 : next];",
        *(f"  wire {_range(w)}{name};" for name, w in outputs),
        f"  {cfg['top']} dut (.clk(clk), .rst(rst), .pixels__valid(pixels__valid), "
        ".pixels__payload(pixels__payload), .o__ready(1'b1), "
        + ", ".join(f".{name}({name})" for name, _ in outputs) + ");",
        "  always @(posedge clk) begin",
        "    if (rst) reset_edges <= reset_edges + 2'd1;",
        "    else begin",
        "      edge_count <= edge_count + 32'd1;",
        "      if (pixels__valid && pixels__ready) begin",
        f"        next <= next + {bits}'d1;",
        '        $display("hwsnn p %0d", edge_count);',
        "      end",
        '      if (o__valid) $display("hwsnn o %0d %h", edge_count, o__payload);',
        '      if (o__valid) $display("hwsnn w %0d'
        + " %h" * (len(work) + 1) + '", edge_count, ' + ", ".join([*work, "cycles"]) + ");",
        *(f'      if ({t}__valid) $display("hwsnn t %0d {k} %h", edge_count, {t}__payload);'
          for k, t in enumerate(taps)),
        f'      if ((^{{pixels__ready, o__valid{"".join(f", {t}__valid" for t in taps)}}})'
        ' === 1\'bx)',
        '        $display("hwsnn x %0d %b", edge_count, '
        f'{{pixels__ready, o__valid{"".join(f", {t}__valid" for t in taps)}}});',
        "    end",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def _quote(path: str) -> str:
    return '"' + path.replace('"', '\\"') + '"'


def main(path: str) -> int:
    with open(path) as f:
        cfg = json.load(f)
    from pyosys import libyosys as ys

    work = os.path.dirname(cfg["out"])
    bench = os.path.join(work, "yosys_bench.v")
    with open(bench, "w") as f:
        f.write(harness(cfg))
    log = os.path.join(work, "yosys_chunk.log")
    taps = cfg["taps"]
    work_ports = cfg["work"]
    want = cfg["classes"] * len(cfg["pixels"])
    per_sample = len(cfg["pixels"][0]) if cfg["pixels"] else 0
    limit, idle = int(cfg["max_cycles"]), int(cfg["idle_cycles"])
    # Each sim call costs a few tenths of a second to start: short chunks first (small
    # designs finish in a few hundred edges), longer ones for long runs.
    chunk = int(cfg.get("chunk", 128))

    t = time.time()
    design = ys.Design()
    for source in [bench, *cfg["sources"]]:
        ys.run_pass(f"read_verilog {_quote(source)}", design)
    ys.run_pass(f"hierarchy -top {HARNESS}", design)
    ys.run_pass("proc", design)
    read_s = time.time() - t

    record = {"finished": False, "cycles": 0, "hung": False, "unknown": None,
              "stopped_at": None,
              "cycles_port": None, "period_ns": cfg.get("period_ns", 10), "t0_edge_ns": None,
              "pixel_cycles": [], "pixels_taken": 0, "readout": [],
              "taps": {name: [] for name in taps}, "work": {}, "read_s": read_s}
    last_activity = 0
    watch = TapWatch(cfg["watch"]) if cfg.get("watch") else None  # stop at a divergence
    t = time.time()
    while True:
        ys.run_pass(f"tee -q -o {_quote(log)} sim -q -clock clk -n {chunk} -w {HARNESS}",
                    design)
        with open(log) as f:
            text = f.read()
        for line in text.splitlines():
            m = LINE.match(line.strip())
            if not m:
                continue
            kind, edge, values = m.group(1), int(m.group(2)), m.group(3).split()
            stop = record["stopped_at"] if record["unknown"] is None else \
                record["unknown"]["cycle"]
            if stop is not None and edge > stop:
                break  # (the rest of the edge at which it stopped is kept)
            if kind == "x" or any(c in "xXzZ" for v in values for c in v):
                if kind == "w":
                    continue  # (the work counters are not checked: as in hwsnn_bench)
                if record["unknown"] is None:
                    port, value = _unknown(kind, values, taps)
                    record["unknown"] = {"port": port, "value": value, "cycle": edge}
                continue
            last_activity = edge
            if kind == "p":
                if record["pixels_taken"] % per_sample == 0:
                    record["pixel_cycles"].append(edge)
                record["pixels_taken"] += 1
            elif kind == "o":
                record["readout"].append([edge, int(values[0], 16)])
            elif kind == "w":
                record["work"] = dict(zip(work_ports, (int(v, 16) for v in values[:-1]),
                                          strict=True))
                record["cycles_port"] = int(values[-1], 16)
            elif kind == "t":
                port, raw = taps[int(values[0])], int(values[1], 16)
                record["taps"][port].append([edge, raw])
                if watch is not None and record["stopped_at"] is None and \
                        watch.event(port, raw, edge):
                    record["stopped_at"] = edge
        record["cycles"] += chunk
        if record["stopped_at"] is not None or record["unknown"] is not None:
            stop = record["unknown"]["cycle"] if record["unknown"] else record["stopped_at"]
            record["cycles"] = stop + 1 + RESET_CYCLES
            break
        done = len(record["readout"]) // cfg["classes"] if cfg["classes"] else 0
        if cfg.get("progress"):
            with open(cfg["progress"], "w") as f:
                f.write(str(done))
        if len(record["readout"]) >= want:
            record["finished"] = True
            break
        if record["cycles"] >= limit:
            break
        if record["cycles"] - RESET_CYCLES - last_activity >= idle:
            record["hung"] = True
            break
        chunk = min(chunk * 5 // 4, int(cfg.get("max_chunk", 1024)), limit - record["cycles"])
    # Edges counted from the first after reset, like the cocotb bench.
    record["cycles"] = max(record["cycles"] - RESET_CYCLES, 0)
    record["wall_s"] = time.time() - t
    tmp = cfg["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, cfg["out"])
    return 0


def _unknown(kind: str, values: list[str], taps: list[str]) -> tuple[str, str]:
    """The port and value of a ``$display`` line with X or Z in it."""
    if kind == "x":  # {pixels__ready, o__valid, taps' valid}, MSB first
        names = ["pixels__ready", "o__valid", *(f"{t}__valid" for t in taps)]
        return next(((n, b.upper()) for n, b in zip(names, values[0], strict=True)
                     if b not in "01"), (names[0], values[0]))
    if kind == "o":
        return "o__payload", values[0]
    if kind == "t":
        return f"{taps[int(values[0])]}__payload", values[1]
    return kind, " ".join(values)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
