# amaranth: UnusedElaboratable=no
"""The sequencer alone in amaranth.sim: the operations it issues for the events of each
step are, in order, every lane group of every event (an accumulation) and then the fire
sweep of every address (``last_step`` on the sample's last step, ``end`` on the sweep's
last address); after each sweep two cycles issue nothing; and with a slow consumer behind
the output queue the sweeps never issue more than the queue can hold."""

import random

import pytest
from amaranth.sim import Simulator

from hwsnn.hdl.ops import ACC, SWEEP
from hwsnn.hdl.plan import EnginePlan
from hwsnn.hdl.sequencer import Sequencer
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

PIPELINE = 7  # a sweep operation reaches the queue this many cycles after its issue


@pytest.fixture(scope="module")
def mlp(bundled_graph):
    return quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                            progress=False))


def expected(plan, steps_events):
    """The model: the operations of ``steps_events`` (a list per step of (index, count))."""
    G, A, T = plan.groups, plan.addresses, plan.steps
    ops = []
    for t, events in enumerate(steps_events):
        for j, count in events:
            ops += [(ACC, g, j * G + g, count, 0, 0) for g in range(G)]
        ops += [(SWEEP, a, 0, 0, int(t % T == T - 1), int(a == A - 1)) for a in range(A)]
    return ops


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("lanes,queue_depth,pop_busy", [(3, 16, 0.0), (1, 4, 0.8),
                                                        (8, 4, 0.95)])
def test_operations_bubbles_and_credit(mlp, seed, lanes, queue_depth, pop_busy):
    plan = EnginePlan(mlp, "fc2", lanes)
    (src,) = plan.event_projections[0].src_shape
    rng = random.Random(seed)
    steps = [[(rng.randrange(src), rng.randint(1, plan.event_projections[0].max_count))
              for _ in range(rng.randint(0, 6))] for _ in range(2 * plan.steps)]
    dut = Sequencer(plan, queue_depth)
    port = dut.i0
    issued, idle_after_end, queue_over = [], [], []

    async def events(ctx):
        for evs in steps:
            for item in evs + [None]:
                while rng.random() < 0.3:
                    await ctx.tick()
                if item is None:
                    break
                j, count = item
                ctx.set(port.valid, 1)
                ctx.set(port.payload, {"index": j, "count": count, "end": 0})
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 1)
            ctx.set(port.payload, {"index": 0, "count": 0, "end": 1})
            await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)

    async def monitor(ctx):
        # The queue's model: sweep operations arrive PIPELINE cycles after their issue
        # (none is dropped here) and leave at random; ``used`` as the sequencer counts it.
        flight, queued, quiet = [], 0, 0
        total = len(expected(plan, steps))
        while len(issued) < total:
            valid = ctx.get(dut.ops.valid)
            op = ctx.get(dut.ops.payload)
            pop = queued > 0 and rng.random() >= pop_busy
            ctx.set(dut.popped, pop)
            await ctx.tick()
            if quiet and valid:
                idle_after_end.append(len(issued))
            quiet = max(0, quiet - 1)
            if valid:
                issued.append((op.kind, op.addr, op.waddr if op.kind == ACC else 0,
                               op.count if op.kind == ACC else 0,
                               op.last_step if op.kind == SWEEP else 0,
                               op.end if op.kind == SWEEP else 0))
                if op.kind == SWEEP:
                    flight.append(PIPELINE)
                    if op.end:
                        quiet = 2
            queued -= pop
            flight = [d - 1 for d in flight]
            queued += sum(1 for d in flight if d == 0)
            flight = [d for d in flight if d > 0]
            if queued + len(flight) > queue_depth + 3:  # RegisteredFIFO: depth + 3
                queue_over.append((len(issued), queued, len(flight)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(events, background=True)
    sim.add_testbench(monitor)
    sim.run()
    assert issued == expected(plan, steps)
    assert not idle_after_end, "an operation issued within two cycles of a sweep's end"
    assert not queue_over, "the sweep overran the output queue"
