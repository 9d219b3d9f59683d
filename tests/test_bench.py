"""hwsnn bench: one run writes BENCHMARKS.md, its plots and JSON; the figures trace back
to computations made here independently."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hwsnn.flow import explore
from hwsnn.frontends import data
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.tools import bench

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    r = subprocess.run([sys.executable, "-m", "hwsnn", "bench", "--quick", "--samples",
                        "4", "--out", str(out), "--json", "--random-engines", "4",
                        "--random-networks", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_quick_run_writes_markdown_plots_and_json(quick):
    out, r = quick
    md = (out / "BENCHMARKS.md").read_text()
    assert md.startswith("# hwsnn benchmarks") and "hwsnn bench --quick" in md
    for name in ("accuracy_vs_T", "latency_vs_accuracy"):
        png = out / r["figures"][name]
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
        assert f"]({r['figures'][name]})" in md
    assert json.loads((out / bench.FIGURES / "bench.json").read_text()) == r
    assert r["boards"] == [] and "--no-boards" not in r["command"]
    # Every accuracy cell of the table is the JSON's figure.
    (conv,) = r["conversion"]
    for row in conv["rows"]:
        cell = f"{100 * row['float_snn_accuracy']:.2f} / {100 * row['golden_accuracy']:.2f}"
        assert cell in md
    (sim,) = r["simulation"]
    assert sim["exact"] and sim["samples"] == 4 and sim["mismatches"] == 0
    assert 0.9 < sim["cycle_ratio"] < 1.2
    # The random-network sweeps: as many as asked, none failed, reported as measured.
    e = r["exactness"]
    assert (e["engines"]["tried"], e["networks"]["tried"]) == (4, 1)
    assert e["engines"]["failed"] == e["networks"]["failed"] == 0
    assert e["engines"]["engines"] >= 4 * 2  # every network has a hidden layer and a readout
    assert "## Exactness at scale: random networks" in md
    assert f"{e['engines']['engines']} engines | 4 |" in md
    f = r["faults"]
    assert f["faults"] == f["caught"] == f["located"] >= 3  # one per population of the MLP
    assert f"**{f['caught']} of {f['faults']} caught (100 %)**" in md
    (link,) = r["link_fuzz"]
    assert link["passed"] and link["bad_frames"] >= 100 and link["hangs"] == 0
    assert f"| {link['frames']:,} | {link['bad_frames']:,} | {link['frames']:,} | **0** |" in md
    for row in r["many_steps"]["rows"]:
        assert f"| {row['timesteps']} | {100 * row['float_snn_accuracy']:.2f} | " in md


def test_figures_match_an_independent_computation(quick, bundled_graph):
    _, r = quick
    (conv,) = r["conversion"]
    # The digits MLP is 64-64-32-10: 64·64 + 64·32 + 32·10 multiply-accumulates.
    assert conv["rows"][0]["ann_macs"] == 64 * 64 + 64 * 32 + 32 * 10
    row = next(x for x in conv["rows"] if x["key"] == "gn" and x["timesteps"] == 2)
    x, y = data.load("digits", "test")
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    gold = golden.run(net, golden.encode(net, x))
    assert row["golden_accuracy"] == pytest.approx(float((gold.predictions == y).double()
                                                         .mean()))
    assert row["sops"] == pytest.approx(float(gold.sops.double().mean()))
    (e,) = [e for e in r["energy"] if e["timesteps"] == 2]
    assert e["snn_energy_uj"] == pytest.approx(row["sops"] * 0.9e-6)
    assert e["ann_energy_uj"] == pytest.approx(row["ann_macs"] * 4.6e-6)
    t = r["throughput"]
    assert t["ratio"] == pytest.approx(t["golden_samples_per_s"] / t["float_samples_per_s"])


def test_bad_sample_count_is_refused(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwsnn", "bench", "--quick", "--samples",
                        "0", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "--samples" in r.stderr
    assert not (tmp_path / "BENCHMARKS.md").exists()


def test_ann_macs_by_hand():
    """The digits CNN: conv1 1→8 (3×3) at 8×8, conv2 8→16 at 8×8, 2×2 pooling, conv3
    16→16 at 4×4, pooling, fc 16·2·2→10; the digits28 MLP 784-128-10."""
    from hwsnn.models import BUNDLED
    cnn = BUNDLED["digits-cnn"]
    assert bench.ann_macs(cnn.load(), cnn.input_shape) == \
        8 * 1 * 9 * 64 + 16 * 8 * 9 * 64 + 16 * 16 * 9 * 16 + 64 * 10
    mlp = BUNDLED["digits28-mlp"]
    assert bench.ann_macs(mlp.load(), mlp.input_shape) == 784 * 128 + 128 * 10


def test_design_space_section(quick, tmp_path):
    """The explore front in BENCHMARKS.md: every front point a row with its own figures,
    and the plot beside it."""
    _, r = quick
    x = bench.design_space("digits-cnn", "icebreaker", 100, tmp_path,
                           methods=(("gn", 4), ("ilif", None)), steps=(2,),
                           weight_bits=(6, 8), lanes=(1,))
    assert x["front"] and x["tried"] == x["too_inaccurate"] + x["does_not_fit"] + x["fits"]
    assert (tmp_path / Path(x["plot"]).name).read_bytes()[:8] == PNG
    md = bench.markdown({**r, "explore": x})
    assert "## Design space: digits-cnn on icebreaker" in md and f"]({x['plot']})" in md
    for p in x["front"]:
        row = (f"| {explore.Point(**p).label()} | {100 * p['accuracy']:.2f} | "
               f"{p['latency_cycles']:,.0f} |")
        assert row in md


def test_boards_section_names_the_lut_mapper(quick):
    """A board row shows its post-route figures; a build that fell back to the classic ABC
    mapper is named under the table, one that did not is not."""
    _, r = quick

    def row(design, mapper, fmax):
        return {"design": design, "describe": f"{design} design", "board": "ulx3s-85f",
                "fits": True, "fmax_mhz": fmax, "clock_mhz": 25, "latency_us": 393.4,
                "latency_us_at_fmax": 148.8, "lut_mapper": mapper,
                "resources": {"luts": {"used": 24330, "available": 83640}},
                "estimated": {"luts": 21897}}
    md = bench.markdown({**r, "boards": [row("a", "abc9", 133.44), row("b", "abc", 66.06)]})
    assert "| a design | ulx3s-85f | yes | 24330 / 83640 | – | – | – | – | 133.4 | 25 | 393 |" \
        in md
    # the estimate against the placed design: 21897 / 24330 = 0.90
    assert "| a design | ulx3s-85f | 21897 / 24330 (0.90) | – | – |" in md
    note = next(line for line in md.splitlines() if "classic ABC" in line)
    assert "b design on ulx3s-85f" in note and "a design" not in note


def test_mnist_section_renders_its_figures(quick, tmp_path):
    """The real-MNIST headline shows every accuracy cell, each board row (a recorded one
    marked so, with its command) and the link's images/s from the result; ``bench --only``
    refuses to run without a full run's bench.json to keep the other sections from."""
    _, r = quick
    (conv,) = r["conversion"]
    board = {"design": "mnist-mlp", "describe": "mnist-mlp GN τ=4 T=1", "board": "icebreaker",
             "fits": True, "fmax_mhz": 38.43, "clock_mhz": 33, "latency_us": 92.14,
             "latency_worst_us": 160.54, "latency_samples": 2000,
             "inferences_per_second": 13007, "lut_mapper": "abc9", "baud": 3_000_000,
             "end_to_end_images_per_second": 1361.2,
             "resources": {"logic_cells": {"used": 3946, "available": 5280},
                           "dsps": {"used": 8, "available": 8}}}
    link = {"clock_mhz": 33, "baud": 3_000_000, "protocol2_115200_images_per_second": 13.7,
            "runs": {"pipelined": {"samples": 200, "images_per_second": 1361.2,
                                   "bytes_per_image": 220.4, "inference_us_mean": 110.04},
                     "sequential": {"samples": 20, "images_per_second": 342.0}}}
    m = {"conversion": [conv], "boards": [board, {**board, "board": "ulx3s-85f",
                                                  "recorded": True}],
         "link": link, "recorded": {"command": "hwsnn build X", "date": "2026-12-02",
                                    "minutes": 58}}
    md = bench.markdown({**r, "mnist": m})
    assert "## Real MNIST (headline)" in md
    for row in conv["rows"]:
        assert f"{100 * row['float_snn_accuracy']:.2f} / {100 * row['golden_accuracy']:.2f}" \
            in md
    assert "| mnist-mlp GN τ=4 T=1 | icebreaker | 3,946/5,280 LC |" in md
    assert "92.1 / 160.5 µs over 2000 | 13,007 | 1,361 at 3,000,000 baud |" in md
    assert "| 8/8 |" in md
    assert "mnist-mlp GN τ=4 T=1 (recorded) | ulx3s-85f" in md
    assert "(recorded) built by `hwsnn build X` on 2026-12-02" in md
    assert "**1,361 MNIST images/s**" in md and "342 images/s one plain INFER" in md
    assert "the design took 110.0 µs per image" in md
    assert "13.7 images/s with protocol 2" in md
    assert "Skydiver" in md and "6,358 LUT, 40.5 BRAM" in md
    assert "runs the MLP's design above at 33 MHz (Fmax 38.4 MHz)" in md
    with pytest.raises(bench.HwsnnError, match="run 'hwsnn bench' in full once first"):
        bench.update(tmp_path)


