"""The free-running bench (``hwsnn.sim.freerun``): the simulator runs a whole regression
through a Verilog wrapper with no Python on any clock edge. It must see exactly what the
per-edge cocotb bench sees (the same transfers at the same clock edges), so every check
against the golden model stays what it was; and its own parts (the event file, the stall
generator, the stop conditions) are checked here against hand-made cases."""

import json
import shutil

import pytest

from hwsnn.hdl import verilog
from hwsnn.sim import freerun
from hwsnn.sim.run import simulate
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

SAMPLES = 12


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, bundled_graph):
    d = tmp_path_factory.mktemp("freerun-mlp")
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    net.save(d)
    verilog.write(d, net, lanes=8)
    return d, net


def _record(work):
    return json.loads((work / "record.json").read_text())


TIMING = ("wall_s", "t0_edge_ns", "period_ns", "stopped_at")


def test_free_and_edge_benches_record_the_same_transfers(mlp, tmp_path):
    """Without stalls, both benches drive the same values at the same edges: the records
    (every pixel sample start, readout beat, tap event with its edge, the cycle and work
    counters at the end) are equal, and both are bit-exact against the golden model."""
    d, net = mlp
    records = {}
    for bench in ("free", "edge"):
        work = tmp_path / bench
        r = simulate(d, simulator="verilator", samples=SAMPLES, bench=bench,
                     work_dir=work if bench == "edge" else None, progress=False).to_json()
        work = work if bench == "edge" else d / "sim" / "verilator"
        assert r["exact"], r["first_divergence_text"]
        records[bench] = {k: v for k, v in _record(work).items() if k not in TIMING}
    free, edge = records["free"], records["edge"]
    assert len(free["readout"]) == SAMPLES * net.classes
    assert sum(len(v) for v in free["taps"].values()) > 100  # the taps were recorded
    # The design's own cycle counter, read after the last edge, counts the edges run (the
    # per-edge bench reads it one falling edge later, after one more edge).
    assert free.pop("cycles_port") == free["cycles"] == edge.pop("cycles_port") - 1
    assert free == edge


def test_stalls_hold_the_streams_and_stay_exact(mlp):
    """With 90 % of the cycles stalled on the pixel and readout streams, the pixels come
    about ten cycles apart, so a run takes longer, and stays bit-exact."""
    d, _ = mlp
    runs = {}
    for stall in (0.0, 0.9):
        r = simulate(d, simulator="verilator", samples=4, stall=stall, seed=3,
                     progress=False).to_json()
        assert r["exact"], r["first_divergence_text"]
        runs[stall] = _record(d / "sim" / "verilator")
    pixels = 4 * 64
    assert runs[0.0]["pixels_taken"] == runs[0.9]["pixels_taken"] == pixels
    first = runs[0.9]["pixel_cycles"]
    # The first sample's 64 pixels: at least ~5 cycles apart on average with 90 % stalls.
    assert first[1] - first[0] > 5 * 64
    assert runs[0.9]["cycles"] > runs[0.0]["cycles"]


def test_the_bench_stops_at_the_cycle_limit(mlp):
    """A limit shorter than the run: the record says unfinished, not hung, and holds the
    beats that came before it."""
    d, net = mlp
    r = simulate(d, simulator="verilator", samples=3, max_cycles=700, progress=False,
                 waves_on_mismatch=False).to_json()
    rec = _record(d / "sim" / "verilator")
    assert not r["finished"] and not rec["hung"] and rec["cycles"] == 700
    assert all(edge < 700 for edge, _ in rec["readout"])
    assert len(rec["readout"]) < 3 * net.classes


def test_event_file_parsing_by_hand():
    """A hand-written event file of a design with one tap and one work counter."""
    desc = {"ports": [{"name": "pixels__payload", "width": 8},
                      {"name": "o__payload", "width": 12}, {"name": "cycles", "width": 32},
                      {"name": "tap_h__payload", "width": 5}, {"name": "work_h", "width": 32},
                      {"name": "work_out", "width": 32}],
            "taps": [{"port": "tap_h", "population": "h"}]}
    text = "\n".join(["p 0", "t 0 3 1f", "t 0 4 a", "o 9 abc", "p 10", "o 12 0",
                      "w 13 0 128 d 7 x1"]) + "\n"
    rec = freerun.parse_events(text, desc, want_beats=2)
    assert rec["finished"] and not rec["hung"] and rec["unknown"] is None
    assert rec["pixel_cycles"] == [0, 10]
    assert rec["readout"] == [[9, 0xABC], [12, 0]]
    assert rec["taps"] == {"tap_h": [[3, 31], [4, 10]]}
    assert (rec["cycles"], rec["pixels_taken"], rec["cycles_port"]) == (13, 128, 13)
    assert rec["work"] == {"work_h": 7}  # work_out read as X: left out
    hung = freerun.parse_events("p 0\nw 50 2 3 32 0 0\n", desc, want_beats=2)
    assert hung["hung"] and not hung["finished"]
    x = freerun.parse_events("x 3 5 x\nw 6 3 0 6 0 0\n", desc, want_beats=2)
    assert x["unknown"] == {"port": "tap_h__valid", "value": "X", "cycle": 5}
    with pytest.raises(ValueError, match="did not finish"):
        freerun.parse_events("p 0\n", desc, want_beats=2)


def test_the_wrapper_is_plain_verilog_2005(mlp, tmp_path):
    """Icarus under -g2005 compiles the wrapper with the design (the SystemVerilog-free
    subset every simulator takes)."""
    d, _ = mlp
    if shutil.which("iverilog") is None:
        pytest.fail("Icarus Verilog is not installed (make test installs it)")
    desc = verilog.read_description(d / "rtl" / "hwsnn_net.json")
    path = tmp_path / "w.v"
    path.write_text(freerun.wrapper_verilog(desc))
    import subprocess
    r = subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "a.vvp"), "-s",
                        freerun.wrapper_name("hwsnn_net"), str(d / "rtl" / "hwsnn_net.v"),
                        str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_free_bench_is_exact_on_the_golden_classes(mlp):
    """Icarus through the wrapper: the classes it reports are the golden model's."""
    d, net = mlp
    r = simulate(d, simulator="icarus", samples=3, progress=False)
    assert r.exact
    from hwsnn.frontends import data
    x, _ = data.load_for(tuple(net.input.shape), "test", None, meta=net.metadata,
                         value_range=(net.input.lo, net.input.hi))
    want = golden.run(net, golden.encode(net, x[:3])).predictions.tolist()
    assert r.comparison.observed_classes == want
