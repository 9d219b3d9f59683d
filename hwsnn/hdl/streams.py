"""Stream helpers for amaranth.sim testbenches (one shared module, not copied)."""

from __future__ import annotations

import random


async def idle(ctx, rng: random.Random | None, busy: float):
    """Wait a random number of cycles (back-pressure / starvation), or none."""
    if rng is not None and busy > 0:
        while rng.random() < busy:
            await ctx.tick()


async def stream_put(ctx, stream, payload, rng=None, busy=0.0):
    await idle(ctx, rng, busy)
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, rng=None, busy=0.0):
    await idle(ctx, rng, busy)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def run_until_done(sim, done, max_cycles: int, period: float = 1e-6, chunk: int = 2000):
    """Run ``sim`` in chunks until ``done()`` or ``max_cycles`` clock periods have passed;
    returns whether ``done()`` became true (a hung design stops at the limit)."""
    elapsed = 0
    while not done() and elapsed < max_cycles:
        step = min(chunk, max_cycles - elapsed)
        elapsed += step
        sim.run_until(elapsed * period)
    return done()
