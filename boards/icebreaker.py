"""1BitSquared iCEBreaker: iCE40 UP5K, 12 MHz oscillator, FTDI UART."""

from . import UP5K, Board

BOARDS = [
    Board(name="icebreaker", title="iCEBreaker (iCE40 UP5K)",
          platform="amaranth_boards.icebreaker:ICEBreakerPlatform", device=UP5K,
          clock="clk12", clock_mhz=12.0, programmer=("iceprog", "{bitstream}"),
          programmer_env="ICEPROG", bitstream_ext="bin",
          url="https://github.com/icebreaker-fpga/icebreaker"),
]
