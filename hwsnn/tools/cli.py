"""The ``hwsnn`` command line.

    hwsnn models                         list the bundled models
    hwsnn convert MODEL -o DIR [...]     model → QNet (+ float SNN) in DIR
    hwsnn eval DIR                       ANN vs float SNN vs integer golden
    hwsnn export-nir DIR -o FILE.nir     the converted network as a NIR graph
    hwsnn verilog DIR                    QNet → Verilog + port description in DIR/rtl
    hwsnn sim DIR                        cocotb run of that Verilog against the golden model
    hwsnn boards                         supported boards
    hwsnn build DIR --board NAME         fit check, bitstream and report for a board
    hwsnn flash DIR --board NAME         program the board (--dry-run prints the command)
    hwsnn infer DIR --port PORT          inference on the board through its UART link
    hwsnn demo                           the whole flow on the bundled CNN

Every reporting command takes ``--json`` and then prints one JSON object on stdout.
Bad input is refused with one line on stderr (``hwsnn: error: ...``, naming the input and
what to do) and exit status 2, before anything is written; with ``--json`` the refusal is
also one JSON object on stdout: ``{"error": "...", "exit_status": 2}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

from ..errors import HwsnnError
from ..frontends import data
from ..models import BUNDLED
from ..snn.convert import DEFAULT_PERCENTILE, METHODS
from ..snn.quantize import DEFAULT_MAX_MEMBRANE_BITS, DEFAULT_WEIGHT_BITS
from . import api, outdir


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise HwsnnError(f"{what} {text!r} is not a comma-separated list of numbers") from None


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise HwsnnError(f"input shape {text!r} is not like 1,8,8") from None
    if not shape or any(d < 1 for d in shape):
        raise HwsnnError(f"input shape {text!r} must list positive sizes, like 1,8,8")
    return shape


def _percentile(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 100:
        raise HwsnnError(f"--percentile {text!r}: give a number in (0, 100] or 'max'")
    return value


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise HwsnnError(f"{option} {value}: give a positive number")
    return value


def _emit(args, obj: dict, text: str) -> None:
    if args.json:
        print(json.dumps(obj, indent=None, sort_keys=False))
    else:
        print(text)


# ---------------------------------------------------------------------------------------


def cmd_models(args) -> int:
    rows = [{"name": m.name, "input_shape": list(m.input_shape), "dataset": m.dataset,
             "description": m.description} for m in BUNDLED.values()]
    text = "\n".join(f"{r['name']:12s} {'x'.join(map(str, r['input_shape'])):8s} "
                     f"{r['dataset']:9s} {r['description']}" for r in rows)
    _emit(args, {"models": rows}, text)
    return 0


def _input_options(args) -> tuple[tuple[float, ...], tuple | None]:
    """``--input-range`` and ``--normalize`` of convert, checked."""
    normalize = None
    if args.normalize:
        mean, _, std = args.normalize.partition("/")
        if not std:
            raise HwsnnError("--normalize takes MEAN/STD, e.g. 0.5/0.25 or 0.1,0.2,0.3/1,1,1")
        normalize = (_floats(mean, "mean"), _floats(std, "std"))
        if not normalize[1] or not all(v > 0 for v in normalize[1]):
            raise HwsnnError(f"--normalize {args.normalize!r}: every STD must be positive")
    input_range = tuple(_floats(args.input_range, "input range"))
    if len(input_range) != 2 or not input_range[0] < input_range[1]:
        raise HwsnnError(f"--input-range takes LO,HI with LO < HI, not {args.input_range!r}")
    return input_range, normalize


def _do_convert_nir(args):
    from ..frontends import nir_io
    input_range, normalize = _input_options(args)
    conv = nir_io.load(args.model, timesteps=args.timesteps, reset=args.nir_reset,
                       threshold=args.nir_threshold, v0=args.nir_v0, lif=args.nir_lif,
                       input_range=input_range, normalize=normalize,
                       weight_bits=args.weight_bits, max_membrane_bits=args.max_membrane_bits)
    conv.qnet.metadata.setdefault("model", args.model)
    return conv


def _do_convert(args, out: str, removed: list | None = None):
    """Convert ``args.model`` and save it into ``out``; returns (conversion, directory).
    The output directory is checked before the work starts."""
    outdir.check_directory(out, f"-o {out}")
    _positive(args.calibration_samples, "--calibration-samples")
    if not args.max_accuracy_loss >= 0:
        raise HwsnnError(f"--max-accuracy-loss {args.max_accuracy_loss}: give a number of "
                         "percentage points, 0 or more")
    _input_options(args)
    _percentile(args.percentile)
    conv = _do_convert_nir(args) if args.model.endswith(".nir") else _convert_model(args)
    directory = api.Conversion(conv.graph, conv.snn, conv.qnet).save(out, removed)
    return conv, directory


def _convert_model(args):
    loaded = api.load_model(args.model, args.weights,
                            _shape(args.input_shape) if args.input_shape else None)
    if loaded.input_shape is None:
        raise HwsnnError(f"{args.model}: give the input shape without batch, e.g. "
                         "--input-shape 1,8,8")
    calibration = labels = None
    input_range, normalize = _input_options(args)
    # A bundled model knows its data; any other model's data is the user's to name: hwsnn
    # never calibrates or evaluates on a shipped set just because its images fit.
    dataset = args.dataset or loaded.dataset
    if args.dataset:
        images = tuple(data.load(args.dataset, "test")[0].shape[1:])
        if math.prod(images) != math.prod(loaded.input_shape):
            raise HwsnnError(f"--dataset {args.dataset} has images of shape {images}, the "
                             f"model takes {tuple(loaded.input_shape)}")
    if args.calibration_data or dataset:
        cx, cy = data.load_for(loaded.input_shape, "train", args.calibration_data,
                               dataset=dataset, value_range=input_range)
        calibration, labels = cx[: args.calibration_samples], cy[: args.calibration_samples]
    # An exported program has the static batch size it was exported with.
    conv = api.convert(
        loaded.model, None if isinstance(loaded.model, torch.export.ExportedProgram)
        else torch.zeros(2, *loaded.input_shape),
        method=args.method, timesteps=4 if args.timesteps is None else args.timesteps,
        group_size=api.parse_group_size(args.group_size) if args.group_size else None,
        cos_steps=args.cos_steps, weight_bits=args.weight_bits,
        max_membrane_bits=args.max_membrane_bits, calibration=calibration,
        percentile=_percentile(args.percentile), input_range=input_range,
        normalize=normalize, progress=not args.json, name=loaded.name)
    conv.qnet.metadata["dataset"] = dataset
    if calibration is not None:
        # The integer network must keep the float SNN's accuracy on the calibration data.
        check = api.quantization_check(conv, calibration, labels,
                                       max_loss=args.max_accuracy_loss)
        api.refuse_accuracy_loss(check, f"{args.model} ({args.method}, T={conv.qnet.timesteps})")
        conv.qnet.metadata["quantization_check"] = check
    conv.snn.metadata.update(conv.qnet.metadata)
    return conv


def _population_rows(qnet) -> list[dict]:
    return [{"name": p.name, "kind": p.kind, "shape": list(p.shape),
             "theta": p.theta, "threshold": p.threshold, "group_size": p.group_size,
             "weight_bits": max(q.weight_bits for q in p.projections),
             "bias_bits": p.bias_bits, "membrane_bits": p.membrane_bits,
             "saturate": p.saturate} for p in qnet.populations]


def cmd_convert(args) -> int:
    removed: list[Path] = []
    conv, directory = _do_convert(args, args.output, removed)
    q = conv.qnet
    rows = _population_rows(q)
    obj = {"directory": str(directory), "model": args.model, "method": q.method,
           "timesteps": q.timesteps, "cos_steps": q.cos_steps, "weight_bits": q.weight_bits,
           "populations": rows, "warnings": q.metadata.get("warnings", []),
           "removed_stale": [str(p.relative_to(directory)) for p in removed],
           "quantization_check": q.metadata.get("quantization_check")}
    lines = [f"{args.model}: method {q.method}, T={q.timesteps}"
             + (f", ρ={q.cos_steps}" if q.cos_steps else "") + f", {q.weight_bits}-bit weights",
             f"{'population':12s} {'kind':7s} {'shape':10s} {'θ':>8s} {'Θ':>7s} {'τ':>3s} "
             f"{'V bits':>6s}"]
    for r in rows:
        lines.append(f"{r['name']:12s} {r['kind']:7s} {'x'.join(map(str, r['shape'])):10s} "
                     f"{r['theta']:8.4g} {r['threshold']:7d} {r['group_size']:3d} "
                     f"{r['membrane_bits']:6d}" + (" saturating" if r["saturate"] else ""))
    check = obj["quantization_check"]
    if check:
        lines.append(f"integer network on {check['samples']} calibration samples: "
                     f"{100 * check['golden_accuracy']:.2f} % (float SNN "
                     f"{100 * check['float_snn_accuracy']:.2f} %, "
                     f"{100 * (check['golden_accuracy'] - check['float_snn_accuracy']):+.2f}"
                     " points)")
    lines += [f"warning: {w}" for w in obj["warnings"]]
    if "nir" in q.metadata:
        nir = obj["nir"] = dict(q.metadata["nir"], semantics=q.metadata["nir_semantics"])
        lines.append(f"NIR import ({'exact integer network' if nir['exact'] else 'quantized'})"
                     f": reset {nir['semantics']['reset']}, fire when V "
                     f"{'>' if nir['semantics']['threshold'] == 'gt' else '>='} threshold, "
                     f"initial potential {nir['semantics']['v0']}")
        if nir["assumed"]:
            lines.append("assumed (NIR does not say; set with --nir-reset, --nir-threshold, "
                         "--nir-v0): " + ", ".join(f"{k}={v}" for k, v in
                                                  nir["assumed"].items()))
        lines += [f"approximation: {a}" for a in nir["approximations"]]
    lines.append(f"wrote {directory}/qnet.json, qnet.npz, snn.json, snn.npz")
    if removed:
        lines.append(f"removed what hwsnn had made from the previous network in {directory}: "
                     + ", ".join(obj["removed_stale"]))
    _emit(args, obj, "\n".join(lines))
    return 0


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # a NIR file is HDF5


def cmd_export_nir(args) -> int:
    from ..frontends import nir_io
    from ..snn.qnet import load as load_qnet
    qnet = load_qnet(args.directory)
    path = outdir.check_file(args.output, f"-o {args.output}", signature=HDF5_SIGNATURE)
    outdir.write_file(path, lambda tmp: nir_io.write(qnet, tmp))
    graph = nir_io.read(path)
    notes = json.loads(graph.metadata["hwsnn_semantics"])["not_expressible_in_nir"]
    obj = {"output": str(path), "nodes": len(graph.nodes), "edges": len(graph.edges),
           "not_expressible_in_nir": notes}
    lines = [f"wrote {path}: {obj['nodes']} NIR nodes, {obj['edges']} edges (the integer "
             "network; its metadata 'hwsnn' restores the QNet exactly)",
             "NIR cannot express (recorded in the file's metadata 'hwsnn_semantics'):"]
    lines += [f"  - {n}" for n in notes]
    _emit(args, obj, "\n".join(lines))
    return 0


def _eval_text(r: dict) -> str:
    def pct(v):
        return f"{100 * v:6.2f} %"

    lines = [f"method {r['method']}, T={r['timesteps']}"
             + (f", τ={'/'.join(map(str, r['group_size']))}" if r["group_size"] else "")
             + (f", ρ={r['cos_steps']}" if r["cos_steps"] else "")
             + f", {r['weight_bits']}-bit weights, {r['samples']} test samples",
             f"  ANN (float)                 {pct(r['ann_accuracy'])}",
             f"  SNN (float)                 {pct(r['float_snn_accuracy'])}",
             f"  SNN (integer golden)        {pct(r['golden_accuracy'])}"
             f"   ({r['float_vs_golden_mismatches']} predictions differ from float SNN)"]
    if "exact_reference_accuracy" in r:
        lines.append(f"  {r['exact_reference']:27s} {pct(r['exact_reference_accuracy'])}"
                     f"   ({r['prediction_mismatches']} prediction mismatches: exact "
                     f"{'yes' if r['prediction_mismatches'] == 0 else 'NO'})")
    lines += [f"  MSE(ANN logits, SNN readout) float {r['mse_float_snn']:.4g}, "
              f"golden {r['mse_golden']:.4g}",
              f"  SOPs per inference          {r['sops_per_inference']:.0f}",
              f"  ideal cycles per inference  {r['ideal_cycles_per_inference']:.0f} "
              f"(pipelined, {_describe_lanes(r['lanes'])}; "
              f"{r['ideal_cycles_total_per_inference']:.0f} on one engine)"]
    return "\n".join(lines)


def cmd_eval(args) -> int:
    lanes = _lanes(args.lanes)
    if args.samples is not None:
        _positive(args.samples, "--samples")
    r = api.evaluate(args.directory, lanes=lanes, samples=args.samples,
                     data_path=args.data)
    _emit(args, r, _eval_text(r))
    return 0


def _lanes(text):
    """``--lanes`` of every command: ``N`` for every engine, or ``fc1=8,fc2=1`` per
    population (the populations not named get 1); checked against the network by
    ``hdl.plan.NetworkPlan`` (``lanes_by_population``)."""
    from ..hdl.plan import parse_lanes
    return parse_lanes(text)


def _describe_lanes(lanes) -> str:
    from ..hdl.plan import describe_lanes
    return describe_lanes(lanes)


def _clock(text):
    if text in ("board", "auto"):
        return text
    try:
        mhz = float(text)
    except ValueError:
        raise HwsnnError(f"--clock {text!r}: give board, auto or a frequency in MHz") from None
    if not mhz > 0:
        raise HwsnnError(f"--clock {text!r}: the frequency must be positive")
    return mhz


def _check_design_files(directory, top: str) -> None:
    """Refuse to write ``rtl/TOP.*`` over files that are not an hwsnn design."""
    from ..hdl.verilog import RTL_DIR, check_top_name
    check_top_name(top)
    rtl = outdir.check_place(Path(directory) / RTL_DIR, f"{directory}/{RTL_DIR}")
    files = [rtl / f"{top}{ext}" for ext in (".v", ".json", ".md")]
    if not any(p.exists() for p in files):
        return
    try:
        ours = "made_from" in json.loads(files[1].read_text())
    except (OSError, ValueError, TypeError):
        ours = False
    if not ours:
        shown = ", ".join(str(p) for p in files if p.exists())
        raise HwsnnError(f"{shown} exists and hwsnn did not write it; hwsnn does not replace "
                         "it: choose another name with --top, or move it away")


def _check_writes_in(directory, sub: str) -> None:
    """The network directory must hold a network, and ``directory/sub`` be writable."""
    from ..snn.qnet import load as load_qnet
    load_qnet(directory)
    outdir.check_place(Path(directory) / sub, f"{directory}/{sub}")


def cmd_verilog(args) -> int:
    from ..hdl import verilog
    from ..hdl.plan import NetworkPlan
    from ..snn.qnet import load as load_qnet
    net = load_qnet(args.directory)
    if args.queue_depth is not None and args.queue_depth < 4:
        raise HwsnnError(f"--queue-depth {args.queue_depth}: give at least 4")
    _check_design_files(args.directory, args.top)
    plan = NetworkPlan(net, _lanes(args.lanes), input_lanes=args.input_lanes,
                       queue_depth=args.queue_depth)
    desc = verilog.write(args.directory, net, taps=not args.no_taps, top=args.top, plan=plan)
    obj = {"directory": str(args.directory), "top": desc["top"], "files": desc["files"],
           "verilog_lines": desc["verilog_lines"], "lanes": desc["made_from"]["lanes"],
           "input_lanes": desc["made_from"]["input_lanes"],
           "taps": desc["made_from"]["taps"], "qnet_sha256": desc["made_from"]["qnet_sha256"],
           "ports": [{k: p[k] for k in ("name", "direction", "width")}
                     for p in desc["ports"]]}
    lines = [f"{desc['top']}: {desc['verilog_lines']} lines of Verilog, "
             f"{len(desc['ports'])} ports, lanes {args.lanes}, "
             + (f"input stage {args.input_lanes} multiply-accumulate lanes, "
                if args.input_lanes else "")
             + "debug taps "
             f"{'on' if obj['taps'] else 'off'}"]
    if args.lint:
        from ..sim.run import lint
        obj["lint"] = lint(desc["files"]["verilog"], desc["top"])
        warn = obj["lint"]["warnings"]
        lines.append(f"verilator --lint-only -Wall: {len(obj['lint']['errors'])} errors, "
                     f"{sum(warn.values())} warnings"
                     + (f" ({', '.join(f'{k} {v}' for k, v in sorted(warn.items()))})"
                        if warn else ""))
    lines += [f"wrote {path}" for path in desc["files"].values()]
    _emit(args, obj, "\n".join(lines))
    return 0 if not args.lint or not obj["lint"]["errors"] else 1


def _sim_text(r: dict) -> str:
    lines = [f"{r['simulator']}: {r['samples']} samples of {r['design']}"]
    if r["exact"]:
        lines.append("  bit-exact: every readout value and class"
                     + (f", and every event of {', '.join(r['checked_taps'])}"
                        if r["checked_taps"] else "") + " match the golden model")
    else:
        lines.append(f"  NOT bit-exact: {r['mismatches']} of {r['samples']} samples differ "
                     f"({r['class_mismatches']} with another class)")
        lines.append(f"  first divergence: {r['first_divergence_text']}")
        if r.get("stopped_at") is not None:
            lines.append(f"  (the run stopped there, at clock edge {r['stopped_at']})")
        if r["waves"]:
            lines.append(f"  waves: {r['waves']}")
        if not r["checked_taps"]:
            lines.append("  (write the Verilog with debug taps to see the population where "
                         "it starts)")
    ratio = r["cycle_ratio"]
    lines.append(f"  cycles per inference {r['cycles_per_inference']:.0f}, ideal "
                 f"{r['ideal_cycles_per_inference']:.0f} (bottleneck {r['bottleneck']})"
                 + (f", ratio {ratio:.3f}" if ratio else "")
                 + f"; latency of one inference {r['latency_cycles']} cycles")
    lines.append(f"  {'population':12s} {'lanes':>5s} {'ideal':>9s} {'measured':>9s} "
                 f"{'ratio':>6s}")
    for row in r["layers"]:
        meas = row.get("work_cycles_per_inference")
        lines.append(f"  {row['population']:12s} {row['lanes']:5d} "
                     f"{row['ideal_cycles_per_inference']:9.0f} "
                     + (f"{meas:9.0f} {row['ratio']:6.3f}" if meas is not None else
                        f"{'-':>9s} {'-':>6s}"))
    if r.get("hardware_accuracy") is not None:
        lines.append(f"  accuracy of the simulated design on these samples "
                     f"{100 * r['hardware_accuracy']:.2f} % (golden model "
                     f"{100 * r['golden_accuracy']:.2f} %)")
    lines.append(f"  {r['samples_per_second']:.2f} samples/s simulated "
                 f"(build {r['build_seconds']:.0f} s)")
    return "\n".join(lines)


def _check_sim_outputs(directory) -> None:
    """sim writes DIR/sim/SIMULATOR, and the Verilog first when DIR/rtl holds none."""
    from ..hdl.verilog import DEFAULT_TOP, RTL_DIR
    _check_writes_in(directory, "sim")
    if not list((Path(directory) / RTL_DIR).glob("*.json")):
        _check_design_files(directory, DEFAULT_TOP)


def _samples_arg(text: str):
    """--samples: a count, or ``all`` (the rest of the test split from --offset)."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', not "
                                          f"{text!r}") from None


