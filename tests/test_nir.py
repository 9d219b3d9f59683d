"""NIR in and out: the round trip is the identical QNet, a graph written by sinabs's own
exporter converts to a golden model that equals sinabs's own simulation, and what hwsnn
cannot represent is refused with the node's name and type."""

import json

import nir
import numpy as np
import pytest
import sinabs.layers as sl
import torch
from sinabs.activation import MembraneSubtract, SingleSpike
from sinabs.nir import to_nir as sinabs_to_nir

from hwsnn.errors import HwsnnError
from hwsnn.frontends import data, nir_io
from hwsnn.frontends.nir_io import UnsupportedNIRError
from hwsnn.models import BUNDLED
from hwsnn.snn import golden
from hwsnn.tools import api
from hwsnn.tools.cli import main

T = 6


def qnet_fields(net):
    doc, arrays = net.to_json()
    meta = {k: v for k, v in doc.pop("metadata").items() if k not in ("nir", "nir_semantics")}
    return doc, meta, arrays


def assert_same_qnet(a, b):
    da, ma, aa = qnet_fields(a)
    db, mb, ab = qnet_fields(b)
    assert da == db
    assert ma == mb
    assert aa.keys() == ab.keys()
    for k in aa:
        assert aa[k].dtype == ab[k].dtype and np.array_equal(aa[k], ab[k]), k


@pytest.fixture(scope="module")
def digits():
    x, y = data.load_for((1, 8, 8), "test")
    return x[:200], y[:200]


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
@pytest.mark.parametrize("method", ["if", "if-shift"])
def test_round_trip_gives_the_identical_qnet(tmp_path, name, method, digits):
    b = BUNDLED[name]
    cx, _ = data.load_for(b.input_shape, "train")
    conv = api.convert(b.load(), torch.zeros(2, *b.input_shape), method=method, timesteps=3,
                       calibration=cx[:256], progress=False, name=name)
    path = nir_io.write(conv.qnet, tmp_path / "net.nir")
    back = nir_io.load(path)
    assert back.exact and back.assumed == {}
    assert_same_qnet(conv.qnet, back.qnet)
    x, _ = digits
    x = x.reshape(len(x), *b.input_shape)
    ga = golden.run(conv.qnet, golden.encode(conv.qnet, x))
    gb = golden.run(back.qnet, golden.encode(back.qnet, x))
    assert torch.equal(ga.readout, gb.readout)


