"""The user's own labelled data (``--data``) on ``hwsnn explore``, ``hwsnn bench`` and
``hwsnn infer``, and the same argument (``data_path``) of ``explore.search``,
``explore.pick``, ``bench.run`` / ``bench.conversion`` and ``infer.infer``: every figure
measured on that data matches a direct computation with the golden model on the same
samples, and bad data is refused (exit 2, one line naming the file) before anything is
written or a port is opened."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hwsnn import boards
from hwsnn.errors import HwsnnError
from hwsnn.flow import explore
from hwsnn.frontends import data
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize
from hwsnn.tools import bench
from hwsnn.tools.cli import main

GRID = {"methods": (("gn", 4), ("ilif", None)), "steps": (1, 2), "weight_bits": (8,),
        "lanes": (1, 2), "queues": (None,)}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "" for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def files(tmp_path_factory, bundled_graph):
    """Data files: a subset of the digits test split that holds every sample GN(τ=4) T=1
    gets wrong (so its accuracies differ from the whole split's), 8-bit pixels, inputs of
    the wrong shape, and no samples at all."""
    d = tmp_path_factory.mktemp("data-flags")
    x, y = data.load("digits", "test")
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=1,
                           group_size=4, progress=False))
    wrong = (golden.run(net, golden.encode(net, x)).predictions != y).nonzero().flatten()
    assert 0 < len(wrong) < 40
    keep = torch.cat([wrong, (golden.run(net, golden.encode(net, x)).predictions == y)
                      .nonzero().flatten()[:30]]).sort().values
    np.savez(d / "subset.npz", x=x[keep].numpy(), y=y[keep].numpy())
    np.savez(d / "uint8.npz", x=(x[:6] * 255).round().to(torch.uint8).numpy(),
             y=y[:6].numpy())
    np.savez(d / "shape.npz", x=np.zeros((4, 5, 5), np.float32), y=np.zeros(4, np.int64))
    np.savez(d / "none.npz", x=np.zeros((0, 1, 8, 8), np.float32), y=np.zeros(0, np.int64))
    return d, x[keep], y[keep]


def _direct(graph, method, tau, t, wb, x, y):
    net = quantize(convert(graph, method=method, timesteps=t, group_size=tau,
                           progress=False), weight_bits=wb)
    codes = golden.encode(net, x)
    return net, codes, golden.accuracy(golden.run(net, codes).predictions, y)


# -- explore -------------------------------------------------------------------------------
def test_explore_measures_on_the_users_data(files, bundled_graph):
    """Every candidate's accuracy, the ANN's and the cycle counts are those of the golden
    model on the file's samples, not on the bundled split (which scores higher)."""
    d, x, y = files
    board = boards.get("ulx3s-85f")
    path = str(d / "subset.npz")
    r = explore.search("digits-mlp", board, progress=False, max_accuracy_drop=100,
                       data_path=path, **GRID)
    own = explore.search("digits-mlp", board, progress=False, max_accuracy_drop=100, **GRID)
    assert r["data"] == path and r["samples"] == len(x)
    assert r["cycle_samples"] == min(len(x), explore.CYCLE_SAMPLES)
    assert own["data"] == "the digits test split" and own["samples"] == 540
    graph = bundled_graph("digits-mlp")
    ann = graph.forward(graph.input.to_codes(x))[graph.output.name]
    assert r["ann_accuracy"] == golden.accuracy(ann.argmax(1), y)
    assert r["points"] and len(r["points"]) == len(own["points"])
    seen = set()
    for p in r["points"]:
        net, codes, acc = _direct(graph, p["method"], p["group_size"], p["timesteps"],
                                  p["weight_bits"], x, y)
        assert p["accuracy"] == acc, p
        if p["arch"] == "serial":  # (the processor's plan's ideal cycles)
            from hwsnn.flow.build import _serial_cycles, fit_check_serial
            plan = fit_check_serial(net, board, p["lanes"])["plan"]
            cycles = _serial_cycles(plan, codes[:explore.CYCLE_SAMPLES])["latency"]
        else:
            cycles = golden.run(net, codes[:explore.CYCLE_SAMPLES], lanes=p["lanes"],
                                input_lanes=p["input_lanes"]).ideal_cycles_total.double().mean()
        assert p["latency_cycles"] == pytest.approx(float(cycles))
        seen.add((p["method"], p["timesteps"]))
    assert seen == {("gn", 1), ("gn", 2), ("ilif", 1), ("ilif", 2)}
    gn1 = next(p for p in r["points"] if p["method"] == "gn" and p["timesteps"] == 1)
    gn1_own = next(p for p in own["points"] if p["method"] == "gn" and p["timesteps"] == 1)
    assert gn1["accuracy"] < gn1_own["accuracy"]


def test_explore_cli_says_which_data(files, tmp_path, capsys, monkeypatch):
    d, x, _ = files
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "explore", "digits-mlp", "--board", "ulx3s-85f", "--data",
                         str(d / "subset.npz"), "--plot", "front.png")
    assert code == 0, err
    assert f"Accuracies on {len(x)} samples of {d / 'subset.npz'}, cycles on the first " \
           f"{len(x)}. Pareto front:" in out
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, fragments", [
    ("uint8.npz", ["data file", "uint8.npz", "[0, 255]", "divide x by 255"]),
    ("shape.npz", ["data file", "shape.npz", "(5, 5)", "(1, 8, 8)", "64 values"]),
    ("none.npz", ["data file", "none.npz", "no samples"]),
    ("missing.npz", ["missing.npz", "No such file"]),
])
def test_explore_refuses_bad_data_before_writing(files, tmp_path, capsys, monkeypatch, name,
                                                 fragments):
    d, _, _ = files
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "explore", "digits-mlp", "--board", "icebreaker", "--data",
                         str(d / name), "--pick", "picked")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("hwsnn: error: ")
    for f in fragments:
        assert f in line, line
    assert "--input-range" not in line  # a bundled model is not the user's to convert
    assert list(tmp_path.iterdir()) == []  # no plot, no pick directory


