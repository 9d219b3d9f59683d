"""The comparison of a simulation record with the golden model, without a simulator: a
record is made from the golden model's own events, then corrupted in known places."""

import random

import pytest
import torch
from hdl.random_nets import random_qnet

from hwsnn.hdl.network import Network
from hwsnn.hdl.verilog import describe
from hwsnn.sim.compare import compare, decode, encode, tap_expectations
from hwsnn.sim.tap_watch import TapWatch
from hwsnn.snn import golden


def _encode(values: dict, fields: list[dict]) -> int:
    raw = 0
    for f in fields:
        v = values.get(f["name"], 0)
        raw |= (v & ((1 << f["width"]) - 1)) << f["lsb"]
    return raw


def _record(net, desc, res):
    """What a correct design would show: every event in C order, an end marker per step,
    then the readout; the clock advances by one per beat, population after population
    (earlier populations earlier)."""
    ports = {p["name"]: p for p in desc["ports"]}
    cycle = 0
    taps = {}
    n = res.readout.shape[0]
    for tap in desc["taps"]:
        fields = ports[f"{tap['port']}__payload"]["fields"]
        log = []
        out = res.outputs[tap["population"]]
        for s in range(n):
            for t in range(out.shape[1]):
                for coords, count in golden.step_events(out[s, t]):
                    keys = ("index",) if len(coords) == 1 else ("c", "y", "x")
                    log.append([cycle, _encode(dict(zip(keys, coords, strict=True),
                                                    count=count), fields)])
                    cycle += 1
                log.append([cycle, _encode({"end": 1}, fields)])
                cycle += 1
        taps[tap["port"]] = log
    o_fields = ports["o__payload"]["fields"]
    readout = []
    for s in range(n):
        for i, v in enumerate(res.readout[s].tolist()):
            last = i == len(res.readout[s]) - 1
            readout.append([cycle, _encode({"index": i, "value": v, "last": int(last),
                                            "argmax": int(res.predictions[s]) if last else 0},
                                           o_fields)])
            cycle += 1
    return {"finished": True, "cycles": cycle, "readout": readout, "taps": taps}


def _setup(seed=3):
    rng = random.Random(seed)
    net = random_qnet(rng, "gn")
    codes = torch.randint(0, 256, (4, *net.input.shape),
                          generator=torch.Generator().manual_seed(seed))
    res = golden.run(net, codes, record=True)
    desc = describe(net, Network(net, taps=True), "top")
    return net, desc, res


def _check(record, desc, res):
    return compare(record, desc, res.readout.tolist(), res.predictions.tolist(), res.outputs)


def test_a_correct_record_is_exact():
    net, desc, res = _setup()
    cmp = _check(_record(net, desc, res), desc, res)
    assert cmp.exact and cmp.mismatches == 0
    assert cmp.checked_taps == [p.name for p in net.populations if p.kind != "readout"]


def test_the_earliest_divergence_is_named():
    for seed in range(6):
        net, desc, res = _setup(seed)
        hidden = desc["taps"]
        record = _record(net, desc, res)
        ports = {p["name"]: p for p in desc["ports"]}
        # Change the count of the first event of sample 1 in the first population, and
        # the value of a readout beat later on.
        tap = hidden[0]
        fields = ports[f"{tap['port']}__payload"]["fields"]
        log = record["taps"][tap["port"]]
        steps = tap["steps_per_sample"]
        ends = [k for k, (_, raw) in enumerate(log) if decode(raw, fields)["end"]]
        start = ends[steps - 1] + 1  # first beat of sample 1
        ev = decode(log[start][1], fields)
        if ev["end"]:
            continue  # sample 1 starts with an empty step: nothing to corrupt here
        maxc = 2 ** ports[f"{tap['port']}__payload"]["fields"][-2]["width"] - 1
        wrong = ev["count"] % maxc + 1 if maxc > 1 else ev["count"]
        if wrong == ev["count"]:
            continue
        log[start][1] = _encode({**ev, "count": wrong}, fields)
        cycle = log[start][0]
        cmp = _check(record, desc, res)
        first = cmp.first
        coords = [ev["index"]] if "index" in ev else [ev["c"], ev["y"], ev["x"]]
        assert (first.population, first.sample, first.step, first.neuron) == \
            (tap["population"], 1, 0, coords)
        assert (first.expected, first.observed, first.cycle) == (ev["count"], wrong, cycle)
        assert cmp.mismatches == 1 and cmp.event_mismatches == 1
        return
    raise AssertionError("no seed gave a network to corrupt")


