"""``hwsnn explore MODEL --board NAME``: the design space, the Pareto front, and a pick.

For every method (IF, GN with τ = 2 and 4, ILIF), number of time steps and weight width,
the model is converted and quantized, and its integer golden accuracy measured on the
test data: the model's own test split, or the user's labelled data (``--data``). For
every lane count (and, for a dense first layer on a board with 8 DSPs, the
multiply-accumulate input stage; and default or shallow output queues) the fit check
estimates the resources, and the golden model counts the cycles of one inference (every
engine in turn, as ``hwsnn build`` reports it) on the first test samples. Points that do
not fit the board, or lose more than ``max_accuracy_drop`` percentage points against the
ANN, are dropped; the rest form a Pareto front of accuracy (higher is better), latency
at the board clock and estimated logic (lower is better; iCE40 logic cells, ECP5
LUT4s). Estimates only: no synthesis runs until ``--pick``, which converts the fastest
front point into a directory, builds it (place and route has the last word: a point
that does not fit or meet the clock gives way to the next one), and simulates it
against the golden model.

Both fan out over Dask workers (``hwsnn.tools.cluster``; ``--workers N``, ``--scheduler
ADDR``): the conversions' estimates, and the pick's builds, every front point at once in
its own directory, fastest first; the first in front order that builds and meets the
clock wins as soon as every faster one has failed, and the slower ones are stopped. The
answer is the one a run one after another gives.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import HwsnnError, ParameterError
from ..frontends import data
from ..snn import golden

METHODS = (("if", None), ("gn", 2), ("gn", 4), ("ilif", None))
STEPS = (1, 2, 4)
WEIGHT_BITS = (4, 6, 8)
LANES = (1, 2, 4, 8, 16)
QUEUES = (None, 16)  # engine output queues: two sweeps deep (default), or shallow
ARCHS = ("dataflow", "serial")  # an engine per layer, or the layer-serial processor
CYCLE_SAMPLES = 64  # test samples the cycle counts are averaged over


@dataclass
class Point:
    method: str
    group_size: int | None
    timesteps: int
    weight_bits: int
    lanes: int
    input_lanes: int
    queue_depth: int | None
    accuracy: float
    latency_cycles: float
    latency_us: float
    logic: int  # iCE40 logic cells, ECP5 LUT4s (the result's logic_kind)
    bram_blocks: int
    spram_blocks: int
    dsps: int
    front: bool = False
    arch: str = "dataflow"  # or "serial": the layer-serial processor (docs/serial.md)

    def label(self) -> str:
        tau = f" τ={self.group_size}" if self.group_size else ""
        inp = f" in={self.input_lanes}" if self.input_lanes else ""
        q = f" q={self.queue_depth}" if self.queue_depth else ""
        arch = " serial" if self.arch == "serial" else ""
        return (f"{self.method.upper()}{tau} T={self.timesteps} {self.weight_bits}b "
                f"P={self.lanes}{inp}{q}{arch}")

    def dominates(self, other: Point) -> bool:
        no_worse = (self.accuracy >= other.accuracy and self.latency_us <= other.latency_us
                    and self.logic <= other.logic)
        better = (self.accuracy > other.accuracy or self.latency_us < other.latency_us
                  or self.logic < other.logic)
        return no_worse and better


def pareto(points: list[Point]) -> list[Point]:
    """The points no other point dominates (marked ``front``), fastest first."""
    for p in points:
        p.front = not any(q.dominates(p) for q in points if q is not p)
    return sorted((p for p in points if p.front),
                  key=lambda p: (p.latency_us, -p.accuracy, p.logic))


def _log(progress, text):
    if progress:
        print(text, file=sys.stderr, flush=True)


def _test_data(model: str, data_path: str | None):
    """The bundled model's traced graph and the test data (x, y) it is measured on."""
    from ..models import BUNDLED
    spec = BUNDLED[model]
    graph = _graph_of(model)
    key = (model, data_path)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = data.load_for(tuple(spec.input_shape), "test", data_path,
                                   dataset=spec.dataset,
                                   value_range=(graph.input.lo, graph.input.hi),
                                   convertible=False)
    return graph, _DATA[key]