# What only one simulate call does (not a sharded regression).
_SIM_SERIAL_ONLY = (("waves", "--waves"), ("verilog", "--verilog"), ("lanes", "--lanes"),
                    ("stop_at_divergence", "--stop-at-divergence"))


def _sim_serial(args) -> int:
    """``hwsnn sim DIR --arch serial``: the layer-serial processor in one run."""
    from ..errors import ParameterError
    from ..sim.serial import simulate_serial_directory
    extra = [flag for name, flag in _SIM_SERIAL_ONLY + (("workers", "--workers"),
                                                        ("scheduler", "--scheduler"))
             if name != "lanes" and getattr(args, name)]
    if len(args.directory) > 1 or extra or args.bench != "free" or args.samples == "all":
        raise ParameterError("--arch serial simulates one design in one run on the "
                             "free-running bench: one DIR, a number of --samples, no "
                             + ", ".join(extra or ["--workers", "--bench edge"]))
    if args.simulator not in ("verilator", "icarus"):
        raise ParameterError(f"--arch serial runs on verilator or icarus, not "
                             f"{args.simulator}")
    lanes = None
    if args.lanes is not None:
        try:
            lanes = int(args.lanes)
        except ValueError:
            raise ParameterError(f"--lanes {args.lanes!r}: the layer-serial processor has "
                                 "one lane count (e.g. --lanes 4)") from None
    r = simulate_serial_directory(args.directory[0], lanes=lanes, samples=args.samples,
                                  offset=args.offset, data_path=args.data,
                                  simulator=args.simulator, stall=args.stall, seed=args.seed,
                                  progress=not args.json)
    plan = r["plan"]
    lines = [f"{r['simulator']}: {r['samples']} samples of {r['design']} ({r['data']}) on the "
             f"layer-serial processor, {plan['lanes']} lanes"]
    if r["exact"]:
        lines.append("  bit-exact: every readout value and class match the golden model")
    else:
        lines.append(f"  NOT bit-exact: {r['mismatches']} of {r['samples']} samples differ")
        lines.append(f"  first divergence: {r['first_divergence']}")
    lines.append(f"  busy cycles per inference {r['busy_cycles_per_sample']:.0f}, ideal "
                 f"{r['ideal_cycles_per_sample']:.0f} (ratio {r['cycle_ratio']:.3f})")
    _emit(args, r, "\n".join(lines))
    return 0 if r["exact"] else 1


