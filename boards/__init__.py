"""Supported FPGA boards (installed as ``hwsnn.boards``).

Each module of this package describes one board (or one board in several device sizes)
with a module-level ``BOARDS`` list of ``Board`` objects; adding a board is adding one
file. ``get(name)`` and ``all_boards()`` find them.

A ``Board`` names its amaranth-boards platform, the clock and UART resources the host
link uses, the resource budget of its FPGA (what the fit check compares an estimate
against before synthesis), and how to program it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shlex
from dataclasses import dataclass, field

from ..errors import HwsnnError

#: What an FPGA family's logic is counted in: the iCE40's logic cells (a LUT4, a flip-flop
#: and a carry each: ICESTORM_LC), the ECP5's LUT4s (TRELLIS_COMB).
LOGIC_KINDS = {"ice40": "logic_cells", "ecp5": "luts"}
LOGIC_NAMES = {"ice40": "logic cells", "ecp5": "LUT4s"}


@dataclass(frozen=True)
class Device:
    """What an FPGA offers. Block RAMs are given as (depth, width) configurations."""

    family: str  # "ice40" or "ecp5"
    name: str  # the device as amaranth / nextpnr know it
    logic: int  # iCE40 logic cells, ECP5 LUT4s (``logic_kind``)
    ffs: int
    bram_blocks: int
    bram_bits: int  # bits per block
    bram_modes: tuple[tuple[int, int], ...]  # (depth, width) configurations
    spram_blocks: int = 0  # UP5K: 256 kbit single-port RAMs (16 K × 16)
    dsps: int = 0

    @property
    def logic_kind(self) -> str:
        """The resource ``logic`` counts: ``logic_cells`` (iCE40) or ``luts`` (ECP5)."""
        return LOGIC_KINDS[self.family]

    @property
    def logic_name(self) -> str:
        """``logic cells`` or ``LUT4s``."""
        return LOGIC_NAMES[self.family]


ICE40_BRAM_MODES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_BRAM_MODES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

UP5K = Device("ice40", "iCE40UP5K", logic=5280, ffs=5280, bram_blocks=30, bram_bits=4096,
              bram_modes=ICE40_BRAM_MODES, spram_blocks=4, dsps=8)


def ecp5(size: str, luts: int, ebr: int, dsps: int, name: str | None = None) -> Device:
    return Device("ecp5", name or f"LFE5U-{size}", logic=luts, ffs=luts, bram_blocks=ebr,
                  bram_bits=18432, bram_modes=ECP5_BRAM_MODES, dsps=dsps)


@dataclass(frozen=True)
class Board:
    name: str  # what users type: hwsnn build DIR --board NAME
    title: str
    platform: str  # "module:Class" of the amaranth-boards platform
    device: Device
    clock: str  # clock resource name
    clock_mhz: float
    uart: int = 0  # UART resource number
    drive_high: tuple[str, ...] = ()  # resources the top must drive to 1 (e.g. tx enables)
    programmer: tuple[str, ...] = ()  # command, "{bitstream}" marks the file
    programmer_env: str = ""  # environment variable that replaces the program's name
    bitstream_ext: str = "bin"
    url: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)
    # External RAM the processor can keep its weights and spike planes in: an
    # ``hdl.sdram.SDRAMChip`` on the platform's "sdram" resource, or None
    external_ram: object = None

    def make_platform(self):
        module, _, cls = self.platform.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise HwsnnError(f"board {self.name} needs {module} ({exc}): pip install "
                             "amaranth-boards") from None
        return getattr(mod, cls)()

    def program_command(self, bitstream: str) -> list[str]:
        cmd = [a.replace("{bitstream}", bitstream) for a in self.programmer]
        if self.programmer_env and os.environ.get(self.programmer_env):
            cmd[0:1] = shlex.split(os.environ[self.programmer_env])
        return cmd


def all_boards() -> dict[str, Board]:
    found: dict[str, Board] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for board in getattr(module, "BOARDS", []):
            if board.name in found:
                raise HwsnnError(f"two board files define board {board.name!r}")
            found[board.name] = board
    return dict(sorted(found.items()))


def get(name: str) -> Board:
    boards = all_boards()
    try:
        return boards[name]
    except KeyError:
        raise HwsnnError(f"unknown board {name!r}: choose from {', '.join(boards)} "
                         "(or add a file to boards/)") from None