def test_pick_builds_and_simulates_on_the_same_data(files, tmp_path, monkeypatch):
    """pick passes the data to the build (its latency) and to the simulation, asks no more
    samples than the data has, and records the bundled model's data set in the network."""
    import hwsnn.flow.build
    import hwsnn.sim.run
    from hwsnn.snn.qnet import load as load_qnet
    d, x, _ = files
    path = str(d / "subset.npz")
    board = boards.get("ulx3s-85f")
    r = explore.search("digits-mlp", board, progress=False, data_path=path,
                       methods=(("gn", 4),), steps=(1,), weight_bits=(8,), lanes=(1,),
                       queues=(None,), max_accuracy_drop=100)
    calls = {}

    def build(directory, board, **kw):
        calls["build"] = kw
        return {"fits": True, "meets_clock": True, "fmax_mhz": 50.0, "clock_mhz": 25.0,
                "latency_us": 1.0, "resources": {}, "bitstream": "b"}

    class Report:
        def to_json(self):
            return {"samples": calls["sim"]["samples"], "exact": True, "mismatches": 0,
                    "cycles_per_inference": 1.0, "first_divergence_text": None}

    def simulate(directory, **kw):
        calls["sim"] = kw
        return Report()

    monkeypatch.setattr(hwsnn.flow.build, "build", build)
    monkeypatch.setattr(hwsnn.sim.run, "simulate", simulate)
    # One worker: the build runs here, where it is faked (tests/test_explore_dask.py
    # checks that Dask workers pick the same point).
    got = explore.pick(r, board, tmp_path / "p", progress=False, samples=100,
                       data_path=path, workers=1)
    assert calls["build"]["data_path"] == path and calls["sim"]["data_path"] == path
    assert calls["sim"]["samples"] == got["simulation"]["samples"] == len(x) < 100
    assert load_qnet(tmp_path / "p").metadata["dataset"] == "digits"


