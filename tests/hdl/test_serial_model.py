"""The layer-serial processor's model (hwsnn.hdl.serial_model) against the golden model:
run from nothing but the memory images and the layer program the compiler pass emits, it
must give every population's counts and the readout bit for bit, and spend exactly the
plan's ideal cycles (docs/serial.md) on scans and operations."""

import random

import pytest
import torch

from hwsnn.errors import ParameterError
from hwsnn.hdl.serial import SerialPlan, _pack, decode_program, descriptor_words
from hwsnn.hdl.serial_model import SerialMachine
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.snn.random_nets import METHODS, limit_qnet, random_codes, random_qnet, small_cifar_qnet


def _same_as_golden(plan: SerialPlan, codes):
    run = SerialMachine(plan).run(codes)
    ref = golden.run(plan.net, codes, lanes=plan.lanes, record=True)
    assert torch.equal(run.readout, ref.readout)
    assert set(run.outputs) == set(ref.outputs)
    for name, counts in run.outputs.items():
        assert torch.equal(counts, ref.outputs[name]), name
    assert torch.equal(run.scan + run.ops, plan.ideal_cycles(ref, codes))
    assert torch.equal(run.descriptor, torch.full_like(run.descriptor,
                                                       len(plan.program_words())))
    return run


@pytest.mark.parametrize("model,method,lanes,membrane_words,keep", [
    ("digits-mlp", "gn", 4, None, True), ("digits-mlp", "gn", 3, 5, False),
    ("digits-mlp", "ilif", 5, 4, True), ("digits-mlp", "cos", 4, None, True),
    ("digits-cnn", "gn", 4, None, True), ("digits-cnn", "gn", 3, 64, False),
    ("digits-cnn", "ilif", 4, 64, True), ("digits-cnn", "cos", 8, 64, True),
    ("digits-cnn", "if-shift", 16, None, True)])
def test_bundled_designs(bundled_graph, digits_test, model, method, lanes, membrane_words,
                         keep):
    kw = {"group_size": 4} if method == "gn" else {}
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2,
                           progress=False, **kw))
    plan = SerialPlan(net, lanes=lanes, membrane_words=membrane_words, keep_current=keep)
    x, _ = digits_test
    run = _same_as_golden(plan, golden.encode(net, x[:4]))
    if membrane_words is not None:  # the tiles really split a population
        assert any(len(layer.tiles) > 1 for layer in plan.layers)
        assert run.descriptor[0] > len(SerialPlan(net, lanes=lanes).program_words())


# Every seed of both generators and every method (about 5 s); benchmarks run more.
SEEDS = range(40)


@pytest.mark.parametrize("make", [random_qnet, limit_qnet])
def test_random_networks(make):
    checked = 0
    for seed in SEEDS:
        for method in METHODS:
            rng = random.Random(seed)
            net = make(rng, method)
            lanes = rng.choice([1, 2, 3, 4, 8])
            words = rng.choice([None, 100, 300])
            try:
                plan = SerialPlan(net, lanes=lanes, membrane_words=words,
                                  keep_current=rng.random() < 0.7)
            except ParameterError as exc:  # a map of more positions than membrane words
                assert "membrane words" in str(exc)
                continue
            _same_as_golden(plan, random_codes(rng, net, 3))
            checked += 1
    assert checked >= 0.9 * len(SEEDS) * len(METHODS)


def test_small_cifar_cnn():
    """Issue 19's network at 18 lanes, its first two layers split into two tiles each, the
    input current replayed: the point that fits the ULX3S-85F (benchmarks/serial_plan.py)."""
    net = small_cifar_qnet()
    plan = SerialPlan(net, lanes=18, membrane_words=1024, keep_current=False)
    assert [len(layer.tiles) for layer in plan.layers] == [2, 2, 1, 1, 1]
    torch.manual_seed(1)
    _same_as_golden(plan, torch.randint(0, 256, (2, 3, 32, 32)))


def test_the_program_round_trip(bundled_graph):
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    plan = SerialPlan(net, lanes=4, membrane_words=64)
    words, spec = plan.program_words(), plan.program_fields()
    tiles = decode_program(words, spec)
    assert tiles == plan.tiles and tiles[-1].last and not any(t.last for t in tiles[:-1])
    assert sum(descriptor_words(spec, t) for t in tiles) == len(words)
    assert all(0 <= w < 2**32 for w in words)
    # Every field as wide as its largest value needs: the widest, one bit narrower, fails.
    assert spec["v0"][1] and not spec["threshold"][1]
    narrow = dict(spec, threshold=(spec["threshold"][0] - 1, False))
    with pytest.raises(ParameterError, match="does not fit"):
        _pack([(max(t.threshold for t in tiles), *narrow["threshold"])])
    # A program cut short is refused, not read past its end.
    with pytest.raises(ParameterError, match="ends inside a record"):
        decode_program(words[:-1], spec)