def test_only_boards_builds_the_digits_designs_again(quick, tmp_path, monkeypatch):
    """``bench --only boards``: every digits design's board builds run again (here a
    stand-in), the Boards section shows them, every other section is the last run's."""
    out, r = quick
    figures = tmp_path / bench.FIGURES
    figures.mkdir(parents=True)
    (figures / "bench.json").write_text((out / bench.FIGURES / "bench.json").read_text())
    asked = []
    row = {"design": "digits-mlp", "describe": "new mlp design", "board": "icebreaker",
           "fits": True, "fmax_mhz": 41.38, "clock_mhz": 12, "latency_us": 983.0,
           "latency_us_at_fmax": 285.1, "lut_mapper": "abc9",
           "resources": {"logic_cells": {"used": 3850, "available": 5280}},
           "estimated": {"logic_cells": 3900}}

    def builds(designs, work, progress, workers, scheduler):
        asked.extend(f"{d.name}/{b}" for d in designs for b in d.boards)
        return [row]
    monkeypatch.setattr(bench, "_board_builds", builds)
    u = bench.update(tmp_path, ("boards",), progress=False)
    assert asked == [f"{d.name}/{b}" for d in bench.DESIGNS for b in d.boards]
    saved = json.loads((figures / "bench.json").read_text())
    assert saved["boards"] == [row] == u["boards"]
    assert saved["conversion"] == r["conversion"] and saved["updated"][-1]["sections"] == \
        ["boards"]
    md = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| new mlp design | icebreaker | yes | 3850 / 5280 |" in md
    assert "3900 / 3850 (1.01)" in md and "`hwsnn bench --only boards`" in md


