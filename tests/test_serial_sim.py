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

def _check(plan, codes, work, stall=0.2):
    report = simulate_serial(plan, codes, work, stall=stall, seed=3)
    assert report["exact"], report["first_divergence"]
    assert report["busy_cycles_per_sample"] <= RATIO * report["ideal_cycles_per_sample"]
    return report


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
    """Issue 19's small CIFAR CNN (random weights calibrated on random inputs), at the plan
    that fits the ULX3S-85F: 16 lanes, two tiles in each of the first two layers, the input
    current replayed; 10 random images (about 19 million cycles)."""
    plan = SerialPlan(small_cifar_qnet(), lanes=16, membrane_words=1024, keep_current=False)
    torch.manual_seed(1)
    report = _check(plan, torch.randint(0, 256, (10, 3, 32, 32)), tmp_path, stall=0.1)
    assert report["samples"] == 10
