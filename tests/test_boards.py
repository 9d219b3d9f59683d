"""Board files and the fit check that runs before synthesis."""

import math
from pathlib import Path

import pytest

from hwsnn import boards
from hwsnn.errors import HwsnnError, ParameterError
from hwsnn.flow.build import FitError, build, fit_check, untimed_block_paths
from hwsnn.flow.pll import pll_setting
from hwsnn.hdl.estimate import blocks_for, memories
from hwsnn.hdl.plan import EnginePlan
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize


def test_every_board_names_real_platform_resources():
    found = boards.all_boards()
    assert {"icebreaker", "icesugar", "ulx3s-85f", "icesugar-pro"} <= set(found)
    for board in found.values():
        platform = board.make_platform()
        assert platform.device == board.device.name
        clock = platform.lookup(board.clock, 0)
        assert clock.clock.frequency == pytest.approx(board.clock_mhz * 1e6)
        platform.lookup("uart", board.uart)
        for name in board.drive_high:
            platform.lookup(name, 0)
        assert "{bitstream}" in board.programmer


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(Exception, match="unknown board 'nope'.*icebreaker"):
        boards.get("nope")


def test_programmer_command_and_override(monkeypatch):
    board = boards.get("ulx3s-85f")
    assert board.program_command("x.bit") == ["openFPGALoader", "-b", "ulx3s", "-m", "x.bit"]
    monkeypatch.setenv("OPENFPGALOADER", "/opt/ofl --verbose")
    assert board.program_command("x.bit")[:3] == ["/opt/ofl", "--verbose", "-b"]


def test_block_ram_configurations():
    ice40 = boards.UP5K.bram_modes
    # 320 × 8: one 512×8 block; 1024 × 60: fifteen 1024×4 blocks beat 16 of 256×16.
    assert blocks_for(320, 8, ice40) == 1
    assert blocks_for(1024, 60, ice40) == 15
    assert blocks_for(256, 16, ice40) == 1 and blocks_for(257, 16, ice40) == 2
    ecp5 = boards.get("ulx3s-85f").device.bram_modes
    assert blocks_for(1024, 18, ecp5) == 1 and blocks_for(512, 72, ecp5) == 2


def _varying_bits(values, bits):
    """Bit positions (two's complement, ``bits`` wide) in which ``values`` differ."""
    codes = {int(v) & ((1 << bits) - 1) for v in values}
    return sum(len({c >> b & 1 for c in codes}) > 1 for b in range(bits))


def test_memory_inventory_holds_every_weight(bundled_graph):
    """The estimate's ROMs hold every weight of the QNet, P lanes per word, less the bit
    columns that never change (Yosys removes them): lane l holds the weights of output
    channels l, P + l, 2P + l, ... and a zero where a group has no such channel."""
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    for lanes in (1, 4, 16):
        mems = memories(net, {p.name: EnginePlan(net, p.name, lanes) for p in net.populations})
        for p in net.populations:
            plan = EnginePlan(net, p.name, lanes)
            groups = math.ceil(p.shape[0] / lanes)
            for k, q in enumerate(p.projections):
                rom = next(m for m in mems if m.owner == p.name
                           and m.name.startswith(f"weights {k} "))
                rows = q.weight.size // q.weight.shape[0]
                assert rom.depth == rows * groups
                width = 0
                for lane in range(lanes):
                    channels = range(lane, groups * lanes, lanes)
                    values = [w for c in channels if c < p.shape[0]
                              for w in q.weight[c].ravel()]
                    values += [0] * any(c >= p.shape[0] for c in channels)
                    width += _varying_bits(values, q.weight_bits)
                assert rom.width == width <= lanes * q.weight_bits
                if lanes == 1:  # (every bit of 8-bit weights of a trained layer varies)
                    assert rom.width == q.weight_bits
            v = next(m for m in mems if m.owner == p.name and m.name == "membranes")
            assert v.depth * lanes >= math.prod(p.shape) and v.width == lanes * plan.vbits


