"""Issue 20's CIFAR-class networks (hwsnn.snn.cifar_nets): ResNet-20, ResNet-18 and VGG-11
with random weights, converted with GN (τ = 4, T = 2) and ILIF (T = 2), quantized to 8 bits.

For each: the QNet validates and has the populations and residual projections the model
has; the golden model's run on two random images equals an independent computation (ILIF:
the integer QCFS ANN with L = 3, the exactness theorem; GN: the integer QCFS ANN with
L = τ at the first step, and every population's steps replayed from the counts its sources
sent; ResNet-20: also the serial processor's model, ``SerialMachine``); every hidden
population spikes; the serial processor's plan builds at 16 lanes and 1024 membrane words.
"""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwsnn.hdl.serial import SerialPlan, pool_factor
from hwsnn.hdl.serial_model import SerialMachine
from hwsnn.snn import golden
from hwsnn.snn.cifar_nets import NAMES, cifar_qnet, resnet20_model
from hwsnn.snn.qnet import INPUT, validate
from hwsnn.snn.random_nets import random_codes

# name → (populations with the readout, residual populations, readout's source map side)
EXPECTED = {"resnet20": (20, 9, 8), "resnet18": (18, 8, 4), "vgg11": (9, 0, 2)}
CASES = [(name, method) for name in NAMES for method in ("gn", "ilif")]


@pytest.fixture(scope="module")
def qnets():
    cache = {}

    def get(name, method):
        if (name, method) not in cache:
            cache[(name, method)] = cifar_qnet(name, method=method, timesteps=2,
                                               group_size=4 if method == "gn" else None)
        return cache[(name, method)]

    return get


def _current(proj, source, out_shape):
    """Σ W·x of one projection, float64 (exact: every sum is an integer below 2^53)."""
    w = torch.from_numpy(proj.weight).to(torch.float64)
    x = source.to(torch.float64)
    if proj.kind == "dense":
        out = x.reshape(len(x), -1) @ w.T
    else:
        out = F.conv2d(x, w, stride=proj.stride, padding=proj.padding)
    return out.reshape(len(x), *out_shape).round().to(torch.int64)


def _replay_gn(net, codes, res):
    """Every population's steps by the GN rule (DESIGN.md), each from the counts its
    sources sent in the golden run: V += Σ W·s + B; s = clip(floor(V/Θ), 0, τ); V −= s·Θ;
    the readout accumulates. Checks every step's counts and the readout."""
    for pop in net.populations:
        v = torch.full((len(codes), *pop.shape), pop.v0, dtype=torch.int64)
        bias = torch.from_numpy(pop.bias).unsqueeze(0)
        for t in range(pop.steps_in):
            v = v + bias
            for q in pop.projections:
                src = codes if q.source == INPUT else res.outputs[q.source][:, t]
                v = v + _current(q, src, pop.shape)
            if pop.kind == "readout":
                continue
            s = torch.div(v, pop.threshold, rounding_mode="floor").clamp(0, pop.group_size)
            assert torch.equal(s, res.outputs[pop.name][:, t]), (pop.name, t)
            v = v - s * pop.threshold
    assert torch.equal(v.reshape(len(codes), -1), res.readout)


@pytest.mark.parametrize("name,method", CASES)
def test_cifar_net(name, method, qnets):
    net = qnets(name, method)
    validate(net)
    pops, residual, side = EXPECTED[name]
    assert len(net.populations) == pops
    assert net.timesteps == 2 and net.input.shape == (3, 32, 32) and net.classes == 10
    hidden = net.populations[:-1]
    assert {p.kind for p in hidden} == {method}
    assert {p.group_size for p in hidden} == {4 if method == "gn" else 1}
    assert not any(p.saturate for p in net.populations)
    assert {q.weight_bits for p in net.populations for q in p.projections} == {8}
    assert max(int(np.abs(q.weight).max()) for p in net.populations
               for q in p.projections) <= 127
    # A basic block's second conv and its shortcut (identity or 1×1 conv): two projections
    # into one population, from two different sources.
    blocks = [p for p in net.populations if len(p.projections) == 2]
    assert len(blocks) == residual
    for p in blocks:
        main, short = p.projections
        assert (main.kind, short.kind) == ("conv", "conv") and main.source != short.source
        assert (main.kernel, short.kernel, main.stride) == (3, 1, 1)
        assert all(len(p.projections) <= 2 for p in net.populations)
    # The global average pooling (VGG: the last 2×2 pool) folded into the classifier: one
    # dense projection whose weights are equal over the map (stored once by the serial plan).
    out = net.output
    (fc,) = out.projections
    src = net.population(fc.source)
    assert fc.kind == "dense" and src.shape[1:] == (side, side)
    assert 1 << pool_factor(fc, src.shape) == side

    codes = random_codes(random.Random(2), net, 2)  # a random image and an all-black one
    res = golden.run(net, codes, lanes=16, record=True)
    if method == "ilif":
        # Exactness: ILIF with T bits is the integer QCFS ANN with L = 2^T − 1.
        readout, _, acts = golden.qcfs_reference(net, codes, 3)
        assert torch.equal(res.readout, readout)
        for p in hidden:
            planes = res.outputs[p.name]
            assert torch.equal(2 * planes[:, 0] + planes[:, 1], acts[p.name]), p.name
    else:
        # The first step of GN(τ) from V0 = Θ/2 is the integer QCFS ANN with L = τ ...
        _, _, acts = golden.qcfs_reference(net, codes, 4)
        for p in hidden:
            assert torch.equal(res.outputs[p.name][:, 0], acts[p.name]), p.name
        # ... and every step of every population follows from its sources' counts.
        _replay_gn(net, codes, res)
    # Random weights calibrated on random images: every population spikes on the random
    # image, none saturates at its maximum count.
    for p in hidden:
        counts = res.outputs[p.name][0]
        assert 0.02 < (counts != 0).double().mean() < 0.9, p.name

    plan = SerialPlan(net, lanes=16, membrane_words=1024, keep_current=False)
    assert [layer.population for layer in plan.layers] == [p.name for p in net.populations]
    assert plan.memories["membranes"][1] == 1024
    cycles = plan.ideal_cycles(res, codes)
    assert (cycles > 0).all()
    if name == "resnet20":  # the processor's model (seconds here; ResNet-18's ~25 s)
        run = SerialMachine(plan).run(codes)
        assert torch.equal(run.readout, res.readout)
        assert torch.equal(run.scan + run.ops, cycles)


def test_models_are_seeded():
    a, b, c = resnet20_model(0), resnet20_model(0), resnet20_model(1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training
    x = torch.rand(2, 3, 32, 32)
    assert a(x).shape == (2, 10)


def test_unknown_network_is_refused():
    with pytest.raises(ValueError, match="resnet20"):
        cifar_qnet("resnet50")
