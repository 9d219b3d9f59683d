"""Simulation regressions in shards on Dask workers (hwsnn.sim.regress): the same answer on
one worker, two, or an existing cluster that loses a worker halfway; a worker without the
simulator is named, not waited on."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hwsnn.hdl import verilog
from hwsnn.sim.regress import regress
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.tools.cluster import ClusterError

SAMPLES, SHARD = 36, 6


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, bundled_graph):
    d = tmp_path_factory.mktemp("regress-mlp")
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    net.save(d)
    verilog.write(d, net, lanes=16)
    return d, net


@pytest.fixture(scope="module")
def serial(mlp):
    """The regression on one worker (here, in this process)."""
    return regress(mlp[0], samples=SAMPLES, shard_size=SHARD, workers=1, progress=False)


def _same(report: dict) -> dict:
    """What must not depend on the workers: everything but the timing."""
    return {k: v for k, v in report.items() if k != "timing"}


def _checked_once(report: dict, n: int) -> None:
    (d,) = report["designs"]
    spans = sorted((s["offset"], s["samples"]) for s in d["shard_results"])
    assert spans == [(o, min(SHARD, n - o)) for o in range(0, n, SHARD)]
    assert len(report["timing"]["designs"][0]["shards"]) == len(spans)
    assert d["samples"] == n and len(d["classes"]) == n


def test_two_workers_give_the_serial_answer_and_the_golden_classes(mlp, serial,
                                                                   digits_test):
    directory, net = mlp
    two = regress(directory, samples=SAMPLES, shard_size=SHARD, workers=2, progress=False)
    assert json.dumps(_same(two)) == json.dumps(_same(serial))
    assert two["timing"]["workers"] == 2
    _checked_once(two, SAMPLES)
    (d,) = serial["designs"]
    assert d["exact"] and d["mismatches"] == d["class_mismatches"] == 0
    assert d["shards"] == SAMPLES // SHARD and d["first_divergence"] is None
    assert d["checked_taps"] == ["fc1", "fc2"]
    # The classes, merged over the shards, are the golden model's on the same samples.
    x, y = digits_test
    res = golden.run(net, golden.encode(net, x[:SAMPLES]))
    assert d["classes"] == res.predictions.tolist()
    assert d["golden_accuracy"] == pytest.approx(golden.accuracy(res.predictions, y[:SAMPLES]))
    assert d["hardware_accuracy"] == pytest.approx(d["golden_accuracy"])
    # Shards get their own stall seeds, from the run's seed and their index only.
    assert [s["seed"] for s in d["shard_results"]][:2] == [0, 1_000_003]


# ---------------------------------------------------------------------------------------
# An existing cluster: `dask scheduler` and `dask worker` processes on localhost.


def _stop(proc: subprocess.Popen) -> None:
    """End a process we started and everything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def _cluster(tmp: Path, workers: int, env=None):
    """A Dask scheduler and ``workers`` single-threaded workers without nannies; yields
    (address, worker processes)."""
    from dask.distributed import Client
    tmp.mkdir(parents=True, exist_ok=True)
    file = tmp / "scheduler.json"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.time() + 60
        while not file.is_file() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for i in range(workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address,
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}",
                 "--local-directory", str(tmp / f"w{i}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, env=env, cwd=tmp))
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(workers, timeout=90)
        yield address, procs[1:]
    finally:
        for p in reversed(procs):
            _stop(p)


def _in_thread(fn):
    """Run ``fn`` in a thread: (thread, box with its "result" or "error")."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _holders(directory: Path) -> dict[int, Path]:
    """pid -> the work slot it holds now (a slot's lock file names its holder)."""
    out = {}
    for lock in (directory / "sim" / "verilator").glob("worker-*/.lock"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[int(lock.read_text().split()[0])] = lock.parent
    return out


def test_a_worker_killed_halfway_changes_nothing(mlp, serial, tmp_path):
    directory, _ = mlp
    with _cluster(tmp_path / "cluster", 2) as (address, workers):
        start = time.time()
        thread, box = _in_thread(lambda: regress(
            directory, samples=SAMPLES, shard_size=SHARD, scheduler=address,
            progress=False))
        pids = {p.pid: p for p in workers}
        victim = None
        deadline = time.time() + 150
        while victim is None and thread.is_alive() and time.time() < deadline:
            done = [r for r in (directory / "sim" / "verilator").glob("worker-*/report.json")
                    if r.stat().st_mtime > start]
            busy = [pid for pid in _holders(directory) if pid in pids]
            if done and busy:  # a shard has finished, and a worker is in the next one
                victim = pids[busy[0]]
                os.kill(victim.pid, signal.SIGKILL)
                killed_at = time.time()
            time.sleep(0.05)
        assert victim is not None, "the run ended before a worker could be killed"
        thread.join(timeout=180)
        assert not thread.is_alive(), "the regression hangs after losing a worker"
        assert victim.wait(timeout=10) == -signal.SIGKILL
    assert "error" not in box, box.get("error")
    report = box["result"]
    _checked_once(report, SAMPLES)
    assert json.dumps(_same(report)) == json.dumps(_same(serial))
    # The survivor ran what was left.
    shards = report["timing"]["designs"][0]["shards"]
    assert any(s["ended"] > killed_at for s in shards)
    assert len({s["worker"] for s in shards if s["ended"] > killed_at}) == 1


def test_a_worker_without_the_simulator_is_named(mlp, tmp_path):
    directory, _ = mlp
    bare = tmp_path / "bin"  # a PATH with Python and nothing else: no iverilog, no vvp
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = dict(os.environ, PATH=str(bare))
    with _cluster(tmp_path / "cluster", 1, env=env) as (address, _):
        thread, box = _in_thread(lambda: regress(
            directory, simulator="icarus", samples=4, shard_size=2, scheduler=address,
            progress=False))
        thread.join(timeout=60)
        assert not thread.is_alive(), "a worker without iverilog makes the run hang"
    assert isinstance(box.get("error"), ClusterError), box
    assert "iverilog" in str(box["error"])


def test_cli_shards_and_text(mlp, serial, capsys):
    from hwsnn.tools import cli
    directory, _ = mlp
    argv = ["sim", str(directory), "--samples", "12", "--shard-size", str(SHARD),
            "--workers", "1"]
    assert cli.main([*argv, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    (d,) = r["designs"]
    assert d["shards"] == 2 and d["samples"] == 12 and d["exact"]
    assert d["classes"] == serial["designs"][0]["classes"][:12]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"verilator: 12 samples of {directory} in 2 shards: bit-exact")
    # Refused, one line: options of one run, a bad worker count or shard size.
    base = ["sim", str(directory), "--samples", "12"]
    for extra, words in [(["--workers", "1", "--waves"], "--waves is for one run"),
                         (["--workers", "0"], "--workers must be a positive integer"),
                         (["--shard-size", "0"], "--shard-size must be a positive")]:
        assert cli.main([*base, *extra]) == 2
        assert words in capsys.readouterr().err


def test_merge_places_the_first_divergence_in_the_test_split():
    from hwsnn.sim.regress import _merge

    def part(index, offset, samples, first=None):
        bad = first is not None
        return {"index": index, "offset": offset, "seed": index, "samples": samples,
                "exact": not bad, "finished": True, "mismatches": int(bad),
                "readout_mismatches": int(bad), "class_mismatches": int(bad),
                "event_mismatches": 0, "checked_taps": [], "first_divergence": first,
                "first_divergence_text": "x" if bad else None,
                "cycles_per_inference": 100.0 + index, "ideal_cycles_per_inference": 90.0,
                "latency_cycles": 200, "layers": [{"population": "fc1", "lanes": 4,
                                                   "ideal_cycles_per_inference": 90.0}],
                "bottleneck": "fc1", "golden_accuracy": 1.0, "hardware_accuracy": 0.5,
                "stopped_at": None, "classes": [index] * samples}

    first = {"population": "fc2", "sample": 3, "step": 1, "neuron": [7], "expected": 1,
             "observed": 0, "cycle": 4321, "what": "spike count", "readout": False}
    parts = [part(0, 10, 6), part(1, 16, 6, first), part(2, 22, 2, dict(first, sample=0))]
    m = _merge({"directory": "/d", "design": "/d/rtl/x.v"}, parts, simulator="icarus",
               offset=10, shard_size=6, stall=0.25, top=None, data_path=None, bench="free")
    assert m["samples"] == 14 and m["shards"] == 3 and not m["exact"]
    assert m["mismatches"] == m["class_mismatches"] == 2
    fd = m["first_divergence"]
    assert (fd["sample"], fd["sample_in_shard"], fd["shard"], fd["shard_offset"]) == \
        (19, 3, 1, 16)
    assert m["first_divergence_text"].startswith("population fc2, sample 19, step 1")
    assert m["reproduce"] == ("hwsnn sim /d --samples 4 --offset 16 --simulator icarus "
                              "--stall 0.25 --seed 1 --waves")
    assert m["cycles_per_inference"] == pytest.approx((100 * 6 + 101 * 6 + 102 * 2) / 14)
    assert m["classes"] == [0] * 6 + [1] * 6 + [2] * 2


def test_a_slot_left_by_a_dead_worker_is_cleared_first(tmp_path):
    """A shard's slot whose last holder died (its lock file still names it) may still have
    that shard's simulator running in it: taking the slot ends it."""
    from hwsnn.sim.regress import work_slot
    base = tmp_path / "sim" / "verilator"
    slot = base / "worker-0"
    (slot / "build-free").mkdir(parents=True)
    (slot / ".lock").write_text("999999999 tcp://127.0.0.1:1\n")
    orphan = subprocess.Popen(["sleep", "60"], cwd=slot / "build-free",
                              start_new_session=True)
    try:
        with work_slot(base) as work:
            assert work == slot
            assert orphan.wait(timeout=10) == -signal.SIGKILL
            assert str(os.getpid()) in (slot / ".lock").read_text()
            with work_slot(base) as other:  # held: another one
                assert other == base / "worker-1"
        assert (slot / ".lock").read_text() == ""  # ended cleanly
    finally:
        _stop(orphan)


def test_a_short_run_stays_in_one_process(mlp, capsys, monkeypatch):
    """More samples than a shard, but expected to take a few seconds: ``hwsnn sim`` runs
    them in one simulate call (no cluster to start); expected to take longer, it shards."""
    from hwsnn.sim import regress as rg
    from hwsnn.tools import cli
    directory, _ = mlp
    quick = rg.expected_seconds(directory, "verilator", 12)
    slow = rg.expected_seconds(directory, "icarus", 12)
    # The golden ideal on these samples, over each simulator's rate.
    assert 0 < quick < 1 and slow / quick == pytest.approx(
        rg.RATE_HZ["verilator"] / rg.RATE_HZ["icarus"])
    argv = ["sim", str(directory), "--samples", "12", "--shard-size", "6", "--json"]
    assert cli.main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert "designs" not in r and r["samples"] == 12 and r["exact"]
    monkeypatch.setattr(rg, "SERIAL_SECONDS", 0.0)  # every run counts as long
    monkeypatch.setattr("hwsnn.tools.cluster.default_workers", lambda: 1)
    assert cli.main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["designs"][0]["shards"] == 2 and r["designs"][0]["exact"]