_DATA: dict = {}  # (model, data path) -> its test data (one read per process)


def _estimate(job: tuple) -> dict:
    """One conversion (method, τ, T, weight bits) of the design space: its accuracy, and
    every lane count and queue depth it fits the board with (a worker reads the data and
    traces the model itself, once); with ``serial`` among the architectures, also every
    power-of-two lane count of the layer-serial processor (its fastest tiling that fits,
    as ``hwsnn build --arch serial --lanes P`` chooses it)."""
    from ..hdl.plan import NetworkPlan, mac_eligible
    from ..snn.convert import convert
    from ..snn.quantize import quantize
    from .build import _serial_cycles, fit_check_plan, fit_check_serial
    model, board, data_path, floor, method, tau, t, wb, lanes, queues, archs = job
    graph, (x, y) = _test_data(model, data_path)
    net = quantize(convert(graph, method=method, timesteps=t, group_size=tau,
                           progress=False), weight_bits=wb)
    codes = golden.encode(net, x)
    acc = golden.accuracy(golden.run(net, codes).predictions, y)
    mac = any(mac_eligible(net, p) for p in net.populations) and board.device.dsps >= 8
    cycles_of = {}
    points, tried, unfit, inaccurate = [], 0, 0, 0
    candidates = []  # (architecture, lanes, input lanes, queue depth)
    if "dataflow" in archs:
        candidates += [("dataflow", p, m, q) for p, m, q in
                       itertools.product(lanes, (0, 8) if mac else (0,), queues)
                       if not (m and m % p)]
    if "serial" in archs:
        candidates += [("serial", p, 0, None) for p in lanes if not p & (p - 1)]
    for arch, p_lanes, m, q in candidates:
        tried += 1
        if acc < floor:
            inaccurate += 1
            continue
        try:
            fit = (fit_check_serial(net, board, p_lanes) if arch == "serial" else
                   fit_check_plan(NetworkPlan(net, p_lanes, input_lanes=m, queue_depth=q),
                                  board, "auto"))
        except HwsnnError:  # (e.g. a method the processor does not run)
            unfit += 1
            continue
        if not fit["fits"]:
            unfit += 1
            continue
        key = (arch, p_lanes, m)
        if key not in cycles_of:
            if arch == "serial":
                cycles_of[key] = _serial_cycles(fit["plan"], codes[:CYCLE_SAMPLES])["latency"]
            else:
                res = golden.run(net, codes[:CYCLE_SAMPLES], lanes=p_lanes, input_lanes=m)
                cycles_of[key] = float(res.ideal_cycles_total.double().mean())
        cycles = cycles_of[key]
        r = fit["resources"]
        points.append(Point(method, tau, t, wb, p_lanes, m, q, acc, cycles,
                            cycles / board.clock_mhz, r[board.device.logic_kind]["used"],
                            r["bram_blocks"]["used"], r["spram_blocks"]["used"],
                            r["dsps"]["used"], arch=arch))
    return {"points": points, "tried": tried, "unfit": unfit, "inaccurate": inaccurate}


