"""The layer-serial processor's plan (hwsnn.hdl.serial, docs/serial.md): tiles, the memory
map and the cycle count, against hand-worked examples and a count from the golden
model's recorded spikes that follows the design's formula term by term."""

import math

import numpy as np
import pytest
import torch

from hwsnn.errors import ParameterError
from hwsnn.hdl.serial import SerialPlan, pool_factor, pooled_weights
from hwsnn.hdl.serial_model import SerialMachine
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.snn.quantize import quantize
from hwsnn.snn.widths import set_membrane_widths, widths


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
    net = _conv_net()
    plan = SerialPlan(net, lanes=2)
    regions = {(r.memory, r.name): r for r in plan.regions}
    # h: 16 positions × 2 lane groups (3 channels on 2 lanes) = 32 words a step, 2 steps;
    # counts up to τ = 2 take 2 bits, so a word is 2 lanes × 2 bits. The image is no plane.
    assert plan.plane_bits == 2
    assert (regions["planes", "h"].base, regions["planes", "h"].words) == (0, 64)
    assert regions["planes", "h"].bits_used == 48 * 2 * 2
    assert ("planes", "input") not in regions and ("planes", "out") not in regions
    assert plan.memories["planes"] == (4, 64) and plan.memories["pixels"] == (8, 16)
    # Weights, 2 a word, one projection straight after the other: the conv's 27 (words
    # 0..13), the dense 240 from field 27 (word 13, shared, to word 133).
    conv, dense = regions["weights", "h.0"], regions["weights", "out.0"]
    assert (conv.base, conv.words, dense.base, dense.words) == (0, 14, 13, 121)
    assert plan.memories["weights"] == (16, 134)
    assert plan.weight_packing == pytest.approx(267 / 268)
    h, out = plan.layers
    assert h.projections[0].weight_field == 0 and out.projections[0].weight_field == 27
    assert out.projections[0].source_plane == 0 and h.plane == 0 and out.plane == -1
    assert h.plane_words == 32 and out.plane_words == 0
    # h's biases vary by channel only (a convolution's): a word per lane group (2), then
    # out's 5 in 3 words.
    assert h.bias_per_channel and not out.bias_per_channel
    assert (h.bias_word, out.bias_word, plan.memories["biases"][1]) == (0, 2, 5)
    assert regions["biases", "h"].bits_used == 3 * widths(net, net.populations[0]).bias
    # One tile each; membranes: h's 16 positions × 2 lane groups; h, fed by the image,
    # keeps its input current beside them.
    assert h.tiles == ((0, 3),) and out.tiles == ((0, 5),)
    assert plan.memories["membranes"][1] == 32 and plan.memories["currents"][1] == 32
    membrane_width = plan.memories["membranes"][0]  # 2 lanes × the widest membrane
    assert membrane_width == 2 * max(widths(net, p).membrane for p in net.populations)
    # Block RAMs of 512 × 36 or 1024 × 18: one each; in 8 × 4 blocks, words of 16 bits
    # take 4 side by side, 134 of them 17 deep.
    rams = plan.block_rams(((512, 36), (1024, 18)))
    assert rams == dict.fromkeys(plan.memories, 1)
    assert plan.block_rams(((8, 4),))["weights"] == 4 * 17
    assert plan.block_rams(((8, 4),))["planes"] == 8
    # A map whose biases differ along a channel keeps one per neuron.
    net = _conv_net()
    net.populations[0].bias[1, 2, 3] = 1
    assert SerialPlan(net, lanes=2).memories["biases"][1] == 16 * 2 + 3
    # Scans: h reads the image's 16 pixels once; out reads h's plane (32 words) in each of
    # its 2 steps.
    assert plan.scan_cycles() == 16 + 2 * 32
    # 16 membrane words: h in tiles of one lane group (2 channels), so it reads the image
    # twice; out's 5 neurons still fit in one.
    tiled = SerialPlan(_conv_net(), lanes=2, membrane_words=16)
    assert tiled.layers[0].tiles == ((0, 2), (2, 3)) and tiled.layers[1].tiles == ((0, 5),)
    assert tiled.scan_cycles() == 2 * 16 + 2 * 32
    assert tiled.memories["membranes"][1] == 16
    # Without the current memory, h reads the image in each of its 2 steps.
    replay = SerialPlan(_conv_net(), lanes=2, keep_current=False)
    assert replay.memories["currents"][1] == 0 and replay.scan_cycles() == 2 * 16 + 2 * 32


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
        plan = SerialPlan(net, lanes=2)
        order = {p.name: i for i, p in enumerate(net.populations)}
        last = dict(order)
        for i, p in enumerate(net.populations):
            for q in p.projections:
                if q.source != "input":
                    last[q.source] = max(last[q.source], i)
        planes = [r for r in plan.regions if r.memory == "planes"]
        assert {r.name for r in planes} == {"a", "b", "c"}
        for x in planes:
            for y in planes:
                if x.name < y.name:
                    overlap = x.base < y.base + y.words and y.base < x.base + x.words
                    live = order[x.name] <= last[y.name] and order[y.name] <= last[x.name]
                    assert not (overlap and live), (x, y)
        total = sum(r.words for r in planes)
        depth = plan.memories["planes"][1]
        # Without the residual, c's plane reuses a's words; with it, all three are live
        # while c runs.
        assert depth < total if not residual else depth == total
        a, b = (next(r for r in planes if r.name == n) for n in ("a", "b"))
        if residual:  # a is read by c, after b was written: they never share
            assert a.base + a.words <= b.base or b.base + b.words <= a.base


