"""The layer-serial processor with its weights and spike planes in SDRAM (docs/sdram.md) in
Verilator: the SDRAM controller, the DMA streams and the chip's timing-checking model
(which ends the simulation at any violated constraint) against the golden model, bit for
bit, with random stalls on the processor's streams; the words the chip's model counts are
the ones the plan says a sample moves, and the busy cycles are within 1.15× of the plan's
ideal. ResNet-18 and VGG-11 run in ``benchmarks/cifar_sdram.py`` (about 25 and 15 million
cycles an image)."""

import math
import random

import pytest

from hwsnn.hdl.serial import SerialPlan
from hwsnn.sim.serial import simulate_serial
from hwsnn.snn.cifar_nets import cifar_qnet
from hwsnn.snn.random_nets import random_codes, random_qnet, small_cifar_qnet

RATIO = 1.15


def _check(plan, codes, work, stall=0.2, ratio=RATIO):
    r = simulate_serial(plan, codes, work, stall=stall, seed=5)
    assert r["exact"], r["first_divergence"]
    assert r["mismatches"] == 0
    n, moved = r["samples"], plan.transfers()
    assert r["sdram"]["violations"] == 0
    assert r["sdram"]["reads"] == n * (moved["weights"] + moved["plane_reads"])
    assert r["sdram"]["writes"] == n * moved["plane_writes"]
    if ratio is not None:
        assert r["busy_cycles_per_sample"] <= ratio * r["ideal_cycles_per_sample"]
    return r


@pytest.mark.parametrize("seed,method", list(enumerate(("gn", "if", "if-shift", "ilif"), 60)))
def test_random_networks(tmp_path, seed, method):
    """Tiny networks (their per-tile costs, an SDRAM read's latency among them, outweigh
    the ideal cycles), lanes, tiles and weight buffers drawn."""
    rng = random.Random(seed)
    net = random_qnet(rng, method)
    rows = max(SerialPlan.rows_per_group(net).values())
    positions = max(math.prod(p.shape[1:]) if len(p.shape) == 3 else 1
                    for p in net.populations)
    plan = SerialPlan(net, lanes=rng.choice([1, 2, 4, 8]), keep_current=False,
                      membrane_words=rng.choice([None, positions]), external=True,
                      weight_words=rng.choice([rows, 3 * rows]))
    _check(plan, random_codes(rng, net, 3), tmp_path, ratio=None)


def test_small_cifar_cnn(tmp_path):
    """Issue 19's small CIFAR CNN, 10 random images (about 19 million cycles), its
    weights loaded tile by tile into a 4,096-word buffer in 4-bit slices."""
    plan = SerialPlan(small_cifar_qnet(), lanes=16, membrane_words=1024, keep_current=False,
                      external=True, weight_words=4096, weight_slices=4)
    r = _check(plan, random_codes(random.Random(1), plan.net, 10), tmp_path, stall=0.1)
    assert r["samples"] == 10


@pytest.mark.parametrize("method", ["gn", "ilif"])
def test_resnet20(tmp_path, method):
    """Issue 20's ResNet-20 (GN τ = 4 or ILIF, T = 2), its residual blocks two projections
    into a population, on 2 random images (about 2.2 million cycles each)."""
    net = cifar_qnet("resnet20", method=method)
    plan = SerialPlan(net, lanes=16, membrane_words=1024, keep_current=False, external=True,
                      weight_words=1024, weight_slices=4)
    assert max(SerialPlan.rows_per_group(net).values()) == 640
    _check(plan, random_codes(random.Random(2), net, 2), tmp_path, stall=0.1)
