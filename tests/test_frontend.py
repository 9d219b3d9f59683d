"""The frontend must reproduce the model exactly (ReLU models: continuous, tight tolerance)
and refuse what it cannot convert with the module's name, type and a hint."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwsnn import QCFS, UnsupportedLayerError
from hwsnn.frontends.pytorch import trace, trace_export


def randomize_bn(model):
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
    return model.eval()


class Block(nn.Module):
    """ResNet basic block: identity or 1×1-conv shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (x if self.short is None else self.short(x))
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.block1 = Block(4, 4, 1)
        self.block2 = Block(4, 8, 2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.act(self.stem(x))))
        return self.fc(torch.flatten(self.gap(x), 1))


class PoolNet(nn.Module):
    """Avg-pool before a padded conv, conv→pool without activation, pool→flatten→linear,
    clipped ReLUs, a functional clamp and x.view flattening."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(6, 6, 3, stride=1, padding=0)
        self.pool3 = nn.AvgPool2d(2)
        self.act3 = nn.ReLU6()
        self.fc1 = nn.Linear(6 * 2 * 2, 12)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        x = nn.functional.hardtanh(self.c1(x), 0.0, 2.0)
        x = torch.clamp(self.c2(self.pool(x)), min=0, max=3.0)
        x = self.act3(self.pool3(self.c3(x)))
        x = F.relu(self.fc1(x.view(x.size(0), -1)))
        return self.fc2(self.drop(x))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(),
                         nn.Dropout(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 4))


CASES = [
    ("mlp", mlp, (1, 4, 4)),
    ("resnet", ResNet, (1, 8, 8)),
    ("poolnet", PoolNet, (2, 12, 12)),
]


def graph_output(graph, x):
    return graph.forward(graph.input.to_codes(x))[graph.output.name]


@pytest.mark.parametrize("name,factory,shape", CASES, ids=[c[0] for c in CASES])
def test_graph_reproduces_model(name, factory, shape):
    torch.manual_seed(0)
    model = randomize_bn(factory())
    x = torch.rand(16, *shape)
    graph = trace(model, x[:2])
    with torch.no_grad():
        want = model(x).double()
    assert torch.allclose(graph_output(graph, x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,factory,shape", CASES, ids=[c[0] for c in CASES])
def test_exported_program_gives_the_same_graph(name, factory, shape):
    torch.manual_seed(0)
    model = randomize_bn(factory())
    x = torch.rand(16, *shape)
    ep = torch.export.export(model, (x[:2],))
    graph = trace_export(ep)
    with torch.no_grad():
        want = model(x).double()
    assert torch.allclose(graph_output(graph, x), want, atol=1e-5, rtol=1e-5)
    assert [p.name for p in graph.populations] == \
        [p.name for p in trace(model, x[:2]).populations]


def test_residual_blocks_become_two_projections():
    graph = trace(randomize_bn(ResNet()), torch.zeros(2, 1, 8, 8))
    sources = {p.name: [q.source for q in p.projections] for p in graph.populations}
    # identity shortcut: block1's second conv adds the stem's spikes
    assert sources["block1.conv2"] == ["block1.conv1", "stem"]
    # 1×1-conv shortcut with stride 2
    assert sources["block2.conv2"] == ["block2.conv1", "block1.conv2"]
    short = graph.population("block2.conv2").projections[1]
    assert short.kind == "conv" and short.kernel == 1 and short.stride == 2


def test_pooling_is_folded_into_the_next_projection():
    graph = trace(randomize_bn(PoolNet()), torch.zeros(2, 2, 12, 12))
    c2 = graph.population("c2").projections[0]
    # 2×2 average pool then 3×3 conv, padding 1 → 6×6 kernel, stride 2, padding 2
    assert (c2.kernel, c2.stride, c2.padding) == (6, 2, 2)
    c3 = graph.population("c3").projections[0]
    # 3×3 conv (no padding) then 2×2 pool → 4×4 kernel, stride 2
    assert (c3.kernel, c3.stride, c3.padding) == (4, 2, 0)
    assert [p.activation.kind for p in graph.populations] == ["clip", "clip", "clip", "relu",
                                                              "none"]


def test_normalisation_is_folded_exactly_with_padding():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 5 * 5, 2)).eval()
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    x = torch.rand(8, 3, 5, 5)
    graph = trace(model, x[:2], normalize=(mean, std))
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        want = model(xn).double()
    assert torch.allclose(graph_output(graph, x), want, atol=1e-5)
    # the border neurons get their own bias: zero padding is not zero raw input
    bias = graph.populations[0].bias
    assert not torch.allclose(bias[:, 0, 0], bias[:, 2, 2])


def test_qcfs_layers_keep_threshold_and_levels():
    model = nn.Sequential(nn.Linear(4, 4), QCFS(8, 1.5), nn.Linear(4, 2)).eval()
    graph = trace(model, torch.zeros(2, 4))
    act = graph.populations[0].activation
    assert (act.kind, act.threshold, act.levels) == ("qcfs", 1.5, 8)


class Named(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.odd = layer
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.odd(self.conv(x)), 1))


@pytest.mark.parametrize("layer,typ,hint", [
    (nn.MaxPool2d(1), "MaxPool2d", "nn.AvgPool2d"),
    (nn.Sigmoid(), "Sigmoid", "ReLU-like"),
    (nn.GELU(), "GELU", "ReLU-like"),
    (nn.Softmax(dim=1), "Softmax", "argmax"),
    (nn.LeakyReLU(), "LeakyReLU", "ReLU-like"),
])
def test_unsupported_modules_are_refused_by_name(layer, typ, hint):
    with pytest.raises(UnsupportedLayerError) as err:
        trace(Named(layer), torch.zeros(2, 1, 4, 4))
    msg = str(err.value)
    assert "'odd'" in msg and typ in msg and hint in msg


def test_unsupported_aten_op_in_exported_program_names_the_module():
    ep = torch.export.export(Named(nn.MaxPool2d(1)).eval(), (torch.zeros(2, 1, 4, 4),))
    with pytest.raises(UnsupportedLayerError) as err:
        trace_export(ep)
    assert "'odd'" in str(err.value) and "MaxPool2d" in str(err.value)


def test_padded_conv_after_conv_without_activation_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(2 * 16, 2)).eval()
    with pytest.raises(UnsupportedLayerError, match="cannot be folded exactly"):
        trace(model, torch.zeros(2, 1, 4, 4))


def test_activation_on_activation_is_refused():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.ReLU(), nn.Linear(3, 2)).eval()
    with pytest.raises(UnsupportedLayerError, match="directly to another activation"):
        trace(model, torch.zeros(2, 3))


class Several(nn.Module):
    """Four kinds of unsupported layers in five modules, one after the other."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.gelu1 = nn.GELU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.gate = nn.Sigmoid()
        self.gelu2 = nn.GELU()
        self.fc = nn.Linear(4 * 4 * 4, 3)
        self.softmax = nn.Softmax(1)

    def forward(self, x):
        x = self.pool(self.gelu1(self.conv(x)))
        x = self.gelu2(self.gate(self.conv2(x)))
        return self.softmax(self.fc(torch.flatten(x, 1)))


