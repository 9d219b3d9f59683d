"""Random small QNets for engine tests: every engine kind and projection kind."""

from __future__ import annotations

import random

import numpy as np

from hwsnn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate
from hwsnn.quantize import membrane_bounds, signed_bits


def _conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def random_qnet(rng: random.Random, method: str) -> QNet:
    """input → h1 → h2 (optionally residual from h1 too) → readout, each randomly dense or
    convolutional, with random widths, thresholds, group sizes and biases."""
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
    for pop in pops:
        lo, hi = membrane_bounds(net, pop)
        pop.membrane_bits = signed_bits(lo, hi)
    validate(net)
    return net