def cmd_sim(args) -> int:
    from ..errors import ParameterError
    from ..sim.run import simulate
    if args.arch == "serial":
        return _sim_serial(args)
    dirs = args.directory
    for d in dirs:
        _check_sim_outputs(d)
    asked = args.workers is not None or args.scheduler is not None or len(dirs) > 1
    serial_only = [flag for name, flag in _SIM_SERIAL_ONLY if getattr(args, name)]
    samples = args.samples
    if args.shard_size < 1:
        raise ParameterError(f"--shard-size must be a positive integer, not "
                             f"{args.shard_size}")
    if asked and serial_only:
        raise ParameterError(f"{serial_only[0]} is for one run of one design: leave out "
                             "--workers, --scheduler and the other directories (a "
                             "sharded run prints the command that reruns a divergence "
                             "with waves)")
    if not asked and not serial_only and (samples == "all" or (
            isinstance(samples, int) and samples > args.shard_size)):
        from ..sim.regress import SERIAL_SECONDS, expected_seconds, resolve_samples, split_size
        samples = resolve_samples(samples, args.offset, split_size(dirs[0], args.data))
        # Shards on a local cluster only when the run is long enough to gain from them.
        asked = samples > args.shard_size and expected_seconds(
            dirs[0], args.simulator, samples, offset=args.offset, data_path=args.data,
            top=args.top) > SERIAL_SECONDS
    if asked:
        return _sim_regress(args, dirs, samples)
    if samples == "all":
        from ..sim.regress import resolve_samples, split_size
        samples = resolve_samples(samples, args.offset, split_size(dirs[0], args.data))
    report = simulate(dirs[0], simulator=args.simulator, samples=samples,
                      top=args.top, lanes=_lanes(args.lanes) if args.lanes else None,
                      stall=args.stall, seed=args.seed, waves=args.waves,
                      data_path=args.data, offset=args.offset, progress=not args.json,
                      verilog_path=args.verilog, waves_on_mismatch=not args.no_rerun,
                      stop_at_divergence=args.stop_at_divergence, bench=args.bench)
    r = report.to_json()
    _emit(args, r, _sim_text(r))
    return 0 if report.exact else 1