def test_scale_section_from_its_recorded_figures(quick, tmp_path):
    """The simulation-at-scale section renders benchmarks/scale.py's figures, with the
    ratios computed from them; without the file there is no section."""
    _, r = quick
    assert "Simulation at scale" not in bench.markdown(r, scale_path=tmp_path / "none.json")
    speed = [{"design": "d", "simulator": sim, "bench": b, "samples": 10, "exact": True,
              "samples_per_second": sps, "simulated_hz": 1000.0 * sps,
              "cycles_per_inference": 1000.0}
             for sim, b, sps in [("verilator", "free", 300.0), ("verilator", "edge", 12.0),
                                 ("icarus", "free", 3.0), ("icarus", "edge", 2.0)]]
    dask = [{"case": "sim-regression", "what": {"samples": 540}, "wall_s_1_worker": 9.0,
             "wall_s_2_workers": 5.0, "speedup": 1.8, "identical_results": True}]
    path = tmp_path / "scale.json"
    path.write_text(json.dumps({"command": "python benchmarks/scale.py", "when": "now",
                                "cpus": 2, "speed": speed, "dask": dask}))
    md = bench.markdown(r, scale_path=path)
    assert "## Simulation at scale (recorded)" in md
    assert "verilator free/edge 25.0×, icarus free/edge 1.5×, Verilator/Icarus (free) 100×" in md
    assert "| sim-regression (samples 540) | 9.0 s | 5.0 s | **1.80×** | yes |" in md