def search(model: str, board, *, max_accuracy_drop: float = 1.0, progress: bool = True,
           steps=STEPS, weight_bits=WEIGHT_BITS, lanes=LANES, methods=METHODS,
           queues=QUEUES, data_path: str | None = None, workers: int | None = None,
           scheduler: str | None = None, archs=ARCHS) -> dict:
    """The design space of bundled ``model`` on ``board``: accuracies (ANN and every
    candidate) and cycle counts on the test data, ``data_path`` (the user's labelled data:
    an .npz with arrays x, y, an MNIST folder or ``package.module:factory``) or else the
    model's own test split; the result's ``data`` says which.

    Each conversion (method, τ, T, weight bits) is estimated here one after another, or,
    with ``workers`` (more than 1) or ``scheduler``, on Dask workers (``hwsnn.tools.cluster``;
    they read ``data_path`` themselves): the same result, in the same order.

    ``archs``: the architectures whose points are estimated (``ARCHS``: the dataflow
    engines and the layer-serial processor, on one front)."""
    from ..models import BUNDLED
    from ..tools.cluster import check_workers, map_ordered
    if model not in BUNDLED:
        raise ParameterError(f"explore takes a bundled model ({', '.join(sorted(BUNDLED))}), "
                             f"not {model!r}")
    if not 0 <= max_accuracy_drop <= 100:
        raise ParameterError(f"--max-accuracy-drop is in percentage points (0..100), not "
                             f"{max_accuracy_drop}")
    check_workers(workers)
    unknown = set(archs) - set(ARCHS)
    if unknown or not archs:
        raise ParameterError(f"architectures {sorted(unknown) or '(none)'}: choose from "
                             f"{', '.join(ARCHS)}")
    spec = BUNDLED[model]
    # The example batch only shapes the trace; the data is checked against its input.
    graph, (x, y) = _test_data(model, data_path)
    ann = graph.forward(graph.input.to_codes(x))[graph.output.name]
    ann_acc = golden.accuracy(ann.argmax(1), y)
    floor = ann_acc - max_accuracy_drop / 100
    jobs = [(model, board, data_path, floor, method, tau, t, wb, tuple(lanes), tuple(queues),
             tuple(archs))
            for (method, tau), t, wb in itertools.product(methods, steps, weight_bits)]
    if scheduler is None and workers in (None, 1):
        outs = []
        for job in jobs:
            method, tau, t, wb = job[4:8]
            _log(progress, f"explore: {method}{f' τ={tau}' if tau else ''} T={t} {wb}-bit")
            outs.append(_estimate(job))
    else:
        _log(progress, f"explore: {len(jobs)} conversions of {model} on Dask workers")
        outs = map_ordered(_estimate, jobs, scheduler=scheduler, workers=workers,
                           desc="explore: estimates", progress=progress,
                           serial_if_one=False)
    points = [p for o in outs for p in o["points"]]
    tried = sum(o["tried"] for o in outs)
    unfit = sum(o["unfit"] for o in outs)
    inaccurate = sum(o["inaccurate"] for o in outs)
    front = pareto(points)
    return {"model": model, "board": board.name, "clock_mhz": board.clock_mhz,
            "data": data.describe(data_path, spec.dataset), "samples": len(x),
            "cycle_samples": min(len(x), CYCLE_SAMPLES),
            "logic_kind": board.device.logic_kind, "logic_name": board.device.logic_name,
            "ann_accuracy": ann_acc, "max_accuracy_drop": max_accuracy_drop,
            "accuracy_floor": floor, "tried": tried, "too_inaccurate": inaccurate,
            "does_not_fit": unfit, "points": [asdict(p) for p in points],
            "front": [asdict(p) for p in front]}


def _label(ax, front: list[dict]) -> None:
    """Each front point's label beside it, moved down below the labels of points drawn
    close to it (points that differ only in weight bits often sit on top of each other)."""
    placed = []
    for p in sorted(front, key=lambda p: (p["latency_us"], -p["accuracy"])):
        xy = (p["latency_us"], 100 * p["accuracy"])
        px, py = ax.transData.transform(xy)
        below = sum(1 for qx, qy in placed if abs(qx - px) < 90 and abs(qy - py) < 12)
        placed.append((px, py))
        ax.annotate(Point(**p).label(), xy, fontsize=6, xytext=(4, 3 - 9 * below),
                    textcoords="offset points")


