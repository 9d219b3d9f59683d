"""Threshold balancing and method parameters."""

import pytest
import torch
from torch import nn

from hwsnn import ParameterError
from hwsnn.frontends.pytorch import trace
from hwsnn.snn.convert import calibrate_thresholds, convert
from hwsnn.snn.quantize import quantize


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
    from hwsnn.snn import golden
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=4,
                           progress=False), max_membrane_bits=12)
    assert any(p.saturate for p in net.populations)
    assert "warnings" in net.metadata
    res = golden.run(net, golden.encode(net, digits_test[0][:64]))
    for pop in net.populations:
        if pop.saturate:
            v = res.membranes[pop.name]
            assert v.max() <= 2 ** 11 - 1 and v.min() >= -(2 ** 11)


def test_threshold_unit_by_hand():
    from hwsnn.snn.quantize import threshold_unit
    # Largest weight 0.3 thresholds per count, 8-bit: Θ = 2·floor(127/0.6) = 422, no shift.
    assert threshold_unit([0.3, 0.1], 127) == (422, 0)
    # 100 thresholds per count: Θ = 2 would need 200 > 127. Shift 1: Θ = 2 (200/2 = 100,
    # 79 % of the range), shift 2: Θ = 4 (400/4, 79 %), shift 3: Θ = 10 (1000/8 = 125,
    # 98 %): the fewest shift bits that use 90 % of the range.
    assert threshold_unit([100.0], 127) == (10, 3)
    # if-shift's step 2T = 8: 16 thresholds per count need 128 > 127 at Θ = 8.
    theta, shift = threshold_unit([16.0], 127, 8)
    assert theta % 8 == 0 and 16 * theta <= 127 * 2**shift and shift >= 1


def test_ilif_at_many_steps_shifts_instead_of_clipping(bundled_graph, digits_train,
                                                     digits_test):
    """At T = 16 one output count of the first layer is θ/65535: no even Θ holds its
    weights in 8 bits, so they are stored shifted. Every integer weight is the float
    weight in integer units to within half a stored step (nothing clipped), the integer
    network keeps the float SNN's accuracy, and the engine equals the golden model."""
    from hwsnn.hdl.check import check_engine
    from hwsnn.snn import floatsim, golden

    snn = convert(bundled_graph("digits-cnn"), method="ilif", timesteps=16,
                  calibration=digits_train[0][:256], progress=False)
    net = quantize(snn)
    first = net.populations[0]
    k = first.projections[0].weight_shift
    assert k > 0 and "warnings" not in net.metadata
    for pop, spop in zip(net.populations, snn.populations, strict=True):
        for q, sq in zip(pop.projections, spop.projections, strict=True):
            exact = sq.weight.double() * snn.unit(sq.source) / snn.unit(spop) * pop.threshold
            err = (torch.from_numpy(q.weight).double() - exact).abs().max()
            assert err <= 0.5 * 2**q.weight_shift + 1e-9, (pop.name, float(err))
            assert abs(q.stored).max() <= 127
    x, y = digits_test
    flt = golden.accuracy(floatsim.run(snn, x).predictions, y)
    gold = golden.accuracy(golden.run(net, golden.encode(net, x)).predictions, y)
    assert gold >= flt - 0.003
    report = check_engine(net, first.name, golden.encode(net, x[:1]), lanes=8)
    assert report.ok, report.mismatches
