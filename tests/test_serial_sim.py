"""The layer-serial processor in Verilator (hwsnn.sim.serial: the free-running cocotb bench)
against the golden model, bit for bit, with random stalls on its streams; its busy cycles
within issue 19's 1.15× of the plan's ideal."""

import pytest
import torch

from hwsnn.hdl.serial import SerialPlan
from hwsnn.sim.serial import simulate_serial
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.snn.random_nets import small_cifar_qnet

RATIO = 1.15


def _check(plan, codes, work, stall=0.2, ratio=RATIO):
    report = simulate_serial(plan, codes, work, stall=stall, seed=3)
    assert report["exact"], report["first_divergence"]
    assert report["mismatches"] == 0
    if ratio is not None:
        assert report["busy_cycles_per_sample"] <= ratio * report["ideal_cycles_per_sample"]
    return report


# Random networks (hwsnn.snn.random_nets, as the dataflow engines' sweeps use them): one
# per method the processor runs, their lanes and tiling drawn with them.
RANDOM = [(seed, method) for seed, method in enumerate(("gn", "if", "if-shift", "ilif"), 40)]


@pytest.mark.parametrize("seed,method", RANDOM)
def test_random_networks(tmp_path, seed, method):
    """Bit for bit on 4 random samples each (tiny networks: their fixed per-tile costs
    outweigh the ideal cycles, which ``tests/hdl/test_processor.py`` bounds)."""
    import random

    from hwsnn.snn.random_nets import random_codes, random_qnet
    rng = random.Random(seed)
    net = random_qnet(rng, method)
    plan = SerialPlan(net, lanes=rng.choice([1, 2, 4, 8]), keep_current=False,
                      membrane_words=rng.choice([None, 4, 16]))
    _check(plan, random_codes(rng, net, 4), tmp_path, ratio=None)


@pytest.mark.parametrize("model,method,lanes", [("digits-cnn", "gn", 4),
                                                ("digits-cnn", "ilif", 8),
                                                ("digits-mlp", "if-shift", 2)])
def test_bundled_designs(bundled_graph, digits_test, tmp_path, model, method, lanes):
    kw = {"group_size": 4} if method == "gn" else {}
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2, progress=False,
                           **kw))
    plan = SerialPlan(net, lanes=lanes, membrane_words=64 if model == "digits-cnn" else None,
                      keep_current=False)
    x, _ = digits_test
    _check(plan, golden.encode(net, x[:10]), tmp_path)


def test_small_cifar_cnn(tmp_path):
    """Issue 19's small CIFAR CNN (random weights calibrated on random inputs), at a plan
    that fits the ULX3S-85F: 16 lanes sharing 2 rule units, two tiles in each of the first
    two layers, the input current replayed, its weight banks in the 4-bit slices a build
    takes (one ECP5 block each); 10 random images (about 17 million cycles)."""
    plan = SerialPlan(small_cifar_qnet(), lanes=16, membrane_words=1024, keep_current=False,
                      weight_slices=4)
    assert plan.rule_units == 2
    torch.manual_seed(1)
    report = _check(plan, torch.randint(0, 256, (10, 3, 32, 32)), tmp_path, stall=0.1)
    assert report["samples"] == 10


def test_hwsnn_sim_of_a_serial_design(bundled_graph, digits_test, tmp_path, capsys):
    """``hwsnn sim DIR --arch serial``: the processor of DIR's serial build (its report's
    plan arguments) or of ``--lanes P``, on the network's test data from ``--offset``,
    against the golden model; what it cannot do is refused by name."""
    import json

    from hwsnn.tools.cli import main
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=1,
                           group_size=4, progress=False))
    net.metadata["dataset"] = "digits"
    net.save(tmp_path)
    def refused(*argv):
        assert main(["sim", str(tmp_path), "--arch", "serial", *argv]) == 2
        return capsys.readouterr().err

    assert "has no layer-serial build: give --lanes P" in refused()
    report = tmp_path / "build" / "icebreaker" / "report.json"
    report.parent.mkdir(parents=True)
    args = {"lanes": 2, "membrane_words": 16, "keep_current": False, "loadable": True}
    report.write_text(json.dumps({"arch": "serial", "serial": {"plan": args}}))
    assert main(["sim", str(tmp_path), "--arch", "serial", "--samples", "6", "--offset", "4",
                 "--stall", "0.1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["exact"] and r["samples"] == 6 and r["offset"] == 4
    # (simulated with the weights in the bitstream's memories; a report without the rule
    # units or the weight slices, as builds before them wrote, gets the defaults: 1 for 2
    # lanes, and whole words)
    assert r["plan"] == {**args, "rule_units": 1, "weight_slices": 0}
    plan = SerialPlan(net, **args)
    x, _ = digits_test
    ref = golden.run(net, golden.encode(net, x[4:10]), lanes=2)
    ideal = plan.ideal_cycles(ref, golden.encode(net, x[4:10])).double().mean()
    assert r["ideal_cycles_per_sample"] == pytest.approx(float(ideal))
    assert main(["sim", str(tmp_path), "--arch", "serial", "--lanes", "4", "--samples",
                 "3"]) == 0
    out = capsys.readouterr().out
    assert "layer-serial processor, 4 lanes" in out and "bit-exact" in out
    assert "one lane count" in refused("--lanes", "fc1=2")
    assert "one design in one run" in refused("--waves") and "--waves" in refused("--waves")
