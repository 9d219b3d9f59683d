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
