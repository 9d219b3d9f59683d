"""torch.export programs (.pt2) are a first-class input: every layer the fx frontend
converts converts the same way from an exported program, through the file on disk too,
and an aten operation hwsnn cannot convert is refused with the module's name and type."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwsnn import QCFS
from hwsnn.errors import HwsnnError, UnsupportedLayerError
from hwsnn.frontends.pytorch import trace, trace_export
from hwsnn.snn import golden
from hwsnn.tools import api


class Functional(nn.Module):
    """Functional forms: F.relu, relu6, hardtanh, clamp, x.view, x * c, x / c, + const,
    torch.mean over the map, F.avg_pool2d, F.adaptive_avg_pool2d."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.c1(x * 2.0)))
        x = F.relu6(self.c2(F.avg_pool2d(x, 2)) / 2.0 + 0.1)
        x = torch.clamp(self.c3(x), 0.0, 2.5)
        x = F.adaptive_avg_pool2d(x, 2)
        x = torch.mean(x, dim=(2, 3))
        return self.fc(x.view(x.size(0), -1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = QCFS(4, 1.5)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        s = F.hardtanh(self.stem(x), 0.0, 2.0)
        x = self.act(self.bn(self.a(s)) + s)
        return self.fc(self.drop(torch.flatten(self.pool(x), 1)))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(),
                         nn.Linear(12, 8), nn.ReLU6(), nn.Identity(), nn.Linear(8, 4))


CASES = [("functional", Functional, (1, 8, 8)), ("residual", Residual, (2, 6, 6)),
         ("mlp", mlp, (1, 4, 4))]


def randomized(factory):
    torch.manual_seed(0)
    model = factory()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def same_graph(a, b):
    assert [p.name for p in a.populations] == [p.name for p in b.populations]
    for pa, pb in zip(a.populations, b.populations, strict=True):
        assert pa.shape == pb.shape
        assert (pa.activation.kind, pa.activation.threshold, pa.activation.levels) == \
            (pb.activation.kind, pb.activation.threshold, pb.activation.levels)
        assert torch.allclose(pa.bias, pb.bias, atol=1e-12)
        assert len(pa.projections) == len(pb.projections)
        for qa, qb in zip(pa.projections, pb.projections, strict=True):
            assert (qa.source, qa.kind, qa.stride, qa.padding) == \
                (qb.source, qb.kind, qb.stride, qb.padding)
            assert torch.allclose(qa.weight, qb.weight, atol=1e-12)


@pytest.mark.parametrize("name,factory,shape", CASES, ids=[c[0] for c in CASES])
def test_exported_program_matches_fx(name, factory, shape):
    model = randomized(factory)
    x = torch.rand(32, *shape)
    fx = trace(model, x[:2])
    ep = trace_export(torch.export.export(model, (x[:2],)))
    same_graph(fx, ep)
    with torch.no_grad():
        want = model(x).double()
    got = ep.forward(ep.input.to_codes(x))[ep.output.name]
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,factory,shape", CASES, ids=[c[0] for c in CASES])
def test_pt2_file_converts_to_the_same_qnet(tmp_path, name, factory, shape):
    model = randomized(factory)
    x = torch.rand(64, *shape)
    path = tmp_path / f"{name}.pt2"
    torch.export.save(torch.export.export(model, (x[:2],)), str(path))
    loaded = api.load_model(str(path))
    assert loaded.input_shape == shape
    kw = dict(method="gn", group_size=2, timesteps=2, calibration=x, progress=False)
    a = api.convert(model, x[:2], **kw).qnet
    b = api.convert(loaded.model, **kw).qnet
    codes = golden.encode(a, x)
    assert torch.equal(golden.run(a, codes).readout, golden.run(b, codes).readout)
    for pa, pb in zip(a.populations, b.populations, strict=True):
        assert (pa.name, pa.threshold, pa.v0) == (pb.name, pb.threshold, pb.v0)
        assert np.array_equal(pa.bias, pb.bias)
        for qa, qb in zip(pa.projections, pb.projections, strict=True):
            assert np.array_equal(qa.weight, qb.weight)


class Odd(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.odd = fn
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.odd(self.conv(x)), 1))


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("layer,what", [
    (nn.MaxPool2d(1), "MaxPool2d"),
    (nn.Sigmoid(), "Sigmoid"),
    (nn.GELU(), "GELU"),
    (nn.LeakyReLU(), "LeakyReLU"),
    (nn.LayerNorm([2, 4, 4]), "LayerNorm"),
    (nn.Tanh(), "Tanh"),
    (Lambda(lambda x: x * x), "mul"),
    (Lambda(lambda x: torch.cat([x[:, :1], x[:, 1:]], 1)), "Lambda"),
])
def test_unsupported_aten_ops_are_refused_by_name(layer, what):
    ep = torch.export.export(Odd(layer).eval(), (torch.zeros(2, 1, 4, 4),))
    with pytest.raises(UnsupportedLayerError) as err:
        trace_export(ep)
    msg = str(err.value)
    assert isinstance(err.value, HwsnnError)
    assert "'odd" in msg and what in msg, msg