def test_round_trip_through_the_cli(tmp_path, capsys):
    assert main(["convert", "digits-mlp", "-o", str(tmp_path / "a"), "--method", "if",
                 "-T", "2", "--json"]) == 0
    capsys.readouterr()
    assert main(["export-nir", str(tmp_path / "a"), "-o", str(tmp_path / "a.nir"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any("subtraction" in n for n in out["not_expressible_in_nir"])
    graph = nir.read(str(tmp_path / "a.nir"))
    assert {type(n).__name__ for n in graph.nodes.values()} == {
        "Input", "Flatten", "Affine", "IF", "Output"}
    semantics = json.loads(graph.metadata["hwsnn_semantics"])
    assert semantics["reset"] == "subtract" and semantics["threshold"] == "ge"
    assert main(["convert", str(tmp_path / "a.nir"), "-o", str(tmp_path / "b"),
                 "--json"]) == 0
    from hwsnn.snn.qnet import load
    assert_same_qnet(load(tmp_path / "a"), load(tmp_path / "b"))


def test_group_neurons_are_flagged_and_ilif_is_refused(tmp_path):
    b = BUNDLED["digits-mlp"]
    cx, _ = data.load_for(b.input_shape, "train")
    conv = api.convert(b.load(), torch.zeros(2, *b.input_shape), method="gn", group_size=4,
                       timesteps=2, calibration=cx[:128], progress=False)
    graph = nir_io.to_nir(conv.qnet)
    notes = json.loads(graph.metadata["hwsnn_semantics"])["not_expressible_in_nir"]
    assert "GROUP NEURONS" in notes[0]
    assert_same_qnet(conv.qnet, nir_io.load(graph).qnet)
    conv = api.convert(b.load(), torch.zeros(2, *b.input_shape), method="ilif", timesteps=2,
                       calibration=cx[:128], progress=False)
    with pytest.raises(UnsupportedNIRError, match="temporal separation"):
        nir_io.to_nir(conv.qnet)


# ---------------------------------------------------------------------------------------
# A graph from another library: sinabs, with its own exporter and its own simulation.


def sinabs_net(integer: bool, steps: int = T):
    gen = torch.Generator().manual_seed(3)

    def param(*shape, lo, hi, scale):
        if integer:
            return torch.randint(lo, hi, shape, generator=gen).float()
        return torch.randn(*shape, generator=gen) * scale

    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    fc1 = torch.nn.Linear(64, 24)
    fc2 = torch.nn.Linear(24, 10)
    with torch.no_grad():
        conv.weight.copy_(param(4, 1, 3, 3, lo=-2, hi=4, scale=1.0))
        conv.bias.copy_(param(4, lo=-20, hi=20, scale=10.0))
        fc1.weight.copy_(param(24, 64, lo=-2, hi=3, scale=0.7))
        fc1.bias.copy_(param(24, lo=-2, hi=3, scale=0.5))
        fc2.weight.copy_(param(10, 24, lo=-3, hi=4, scale=1.0))
        fc2.bias.copy_(param(10, lo=-2, hi=3, scale=0.5))

    def iaf(theta):
        return sl.IAFSqueeze(num_timesteps=steps, spike_threshold=torch.tensor(theta),
                             spike_fn=SingleSpike, reset_fn=MembraneSubtract(), min_v_mem=None)

    return torch.nn.Sequential(conv, iaf(300.0), sl.SumPool2d(2), torch.nn.Flatten(), fc1,
                               iaf(6.0), fc2).eval()


def sinabs_simulate(net, codes: torch.Tensor, steps: int = T):
    """sinabs's own simulation: the same input at every step, outputs summed over steps."""
    for m in net.modules():
        if isinstance(m, sl.StatefulLayer):
            m.reset_states()
    x = codes.to(torch.float32).unsqueeze(1).expand(-1, steps, *codes.shape[1:])
    with torch.no_grad():
        out = net(x.reshape(-1, *codes.shape[1:]))
    return out.reshape(len(codes), steps, -1).sum(1)


def sinabs_graph(net, tmp_path):
    graph = sinabs_to_nir(net, torch.zeros(T, 1, 8, 8))
    graph.infer_types()
    path = tmp_path / "sinabs.nir"
    nir.write(str(path), graph)
    return path


def test_sinabs_integer_graph_is_bit_exact(tmp_path, digits):
    net = sinabs_net(integer=True)
    path = sinabs_graph(net, tmp_path)
    imp = nir_io.load(path, timesteps=T, threshold="ge", input_range=(0, 255))
    assert imp.exact
    assert imp.assumed == {"reset": "subtract", "v0": "zero"}
    x, _ = digits
    codes = torch.floor(x.reshape(-1, 1, 8, 8) * 255 + 0.5).to(torch.int64)
    gold = golden.run(imp.qnet, codes)
    ref = sinabs_simulate(net, codes)
    assert torch.equal(gold.readout.to(torch.float64), ref.to(torch.float64))
    for pop in imp.qnet.populations[:-1]:  # neither layer is silent or saturated
        rate = gold.spikes[pop.name].double().sum(1) / (pop.size * T)
        assert 0.02 < float(rate.mean()) < 0.9, (pop.name, float(rate.mean()))
    assert len(set(gold.predictions.tolist())) > 1


def test_sinabs_strict_threshold_is_one_unit_lower_start(tmp_path, digits):
    """The same graph read with '>' (the NIR default) differs from sinabs's '>='."""
    net = sinabs_net(integer=True)
    path = sinabs_graph(net, tmp_path)
    ge = nir_io.load(path, timesteps=T, threshold="ge", input_range=(0, 255)).qnet
    gt = nir_io.load(path, timesteps=T, input_range=(0, 255)).qnet
    assert [p.v0 for p in gt.populations[:-1]] == [p.v0 - 1 for p in ge.populations[:-1]]
    x, _ = digits
    codes = torch.floor(x.reshape(-1, 1, 8, 8) * 255 + 0.5).to(torch.int64)
    assert not torch.equal(golden.run(gt, codes).readout, golden.run(ge, codes).readout)


def test_sinabs_float_graph_is_quantized(tmp_path, digits):
    net = sinabs_net(integer=False)
    path = sinabs_graph(net, tmp_path)
    imp = nir_io.load(path, timesteps=T, threshold="ge", input_range=(0, 255))
    assert not imp.exact
    x, _ = digits
    codes = torch.floor(x.reshape(-1, 1, 8, 8) * 255 + 0.5).to(torch.int64)
    gold = golden.run(imp.qnet, codes)
    ref = sinabs_simulate(net, codes)
    agree = float((gold.predictions == ref.argmax(1)).double().mean())
    assert agree >= 0.8, agree


def test_convert_cli_reports_assumed_semantics(tmp_path, capsys):
    path = sinabs_graph(sinabs_net(integer=True), tmp_path)
    assert main(["convert", str(path), "-o", str(tmp_path / "s"), "-T", str(T),
                 "--input-range", "0,255", "--nir-threshold", "ge"]) == 0
    out = capsys.readouterr().out
    assert "exact integer network" in out
    assert "assumed" in out and "reset=subtract" in out and "v0=zero" in out


# ---------------------------------------------------------------------------------------
# What is refused.


def small_graph(neuron, name="lif1"):
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}),
               "fc": nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3)),
               name: neuron,
               "out": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "fc"), ("fc", name), (name, "out"), ("out", "output")])


