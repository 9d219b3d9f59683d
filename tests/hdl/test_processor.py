"""The layer-serial processor (hwsnn.hdl.processor) against the golden model, bit for bit,
in Amaranth's simulator with random gaps on its streams (and reads that meet a write
poisoned, tests/hdl/conftest.py); its busy cycles against the plan's ideal (docs/serial.md:
within 1.15×)."""

import random

import pytest
import torch

from hwsnn.errors import ParameterError
from hwsnn.hdl.processor import SerialProcessor, check_supported
from hwsnn.hdl.serial import KINDS, SerialPlan, descriptor_words
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.snn.random_nets import random_codes, random_qnet

from .processor_bench import run_processor

RATIO = 1.15  # issue 19: cycles within 1.15× of the serial ideal


def _overhead(plan) -> int:
    """A bound on the cycles the processor spends beside the ideal ones: per tile its
    descriptor words and two, its V0 writes, the drains (7 cycles each, around every
    sweep); per step and projection a scan's start and end and the expander's latency; a
    readout's sweep (the ideal counts its values reported instead)."""
    spec, total = plan.program_fields(), 0
    for t in plan.tiles:
        words = t.height * t.width * t.tile_groups
        sweeps = t.steps_out if KINDS[t.kind] == "ilif" else t.steps_in
        total += descriptor_words(spec, t) + 2 + words + 7
        if KINDS[t.kind] == "readout":
            total += words * plan.sweep_cycles
        total += t.steps_in * (12 + len(t.records) * 8) + sweeps * 14
    return total


def _check(plan, codes, seed=0, ratio=None, loadable=False):
    """Bit for bit against the golden model; the busy cycles at most the ideal plus
    ``_overhead`` (or, given, ``ratio`` × the ideal). (They may be fewer than the ideal:
    the scanners read words while the expander works on earlier events, which the ideal
    counts one after the other.)"""
    values, argmax, cycles = run_processor(plan, codes, seed=seed, loadable=loadable)
    ref = golden.run(plan.net, codes, lanes=plan.lanes)
    assert torch.equal(values, ref.readout)
    assert torch.equal(argmax, ref.predictions)
    ideal = plan.ideal_cycles(ref, codes)
    assert len(cycles) == len(codes)
    bound = ideal * ratio if ratio else ideal + _overhead(plan)
    assert (cycles <= bound).all(), (cycles, ideal, bound)
    return cycles, ideal


@pytest.mark.parametrize("model,method,lanes,membrane_words,samples", [
    ("digits-mlp", "gn", 4, None, 3), ("digits-mlp", "gn", 1, None, 1),
    ("digits-mlp", "gn", 8, 3, 2), ("digits-mlp", "ilif", 4, None, 2),
    ("digits-mlp", "if-shift", 2, 5, 1), ("digits-cnn", "gn", 4, None, 1),
    ("digits-cnn", "gn", 8, 64, 1), ("digits-cnn", "ilif", 4, 64, 1),
    # (the readout's 10 values in 3 tiles of 2 words of 2 lanes, each tile reporting its
    # own: the argmax carried across them)
    ("digits-mlp", "gn", 2, 2, 2)])
def test_bundled_designs(bundled_graph, digits_test, model, method, lanes, membrane_words,
                         samples):
    kw = {"group_size": 4} if method == "gn" else {}
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2, progress=False,
                           **kw))
    plan = SerialPlan(net, lanes=lanes, membrane_words=membrane_words, keep_current=False)
    x, _ = digits_test
    _check(plan, golden.encode(net, x[:samples]), seed=lanes,
           ratio=RATIO if model == "digits-cnn" else None)


@pytest.mark.parametrize("model,method,lanes,rule_units", [
    ("digits-mlp", "gn", 8, 2), ("digits-mlp", "ilif", 4, 4), ("digits-cnn", "gn", 8, 4)])
def test_rule_units_shared(bundled_graph, digits_test, model, method, lanes, rule_units):
    """The lanes sharing R rule units (``SerialPlan(rule_units=R)``; the default is P/8,
    at least 1, which the other tests cover): a sweep issues each word P/R times; R = P
    shares none."""
    kw = {"group_size": 4} if method == "gn" else {}
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2, progress=False,
                           **kw))
    plan = SerialPlan(net, lanes=lanes, keep_current=False, rule_units=rule_units)
    assert plan.sweep_cycles == lanes // rule_units
    x, _ = digits_test
    _check(plan, golden.encode(net, x[:2]), seed=rule_units,
           ratio=RATIO if model == "digits-cnn" else None)