def _sim_regress(args, dirs, samples) -> int:
    """``hwsnn sim`` in shards on Dask workers (hwsnn.sim.regress)."""
    from ..sim.regress import regress, summary_line
    r = regress(dirs, simulator=args.simulator, samples=samples, offset=args.offset,
                shard_size=args.shard_size, scheduler=args.scheduler, workers=args.workers,
                progress=not args.json, data_path=args.data, stall=args.stall,
                seed=args.seed, top=args.top, bench=getattr(args, "bench", "free"))
    lines = [summary_line(d, t) for d, t in zip(r["designs"], r["timing"]["designs"],
                                                 strict=True)]
    where = f"the cluster at {args.scheduler}" if args.scheduler else \
        f"{r['timing']['workers']} local worker{'s' if r['timing']['workers'] != 1 else ''}"
    lines.append(f"{r['samples']} samples in {r['timing']['wall_seconds']:.1f} s on {where}"
                 f" ({r['timing']['samples_per_second']:.1f} samples/s)")
    _emit(args, r, "\n".join(lines))
    return 0 if r["exact"] else 1


def cmd_boards(args) -> int:
    from .. import boards
    found = boards.all_boards().values()
    rows = [{"name": b.name, "title": b.title, "family": b.device.family,
             "device": b.device.name, "clock_mhz": b.clock_mhz,
             b.device.logic_kind: b.device.logic, "ffs": b.device.ffs,
             "bram_blocks": b.device.bram_blocks, "spram_blocks": b.device.spram_blocks,
             "dsps": b.device.dsps} for b in found]
    text = "\n".join(f"{b.name:13s} {b.title:32s} {b.clock_mhz:5.1f} MHz "
                     f"{b.device.logic:6d} {b.device.logic_name:11s} "
                     f"{b.device.bram_blocks:4d} block RAMs" for b in found)
    _emit(args, {"boards": rows}, text)
    return 0


def _resource_lines(resources: dict, estimated: bool) -> list[str]:
    from ..flow.build import RESOURCE_NAMES as names
    lines = [f"  {'resource':13s} {'used':>7s} {'available':>9s}"
             + ("   (estimate)" if estimated else "   (placed)")]
    for kind, v in resources.items():
        used = "-" if v["used"] is None else str(v["used"])
        pct = (f" {100 * v['used'] / v['available']:5.1f} %" if v["used"] is not None
               and v["available"] else "")
        lines.append(f"  {names.get(kind, kind):13s} {used:>7s} "
                     f"{v['available']:9d}{pct}")
    return lines


def _queue_depth_arg(s) -> None:
    s.add_argument("--queue-depth", type=int, metavar="N", help="every engine's output "
                   "queue, in lane groups (default: two sweeps' worth); 16 saves block RAM, "
                   "and a sweep then waits while its queue is full")


def _input_lanes_arg(s) -> None:
    s.add_argument("--input-lanes", type=int, default=0, metavar="M",
                   help="give the first layer (dense, group or IF neurons) a multiply-"
                   "accumulate input stage of M lanes: one pass per non-zero pixel and M "
                   "neurons instead of one per set pixel bit, on M DSP blocks (a multiple "
                   "of that layer's lanes; 8 on a UP5K); default 0: bit events")


def cmd_build(args) -> int:
    from .. import boards
    from ..flow.build import build, describe_lanes
    board = boards.get(args.board)
    if not args.check_only:
        _check_writes_in(args.directory, f"build/{board.name}")
    r = build(args.directory, board,
              lanes=None if args.lanes is None else _lanes(args.lanes), baud=args.baud,
              check_only=args.check_only, progress=not args.json, weights=args.weights,
              clock=_clock(args.clock), input_lanes=args.input_lanes,
              queue_depth=args.queue_depth, data_path=args.data, seed=args.seed,
              arch=args.arch)
    if r["arch"] == "serial":
        sp = r["serial"]
        tiled = {k: n for k, n in sp["tiles"].items() if n > 1}
        units = sp["plan"]["rule_units"]
        how = (f"the layer-serial processor, {describe_lanes(r['lanes'])} sharing "
               f"{units} neuron-rule unit{'s' if units > 1 else ''}, membrane memory "
               f"of {sp['membrane_words']} words"
               + (f" ({', '.join(f'{k} in {n} tiles' for k, n in tiled.items())})"
                  if tiled else ""))
    else:
        how = (f"the dataflow engines, {describe_lanes(r['lanes'])}"
               + (f", an input stage of {args.input_lanes} multiply-accumulate lanes"
                  if args.input_lanes else ""))
    lines = [f"{board.title}: {'fits' if r['fits'] else 'does NOT fit'} with {how}",
             f"  architecture {r['arch']}: {r['arch_reason']}"]
    lines += _resource_lines(r["resources"], r["estimated"])
    if r["arch"] == "serial" and r["serial"].get("weights") == "sdram":
        sp = r["serial"]
        lines.append(f"  weights and spike planes in the board's SDRAM: "
                     f"{sp['sdram_bytes'] / 2**20:.1f} MiB of it; each tile's weights into "
                     f"a buffer of {sp['weight_buffer_words']} words, "
                     f"{sp['sdram_words_per_sample'] * 2 / 2**20:.1f} MiB moved per "
                     "inference")
        lines.append(f"  its {r['load_bytes']:,} bytes of weights loaded over the link by "
                     "'hwsnn infer' after each power-up, and read back: the design runs "
                     "once their checksum is the one it was built for")
    for st in [] if r["arch"] == "serial" and r["serial"].get("weights") == "sdram" \
            else r["stores"]:
        what = (f"the processor's {st['source']}" if r["arch"] == "serial" else
                f"weights of {st['population']} (from {st['source']})")
        lines.append(f"  {what} in SPRAM: {st['depth']} words of {st['bytes_per_word']} "
                     "bytes, loaded over the link by 'hwsnn infer' after each power-up")
    if not r["estimated"]:
        pll = r["pll"]
        lines += [f"  Fmax {r['fmax_mhz']:.1f} MHz post-route, clock {r['clock_mhz']:g} MHz "
                  + (f"(PLL from the board's {r['board_clock_mhz']:g} MHz) " if pll else
                     "(the board's) ")
                  + f"({'met' if r['meets_clock'] else 'NOT met'})"
                  + (f", placed at seed {r['seed']}" if r.get("seed", 1) != 1 else ""),
                  f"  latency {r['latency_us']:.1f} µs per inference on average, "
                  f"{r['latency_worst_us']:.1f} µs at worst, at {r['clock_mhz']:g} MHz "
                  f"({r['latency_cycles']:.0f} / {r['latency_worst_cycles']:.0f} cycles: "
                  + ("the processor's ideal cycles, " if r["arch"] == "serial" else
                     "every engine's ideal work in turn, ")
                  + f"over {r['latency_data']}), {r['inferences_per_second']:.0f} "
                  + ("inferences/s" if r["arch"] == "serial" else "inferences/s pipelined"),
                  f"  bitstream {r['bitstream']}"]
        untimed = r.get("untimed_block_paths")
        if untimed:
            lines.insert(-2, f"  not in the Fmax: paths through unregistered DSP blocks, "
                             f"which nextpnr does not time ({untimed['into_ns']:.1f} ns into "
                             f"one at worst, {untimed['out_of_ns']:.1f} ns out: "
                             f"{untimed['left_ns_at_fmax']:.1f} ns of the period at Fmax "
                             "left for the block)")
        if not r["meets_clock"]:
            lines.append(f"  WARNING: the clock is above the Fmax; rebuild with --clock "
                         f"{0.95 * r['fmax_mhz']:.0f} (or --clock auto)")
        elif not pll and r["fmax_mhz"] > 1.2 * r["clock_mhz"]:
            lines.append(f"  --clock auto would run it on a PLL near {r['fmax_mhz']:.0f} MHz "
                         f"({r['latency_us_at_fmax']:.1f} µs per inference)")
    _emit(args, r, "\n".join(lines))
    return 0


