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
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import data, golden
from .errors import HwsnnError, ParameterError

METHODS = (("if", None), ("gn", 2), ("gn", 4), ("ilif", None))
STEPS = (1, 2, 4)
WEIGHT_BITS = (4, 6, 8)
LANES = (1, 2, 4, 8, 16)
QUEUES = (None, 16)  # engine output queues: two sweeps deep (default), or shallow
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

    def label(self) -> str:
        tau = f" τ={self.group_size}" if self.group_size else ""
        inp = f" in={self.input_lanes}" if self.input_lanes else ""
        q = f" q={self.queue_depth}" if self.queue_depth else ""
        return (f"{self.method.upper()}{tau} T={self.timesteps} {self.weight_bits}b "
                f"P={self.lanes}{inp}{q}")

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


def search(model: str, board, *, max_accuracy_drop: float = 1.0, progress: bool = True,
           steps=STEPS, weight_bits=WEIGHT_BITS, lanes=LANES, methods=METHODS,
           queues=QUEUES, data_path: str | None = None) -> dict:
    """The design space of bundled ``model`` on ``board``: accuracies (ANN and every
    candidate) and cycle counts on the test data, ``data_path`` (the user's labelled data:
    an .npz with arrays x, y, an MNIST folder or ``package.module:factory``) or else the
    model's own test split; the result's ``data`` says which."""
    from .build import fit_check
    from .convert import convert
    from .frontend import trace
    from .hdl.plan import mac_eligible
    from .models import BUNDLED
    from .quantize import quantize
    if model not in BUNDLED:
        raise ParameterError(f"explore takes a bundled model ({', '.join(sorted(BUNDLED))}), "
                             f"not {model!r}")
    if not 0 <= max_accuracy_drop <= 100:
        raise ParameterError(f"--max-accuracy-drop is in percentage points (0..100), not "
                             f"{max_accuracy_drop}")
    spec = BUNDLED[model]
    # The example batch only shapes the trace; the data is checked against its input.
    graph = trace(spec.load(), torch.zeros(2, *spec.input_shape))
    x, y = data.load_for(tuple(spec.input_shape), "test", data_path, dataset=spec.dataset,
                         value_range=(graph.input.lo, graph.input.hi), convertible=False)
    ann = graph.forward(graph.input.to_codes(x))[graph.output.name]
    ann_acc = golden.accuracy(ann.argmax(1), y)
    floor = ann_acc - max_accuracy_drop / 100
    points, tried, unfit, inaccurate = [], 0, 0, 0
    for (method, tau), t, wb in itertools.product(methods, steps, weight_bits):
        _log(progress, f"explore: {method}{f' τ={tau}' if tau else ''} T={t} {wb}-bit")
        net = quantize(convert(graph, method=method, timesteps=t, group_size=tau,
                               progress=False), weight_bits=wb)
        codes = golden.encode(net, x)
        acc = golden.accuracy(golden.run(net, codes).predictions, y)
        mac = any(mac_eligible(net, p) for p in net.populations) and board.device.dsps >= 8
        cycles_of = {}
        for p_lanes, m, q in itertools.product(lanes, (0, 8) if mac else (0,), queues):
            if m and m % p_lanes:
                continue
            tried += 1
            if acc < floor:
                inaccurate += 1
                continue
            lane_map = {p.name: p_lanes for p in net.populations}
            try:
                fit = fit_check(net, lane_map, board, "auto", m, q)
            except HwsnnError:
                unfit += 1
                continue
            if not fit["fits"]:
                unfit += 1
                continue
            if (p_lanes, m) not in cycles_of:
                res = golden.run(net, codes[:CYCLE_SAMPLES], lanes=p_lanes, input_lanes=m)
                cycles_of[p_lanes, m] = float(res.ideal_cycles_total.double().mean())
            cycles = cycles_of[p_lanes, m]
            r = fit["resources"]
            points.append(Point(method, tau, t, wb, p_lanes, m, q, acc, cycles,
                                cycles / board.clock_mhz, r[board.device.logic_kind]["used"],
                                r["bram_blocks"]["used"], r["spram_blocks"]["used"],
                                r["dsps"]["used"]))
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
    sc = ax.scatter([p["latency_us"] for p in front], [100 * p["accuracy"] for p in front],
                    c=[p["logic"] for p in front], cmap="viridis", s=40, zorder=3,
                    label=f"Pareto front (colour: estimated {logic})")
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


def pick(result: dict, board, directory, *, samples: int = 20, progress: bool = True,
         data_path: str | None = None) -> dict:
    """Convert, build and simulate the fastest front point that builds and meets the
    board clock; returns its build and simulation figures. ``data_path``: the labelled
    data ``search`` measured on (the build's latency and the simulated samples come from
    it), else the model's own test split."""
    from .build import FitError, build
    from .convert import convert, save_snn
    from .frontend import trace
    from .hdl import verilog
    from .models import BUNDLED
    from .quantize import quantize
    from .sim.run import simulate
    if not result["front"]:
        raise HwsnnError(f"nothing to pick: no point fits {board.title} within "
                         f"{result['max_accuracy_drop']} points of the ANN")
    spec = BUNDLED[result["model"]]
    graph = trace(spec.load(), torch.zeros(2, *spec.input_shape))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    failures = []
    for p in result["front"]:
        pt = Point(**p)
        _log(progress, f"explore: building {pt.label()} for {board.name}")
        snn = convert(graph, method=pt.method, timesteps=pt.timesteps,
                      group_size=pt.group_size, progress=False)
        snn.metadata.update(model=result["model"], dataset=spec.dataset)
        net = quantize(snn, weight_bits=pt.weight_bits)
        save_snn(snn, directory)
        net.save(directory)
        try:
            built = build(directory, board, lanes=pt.lanes, input_lanes=pt.input_lanes,
                          queue_depth=pt.queue_depth, progress=False, data_path=data_path)
        except FitError as exc:
            failures.append(f"{pt.label()}: {exc}")
            continue
        except HwsnnError as exc:  # place and route found it too large after all
            failures.append(f"{pt.label()}: {str(exc).split(' (the tools')[0]}")
            continue
        if not built["fits"] or not built["meets_clock"]:
            failures.append(f"{pt.label()}: Fmax {built['fmax_mhz']:.1f} MHz")
            continue
        verilog.write(directory, net, lanes=pt.lanes, input_lanes=pt.input_lanes,
                      queue_depth=pt.queue_depth)
        sim = simulate(directory, samples=min(samples, result.get("samples", samples)),
                       data_path=data_path, progress=False).to_json()
        return {"point": p, "directory": str(directory), "build": {
                    k: built[k] for k in ("fits", "fmax_mhz", "clock_mhz", "meets_clock",
                                          "latency_us", "resources", "bitstream")},
                "simulation": {k: sim[k] for k in ("samples", "exact", "mismatches",
                                                   "cycles_per_inference",
                                                   "first_divergence_text")},
                "passed_over": failures}
    raise HwsnnError(f"no front point builds for {board.title}: " + "; ".join(failures))
