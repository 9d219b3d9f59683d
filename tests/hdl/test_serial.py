"""The layer-serial processor's plan (hwsnn.hdl.serial, docs/serial.md): tiles, the memory
map and the cycle count, against hand-worked examples and a count from the golden
model's recorded spikes that follows the design's formula term by term."""

import math

import numpy as np
import pytest
import torch

from hwsnn.errors import ParameterError
from hwsnn.hdl.serial import SerialPlan, count_bits
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.quantize import quantize
from hwsnn.snn.widths import set_membrane_widths


def _pop(name, kind, shape, projs, group_size=2):
    return QPopulation(name, kind, tuple(shape), 4, group_size, 2, 2, 2,
                       np.zeros(shape, dtype=np.int64), projs, 2, 32, False, 1.0, 1.0,
                       1.0 if kind == "readout" else None)


def _net(input_shape, pops) -> QNet:
    net = QNet("gn", 2, 0, InputSpecQ(tuple(input_shape)), pops, 8, 32)
    set_membrane_widths(net)
    validate(net)
    return net


def _conv_net() -> QNet:
    """input (1, 4, 4) → h: conv 3×3, padding 1, 3 channels, GN τ = 2 → out: readout 5."""
    rng = np.random.default_rng(1)
    h = _pop("h", "gn", (3, 4, 4), [QProjection("input", "conv",
                                                rng.integers(-3, 4, (3, 1, 3, 3)), 1, 1)])
    out = _pop("out", "readout", (5,), [QProjection("h", "dense",
                                                     rng.integers(-3, 4, (5, 48)))])
    return _net((1, 4, 4), [h, out])


def test_a_hand_worked_plan():
    plan = SerialPlan(_conv_net(), lanes=2, plane_width=8)
    regions = {(r.memory, r.name): r for r in plan.regions}
    # The image's 16 pixels: 8 bit-planes of 2 words. h: 48 neurons × 2 bits (τ = 2) =
    # 12 words a step, 2 steps; it is written while the image is still read: after it.
    assert (regions["planes", "input"].base, regions["planes", "input"].words) == (0, 16)
    assert (regions["planes", "h"].base, regions["planes", "h"].words) == (16, 24)
    assert plan.memories["planes"] == (8, 40)
    # Weights, 2 a word, one projection straight after the other: the conv's 27 (words
    # 0..13), the dense 240 from field 27 (word 13, shared, to word 133).
    conv, dense = regions["weights", "h.0"], regions["weights", "out.0"]
    assert (conv.base, conv.words, dense.base, dense.words) == (0, 14, 13, 121)
    assert plan.memories["weights"] == (16, 134)
    assert plan.weight_packing == pytest.approx(267 / 268)
    h, out = plan.layers
    assert h.projections[0].weight_field == 0 and out.projections[0].weight_field == 27
    assert out.projections[0].source_plane == 16 and h.plane == 16 and out.plane == -1
    # h's biases vary by channel only (a convolution's): one field per channel.
    assert h.bias_per_channel and not out.bias_per_channel
    assert (h.bias_field, out.bias_field, plan.bias_fields) == (0, 3, 8)
    assert regions["biases", "h"].bits_used == 3 * 2
    # Block RAMs of 512 × 36 or 1024 × 18: the weights 134 × 16 take one, the planes one.
    rams = plan.block_rams(((512, 36), (1024, 18)))
    assert rams == {"weights": 1, "biases": 1, "membranes": 1, "planes": 1}
    membrane_width = plan.memories["membranes"][0]  # 2 lanes × the widest membrane
    assert membrane_width == 2 * max(p.membrane_bits for p in plan.net.populations)
    assert plan.block_rams(((8, 4),)) == {"weights": 4 * 17, "biases": 1,
                                          "membranes": math.ceil(membrane_width / 4) * 4,
                                          "planes": 2 * 5}
    # A map whose biases differ along a channel keeps one per neuron.
    net = _conv_net()
    net.populations[0].bias[1, 2, 3] = 1
    assert SerialPlan(net, lanes=2, plane_width=8).bias_fields == 48 + 5
    # One tile each; membranes: h's 16 positions × 2 lane groups.
    assert h.tiles == ((0, 3),) and out.tiles == ((0, 5),)
    assert plan.memories["membranes"][1] == 32
    # Scans: h reads the image's 8 bit-planes (2 words each) once; out reads h's plane
    # (12 words) in each of its 2 steps.
    assert plan.scan_cycles() == 8 * 2 + 2 * 12
    # 16 membrane words: h in tiles of one lane group (2 channels), so it reads the image
    # twice; out's 5 neurons still fit in one.
    tiled = SerialPlan(_conv_net(), lanes=2, plane_width=8, membrane_words=16)
    assert tiled.layers[0].tiles == ((0, 2), (2, 3)) and tiled.layers[1].tiles == ((0, 5),)
    assert tiled.scan_cycles() == 2 * 8 * 2 + 2 * 12
    assert tiled.memories["membranes"][1] == 16