def lif(tau=10.0):
    return nir.LIF(tau=np.full(3, tau), r=np.ones(3), v_leak=np.zeros(3),
                   v_threshold=np.ones(3))


def test_lif_with_leak_is_refused_unless_approximation_requested():
    with pytest.raises(UnsupportedNIRError, match=r"'lif1' \(LIF\).*--nir-lif if"):
        nir_io.load(small_graph(lif()))
    imp = nir_io.load(small_graph(lif()), lif="if")
    assert imp.approximations and "lif1" in imp.approximations[0]
    assert imp.qnet.metadata["nir"]["approximations"] == imp.approximations


@pytest.mark.parametrize("node, typ", [
    (nir.CubaLIF(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3),
                 v_threshold=np.ones(3)), "CubaLIF"),
    (nir.Delay(delay=np.ones(3)), "Delay"),
    (nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)), "LI"),
])
def test_unsupported_nodes_name_node_and_type(node, typ):
    with pytest.raises(UnsupportedNIRError, match=rf"'weird' \({typ}\)"):
        nir_io.load(small_graph(node, "weird"))


def test_other_refusals():
    if_node = nir.IF(r=np.ones(3), v_threshold=np.ones(3))
    with pytest.raises(UnsupportedNIRError, match="hard reset"):
        nir_io.load(small_graph(if_node), reset="zero")
    with pytest.raises(UnsupportedNIRError, match=r"'t' \(Threshold\).*--timesteps 1"):
        nir_io.load(small_graph(nir.Threshold(threshold=np.ones(3)), "t"), timesteps=4)
    assert nir_io.load(small_graph(nir.Threshold(threshold=np.ones(3)), "t"),
                       timesteps=1).qnet.timesteps == 1
    g = small_graph(if_node, "n")
    g.edges.append(("n", "fc"))
    with pytest.raises(UnsupportedNIRError, match="cycle"):
        nir_io.load(g)
    with pytest.raises(HwsnnError, match="not a readable NIR"):
        nir_io.read(__file__)


def test_exported_graph_runs_in_sinabs_exactly(tmp_path, digits):
    """sinabs loads hwsnn's NIR with its own importer; with the semantics NIR cannot carry
    set as the metadata says (one spike at V >= Θ, no lower clamp, V0 = 0 with if-shift),
    sinabs's simulation equals the golden model."""
    from sinabs.nir import from_nir

    b = BUNDLED["digits-cnn"]
    cx, _ = data.load_for(b.input_shape, "train")
    steps = 4
    conv = api.convert(b.load(), torch.zeros(2, *b.input_shape), method="if-shift",
                       timesteps=steps, calibration=cx[:128], progress=False)
    path = nir_io.write(conv.qnet, tmp_path / "cnn.nir")
    x, y = digits
    x = x[:100].reshape(-1, *b.input_shape)
    model = from_nir(nir.read(str(path)), batch_size=len(x))
    for m in model.modules():
        if isinstance(m, sl.IAFSqueeze):
            m.spike_fn, m.min_v_mem = SingleSpike, None
    codes = golden.encode(conv.qnet, x)
    inp = codes.float().unsqueeze(1).expand(-1, steps, *codes.shape[1:])
    with torch.no_grad():
        out = model(inp.reshape(-1, *codes.shape[1:]))
    out = (out[0] if isinstance(out, tuple) else out).reshape(len(x), steps, -1).sum(1)
    gold = golden.run(conv.qnet, codes)
    assert torch.equal(out.double(), gold.readout.double())
    assert float((gold.predictions == y[:100]).double().mean()) > 0.8