@pytest.mark.parametrize("export", [False, True], ids=["fx", "export"])
def test_every_unsupported_layer_is_named_at_once(export):
    model = Several().eval()
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(UnsupportedLayerError) as err:
        trace_export(torch.export.export(model, (x,))) if export else trace(model, x)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and msg.startswith("5 layers cannot be converted")
    for name, typ in [("gelu1", "GELU"), ("gelu2", "GELU"), ("pool", "MaxPool2d"),
                      ("gate", "Sigmoid"), ("softmax", "Softmax")]:
        assert f"'{name}'" in msg and typ in msg, name
    assert "'conv'" not in msg and "'fc'" not in msg  # nothing convertible is blamed


def pool_then_conv(kernel, stride, padding, channels=2, **pool):
    """Average pool straight into a padded convolution: one projection when exact."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                         nn.AvgPool2d(kernel, stride, padding, **pool),
                         nn.Conv2d(channels, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.LazyLinear(2)).eval()


def border_is_padding(kernel, stride, padding, size):
    """Worked out by hand: the pooling windows just outside its output map, where the next
    convolution pads with zeros, must cover padding only: on the left the window of output
    -1 ends at -stride - padding + kernel - 1 < 0; on the right the window of output
    `out` starts at out·stride - padding ≥ size."""
    out = (size + 2 * padding - kernel) // stride + 1
    return -stride - padding + kernel - 1 < 0 and out * stride - padding >= size


SWEEP = [(k, s, p, n) for k in (2, 3) for s in (1, 2) for p in (0, 1) for n in (5, 6, 7, 8)]


@pytest.mark.parametrize("kernel,stride,padding,size", SWEEP,
                         ids=[f"k{k}s{s}p{p}-{n}x{n}" for k, s, p, n in SWEEP])
def test_padded_average_pooling_folds_exactly_or_is_refused(kernel, stride, padding, size):
    model = pool_then_conv(kernel, stride, padding)
    x = torch.rand(8, 1, size, size)
    with torch.no_grad():
        want = model(x).double()  # also materialises the lazy layer
    if not border_is_padding(kernel, stride, padding, size):
        with pytest.raises(UnsupportedLayerError, match="cannot be folded exactly"):
            trace(model, x[:2])
        # ... and rightly: the one convolution that pool and conv compose to differs
        pool, conv = model[2], model[3]
        w = torch.ones(2, 1, kernel, kernel) / kernel**2
        composed = F.conv_transpose2d(conv.weight.detach(), w, stride=stride, groups=2)
        h = torch.rand(4, 2, size, size)
        one = F.conv2d(h, composed, stride=stride, padding=padding + stride)
        with torch.no_grad():
            assert one.shape != conv(pool(h)).shape or \
                not torch.allclose(one + conv.bias.view(1, -1, 1, 1), conv(pool(h)), atol=1e-5)
        return
    graph = trace(model, x[:2])
    assert len(graph.populations) == 3  # the pool is inside the second projection
    conv = graph.populations[1].projections[0]
    assert conv.kind == "conv" and conv.stride == stride
    assert torch.allclose(graph_output(graph, x), want, atol=1e-5, rtol=1e-5)


def test_padded_average_pooling_before_a_linear_layer_is_always_exact():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(3, 2, 1),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).eval()
    x = torch.rand(8, 1, 8, 8)  # an 8x8 map: no padded convolution could take this pool
    graph = trace(model, x[:2])
    with torch.no_grad():
        assert torch.allclose(graph_output(graph, x), model(x).double(), atol=1e-5)


@pytest.mark.parametrize("pool,size,accepted", [
    (nn.AvgPool2d(3, 2, 1, count_include_pad=False), 7, False),  # border windows /4, /6
    (nn.AvgPool2d(3, 2, 0, ceil_mode=True), 8, False),  # adds a partial window
    (nn.AvgPool2d(3, 2, 0, ceil_mode=True), 7, True),  # ... not on this map
])
def test_average_pooling_that_is_no_convolution_is_refused(pool, size, accepted):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), pool, nn.Flatten(),
                          nn.LazyLinear(2)).eval()
    x = torch.rand(8, 1, size, size)
    with torch.no_grad():
        want = model(x).double()
    if not accepted:
        with pytest.raises(UnsupportedLayerError, match="'2' \\(AvgPool2d\\)"):
            trace(model, x[:2])
        return
    assert torch.allclose(graph_output(trace(model, x[:2]), x), want, atol=1e-5)


class Stem(nn.Module):
    """A torchvision ResNet's stem and first basic block, small: conv 7×7/2 (no bias), BN,
    activation, pool, then two 3×3 convolutions with an identity shortcut, a global
    average pool and a classifier."""

    def __init__(self, pool, act=nn.ReLU):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = act()
        self.pool = pool
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.act2 = act()
        self.conv3 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(8)
        self.act3 = act()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(self.act1(self.bn1(self.conv1(x))))
        y = self.bn3(self.conv3(self.act2(self.bn2(self.conv2(x)))))
        return self.fc(torch.flatten(self.gap(self.act3(y + x)), 1))


def advised_pool(message: str) -> nn.AvgPool2d:
    """The replacement a refusal names, built from its own text."""
    import re
    (args,) = re.findall(r"replace it by nn\.AvgPool2d\(([\d, ]+)\)", message)
    return nn.AvgPool2d(*(int(a) for a in args.split(",")))


@pytest.mark.parametrize("size,advice", [(16, "nn.AvgPool2d(2)"), (14, "nn.AvgPool2d(3, 2, 1)")],
                         ids=["even-map", "odd-map"])
def test_resnet_stem_max_pool_advice_converts_exactly(size, advice):
    """MaxPool2d(3, 2, 1) is refused with an average pool of the same output size; with that
    pool the stem converts, its graph is the model, and (trained with QCFS) its GN float SNN
    is the ANN and its golden model the integer QCFS ANN, exactly."""
    from hwsnn import QCFS
    from hwsnn.snn import golden
    from hwsnn.snn.convert import convert
    from hwsnn.snn.floatsim import run as float_run
    from hwsnn.snn.quantize import quantize

    torch.manual_seed(0)
    x = torch.rand(16, 3, size, size)
    with pytest.raises(UnsupportedLayerError) as err:
        trace(randomize_bn(Stem(nn.MaxPool2d(3, 2, 1))), x[:2])
    msg = str(err.value)
    assert "'pool' (MaxPool2d)" in msg and advice in msg
    pool = advised_pool(msg)
    model = randomize_bn(Stem(pool))
    with torch.no_grad():
        want = model(x).double()
    for graph in (trace(model, x[:2]), trace_export(torch.export.export(model, (x[:2],)))):
        assert torch.allclose(graph_output(graph, x), want, atol=1e-5, rtol=1e-5)
    sources = {p.name: [q.source for q in p.projections] for p in graph.populations}
    assert sources["conv3"] == ["conv2", "conv1"]  # the shortcut reads the pooled stem

    qmodel = randomize_bn(Stem(advised_pool(msg), act=lambda: QCFS(4, 1.0)))
    snn = convert(trace(qmodel, x[:2]), method="gn", timesteps=1, group_size=4,
                  progress=False)
    ann = snn.ann().forward(snn.input.to_codes(x))[snn.output.name]
    assert torch.allclose(float_run(snn, x).logits, ann, atol=1e-9)
    net = quantize(snn)
    codes = golden.encode(net, x)
    readout, _, _ = golden.qcfs_reference(net, codes, 4)
    assert torch.equal(golden.run(net, codes).readout, readout)