def test_planes_share_words_only_when_never_live_together():
    """A chain input → a → b → c → out: a plane is live from its writer to its last
    reader, and two planes share a word only when they are never live together; with a
    residual projection into c from a, a's plane must outlive b's."""
    rng = np.random.default_rng(2)

    def dense(src, n_out, n_in):
        return QProjection(src, "dense", rng.integers(-3, 4, (n_out, n_in)))

    def chain(residual):
        c_projs = [dense("b", 6, 6)] + ([dense("a", 6, 6)] if residual else [])
        return _net((8,), [_pop("a", "gn", (6,), [dense("input", 6, 8)]),
                           _pop("b", "gn", (6,), [dense("a", 6, 6)]),
                           _pop("c", "gn", (6,), c_projs),
                           _pop("out", "readout", (2,), [dense("c", 2, 6)])])

    for residual in (False, True):
        net = chain(residual)
        plan = SerialPlan(net, lanes=2, plane_width=8)
        order = {"input": -1, **{p.name: i for i, p in enumerate(net.populations)}}
        last = dict(order)
        for i, p in enumerate(net.populations):
            for q in p.projections:
                last[q.source] = max(last[q.source], i)
        planes = [r for r in plan.regions if r.memory == "planes"]
        assert {r.name for r in planes} == {"input", "a", "b", "c"}
        for x in planes:
            for y in planes:
                if x.name < y.name:
                    overlap = x.base < y.base + y.words and y.base < x.base + x.words
                    live = order[x.name] <= last[y.name] and order[y.name] <= last[x.name]
                    assert not (overlap and live), (x, y)
        total = sum(r.words for r in planes)
        depth = plan.memories["planes"][1]
        # Without the residual, b's plane reuses the image's words and c's a's.
        assert depth < total if not residual else depth <= total
        a, b = (next(r for r in planes if r.name == n) for n in ("a", "b"))
        if residual:  # a is read by c, after b was written: they never share
            assert a.base + a.words <= b.base or b.base + b.words <= a.base


@pytest.mark.parametrize("model,method,lanes,membrane_words", [
    ("digits-cnn", "gn", 4, None), ("digits-cnn", "gn", 4, 64), ("digits-cnn", "gn", 3, 128),
    ("digits-mlp", "gn", 8, None), ("digits-mlp", "gn", 8, 3), ("digits-cnn", "ilif", 4, 64),
    ("digits-mlp", "ilif", 5, 4)])
