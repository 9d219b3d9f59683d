"""Synthesis and place-and-route reports for a sample spiking core: a bank of integrate-and-fire
neurons (signed input currents, soft reset), on iCE40 and ECP5 with the YoWASP tools.

    .venv/bin/python benchmarks/synth_example.py [--neurons 16] [--target 24] [--json]

Resources come from synthesizing the bare core; Fmax from placing and routing it inside
hwsnn.flow.synth.registered_wrapper, since its ports outnumber the pins of the packages.
"""

from __future__ import annotations

import argparse
import json
import time

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwsnn.flow.synth import place_and_route, registered_wrapper, synthesize


class NeuronBank(wiring.Component):
    """``n`` IF neurons: each cycle with ``valid`` high, v += current; a neuron whose v
    reaches ``threshold`` spikes and subtracts it (soft reset)."""

    def __init__(self, n=16, current_bits=8, membrane_bits=16, threshold=100):
        self.n, self.membrane_bits, self.threshold = n, membrane_bits, threshold
        super().__init__({"valid": In(1), "current": In(signed(current_bits)).array(n),
                          "spikes": Out(n)})

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            v = Signal(signed(self.membrane_bits), name=f"v{i}")
            total = v + self.current[i]
            fire = total >= self.threshold
            with m.If(self.valid):
                m.d.sync += [v.eq(total - fire * self.threshold), self.spikes[i].eq(fire)]
        return m


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=16)
    parser.add_argument("--target", type=float, default=24.0, help="target clock, MHz")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    results = {"neurons": args.neurons, "synth": {}, "pnr": {}}
    for family in ("ice40", "ecp5"):
        report, seconds = timed(synthesize, NeuronBank(args.neurons), family)
        results["synth"][family] = {**report.as_dict(), "seconds": round(seconds, 2)}
    for device in ("up5k", "25k"):
        report, seconds = timed(place_and_route, registered_wrapper(NeuronBank(args.neurons)),
                                device, clock_mhz_target=args.target)
        results["pnr"][device] = {**report.as_dict(), "seconds": round(seconds, 2)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"NeuronBank({args.neurons}): synthesis of the bare core")
    for family, r in results["synth"].items():
        print(f"  {family:6} LUT4 {r['luts']:5}  FF {r['flip_flops']:5}  carry {r['carry_cells']:4}"
              f"  RAM {r['ram_blocks']:3}  DSP {r['dsps']:3}  cells {r['total_cells']:5}"
              f"  depth {r['logic_depth']:3}  ({r['seconds']} s)")
    print(f"place and route inside registered_wrapper, target {args.target:g} MHz, seed 1")
    for device, r in results["pnr"].items():
        used = ", ".join(f"{bel} {u['used']}/{u['available']}"
                         for bel, u in r["utilisation"].items() if u["used"])
        verdict = "meets" if r["meets_target"] else "misses"
        print(f"  {device:5} ({r['package']}): Fmax {r['fmax_mhz']:.1f} MHz ({verdict} target)"
              f"  {used}  ({r['seconds']} s)")


if __name__ == "__main__":
    main()
