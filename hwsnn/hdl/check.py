"""Check one layer engine against the golden model in amaranth.sim.

Producers drive the engine's inputs with exactly what its sources emit in a recorded
golden run (the image's codes, or the source populations' events per step), a consumer
collects its outputs, each with optional random stalls; the result says whether every
output event of every step (or every readout value and argmax) matched, and how many
cycles the engine took against the golden model's ideal count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from amaranth.sim import Simulator

from ..snn import golden
from ..snn.qnet import QNet
from .engine import LayerEngine
from .streams import run_until_done, stream_get, stream_put


@dataclass
class EngineCheck:
    population: str
    lanes: int
    samples: int
    mismatches: list[str] = field(default_factory=list)
    cycles: int = 0
    ideal_cycles: int = 0
    finished: bool = True

    @property
    def ok(self) -> bool:
        return self.finished and not self.mismatches

    @property
    def cycle_ratio(self) -> float:
        return self.cycles / max(1, self.ideal_cycles)


def _payload(coords, count, spatial):
    if spatial:
        c, y, x = coords
        return {"c": c, "y": y, "x": x, "count": count, "end": 0}
    return {"index": coords[0], "count": count, "end": 0}


def check_engine(net: QNet, name: str, codes: torch.Tensor, *, lanes: int = 1,
                 busy: float = 0.0, seed: int = 0, max_cycles: int | None = None,
                 engine: LayerEngine | None = None, input_lanes: int = 0) -> EngineCheck:
    """Simulate the engine of population ``name`` on ``codes`` [B, *input] (0..255)
    (``input_lanes``: its multiply-accumulate input stage, when it has one)."""
    if engine is not None:
        input_lanes = engine.plan.mac_lanes
    result = golden.run(net, codes, lanes=lanes, record=True, input_lanes=input_lanes)
    inputs, outputs = golden.population_io(net, name, result, codes)
    eng = engine or LayerEngine(net, name, lanes=lanes, input_lanes=input_lanes)
    plan = eng.plan
    pop = plan.pop
    batch = codes.shape[0]
    rng = random.Random(seed)
    report = EngineCheck(name, lanes, batch)
    report.ideal_cycles = int(result.cycles[name].sum())
    cycles = [0]
    first_input = [None]
    done = [False]

    sim = Simulator(eng)
    sim.add_clock(1e-6)

    async def counter(ctx):
        while True:
            await ctx.tick()
            cycles[0] += 1

    sim.add_testbench(counter, background=True)

    if plan.input_projection is not None:
        async def pixels(ctx):
            for b in range(batch):
                for v in codes[b].flatten().tolist():
                    await stream_put(ctx, eng.pixels, int(v), rng, busy)
                    if first_input[0] is None:
                        first_input[0] = cycles[0]
        sim.add_testbench(pixels)

    for k, pp in enumerate(plan.event_projections):
        port = eng.event_inputs[k]
        src = inputs[pp.proj.source]
        spatial = len(pp.src_shape) == 3

        async def producer(ctx, port=port, src=src, spatial=spatial):
            for b in range(batch):
                for t in range(src.shape[1]):
                    for coords, count in golden.step_events(src[b, t]):
                        await stream_put(ctx, port, _payload(coords, count, spatial), rng, busy)
                        if first_input[0] is None:
                            first_input[0] = cycles[0]
                    await stream_put(ctx, port, {"end": 1}, rng, busy)
                    if first_input[0] is None:
                        first_input[0] = cycles[0]
        sim.add_testbench(producer)

    async def consumer(ctx):
        for b in range(batch):
            if pop.kind == "readout":
                want = outputs[b].tolist()
                got, arg = [], None
                for i in range(pop.size):
                    beat = await stream_get(ctx, eng.o, rng, busy)
                    got.append(int(beat.value))
                    if int(beat.index) != i or bool(beat.last) != (i == pop.size - 1):
                        report.mismatches.append(f"sample {b}: beat {i} has index "
                                                 f"{int(beat.index)}, last {int(beat.last)}")
                    arg = int(beat.argmax)
                if got != want:
                    report.mismatches.append(f"sample {b}: readout {got}, golden {want}")
                if arg != int(result.predictions[b]):
                    report.mismatches.append(f"sample {b}: argmax {arg}, golden "
                                             f"{int(result.predictions[b])}")
                continue
            for t in range(outputs.shape[1]):
                got = {}
                while True:
                    beat = await stream_get(ctx, eng.o, rng, busy)
                    if beat.end:
                        break
                    if len(pop.shape) == 3:
                        key = (int(beat.c), int(beat.y), int(beat.x))
                    else:
                        key = (int(beat.index),)
                    if key in got:
                        report.mismatches.append(f"sample {b} step {t}: neuron {key} twice")
                    got[key] = int(beat.count)
                want = dict(golden.step_events(outputs[b, t]))
                if got != want:
                    diff = sorted(set(got.items()) ^ set(want.items()))[:4]
                    report.mismatches.append(
                        f"sample {b} step {t}: {len(got)} events, golden {len(want)}; "
                        f"first differences (neuron, count): {diff}")
        report.cycles = cycles[0] - (first_input[0] or 0)
        done[0] = True

    sim.add_testbench(consumer)
    limit = max_cycles or int((report.ideal_cycles * 4 + 2000 * batch) / (1 - busy) ** 2)
    run_until_done(sim, lambda: done[0], limit)
    report.finished = done[0]
    if not done[0]:
        report.mismatches.append(f"the engine did not finish within {limit} cycles")
    return report
