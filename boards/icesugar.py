"""MuseLab iCESugar 1.5: iCE40 UP5K, 12 MHz oscillator, UART through the iCELink probe."""

from . import UP5K, Board

BOARDS = [
    Board(name="icesugar", title="iCESugar (iCE40 UP5K)",
          platform="amaranth_boards.icesugar:ICESugarPlatform", device=UP5K,
          clock="clk12", clock_mhz=12.0, programmer=("icesprog", "{bitstream}"),
          programmer_env="ICESPROG", bitstream_ext="bin",
          url="https://github.com/wuxx/icesugar"),
]
