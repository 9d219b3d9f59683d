"""Random small QNets and input images, for checking the engines against the golden model.

Two generators, both deterministic in the ``random.Random`` they are given:

- ``random_qnet``: input → h1 → h2 (sometimes also fed by h1 through a second projection,
  a residual pair) → readout, each projection dense or convolutional, with random widths,
  thresholds, group sizes and biases in the ranges real conversions produce. Its draws are
  kept as they were when the seeds in the tests were found, so that a seed names the same
  network in every version.
- ``limit_qnet``: networks drawn to sit at the edges: one neuron or one channel, more
  neurons than lanes, 1×1 maps, kernels as large as the map, strides that skip rows;
  thresholds of 2 and thresholds far above any input, group sizes up to 8, initial
  potentials of 0, −1, Θ − 1 and beyond Θ, biases that fire every step, never, or cancel
  the largest input, weights of 2 to 16 bits, all at their maximum or all zero, stored
  shifted by up to 6 bits, up to 8 steps; and, in one population,
  a bias moved until the membrane's worst case is exactly the largest (or smallest) value
  its width holds, with images that reach it.

``random_codes`` draws input images (pixel codes 0..255) to go with either.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from .qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from .widths import set_membrane_widths, signed_bits, stored_bounds

METHODS = ("gn", "if", "if-shift", "ilif", "cos")


def _conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def random_qnet(rng: random.Random, method: str) -> QNet:
    """input → h1 → h2 (optionally residual from h1 too) → readout, each randomly dense or
    convolutional, with random widths, thresholds, group sizes and biases. ``method`` is
    gn, if-shift, ilif, or if / cos (gn with τ = 1; cos with 1 to 4 pre-simulation
    steps)."""
    T = rng.randint(1, 3)
    wbits = rng.choice([4, 6, 8])
    wmax = 2 ** (wbits - 1) - 1
    spatial = rng.random() < 0.6
    shape = (rng.randint(1, 2), rng.randint(3, 5), rng.randint(3, 5)) if spatial \
        else (rng.randint(3, 8),)
    np_rng = np.random.default_rng(rng.randrange(2**32))
    pops: list[QPopulation] = []
    shapes = {"input": shape}

    def weights(shape_):
        w = np_rng.integers(-wmax, wmax + 1, size=shape_)
        w[np_rng.random(shape_) < 0.3] = 0
        return w.astype(np.int64)

    def projection(src, out_channels, conv):
        s = shapes[src]
        if conv and len(s) == 3:
            k = rng.choice([1, 2, 3])
            stride = rng.choice([1, 1, 2])
            pad = rng.randint(0, k - 1)
            oh, ow = _conv_out(s[1], k, stride, pad), _conv_out(s[2], k, stride, pad)
            if oh < 1 or ow < 1:
                k, stride, pad, oh, ow = 1, 1, 0, s[1], s[2]
            return QProjection(src, "conv", weights((out_channels, s[0], k, k)), stride, pad,
                               wbits), (out_channels, oh, ow)
        n_in = int(np.prod(s))
        return QProjection(src, "dense", weights((out_channels, n_in)), 1, 0, wbits), \
            (out_channels,)

    def population(name, kind, projs, out_shape):
        theta = 2 * rng.randint(1, 40) if kind != "readout" else 2
        tau = rng.randint(1, 4) if (kind == "gn" and method == "gn") else 1
        first = any(p.source == "input" for p in projs)
        if method == "ilif":
            steps_in = 8 if first else T
            steps_out = T if kind == "ilif" else 1
            v0 = theta // 2 if kind == "ilif" else 0
        else:
            steps_in = steps_out = T
            v0 = 0 if kind == "readout" or method == "if-shift" else theta // 2
        bias = np_rng.integers(-3 * theta, 3 * theta + 1, size=out_shape).astype(np.int64)
        if len(out_shape) == 3 and rng.random() < 0.5:  # one bias per channel (no borders)
            bias = np.broadcast_to(bias[:, :1, :1], out_shape).copy()
        pop = QPopulation(name, kind, tuple(out_shape), theta, tau, steps_in, steps_out, v0,
                          bias, projs, signed_bits(int(bias.min()), int(bias.max())), 32,
                          False, 1.0, 1.0, 1.0 if kind == "readout" else None)
        pops.append(pop)
        shapes[name] = tuple(out_shape)
        return pop

    hidden = "ilif" if method == "ilif" else "gn"
    p1, s1 = projection("input", rng.randint(1, 5), spatial)
    population("h1", hidden, [p1], s1)
    p2, s2 = projection("h1", rng.randint(1, 5), rng.random() < 0.7)
    projs = [p2]
    if rng.random() < 0.4 and s2 == s1:
        # a residual: h2 adds h1's spikes through a second projection of the same shape
        q, _ = projection("h1", s2[0], len(s2) == 3)
        if q.kind == "conv":
            q = QProjection("h1", "conv", weights((s2[0], s1[0], 1, 1)), 1, 0, wbits)
        projs.append(q)
    population("h2", hidden, projs, s2)
    p3, s3 = projection("h2", rng.randint(2, 6), False)
    population("out", "readout", [p3], s3)
    net = QNet(method, T, 0, InputSpecQ(shape), pops, wbits, 32)
    if method == "cos":
        _calibrated(net, rng.randint(1, 4))
    set_membrane_widths(net)
    validate(net)
    return net


# ---------------------------------------------------------------------------------------
# Networks at the limits.


class _LimitDraw:
    def __init__(self, rng: random.Random, method: str):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        self.rng, self.method = rng, method
        self.np = np.random.default_rng(rng.randrange(2**32))
        self.ilif = method == "ilif"
        self.T = rng.choice([1, 2, 3, 4, 6] if self.ilif else [1, 1, 2, 3, 4, 8])
        self.wbits = rng.choice([2, 3, 4, 6, 8, 8, 12, 16])
        self.wmax = 2 ** (self.wbits - 1) - 1
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.pops: list[QPopulation] = []

    def size(self, large: int) -> int:
        r = self.rng.random()
        return 1 if r < 0.2 else (large if r < 0.3 else self.rng.randint(2, 5))

    def input_shape(self):
        rng = self.rng
        if rng.random() < 0.5:
            return (self.size(17),)
        h = 1 if rng.random() < 0.15 else rng.randint(2, 6)
        w = 1 if rng.random() < 0.15 else rng.randint(2, 6)
        return (rng.choice([1, 1, 2, 3]), h, w)

    def weights(self, shape):
        rng, wmax = self.rng, self.wmax
        style = rng.choice(["sparse", "sparse", "max", "zero", "one", "positive", "negative"])
        if style == "max":
            w = self.np.choice([-wmax, wmax], size=shape)
        elif style == "zero":
            w = np.zeros(shape, dtype=np.int64)
        elif style == "one":
            w = np.zeros(shape, dtype=np.int64)
            w.flat[rng.randrange(w.size)] = rng.choice([-wmax, wmax, rng.randint(-wmax, wmax)])
        else:
            w = self.np.integers(-wmax, wmax + 1, size=shape)
            if style == "positive":
                w = np.abs(w)
            elif style == "negative":
                w = -np.abs(w)
            w[self.np.random(shape) < 0.4] = 0
        return np.asarray(w, dtype=np.int64)

    def projection(self, src, out_channels, conv):
        q, shape = self._projection(src, out_channels, conv)
        # Sometimes weights stored shifted (as quantize does for ILIF at many steps).
        q.weight_shift = self.rng.choice([0, 0, 0, 0, 1, 3, 6])
        q.weight = q.weight << q.weight_shift
        return q, shape

    def _projection(self, src, out_channels, conv):
        s = self.shapes[src]
        if conv and len(s) == 3:
            rng = self.rng
            for _ in range(20):
                k = rng.choice([1, 2, 3, 5])
                stride = rng.choice([1, 1, 2, 3])
                pad = rng.randint(0, k - 1)
                oh, ow = _conv_out(s[1], k, stride, pad), _conv_out(s[2], k, stride, pad)
                if oh >= 1 and ow >= 1:
                    break
            else:
                k, stride, pad, oh, ow = 1, 1, 0, s[1], s[2]
            return QProjection(src, "conv", self.weights((out_channels, s[0], k, k)), stride,
                               pad, self.wbits), (out_channels, oh, ow)
        return QProjection(src, "dense", self.weights((out_channels, math.prod(s))), 1, 0,
                           self.wbits), (out_channels,)

    def threshold(self, step: int) -> int:
        rng = self.rng
        style = rng.choice(["two", "small", "typical", "typical", "power", "huge"])
        if style == "two":
            units = 1
        elif style == "small":
            units = rng.randint(1, 5)
        elif style == "typical":
            units = rng.randint(1, 60)
        elif style == "power":
            units = 2 ** rng.randint(0, 12)
        else:  # far above any input the population can receive
            units = rng.randint(2**12, 2**20)
        return max(2, step * units)

    def event_extreme(self, projs, out_shape, high: bool) -> np.ndarray:
        """Per neuron, the largest (or smallest) sum of one step's events."""
        total = np.zeros(out_shape, dtype=np.int64)
        for q in projs:
            if q.source == "input":
                smax = 1 if self.ilif else 255
            else:
                src = next(p for p in self.pops if p.name == q.source)
                smax = 1 if self.ilif else src.group_size
            w = q.weight.reshape(q.weight.shape[0], -1)
            part = (np.maximum(w, 0) if high else np.minimum(w, 0)).sum(1) * smax
            total = total + part.reshape(-1, *([1] * (len(out_shape) - 1)))
        return total

    def population(self, name, kind, projs, out_shape):
        rng, method, T = self.rng, self.method, self.T
        first = any(p.source == "input" for p in projs)
        step = 2 * T if (method == "if-shift" and kind == "gn") else 2
        theta = self.threshold(step) if kind != "readout" else rng.choice([1, 2, 7])
        tau = 1
        if kind == "gn" and method == "gn":
            tau = rng.choice([1, 2, 3, 4, 8])
        if self.ilif:
            steps_in = 8 if first else T
            steps_out = T if kind == "ilif" else 1
            v0 = rng.choice([theta // 2, theta // 2, 0, theta - 1]) if kind == "ilif" else 0
        else:
            steps_in = steps_out = T
            if kind == "readout":
                v0 = 0
            elif method == "if-shift":
                v0 = rng.choice([0, 0, theta // 2])
            else:
                v0 = rng.choice([theta // 2, theta // 2, 0, -1, theta - 1,
                                 rng.randint(-2 * theta, 2 * theta)])
        style = rng.choice(["random", "random", "zero", "fire", "quiet", "channel", "cancel"])
        spread = 3 * theta * max(1, tau)
        if style == "cancel":
            # The bias undoes the largest input (or the most negative): V stays small while
            # a step's events, added before the bias, swing far.
            bias = -self.event_extreme(projs, out_shape, rng.random() < 0.5)
        elif style == "zero":
            bias = np.zeros(out_shape, dtype=np.int64)
        elif style == "fire":  # fires (at the full group) every step
            bias = self.np.integers((tau + 1) * theta, (tau + 3) * theta + 1, size=out_shape)
        elif style == "quiet":  # never reaches the threshold on its own
            bias = self.np.integers(-4 * theta, -theta + 1, size=out_shape)
        else:
            bias = self.np.integers(-spread, spread + 1, size=out_shape)
        bias = np.asarray(bias, dtype=np.int64)
        if method == "if-shift" and kind == "gn":
            bias = bias + theta // (2 * T)
        if style == "channel" and len(out_shape) == 3:
            bias = np.broadcast_to(bias[:, :1, :1], out_shape).copy()
        pop = QPopulation(name, kind, tuple(out_shape), int(theta), tau, steps_in, steps_out,
                          int(v0), bias, projs, signed_bits(int(bias.min()), int(bias.max())),
                          32, False, 1.0, 1.0, 1.0 if kind == "readout" else None)
        self.pops.append(pop)
        self.shapes[name] = tuple(out_shape)
        return pop


def limit_qnet(rng: random.Random, method: str) -> QNet:
    """A random QNet drawn at the limits (see the module); ``method`` is one of
    gn, if, if-shift, ilif, cos (ρ of 1, 2, 3 or 8)."""
    d = _LimitDraw(rng, method)
    shape = d.input_shape()
    d.shapes["input"] = shape
    hidden = "ilif" if d.ilif else "gn"
    spatial = len(shape) == 3
    p1, s1 = d.projection("input", d.size(17), spatial and rng.random() < 0.8)
    d.population("h1", hidden, [p1], s1)
    last = "h1"
    if rng.random() < 0.7:
        p2, s2 = d.projection("h1", d.size(17), rng.random() < 0.7)
        projs = [p2]
        if rng.random() < 0.4 and s2 == s1:
            q, _ = d.projection("h1", s2[0], len(s2) == 3)
            if q.kind == "conv":  # a 1×1 projection keeps the shape
                q = QProjection("h1", "conv", d.weights((s2[0], s1[0], 1, 1)), 1, 0, d.wbits)
            projs.append(q)
        d.population("h2", hidden, projs, s2)
        last = "h2"
    p3, s3 = d.projection(last, rng.choice([1, 2, rng.randint(3, 10)]), False)
    d.population("out", "readout", [p3], s3)
    net = QNet(method, d.T, 0, InputSpecQ(shape), d.pops, d.wbits, 48)
    if method == "cos":
        _calibrated(net, rng.choice([1, 2, 3, 8]))
    if rng.random() < 0.5:
        _at_the_limit(net, rng.choice(net.populations), rng.random() < 0.5)
    set_membrane_widths(net)
    validate(net)
    return net


def _calibrated(net: QNet, rho: int) -> None:
    """``net`` (drawn as IF) with ρ pre-simulation steps of offset-spike calibration: every
    population runs ρ + T steps, as a conversion with ``method="cos"`` makes it."""
    net.cos_steps = rho
    for pop in net.populations:
        pop.steps_in = pop.steps_out = rho + net.timesteps


def _at_the_limit(net: QNet, pop: QPopulation, high: bool) -> None:
    """Move one neuron's bias until the population's stored worst case is the largest
    (``high``) or the smallest value its membrane width holds, without widening it."""
    def bound(delta):
        pop.bias.flat[i] = base + (delta if high else -delta)
        lo, hi = stored_bounds(net, pop)
        return signed_bits(lo, hi), (hi if high else lo)

    i = int(np.argmax(pop.bias) if high else np.argmin(pop.bias))
    base = int(pop.bias.flat[i])
    width, _ = bound(0)
    edge = 2 ** (width - 1) - 1 if high else -(2 ** (width - 1))
    lo_d, hi_d = 0, 2 ** width  # bound(lo_d) keeps the width; bound(hi_d) does not
    if bound(hi_d)[0] == width:
        pop.bias.flat[i] = base
        return
    while hi_d - lo_d > 1:
        mid = (lo_d + hi_d) // 2
        if bound(mid)[0] == width:
            lo_d = mid
        else:
            hi_d = mid
    w, value = bound(lo_d)
    if value != edge:  # the bias does not move this bound one for one (e.g. clamped)
        pop.bias.flat[i] = base
    pop.bias_bits = signed_bits(int(pop.bias.min()), int(pop.bias.max()))


def random_codes(rng: random.Random, net: QNet, batch: int) -> torch.Tensor:
    """``batch`` images of pixel codes: each all black, all white, or a mix of 0, 255 and
    random codes (the golden model's worst cases are the extremes)."""
    n = math.prod(net.input.shape)
    rows = []
    for _ in range(batch):
        style = rng.random()
        if style < 0.1:
            rows.append([0] * n)
        elif style < 0.25:
            rows.append([255] * n)
        else:
            rows.append([rng.choice([0, 255, rng.randint(0, 255)]) for _ in range(n)])
    return torch.tensor(rows, dtype=torch.int64).reshape(batch, *net.input.shape)


def small_cifar_qnet(*, method: str = "gn", timesteps: int = 2, group_size: int | None = 4,
                     seed: int = 0) -> QNet:
    """Issue 19's small CIFAR CNN, conv32-conv32-pool-conv64-conv64-pool-fc on 3×32×32
    images, with random weights (``seed``) calibrated on random inputs (no CIFAR data is
    shipped), 8-bit weights: a network the size researchers start from, whose dataflow
    design does not fit an ECP5-85F."""
    from torch import nn

    from ..frontends.pytorch import trace
    from .convert import convert
    from .quantize import quantize

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10)).eval()
    x = torch.rand(64, 3, 32, 32)
    kw = {"group_size": group_size} if method == "gn" else {}
    return quantize(convert(trace(model, x[:2]), method=method, timesteps=timesteps,
                            calibration=x, progress=False, **kw))