def test_ideal_cycles_follow_the_design_formula(bundled_graph, digits_test, model, method,
                                                lanes, membrane_words):
    """docs/serial.md's count, term by term from the golden model's recorded spikes:
    for every tile and step, each source's plane scanned, each non-zero count times the
    output positions it reaches times the tile's lane groups, the tile's fire sweep; the
    image's set bits into the first layer once per tile (GN) or as its 8 steps (ILIF:
    bit-planes; a fire sweep per output bit-plane). The plan's count (the dataflow
    engines' work one after another plus its scans) must equal it sample by sample."""
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2,
                           group_size=4 if method == "gn" else None, progress=False))
    plan = SerialPlan(net, lanes=lanes, membrane_words=membrane_words)
    x, _ = digits_test
    codes = golden.encode(net, x[:6])
    res = golden.run(net, codes, lanes=lanes, record=True)
    shapes = {"input": tuple(net.input.shape), **{p.name: p.shape for p in net.populations}}
    want = torch.zeros(codes.shape[0], dtype=torch.int64)
    for layer in plan.layers:
        pop = net.population(layer.population)
        spatial = len(pop.shape) == 3
        positions = pop.shape[1] * pop.shape[2] if spatial else 1
        for start, stop in layer.tiles:
            groups = math.ceil((stop - start) / lanes)
            for q_desc, q in zip(layer.projections, pop.projections, strict=True):
                assert (q_desc.source, q_desc.kind, q_desc.weights) == (q.source, q.kind,
                                                                         q.weight.size)
                r = golden.reach(q, shapes[q.source]).to(torch.int64)
                if q.source == "input":  # the input stage: every set bit of every pixel
                    planes = [(codes >> b) & 1 for b in range(8)]
                    words = math.ceil(codes[0].numel() / plan.plane_width)
                else:
                    out = res.outputs[q.source]
                    planes = [out[:, t] for t in range(pop.steps_in)]
                    src = net.population(q.source)
                    words = math.ceil(src.size * count_bits(src) / plan.plane_width)
                for plane in planes:
                    nz = (plane != 0).to(torch.int64)
                    reached = (nz.sum(1) * r).flatten(1).sum(1) if q.kind == "conv" \
                        else nz.flatten(1).sum(1)
                    want += words + reached * groups
            sweeps = 1 if pop.kind == "readout" else pop.steps_out
            want += sweeps * (pop.size if pop.kind == "readout" else positions * groups)
    assert torch.equal(plan.ideal_cycles(res), want)
    if membrane_words is not None:  # tiles cost scans, nothing else
        whole = SerialPlan(net, lanes=lanes)
        assert len(plan.layers[0].tiles) > 1
        extra = plan.scan_cycles() - whole.scan_cycles()
        assert extra > 0 and torch.equal(plan.ideal_cycles(res) - whole.ideal_cycles(res),
                                         torch.full_like(want, extra))


def test_weights_are_packed_densely(bundled_graph):
    """Every weight bit counted once and the weight memory at least 80 % used (the
    issue's target; rows straight after one another make it nearly 100 %), for lane
    counts that divide no layer's width."""
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    bits = sum(q.weight.size * q.weight_bits for p in net.populations for q in p.projections)
    for lanes in (3, 7, 16):
        plan = SerialPlan(net, lanes=lanes)
        used = sum(r.bits_used for r in plan.regions if r.memory == "weights")
        width, depth = plan.memories["weights"]
        assert used == bits and width == lanes * plan.weight_bits
        assert depth == math.ceil(plan.weight_fields / lanes)
        assert plan.weight_packing >= 0.8


def test_bad_input_is_refused_by_name():
    net = _conv_net()
    with pytest.raises(ParameterError, match="population h .* 16 positions .* at least 16"):
        SerialPlan(net, lanes=2, membrane_words=15)
    for kwargs, fragment in (({"lanes": 0}, "lanes must be a positive integer"),
                             ({"plane_width": True}, "plane_width must be"),
                             ({"membrane_words": 0}, "membrane_words must be")):
        with pytest.raises(ParameterError, match=fragment):
            SerialPlan(net, **kwargs)
    with pytest.raises(TypeError, match="needs a QNet"):
        SerialPlan("qnet.json")
    plan = SerialPlan(net, lanes=2)
    res = golden.run(net, torch.zeros(1, 1, 4, 4, dtype=torch.int64), lanes=4)
    with pytest.raises(ParameterError, match="lanes 4; this plan has 2"):
        plan.ideal_cycles(res)