def test_missing_events_and_readout_values():
    net, desc, res = _setup(1)
    record = _record(net, desc, res)
    tap = desc["taps"][-1]
    ports = {p["name"]: p for p in desc["ports"]}
    fields = ports[f"{tap['port']}__payload"]["fields"]
    log = record["taps"][tap["port"]]
    # Drop the last end marker: the last step never ends.
    assert decode(log[-1][1], fields)["end"]
    log.pop()
    # A wrong readout value of the last sample.
    o_fields = ports["o__payload"]["fields"]
    beat = decode(record["readout"][-1][1], o_fields)
    record["readout"][-1][1] = _encode({**beat, "value": beat["value"] + 1}, o_fields)
    cmp = _check(record, desc, res)
    assert not cmp.exact
    kinds = {(d.population, d.sample) for d in cmp.divergences}
    assert ("out", 3) in kinds
    readout = next(d for d in cmp.divergences if d.readout)
    assert readout.population == net.output.name == "out"
    assert (readout.expected, readout.observed) == (beat["value"], beat["value"] + 1)
    if golden.step_events(res.outputs[tap["population"]][3, -1]):
        assert (tap["population"], 3) in kinds


def test_a_design_that_stops_is_reported():
    net, desc, res = _setup(2)
    record = _record(net, desc, res)
    classes = res.readout.shape[1]
    record["readout"] = record["readout"][:classes + 1]
    record["finished"] = False
    cmp = _check(record, desc, res)
    assert not cmp.exact
    first = [d for d in cmp.divergences if d.readout][0]
    assert first.sample == 1 and f"1 of {classes}" in first.what
    assert first.describe().startswith("population out (readout), sample 1")


def test_an_output_seen_as_x_names_its_population():
    """The bench stops at an output that is X or Z (as Yosys's always @* idiom left them
    under SystemVerilog rules): the report names the port and its population."""
    net, desc, res = _setup(4)
    for port, population, readout in [(f"{desc['taps'][0]['port']}__valid",
                                       desc["taps"][0]["population"], False),
                                      ("o__valid", net.output.name, True)]:
        record = _record(net, desc, res)
        log = record["taps"][desc["taps"][0]["port"]]
        cut = log[len(log) // 2][0]
        for name, events in record["taps"].items():
            record["taps"][name] = [e for e in events if e[0] < cut]
        record.update(readout=[], finished=False,
                      unknown={"port": port, "value": "x", "cycle": cut})
        cmp = _check(record, desc, res)
        first = cmp.first
        assert (first.population, first.readout, first.cycle) == (population, readout, cut)
        assert f"its output {port} is x, not 0 or 1" in first.describe()
        assert not cmp.exact and cmp.mismatches >= 1


def test_encode_is_decodes_inverse():
    _, desc, _ = _setup()
    for port in desc["ports"]:
        if "fields" in port:
            values = {f["name"]: (1 << f["width"]) - 1 if not f["signed"] else -1
                      for f in port["fields"]}
            assert decode(encode(values, port["fields"]), port["fields"]) == values


def _stop_edge(record, desc, res):
    """The edge at which a bench watching the taps stops (events fed in edge order)."""
    watch = TapWatch(tap_expectations(desc, res.outputs, res.readout.shape[0]))
    for cycle, port, raw in sorted((c, port, raw) for port, log in record["taps"].items()
                                   for c, raw in log):
        if watch.event(port, raw, cycle):
            return watch.diverged[1]
    return None


@pytest.mark.parametrize("seed", range(8))
def test_a_run_stopped_at_the_first_divergence_reports_it(seed):
    """A bench that stops at the first wrong, missing, extra or repeated event (as
    ``--stop-at-divergence`` does) reports the same first divergence as the whole run."""
    net, desc, res = _setup(seed)
    record = _record(net, desc, res)
    assert _stop_edge(record, desc, res) is None  # a correct run goes to the end
    rng = random.Random(seed)
    ports = {p["name"]: p for p in desc["ports"]}
    tap = rng.choice(desc["taps"])
    fields = ports[f"{tap['port']}__payload"]["fields"]
    log = record["taps"][tap["port"]]
    events = [k for k, (_, raw) in enumerate(log) if not decode(raw, fields)["end"]]
    k = rng.choice(events)
    ev = decode(log[k][1], fields)
    kind = ["count", "drop", "repeat"][seed % 3]
    if kind == "count":
        top = (1 << next(f["width"] for f in fields if f["name"] == "count")) - 1
        log[k][1] = encode({**ev, "count": ev["count"] % top + 1 if top > 1 else 0}, fields)
    elif kind == "drop":
        del log[k]
    else:  # the same event once more, one edge later (the edges after it move on by one)
        for entries in (*record["taps"].values(), record["readout"]):
            for e in entries:
                e[0] += e[0] > log[k][0]
        log.insert(k + 1, [log[k][0] + 1, log[k][1]])
    whole = _check(record, desc, res)
    assert not whole.exact
    stop = _stop_edge(record, desc, res)
    assert stop == whole.first.cycle, (kind, whole.first)
    cut = {"finished": False, "cycles": stop + 1, "stopped_at": stop,
           "readout": [b for b in record["readout"] if b[0] <= stop],
           "taps": {p: [e for e in log if e[0] <= stop] for p, log in record["taps"].items()}}
    first = _check(cut, desc, res).first
    assert first == whole.first, (kind, first, whole.first)
