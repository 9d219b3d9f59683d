"""Stream testbench steps for the host link's component tests, with plain awaits only: a
background testbench left suspended in one must not hold an async generator (``until``),
which cannot be closed cleanly when the simulation is dropped."""

from __future__ import annotations

import random

from hwsnn.hdl.streams import idle


async def wait(ctx, cycles: int) -> None:
    for _ in range(cycles):
        await ctx.tick()


async def put(ctx, stream, payload, rng: random.Random | None = None, busy: float = 0.0,
              clock=None):
    """Offer ``payload`` on ``stream`` (after a random gap) until it is taken; returns the
    value of ``clock`` (a cycle counter) at the transfer, if given."""
    await idle(ctx, rng, busy)
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    watched = [stream.ready] + ([clock] if clock is not None else [])
    while True:
        _, _, ready, *now = await ctx.tick().sample(*watched)
        if ready:
            break
    ctx.set(stream.valid, 0)
    return now[0] if now else None


async def take(ctx, stream, rng: random.Random | None = None, busy: float = 0.0,
               clock=None):
    """Take a beat from ``stream`` (ready after a random gap); returns its payload, or
    ``(payload, clock value at the transfer)`` if ``clock`` is given."""
    await idle(ctx, rng, busy)
    ctx.set(stream.ready, 1)
    watched = [stream.valid, stream.payload] + ([clock] if clock is not None else [])
    while True:
        _, _, valid, payload, *now = await ctx.tick().sample(*watched)
        if valid:
            break
    ctx.set(stream.ready, 0)
    return (payload, now[0]) if now else payload
