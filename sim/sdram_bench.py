"""cocotb bench of ``sim.sdram``: traffic on an SDRAM controller's ports, the chip's model
behind it. Configuration: ``HWSNN_BENCH`` (a JSON file, see ``simulate_controller``); it
writes the record there named."""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

COUNTERS = ("violations", "activates", "reads", "writes", "refreshes")


def _pack(cfg, **fields) -> int:
    word = 0
    for name, value in fields.items():
        off, width = cfg["fields"][name]
        word |= (value & ((1 << width) - 1)) << off
    return word


def _random_ops(cfg, rng, port):
    """A port's operations: reads and writes within its own rows, spread over every bank,
    each read of a word the port has written (so that the expected value is known)."""
    cb, bb = cfg["col_bits"], cfg["bank_bits"]
    banks = 1 << bb
    rows = [port * 4 + r for r in range(4)]  # the port's rows, in every bank
    written = []
    ops = []
    for _ in range(cfg["ops"]):
        if written and rng.random() < 0.45:
            ops.append((rng.choice(written), 0, 0, 0))
            continue
        if written and rng.random() < 0.3:  # near the last address: open-row hits
            last = written[-1]
            addr = (last & ~((1 << cb) - 1)) | rng.randrange(1 << cb)
        else:
            addr = ((rng.choice(rows) << (cb + bb)) | (rng.randrange(banks) << cb)
                    | rng.randrange(1 << cb))
        full = addr not in written
        byte_en = 3 if full else rng.choice([1, 2, 3])
        ops.append((addr, 1, rng.randrange(1 << cfg["dq_bits"]), byte_en))
        if full:
            written.append(addr)
    return ops


def _stream_ops(cfg):
    n = cfg["ops"]
    base = 3 << cfg["col_bits"]  # not at a row's start: the stream crosses banks and rows
    writes = [(base + i, 1, (i * 40503 + 7) & 0xFFFF, 3) for i in range(n)]
    reads = [(base + i, 0, 0, 0) for i in range(n)]
    return writes + reads


@cocotb.test()
async def sdram_traffic(dut):
    cfg = json.loads(open(os.environ["HWSNN_BENCH"]).read())
    rng = random.Random(cfg["seed"])
    nports = cfg["ports"]
    stall = cfg["stall"] if cfg["traffic"] == "random" else 0.0
    plans = ([_random_ops(cfg, random.Random(cfg["seed"] * 31 + p), p) for p in range(nports)]
             if cfg["traffic"] == "random" else
             [_stream_ops(cfg)] + [[] for _ in range(1, nports)])
    cmd = [(getattr(dut, f"cmd{p}__valid"), getattr(dut, f"cmd{p}__ready"),
            getattr(dut, f"cmd{p}__payload")) for p in range(nports)]
    rdata = [(getattr(dut, f"rdata{p}__valid"), getattr(dut, f"rdata{p}__ready"),
              getattr(dut, f"rdata{p}__payload")) for p in range(nports)]
    for v, _, _ in cmd:
        v.value = 0
    for _, r, _ in rdata:
        r.value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    cycle = 0
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        if int(dut.ready.value):
            break
        if cycle > cfg["max_cycles"]:
            break
    ready_at = cycle
    # Per port: the next operation, the words still expected, the shadow memory.
    nxt = [0] * nports
    expect = [[] for _ in range(nports)]
    shadow = [dict() for _ in range(nports)]
    mismatches = []
    reads_done = [0] * nports
    first_take = {}  # phase → cycle of its first transfer
    last_take = {}
    n_stream = cfg["ops"]
    while cycle < cfg["max_cycles"]:
        # Drive this cycle's offers (after the edge), then see what was taken at the next.
        offers = []
        for p in range(nports):
            v, _, pay = cmd[p]
            if nxt[p] < len(plans[p]) and not (stall and rng.random() < stall):
                addr, write, value, byte_en = plans[p][nxt[p]]
                v.value = 1
                pay.value = _pack(cfg, addr=addr, write=write, data=value, bytes=byte_en)
                offers.append(p)
            else:
                v.value = 0
            _, r, _ = rdata[p]
            r.value = 0 if (stall and rng.random() < stall) else 1
        await ReadOnly()
        taken = [p for p in offers if int(cmd[p][1].value)]
        got = [(p, int(rdata[p][2].value)) for p in range(nports)
               if int(rdata[p][0].value) and int(rdata[p][1].value)]
        await RisingEdge(dut.clk)
        cycle += 1
        for p in taken:
            addr, write, value, byte_en = plans[p][nxt[p]]
            phase = "write" if write else "read"
            first_take.setdefault(phase, cycle)
            if write:
                old = shadow[p].get(addr, 0)
                mask = (0xFF if byte_en & 1 else 0) | (0xFF00 if byte_en & 2 else 0)
                shadow[p][addr] = (old & ~mask) | (value & mask)
                last_take["write"] = cycle
            else:
                expect[p].append((addr, shadow[p][addr]))
            nxt[p] += 1
        for p, value in got:
            addr, want = expect[p].pop(0)
            reads_done[p] += 1
            last_take["read"] = cycle
            if value != want and len(mismatches) < 10:
                mismatches.append({"port": p, "addr": addr, "got": value, "want": want,
                                   "cycle": cycle})
        if all(nxt[p] == len(plans[p]) and not expect[p] for p in range(nports)):
            break
        if int(dut.chip_violations.value):  # (the model has said which rule, in the log)
            break
    record = {c: int(getattr(dut, f"chip_{c}").value) for c in COUNTERS}
    record.update(cycles=cycle, ready_at=ready_at, mismatches=mismatches,
                  done=all(nxt[p] == len(plans[p]) and not expect[p] for p in range(nports)),
                  ops=[len(pl) for pl in plans], reads_returned=reads_done)
    if cfg["traffic"] == "stream":
        record["write_cycles"] = last_take.get("write", 0) - first_take.get("write", 0) + 1
        record["read_cycles"] = last_take.get("read", 0) - first_take.get("read", 0) + 1
        record["words"] = n_stream
    with open(cfg["record"], "w") as f:
        json.dump(record, f)
