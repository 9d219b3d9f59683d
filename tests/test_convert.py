"""Threshold balancing and method parameters."""

import pytest
import torch
from torch import nn

from hwsnn import ParameterError
from hwsnn.convert import calibrate_thresholds, convert
from hwsnn.frontend import trace
from hwsnn.quantize import quantize


def relu_graph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    return model, trace(model, torch.zeros(2, 6))


def test_max_and_percentile_thresholds_follow_the_activations():
    model, graph = relu_graph()
    x = torch.rand(300, 6)
    with torch.no_grad():
        act = model[1](model[0](x))
    theta = calibrate_thresholds(graph, x, percentile=None, progress=False)
    assert theta["0"] == pytest.approx(float(act.max()), rel=1e-6)
    theta = calibrate_thresholds(graph, x, percentile=50.0, progress=False)
    positive = act[act > 0]
    assert theta["0"] == pytest.approx(float(positive.sort().values[
        round(0.5 * positive.numel()) - 1]), rel=1e-6)


def test_relu_without_calibration_data_is_an_error():
    _, graph = relu_graph()
    with pytest.raises(ParameterError, match="calibration data"):
        convert(graph, method="if", timesteps=4, progress=False)


def test_threshold_override_and_unknown_layer():
    _, graph = relu_graph()
    snn = convert(graph, method="if", timesteps=4, thresholds={"0": 2.5}, progress=False,
                  calibration=torch.rand(10, 6))
    assert snn.population("0").theta == 2.5
    with pytest.raises(ParameterError, match="unknown layer"):
        convert(graph, method="if", timesteps=4, thresholds={"nope": 1.0}, progress=False,
                calibration=torch.rand(10, 6))


def test_if_shift_threshold_is_a_multiple_of_2T(bundled_graph):
    for t in (1, 3, 8):
        net = quantize(convert(bundled_graph("digits-mlp"), method="if-shift", timesteps=t,
                               progress=False))
        for pop in net.populations[:-1]:
            assert pop.threshold % (2 * t) == 0 and pop.v0 == 0


def test_weights_fill_the_configured_width(bundled_graph):
    for bits in (4, 8, 12):
        net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                               progress=False), weight_bits=bits)
        for pop in net.populations:
            top = max(abs(q.weight).max() for q in pop.projections)
            # the largest weight uses the top half of the range: Θ is as large as it fits
            assert 2 ** (bits - 2) <= top <= 2 ** (bits - 1) - 1, (bits, pop.name, top)
            assert pop.threshold % 2 == 0


def test_small_membrane_limit_saturates(bundled_graph, digits_test):
    from hwsnn import golden
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=4,
                           progress=False), max_membrane_bits=12)
    assert any(p.saturate for p in net.populations)
    assert "warnings" in net.metadata
    res = golden.run(net, golden.encode(net, digits_test[0][:64]))
    for pop in net.populations:
        if pop.saturate:
            v = res.membranes[pop.name]
            assert v.max() <= 2 ** 11 - 1 and v.min() >= -(2 ** 11)
