"""The exactness theorems on whole bundled networks, and golden vs float SNN agreement."""

import pytest
import torch

from hwsnn.frontends.graph import qcfs_float
from hwsnn.snn import floatsim, golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

MODELS = ["digits-mlp", "digits-cnn"]


def run_golden(net, x, **kw):
    return golden.run(net, golden.encode(net, x), record=True, **kw)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("levels", [1, 2, 4])
def test_gn_tau_l_at_t1_is_the_integer_qcfs_ann(model, levels, bundled_graph, digits_test):
    x, _ = digits_test
    net = quantize(convert(bundled_graph(model), method="gn", timesteps=1, group_size=levels,
                           progress=False))
    res = run_golden(net, x)
    readout, pred, acts = golden.qcfs_reference(net, golden.encode(net, x), levels)
    assert torch.equal(res.readout, readout)
    assert torch.equal(res.predictions, pred)
    for pop in net.populations[:-1]:
        assert torch.equal(res.outputs[pop.name][:, 0], acts[pop.name]), pop.name


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_ilif_with_t_bits_is_the_integer_qcfs_ann(model, bits, bundled_graph, digits_test):
    x, _ = digits_test
    net = quantize(convert(bundled_graph(model), method="ilif", timesteps=bits, progress=False))
    res = run_golden(net, x)
    readout, pred, acts = golden.qcfs_reference(net, golden.encode(net, x), 2**bits - 1)
    assert torch.equal(res.readout, readout)
    assert torch.equal(res.predictions, pred)
    for pop in net.populations[:-1]:
        planes = res.outputs[pop.name]  # [B, T, ...] bits, MSB first
        weights = torch.tensor([2 ** (bits - 1 - t) for t in range(bits)])
        value = (planes * weights.view(1, -1, *([1] * (planes.dim() - 2)))).sum(1)
        assert torch.equal(value, acts[pop.name]), pop.name


def float_qcfs_ann(snn, x, levels):
    """The float ANN with every hidden activation replaced by QCFS(θ, L), computed
    layer by layer from the float graph (independent of the SNN simulator)."""
    graph = snn.ann()
    thetas = {p.name: p.theta for p in snn.populations}
    values = graph.forward(graph.input.to_codes(x),
                           activation=lambda pop, z: qcfs_float(z, thetas[pop.name], levels))
    return values


@pytest.mark.parametrize("model", MODELS)
def test_float_gn_at_t1_is_the_float_qcfs_ann(model, bundled_graph, digits_test):
    x, _ = digits_test
    snn = convert(bundled_graph(model), method="gn", timesteps=1, group_size=4, progress=False)
    ann = float_qcfs_ann(snn, x, 4)
    res = floatsim.run(snn, x)
    for pop in snn.populations[:-1]:
        assert torch.allclose(res.rates[pop.name], ann[pop.name], atol=1e-9), pop.name
    assert torch.allclose(res.logits, ann[snn.output.name], atol=1e-9)
    # and, the bundled models being trained with QCFS(L=4), that is the ANN itself
    original = snn.ann().forward(snn.input.to_codes(x))[snn.output.name]
    assert torch.allclose(res.logits, original, atol=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_float_ilif_is_the_float_qcfs_ann(model, bundled_graph, digits_test):
    x, _ = digits_test
    snn = convert(bundled_graph(model), method="ilif", timesteps=3, progress=False)
    ann = float_qcfs_ann(snn, x, 7)
    res = floatsim.run(snn, x)
    assert torch.allclose(res.logits, ann[snn.output.name], atol=1e-9)


@pytest.mark.parametrize("method,T", [("if", 4), ("if-shift", 4), ("gn", 2), ("ilif", 3),
                                      ("cos", 4)])
def test_golden_tracks_the_float_snn(method, T, bundled_graph, digits_test):
    """Integer golden vs float SNN: same predictions up to quantization error."""
    x, y = digits_test
    snn = convert(bundled_graph("digits-cnn"), method=method, timesteps=T, progress=False)
    net = quantize(snn, weight_bits=8)
    gold = run_golden(net, x)
    flt = floatsim.run(snn, x)
    agree = (gold.predictions == flt.predictions).double().mean()
    assert agree >= 0.97
    assert abs(golden.accuracy(gold.predictions, y) - golden.accuracy(flt.predictions, y)) \
        <= 0.01
    # the readout error shrinks with more weight bits: the gap is quantization error
    net12 = quantize(snn, weight_bits=12)
    gold12 = run_golden(net12, x)
    err8 = ((gold.logits - flt.logits) ** 2).mean()
    err12 = ((gold12.logits - flt.logits) ** 2).mean()
    assert err12 < err8


# The sweeps of hwsnn.tools.exactness (thousands of networks in `hwsnn bench`), on fixed seeds: a
# seed names its network, lanes and input stage, so a failure here is reproduced by it.
@pytest.mark.parametrize("seed", range(8))
def test_random_engines_fixed_seeds(seed):
    from hwsnn.tools.exactness import engine_case
    case = engine_case(seed)
    assert case["ok"] and not case["refused"], case
    assert case["engines"] == case["populations"]


@pytest.mark.parametrize("seed", [0, 3])
def test_random_networks_in_verilator_fixed_seeds(seed, tmp_path):
    from hwsnn.tools.exactness import network_case
    case = network_case(seed, str(tmp_path), samples=2)
    assert case["ok"] and not case["refused"], case