# -- bench --------------------------------------------------------------------------------
def test_bench_conversion_on_the_users_data(files, bundled_graph):
    d, x, y = files
    path = str(d / "subset.npz")
    methods = (("GN(τ=4)", "gn", 4), ("ILIF", "ilif", None))
    c = bench.conversion("digits-mlp", (1, 2), methods, data_path=path)
    own = bench.conversion("digits-mlp", (1,), methods[:1])
    assert c["data"] == path and c["samples"] == len(x)
    assert own["data"] == "the digits test split" and own["samples"] == 540
    graph = bundled_graph("digits-mlp")
    ann = graph.forward(graph.input.to_codes(x))[graph.output.name]
    assert c["ann_accuracy"] == golden.accuracy(ann.argmax(1), y)
    for row in c["rows"]:
        net, codes, acc = _direct(graph, row["key"], 4 if row["key"] == "gn" else None,
                                  row["timesteps"], 8, x, y)
        assert row["golden_accuracy"] == acc
        assert row["sops"] == pytest.approx(float(golden.run(net, codes).sops.double().mean()))
    assert c["rows"][0]["golden_accuracy"] < own["rows"][0]["golden_accuracy"]


def test_bench_models_for_the_data(files):
    d, _, _ = files
    sub = str(d / "subset.npz")
    assert bench.conversion_models() == bench.MODELS
    assert bench.conversion_models(quick=True) == ("digits-mlp",)
    assert bench.conversion_models(["mnist-cnn"]) == ("mnist-cnn",)
    assert bench.conversion_models(None, sub) == ("digits-mlp", "digits-cnn")
    assert bench.conversion_models(None, sub, quick=True) == ("digits-mlp",)
    assert bench.conversion_models(["digits-cnn"], sub, quick=True) == ("digits-cnn",)
    with pytest.raises(HwsnnError, match=r"mnist-mlp takes 1x28x28.*--model digits-mlp or "
                                         r"digits-cnn"):
        bench.conversion_models(["digits-cnn", "mnist-mlp"], sub)


def test_bench_quick_with_data_names_it(files, tmp_path, capsys, monkeypatch):
    """A quick run with --data (the slow sections, Verilog simulations and fuzzing, left
    out here): the conversion section and its table are the file's, and BENCHMARKS.md and
    the JSON say so."""
    d, x, y = files
    path = str(d / "subset.npz")
    monkeypatch.setattr(bench, "DESIGNS", ())
    monkeypatch.setattr(bench, "fault_injection", lambda *a, **k: None)
    monkeypatch.setattr(bench, "link_fuzz", lambda *a, **k: [])
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = run(capsys, "bench", "--quick", "--out", str(out), "--data", path,
                            "--model", "digits-cnn", "--random-engines", "0",
                            "--random-networks", "0", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r["data"] == path and r["command"].endswith(f"--model digits-cnn --data {path}")
    (c,) = r["conversion"]
    assert c["model"] == "digits-cnn" and c["data"] == path and c["samples"] == len(x)
    direct = bench.conversion("digits-cnn", (1, 2), data_path=path)
    assert [row["golden_accuracy"] for row in c["rows"]] == \
        [row["golden_accuracy"] for row in direct["rows"]]
    md = (out / "BENCHMARKS.md").read_text()
    assert f"on the user's data `{path}`, {len(x)} labelled samples" in md
    assert f"on {len(x)} test samples of `{path}`" in md
    assert f"mean over the data `{path}`" in md
    assert r["many_steps"]["samples"] == 540  # the other sections: the bundled split


@pytest.mark.parametrize("argv, fragments", [
    (["--data", "uint8.npz"], ["data file", "uint8.npz", "divide x by 255"]),
    (["--data", "shape.npz"], ["data file", "shape.npz", "(5, 5)", "no bundled model",
                               "digits-mlp 1x8x8"]),
    (["--data", "subset.npz", "--model", "mnist-cnn"],
     ["data file", "subset.npz", "mnist-cnn takes 1x28x28", "--model digits-mlp"]),
    (["--data", "none.npz"], ["data file", "none.npz", "no samples"]),
    (["--model", "resnet"], ["--model 'resnet'", "digits-mlp"]),
])
def test_bench_refuses_bad_data_before_writing(files, tmp_path, capsys, argv, fragments):
    d, _, _ = files
    argv = [str(d / a) if a.endswith(".npz") else a for a in argv]
    fragments = [str(d / f) if f.endswith(".npz") else f for f in fragments]
    code, out, err = run(capsys, "bench", "--quick", "--out", str(tmp_path), *argv)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    for f in fragments:
        assert f in line, line
    assert list(tmp_path.iterdir()) == []


# -- infer ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp_dir(bundled_graph, tmp_path_factory):
    d = tmp_path_factory.mktemp("mlp")
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=1,
                           group_size=4, progress=False))
    net.metadata["dataset"] = "digits"
    net.save(d)
    return d, net


