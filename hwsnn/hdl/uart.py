"""An 8N1 UART with stream ports: ``UartRx`` (line in, bytes out) and ``UartTx`` (bytes in,
line out), ``divisor`` clock cycles per bit (at least 4; ``uart_divisor`` picks it)."""

from __future__ import annotations

import numbers

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

MIN_DIVISOR = 4
MAX_BAUD_ERROR = 0.03

# A received byte: ``data``, and ``error`` set when its stop bit was low (a framing error:
# ``data`` holds the bits as they were sampled).
RX_BYTE = data.StructLayout({"data": unsigned(8), "error": unsigned(1)})


def _check_divisor(divisor) -> int:
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"UART divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be at least {MIN_DIVISOR} clock cycles per bit, "
                         f"not {divisor}")
    return divisor


def uart_divisor(clk_hz, baud) -> tuple[int, float]:
    """``(clk_hz // baud, relative baud error)``, checked: at least 4 cycles per bit and
    within 3 % of ``baud``."""
    for name, value in (("clock frequency", clk_hz), ("baud rate", baud)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, not {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")
    divisor = int(clk_hz // baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"a {clk_hz:g} Hz clock gives {divisor} cycles per bit at {baud:g} "
                         f"baud; the UART needs at least {MIN_DIVISOR}: lower the baud rate")
    achieved = clk_hz / divisor
    error = (achieved - baud) / baud
    if abs(error) > MAX_BAUD_ERROR:
        raise ValueError(f"a {clk_hz:g} Hz clock cannot make {baud:g} baud: divisor {divisor} "
                         f"gives {achieved:.0f} baud, {error:+.1%} off (at most "
                         f"±{MAX_BAUD_ERROR:.0%}); choose another baud rate or clock")
    return divisor, error


class UartTx(wiring.Component):
    """8N1 transmitter: a byte on ``i`` (a stream, ready when idle) goes out on ``tx``,
    start bit, 8 data bits LSB first, stop bit, each ``divisor`` cycles; ``i`` is ready
    again in the cycle after the stop bit's last."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(unsigned(8))), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(8)
        left = Signal(range(11))  # bit periods left in this byte (0: idle)
        count = Signal(range(self.divisor))
        m.d.comb += self.i.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [self.tx.eq(0), shreg.eq(self.i.payload), left.eq(10),
                             count.eq(self.divisor - 1)]
        with m.Elif(count == 0):
            # data bits, then ones: the stop bit and idle
            m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(Cat(shreg[1:], 1)), left.eq(left - 1),
                         count.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += count.eq(count - 1)
        return m


class UartRx(wiring.Component):
    """8N1 receiver: ``rx`` (idle high, synchronised here by two flip-flops) is sampled in
    the middle of every bit. Each byte becomes a beat on ``o`` (``RX_BYTE``: ``error`` set
    when its stop bit was low; then the receiver waits for the line to go high again),
    valid from the cycle after its stop bit's middle until taken. A consumer that is always
    ready sees each beat for one cycle; a byte that ends while the last one still waits
    is lost (a consumer must take each within a byte time)."""

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(RX_BYTE))})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        count = Signal(range(d))
        nbit = Signal(range(8))
        shreg = Signal(8)
        o = self.o
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)

        def put(error):  # a beat, unless the last one still waits
            with m.If(~o.valid | o.ready):
                m.d.sync += [o.payload.data.eq(shreg), o.payload.error.eq(error),
                             o.valid.eq(1)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += count.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(~line):
                    m.d.sync += [count.eq(d - 1), nbit.eq(0)]
                    m.next = "DATA"
                with m.Else():
                    m.next = "IDLE"  # a glitch, not a start bit
            with m.State("DATA"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), nbit.eq(nbit + 1),
                                 count.eq(d - 1)]
                    with m.If(nbit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(line):
                    put(0)
                    m.next = "IDLE"
                with m.Else():
                    put(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
