"""Fault injection into every bundled design (``rtl/``): one weight zeroed in each
population, readout included, is caught by ``hwsnn sim --verilog``, and the first
divergence names that population, the step and neurons where the golden model of the
corrupted network differs, and both values.

The weight is chosen with the golden model (``hwsnn.sim.faults.zeroed_weights``) so that
the sample simulated shows the fault: the corrupted design must then diverge, and its
first divergence must be in that population, because the populations before it are
unchanged and those after it can only differ after it does. The corrupted Verilog is the
bundled file with that weight's ROM word rewritten (``with_weights_of``, checked against
the Verilog generated from the corrupted QNet), simulated against the bundled QNet on one
sample, stopping at the first wrong event (more faults and their catch rate:
benchmarks/faults.py).
"""

import json
import shutil
from pathlib import Path

import pytest

from hwsnn.hdl import verilog
from hwsnn.sim.faults import with_weights_of, zeroed_weights
from hwsnn.tools import cli, examples

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR = "icarus-sv"
CASES = [(top, p) for top, populations in [
    ("digits_mlp_gn", ["fc1", "fc2", "fc3"]),
    ("digits_cnn_gn", ["conv1", "conv2", "conv3", "fc"]),
    ("digits_cnn_ilif", ["conv1", "conv2", "conv3", "fc"]),
] for p in populations]


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """top → (conversion directory with the design of rtl/, its QNet, sample 0's codes)."""
    cache = {}

    def get(top):
        if top not in cache:
            d = tmp_path_factory.mktemp(top)
            net = examples.example_qnet(top)
            net.save(d)
            (d / "rtl").mkdir()
            for ext in (".v", ".json", ".md"):
                shutil.copy(ROOT / "rtl" / f"{top}{ext}", d / "rtl" / f"{top}{ext}")
            desc = verilog.read_description(d / "rtl" / f"{top}.json")
            assert desc["made_from"]["qnet_sha256"] == verilog.fingerprint(net)
            codes, _ = verilog.example_codes(net)  # test sample 0
            cache[top] = (d, net, codes, desc)
        return cache[top]

    return get


def test_every_population_of_every_bundled_design_is_covered(bundled):
    assert {top for top, _ in CASES} == set(examples.EXAMPLES)
    for top in examples.EXAMPLES:
        names = [p.name for p in bundled(top)[1].populations]
        assert [p for t, p in CASES if t == top] == names


@pytest.mark.parametrize("top,population", [("digits_mlp_gn", "fc1"),
                                             ("digits_cnn_ilif", "conv2")])
def test_rewritten_rom_words_are_the_corrupted_networks_verilog(bundled, top, population):
    """The fault injector's ROM words against the Verilog of the corrupted QNet: an input
    projection (bit-serial input stage) and a convolution."""
    d, net, codes, _ = bundled(top)
    bad = next(zeroed_weights(net, population, codes)).apply(net)
    text = (d / "rtl" / f"{top}.v").read_text()
    lanes = examples.EXAMPLES[top][4]
    assert with_weights_of(text, top, net, bad, population, lanes) == \
        verilog.emit(bad, lanes=lanes, top=top)


@pytest.mark.parametrize("top,population", CASES)
def test_a_zeroed_weight_is_caught_and_located(bundled, tmp_path, capsys, top, population):
    d, net, codes, desc = bundled(top)
    fault = next(zeroed_weights(net, population, codes))
    text = (d / "rtl" / f"{top}.v").read_text()
    bad = with_weights_of(text, top, net, fault.apply(net), population,
                          examples.EXAMPLES[top][4])
    assert bad != text
    path = tmp_path / "corrupted.v"
    path.write_text(bad)
    capsys.readouterr()
    rc = cli.main(["sim", str(d), "--verilog", str(path), "--simulator", SIMULATOR,
                   "--samples", "1", "--stop-at-divergence", "--no-rerun", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 1 and not r["exact"] and r["mismatches"] == 1
    first = r["first_divergence"]
    # The bench stopped at a hidden population's first wrong event (the readout has no
    # tap: its values come at the end of the sample).
    readout = net.population(population).kind == "readout"
    assert r["stopped_at"] == (None if readout else first["cycle"])
    assert (first["population"], first["readout"], first["sample"], first["step"]) == \
        (population, readout, 0, fault.step), (fault, first)
    assert tuple(first["neuron"]) in fault.differences, (fault, first)
    assert (first["expected"], first["observed"]) == fault.differences[tuple(first["neuron"])]
    where = f"population {population}{' (readout)' if readout else ''}, sample 0"
    assert r["first_divergence_text"].startswith(where), r["first_divergence_text"]
