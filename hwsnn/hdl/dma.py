"""DMA streams between the SDRAM controller's ports (``hdl.sdram``) and the processor's
on-chip memories (docs/sdram.md): wide words (P weights, P counts) each ``ratio``
consecutive SDRAM words, lowest bits first.

- ``SDRAMReader``: ``count`` wide words from SDRAM word ``addr`` on, as a stream (a tile's
  weights into the weight buffer; a plane into the plane scanner). It issues a read
  command in every cycle its port takes one and assembles the words as they return; when
  its output is not taken, the words back up into the controller's return buffer for its
  port, which then takes no more of its reads (and nobody else's waits).
- ``SDRAMWriter``: a stream of (wide word address, wide word) written as ``ratio`` SDRAM
  words each, at ``base`` + address × ``ratio`` (the sweeps' plane words). ``idle``: it
  holds nothing (with its input empty, every write has gone to the controller, which runs
  its port's commands in order with everyone else's).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from .sdram import command_layout

__all__ = ["SDRAMReader", "SDRAMWriter", "write_layout"]


def _ratio(ratio) -> int:
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1 \
            or ratio & (ratio - 1):
        raise ParameterError(f"ratio must be a power of two, not {ratio!r}")
    return ratio


class SDRAMReader(wiring.Component):
    """Reads ``count`` words of ``ratio`` SDRAM words each, from SDRAM word ``addr``.

    ``start`` (a pulse while not ``busy``) takes ``addr`` and ``count`` (≥ 1); ``busy`` is
    high from the next cycle until the last word has been taken from ``o``. ``cmd`` and
    ``rdata`` go to one of the controller's ports (``chip``: its geometry)."""

    def __init__(self, chip, *, ratio: int, count_bits: int):
        self.chip, self.ratio = chip, _ratio(ratio)
        layout = command_layout(chip)
        self.addr_bits = chip.row_bits + chip.bank_bits + chip.col_bits
        super().__init__({
            "start": In(1), "addr": In(self.addr_bits), "count": In(count_bits),
            "busy": Out(1),
            "cmd": Out(stream.Signature(layout)),
            "rdata": In(stream.Signature(chip.dq_bits)),
            "o": Out(stream.Signature(ratio * chip.dq_bits))})

    def elaborate(self, platform):
        m = Module()
        n, dq = self.ratio, self.chip.dq_bits
        total = Signal(len(self.count) + n.bit_length())  # SDRAM words still to ask for
        got = Signal.like(total)  # SDRAM words still to come
        at = Signal(self.addr_bits)
        busy = self.busy
        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), at.eq(self.addr), total.eq(self.count * n),
                         got.eq(self.count * n)]
        m.d.comb += [self.cmd.valid.eq(busy & (total != 0)), self.cmd.payload.addr.eq(at),
                     self.cmd.payload.write.eq(0)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [at.eq(at + 1), total.eq(total - 1)]
        # Assembly: parts 0 .. n − 1 of a word, then the word waits in ``o``'s register.
        part = Signal(range(max(2, n)))
        acc = Signal((n - 1) * dq) if n > 1 else None
        full = Signal()  # o holds a word
        m.d.comb += self.o.valid.eq(full)
        last_part = part == n - 1
        m.d.comb += self.rdata.ready.eq(~(last_part & full & ~self.o.ready))
        with m.If(self.o.ready & full):
            m.d.sync += full.eq(0)
        with m.If(self.rdata.valid & self.rdata.ready):
            m.d.sync += got.eq(got - 1)
            if n > 1:
                with m.If(last_part):
                    m.d.sync += [self.o.payload.eq(Cat(acc, self.rdata.payload)), full.eq(1),
                                 part.eq(0)]
                with m.Else():
                    # (part k lands at the top of acc and moves down as later ones come)
                    m.d.sync += [acc.eq(Cat(acc[dq:], self.rdata.payload)),
                                 part.eq(part + 1)]
            else:
                m.d.sync += [self.o.payload.eq(self.rdata.payload), full.eq(1)]
        with m.If(busy & (got == 0) & ~full):
            m.d.sync += busy.eq(0)
        return m


def write_layout(addr_bits: int, width: int) -> data.StructLayout:
    """A wide word to write: its ``addr`` (in wide words) and ``data``."""
    return data.StructLayout({"addr": addr_bits, "data": width})


class SDRAMWriter(wiring.Component):
    """Writes each word of ``i`` (a wide word address and ``ratio`` SDRAM words of data) at
    SDRAM words ``base`` + addr × ``ratio`` + k, k = 0 … ratio − 1, part k from bit
    k·16. ``idle``: no word held (in flight only inside the controller)."""

    def __init__(self, chip, *, ratio: int, addr_bits: int, base: int = 0):
        self.chip, self.ratio, self.base = chip, _ratio(ratio), base
        self.sdram_bits = chip.row_bits + chip.bank_bits + chip.col_bits
        if base < 0 or base + (ratio << addr_bits) > 1 << self.sdram_bits:
            raise ParameterError(f"a writer of {addr_bits}-bit addresses from SDRAM word "
                                 f"{base} runs past the chip's {1 << self.sdram_bits} words")
        super().__init__({
            "i": In(stream.Signature(write_layout(addr_bits, ratio * chip.dq_bits))),
            "idle": Out(1),
            "cmd": Out(stream.Signature(command_layout(chip)))})

    def elaborate(self, platform):
        m = Module()
        n, dq = self.ratio, self.chip.dq_bits
        held = Signal()
        at = Signal(self.sdram_bits)
        word = Signal(n * dq)
        part = Signal(range(max(2, n)))
        last = part == n - 1
        done = self.cmd.valid & self.cmd.ready & last  # the held word's last part goes
        m.d.comb += [self.i.ready.eq(~held | done), self.idle.eq(~held),
                     self.cmd.valid.eq(held), self.cmd.payload.addr.eq(at),
                     self.cmd.payload.write.eq(1), self.cmd.payload.data.eq(word[:dq]),
                     self.cmd.payload.bytes.eq((1 << (dq // 8)) - 1)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [at.eq(at + 1), part.eq(Mux(last, 0, part + 1))]
            if n > 1:
                m.d.sync += word.eq(word >> dq)
        with m.If(done):
            m.d.sync += held.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(1), word.eq(self.i.payload.data), part.eq(0),
                         at.eq(self.base + self.i.payload.addr * n)]
        return m
