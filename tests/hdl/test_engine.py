# amaranth: UnusedElaboratable=no
"""Layer engines against the golden model in amaranth.sim, with random back-pressure."""

import random

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hwsnn import ParameterError, golden
from hwsnn.convert import convert
from hwsnn.hdl.check import check_engine
from hwsnn.hdl.engine import LayerEngine
from hwsnn.hdl.plan import mac_eligible
from hwsnn.quantize import quantize

from .random_nets import random_qnet


@pytest.fixture(scope="module")
def digits_nets(bundled_graph):
    nets = {}
    for model in ("digits-mlp", "digits-cnn"):
        for method, T in (("gn", 2), ("if", 2), ("ilif", 2)):
            nets[model, method] = quantize(convert(bundled_graph(model), method=method,
                                                   timesteps=T, progress=False))
    return nets


@pytest.mark.parametrize("method", ["gn", "if", "ilif"])
def test_mlp_engines_on_digits(digits_nets, digits_test, method):
    net = digits_nets["digits-mlp", method]
    codes = golden.encode(net, digits_test[0][:3])
    for pop, lanes in zip(net.populations, (4, 3, 1), strict=True):
        report = check_engine(net, pop.name, codes, lanes=lanes, busy=0.3, seed=1)
        assert report.ok, report.mismatches


@pytest.mark.parametrize("method", ["gn", "ilif"])
def test_cnn_engines_on_digits(digits_nets, digits_test, method):
    net = digits_nets["digits-cnn", method]
    codes = golden.encode(net, digits_test[0][:1])
    for pop in net.populations:
        report = check_engine(net, pop.name, codes, lanes=16, busy=0.2, seed=2)
        assert report.ok, report.mismatches


@pytest.mark.parametrize("border", [False, True])
def test_bias_per_lane_group_or_per_neuron(digits_nets, digits_test, border):
    """A convolution layer's bias is one per channel: its ROM holds one word per lane
    group. One neuron's bias changed at the border (as a folded input normalisation
    does) takes the engine back to a word per neuron; both equal the golden model."""
    import copy

    from hwsnn.hdl.plan import EnginePlan
    net = copy.deepcopy(digits_nets["digits-cnn", "gn"])
    pop = net.population("conv2")
    if border:
        pop.bias[5, 0, 7] += 3
    plan = EnginePlan(net, "conv2", 3)
    assert plan.bias_per_group is not border
    assert plan.groups == 6  # 16 channels on 3 lanes
    assert len(plan.bias_rom_words) == (plan.addresses if border else plan.groups)
    codes = golden.encode(net, digits_test[0][:2])
    report = check_engine(net, "conv2", codes, lanes=3, busy=0.2, seed=3)
    assert report.ok, report.mismatches


def test_cycles_close_to_ideal(digits_nets, digits_test):
    """Over a few samples (the spikes of one leave while the next one is read in)."""
    net = digits_nets["digits-cnn", "gn"]
    codes = golden.encode(net, digits_test[0][:4])
    for pop in net.populations:
        report = check_engine(net, pop.name, codes, lanes=16)
        assert report.ok, report.mismatches
        assert report.cycle_ratio <= 1.10, (pop.name, report.cycles, report.ideal_cycles)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), method=st.sampled_from(["gn", "if-shift", "ilif"]),
       lanes=st.sampled_from([1, 2, 3, 4]))
def test_random_layers(seed, method, lanes):
    rng = random.Random(seed)
    net = random_qnet(rng, method)
    codes = torch.tensor([[rng.choice([0, 255, rng.randint(0, 255)])
                           for _ in range(int(torch.tensor(net.input.shape).prod()))]
                          for _ in range(2)]).reshape(2, *net.input.shape)
    for pop in net.populations:
        report = check_engine(net, pop.name, codes, lanes=lanes, busy=0.25, seed=seed)
        assert report.ok, (pop.name, report.mismatches)


@pytest.mark.parametrize("method,lanes,input_lanes", [("gn", 1, 8), ("gn", 2, 4),
                                                     ("if", 4, 8), ("gn", 3, 3)])
def test_multiply_accumulate_input_stage(digits_nets, digits_test, method, lanes,
                                         input_lanes):
    """One pass per non-zero pixel and group of M neurons: the same spikes as the golden
    model, and the engine's own work is the golden model's ideal count (G·(nonzero + 2)
    input operations and the sweeps) up to the pixels' arrival."""
    net = digits_nets["digits-mlp", method]
    codes = golden.encode(net, digits_test[0][:3])
    name = net.populations[0].name
    report = check_engine(net, name, codes, lanes=lanes, input_lanes=input_lanes, busy=0.3,
                          seed=lanes)
    assert report.ok, report.mismatches
    fast = check_engine(net, name, codes, lanes=lanes, input_lanes=input_lanes)
    bits = check_engine(net, name, codes, lanes=lanes)
    assert fast.ok and bits.ok
    nonzero = (codes != 0).reshape(3, -1).sum(1)
    groups = -(-net.populations[0].size // input_lanes)
    sweeps = net.timesteps * -(-net.populations[0].size // lanes)
    assert fast.ideal_cycles == int((groups * (nonzero + 2)).sum()) + 3 * sweeps
    # Wall-clock cycles: the ideal plus the pixels' arrival in the first pass.
    assert fast.ideal_cycles <= fast.cycles <= fast.ideal_cycles + 3 * (64 + 40)
    assert fast.cycles < bits.cycles


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), lanes=st.sampled_from([1, 2, 3]),
       factor=st.sampled_from([1, 2, 4]))
def test_random_layers_multiply_accumulate(seed, lanes, factor):
    rng = random.Random(seed)
    net = random_qnet(rng, "gn")
    assume(any(mac_eligible(net, p) for p in net.populations))
    codes = torch.tensor([[rng.choice([0, 0, 255, rng.randint(1, 255)])
                           for _ in range(int(torch.tensor(net.input.shape).prod()))]
                          for _ in range(2)]).reshape(2, *net.input.shape)
    for pop in net.populations:
        report = check_engine(net, pop.name, codes, lanes=lanes, input_lanes=lanes * factor,
                              busy=0.25, seed=seed)
        assert report.ok, (pop.name, report.mismatches)


def test_invalid_parameters_are_refused(digits_nets, bundled_graph):
    net = digits_nets["digits-mlp", "gn"]
    with pytest.raises(TypeError, match="Lane count must be a positive integer, not 0"):
        LayerEngine(net, "fc1", lanes=0)
    with pytest.raises(ParameterError, match="no population 'nope'"):
        LayerEngine(net, "nope")
    cos = quantize(convert(bundled_graph("digits-mlp"), method="cos", timesteps=2,
                           progress=False))
    with pytest.raises(ParameterError, match="cos"):
        LayerEngine(cos, "fc1")
    sat = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=4,
                           progress=False), max_membrane_bits=12)
    name = next(p.name for p in sat.populations if p.saturate)
    with pytest.raises(ParameterError, match="saturates"):
        LayerEngine(sat, name)
    old = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           progress=False))
    old.version = 0
    with pytest.raises(ParameterError, match="version 0"):
        LayerEngine(old, "fc1")
