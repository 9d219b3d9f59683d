# amaranth: UnusedElaboratable=no
"""Whole networks of engines against the golden model in amaranth.sim."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from hwsnn.hdl.network import Network
from hwsnn.hdl.streams import run_until_done, stream_get, stream_put
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

from .random_nets import random_qnet


def simulate(net, codes, lanes, busy=0.0, seed=0, loadable=(), load=True, input_lanes=0,
             queue_depth=None, dut=None):
    if dut is None:
        dut = Network(net, lanes=lanes, loadable=loadable, input_lanes=input_lanes,
                      queue_depth=queue_depth)
    rng = random.Random(seed)
    got = []

    async def feed(ctx):
        # Run-time weight stores are written first, a byte per cycle (as the link does).
        for i, spec in enumerate(dut.stores if load else []):
            payload = spec.encode()
            n = spec.bytes_per_word
            for at, byte in enumerate(payload):
                ctx.set(dut.load.en, 1)
                ctx.set(dut.load.sel, i)
                ctx.set(dut.load.addr, at // n)
                ctx.set(dut.load.byte, at % n)
                ctx.set(dut.load.data, byte)
                await ctx.tick()
            ctx.set(dut.load.en, 0)
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


@pytest.mark.parametrize("lanes,method", [(1, "gn"), (4, "ilif"), (3, "gn")])
def test_weights_loaded_at_run_time(bundled_graph, digits_test, lanes, method):
    """Input weights in run-time stores (SPRAM on a UP5K; here the behavioural model)
    written through the load port give the golden model's readouts; without the load
    they do not (the stores start empty)."""
    net = quantize(convert(bundled_graph("digits-mlp"), method=method, timesteps=2,
                           progress=False))
    codes = golden.encode(net, digits_test[0][:2])
    first = net.populations[0].name
    assert simulate(net, codes, lanes=lanes, loadable=[(first, 0)]) == expected(net, codes)
    if lanes == 1:
        assert simulate(net, codes, lanes=lanes, loadable=[(first, 0)], load=False) != \
            expected(net, codes)


@pytest.mark.parametrize("lanes,input_lanes,loaded", [(1, 8, True), (2, 4, False),
                                                      (4, 12, True)])
def test_multiply_accumulate_input_stage(bundled_graph, digits_test, lanes, input_lanes,
                                         loaded):
    """The input stage with M multipliers (input weights M lanes wide, in a run-time store
    or a ROM) gives the golden model's readouts; with the store left empty it does not."""
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           progress=False))
    codes = golden.encode(net, digits_test[0][:3])
    first = net.populations[0].name
    loadable = [(first, 0)] if loaded else []
    assert simulate(net, codes, lanes=lanes, busy=0.25, seed=lanes, loadable=loadable,
                    input_lanes=input_lanes) == expected(net, codes)
    if loaded and lanes == 1:
        assert simulate(net, codes, lanes=lanes, loadable=loadable, load=False,
                        input_lanes=input_lanes) != expected(net, codes)


def test_shallow_output_queues(bundled_graph, digits_test):
    """Every engine's queue 4 lane groups deep (the sweeps wait on it): still the golden
    model's readouts."""
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           progress=False))
    codes = golden.encode(net, digits_test[0][:1])
    assert simulate(net, codes, lanes=4, busy=0.3, seed=5, queue_depth=4) == \
        expected(net, codes)


def test_one_plan_for_the_whole_network(bundled_graph, digits_test):
    """The network's engines, stores and event FIFOs are those of one ``NetworkPlan``
    (given, or made from the same arguments), which checks lanes per population, input
    lanes, queue depth and loadable weights in one place; lanes per population give the
    golden model's readouts."""
    from hwsnn import ParameterError
    from hwsnn.hdl.plan import NetworkPlan, reader_depths
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           progress=False))
    plan = NetworkPlan(net, "fc1=4,fc2=2", input_lanes=8, loadable=[["fc1", 0]],
                       queue_depth=16)
    assert plan.lanes == {"fc1": 4, "fc2": 2, "fc3": 1} and plan.loadable == (("fc1", 0),)
    dut = Network(net, plan=plan)
    assert dut.plan is plan and dut.stores is plan.stores and dut.lanes == plan.lanes
    assert all(dut.engines[n].plan is plan.engines[n] for n in plan.lanes)
    assert plan.engines["fc1"].mac_lanes == 8 and plan.stores[0].lanes == 8
    assert plan.readers == reader_depths(net, plan.engines, plan.fifo_depth)
    same = NetworkPlan(net, {"fc1": 4, "fc2": 2}, input_lanes=8, loadable=[("fc1", 0)],
                       queue_depth=16)
    assert same.lanes == plan.lanes and same.readers == plan.readers
    assert [s.encode() for s in same.stores] == [s.encode() for s in plan.stores]
    bram = plan.with_loadable([])
    assert bram.stores == [] and bram.engines is plan.engines and plan.stores
    for kwargs, message in (({"lanes": {"fc9": 2}}, r"'fc9'.*\(fc1, fc2, fc3\)"),
                            ({"lanes": {"fc1": 0}}, "not 0 for fc1"),
                            ({"lanes": 0}, "--lanes 0"),
                            ({"lanes": "fc1=2,fc1=4"}, "names fc1 twice"),
                            ({"lanes": 3, "input_lanes": 8}, "multiple of its 3 lanes"),
                            ({"queue_depth": 2}, "--queue-depth"),
                            ({"loadable": [("fc1", 5)]}, "no projection 5"),
                            ({"loadable": [("fc9", 0)]}, "no population 'fc9'")):
        with pytest.raises(ParameterError, match=message):
            NetworkPlan(net, **kwargs)
    other = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=1,
                             progress=False))
    with pytest.raises(ValueError, match="different QNet"):
        Network(other, plan=plan)
    codes = golden.encode(net, digits_test[0][:2])
    assert simulate(net, codes, None, busy=0.2, dut=dut) == expected(net, codes)