def test_memory_inventory_of_offset_spike_calibration(bundled_graph):
    """cos: each hidden population keeps 2 + 2·V bits of statistics per neuron beside its
    membranes, and its output queue holds the ρ + T sweeps of a sample; IF at the same T
    has neither, and the readout keeps no statistics."""
    graph = bundled_graph("digits-mlp")
    cos = quantize(convert(graph, method="cos", timesteps=2, cos_steps=3, progress=False))
    plain = quantize(convert(graph, method="if", timesteps=2, progress=False))
    for lanes in (1, 4):
        mems = memories(cos, {p.name: EnginePlan(cos, p.name, lanes)
                              for p in cos.populations})
        for p in cos.populations:
            plan = EnginePlan(cos, p.name, lanes)
            stats = [m for m in mems if m.owner == p.name and m.name == "cos statistics"]
            queue = next(m for m in mems if m.owner == p.name and m.name == "output queue")
            addresses = math.ceil(p.size / lanes)
            assert queue.depth + 1 == max(16, 5 * addresses + 10)  # (a FIFO's RAM: − 1)
            if p.kind == "readout":
                assert not stats
                continue
            assert len(stats) == 1 and stats[0].depth == addresses
            assert stats[0].width == lanes * (2 + 2 * plan.vbits)
        other = memories(plain, {p.name: EnginePlan(plain, p.name, lanes)
                                 for p in plain.populations})
        assert not any(m.name == "cos statistics" for m in other)


def test_fit_check_accepts_the_mlp_and_refuses_the_cnn_on_icebreaker(bundled_graph, tmp_path):
    board = boards.get("icebreaker")
    mlp = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    fit = fit_check(mlp, {p.name: 1 for p in mlp.populations}, board)
    assert fit["fits"], fit
    assert fit["resources"]["bram_blocks"]["available"] == 30
    cnn = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    cnn.save(tmp_path / "cnn")
    with pytest.raises(FitError) as err:
        build(tmp_path / "cnn", board, lanes=1, check_only=True, arch="dataflow")
    text = str(err.value)
    assert "block RAMs" in text and "of 30" in text and "ulx3s-85f" in text
    assert "--queue-depth 16" in text
    assert not (tmp_path / "cnn" / "build").exists()
    # Shallow queues take the block RAMs under the budget (the logic is still too much
    # for this 8-bit T=2 network; explore finds the ones that fit).
    with pytest.raises(FitError) as err:
        build(tmp_path / "cnn", board, lanes=1, check_only=True, queue_depth=16,
              arch="dataflow")
    assert "logic cells" in str(err.value) and "block RAMs" not in str(err.value)
    with pytest.raises(ParameterError, match="--queue-depth"):
        build(tmp_path / "cnn", board, lanes=1, check_only=True, queue_depth=2)
    # The same network fits the largest ECP5 board.
    ok = build(tmp_path / "cnn", boards.get("ulx3s-85f"), lanes=1, check_only=True)
    assert ok["fits"] and ok["estimated"] and ok["arch"] == "dataflow"
    assert "it fits" in ok["arch_reason"]


def test_weights_go_to_spram_on_the_up5k_only_when_asked_or_needed(bundled_graph, tmp_path):
    board = boards.get("icebreaker")
    mlp = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    lanes = {p.name: 1 for p in mlp.populations}
    auto = fit_check(mlp, lanes, board)  # fits in block RAM: nothing moves
    assert auto["fits"] and auto["loadable"] == [] and auto["load_bytes"] == 0
    spram = fit_check(mlp, lanes, board, "spram")  # the largest weights: fc1's
    assert spram["fits"] and spram["loadable"] == [["fc1", 0]]
    (store,) = spram["stores"]
    weights = mlp.population("fc1").projections[0].weight.size
    assert store["depth"] == weights and store["bytes_per_word"] == 1  # 1 lane, 8 bits
    assert spram["load_bytes"] == weights
    used = {k: spram["resources"][k]["used"] for k in ("bram_blocks", "spram_blocks")}
    assert used["spram_blocks"] == 1  # ≤ 16 K words of ≤ 16 bits: one SPRAM
    assert used["bram_blocks"] < auto["resources"]["bram_blocks"]["used"]
    with pytest.raises(ParameterError, match="has no SPRAM"):
        fit_check(mlp, lanes, boards.get("ulx3s-85f"), "spram")
    with pytest.raises(ParameterError, match="--weights 'flash'"):
        fit_check(mlp, lanes, board, "flash")


