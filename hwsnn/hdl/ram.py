"""Block RAM reads that synthesis maps onto the RAM blocks' own read ports, with no logic.

An Amaranth synchronous read port promises two things the RAM blocks of iCE40 and ECP5 do
not give, so Yosys builds both out of logic cells beside every block:
- a **power-up and reset value** of the read data (0): the blocks' output latches come up
  undefined and have no reset, so Yosys adds a flag flip-flop and a multiplexer per bit;
- the **old data on a read-during-write** of one address in one cycle: the blocks leave it
  undefined (iCE40) or give it only on one port, so Yosys keeps a copy of the written data
  and address in flip-flops and compares them: about three flip-flops, and a LUT, a bit.

``ram(..., collisions="undefined")`` drops the second (Yosys's ``no_rw_check``
attribute): only for a memory whose read data is never used in a cycle after a write to
its address in the read's cycle. ``registered_read`` drops the first: a combinational
read port and a register without reset (``reset_less``) and marked ``NO_INIT``, whose
power-up value the build clears (``hwsnn.flow.build`` and ``flow.synth``: ``setattr
-unset init a:hwsnn_no_init``), so that Yosys merges the register into the block; only
for read data that nothing uses before an operation has read it. Together they leave the
block alone; on a RAM whose collisions stay "old" (the emulation covers the power-up
value too) or a ROM (no emulation) ``registered_read`` neither costs nor saves anything.

Simulation would not show a read that breaks the collision rule: it gives the old data,
as the code says. So under ``poison_collisions()`` (every test of ``tests/hdl``)
``registered_read`` gives such a read all ones instead, and the bit-exact tests see any
use of it. Measured: docs/hardware.md, "Block RAM reads".
"""

from __future__ import annotations

import contextlib

from amaranth.hdl import Mux, Shape, Signal, Value
from amaranth.lib import memory

NO_INIT = "hwsnn_no_init"  # attribute of a register whose power-up value does not matter
NO_RW_CHECK = "no_rw_check"  # Yosys: a read-during-write returns an undefined value

_poison = False


@contextlib.contextmanager
def poison_collisions(on: bool = True):
    """Within: designs elaborated give a read that meets a write to its address in
    a ``collisions="undefined"`` memory all ones (tests; never in a build)."""
    global _poison
    before, _poison = _poison, on
    try:
        yield
    finally:
        _poison = before


def ram(*, shape, depth: int, init, collisions: str = "old") -> memory.Memory:
    """A memory; ``collisions``: "old" (a read in the cycle of a write to its address
    gives the old data) or "undefined" (its data is never used: see the module)."""
    if collisions not in ("old", "undefined"):
        raise ValueError(f"collisions={collisions!r}: 'old' or 'undefined'")
    attrs = {NO_RW_CHECK: 1} if collisions == "undefined" else {}
    return memory.Memory(shape=shape, depth=depth, init=init, attrs=attrs)


def registered_read(m, mem: memory.Memory, *, name: str, write=None):
    """A read of ``mem`` whose data comes a cycle after its address, as from a
    synchronous port, through a register that a RAM block holds (see the module).

    Returns (``addr``, ``data``): drive ``addr``; ``data`` is the register, loaded every
    cycle. ``write``: ``mem``'s write port, for ``poison_collisions`` (a
    ``collisions="undefined"`` memory)."""
    if NO_RW_CHECK in mem.attrs and write is None:
        raise ValueError(f"{name}: a memory with undefined collisions is read with its "
                         "write port given (write=), so that tests can poison them")
    port = mem.read_port(domain="comb")
    data = Signal(mem.shape, name=name, reset_less=True, attrs={NO_INIT: 1})
    value = port.data
    if _poison and NO_RW_CHECK in mem.attrs:
        hit = write.en.any() & (write.addr == port.addr)
        value = Mux(hit, (1 << Shape.cast(mem.shape).width) - 1, Value.cast(port.data))
    m.d.sync += data.eq(value)
    return port.addr, data
