"""Whole networks as Verilog in cocotb (Verilator and Icarus) against the golden model."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from verilog_faults import set_weight

from hwsnn.hdl import verilog
from hwsnn.sim.run import lint, simulate
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.tools import examples

ROOT = Path(__file__).resolve().parent.parent
HWSNN = [sys.executable, "-m", "hwsnn"]


@pytest.fixture(scope="module")
def design(tmp_path_factory, bundled_graph):
    cache = {}

    def get(model, method, steps, lanes):
        key = (model, method, steps, lanes)
        if key not in cache:
            d = tmp_path_factory.mktemp(f"{model}-{method}-{steps}-{lanes}")
            net = quantize(convert(bundled_graph(model), method=method, timesteps=steps,
                                   group_size=4 if method == "gn" else None, progress=False))
            net.save(d)
            verilog.write(d, net, lanes=lanes)
            cache[key] = (d, net)
        return cache[key]

    return get


@pytest.mark.parametrize("model,method,steps,lanes,simulator,samples,stall", [
    ("digits-mlp", "gn", 2, 16, "verilator", 24, 0.0),
    ("digits-mlp", "ilif", 3, 4, "icarus-sv", 6, 0.3),  # (-g2012)
    ("digits-mlp", "if", 2, 4, "icarus", 6, 0.0),
    ("digits-cnn", "gn", 2, 16, "verilator", 6, 0.0),
    ("digits-cnn", "ilif", 2, 16, "icarus", 2, 0.2),
    ("digits-mlp", "cos", 2, 4, "verilator", 12, 0.0),  # ρ = 8 pre-simulation steps
    ("digits-cnn", "cos", 2, 16, "verilator", 3, 0.0),
])
def test_network_is_bit_exact(design, digits_test, model, method, steps, lanes, simulator,
                              samples, stall):
    directory, net = design(model, method, steps, lanes)
    report = simulate(directory, simulator=simulator, samples=samples, stall=stall,
                      progress=False)
    r = report.to_json()
    assert r["finished"] and r["mismatches"] == 0, r["first_divergence_text"]
    hidden = [p.name for p in net.populations if p.kind != "readout"]
    assert r["checked_taps"] == hidden
    # The design's classes are the golden model's (and so its accuracy).
    codes = golden.encode(net, digits_test[0][:samples])
    assert report.comparison.observed_classes == golden.run(net, codes).predictions.tolist()
    if stall == 0.0:
        assert r["cycle_ratio"] <= 1.15, r["layers"]
        for row in r["layers"]:
            if net.population(row["population"]).kind != "readout":
                assert row["ratio"] <= 1.10, row


def test_multiply_accumulate_input_stage_is_bit_exact(design, tmp_path, digits_test):
    """The Verilog of the 8-lane multiply-accumulate input stage (2 lanes behind it) in
    Icarus with stalls: bit-exact, every hidden event included; its work counter is the
    golden model's ideal count with input lanes."""
    directory, net = design("digits-mlp", "gn", 2, 2)
    d = tmp_path / "mac"
    d.mkdir()
    for name in ("qnet.json", "qnet.npz"):
        shutil.copy(directory / name, d / name)
    desc = verilog.write(d, net, lanes=2, input_lanes=8)
    assert desc["made_from"]["input_lanes"] == 8
    report = simulate(d, simulator="icarus", samples=4, stall=0.2, progress=False)
    r = report.to_json()
    assert r["finished"] and r["mismatches"] == 0, r["first_divergence_text"]
    fc1 = next(row for row in r["layers"] if row["population"] == "fc1")
    assert 1.0 <= fc1["ratio"] <= 1.05, fc1  # (+ the idle cycles after each sweep)
    codes = golden.encode(net, digits_test[0][:4])
    assert fc1["ideal_cycles_per_inference"] == float(
        golden.run(net, codes, lanes=2, input_lanes=8).cycles["fc1"].sum(1).double().mean())