@pytest.mark.parametrize("model,method,lanes,membrane_words,keep", [
    ("digits-cnn", "gn", 4, None, True), ("digits-cnn", "gn", 4, 64, True),
    ("digits-cnn", "gn", 3, 128, False), ("digits-mlp", "gn", 8, None, True),
    ("digits-mlp", "gn", 8, 3, False), ("digits-cnn", "ilif", 4, 64, True),
    ("digits-mlp", "ilif", 5, 4, True)])
def test_ideal_cycles_follow_the_design_formula(bundled_graph, digits_test, model, method,
                                                lanes, membrane_words, keep):
    """docs/serial.md's count, term by term from the golden model's recorded spikes:
    for every tile and step, each source's plane scanned, each non-zero count times the
    output positions it reaches times the tile's lane groups, the tile's fire sweep (P/R
    cycles a word: the lanes share R rule units); the image's non-zero pixels (an event
    each, its code the count) into the first layer once per tile (ILIF: a fire sweep per
    output bit-plane), and without the current memory once per step. The
    plan's count (the dataflow engines' work one after another plus its scans) must equal
    it sample by sample."""
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2,
                           group_size=4 if method == "gn" else None, progress=False))
    plan = SerialPlan(net, lanes=lanes, membrane_words=membrane_words, keep_current=keep)
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
                f = 1 << q_desc.pool  # (a pooling folded in: each weight kept once)
                kept = q.weight.size // f ** 2 if q.kind == "conv" else q.weight.shape[0] * (
                    math.prod(-(-d // f) for d in shapes[q.source][1:]) * shapes[q.source][0]
                    if len(shapes[q.source]) == 3 else q.weight.shape[1])
                assert (q_desc.source, q_desc.kind, q_desc.weights) == (q.source, q.kind, kept)
                r = golden.reach(q, shapes[q.source]).to(torch.int64)
                if q.source == "input":  # the input stage: every non-zero pixel
                    runs = 1 if keep or method == "ilif" else pop.steps_in
                    planes = [codes] * runs
                    want += runs * codes[0].numel()  # its pixels, read once a run
                    words = 0
                else:
                    out = res.outputs[q.source]
                    planes = [out[:, t] for t in range(pop.steps_in)]
                    src = net.population(q.source)
                    src_positions = src.shape[1] * src.shape[2] if len(src.shape) == 3 else 1
                    words = src_positions * math.ceil(src.shape[0] / lanes)
                for plane in planes:
                    nz = (plane != 0).to(torch.int64)
                    reached = (nz.sum(1) * r).flatten(1).sum(1) if q.kind == "conv" \
                        else nz.flatten(1).sum(1)
                    want += words + reached * groups
            sweeps = 1 if pop.kind == "readout" else pop.steps_out
            want += sweeps * (pop.size if pop.kind == "readout"
                              else positions * groups * plan.sweep_cycles)
    assert torch.equal(plan.ideal_cycles(res, codes), want)
    if membrane_words is not None and keep:  # tiles cost scans, nothing else
        whole = SerialPlan(net, lanes=lanes)
        assert len(plan.layers[0].tiles) > 1
        extra = plan.scan_cycles() - whole.scan_cycles()
        assert extra > 0 and torch.equal(plan.ideal_cycles(res, codes)
                                         - whole.ideal_cycles(res, codes),
                                         torch.full_like(want, extra))


def test_shared_rule_units_lengthen_every_sweep(bundled_graph):
    """Lanes sharing R rule units spend P/R cycles on each word of each fire sweep: the
    ideal grows by (P/R − 1) × the sweeps' words (counted by hand here: every step of
    every non-readout population, H·W·⌈C/P⌉ words), for every sample alike."""
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    codes = torch.randint(0, 256, (2, *net.input.shape),
                          generator=torch.Generator().manual_seed(0))
    res = golden.run(net, codes, lanes=8)
    words = sum(p.steps_out * math.prod(p.shape[1:]) * math.ceil(p.shape[0] / 8)
                for p in net.populations if p.kind != "readout")
    assert words > 0
    alone = SerialPlan(net, lanes=8, keep_current=False, rule_units=8)
    assert alone.sweep_cycles == 1 and alone.shared_rule_cycles() == 0
    for units in (1, 2, 4):
        plan = SerialPlan(net, lanes=8, keep_current=False, rule_units=units)
        assert plan.arguments()["rule_units"] == units
        assert plan.shared_rule_cycles() == (8 // units - 1) * words
        assert torch.equal(plan.ideal_cycles(res, codes) - alone.ideal_cycles(res, codes),
                           torch.full((2,), (8 // units - 1) * words))
    assert SerialPlan(net, lanes=16).rule_units == 2  # (default: P/8)
    assert SerialPlan(net, lanes=4).rule_units == 1


def test_weights_are_packed_densely(bundled_graph):
    """Every weight bit counted once and the weight memory at least 80 % used (the
    issue's target; rows straight after one another make it nearly 100 %), for lane
    counts that divide no layer's width."""
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    for lanes in (3, 7, 16):
        plan = SerialPlan(net, lanes=lanes)
        bits = sum(d.weights * d.weight_bits for layer in plan.layers
                   for d in layer.projections)  # (each weight once: pooling's kept once)
        used = sum(r.bits_used for r in plan.regions if r.memory == "weights")
        width, depth = plan.memories["weights"]
        assert used == bits and width == lanes * plan.weight_bits
        assert depth == math.ceil(plan.weight_field_count / lanes)
        assert plan.weight_packing >= 0.8


def _repeated(w, f):
    """``w`` with each of its last two axes' entries repeated f times: an f×f average
    pooling folded into a kernel (or a dense row over source positions)."""
    return np.repeat(np.repeat(w, f, axis=-2), f, axis=-1)


def test_a_folded_pooling_is_found_by_hand():
    """Average pooling 2×2 then conv 3×3 (padding 1) is conv 6×6, stride 2, padding 2
    with each weight repeated over a 2×2 block: found, kept as the 3×3; a single weight
    changed, or a stride or padding not a multiple of 2, keeps the kernel whole. A dense
    projection from a [2, 5, 5] map repeated over 2×2 blocks (the last row and column
    half blocks) keeps [N, 2, 3, 3]; repeated over the whole map, [N, 2, 1, 1]. The
    image's projections are never pooled."""
    rng = np.random.default_rng(3)
    k3 = rng.integers(-7, 8, (4, 2, 3, 3))
    k6 = _repeated(k3, 2)
    q = QProjection("h", "conv", k6, 2, 2)
    assert pool_factor(q, (2, 8, 8)) == 1
    assert np.array_equal(pooled_weights(q, (2, 8, 8), 1), k3)
    assert pool_factor(QProjection("h", "conv", k6, 1, 2), (2, 8, 8)) == 0  # stride 1
    assert pool_factor(QProjection("h", "conv", k6, 2, 1), (2, 8, 8)) == 0  # padding 1
    assert pool_factor(QProjection("input", "conv", k6, 2, 2), (2, 8, 8)) == 0
    odd = k6.copy()
    odd[1, 0, 5, 4] += 1
    assert pool_factor(QProjection("h", "conv", odd, 2, 2), (2, 8, 8)) == 0
    # 4×4 blocks of a 4×4 kernel at stride 4: f = 4 (and no larger: the kernel's size).
    assert pool_factor(QProjection("h", "conv", _repeated(k3[..., :1, :1], 4), 4, 0),
                       (2, 8, 8)) == 2
    # Dense: rows over (c, y, x) of a [2, 5, 5] map.
    grid = rng.integers(-7, 8, (6, 2, 3, 3))
    dense = _repeated(grid, 2)[..., :5, :5].reshape(6, 50)
    assert pool_factor(QProjection("h", "dense", dense), (2, 5, 5)) == 1
    assert np.array_equal(pooled_weights(QProjection("h", "dense", dense), (2, 5, 5), 1),
                          grid)
    whole = np.repeat(grid[..., :1, :1], 25, axis=-1).reshape(6, 50)
    assert pool_factor(QProjection("h", "dense", whole), (2, 5, 5)) == 3  # f = 8 ≥ 5
    assert pooled_weights(QProjection("h", "dense", whole), (2, 5, 5), 3).shape == (6, 2, 1, 1)
    assert pool_factor(QProjection("h", "dense", dense), (50,)) == 0  # a vector
    assert pool_factor(QProjection("input", "dense", dense), (2, 5, 5)) == 0


def _pooled_net() -> QNet:
    """input (1, 5, 5) → h: conv 3×3 padding 1 [2, 5, 5] → p: conv 6×6, stride 2, padding
    2 (pool 2 then 3×3) [3, 2, 2] → out: readout 4 from h (dense, 2×2 blocks over an odd
    map) and from p (dense, one weight per channel: a global pooling)."""
    rng = np.random.default_rng(7)
    h = _pop("h", "gn", (2, 5, 5), [QProjection("input", "conv",
                                                rng.integers(-3, 4, (2, 1, 3, 3)), 1, 1)])
    p = _pop("p", "gn", (3, 2, 2), [QProjection("h", "conv", _repeated(
        rng.integers(-3, 4, (3, 2, 3, 3)), 2), 2, 2)])
    from_h = _repeated(rng.integers(-3, 4, (4, 2, 3, 3)), 2)[..., :5, :5].reshape(4, 50)
    from_p = np.repeat(rng.integers(-3, 4, (4, 3, 1)), 4, axis=-1).reshape(4, 12)
    out = _pop("out", "readout", (4,), [QProjection("h", "dense", from_h),
                                         QProjection("p", "dense", from_p)])
    return _net((1, 5, 5), [h, p, out])


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_folded_poolings_run_exactly(lanes):
    """The pooled network's projections stored once (36 + 72 + 16 + 12 weights of 18 +
    288 + 200 + 12), and the processor's model, running the pooled map's events through
    the smaller kernels and rows, gives the golden model's counts and readout bit for bit
    and its ideal cycles (the events, scans and operations are the same as unpooled)."""
    net = _pooled_net()
    plan = SerialPlan(net, lanes=lanes)
    assert [d.pool for layer in plan.layers for d in layer.projections] == [0, 1, 1, 1]
    assert [d.weights for layer in plan.layers for d in layer.projections] == [18, 54, 72, 12]
    p = plan.layers[1].projections[0]
    assert (p.kernel, p.stride, p.padding) == (3, 1, 1)
    codes = torch.randint(0, 256, (6, 1, 5, 5), generator=torch.Generator().manual_seed(2))
    codes[0] = 255
    run = SerialMachine(plan).run(codes)
    ref = golden.run(net, codes, lanes=lanes, record=True)
    assert torch.equal(run.readout, ref.readout)
    for name, counts in run.outputs.items():
        assert torch.equal(counts, ref.outputs[name]), name
    assert any(ref.outputs["p"].flatten().tolist()) and any(ref.outputs["h"].flatten().tolist())
    assert torch.equal(run.scan + run.ops, plan.ideal_cycles(ref, codes))


def test_weight_slices_make_each_bank_one_block_deep():
    """``slices_for``: the hand-worked plan's 134 weight words (16 bits: 2 lanes of 8)
    and a zero word make banks of 68 and 67 words. Of modes 32 × 16, 64 × 8 and 128 × 4,
    only the last is 68 deep: slices of 4 bits. A mode that holds a whole word that deep
    needs no slices, nor can any be made with no mode that deep. The slices travel with
    the plan's arguments (a build report), and bad values are refused by name."""
    net = _conv_net()
    plan = SerialPlan(net, lanes=2)
    assert plan.bank_depth == 68 and plan.weight_slices == 0
    assert plan.slices_for(((32, 16), (64, 8), (128, 4))) == 4
    assert plan.slices_for(((128, 16), (256, 8))) == 0
    assert plan.slices_for(((32, 16), (64, 8))) == 0
    sliced = plan.with_weight_slices(4)
    assert sliced.weight_slices == 4 and plan.weight_slices == 0
    assert sliced.weight_slice_spans() == [(0, 4), (4, 4), (8, 4), (12, 4)]
    assert plan.weight_slice_spans() == [(0, 16)]
    assert plan.with_weight_slices(5).weight_slice_spans() == [(0, 5), (5, 5), (10, 5), (15, 1)]
    assert SerialPlan(net, **sliced.arguments()).weight_slices == 4
    for bad in (-1, True, 2.0):
        with pytest.raises(ParameterError, match="weight_slices must be a number of bits"):
            SerialPlan(net, lanes=2, weight_slices=bad)
        with pytest.raises(ParameterError, match="weight_slices must be a number of bits"):
            plan.with_weight_slices(bad)


def test_bad_input_is_refused_by_name():
    net = _conv_net()
    with pytest.raises(ParameterError, match="population h .* 16 positions .* at least 16"):
        SerialPlan(net, lanes=2, membrane_words=15)
    for kwargs, fragment in (({"lanes": 0}, "lanes must be a positive integer"),
                             ({"keep_current": "yes"}, "keep_current must be"),
                             ({"membrane_words": 0}, "membrane_words must be"),
                             ({"lanes": 8, "rule_units": 3}, "rule_units must be a power"),
                             ({"lanes": 4, "rule_units": 8}, "divides the 4 lanes")):
        with pytest.raises(ParameterError, match=fragment):
            SerialPlan(net, **kwargs)
    with pytest.raises(TypeError, match="needs a QNet"):
        SerialPlan("qnet.json")
    plan = SerialPlan(net, lanes=2)
    codes = torch.zeros(1, 1, 4, 4, dtype=torch.int64)
    res = golden.run(net, codes, lanes=4)
    with pytest.raises(ParameterError, match="lanes 4; this plan has 2"):
        plan.ideal_cycles(res, codes)
    res = golden.run(net, codes, lanes=2)
    for wrong in (None, torch.zeros(2, 1, 4, 4, dtype=torch.int64)):
        with pytest.raises(ParameterError, match="pass the codes the golden run had"):
            plan.ideal_cycles(res, wrong)