# Random networks of the rate methods the processor runs (seeds: every one tried passes).
SEEDS = [(seed, method) for seed in range(6) for method in ("gn", "if", "if-shift", "ilif")]


@pytest.mark.parametrize("seed,method", SEEDS)
def test_random_networks(seed, method):
    rng = random.Random(seed)
    net = random_qnet(rng, method)
    lanes = rng.choice([1, 2, 4, 8])
    plan = SerialPlan(net, lanes=lanes, keep_current=False)
    _check(plan, random_codes(rng, net, 2), seed=seed)


@pytest.mark.parametrize("model,method,lanes,membrane_words", [
    ("digits-mlp", "gn", 4, None), ("digits-cnn", "ilif", 2, 64)])
def test_weights_loaded_at_run_time(bundled_graph, digits_test, model, method, lanes,
                                    membrane_words):
    """Weights in run-time stores (SPRAM on a UP5K), written through ``load`` in a random
    order before the first sample: bit for bit as with the weights in block RAM."""
    kw = {"group_size": 4} if method == "gn" else {}
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2, progress=False,
                           **kw))
    plan = SerialPlan(net, lanes=lanes, membrane_words=membrane_words, keep_current=False)
    assert not plan.stores
    words = len(plan.memory_words("weights")) + 1
    assert [s.depth for s in plan.with_loadable(True).stores] == [-(-words // 2), words // 2]
    x, _ = digits_test
    _check(plan, golden.encode(net, x[:2]), seed=lanes, loadable=True)


def test_what_it_does_not_run_yet_is_refused_by_name(bundled_graph):
    graph = bundled_graph("digits-mlp")
    cos = quantize(convert(graph, method="cos", timesteps=2, progress=False))
    with pytest.raises(ParameterError, match="methods gn, if, if-shift and ilif .* not cos"):
        SerialProcessor(SerialPlan(cos, lanes=4, keep_current=False))
    gn = quantize(convert(graph, method="gn", timesteps=2, group_size=4, progress=False))
    with pytest.raises(ParameterError, match="keep_current=False"):
        check_supported(SerialPlan(gn, lanes=4))
    with pytest.raises(ParameterError, match="power of two lanes, not 3"):
        check_supported(SerialPlan(gn, lanes=3, keep_current=False))


@pytest.mark.parametrize("lanes", [1, 4])
def test_folded_poolings(lanes):
    """A network whose poolings are folded into its weights (test_serial's: a 2×2 pooling
    into a 6×6 kernel, another into dense rows over an odd map, a global one), each weight
    stored once and the plane scanner sending the pooled map's events; its readout starts
    at a non-zero V0: bit for bit."""
    from .test_serial import _pooled_net

    net = _pooled_net()
    plan = SerialPlan(net, lanes=lanes, keep_current=False)
    assert [d.pool for layer in plan.layers for d in layer.projections] == [0, 1, 1, 1]
    assert net.populations[-1].v0 != 0
    codes = torch.randint(0, 256, (3, 1, 5, 5), generator=torch.Generator().manual_seed(4))
    _check(plan, codes, seed=lanes)


@pytest.mark.parametrize("model,lanes,bits", [("digits-mlp", 4, 5), ("digits-cnn", 8, 16)])
def test_weight_banks_in_slices(bundled_graph, digits_test, model, lanes, bits):
    """Block-RAM weight banks cut into memories of ``weight_slices`` bits (the last one
    narrower where the word is not a multiple: 32 = 6·5 + 2), one address for all:
    bit for bit as whole words."""
    net = quantize(convert(bundled_graph(model), method="gn", timesteps=2, group_size=4,
                           progress=False))
    plan = SerialPlan(net, lanes=lanes, keep_current=False, weight_slices=bits)
    assert plan.lanes * plan.weight_bits % bits == (2 if model == "digits-mlp" else 0)
    x, _ = digits_test
    _check(plan, golden.encode(net, x[:1]), seed=bits)
