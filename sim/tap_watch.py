"""Watch the debug taps during a run for the first event that differs from the golden
model's, so that a bench can stop there (``hwsnn sim --stop-at-divergence``).

It imports nothing from hwsnn (the benches import it inside the simulator). ``expected``
comes from ``hwsnn.sim.run``: for each tap port, the bits that carry an event (``mask``),
the end-of-step bit (``end``) and, for every step of every sample in turn, the event
payloads the golden model gives (their values under ``mask``). It decides as
``compare`` does: a step differs when its events as a set differ, when a neuron has two
events, or when events come after the last expected step.
"""


class TapWatch:
    def __init__(self, expected: dict):
        self.taps = {port: (int(e["mask"]), 1 << int(e["end"]),
                            [set(step) for step in e["steps"]])
                     for port, e in expected.items()}
        self.step = {port: 0 for port in expected}
        self.seen = {port: set() for port in expected}
        self.diverged = None  # (port, edge) of the first difference

    def event(self, port: str, raw: int, edge: int) -> bool:
        """Take an event of ``port`` at rising edge ``edge``; True once anything differs."""
        if self.diverged is not None or port not in self.taps:
            return self.diverged is not None
        mask, end, steps = self.taps[port]
        g = self.step[port]
        if raw & end:
            if g >= len(steps) or self.seen[port] != steps[g]:
                self.diverged = (port, edge)
            self.step[port] = g + 1
            self.seen[port] = set()
        else:
            value = raw & mask
            if g >= len(steps) or value not in steps[g] or value in self.seen[port]:
                self.diverged = (port, edge)
            self.seen[port].add(value)
        return self.diverged is not None
