"""What a simulated design did, against the golden model: every readout value and class,
every population's events per step (with debug taps), and the first divergence.

A divergence is located by the clock edge at which the design showed it: the edge of a
wrong or extra event, or of the end-of-step marker of a step that missed one. Causes come
before their effects in time (a population's step is complete before its readers can
finish theirs), so the earliest divergence names the population where things first went
wrong. The readout values and classes are the output population's (named as in the
QNet, e.g. ``fc3``); a design whose outputs the bench saw as X or Z diverges there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..snn import golden

QUANTITIES = ("spike count", "readout value", "class (argmax)")


@dataclass
class Divergence:
    population: str  # a population name (the output population for readout values)
    sample: int
    step: int | None  # step within the sample (None for the readout values)
    neuron: list[int] | None  # coordinates (c, y, x) or (i,), or the readout index
    expected: int | None  # spike count / bit / readout value (None: nothing expected)
    observed: int | None  # (None: nothing observed)
    cycle: int  # rising clock edge, counted from the first after reset
    what: str = ""
    readout: bool = False  # the readout beats (values, classes), not the population's events

    def describe(self, period_ns: float | None = None, t0_ns: float | None = None) -> str:
        where = f"population {self.population}{' (readout)' if self.readout else ''}, " \
                f"sample {self.sample}"
        if self.step is not None:
            where += f", step {self.step}"
        if self.neuron is not None:
            label = "index" if self.readout else "neuron"
            where += f", {label} {tuple(self.neuron) if len(self.neuron) > 1 else self.neuron[0]}"
        exp = "nothing" if self.expected is None else self.expected
        obs = "nothing" if self.observed is None else self.observed
        notes = [n for n in self.what.split("; ") if n]
        quantity = notes.pop(0) + " " if notes and notes[0] in QUANTITIES else ""
        if self.expected is None and self.observed is None:
            text = f"{where} (clock edge {self.cycle}"
        else:
            text = f"{where}: {quantity}expected {exp}, observed {obs} (clock edge {self.cycle}"
        if period_ns is not None and t0_ns is not None:
            text += f", t = {t0_ns + self.cycle * period_ns:.0f} ns"
        text += ")"
        if notes:
            text += "; " + "; ".join(notes)
        return text


@dataclass
class Comparison:
    samples: int
    finished: bool
    readout_mismatches: int = 0  # samples whose readout values or class differ
    class_mismatches: int = 0
    event_mismatches: int = 0  # (population, sample, step) groups that differ
    divergences: list[Divergence] = field(default_factory=list)
    observed_classes: list[int] = field(default_factory=list)
    checked_taps: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        """Samples with any difference (readout, class or, with taps, any event)."""
        bad = {d.sample for d in self.divergences}
        return len(bad)

    @property
    def first(self) -> Divergence | None:
        # At the same edge (things missing at the end), a population before the readout.
        return min(self.divergences, key=lambda d: (d.cycle, d.sample, d.readout)) \
            if self.divergences else None

    @property
    def exact(self) -> bool:
        return self.finished and not self.divergences

    def to_json(self) -> dict:
        first = self.first
        return {"samples": self.samples, "finished": self.finished,
                "mismatches": self.mismatches, "readout_mismatches": self.readout_mismatches,
                "class_mismatches": self.class_mismatches,
                "event_mismatches": self.event_mismatches, "exact": self.exact,
                "checked_taps": self.checked_taps,
                "first_divergence": asdict(first) if first else None}


def field_value(raw: int, f: dict) -> int:
    v = (raw >> f["lsb"]) & ((1 << f["width"]) - 1)
    if f.get("signed") and v >> (f["width"] - 1):
        v -= 1 << f["width"]
    return v


def decode(raw: int, fields: list[dict]) -> dict[str, int]:
    return {f["name"]: field_value(raw, f) for f in fields}


def encode(values: dict[str, int], fields: list[dict]) -> int:
    """The payload with these field values (absent fields 0): ``decode``'s inverse."""
    raw = 0
    for f in fields:
        raw |= (values.get(f["name"], 0) & ((1 << f["width"]) - 1)) << f["lsb"]
    return raw


def tap_expectations(desc: dict, expected_events: dict, n: int) -> dict:
    """For ``tap_watch``: every tap's event payloads per step of the ``n`` samples, as
    the golden model gives them (``expected_events`` as for ``compare``)."""
    ports = {p["name"]: p for p in desc["ports"]}
    out = {}
    for tap in desc.get("taps", []):
        if tap["population"] not in expected_events:
            continue
        fields = ports[f"{tap['port']}__payload"]["fields"]
        end = next(f for f in fields if f["name"] == "end")
        counts = expected_events[tap["population"]]
        steps = []
        for s in range(n):
            for t in range(len(counts[s])):
                step = []
                for coords, count in golden.step_events(counts[s][t]):
                    keys = ("index",) if len(coords) == 1 else ("c", "y", "x")
                    step.append(encode(dict(zip(keys, coords, strict=True), count=count),
                                       fields))
                steps.append(step)
        out[tap["port"]] = {
            "mask": sum(((1 << f["width"]) - 1) << f["lsb"] for f in fields if f is not end),
            "end": end["lsb"], "steps": steps}
    return out


def _coords(ev: dict) -> tuple[int, ...]:
    if "index" in ev:
        return (ev["index"],)
    return (ev["c"], ev["y"], ev["x"])


