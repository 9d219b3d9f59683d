"""The emitted Verilog simulates the same in every simulator: Icarus under Verilog-2005
and SystemVerilog rules, Verilator and Yosys's own ``sim``, each compared with the golden
model (every readout value, class and hidden event) on the same samples.

Yosys ``sim`` steps some tens of cycles a second, so the four share a small random
network (a residual GN MLP, a few hundred cycles for four samples); the bundled designs
run in the cocotb simulators in test_sim.py (and in all four in
``benchmarks/simulation.py --simulators verilator icarus icarus-sv yosys``).
"""

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from amaranth.back import verilog as amaranth_verilog
from hdl.random_nets import random_qnet

from hwsnn.hdl import verilog
from hwsnn.sim.run import simulate
from hwsnn.snn import golden
from hwsnn.tools import cli, examples

ROOT = Path(__file__).resolve().parent.parent
SEED = 33  # h1 (5 GN neurons, τ = 3), h2 (5, τ = 3, with a residual from h1), out (5); T = 3
SAMPLES = 4


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A conversion directory holding the small network, its Verilog and test data."""
    d = tmp_path_factory.mktemp("small")
    net = random_qnet(random.Random(SEED), "gn")
    assert [len(p.projections) for p in net.populations] == [1, 2, 1]  # the residual
    net.save(d)
    x = torch.rand((SAMPLES, *net.input.shape), generator=torch.Generator().manual_seed(SEED))
    np.savez(d / "data.npz", x=x.numpy(), y=np.zeros(SAMPLES, dtype=np.int64))
    verilog.write(d, net, lanes=4)
    res = golden.run(net, golden.encode(net, x), record=True)
    for p in net.populations[:-1]:  # every hidden population fires in every sample
        assert (res.outputs[p.name].flatten(1).sum(1) > 0).all(), p.name
    return d, net, res


@pytest.mark.parametrize("simulator", ["icarus", "icarus-sv", "verilator", "yosys"])
def test_every_simulator_matches_the_golden_model(small, simulator):
    d, net, res = small
    report = simulate(d, simulator=simulator, samples=SAMPLES, data_path=str(d / "data.npz"),
                      progress=False)
    r = report.to_json()
    assert r["finished"] and r["exact"], r["first_divergence_text"]
    assert r["checked_taps"] == ["h1", "h2"]
    assert report.comparison.observed_classes == res.predictions.tolist()


def test_emitted_verilog_has_no_always_star_blocks():
    """Combinational logic as continuous assignments: nothing that needs an event at time 0
    (the declaration initialiser that Yosys adds to start ``always @*`` blocks is none
    under SystemVerilog rules)."""
    for top in examples.EXAMPLES:
        text = (ROOT / "rtl" / f"{top}.v").read_text()
        blocks = re.findall(r"always\s*@\s*\(?[^)\n]*\)?", text)
        assert blocks and set(blocks) <= {"always @(posedge clk)"}, set(blocks)
        assert "verilog_backend" not in text


def test_amaranths_own_verilog_is_caught_under_systemverilog_rules(small, tmp_path):
    """Amaranth's back end keeps ``always @*`` blocks started by a declaration initialiser:
    under -g2012 some outputs stay X, and the report names the port and its population
    (this is what the emitted Verilog avoids)."""
    d, net, _ = small
    desc = verilog.read_description(d / "rtl" / "hwsnn_net.json")
    text = amaranth_verilog.convert(verilog.build(net, lanes=4), name="hwsnn_net",
                                    emit_src=False)
    assert "always @*" in text
    path = tmp_path / "amaranth.v"
    path.write_text(text)
    report = simulate(d, simulator="icarus-sv", samples=1, data_path=str(d / "data.npz"),
                      verilog_path=str(path), progress=False, waves_on_mismatch=False)
    first = report.comparison.first
    assert not report.exact and first.sample == 0, first
    port = re.fullmatch(r"its output (\w+) is \w+, not 0 or 1: the bench stopped there",
                        first.what).group(1)
    owner = {f"{t['port']}__{x}": t["population"] for t in desc["taps"]
             for x in ("valid", "payload")}
    owner.update({"pixels__ready": net.populations[0].name, "o__valid": net.output.name,
                  "o__payload": net.output.name})
    assert first.population == owner[port], first


def test_a_verilog_file_with_other_ports_is_refused(small, tmp_path, capsys):
    """``hwsnn sim DIR --verilog FILE``: one line naming what is missing or odd, exit 2."""
    d, _, _ = small
    text = (d / "rtl" / "hwsnn_net.v").read_text()
    cases = [
        # a tap port renamed: one missing, one odd
        (text.replace("tap_h2__valid", "tap_h9__valid"), [],
         ["no port tap_h2__valid (output, 1 bit)", "a port tap_h9__valid that"]),
        # a port of another width
        (re.sub(r"input \[7:0\] pixels__payload;", "input [6:0] pixels__payload;", text), [],
         ["port pixels__payload is input, 7 bits, not input, 8 bits"]),
        (text, ["--top", "other"], ["has no module other (it has hwsnn_net)"]),
        (text, ["--lanes", "2"], ["--lanes", "--verilog"]),
        (text, ["--simulator", "yosys", "--stall", "0.1"], ["--stall", "yosys"]),
    ]
    for i, (content, extra, words) in enumerate(cases):
        path = tmp_path / f"design{i}.v"
        path.write_text(content)
        capsys.readouterr()
        rc = cli.main(["sim", str(d), "--verilog", str(path), "--simulator", "icarus",
                       "--samples", "1", "--data", str(d / "data.npz"), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert all(w in err for w in words), (words, err)


@pytest.mark.parametrize("simulator", ["icarus", "yosys"])
def test_an_output_at_x_ends_the_run_and_is_named(small, tmp_path, simulator):
    """h2 drives X on its event stream's valid: both benches stop at the first edge and
    name the tap port and population."""
    d, _, _ = small
    text = (d / "rtl" / "hwsnn_net.v").read_text()
    start = text.index("module \\hwsnn_net.engine_h2.serializer ")  # its output stream
    end = text.index("endmodule", start)
    body, n = re.subn(r"assign o__valid = [^;]+;", "assign o__valid = 1'bx;", text[start:end])
    assert n == 1
    path = tmp_path / "x.v"
    path.write_text(text[:start] + body + text[end:])
    report = simulate(d, simulator=simulator, samples=2, data_path=str(d / "data.npz"),
                      verilog_path=str(path), progress=False, waves_on_mismatch=False)
    first = report.comparison.first
    assert not report.exact and not report.comparison.finished
    assert (first.population, first.readout, first.sample, first.cycle) == ("h2", False, 0, 0)
    assert "its output tap_h2__valid is X, not 0 or 1" in first.what, first.what