def cmd_report(args) -> int:
    from . import report
    _check_writes_in(args.directory, report.FIGURES)
    md = Path(args.directory) / "report.md"
    if md.exists() and not outdir.is_report(md):
        raise HwsnnError(f"{md} exists and hwsnn did not write it; hwsnn report would "
                         "replace it: move it away first")
    r = report.write(args.directory)
    ev = r["evaluation"]
    sims = ", ".join(f"{k} {'bit-exact' if v['exact'] else 'MISMATCH'} on {v['samples']}"
                     for k, v in r["simulations"].items()) or "not simulated"
    boards = ", ".join(f"{k} {v['fmax_mhz']:.1f} MHz" for k, v in r["builds"].items()) \
        or "not built"
    _emit(args, r, f"wrote {r['report']}: golden accuracy {100 * ev['golden_accuracy']:.2f} %"
          f"; {sims}; {boards}")
    return 0


PLOT_SIGNATURES = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF", ".svg": b"<?xml"}


def _check_plot(path, option: str) -> Path:
    return outdir.check_file(path, f"{option} {path}", suffixes=tuple(PLOT_SIGNATURES),
                             signature=PLOT_SIGNATURES.get(Path(path).suffix.lower()))


def cmd_explore(args) -> int:
    from .. import boards
    from ..flow import explore
    board = boards.get(args.board)
    plot = _check_plot(args.plot or f"explore-{args.model}-{board.name}.png",
                       "--plot" if args.plot else "the plot")
    from .cluster import check_workers, default_workers
    check_workers(args.workers, args.scheduler)
    clock = _clock(args.clock)
    if not args.pick and args.clock != "board":
        raise HwsnnError("--clock goes with --pick: the clock its build must meet")
    # Default: a local cluster of one worker per core (one core: here, one after another).
    workers = args.workers if args.workers or args.scheduler else default_workers()
    if args.pick:
        outdir.check_directory(args.pick, f"--pick {args.pick}")
    r = explore.search(args.model, board, max_accuracy_drop=args.max_accuracy_drop,
                       progress=not args.json, data_path=args.data, workers=workers,
                       scheduler=args.scheduler)
    r["plot"] = str(outdir.write_file(plot, lambda tmp: explore.plot(r, Path(tmp))))
    lines = [f"{args.model} on {board.title}: {len(r['points'])} of {r['tried']} points fit "
             f"within {args.max_accuracy_drop:g} percentage points of the ANN "
             f"({100 * r['ann_accuracy']:.2f} %); {r['does_not_fit']} do not fit, "
             f"{r['too_inaccurate']} lose too much accuracy.",
             f"Accuracies on {r['samples']} samples of {r['data']}, cycles on the first "
             f"{r['cycle_samples']}. Pareto front:",
             f"  {'point':34s} {'accuracy':>8s} {'latency µs':>10s} "
             f"{board.device.logic_name:>11s} {'BRAM':>4s} {'SPRAM':>5s} {'DSP':>3s}"]
    for p in r["front"]:
        pt = explore.Point(**p)
        lines.append(f"  {pt.label():34s} {100 * pt.accuracy:7.2f}% {pt.latency_us:10.0f} "
                     f"{pt.logic:11d} {pt.bram_blocks:4d} {pt.spram_blocks:5d} {pt.dsps:3d}")
    if not r["front"]:
        lines.append("  (none: " + ("a larger board, e.g. --board ulx3s-85f, or " if
                                    board.name != "ulx3s-85f" else "")
                     + "a larger --max-accuracy-drop)")
    lines.append(f"plot: {r['plot']}")
    if args.pick:
        got = explore.pick(r, board, args.pick, progress=not args.json, data_path=args.data,
                           clock=clock, workers=workers, scheduler=args.scheduler)
        r["picked"] = got
        b, s = got["build"], got["simulation"]
        lines.append(f"picked {explore.Point(**got['point']).label()} into {args.pick}: "
                     f"fits, Fmax {b['fmax_mhz']:.1f} MHz at {b['clock_mhz']:g} MHz, "
                     f"{b['latency_us']:.0f} µs; "
                     + (f"bit-exact on {s['samples']} samples" if s["exact"] else
                        f"MISMATCH: {s['first_divergence_text']}"))
    _emit(args, r, "\n".join(lines))
    return 0 if not args.pick or r["picked"]["simulation"]["exact"] else 1


def cmd_bench(args) -> int:
    from . import bench
    from .cluster import check_workers
    check_workers(args.workers)
    out = outdir.check_place(args.out, f"--out {args.out}")
    outdir.check_place(out / bench.FIGURES, f"--out {args.out}")
    md = out / "BENCHMARKS.md"
    if md.exists() and not outdir.starts_with(md, "# hwsnn benchmarks"):
        raise HwsnnError(f"{md} exists and hwsnn did not write it; hwsnn bench would "
                         "replace it: choose another --out")
    if args.only:
        r = bench.update(args.out, tuple(args.only), boards=not args.no_boards,
                         slow_boards=args.slow_boards, progress=not args.json,
                         workers=args.workers, scheduler=args.scheduler)
        _emit(args, r, f"wrote BENCHMARKS.md: {', '.join(args.only)} measured again, the "
              "rest as the last full run left it")
        return 0
    r = bench.run(args.out, quick=args.quick, boards=not args.no_boards,
                  progress=not args.json, samples=args.samples,
                  random_engines=args.random_engines, random_networks=args.random_networks,
                  data_path=args.data, models=args.model, slow_boards=args.slow_boards,
                  workers=args.workers, scheduler=args.scheduler)
    _emit(args, r, bench.summary(r))
    return 0