def plot(result: dict, path: Path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    rest = [p for p in result["points"] if not p["front"]]
    front = result["front"]
    ax.scatter([p["latency_us"] for p in rest], [100 * p["accuracy"] for p in rest],
               s=12, color="0.7", label="fits, within the accuracy budget")
    logic = result.get("logic_name", "logic")
    sc = None
    lo = min((p["logic"] for p in front), default=0)
    hi = max((p["logic"] for p in front), default=1)
    for arch, marker, what in (("dataflow", "o", "dataflow engines"),
                               ("serial", "s", "layer-serial processor")):
        mine = [p for p in front if p.get("arch", "dataflow") == arch]
        if mine:
            sc = ax.scatter([p["latency_us"] for p in mine],
                            [100 * p["accuracy"] for p in mine],
                            c=[p["logic"] for p in mine], cmap="viridis", vmin=lo, vmax=hi,
                            s=40, zorder=3, marker=marker,
                            label=f"Pareto front, {what} (colour: estimated {logic})")
    ax.axhline(100 * result["ann_accuracy"], color="black", linestyle="--", linewidth=1,
               label="ANN")
    if front:
        fig.colorbar(sc, ax=ax, label=f"{logic} (estimate)")
        ax.set_xscale("log")
        ax.autoscale_view()
        _label(ax, front)
    else:
        ax.text(0.5, 0.5, "no point fits the board within the accuracy budget",
                transform=ax.transAxes, ha="center")
    ax.set_xlabel(f"latency at {result['clock_mhz']:g} MHz (µs, golden-model cycles)")
    ax.set_ylabel("integer golden accuracy (%)")
    ax.set_title(f"{result['model']} on {result['board']}")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# The candidates of a parallel pick build in their own processes (a new session each),
# so that a candidate that is no longer needed can be stopped with its tools; tests that
# fake the build set this false and build in the worker itself.
CANDIDATE_PROCESS = True
_GRAPHS: dict = {}  # model -> its traced graph (one trace per process)


def _graph_of(model: str):
    from ..frontends.pytorch import trace
    from ..models import BUNDLED
    if model not in _GRAPHS:
        spec = BUNDLED[model]
        _GRAPHS[model] = trace(spec.load(), torch.zeros(2, *spec.input_shape))
    return _GRAPHS[model]


def _slug(i: int, pt: Point) -> str:
    tau = f"-tau{pt.group_size}" if pt.group_size else ""
    arch = "-serial" if pt.arch == "serial" else ""
    return (f"{i:02d}-{pt.method}{tau}-t{pt.timesteps}-w{pt.weight_bits}-p{pt.lanes}"
            f"-in{pt.input_lanes}-q{pt.queue_depth or 0}{arch}")


BUILT_KEYS = ("fits", "fmax_mhz", "clock_mhz", "meets_clock", "latency_us", "resources",
              "bitstream", "arch", "serial")


def build_candidate(spec: dict) -> dict:
    """Convert front point ``spec["point"]`` of ``spec["model"]`` into ``spec["directory"]``
    and build it for ``spec["board"]`` (at ``spec["clock"]``): ``{"ok": True, "built":
    ...}`` when it fits and meets the clock, else ``{"ok": False, "failure": text}`` with
    the text a pick lists among the points it passed over."""
    from ..models import BUNDLED
    from ..snn.convert import convert, save_snn
    from ..snn.quantize import quantize
    from .build import FitError, build
    pt, board, directory = Point(**spec["point"]), spec["board"], Path(spec["directory"])
    directory.mkdir(parents=True, exist_ok=True)
    snn = convert(_graph_of(spec["model"]), method=pt.method, timesteps=pt.timesteps,
                  group_size=pt.group_size, progress=False)
    snn.metadata.update(model=spec["model"], dataset=BUNDLED[spec["model"]].dataset)
    net = quantize(snn, weight_bits=pt.weight_bits)
    save_snn(snn, directory)
    net.save(directory)
    try:
        built = build(directory, board, lanes=pt.lanes, input_lanes=pt.input_lanes,
                      queue_depth=pt.queue_depth, progress=False,
                      data_path=spec.get("data_path"), clock=spec.get("clock", "board"),
                      arch=pt.arch)
    except FitError as exc:  # (its text names the directory: the pick's, not a candidate's)
        text = str(exc).replace(str(directory), spec.get("shown", str(directory)))
        return {"ok": False, "failure": f"{pt.label()}: {text}"}
    except HwsnnError as exc:  # place and route found it too large after all
        return {"ok": False, "failure": f"{pt.label()}: {str(exc).split(' (the tools')[0]}"}
    if not built["fits"] or not built["meets_clock"]:
        return {"ok": False, "failure": f"{pt.label()}: Fmax {built['fmax_mhz']:.1f} MHz"}
    return {"ok": True, "built": {k: built.get(k) for k in BUILT_KEYS}}


def _candidate_main(path: str) -> int:
    """``python -c ...`` entry of one candidate's process: spec.pkl in, result.pkl out."""
    import pickle
    spec_path = Path(path)
    spec = pickle.loads(spec_path.read_bytes())
    result = build_candidate(spec)
    tmp = spec_path.with_name("result.pkl.tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.replace(spec_path.with_name("result.pkl"))
    return 0


def _stopped(spec: dict) -> bool:
    """Whether the pick has its answer (its Dask ``Event`` is set)."""
    if not spec.get("stop"):
        return False
    from dask.distributed import Event
    return Event(spec["stop"]).is_set()


STOPPED = {"ok": False, "failure": "stopped", "stopped": True}


def _candidate_task(spec: dict) -> dict:
    """One candidate on a Dask worker: in its own process (``CANDIDATE_PROCESS``), ended
    with every tool it started as soon as the pick has its answer."""
    if _stopped(spec):
        return STOPPED
    if not CANDIDATE_PROCESS:
        return build_candidate(spec)
    import os
    import pickle
    import signal
    import subprocess
    directory = Path(spec["directory"])
    directory.mkdir(parents=True, exist_ok=True)
    spec_path = directory / "spec.pkl"
    spec_path.write_bytes(pickle.dumps(spec))
    (directory / "result.pkl").unlink(missing_ok=True)
    log = directory / "candidate.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from hwsnn.flow.explore import _candidate_main; "
             "sys.exit(_candidate_main(sys.argv[1]))", str(spec_path)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        try:
            while True:
                try:
                    code = proc.wait(timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    if _stopped(spec):
                        os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:  # the worker itself is going away
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    result = directory / "result.pkl"
    if code == 0 and result.is_file():
        return pickle.loads(result.read_bytes())
    if code < 0:  # stopped: a faster candidate won
        return STOPPED
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise HwsnnError(f"building {Point(**spec['point']).label()} on a worker failed (exit "
                     f"status {code}):\n{tail}")


def _missing_build_tools() -> list[str]:
    """On a worker: the YoWASP tools of the board flow (``build.TOOL_VARS``) it lacks."""
    import os

    from .build import TOOL_VARS
    from .synth import find_script
    return [script for var, script in TOOL_VARS.items()
            if not os.environ.get(var) and find_script(script) is None]


def require_build_tools(c) -> None:
    """Refuse (``ClusterError``) when a worker of client ``c`` lacks hwsnn or a tool of the
    board flow, naming the worker and the tool."""
    from ..tools.cluster import ClusterError
    try:
        found = c.run(_missing_build_tools)
    except Exception as exc:  # noqa: BLE001 - e.g. a worker without hwsnn installed
        raise ClusterError(f"a Dask worker cannot check its YoWASP tools: {exc} (is hwsnn "
                           "installed on every worker?)") from None
    missing = {w: tools for w, tools in found.items() if tools}
    if missing:
        text = "; ".join(f"worker {w} has no {', '.join(t)}" for w, t in missing.items())
        names = " ".join(sorted({t for ts in missing.values() for t in ts}))
        raise ClusterError(f"explore --pick builds on the Dask workers, which need the "
                           f"YoWASP tools: {text} (pip install {names} on every worker, "
                           "or leave that worker out of the cluster)")


def _first_success(specs: list[dict], scheduler, workers, progress: bool) -> tuple:
    """Build every candidate of ``specs`` on Dask workers, in front order; as soon as one
    succeeds and every one before it has failed, stop the rest. (index of the winner or
    None, the results of the candidates up to it)."""
    import uuid

    from dask.distributed import Event, as_completed, wait

    from ..tools.cluster import _bar, client
    n = len(specs)
    status: list = [None] * n
    with client(scheduler, workers) as c:
        require_build_tools(c)
        tag = uuid.uuid4().hex[:8]
        stop = Event(f"hwsnn-pick-{tag}-stop", client=c)
        futures = [c.submit(_candidate_task, {**spec, "stop": stop.name},
                            key=f"hwsnn-pick-{tag}-{i}", pure=False, priority=n - i)
                   for i, spec in enumerate(specs)]
        index = {f.key: i for i, f in enumerate(futures)}
        bar = _bar(n, "pick: builds", progress)
        winner, decided = None, False
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                if fut.status == "error":
                    status[i] = ("error", fut)
                else:
                    status[i] = ("done", fut.result())
                if bar is not None:
                    bar.update(1)
                k = 0
                while k < n and status[k] is not None and status[k][0] == "done" \
                        and not status[k][1]["ok"]:
                    k += 1
                if k == n:
                    decided = True
                    break
                if status[k] is None:
                    continue
                if status[k][0] == "error":
                    status[k][1].result()  # the candidate's own error, as a serial run
                winner, decided = k, True
                break
            assert decided
        finally:
            if bar is not None:
                bar.close()
            rest = [f for f in futures if not f.done()]
            if rest:  # stop them: the running ones end their processes within a second
                stop.set()
                if CANDIDATE_PROCESS:
                    try:
                        wait(rest, timeout=30)
                    except TimeoutError:  # (a worker that hangs: it is closed with us)
                        pass
                c.cancel(rest)
    last = n if winner is None else winner + 1
    return winner, [s[1] for s in status[:last]]


def _take_over(source: Path, directory: Path) -> None:
    """Move the contents of ``source`` into ``directory`` (replacing what is there)."""
    import shutil
    for entry in source.iterdir():
        if entry.name in ("spec.pkl", "result.pkl", "candidate.log"):
            continue
        target = directory / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        shutil.move(str(entry), str(target))


def choose(result: dict, board, directory, *, progress: bool = True,
           data_path: str | None = None, clock: str | float = "board",
           scheduler: str | None = None, workers: int | None = None) -> tuple:
    """The build half of ``pick``: (index of the front point that won, its build figures,
    the points passed over with why), the winner's files in ``directory``."""
    import shutil

    from ..tools.cluster import check_workers
    check_workers(workers)
    if not result["front"]:
        raise HwsnnError(f"nothing to pick: no point fits {board.title} within "
                         f"{result['max_accuracy_drop']} points of the ANN")
    given = Path(directory)  # (the serial run's paths, as given)
    directory = given.resolve()  # (a worker's, whatever its working directory)
    directory.mkdir(parents=True, exist_ok=True)
    front = result["front"]
    base = {"model": result["model"], "board": board, "data_path": data_path,
            "clock": clock}
    failures, winner, built = [], None, None
    if scheduler is None and (workers == 1 or len(front) == 1):
        for i, p in enumerate(front):
            _log(progress, f"explore: building {Point(**p).label()} for {board.name}")
            got = build_candidate({**base, "point": p, "directory": str(given)})
            if got["ok"]:
                winner, built = i, got["built"]
                break
            failures.append(got["failure"])
    else:
        specs = [{**base, "point": p, "shown": str(given),
                  "directory": str(directory / "candidates" / _slug(i, Point(**p)))}
                 for i, p in enumerate(front)]
        _log(progress, f"explore: building the {len(front)} front points for {board.name} "
             "on Dask workers, fastest first")
        winner, results = _first_success(specs, scheduler, workers, progress)
        failures = [r["failure"] for r in (results if winner is None else results[:-1])]
        if winner is not None:
            built = dict(results[-1]["built"])
            source = Path(specs[winner]["directory"])
            _take_over(source, directory)
            if built.get("bitstream"):
                built["bitstream"] = str(given / Path(built["bitstream"])
                                         .relative_to(source))
                report = Path(built["bitstream"]).parent / "report.json"
                if report.is_file():
                    report.write_text(report.read_text().replace(str(source), str(given)))
        shutil.rmtree(directory / "candidates", ignore_errors=True)
    if winner is None:
        raise HwsnnError(f"no front point builds for {board.title}: " + "; ".join(failures))
    return winner, built, failures


def _simulate_serial(directory: Path, net, arguments: dict, samples: int,
                     data_path: str | None) -> dict:
    """The picked layer-serial design in Verilator (``sim.serial``) on the first
    ``samples`` test samples, in the keys of ``hwsnn sim``'s report. The weights are in
    the bitstream's memories here (the run-time stores are checked over the link by the
    tests)."""
    from ..hdl.serial import SerialPlan
    from ..sim.serial import simulate_serial
    from .build import latency_codes
    codes, _ = latency_codes(net, data_path)
    plan = SerialPlan(net, **{**arguments, "loadable": False})
    r = simulate_serial(plan, codes[:samples], directory / "sim" / "serial")
    return {"samples": r["samples"], "exact": r["exact"], "mismatches": r["mismatches"],
            "cycles_per_inference": r["busy_cycles_per_sample"],
            "first_divergence_text": r["first_divergence"]}


def pick(result: dict, board, directory, *, samples: int = 20, progress: bool = True,
         data_path: str | None = None, clock: str | float = "board",
         scheduler: str | None = None, workers: int | None = None) -> dict:
    """Convert, build and simulate the fastest front point that builds and meets the
    board clock (``clock``: or a PLL clock in MHz, as ``hwsnn build --clock``); returns
    its build and simulation figures. ``data_path``: the labelled data ``search``
    measured on (the build's latency and the simulated samples come from it), else the
    model's own test split.

    The candidates build on Dask workers (``hwsnn.tools.cluster``: a local cluster of
    ``workers`` processes, default one per core, or the cluster at ``scheduler``), each
    in DIR/candidates/<n>-<point>, in front order; the first in front order that builds
    and meets the clock wins as soon as every one before it has failed (the later ones
    are stopped), and its files become DIR's: the same answer as one after another
    (``workers=1``, or a front of one point, builds here in DIR itself). The winner is
    simulated here."""
    from ..hdl import verilog
    from ..sim.run import simulate
    from ..snn.qnet import load
    winner, built, failures = choose(result, board, directory, progress=progress,
                                     data_path=data_path, clock=clock, scheduler=scheduler,
                                     workers=workers)
    directory = Path(directory)
    p = result["front"][winner]
    pt = Point(**p)
    net = load(directory)
    n = min(samples, result.get("samples", samples))
    if pt.arch == "serial":
        sim = _simulate_serial(directory, net, built["serial"]["plan"], n, data_path)
    else:
        verilog.write(directory, net, lanes=pt.lanes, input_lanes=pt.input_lanes,
                      queue_depth=pt.queue_depth)
        sim = simulate(directory, samples=n, data_path=data_path, progress=False).to_json()
    return {"point": p, "directory": str(directory), "build": built,
            "simulation": {k: sim[k] for k in ("samples", "exact", "mismatches",
                                               "cycles_per_inference",
                                               "first_divergence_text")},
            "passed_over": failures}