def compare(record: dict, desc: dict, expected_readout, expected_classes,
            expected_events: dict | None) -> Comparison:
    """Compare a bench ``record`` against the golden model.

    ``desc`` is the design's port description (``hdl.verilog.describe``);
    ``expected_readout`` [B, classes] and ``expected_classes`` [B] are lists of ints;
    ``expected_events`` maps a population to its golden counts per step
    ``[B, steps, *shape]`` (``GoldenResult.outputs``), or is None to skip the taps.
    """
    ports = {p["name"]: p for p in desc["ports"]}
    n = len(expected_readout)
    classes = desc["readout"]["classes"]
    # (Descriptions written before the readout named its population: "readout".)
    output = desc["readout"].get("population", "readout")
    out = Comparison(samples=n, finished=bool(record["finished"]))
    o_fields = ports["o__payload"]["fields"]
    beats = record["readout"]

    def readout(s, neuron, expected, observed, cycle, what):
        out.divergences.append(Divergence(output, s, None, neuron, expected, observed, cycle,
                                          what, readout=True))

    stopped = record.get("stopped_at") is not None  # at the first divergence of a tap
    for s in range(n):
        got = beats[s * classes:(s + 1) * classes]
        if len(got) < classes:
            if stopped:
                break  # (the tap's divergence is the report)
            if record.get("unknown"):
                note = " (the bench stopped at an output that was X or Z)"
            elif record.get("hung"):
                note = " and then nothing at all (it hangs)"
            else:
                note = ""
            readout(s, None, None, None, record["cycles"],
                    f"the design gave {len(got)} of {classes} readout beats of this sample "
                    f"within {record['cycles']} cycles{note}")
            out.readout_mismatches += 1
            break
        decoded = [(cycle, decode(raw, o_fields)) for cycle, raw in got]
        bad = False
        for i, (cycle, beat) in enumerate(decoded):
            last = int(i == classes - 1)
            if beat["index"] != i or beat["last"] != last:
                readout(s, [i], i, beat["index"], cycle,
                        f"beat {i} carries index {beat['index']} and last {beat['last']}")
                bad = True
            elif beat["value"] != expected_readout[s][i]:
                readout(s, [i], int(expected_readout[s][i]), beat["value"], cycle,
                        "readout value")
                bad = True
        cls = decoded[-1][1]["argmax"]
        out.observed_classes.append(cls)
        if cls != int(expected_classes[s]):
            out.class_mismatches += 1
            readout(s, None, int(expected_classes[s]), cls, decoded[-1][0], "class (argmax)")
            bad = True
        out.readout_mismatches += bad
    unknown = record.get("unknown")
    if unknown:
        port = unknown["port"]
        owner = next((t["population"] for t in desc.get("taps", [])
                      if port.startswith(f"{t['port']}__")), None)
        if port.startswith("pixels__") and desc["made_from"].get("lanes"):
            owner = next(iter(desc["made_from"]["lanes"]))  # the first population's input
        out.divergences.append(Divergence(
            owner or output, min(len(beats) // classes, n - 1), None, None, None, None,
            unknown["cycle"],
            f"its output {port} is {unknown['value']}, not 0 or 1: the bench stopped there",
            readout=owner is None))
    if expected_events is not None:
        for tap in desc.get("taps", []):
            name = tap["population"]
            if tap["port"] not in record["taps"] or name not in expected_events:
                continue
            out.checked_taps.append(name)
            fields = ports[f"{tap['port']}__payload"]["fields"]
            _compare_tap(out, name, record["taps"][tap["port"]], fields,
                         expected_events[name], n, record["cycles"], stopped)
    return out


def _compare_tap(out: Comparison, name: str, log, fields, expected, n: int, end_cycle: int,
                 stopped: bool = False):
    steps = len(expected[0]) if n else 0
    # Split the observed events into steps at the end markers.
    groups: list[tuple[dict, dict, int]] = []  # (coords → count, coords → cycle, end cycle)
    counts: dict = {}
    cycles: dict = {}
    dup: list = []
    for cycle, raw in log:
        ev = decode(raw, fields)
        if ev["end"]:
            groups.append((counts, cycles, cycle))
            counts, cycles = {}, {}
            if len(groups) >= n * steps:
                break
            continue
        key = _coords(ev)
        if key in counts:
            dup.append((len(groups), key, cycle))
        counts[key] = ev["count"]
        cycles[key] = cycle
    for g in range(n * steps):
        s, t = divmod(g, steps)
        want = dict(golden.step_events(expected[s][t]))
        if g < len(groups):
            got, when, end = groups[g]
        else:
            got, when, end = counts, cycles, end_cycle
            if g > len(groups):
                got, when = {}, {}
        ended = g < len(groups)
        twice = [d for d in dup if d[0] == g]
        if got == want and not twice and ended:
            continue
        diffs = set(got) ^ set(want) | {k for k in got.keys() & want.keys()
                                        if got[k] != want[k]}
        if stopped and not ended:
            # Cut off by the bench: what has not come yet is no divergence.
            diffs -= set(want) - set(got)
            if not diffs and not twice:
                continue
        out.event_mismatches += 1
        if diffs:
            # The earliest (a missing event shows at the step's end marker).
            key = min(diffs, key=lambda k: (when.get(k, end), k))
            what = "spike count" + ("" if ended or stopped else "; the step never ended")
            out.divergences.append(Divergence(name, s, t, list(key), want.get(key, 0),
                                              got.get(key, 0), when.get(key, end), what))
        elif twice:
            _, key, cycle = twice[0]
            out.divergences.append(Divergence(name, s, t, list(key), want.get(key, 0),
                                              got.get(key, 0), cycle,
                                              "the neuron has two events in one step"))
        else:
            out.divergences.append(Divergence(name, s, t, None, None, None, end,
                                              "the step never ended (no end-of-step marker)"))