def cmd_flash(args) -> int:
    import subprocess
    from pathlib import Path

    from .. import boards
    board = boards.get(args.board)
    bit = Path(args.directory) / "build" / board.name / f"hwsnn_board.{board.bitstream_ext}"
    if not bit.is_file() and not args.dry_run:
        raise HwsnnError(f"{bit} does not exist: run 'hwsnn build {args.directory} --board "
                         f"{board.name}' first")
    if bit.is_file():
        _check_not_stale(args.directory, bit)
    cmd = board.program_command(str(bit))
    if args.dry_run:
        _emit(args, {"command": cmd, "bitstream": str(bit), "exists": bit.is_file()},
              " ".join(cmd))
        return 0
    try:
        subprocess.run(cmd, check=True)
    except FileNotFoundError:
        raise HwsnnError(f"{cmd[0]} is not installed (or set {board.programmer_env} to "
                         "the programmer)") from None
    except subprocess.CalledProcessError as exc:
        raise HwsnnError(f"{cmd[0]} failed with exit status {exc.returncode}") from None
    _emit(args, {"command": cmd, "bitstream": str(bit)}, f"programmed {board.title}")
    return 0


def _check_not_stale(directory, bit: Path) -> None:
    """Refuse a bitstream built from another network than the one in ``directory``."""
    from ..hdl.verilog import fingerprint
    from ..snn.qnet import load as load_qnet
    try:
        made_from = json.loads((bit.parent / "report.json").read_text()).get("qnet_sha256")
    except (OSError, ValueError, AttributeError):
        made_from = None
    if made_from != fingerprint(load_qnet(directory)):
        raise HwsnnError(f"{bit} was not built from the network in {directory} (converted "
                         f"again since?): run 'hwsnn build {directory} --board "
                         f"{bit.parent.name}' again")


def cmd_infer(args) -> int:
    from ..flow.infer import infer
    r = infer(args.directory, args.port, baud=args.baud, samples=args.samples,
              offset=args.offset, images=args.images, timeout=args.timeout,
              progress=not args.json, data_path=args.data)
    lines = [f"{r['port']}: model {r['model_id']}, {r['samples']} inferences on {r['data']}"]
    for row in r["results"]:
        label = "" if row["label"] is None else f" (label {row['label']})"
        lines.append(f"  sample {row['sample']:4d}: class {row['class']}{label}, "
                     f"{row['cycles']} cycles, values {row['values']}"
                     + ("" if row["matches_golden"] else "  <- differs from the golden model"))
    if "accuracy" in r:
        lines.append(f"  accuracy {100 * r['accuracy']:.2f} %")
    lines.append(f"  {r['golden_mismatches']} answers differ from the golden model")
    if r["images_per_second"] and args.port != "golden":
        lines.append(f"  {r['images_per_second']:.0f} images/s end to end at {r['baud']:,} "
                     "baud (pipelined, packed)")
    _emit(args, r, "\n".join(lines))
    return 0 if r["golden_mismatches"] == 0 else 1


def cmd_demo(args) -> int:
    from ..hdl import verilog
    from ..sim.run import simulate
    lanes = _lanes(args.lanes)
    out = args.output or tempfile.mkdtemp(prefix="hwsnn-demo-")
    ns = argparse.Namespace(
        model="digits-cnn", weights=None, input_shape=None, calibration_data=None, dataset=None,
        calibration_samples=512, normalize=None, input_range="0,1", method="gn",
        timesteps=2, group_size="4", cos_steps=8, weight_bits=DEFAULT_WEIGHT_BITS,
        max_membrane_bits=DEFAULT_MAX_MEMBRANE_BITS, percentile=str(DEFAULT_PERCENTILE),
        max_accuracy_loss=api.DEFAULT_MAX_ACCURACY_LOSS,
        json=args.json)
    conv, directory = _do_convert(ns, out)
    r = api.evaluate(directory, lanes=lanes)
    r["directory"] = str(directory)
    desc = verilog.write(directory, conv.qnet, lanes=lanes)
    r["verilog"] = desc["files"]["verilog"]
    report = simulate(directory, simulator=args.simulator, samples=args.sim_samples,
                      progress=not args.json)
    sim = report.to_json()
    r["sim"] = sim
    said = f"{lanes} lanes per engine" if isinstance(lanes, int) else _describe_lanes(lanes)
    text = (f"hwsnn demo: digits-cnn → group neurons GN(τ=4), T=2 → 8-bit QNet in {directory}\n"
            + _eval_text(r) + f"\nVerilog: {r['verilog']} ({desc['verilog_lines']} lines, "
            f"{said})\n" + _sim_text(sim))
    _emit(args, r, text)
    return 0 if report.exact else 1