def test_cos_section_from_its_recorded_figures(quick, tmp_path):
    """The offset-spike calibration section renders benchmarks/cos_hardware.py's figures
    (next to scale.json), with COS against IF computed from them; without the file there
    is no section."""
    _, r = quick
    assert "Offset-spike" not in bench.markdown(r, scale_path=tmp_path / "scale.json")

    def row(method, rho, cycles, ideal, accuracy, bits, stats, build):
        return {"model": "digits-mlp", "method": method, "rho": rho, "timesteps": 2,
                "lanes": 1, "board": "icebreaker", "samples": 200, "exact": True,
                "mismatches": 0, "cycles": cycles, "ideal_cycles": ideal,
                "cycle_ratio": cycles / ideal, "accuracy": accuracy,
                "estimate": {"logic_cells": 3600, "ffs": 2000, "bram_blocks": 25,
                             "memory_bits": bits, "statistics_bits": stats},
                "build": build}

    rows = [row("if", 0, 1000.0, 990.0, 0.97, 50_000, 0,
                {"logic_cells": 4000, "bram_blocks": 25, "fmax_mhz": 40.0, "seed": 1}),
            row("cos", 8, 1500.0, 1386.0, 0.98, 60_000, 4_096,
                {"logic_cells": 4400, "bram_blocks": 31, "fmax_mhz": 38.0, "seed": 1})]
    (tmp_path / bench.COS_JSON).write_text(json.dumps(
        {"command": "python benchmarks/cos_hardware.py", "when": "now", "cpus": 2,
         "rows": rows}))
    md = bench.markdown(r, scale_path=tmp_path / "scale.json")
    assert "## Offset-spike calibration in hardware (recorded)" in md
    assert "| COS(ρ=8) | yes (200 samples) | 1,500 (1,386, 1.082) | 98.00 % | 60,000 (4,096)" in md
    assert ("- digits-mlp, COS against IF: cycles ×1.50 (ideal ×1.40), memory bits ×1.20, "
            "accuracy +1.00 points, built logic ×1.10, block RAMs 25 → 31, Fmax ×0.95.") in md


def test_serial_section_from_its_recorded_figures(quick, tmp_path):
    """The layer-serial processor's section renders benchmarks/serial_sops.py's figures
    (next to scale.json), the ratio to tinyODIN's SOP/s per cell worked by hand; without
    the file there is no section."""
    _, r = quick
    assert "Layer-serial" not in bench.markdown(r, scale_path=tmp_path / "scale.json")
    # 1,000,000 SOPs in 500,000 cycles at 20 MHz on 5,000 cells: 40 MSOP/s, 8,000 per
    # cell; tinyODIN on a UP5K: 11.4 MHz / 2 / 3,876 cells = 1,470.6 → 5.4×.
    row = {"design": "net (gn, T=1, 4-bit)", "board": "icebreaker", "arch": "serial",
           "lanes": 2, "sops_per_inference": 1e6, "cycles_per_inference": 5e5,
           "fmax_mhz": 20.0, "cells": 5000, "family": "ice40", "bram_blocks": 26,
           "spram_blocks": 4, "sop_per_second": 4e7, "sop_per_second_per_cell": 8000.0,
           "times_tinyodin": 8000 / bench.TINYODIN_SOP_PER_CELL["ice40"]}
    (tmp_path / bench.SERIAL_JSON).write_text(json.dumps(
        {"command": "python benchmarks/serial_sops.py", "when": "now", "cpus": 2,
         "rows": [row]}))
    md = bench.markdown(r, scale_path=tmp_path / "scale.json")
    assert "## Layer-serial processor: SOP/s per logic cell (recorded)" in md
    assert ("| net (gn, T=1, 4-bit) | icebreaker | serial, 2 lanes | 1,000,000 | 500,000 | "
            "20.0 MHz | 5,000 LC | 26 + 4 | 40.0 | 8,000 | 5.4 |") in md
