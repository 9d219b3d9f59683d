# amaranth: UnusedElaboratable=no
"""Whole networks of engines against the golden model in amaranth.sim."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from hwsnn import golden
from hwsnn.convert import convert
from hwsnn.hdl.network import Network
from hwsnn.hdl.streams import run_until_done, stream_get, stream_put
from hwsnn.quantize import quantize

from .random_nets import random_qnet


def simulate(net, codes, lanes, busy=0.0, seed=0):
    dut = Network(net, lanes=lanes)
    rng = random.Random(seed)
    got = []

    async def feed(ctx):
        for sample in codes:
            for v in sample.flatten().tolist():
                await stream_put(ctx, dut.pixels, int(v), rng, busy)

    async def read(ctx):
        for _ in range(len(codes)):
            values, arg = [], None
            for _ in range(net.output.size):
                beat = await stream_get(ctx, dut.o, rng, busy)
                values.append(int(beat.value))
                arg = int(beat.argmax)
            got.append((values, arg))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feed)
    sim.add_testbench(read)
    assert run_until_done(sim, lambda: len(got) == len(codes), 200_000 * len(codes)), \
        "the network did not deliver every readout"
    return got


def expected(net, codes):
    res = golden.run(net, codes)
    return [(r.tolist(), int(p)) for r, p in zip(res.readout, res.predictions, strict=True)]


@pytest.mark.parametrize("model,method", [("digits-mlp", "gn"), ("digits-mlp", "ilif"),
                                          ("digits-cnn", "gn")])
def test_bundled_network(bundled_graph, digits_test, model, method):
    net = quantize(convert(bundled_graph(model), method=method, timesteps=2, progress=False))
    codes = golden.encode(net, digits_test[0][:2])
    assert simulate(net, codes, lanes=8, busy=0.2) == expected(net, codes)


@pytest.mark.parametrize("seed", range(6))
def test_random_network_with_residuals(seed):
    rng = random.Random(seed)
    net = random_qnet(rng, ("gn", "ilif", "if-shift")[seed % 3])
    codes = torch.randint(0, 256, (2, *net.input.shape),
                          generator=torch.Generator().manual_seed(seed))
    assert simulate(net, codes, lanes=1 + seed % 3, busy=0.3, seed=seed) == \
        expected(net, codes)