def verilog_defaults():
    from ..hdl.verilog import DEFAULT_LANES, DEFAULT_TOP
    return DEFAULT_LANES, DEFAULT_TOP


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hwsnn", description="Open hardware generator for spiking neural "
                "networks: PyTorch model → bit-exact SNN.")
    p.add_argument("--version", action="version", version=f"hwsnn {api.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="list the bundled models")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("convert", help="convert a trained model to a quantized SNN (QNet)")
    s.add_argument("model", metavar="MODEL", help="a bundled model name (see 'hwsnn models'), "
                   "a torch.export program (.pt2), a NIR graph (.nir, see docs/nir.md), or "
                   "package.module:factory with --weights")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    s.add_argument("--weights", metavar="FILE", help="state dict for package.module:factory")
    s.add_argument("--input-shape", metavar="C,H,W", help="input shape without batch")
    s.add_argument("--method", choices=METHODS, default="gn",
                   help="if, if-shift (Deng & Gu), gn (group neurons), ilif (temporal "
                        "separation), cos (offset-spike calibration); default gn")
    s.add_argument("--timesteps", "-T", type=int, default=None,
                   help="time steps T (ilif: bits per value); default 4 (a NIR graph "
                        "written by hwsnn: its own)")
    s.add_argument("--group-size", metavar="TAU", help="GN group size τ, or per layer "
                   "like conv1=4,conv2=2 (default 4)")
    s.add_argument("--cos-steps", type=int, default=8, help="COS pre-simulation steps ρ")
    s.add_argument("--weight-bits", type=int, default=DEFAULT_WEIGHT_BITS)
    s.add_argument("--max-membrane-bits", type=int, default=DEFAULT_MAX_MEMBRANE_BITS)
    s.add_argument("--max-accuracy-loss", type=float, default=api.DEFAULT_MAX_ACCURACY_LOSS,
                   metavar="PT", help="refuse a conversion whose integer network scores more "
                   "than PT percentage points below the float SNN on the calibration data "
                   "(default %(default)s); the error names the weight width that would do")
    s.add_argument("--calibration-data", metavar="DATA",
                   help="threshold-balancing inputs: an .npz (arrays x, y), a "
                        "torchvision-style MNIST folder (its train files) or "
                        "package.module:factory (factory('train') returns a torch "
                        "Dataset); default: the training split of the bundled model's own "
                        "data set, or of --dataset")
    s.add_argument("--calibration-samples", type=int, default=512)
    s.add_argument("--dataset", choices=data.DATASETS,
                   help="the shipped data set the model was trained on (calibration, and "
                        "the default test data of eval, sim and infer); a bundled model "
                        "knows its own, any other model's data is not guessed from its shape")
    s.add_argument("--percentile", default=str(DEFAULT_PERCENTILE),
                   help="activation percentile for ReLU thresholds, or 'max'")
    s.add_argument("--input-range", default="0,1", metavar="LO,HI",
                   help="raw input range mapped to 8-bit codes (default 0,1)")
    s.add_argument("--normalize", metavar="MEAN/STD",
                   help="input normalisation the model expects, folded into layer 1")
    s.add_argument("--nir-reset", choices=("subtract", "zero"),
                   help="NIR input: reset after a spike (default subtract; zero is refused)")
    s.add_argument("--nir-threshold", choices=("gt", "ge"),
                   help="NIR input: fire when V > threshold (gt, the NIR text; default) or "
                        "V >= threshold (ge)")
    s.add_argument("--nir-v0", choices=("zero", "half"),
                   help="NIR input: initial membrane potential 0 (default) or threshold/2")
    s.add_argument("--nir-lif", choices=("refuse", "if"), default="refuse",
                   help="NIR input: refuse LIF neurons (default) or approximate them by IF")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("export-nir", help="write a converted network as a NIR graph")
    s.add_argument("directory", metavar="DIR", help="output of 'hwsnn convert'")
    s.add_argument("-o", "--output", required=True, metavar="FILE.nir", help="NIR file")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_export_nir)

    s = sub.add_parser("eval", help="ANN vs float SNN vs integer golden accuracy")
    s.add_argument("directory", metavar="DIR", help="output of 'hwsnn convert'")
    s.add_argument("--data", metavar="DATA", help="labelled test data: an .npz (arrays x, "
                   "y), a torchvision-style MNIST folder (its t10k files) or "
                   "package.module:factory (factory('test') returns a torch Dataset); "
                   "default: the bundled test split of the model's data set")
    s.add_argument("--samples", type=int, help="evaluate the first N samples only")
    s.add_argument("--lanes", default="1", help="lanes P for the ideal cycle count (default "
                   "1), or per population: fc1=8,fc2=1")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("verilog", help="write the Verilog of a converted network, with a "
                       "port description, into DIR/rtl")
    s.add_argument("directory", metavar="DIR", help="output of 'hwsnn convert'")
    s.add_argument("--lanes", default=str(verilog_defaults()[0]),
                   help="lanes P (neurons updated per cycle) of every engine (default "
                   "%(default)s), or per population: fc1=8,fc2=1 (the rest get 1)")
    s.add_argument("--top", default=verilog_defaults()[1], help="top module name")
    _input_lanes_arg(s)
    _queue_depth_arg(s)
    s.add_argument("--no-taps", action="store_true", help="leave out the debug taps (every "
                   "population's events and work counter as ports)")
    s.add_argument("--lint", action="store_true", help="also run verilator --lint-only -Wall")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_verilog)

    s = sub.add_parser("sim", help="simulate DIR's Verilog with cocotb against the golden "
                       "model (writes the Verilog first if there is none)")
    s.add_argument("directory", metavar="DIR", nargs="+", help="output of 'hwsnn "
                   "convert' (several: one sharded regression over all of them)")
    s.add_argument("--simulator", choices=("verilator", "icarus", "icarus-sv", "yosys"),
                   default="verilator",
                   help="verilator (default); icarus (Icarus Verilog, -g2005); icarus-sv "
                   "(Icarus, SystemVerilog rules: -g2012); yosys (Yosys's own sim, tens of "
                   "cycles/s: a few samples of small designs; no --stall, no --waves)")
    s.add_argument("--verilog", metavar="FILE", help="simulate this Verilog file instead of "
                   "DIR's (a design edited by hand, a netlist): its module --top (default: "
                   "the design's top) must have the ports of DIR/rtl/TOP.json")
    s.add_argument("--samples", type=_samples_arg, default=100, metavar="N|all",
                   help="test samples (default 100), or all: the whole test split from "
                   "--offset; more than --shard-size run in shards on Dask workers")
    s.add_argument("--offset", type=int, default=0, help="first test sample")
    s.add_argument("--workers", type=int, metavar="N", help="simulate in shards on a local "
                   "Dask cluster of N worker processes (default, for more than one shard: "
                   "one per core); each keeps its own simulator build")
    s.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="simulate in shards on "
                   "the workers of this Dask scheduler (they need hwsnn, the simulator and "
                   "DIR at the same path)")
    s.add_argument("--shard-size", type=int, default=100, metavar="K",
                   help="samples per shard (default 100; the result does not depend on "
                   "the number of workers)")
    s.add_argument("--data", metavar="DATA", help="labelled test data: an .npz (arrays x, "
                   "y), a torchvision-style MNIST folder (its t10k files) or "
                   "package.module:factory (factory('test') returns a torch Dataset); "
                   "default: the bundled test split of the model's data set")
    s.add_argument("--top", help="the design in DIR/rtl to run, when there are several "
                   "(with --verilog: the module in FILE to run)")
    s.add_argument("--lanes", help="regenerate the design with these lanes first: one count "
                   "for every engine, or per population (fc1=8,fc2=1); with --arch serial, "
                   "the processor's lanes")
    s.add_argument("--stall", type=float, default=0.0,
                   help="fraction of cycles the bench withholds pixels and readout ready")
    s.add_argument("--seed", type=int, default=0, help="seed of the stalls")
    s.add_argument("--waves", action="store_true", help="record the signals (FST or VCD)")
    s.add_argument("--no-rerun", action="store_true", help="when the design differs, do not "
                   "run the samples up to the first divergence again with waves")
    s.add_argument("--bench", choices=("free", "edge"), default="free",
                   help="free (default): the simulator runs on its own through a Verilog "
                   "wrapper that feeds the pixels and records every transfer; edge: cocotb "
                   "drives and samples the ports on every clock edge (about 10-50x slower; "
                   "--stop-at-divergence takes it)")
    s.add_argument("--stop-at-divergence", action="store_true", help="stop at the first event "
                   "that differs from the golden model's (needs the debug taps); the counts "
                   "then cover the samples up to there")
    s.add_argument("--arch", choices=("dataflow", "serial"), default="dataflow",
                   help="dataflow (default): DIR's Verilog; serial: the layer-serial "
                   "processor (docs/serial.md) of DIR's serial build, or with --lanes P a "
                   "plan of P lanes")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_sim)

    s = sub.add_parser("boards", help="list the supported boards")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_boards)

    s = sub.add_parser("build", help="fit check, then synthesis, place and route and a "
                       "bitstream for a board")
    s.add_argument("directory", metavar="DIR", help="output of 'hwsnn convert'")
    s.add_argument("--board", required=True, help="see 'hwsnn boards'")
    s.add_argument("--lanes", default=None, help="lanes per engine (dataflow: default 1, "
                   "or per population: fc1=8,fc2=1; serial: one count, a power of two, "
                   "default the fastest that fits)")
    s.add_argument("--arch", choices=["auto", "dataflow", "serial"], default="auto",
                   help="dataflow: an engine per layer, all running at once; serial: one "
                   "engine running the layers in turn, for networks the dataflow design "
                   "does not fit (docs/serial.md); auto: dataflow if it fits, else serial "
                   "(default)")
    _input_lanes_arg(s)
    _queue_depth_arg(s)
    s.add_argument("--baud", type=int, default=None, help="UART baud rate of the host "
                   "link (default: 3000000 where the clock makes it within 1 %%, and --clock "
                   "auto picks such a clock; else the fastest standard rate the clock makes)")
    s.add_argument("--check-only", action="store_true", help="only the fit check")
    s.add_argument("--data", metavar="DATA", help="test data for the latency (mean and "
                   "worst): an .npz (arrays x, y), an MNIST folder or package.module:factory; "
                   "default: the test split of the model's data set")
    s.add_argument("--clock", default="board", help="board: the board's oscillator "
                   "(default); a frequency in MHz: a PLL at or below it; auto: build, then "
                   "rebuild on a PLL near the Fmax reached (twice the build time)")
    s.add_argument("--weights", choices=["auto", "bram", "spram", "sdram"], default="auto",
                   help="where weights live: block RAM in the bitstream, or (UP5K) SPRAM "
                   "loaded over the UART at run time, or (ULX3S, the layer-serial "
                   "processor) external SDRAM with the spike planes; auto: SPRAM for the "
                   "largest weights only when block RAM does not fit, SDRAM when neither "
                   "does (default)")
    s.add_argument("--seed", type=int, default=1, help="nextpnr's placement seed "
                   "(default 1); where the placer gives up, the next two are tried")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("report", help="write DIR/report.md: accuracy, bit-exactness, "
                       "resources, timing and plots of a design")
    s.add_argument("directory", metavar="DIR", help="output of 'hwsnn convert' (and of sim, "
                   "build, if they ran)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("explore", help="search method, T, τ, weight bits and lanes for a "
                       "board; the Pareto front of accuracy, latency and LUTs")
    s.add_argument("model", metavar="MODEL", help="a bundled model (see 'hwsnn models')")
    s.add_argument("--board", required=True, help="see 'hwsnn boards'")
    s.add_argument("--max-accuracy-drop", type=float, default=1.0, metavar="X",
                   help="keep points at most X percentage points below the ANN (default 1)")
    s.add_argument("--plot", metavar="FILE.png", help="where the plot goes (default "
                   "explore-MODEL-BOARD.png)")
    s.add_argument("--pick", metavar="DIR", help="convert, build and simulate the fastest "
                   "front point that builds, into DIR")
    s.add_argument("--data", metavar="DATA", help="labelled test data for the accuracies "
                   "(ANN and every point) and the cycle counts (and --pick's latency and "
                   "simulated samples): an .npz (arrays x, y), a torchvision-style MNIST "
                   "folder (its t10k files) or package.module:factory (factory('test') "
                   "returns a torch Dataset); default: the bundled test split of the model's "
                   "data set")
    s.add_argument("--clock", default="board", metavar="MHZ", help="with --pick: the clock "
                   "the picked design must meet: board (its oscillator, the default) or a "
                   "PLL clock in MHz, as 'hwsnn build --clock'")
    s.add_argument("--workers", type=int, metavar="N", help="estimate the conversions, and "
                   "build --pick's front points, at once on a local Dask cluster of N worker "
                   "processes (default: one per core; 1: one after another, here); the same "
                   "result: the fastest point that builds and meets the clock wins")
    s.add_argument("--scheduler", metavar="ADDR", help="run them on the Dask cluster at ADDR "
                   "(tcp://HOST:PORT) instead; its workers need hwsnn, the YoWASP tools and "
                   "this machine's paths")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_explore)

    s = sub.add_parser("bench", help="measure accuracy, SOPs, cycles, exactness, boards and "
                       "throughput in one run and write BENCHMARKS.md with plots")
    s.add_argument("--out", default=".", metavar="DIR", help="where BENCHMARKS.md and "
                   "benchmarks/figures/ go (default: the current directory)")
    s.add_argument("--quick", action="store_true", help="a smoke run: the digits MLP (or each "
                   "--model; with --data, the first model that takes it), T 1 and 2, 8 "
                   "simulated samples, no boards")
    s.add_argument("--no-boards", action="store_true", help="leave out the board builds")
    s.add_argument("--samples", type=int, help="simulated samples per design (default 100; "
                   "8 with --quick)")
    s.add_argument("--random-engines", type=int, metavar="N", help="random networks whose "
                   "every engine is checked (default 2000; 10 with --quick)")
    s.add_argument("--random-networks", type=int, metavar="N", help="random networks "
                   "simulated whole in Verilator (default 200; 2 with --quick)")
    s.add_argument("--model", action="append", metavar="NAME", help="a bundled model of the "
                   "accuracy section (repeat for several; default digits-mlp, digits-cnn, "
                   "digits28-mlp; with --data, every bundled model that takes its inputs)")
    s.add_argument("--data", metavar="DATA", help="labelled test data the accuracy section "
                   "(and the energy table) is measured on: an .npz (arrays x, y), a "
                   "torchvision-style MNIST folder (its t10k files) or package.module:factory "
                   "(factory('test') returns a torch Dataset); default: the bundled test "
                   "split of each model's data set; the other sections stay on the bundled "
                   "data")
    s.add_argument("--slow-boards", action="store_true", help="also rebuild the designs "
                   "whose build takes about an hour (the MNIST CNN on the ULX3S-85F); by "
                   "default BENCHMARKS.md quotes their recorded report")
    s.add_argument("--only", action="append", choices=("mnist", "boards"),
                   help="measure only this section again (boards: the digits designs' "
                   "board builds) and keep every other as the last full run's "
                   "benchmarks/figures/bench.json has it")
    s.add_argument("--workers", type=int, metavar="N", help="run the random networks and "
                   "the board builds on a local Dask cluster of N worker processes (default: "
                   "one per core; 1: one after another, here); the figures are the same")
    s.add_argument("--scheduler", metavar="ADDR", help="run them on the Dask cluster at ADDR "
                   "(tcp://HOST:PORT) instead; its workers need hwsnn, Verilator, the YoWASP "
                   "tools and this machine's paths (a shared file system)")
    s.add_argument("--json", action="store_true", help="print every figure as one JSON object")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("flash", help="program a board with the bitstream of 'hwsnn build'")
    s.add_argument("directory", metavar="DIR")
    s.add_argument("--board", required=True)
    s.add_argument("--dry-run", action="store_true", help="print the programmer command")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_flash)

    s = sub.add_parser("infer", help="run inferences on a board through its UART link and "
                       "compare them with the golden model")
    s.add_argument("directory", metavar="DIR", help="the converted network the board runs")
    s.add_argument("--port", required=True, help="serial port (e.g. /dev/ttyUSB1), or "
                   "'golden' for a software stand-in of the board")
    s.add_argument("--baud", type=int, default=None, help="the link's baud rate (default: "
                   "the one the build in DIR/build recorded, else 115200)")
    s.add_argument("--samples", type=int, default=10, help="test samples to send "
                   "(default 10)")
    s.add_argument("--offset", type=int, default=0, help="first test sample")
    s.add_argument("--data", metavar="DATA", help="labelled test data to send (accuracy "
                   "against its labels, every answer against the golden model): an .npz "
                   "(arrays x, y), a torchvision-style MNIST folder (its t10k files) or "
                   "package.module:factory (factory('test') returns a torch Dataset); "
                   "default: the bundled test split of the model's data set")
    s.add_argument("--images", metavar="FILE", help="send these images instead, without "
                   "labels (.npy, or .npz with array x, in the model's input range); not "
                   "with --data")
    s.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_infer)

    s = sub.add_parser("demo", help="run the whole flow on the bundled digits CNN: convert, "
                       "evaluate, write Verilog, simulate it against the golden model")
    s.add_argument("-o", "--output", metavar="DIR", help="where to write (default: a "
                   "temporary directory)")
    s.add_argument("--lanes", default="4", help="lanes per engine (default 4)")
    s.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    s.add_argument("--sim-samples", type=int, default=20,
                   help="test samples to simulate (default 20)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_demo)
    return p


class _UsageError(HwsnnError):
    """A command line argparse cannot parse."""


class _Parser(argparse.ArgumentParser):
    """argparse with hwsnn's one-line errors (its own print the usage first)."""

    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    reason = exc.strerror or str(exc)
    return (f"{where}: {reason}" if where else reason) + " (check the path and its permissions)"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (2: refused bad input, nothing written)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    want_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
        want_json = bool(getattr(args, "json", False))
        return args.func(args)
    except (HwsnnError, ValueError) as exc:
        message = _one_line(exc)
    except OSError as exc:
        message = _one_line(_os_error(exc))
    except KeyboardInterrupt:
        print("hwsnn: interrupted", file=sys.stderr)
        return 130
    if want_json:
        print(json.dumps({"error": message, "exit_status": 2}))
    print(f"hwsnn: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