def _changed_weight(net, population):
    """A weight of ``population`` (dense, from the previous layer) whose change alters the
    golden model's output for sample 0: (target, source, value, step, neuron, expected,
    observed) with the first step and neuron that differ."""
    codes = golden.encode(net, _digits()[:1])
    base = golden.run(net, codes, record=True)
    pop = net.population(population)
    w = pop.projections[0].weight
    top = 2 ** (pop.projections[0].weight_bits - 1) - 1
    src = pop.projections[0].source
    active = base.outputs[src][0].sum(0).nonzero().flatten().tolist()
    for j in active:
        for i in range(w.shape[0]):
            if w[i, j] == top:
                continue
            bad = copy.deepcopy(net)
            bad.population(population).projections[0].weight[i, j] = top
            res = golden.run(bad, codes, record=True)
            if pop.kind == "readout":
                if res.readout[0].tolist() != base.readout[0].tolist():
                    k = next(k for k in range(w.shape[0])
                             if res.readout[0, k] != base.readout[0, k])
                    return i, j, top, None, [k], int(base.readout[0, k]), \
                        int(res.readout[0, k])
                continue
            diff = (res.outputs[population][0] != base.outputs[population][0])
            if diff.any():
                t, k = diff.nonzero()[0].tolist()
                return i, j, top, t, [k], int(base.outputs[population][0, t, k]), \
                    int(res.outputs[population][0, t, k])
    raise AssertionError("no weight changes the output")


def _digits():
    from hwsnn.frontends import data
    return data.load("digits", "test")[0]


@pytest.mark.parametrize("population,lanes", [("fc2", 4), ("fc3", 4), ("fc2", 16)])
def test_corrupted_weight_is_reported_where_it_diverges(design, tmp_path, population, lanes):
    directory, net = design("digits-mlp", "gn", 2, lanes)
    i, j, value, step, neuron, want, got = _changed_weight(net, population)
    text = (directory / "rtl" / "hwsnn_net.v").read_text()
    bad = set_weight(text, "hwsnn_net", net, population, 0, i, j, value, lanes)
    assert bad != text
    path = tmp_path / "corrupted.v"
    path.write_text(bad)
    report = simulate(directory, simulator="icarus", samples=2, verilog_path=str(path),
                      progress=False)
    assert not report.exact
    first = report.comparison.first
    readout = net.population(population).kind == "readout"
    assert (first.population, first.readout, first.sample, first.step, first.neuron) == \
        (population, readout, 0, step, neuron)
    assert (first.expected, first.observed) == (want, got)
    text = report.to_json()["first_divergence_text"]
    where = f"population {population}{' (readout)' if readout else ''}, sample 0"
    assert where in text and f"expected {want}" in text
    # The samples up to the divergence were run again with waves recorded.
    assert report.waves and Path(report.waves).is_file()


def test_a_hung_design_is_reported(design, tmp_path):
    """fc2 never offers its events: the network stalls; the bench notices the silence."""
    directory, net = design("digits-mlp", "gn", 2, 4)
    text = (directory / "rtl" / "hwsnn_net.v").read_text()
    start = text.index("module \\hwsnn_net.engine_fc2.serializer ")  # its output stream
    end = text.index("endmodule", start)
    body, n = re.subn(r"assign o__valid = [^;]+;", "assign o__valid = 1'h0;",
                      text[start:end])
    assert n == 1
    path = tmp_path / "hung.v"
    path.write_text(text[:start] + body + text[end:])
    report = simulate(directory, simulator="icarus", samples=2, verilog_path=str(path),
                      progress=False, waves_on_mismatch=False)
    assert not report.comparison.finished and not report.exact
    first = report.comparison.first
    assert (first.population, first.sample, first.step) == ("fc2", 0, 0)
    assert "never ended" in first.what
    readout = next(d for d in report.comparison.divergences if d.readout)
    assert readout.population == "fc3" and "it hangs" in readout.what


def test_generated_verilog_is_deterministic_and_described(design):
    directory, net = design("digits-mlp", "gn", 2, 4)
    text = (directory / "rtl" / "hwsnn_net.v").read_text()
    assert verilog.emit(net, lanes=4) == text
    assert str(directory) not in text and os.getcwd() not in text
    desc = json.loads((directory / "rtl" / "hwsnn_net.json").read_text())
    header = text[text.index("module hwsnn_net("):].split(")", 1)[0]
    declared = set(header[len("module hwsnn_net("):].replace(" ", "").split(","))
    assert declared == {p["name"] for p in desc["ports"]}
    for p in desc["ports"]:
        kind = "input" if p["direction"] == "input" else "output"
        width = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
        assert f"  {kind} {width}{p['name']};" in text, p
    # The example transaction is the golden model's answer to the first test image.
    codes = golden.encode(net, _digits()[:1])
    assert desc["example"]["pixels"] == codes.flatten().tolist()
    res = golden.run(net, codes)
    assert [b["value"] for b in desc["example"]["readout"]] == res.readout[0].tolist()
    assert desc["made_from"]["qnet_sha256"] == verilog.fingerprint(net)


