"""MuseLab iCESugar-Pro: ECP5 LFE5U-25F on a SODIMM card, 25 MHz, UART through iCELink."""

from . import Board, ecp5

BOARDS = [
    Board(name="icesugar-pro", title="iCESugar-Pro (ECP5 LFE5U-25F)",
          platform="amaranth_boards.icesugar_pro:ICESugarProPlatform",
          device=ecp5("25F", 24288, 56, 28), clock="clk25", clock_mhz=25.0,
          programmer=("icesprog", "{bitstream}"), programmer_env="ICESPROG",
          bitstream_ext="bit", url="https://github.com/wuxx/icesugar-pro"),
]
