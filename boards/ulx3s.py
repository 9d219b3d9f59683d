"""Radiona ULX3S: ECP5 12F/25F/45F/85F, 25 MHz oscillator, FTDI UART, 32 MB of SDR
SDRAM (16 bits)."""

from ..hdl.sdram import ULX3S_SDRAM
from . import Board, ecp5

_SIZES = {  # device → (LUT4s, EBR blocks, 18×18 multipliers)
    "12F": (12288, 32, 28),
    "25F": (24288, 56, 28),
    "45F": (43848, 108, 72),
    "85F": (83640, 208, 156),
}

BOARDS = [
    Board(name=f"ulx3s-{size.lower()}", title=f"ULX3S (ECP5 LFE5U-{size})",
          platform=f"amaranth_boards.ulx3s:ULX3S_{size}_Platform",
          device=ecp5(size, luts, ebr, dsps), clock="clk25", clock_mhz=25.0,
          drive_high=("uart_tx_enable",),
          programmer=("openFPGALoader", "-b", "ulx3s", "-m", "{bitstream}"),
          programmer_env="OPENFPGALOADER", bitstream_ext="bit",
          url="https://radiona.org/ulx3s/", external_ram=ULX3S_SDRAM)
    for size, (luts, ebr, dsps) in _SIZES.items()
]
