"""Float SNN simulator with the papers' semantics (float weights, float thresholds).

Rate methods (``if``, ``if-shift``, ``gn``, ``cos``) run T synchronous steps; in every step
each population, in topological order, integrates its input and fires. The input image is
direct-encoded (the same analog input every step). A spike count ``s`` of a population with
unit ``u`` (θ/τ) carries the value ``s·u``. The readout integrates and never fires; its
logits are ``V(T)/T``.

``ilif`` runs the temporal-separation semantics in value form: each population integrates
its whole input, adds u/2 and emits ``clip(floor(V/u), 0, 2^T − 1)`` levels of ``u``; the
readout's logits are its accumulated ``V``.

``cos`` first pre-simulates ρ steps, shifts every neuron's V0 by the offset-spike rule of
Hao et al. (ICLR 2023), then runs T steps from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .convert import SNN, SNNPopulation

COS_EPSILON = 1e-3  # ε of the COS shift, as a fraction of the unit u


@dataclass
class FloatResult:
    logits: torch.Tensor  # [B, classes] float64
    predictions: torch.Tensor  # [B]
    spikes: dict[str, torch.Tensor]  # population → [B, steps] total spike count per step
    rates: dict[str, torch.Tensor]  # population → [B, *shape] mean output value


def run(snn: SNN, x: torch.Tensor) -> FloatResult:
    """Simulate ``snn`` on a batch of raw model inputs ``x``."""
    codes = snn.input.to_codes(x)
    if snn.method == "ilif":
        return _run_ilif(snn, codes)
    v0 = None
    if snn.method == "cos":
        v0 = _cos_initial_potentials(snn, codes)
    return _run_rate(snn, codes, snn.timesteps, v0)


def _current(snn: SNN, pop: SNNPopulation, values: dict[str, torch.Tensor]) -> torch.Tensor:
    z = pop.bias.to(torch.float64).unsqueeze(0)
    for proj in pop.projections:
        z = z + proj.apply(values[proj.source], pop.shape)
    return z


def _initial(snn: SNN, pop: SNNPopulation, batch: int) -> torch.Tensor:
    if pop.is_readout or snn.method == "if-shift":
        v = 0.0
    else:
        v = snn.unit(pop) / 2
    return torch.full((batch, *pop.shape), v, dtype=torch.float64)


def _run_rate(snn: SNN, codes: torch.Tensor, steps: int, v0=None, trace=None) -> FloatResult:
    b = codes.shape[0]
    v = {p.name: (v0[p.name].clone() if v0 and p.name in v0 else _initial(snn, p, b))
         for p in snn.populations}
    total = {p.name: torch.zeros(b, *p.shape, dtype=torch.float64) for p in snn.populations}
    spikes = {p.name: torch.zeros(b, steps, dtype=torch.float64)
              for p in snn.populations if not p.is_readout}
    for t in range(steps):
        values = {"input": codes}
        for pop in snn.populations:
            i = _current(snn, pop, values)
            if snn.method == "if-shift" and not pop.is_readout:
                i = i + pop.theta / (2 * snn.timesteps)
            v[pop.name] = v[pop.name] + i
            if pop.is_readout:
                continue
            u = snn.unit(pop)
            s = torch.floor(v[pop.name] / u).clamp(0, pop.group_size)
            v[pop.name] = v[pop.name] - s * u
            if trace is not None:
                trace(pop, t, s, v[pop.name])
            values[pop.name] = s * u
            total[pop.name] += s * u
            spikes[pop.name][:, t] = s.flatten(1).sum(1)
    out = snn.output
    logits = v[out.name] / steps
    rates = {n: total[n] / steps for n in spikes}
    return FloatResult(logits, logits.argmax(1), spikes, rates)


def _cos_initial_potentials(snn: SNN, codes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pre-simulate ρ steps and apply the offset-spike shift to every neuron's V0."""
    b = codes.shape[0]
    state = {}
    for p in snn.populations:
        if p.is_readout:
            continue
        state[p.name] = {
            "n": torch.zeros(b, *p.shape, dtype=torch.float64),
            "min_fire": torch.full((b, *p.shape), torch.inf, dtype=torch.float64),
            "max_quiet": torch.full((b, *p.shape), -torch.inf, dtype=torch.float64),
            "v": None,
        }

    def trace(pop, t, s, v):
        st = state[pop.name]
        fired = s > 0
        st["n"] += s
        st["min_fire"] = torch.where(fired, torch.minimum(st["min_fire"], v), st["min_fire"])
        st["max_quiet"] = torch.where(~fired, torch.maximum(st["max_quiet"], v),
                                      st["max_quiet"])
        st["v"] = v

    _run_rate(snn, codes, snn.cos_steps, trace=trace)
    v0 = {}
    for pop in snn.populations:
        if pop.is_readout:
            continue
        st = state[pop.name]
        theta = snn.unit(pop)
        eps = COS_EPSILON * theta
        base = torch.full_like(st["v"], theta / 2)
        down = base - torch.clamp(st["min_fire"] + eps, min=theta)
        quiet = torch.where(torch.isinf(st["max_quiet"]), torch.full_like(base, theta),
                            theta + eps - st["max_quiet"])
        up = base + torch.clamp(quiet, min=theta)
        v0[pop.name] = torch.where((st["v"] < 0) & (st["n"] > 0), down,
                                   torch.where(st["v"] >= theta, up, base))
    return v0


def _run_ilif(snn: SNN, codes: torch.Tensor) -> FloatResult:
    levels = snn.ilif_levels
    values = {"input": codes}
    spikes, rates = {}, {}
    for pop in snn.populations:
        v = _current(snn, pop, values)
        if pop.is_readout:
            logits = v
            break
        u = snn.unit(pop)
        a = torch.floor((v + u / 2) / u).clamp(0, levels)
        values[pop.name] = a * u
        rates[pop.name] = a * u
        bits = [(a.to(torch.int64) >> (snn.timesteps - 1 - t)) & 1
                for t in range(snn.timesteps)]
        spikes[pop.name] = torch.stack([q.flatten(1).sum(1) for q in bits], 1).double()
    return FloatResult(logits, logits.argmax(1), spikes, rates)
