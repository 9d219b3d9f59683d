"""The SDRAM controller (hwsnn.hdl.sdram) against the chip's timing-checking model
(sim/sdram_model.v, hwsnn.sim.sdram): random traffic on three ports comes back as written
with no violated constraint; breaking any one of the controller's cycle counts is caught
by the model, naming the rule; a stream runs at nearly a word a cycle."""

import dataclasses

import pytest

from hwsnn.errors import ParameterError
from hwsnn.hdl.sdram import ULX3S_SDRAM, SDRAMController, SDRAMTiming
from hwsnn.sim.sdram import simulate_controller

# A short power-up wait (the model is told the same), the rest as on the board.
CHIP = dataclasses.replace(ULX3S_SDRAM, t_init=2000.0)


def test_timing_in_cycles():
    """Datasheet nanoseconds → cycles, each rounded up (worked by hand at 60 and 100 MHz,
    16.67 and 10 ns)."""
    t = ULX3S_SDRAM.timing(60e6)
    assert (t.cl, t.rcd, t.rp, t.rc, t.ras, t.rrd, t.wr, t.rfc, t.mrd) == \
        (3, 2, 2, 4, 3, 1, 1, 5, 2)  # 20/16.7, 20, 66, 45, 15, 15, 70 ns; tMRD 2 clocks
    assert t.refi == 468 and t.init == 12000  # 7812.5 ns, 200 µs
    assert t.read_latency == 5 and t.turnaround == 5
    t = ULX3S_SDRAM.timing(100e6, cas_latency=2)
    assert (t.cl, t.rcd, t.rp, t.rc, t.ras, t.wr, t.rfc) == (2, 2, 2, 7, 5, 2, 7)
    assert t.turnaround == 4


@pytest.mark.parametrize("clock,cl", [(200e6, None), (120e6, 2), (50e6, 4)])
def test_timing_refused(clock, cl):
    with pytest.raises(ParameterError, match="MHz"):
        ULX3S_SDRAM.timing(clock, cl)


def test_random_traffic(tmp_path):
    """Three ports, each reading and writing (bytes masked at random) its own rows of
    every bank, so that they keep closing each other's rows, with random stalls of their
    streams: every read returns the port's last write, and the chip's model sees no
    violated constraint (refreshes included)."""
    ctrl = SDRAMController(chip=CHIP, clock_hz=60e6, ports=3)
    r = simulate_controller(ctrl, tmp_path, ops=700, stall=0.25, seed=1)
    assert r["violations"] == 0
    assert r["done"], r
    assert r["mismatches"] == []
    assert min(r["reads_returned"]) > 200
    assert r["refreshes"] >= r["cycles"] // ctrl.timing.refi - 1
    assert r["activates"] > 100  # (the ports' rows do close each other's)


def _broken(field: str, change: int, clock: float = 60e6) -> SDRAMTiming:
    t = CHIP.timing(clock)
    return dataclasses.replace(t, **{field: getattr(t, field) + change})


# (a cycle count one short, or refreshes 20 times too rare) → the rule the model names
FAULTS = [
    ("rcd", -1, 60e6, "tRCD"),
    ("rp", -1, 60e6, "tRP"),
    ("rfc", -1, 60e6, "tRFC"),
    ("ras", -1, 60e6, "tRAS"),
    ("wr", -1, 100e6, "tWR"),  # (2 cycles at 100 MHz; 1 at 60)
    ("turnaround", -2, 60e6, "contention"),
]


@pytest.mark.parametrize("field,change,clock,rule", FAULTS)
def test_broken_timing_caught(tmp_path, field, change, clock, rule):
    ctrl = SDRAMController(chip=CHIP, clock_hz=clock, ports=3,
                           timing=_broken(field, change, clock))
    r = simulate_controller(ctrl, tmp_path, ops=400, stall=0.1, seed=2)
    assert r["violations"] > 0
    log = (tmp_path / "test.log").read_text()
    first = next(line for line in log.splitlines() if "SDRAM model:" in line)
    assert rule in first, first


def test_refresh_too_rare_caught(tmp_path):
    """A refresh every 20 tREFI owes more than the 8 a chip may postpone."""
    timing = dataclasses.replace(CHIP.timing(60e6), refi=CHIP.timing(60e6).refi * 20)
    ctrl = SDRAMController(chip=CHIP, clock_hz=60e6, ports=1, timing=timing)
    r = simulate_controller(ctrl, tmp_path, traffic="stream", ops=6000,
                            simulator="verilator")
    assert r["violations"] > 0
    log = (tmp_path / "test.log").read_text()
    assert "refresh" in next(line for line in log.splitlines() if "SDRAM model:" in line)


def test_stream_at_a_word_a_cycle(tmp_path):
    """20,000 consecutive words written and read back on one port, never stalled: the
    controller issues a command every cycle but at row changes and refreshes (98 % of
    a word a cycle at 60 MHz: 117 MB/s; `benchmarks/sdram_bandwidth.py` measures it)."""
    ctrl = SDRAMController(chip=CHIP, clock_hz=60e6, ports=1)
    r = simulate_controller(ctrl, tmp_path, traffic="stream", ops=20000,
                            simulator="verilator", max_cycles=100_000)
    assert r["violations"] == 0 and r["done"] and r["mismatches"] == []
    for phase in ("write_cycles", "read_cycles"):
        assert r["words"] / r[phase] > 0.95, r
