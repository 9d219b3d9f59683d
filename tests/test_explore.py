"""hwsnn explore: the design space for a board, its Pareto front, and a pick that builds
and simulates bit-exact."""

import json
import subprocess
import sys

import pytest

from hwsnn import boards
from hwsnn.errors import HwsnnError
from hwsnn.flow import explore

PNG = b"\x89PNG\r\n\x1a\n"


def _point(acc, lat, logic):
    return explore.Point("gn", 4, 1, 8, 1, 0, None, acc, lat, lat, logic, 0, 0, 0)


def test_pareto_front_by_hand():
    a = _point(0.99, 100, 4000)  # the most accurate
    b = _point(0.98, 50, 4000)  # faster
    c = _point(0.98, 60, 4000)  # dominated by b
    d = _point(0.97, 200, 3000)  # smallest
    e = _point(0.97, 200, 3500)  # dominated by d
    front = explore.pareto([a, b, c, d, e])
    assert front == [b, a, d]  # fastest first
    assert [p.front for p in (a, b, c, d, e)] == [True, True, False, True, False]


def test_explore_and_pick_the_digits_cnn_for_icebreaker(tmp_path):
    """The digits CNN on a UP5K: a front of at least 3 points within 1 point of the ANN,
    every point inside the board by the estimate, and the picked point placed, routed and
    simulated bit-exact against the golden model."""
    out = tmp_path / "picked"
    r = subprocess.run([sys.executable, "-m", "hwsnn", "explore", "digits-cnn", "--board",
                        "icebreaker", "--max-accuracy-drop", "1", "--plot",
                        str(tmp_path / "front.png"), "--pick", str(out), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert len(res["front"]) >= 3
    assert (tmp_path / "front.png").read_bytes()[:8] == PNG
    for p in res["points"]:  # every kept point fits and is within the budget
        assert p["accuracy"] >= res["ann_accuracy"] - 0.01 - 1e-12
        assert p["logic"] <= 0.95 * 5280 and p["bram_blocks"] <= 30
        assert p["spram_blocks"] <= 4 and p["dsps"] <= 8
    picked = res["picked"]
    assert picked["point"] == res["front"][0] or picked["passed_over"]
    build = picked["build"]
    assert build["fits"] and build["meets_clock"] and build["bitstream"]
    assert res["logic_kind"] == "logic_cells"
    for kind in ("logic_cells", "bram_blocks"):
        assert 0 < build["resources"][kind]["used"] <= build["resources"][kind]["available"]
    # (SPRAMs: the dataflow design's input weights, or none: the processor's weights fit
    # the block RAMs here; the estimate counts them exactly)
    assert build["resources"]["spram_blocks"]["used"] == picked["point"]["spram_blocks"]
    # The estimate that chose it is within 10 % of the logic cells placed (the serial
    # processor's rougher model: 20 %).
    error = 0.2 if picked["point"]["arch"] == "serial" else 0.1
    assert abs(picked["point"]["logic"] / build["resources"]["logic_cells"]["used"] - 1) \
        < error, (picked["point"], build["resources"])
    assert picked["simulation"]["exact"] and picked["simulation"]["mismatches"] == 0
    assert (out / "qnet.json").is_file() and (out / "snn.json").is_file()


def test_nothing_to_pick_when_nothing_fits():
    board = boards.get("icebreaker")
    r = explore.search("digits-cnn", board, progress=False, methods=(("gn", 4),), steps=(2,),
                       weight_bits=(8,), lanes=(1,), archs=("dataflow",))
    assert r["front"] == [] and r["does_not_fit"] == r["tried"] == 2  # both queue depths
    with pytest.raises(HwsnnError, match="nothing to pick"):
        explore.pick(r, board, "unused", progress=False)
    with pytest.raises(HwsnnError, match="bundled model"):
        explore.search("resnet", board, progress=False)


def test_both_architectures_on_one_front():
    """The digits MLP on a UP5K (ILIF, T=1, 4-bit weights, 1 and 2 lanes): the dataflow
    points and the layer-serial processor's on one front, neither architecture dominating
    the other (here the dataflow designs are the smaller, the processor's the faster). A
    serial point's resources are the fit check's for its lanes."""
    from hwsnn.flow.build import fit_check_serial
    from hwsnn.snn.convert import convert
    from hwsnn.snn.quantize import quantize
    board = boards.get("icebreaker")
    r = explore.search("digits-mlp", board, progress=False, methods=(("ilif", None),),
                       steps=(1,), weight_bits=(4,), lanes=(1, 2), max_accuracy_drop=100)
    assert {p["arch"] for p in r["front"]} == {"dataflow", "serial"}, r["front"]
    serial = [p for p in r["points"] if p["arch"] == "serial"]
    assert sorted(p["lanes"] for p in serial) == [1, 2]
    assert r["tried"] == 2 * 2 + 2  # dataflow: lanes × queue depths; serial: lanes
    net = quantize(convert(explore._graph_of("digits-mlp"), method="ilif", timesteps=1,
                           progress=False), weight_bits=4)
    for p in serial:
        fit = fit_check_serial(net, board, p["lanes"])
        assert fit["fits"]
        assert p["logic"] == fit["resources"]["logic_cells"]["used"]
        assert p["bram_blocks"] == fit["resources"]["bram_blocks"]["used"]
        assert p["spram_blocks"] == fit["resources"]["spram_blocks"]["used"]
        assert explore.Point(**p).label().endswith(" serial")
    with pytest.raises(HwsnnError, match="choose from dataflow, serial"):
        explore.search("digits-cnn", board, progress=False, archs=("systolic",))


def test_shallow_queues_bring_the_digits_cnn_into_the_icebreaker_estimate(bundled_graph):
    """With two sweeps' worth of output queue per engine an ILIF T=2 digits CNN needs more
    block RAM than a UP5K has, even with its largest weights in SPRAM; with 16-group
    queues it fits (and places and routes: what the pick test builds)."""
    from hwsnn.flow.build import fit_check
    from hwsnn.snn.convert import convert
    from hwsnn.snn.quantize import quantize
    board = boards.get("icebreaker")
    r = explore.search("digits-cnn", board, progress=False, methods=(("ilif", None),),
                       steps=(2,), weight_bits=(8,), lanes=(1,), max_accuracy_drop=100,
                       archs=("dataflow",))
    assert r["tried"] == 2 and r["does_not_fit"] == 1
    (p,) = r["front"]
    assert p["queue_depth"] == 16 and p["bram_blocks"] <= 30 and p["logic"] <= 0.95 * 5280
    net = quantize(convert(bundled_graph("digits-cnn"), method="ilif", timesteps=2,
                           progress=False))
    deep = fit_check(net, {q.name: 1 for q in net.populations}, board)
    assert deep["over"] == ["bram_blocks"] and deep["loadable"]
