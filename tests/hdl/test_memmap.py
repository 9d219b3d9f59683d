"""Where Yosys puts a memory (hdl.memmap): mappings worked out by hand from the costs of
memory_libmap, and a few single memories synthesized with Yosys."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hwsnn.flow.synth import synthesize
from hwsnn.hdl.estimate import RomColumns, rom_columns
from hwsnn.hdl.memmap import libmap


def test_ecp5_ram_in_lut_ram():
    # 64 × 21: 4 ranges of 16 words × 6 nibbles = 24 LUT RAMs at 4, a 4-way multiplexer
    # for 21 bits (3 · 21 / 2), 4 write enables (4 / 2), a read port (2): 131.5; one
    # 512 × 36 block RAM costs 128 and 14 for its emulation (142); flip-flops 1344.
    m = libmap(64, 21, False, "ecp5")
    assert (m.primitive, m.count, m.cost, m.block) == ("TRELLIS_DPR16X4", 24, 131.5, False)
    assert m.flip_flops == 21  # the read register of an asynchronous LUT RAM


def test_ecp5_ram_in_block_ram():
    # 137 × 10: LUT RAM 9 ranges × 3 nibbles (108) + 8 · 10 / 2 + 9 / 2 + 2 = 154.5; one
    # 1024 × 18 block (the 10 bits padded to two 9-bit bytes) 128 + 14 = 142.
    m = libmap(137, 10, False, "ecp5")
    assert (m.primitive, m.count, m.cost, m.block) == ("DP16KD", 1, 142, True)
    # The write delayed by a cycle (8 address bits, 10 data, the enable), the delayed word
    # and the address match kept for a read of it.
    assert m.flip_flops == 8 + 10 + 1 + 10 + 1
    # 300 × 40: two 512 × 36 blocks (40 bits padded to five bytes, 45 > 36).
    m = libmap(300, 40, False, "ecp5")
    assert (m.primitive, m.count, m.flip_flops) == ("PDPW16KD", 2, 9 + 2 * 40 + 2)


def test_ecp5_rom_in_logic_up_to_2063_bits():
    # A ROM bit in logic costs 1/16 (rounded down), a block 128 + 2 for its read port;
    # logic wins ties.
    m = libmap(256, 8, True, "ecp5")  # 2048 bits: 128
    assert (m.primitive, m.count, m.flip_flops) == (None, 0, 8)  # the read register
    m = libmap(262, 8, True, "ecp5")  # 2096 bits: 131 > 130
    assert (m.primitive, m.count, m.flip_flops) == ("DP16KD", 1, 0)
    # 4096 × 8: two 4096 × 4 blocks (258) beat 2048 × 9 ones (256 + 4 for the multiplexer).
    assert libmap(4096, 8, True, "ecp5").count == 2


def test_ice40_mappings():
    # No LUT RAM: a RAM above 78 bits (64 + 14) takes a 4 kbit block, one below stays in
    # flip-flops (and a read register).
    small, big = libmap(8, 8, False, "ice40"), libmap(16, 8, False, "ice40")
    assert (small.primitive, small.flip_flops) == (None, 64 + 8)
    assert (big.primitive, big.count, big.flip_flops) == ("SB_RAM40_4K", 1, 4 + 8 + 1 + 8 + 1)
    # ROMs: 1024 bits cost 64 in logic, a block 66; 1280 bits 80.
    assert libmap(64, 16, True, "ice40").primitive is None
    assert libmap(80, 16, True, "ice40").count == 1
    # 1024 × 60: fifteen 1024 × 4 blocks beat 4 ranges of 256 × 16 (15 blocks and a
    # multiplexer).
    assert libmap(1024, 60, False, "ice40").count == 15


def test_rom_columns():
    # Lane 1 is all zero; lane 0 varies in bits 0 and 2 (4-bit two's complement: 1, 4, 5),
    # two different columns (0, 1, 1 and 1, 0, 1).
    assert rom_columns([[1, 0], [4, 0], [5, 0]], 4) == RomColumns(2, 2, 1)
    # -1 and 0 differ in every bit, and every bit column is the same: 1 then 0.
    assert rom_columns([[-1], [0]], 4) == RomColumns(4, 1, 1)
    # Two lanes, one the other's complement in bit 0: different columns.
    assert rom_columns([[0, 1], [1, 0]], 2) == RomColumns(2, 2, 2)
    assert rom_columns([[3, 3]], 8) == RomColumns(0, 0, 0)  # one word: all constant


class OneMemory(wiring.Component):
    """A ``depth`` × ``width`` memory with a synchronous read port and, unless ``rom``,
    a write port; a ROM holds random words."""

    def __init__(self, depth, width, rom):
        self.depth, self.width, self.rom = depth, width, rom
        ports = {"raddr": In(range(depth)), "rdata": Out(width)}
        if not rom:
            ports.update(waddr=In(range(depth)), wdata=In(width), we=In(1))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        rnd = random.Random(self.depth * 100 + self.width)
        init = [rnd.getrandbits(self.width) for _ in range(self.depth)] if self.rom else []
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=init)
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(self.raddr), self.rdata.eq(rd.data)]
        if not self.rom:
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(self.waddr), wr.data.eq(self.wdata), wr.en.eq(self.we)]
        return m


@pytest.mark.parametrize("family, depth, width, rom", [
    ("ecp5", 64, 21, False), ("ecp5", 137, 10, False), ("ecp5", 600, 40, False),
    ("ecp5", 262, 8, True), ("ice40", 16, 8, False), ("ice40", 300, 20, False),
    ("ice40", 80, 16, True)])
def test_yosys_maps_as_worked_out(family, depth, width, rom):
    r = synthesize(OneMemory(depth, width, rom), family)
    m = libmap(depth, width, rom, family)
    c = r.cells_by_type
    assert r.ram_blocks == (m.count if m.block else 0)
    assert c.get("TRELLIS_DPR16X4", 0) == (0 if m.block else m.count)
    assert r.flip_flops == m.flip_flops