def test_build_for_icebreaker_gives_a_bitstream_and_a_report(bundled_graph, tmp_path):
    import json
    import subprocess
    import sys
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    net.save(tmp_path / "mlp")
    # On a PLL at 30 MHz from the board's 12 MHz (the digits MLP reaches about 36 MHz).
    r = build(tmp_path / "mlp", boards.get("icebreaker"), lanes=1, progress=False, clock=30)
    assert r["fits"] and not r["estimated"]
    assert r["bitstream"] and (tmp_path / "mlp" / "build" / "icebreaker" /
                               "hwsnn_board.bin").stat().st_size > 100_000
    assert r["clock_mhz"] == 30.0 and r["board_clock_mhz"] == 12.0
    assert r["pll"]["params"] == {"DIVR": 0, "DIVF": 79, "DIVQ": 5, "FILTER_RANGE": 1}
    assert r["fmax_mhz"] > r["clock_mhz"] and r["meets_clock"]
    assert abs(r["latency_us"] - r["latency_cycles"] / 30.0) < 1e-6
    for kind in ("logic_cells", "ffs", "bram_blocks"):
        used, available = r["resources"][kind]["used"], r["resources"][kind]["available"]
        assert 0 < used <= available
    # The flip-flops placed are the flip-flop cells of the synthesized netlist (nextpnr
    # neither adds nor removes any).
    netlist = json.loads((tmp_path / "mlp" / "build" / "icebreaker" / "hwsnn_board.json")
                         .read_text())
    cells = [c["type"] for m in netlist["modules"].values() for c in m["cells"].values()]
    assert r["resources"]["ffs"]["used"] == sum(t.startswith("SB_DFF") for t in cells)
    # The estimate that let it through is within 10 % of the logic cells and flip-flops
    # placed, and its block RAMs are what Yosys mapped.
    est = r["fit_check"]["resources"]
    for kind in ("logic_cells", "ffs"):
        assert 0.9 < est[kind]["used"] / r["resources"][kind]["used"] < 1.1
    assert est["bram_blocks"]["used"] == r["resources"]["bram_blocks"]["used"]
    assert r["latency_us"] > 0 and r["inferences_per_second"] > 0
    assert r["latency_samples"] == 540 and r["latency_worst_cycles"] >= r["latency_cycles"]
    saved = json.loads((tmp_path / "mlp" / "build" / "icebreaker" / "report.json").read_text())
    assert saved["fmax_mhz"] == r["fmax_mhz"]
    out = subprocess.run([sys.executable, "-m", "hwsnn", "flash", str(tmp_path / "mlp"),
                          "--board", "icebreaker", "--dry-run", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cmd = json.loads(out.stdout)["command"]
    assert cmd[0] == "iceprog" and cmd[-1].endswith("hwsnn_board.bin")


def test_input_lanes_fit_check_and_errors(bundled_graph, tmp_path):
    """The multiply-accumulate input stage needs M DSPs (counted exactly) and M-lane input
    weights; more lanes than DSPs, a network that cannot use it, or M that is not a
    multiple of the layer's lanes are refused before any tool runs."""
    board = boards.get("icebreaker")
    mlp = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    mlp.save(tmp_path / "mlp")
    lanes = {p.name: 1 for p in mlp.populations}
    fit = fit_check(mlp, lanes, board, "spram", input_lanes=8)
    assert fit["fits"] and fit["resources"]["dsps"] == {"used": 8, "available": 8}
    (store,) = fit["stores"]
    fc1 = mlp.population("fc1")
    assert store["lanes"] == 8 and store["bytes_per_word"] == 8
    assert store["depth"] == fc1.projections[0].weight.shape[1] * math.ceil(fc1.size / 8)
    with pytest.raises(FitError) as err:
        build(tmp_path / "mlp", board, lanes=1, check_only=True, input_lanes=16,
              arch="dataflow")
    assert "DSPs 16 of 8" in str(err.value) and "--input-lanes 8" in str(err.value)
    with pytest.raises(ParameterError, match="multiple of its 3 lanes"):
        build(tmp_path / "mlp", board, lanes=3, check_only=True, input_lanes=8)
    cnn = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    cnn.save(tmp_path / "cnn")
    with pytest.raises(ParameterError, match="no population of this network"):
        build(tmp_path / "cnn", boards.get("ulx3s-85f"), lanes=1, check_only=True,
              input_lanes=8)


def test_placed_flip_flops_from_the_nextpnr_ice40_log(bundled_graph, tmp_path):
    """nextpnr-ice40's report counts logic cells only; its packer's log says how many of
    them use their flip-flop. The report's resources keep the fit check's order."""
    from hwsnn.flow.build import _post_route_resources, placed_flip_flops
    (tmp_path / "hwsnn_board.tim").write_text(
        "Info: Packing LUT-FFs..\nInfo:     1204 LCs used as LUT4 only\n"
        "Info:      977 LCs used as LUT4 and DFF\nInfo: Packing non-LUT/FFs..\n"
        "Info:      275 LCs used as DFF only\nInfo:       31 LCs used as CARRY only\n")
    assert placed_flip_flops(tmp_path, "ice40") == 977 + 275
    assert placed_flip_flops(tmp_path, "ecp5") is None  # (its report has TRELLIS_FF)
    assert placed_flip_flops(tmp_path / "nowhere", "ice40") is None
    board = boards.get("icebreaker")
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    estimated = fit_check(net, {p.name: 1 for p in net.populations}, board)["resources"]
    util = {"ICESTORM_LC": {"used": 2487, "available": 5280},
            "ICESTORM_RAM": {"used": 25, "available": 30}}
    placed = _post_route_resources(util, estimated, board, 1252)
    assert list(placed) == list(estimated) == ["logic_cells", "ffs", "bram_blocks",
                                                "spram_blocks", "dsps"]
    assert placed["logic_cells"] == {"used": 2487, "available": 5280}
    assert placed["ffs"] == {"used": 1252, "available": 5280}
    assert placed["dsps"] == {"used": None, "available": 8}


def test_build_with_the_multiply_accumulate_input_stage(bundled_graph, tmp_path):
    """On the iCEBreaker at its 12 MHz: the input stage's 8 multipliers land on the UP5K's
    8 SB_MAC16 blocks, the input weights in SPRAM."""
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    net.save(tmp_path / "mlp")
    r = build(tmp_path / "mlp", boards.get("icebreaker"), lanes=1, progress=False,
              weights="spram", input_lanes=8)
    assert r["fits"] and r["meets_clock"] and r["bitstream"]
    assert r["resources"]["dsps"] == {"used": 8, "available": 8}
    assert r["resources"]["spram_blocks"]["used"] == 4  # 64-bit words: 4 tiles side by side
    assert r["input_lanes"] == 8 and r["stores"][0]["lanes"] == 8
    # The golden model's cycles with the input stage, not the bit-events'.
    slow = build(tmp_path / "mlp", boards.get("icebreaker"), lanes=1, check_only=True)
    assert "latency_cycles" not in slow
    from hwsnn.flow.build import _cycles_per_inference, latency_codes
    bits = _cycles_per_inference(net, {p.name: 1 for p in net.populations}, 0,
                                 latency_codes(net)[0])
    assert r["latency_cycles"] < bits["latency"] / 2


def test_build_for_ulx3s_with_the_classic_abc_fallback(bundled_graph, tmp_path, monkeypatch):
    """A bitstream for the ULX3S-85F. Yosys 0.70's ABC9 stops on some ECP5 designs with an
    internal assertion (the digits CNN at 16 lanes): here the first synthesis is made to
    fail that way, and the build synthesizes again with the classic ABC LUT mapper."""
    from amaranth.build.run import BuildPlan
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    net.save(tmp_path / "mlp")
    real = BuildPlan.execute_local
    calls = []

    def first_fails(plan, root, **kwargs):
        calls.append(plan.files["hwsnn_board.ys"])
        if len(calls) == 1:
            Path(root).mkdir(parents=True, exist_ok=True)
            (Path(root) / "hwsnn_board.rpt").write_text(
                "2.46.29.7. Executing ABC_OPS_REINTEGRATE pass\nERROR: Assert `x' failed\n")
            raise RuntimeError("yosys failed")
        return real(plan, root, **kwargs)

    monkeypatch.setattr(BuildPlan, "execute_local", first_fails)
    r = build(tmp_path / "mlp", boards.get("ulx3s-85f"), lanes=1, progress=False)
    assert len(calls) == 2 and "abc -dress -lut 4:7" in calls[1]
    assert r["lut_mapper"] == "abc" and r["fits"] and r["meets_clock"]
    assert (tmp_path / "mlp" / "build" / "ulx3s-85f" / "hwsnn_board.bit").stat().st_size \
        > 100_000
    assert r["fmax_mhz"] > 60 and r["resources"]["luts"]["used"] > 1000
    # The estimate's block RAMs are what Yosys mapped, its flip-flops within 10 % of those
    # placed.
    est, placed = r["fit_check"]["resources"], r["resources"]
    assert est["bram_blocks"]["used"] == placed["bram_blocks"]["used"]
    assert 0.9 < est["ffs"]["used"] / placed["ffs"]["used"] < 1.1
    # Any other failure is reported as it is, without a second try.
    calls.clear()

    def fails(plan, root, **kwargs):
        calls.append(1)
        raise RuntimeError("nextpnr failed")

    monkeypatch.setattr(BuildPlan, "execute_local", fails)
    with pytest.raises(HwsnnError, match="the build for ulx3s-85f failed: nextpnr failed"):
        build(tmp_path / "mlp", boards.get("ulx3s-85f"), lanes=1, progress=False)
    assert calls == [1]


def test_a_placement_failure_is_tried_again_at_the_next_seeds(tmp_path, monkeypatch):
    """nextpnr's placer can give up on a nearly full device at one seed and place it at
    the next (the digits CNN on the UP5K at seed 1): the build moves on to the next seeds,
    up to ``PLACEMENT_SEEDS`` in all, and reports the seed it used; any other failure, and
    the last seed's, is the build's error."""
    from hwsnn.flow import build as flow_build
    seeds, placeable = [], {3}

    def once(network, board, baud, setting, out, seed, env, progress):
        seeds.append(seed)
        out.mkdir(parents=True, exist_ok=True)
        (out / "hwsnn_board.tim").unlink(missing_ok=True)
        if seed in placeable:
            return {"logic_cells": 1}, 40.0, "abc9"
        if seed == 10:
            raise HwsnnError("the build for icebreaker failed: yosys failed")
        (out / "hwsnn_board.tim").write_text(
            "Info: Device utilisation:\nERROR: Unable to find legal placement for all "
            "cells, design is probably at utilisation limit.\n0 warnings, 1 error\n")
        raise HwsnnError("the build for icebreaker failed: nextpnr failed")

    monkeypatch.setattr(flow_build, "_run_tools_once", once)
    assert flow_build.PLACEMENT_SEEDS == 3
    got = flow_build._run_tools(None, None, 115200, None, tmp_path, 1, {}, progress=False)
    assert got == ({"logic_cells": 1}, 40.0, "abc9", 3) and seeds == [1, 2, 3]
    seeds.clear()
    with pytest.raises(HwsnnError, match="nextpnr failed"):  # three seeds, none places
        flow_build._run_tools(None, None, 115200, None, tmp_path, 4, {}, progress=False)
    assert seeds == [4, 5, 6]
    seeds.clear()
    with pytest.raises(HwsnnError, match="yosys failed"):  # not a placement failure
        flow_build._run_tools(None, None, 115200, None, tmp_path, 10, {}, progress=False)
    assert seeds == [10]


@pytest.mark.parametrize("family,f_in,target", [("ice40", 12, 30), ("ice40", 12, 40),
                                                ("ice40", 12, 33.7), ("ecp5", 25, 120),
                                                ("ecp5", 25, 128.1), ("ecp5", 25, 62)])
def test_pll_settings_obey_the_data_sheet_limits(family, f_in, target):
    """Every setting recomputes to its output frequency within the VCO / reference limits,
    at most the target and within a few percent of it."""
    s = pll_setting(family, f_in, target)
    p = s.params
    if family == "ice40":
        pfd = f_in / (p["DIVR"] + 1)
        vco = pfd * (p["DIVF"] + 1)
        out = vco / 2 ** p["DIVQ"]
        assert 10 <= pfd <= 133 and 533 <= vco <= 1066 and 1 <= p["DIVQ"] <= 6
        assert p["FILTER_RANGE"] == 1  # 12 MHz reference: the 10-17 MHz range
    else:
        out = f_in / p["CLKI_DIV"] * p["CLKFB_DIV"]
        assert f_in / p["CLKI_DIV"] >= 3.125 and 400 <= out * p["CLKOP_DIV"] <= 800
    assert abs(out - s.output_mhz) < 1e-9
    assert 0.97 * target <= s.output_mhz <= target


def test_pll_by_hand():
    # 12 MHz × 80 = 960 MHz VCO, / 2^5 = 30 MHz; 12 × 53 = 636, / 2^4 = 39.75 MHz.
    assert pll_setting("ice40", 12, 30).params == {"DIVR": 0, "DIVF": 79, "DIVQ": 5,
                                                   "FILTER_RANGE": 1}
    assert pll_setting("ice40", 12, 40).output_mhz == 39.75
    with pytest.raises(ParameterError, match="lowest is 16 MHz"):
        pll_setting("ice40", 12, 10)
    with pytest.raises(ParameterError, match="--clock 'fast'"):
        build("unused", boards.get("icebreaker"), clock="fast")


def test_link_rate_and_the_clock_that_makes_it():
    """3 Mbaud where the clock divides to it within 1 %; else the fastest standard rate;
    a PLL clock chosen for the rate (iCE40 from 12 MHz: 36 MHz = 12 × 3 Mbaud, not 37.5
    or 36.75, which miss it by 4 % and 2 %)."""
    from hwsnn.flow.build import baud_fits, link_baud
    assert link_baud(12) == 3_000_000 and link_baud(36) == 3_000_000  # divisors 4, 12
    assert not baud_fits(34.5, 3_000_000)  # divisor 11: 3.136 Mbaud, +4.5 %
    assert link_baud(25) == 1_000_000  # 25/3 → 8 (+4.2 %), /2 → 12, /1.5 → 16: all off
    assert link_baud(34.5) == 1_500_000  # divisor 23: 1.5 Mbaud exactly
    assert not baud_fits(12, 4_000_000)  # divisor 3: below the UART's 4
    s = pll_setting("ice40", 12, 38.1, accept=lambda mhz: baud_fits(mhz, 3_000_000))
    assert s.output_mhz == 36.0 and pll_setting("ice40", 12, 38.1).output_mhz > 36.0
    with pytest.raises(ParameterError, match="baud rate accepts"):
        pll_setting("ecp5", 25, 20, accept=lambda mhz: False)


def test_latency_is_the_mean_and_worst_over_the_data(bundled_graph, tmp_path):
    """Over the images of a --data file: each image's latency computed on its own (every
    engine's golden cycles in turn) gives the mean and the worst."""
    import numpy as np

    from hwsnn.flow.build import _cycles_per_inference, latency_codes
    from hwsnn.frontends import data
    from hwsnn.snn import golden
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    x, y = data.load("digits", "test")
    np.savez(tmp_path / "five.npz", x=x[:5].numpy(), y=y[:5].numpy())
    codes, what = latency_codes(net, str(tmp_path / "five.npz"))
    assert len(codes) == 5 and what == f"5 images of {tmp_path / 'five.npz'}"
    lanes = {p.name: 2 for p in net.populations}
    got = _cycles_per_inference(net, lanes, 0, codes)
    each = [sum(float(v.sum()) for v in golden.run(net, codes[i:i + 1], lanes=2)
                .cycles.values()) for i in range(5)]
    assert got["latency"] == pytest.approx(sum(each) / 5)
    assert got["latency_worst"] == max(each)
    assert max(each) > min(each)  # the images differ, so the worst is not the mean
    np.savez(tmp_path / "pixels.npz", x=(x[:5] * 255).numpy(), y=y[:5].numpy())
    with pytest.raises(HwsnnError, match="divide x by 255"):
        latency_codes(net, str(tmp_path / "pixels.npz"))


def test_auto_takes_the_serial_processor_when_the_dataflow_design_does_not_fit(tmp_path,
                                                                              capsys):
    """Issue 19's small CIFAR CNN at 8-bit weights: the dataflow design needs more than
    twice the ULX3S-85F's block RAMs, so ``--arch auto`` (the default) takes the
    layer-serial processor and says why; ``--arch dataflow`` refuses with both numbers."""
    from hwsnn.snn.random_nets import small_cifar_qnet
    small_cifar_qnet().save(tmp_path / "cifar")
    board = boards.get("ulx3s-85f")
    r = build(tmp_path / "cifar", board, check_only=True)
    assert r["fits"] and r["arch"] == "serial"
    assert r["arch_reason"].startswith("the dataflow design does not fit (estimate: block RAMs")
    assert r["serial"]["lanes"] == 16 and r["lanes"] == 16
    assert r["resources"]["bram_blocks"]["used"] <= 208
    assert r["serial"]["weight_packing"] > 0.99
    # Its weight banks (3,324 words of 16 × 8 bits: the poolings' weights kept once) cut
    # into 4-bit slices, each one 4,096 × 4 block: 2 × 32 blocks, no cascade multiplexers.
    # On a device with too few blocks for that, whole words in cascades instead.
    assert r["serial"]["plan"]["weight_slices"] == 4
    sliced = r["resources"]["bram_blocks"]["used"]
    import dataclasses
    tight = dataclasses.replace(board, device=dataclasses.replace(
        board.device, bram_blocks=sliced - 1))
    r2 = build(tmp_path / "cifar", tight, check_only=True, arch="serial", lanes=16)
    assert r2["fits"] and r2["serial"]["plan"]["weight_slices"] == 0
    assert r2["serial"]["membrane_words"] == r["serial"]["membrane_words"]
    assert r2["resources"]["bram_blocks"]["used"] < sliced
    with pytest.raises(FitError, match=r"with 1 lane \(estimate: block RAMs \d+ of 208"):
        build(tmp_path / "cifar", board, check_only=True, arch="dataflow")
    # A lane count is the processor's when it is the one that fits; per population it
    # belongs to the dataflow engines only.
    r = build(tmp_path / "cifar", board, check_only=True, arch="serial", lanes=8)
    assert r["arch"] == "serial" and r["serial"]["lanes"] == 8
    with pytest.raises(ParameterError, match="one lane count"):
        build(tmp_path / "cifar", board, check_only=True, arch="serial", lanes="0=2,2=1")
    with pytest.raises(ParameterError, match="power of two lanes, not 6"):
        build(tmp_path / "cifar", board, check_only=True, arch="serial", lanes=6)
    with pytest.raises(ParameterError, match="--arch 'fast'"):
        build(tmp_path / "cifar", board, check_only=True, arch="fast")
    # The command line says which architecture it took and why.
    from hwsnn.tools.cli import main
    assert main(["build", str(tmp_path / "cifar"), "--board", "ulx3s-85f",
                 "--check-only"]) == 0
    out = capsys.readouterr().out
    assert "fits with the layer-serial processor, 16 lanes sharing 2 neuron-rule units" in out
    assert "architecture serial: the dataflow design does not fit" in out
    # Too large for the processor too: both architectures' numbers.
    with pytest.raises(FitError, match="with the dataflow engines .*; nor on the layer-serial "
                                       "processor with 1 lane"):
        build(tmp_path / "cifar", boards.get("icebreaker"), check_only=True)


def test_untimed_block_paths_from_the_nextpnr_report():
    """nextpnr-ice40 splits a path through a combinational SB_MAC16 into two cross-domain
    paths of the constant net its clock pin is tied to: the worst of each is reported; the
    design clock's own paths, the constant clock's and the asynchronous ones are not."""
    def path(src, dst, *delays):
        return {"from": src, "to": dst, "path": [{"delay": d} for d in delays]}

    gnd, clk = "posedge $PACKER_GND_NET_$glb_clk", "posedge cd_sync.clk"
    pnr = {"critical_paths": [path(clk, clk, 20.0, 20.5), path(gnd, gnd, 3.9),
                              path("<async>", clk, 6.0), path(clk, "<async>", 12.0),
                              path(clk, gnd, 10.0, 3.9), path(clk, gnd, 2.0),
                              path(gnd, clk, 0.1, 5.8), path("<async>", gnd, 30.0)]}
    assert untimed_block_paths(pnr) == {"into_ns": 13.9, "out_of_ns": 5.9}
    assert untimed_block_paths({"critical_paths": [path(clk, clk, 20.0)]}) is None
    assert untimed_block_paths({}) is None


def test_real_mnist_cnn_builds_for_icebreaker_on_the_serial_processor(tmp_path, capsys):
    """Issue 19: the real MNIST CNN (4-bit weights, GN τ=4, T=1) on the iCEBreaker. Its
    dataflow design needs hundreds of block RAMs; ``--arch auto`` takes the layer-serial
    processor with its weights in the UP5K's SPRAMs (loaded over the link), and the tools
    place and route it at the board clock: a bitstream, the placed resources against the
    serial estimate (SPRAMs exact, block RAMs at most 10 % high, logic and flip-flops
    within its rough model's error) and the processor's latency on the MNIST test
    split."""
    from hwsnn.tools.cli import main
    d = tmp_path / "mnist-cnn"
    assert main(["convert", "mnist-cnn", "-o", str(d), "--weight-bits", "4", "--timesteps",
                 "1"]) == 0
    capsys.readouterr()
    r = build(d, boards.get("icebreaker"), progress=False)
    assert r["arch"] == "serial" and r["arch_reason"].startswith(
        "the dataflow design does not fit (estimate: block RAMs")
    assert r["serial"]["weights"] == "spram" and len(r["stores"]) == 2
    # (4 lanes: each lane's product on a DSP block, 8 on the UP5K with the expander's)
    assert r["serial"]["lanes"] == 4
    assert r["resources"]["dsps"]["used"] <= r["estimated_resources"]["dsps"]["used"] <= 8
    # every weight, 4 bits each, the poolings folded into conv2 and fc1 kept once: conv1
    # 8·1·5·5, conv2 16·8·5·5 (not 10×10), fc1 64·16·7·7 (not ·14·14), fc2 10·64
    assert r["load_bytes"] >= (200 + 3_200 + 50_176 + 640) * 4 // 8
    assert r["bitstream"] and Path(r["bitstream"]).stat().st_size > 100_000
    assert r["meets_clock"] and r["fmax_mhz"] > r["clock_mhz"] == 12.0
    # (its products are combinational SB_MAC16s: the paths through them, which nextpnr
    # leaves out of the Fmax, are reported beside it)
    untimed = r["untimed_block_paths"]
    assert untimed["into_ns"] > 0 and untimed["out_of_ns"] > 0
    assert untimed["left_ns_at_fmax"] == pytest.approx(
        1e3 / r["fmax_mhz"] - untimed["into_ns"] - untimed["out_of_ns"], abs=0.02)
    est, placed = r["estimated_resources"], r["resources"]
    assert est["spram_blocks"]["used"] == placed["spram_blocks"]["used"] == 2
    # (Yosys trims a few always-zero bits the estimate counts: 26 blocks placed for 28)
    bram = placed["bram_blocks"]["used"]
    assert bram <= est["bram_blocks"]["used"] <= 1.1 * bram
    for kind in ("logic_cells", "ffs"):
        assert 0.8 < est[kind]["used"] / placed[kind]["used"] < 1.4, (kind, est, placed)
    assert r["latency_samples"] == 2000 and "mnist" in r["latency_data"]
    # One sample at a time: the interval is the latency, the plan's ideal cycles.
    assert r["cycles_per_inference"] == r["latency_cycles"] > 0
    assert abs(r["latency_us"] - r["latency_cycles"] / 12.0) < 1e-6


def test_cifar_networks_keep_their_weights_in_the_ulx3s_sdram(tmp_path, capsys):
    """VGG-11 (9.2 million weights) fits the ULX3S-85F only with its weights and spike
    planes in the board's SDRAM: the fit check takes that design and says how much SDRAM
    it uses; ResNet-20 fits on chip, and in SDRAM when asked; a board without external RAM
    refuses by name, and names the boards that have it."""
    from hwsnn.snn.cifar_nets import cifar_qnet
    from hwsnn.snn.random_nets import small_cifar_qnet
    board = boards.get("ulx3s-85f")
    cifar_qnet("vgg11").save(tmp_path / "vgg")
    r = build(tmp_path / "vgg", board, check_only=True, arch="serial")
    sp = r["serial"]
    assert r["fits"] and sp["weights"] == "sdram" and sp["plan"]["external"]
    from hwsnn.hdl.serial import SerialPlan
    plan = SerialPlan(cifar_qnet("vgg11"), **sp["plan"])
    assert sp["sdram_bytes"] == 2 * plan.sdram_words > 9_000_000
    assert sp["sdram_bytes"] <= board.external_ram.bytes
    assert sp["sdram_words_per_sample"] == sum(plan.transfers().values())
    assert sp["weight_buffer_words"] >= max(SerialPlan.rows_per_group(plan.net).values())
    assert r["resources"]["bram_blocks"]["used"] <= 208
    cifar_qnet("resnet20").save(tmp_path / "r20")
    r = build(tmp_path / "r20", board, check_only=True, arch="serial")
    assert r["serial"]["weights"] == "bram"  # (on chip, where it fits: no weight loads)
    r = build(tmp_path / "r20", board, check_only=True, weights="sdram")
    assert r["arch"] == "serial" and r["serial"]["weights"] == "sdram"
    from hwsnn.tools.cli import main
    assert main(["build", str(tmp_path / "r20"), "--board", "ulx3s-85f", "--check-only",
                 "--weights", "sdram"]) == 0
    out = capsys.readouterr().out
    assert (f"weights and spike planes in the board's SDRAM: "
            f"{r['serial']['sdram_bytes'] / 2**20:.1f} MiB of it") in out
    # No external RAM: refused, naming what would hold it.
    small_cifar_qnet().save(tmp_path / "cifar")
    with pytest.raises(FitError, match="iCEBreaker.* has no external RAM for its weights: a "
                                       "board with SDRAM could keep them there \\(ulx3s"):
        build(tmp_path / "cifar", boards.get("icebreaker"), check_only=True)
    with pytest.raises(ParameterError, match="--weights sdram: iCEBreaker .* has no external "
                                             "RAM"):
        build(tmp_path / "cifar", boards.get("icebreaker"), check_only=True, weights="sdram")
    with pytest.raises(ParameterError, match="dataflow engines keep their weights on chip"):
        build(tmp_path / "cifar", board, check_only=True, weights="sdram", arch="dataflow")
