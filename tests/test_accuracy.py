"""The conversion quality figures of the digits CNN (issue: GN(τ=4) at T=2 within 0.5
points of the ANN; integer golden within 0.3 points of the float SNN at 8-bit weights),
and the accuracy of the MNIST-shaped digits28 MLP."""

import pytest

from hwsnn.frontends import data
from hwsnn.snn import floatsim, golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.tools import api


@pytest.fixture(scope="module")
def ann_accuracy(bundled_graph, digits_test):
    x, y = digits_test
    graph = bundled_graph("digits-cnn")
    return golden.accuracy(graph.forward(graph.input.to_codes(x))[graph.output.name]
                           .argmax(1), y)


def test_bundled_cnn_is_trained(ann_accuracy):
    assert ann_accuracy >= 0.97


def test_bundled_digits28_mlp_is_trained(bundled_graph):
    x, y = data.load("digits28", "test")
    graph = bundled_graph("digits28-mlp")
    logits = graph.forward(graph.input.to_codes(x))[graph.output.name]
    assert golden.accuracy(logits.argmax(1), y) >= 0.95


def test_gn4_at_t2_matches_the_ann(bundled_graph, digits_test, ann_accuracy):
    x, y = digits_test
    snn = convert(bundled_graph("digits-cnn"), method="gn", group_size=4, timesteps=2,
                  progress=False)
    net = quantize(snn, weight_bits=8)
    flt = golden.accuracy(floatsim.run(snn, x).predictions, y)
    gold = golden.accuracy(golden.run(net, golden.encode(net, x)).predictions, y)
    assert flt >= ann_accuracy - 0.005
    assert gold >= ann_accuracy - 0.005
    assert abs(gold - flt) <= 0.003


def test_group_neurons_beat_if_at_few_steps(bundled_graph, digits_test):
    """The group-neuron paper's claim on digits: lower logit error than IF at T ≤ 4."""
    x, _ = digits_test
    graph = bundled_graph("digits-cnn")
    ann = graph.forward(graph.input.to_codes(x))[graph.output.name]
    for t in (1, 2, 4):
        err = {}
        for method, tau in (("if", None), ("gn", 4)):
            snn = convert(graph, method=method, group_size=tau, timesteps=t, progress=False)
            err[method] = float(((floatsim.run(snn, x).logits - ann) ** 2).mean())
        assert err["gn"] < err["if"], (t, err)
        if t <= 2:
            assert err["gn"] < 0.5 * err["if"], (t, err)


def test_evaluate_reports_cycles_and_sops(tmp_path, bundled_graph):
    conv = api.Conversion(bundled_graph("digits-cnn"), None, None)
    conv.snn = convert(conv.graph, method="ilif", timesteps=3, progress=False)
    conv.qnet = quantize(conv.snn)
    conv.save(tmp_path / "c")
    one = api.evaluate(tmp_path / "c", lanes=1, samples=64)
    four = api.evaluate(tmp_path / "c", lanes=4, samples=64)
    assert one["prediction_mismatches"] == 0
    assert one["sops_per_inference"] == four["sops_per_inference"] > 0
    # more lanes never cost more cycles, and save at most a factor of 4
    assert one["ideal_cycles_per_inference"] / 4 <= four["ideal_cycles_per_inference"] \
        < one["ideal_cycles_per_inference"]