def test_infer_sends_the_users_labelled_data(files, mlp_dir, capsys):
    d, x, y = files
    net_dir, net = mlp_dir
    path = str(d / "subset.npz")
    code, out, err = run(capsys, "infer", str(net_dir), "--port", "golden", "--data", path,
                         "--samples", str(len(x) - 3), "--offset", "3", "--json")
    assert code == 0, err
    r = json.loads(out)
    want = golden.run(net, golden.encode(net, x[3:])).predictions
    assert r["data"] == path and r["samples"] == len(x) - 3
    assert [row["label"] for row in r["results"]] == y[3:].tolist()
    assert [row["class"] for row in r["results"]] == want.tolist()
    assert r["accuracy"] == golden.accuracy(want, y[3:]) < 1
    assert r["golden_mismatches"] == 0
    code, out, _ = run(capsys, "infer", str(net_dir), "--port", "golden", "--samples", "2")
    assert code == 0 and "2 inferences on the digits test split" in out


@pytest.mark.parametrize("argv, fragments", [
    (["--data", "subset.npz", "--images", "uint8.npz"],
     ["--data", "--images", "cannot be used together"]),
    (["--data", "uint8.npz"], ["data file", "uint8.npz", "divide x by 255"]),
    (["--data", "shape.npz"], ["data file", "shape.npz", "(1, 8, 8)"]),
    (["--data", "none.npz"], ["data file", "none.npz", "no samples"]),
    (["--data", "subset.npz", "--samples", "500"], ["--samples 500", "samples"]),
])
def test_infer_refuses_bad_data_before_opening_the_port(files, mlp_dir, tmp_path, capsys,
                                                        argv, fragments):
    """The port is a path that does not exist: a refusal that came after opening it
    would say 'cannot open'."""
    d, _, _ = files
    net_dir, _ = mlp_dir
    argv = [str(d / a) if a.endswith(".npz") else a for a in argv]
    before = snapshot(d), snapshot(net_dir)
    code, out, err = run(capsys, "infer", str(net_dir), "--port", str(tmp_path / "tty"),
                         *argv)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert "cannot open" not in line
    for f in fragments:
        assert f in line, line
    assert (snapshot(d), snapshot(net_dir)) == before
    assert list(tmp_path.iterdir()) == []


def test_infer_data_for_a_network_of_unknown_data(files, tmp_path, capsys):
    """A network converted without a known data set asks for data, and takes --data."""
    from hwsnn.models import BUNDLED
    d, x, y = files
    ep = torch.export.export(BUNDLED["digits-mlp"].load(), (torch.zeros(2, 1, 8, 8),))
    torch.export.save(ep, str(tmp_path / "mlp.pt2"))
    net = tmp_path / "net"
    assert run(capsys, "convert", str(tmp_path / "mlp.pt2"), "-o", str(net), "-T", "1",
               "--json")[0] == 0
    code, _, err = run(capsys, "infer", str(net), "--port", "golden")
    assert code == 2 and "--data DATA" in err and "--images FILE" in err
    code, out, err = run(capsys, "infer", str(net), "--port", "golden", "--data",
                         str(d / "subset.npz"), "--samples", "5", "--json")
    assert code == 0, err
    assert [row["label"] for row in json.loads(out)["results"]] == y[:5].tolist()