def test_examples_in_rtl_are_current(tmp_path):
    """rtl/ holds what `make rtl` generates now (regenerate it when this fails)."""
    examples.generate(tmp_path)
    for top in examples.EXAMPLES:
        for ext in (".v", ".json", ".md"):
            kept = ROOT / "rtl" / f"{top}{ext}"
            assert kept.is_file(), f"{kept} is missing: run make rtl"
            assert (tmp_path / f"{top}{ext}").read_bytes() == kept.read_bytes(), \
                f"{kept} is stale: run make rtl"


@pytest.mark.parametrize("top", sorted(examples.EXAMPLES))
def test_verilator_lint_finds_no_errors(top):
    r = lint(ROOT / "rtl" / f"{top}.v", top)
    assert r["errors"] == [], r["errors"][:5]
    assert "Exiting due to" not in " ".join(r["errors"])


def _cli(*args, env=None):
    return subprocess.run(HWSNN + list(args), capture_output=True, text=True, env=env,
                          cwd=ROOT)


def test_cli_verilog_and_sim(tmp_path):
    d = tmp_path / "mlp"
    r = _cli("convert", "digits-mlp", "-o", str(d), "--method", "ilif", "--timesteps", "2",
             "--json")
    assert r.returncode == 0, r.stderr
    r = _cli("verilog", str(d), "--lanes", "8", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["lanes"].values()) == {8} and Path(out["files"]["verilog"]).is_file()
    r = _cli("sim", str(d), "--simulator", "icarus", "--samples", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["samples"] == 3 and out["mismatches"] == 0
    assert 0 < out["ideal_cycles_per_inference"] <= out["cycles_per_inference"] * 1.2
    assert {"cycles_per_inference", "ideal_cycles_per_inference", "layers"} <= set(out)

    # The QNet replaced after the Verilog was written: the design is stale.
    other = tmp_path / "other"
    r = _cli("convert", "digits-mlp", "-o", str(other), "--method", "ilif", "--timesteps",
             "3", "--json")
    assert r.returncode == 0, r.stderr
    for name in ("qnet.json", "qnet.npz"):
        shutil.copy(other / name, d / name)
    r = _cli("sim", str(d), "--simulator", "icarus", "--samples", "1")
    assert r.returncode == 2 and "another QNet" in r.stderr and "hwsnn verilog" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    # Bad input: one line, non-zero.
    for args, words in [(("--samples", "0"), "--samples"),
                        (("--samples", "100000"), "test data has"),
                        (("--stall", "1.5"), "--stall")]:
        r = _cli("sim", str(d), "--simulator", "icarus", *args)
        assert r.returncode == 2 and words in r.stderr, r.stderr
    r = _cli("verilog", str(d), "--lanes", "0")
    assert r.returncode == 2 and "--lanes" in r.stderr
    r = _cli("verilog", str(d), "--input-lanes", "8")  # ILIF has no multiply-accumulate stage
    assert r.returncode == 2 and "--input-lanes" in r.stderr and "ilif" in r.stderr
    r = _cli("verilog", str(d), "--top", "9bad name")
    assert r.returncode == 2 and "not a Verilog identifier" in r.stderr


def test_missing_simulator_is_named(tmp_path, design):
    directory, _ = design("digits-mlp", "gn", 2, 4)
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    r = _cli("sim", str(directory), "--simulator", "icarus", "--samples", "1", env=env)
    assert r.returncode == 2 and "Icarus Verilog is not installed" in r.stderr


def test_weight_rom_layout_matches_the_fault_injector(design):
    """The injector's address arithmetic against the ROM contents of the Verilog."""
    directory, net = design("digits-mlp", "gn", 2, 4)
    text = (directory / "rtl" / "hwsnn_net.v").read_text()
    w = net.population("fc2").projections[0].weight
    same = set_weight(text, "hwsnn_net", net, "fc2", 0, 5, 7, int(w[5, 7]), 4)
    assert same == text
    assert set_weight(text, "hwsnn_net", net, "fc2", 0, 5, 7, int(w[5, 7]) ^ 1, 4) != text


def test_waves_are_recorded(design):
    directory, _ = design("digits-mlp", "gn", 2, 4)
    report = simulate(directory, simulator="icarus", samples=1, waves=True, progress=False)
    assert report.exact and report.waves and Path(report.waves).stat().st_size > 1000
    assert report.waves.endswith(".fst")
