"""The command line: conversions, JSON reports, and one-line errors that write nothing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hwsnn.tools.cli import main

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def importable_test_models(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_bundled_models(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    names = [m["name"] for m in json.loads(out)["models"]]
    assert names == ["digits-mlp", "digits-cnn", "digits28-mlp", "mnist-mlp", "mnist-cnn"]


def test_convert_then_eval_json(tmp_path, capsys):
    out_dir = tmp_path / "cnn"
    code, out, _ = run(capsys, "convert", "digits-cnn", "-o", str(out_dir), "--method", "gn",
                       "--group-size", "4", "--timesteps", "1", "--json")
    assert code == 0
    conv = json.loads(out)
    assert conv["method"] == "gn" and [p["name"] for p in conv["populations"]] == \
        ["conv1", "conv2", "conv3", "fc"]
    assert {f.name for f in out_dir.iterdir()} == {"qnet.json", "qnet.npz", "snn.json",
                                                   "snn.npz"}
    code, out, _ = run(capsys, "eval", str(out_dir), "--json", "--samples", "200")
    assert code == 0
    rep = json.loads(out)
    for key in ("ann_accuracy", "float_snn_accuracy", "golden_accuracy",
                "exact_reference_accuracy", "prediction_mismatches"):
        assert key in rep
    assert rep["samples"] == 200
    # GN with τ = L = 4 at T = 1 is the QCFS(4) ANN: exactly, on every sample
    assert rep["prediction_mismatches"] == 0
    assert rep["golden_accuracy"] == rep["exact_reference_accuracy"]


def test_per_layer_group_sizes(tmp_path, capsys):
    code, out, _ = run(capsys, "convert", "digits-mlp", "-o", str(tmp_path / "m"),
                       "--group-size", "fc1=2,fc2=3", "-T", "2", "--json")
    assert code == 0
    sizes = {p["name"]: p["group_size"] for p in json.loads(out)["populations"]}
    assert sizes == {"fc1": 2, "fc2": 3, "fc3": 1}


def test_factory_with_state_dict_and_relu_threshold_balancing(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    import cli_models
    cli_models.save_mlp_weights(weights)
    code, out, err = run(capsys, "convert", "cli_models:mlp", "--weights", str(weights),
                         "--input-shape", "1,8,8", "-o", str(tmp_path / "f"),
                         "--method", "if", "-T", "8", "--dataset", "digits", "--json")
    assert code == 0, err
    pops = json.loads(out)["populations"]
    assert pops[0]["theta"] > 0 and pops[0]["kind"] == "gn"


def test_a_users_model_is_never_measured_on_data_it_did_not_choose(tmp_path, capsys):
    """A model hwsnn did not bundle: its data is not guessed from its input shape. ReLU
    layers need calibration data; a QCFS model converts, and then eval, sim and infer ask
    for the data instead of scoring it on the shipped digits."""
    import cli_models
    weights = tmp_path / "w.pt"
    cli_models.save_mlp_weights(weights)
    code, _, err = run(capsys, "convert", "cli_models:mlp", "--weights", str(weights),
                       "--input-shape", "1,8,8", "-o", str(tmp_path / "relu"))
    assert code == 2 and "--calibration-data DATA" in err and "--dataset NAME" in err
    assert not (tmp_path / "relu").exists()
    from hwsnn.models import BUNDLED
    ep = torch.export.export(BUNDLED["digits-cnn"].load(), (torch.zeros(2, 1, 8, 8),))
    torch.export.save(ep, str(tmp_path / "cnn.pt2"))
    net = tmp_path / "qcfs"
    code, out, err = run(capsys, "convert", str(tmp_path / "cnn.pt2"), "-o", str(net), "-T",
                         "1", "--json")
    assert code == 0, err
    assert json.loads(out)["quantization_check"] is None
    for argv in (["eval", str(net)], ["sim", str(net)],
                 ["infer", str(net), "--port", "golden"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "without a known data set" in err, (argv, err)
    code, _, err = run(capsys, "convert", "cli_models:mlp", "--weights", str(weights),
                       "--input-shape", "1,8,8", "-o", str(tmp_path / "m"), "--dataset",
                       "mnist")
    assert code == 2 and "--dataset mnist has images of shape (1, 28, 28)" in err
    # Named, it is used: the same model evaluated on the digits test split.
    code, out, err = run(capsys, "convert", str(tmp_path / "cnn.pt2"), "-o", str(net), "-T",
                         "1", "--dataset", "digits", "--json")
    assert code == 0, err
    assert json.loads(out)["quantization_check"]["samples"] == 512
    code, out, _ = run(capsys, "eval", str(net), "--json")
    assert code == 0 and json.loads(out)["samples"] == 540


def test_exported_program_input(tmp_path, capsys):
    from hwsnn.models import BUNDLED
    ep = torch.export.export(BUNDLED["digits-cnn"].load(), (torch.zeros(2, 1, 8, 8),))
    path = tmp_path / "cnn.pt2"
    torch.export.save(ep, str(path))
    code, out, err = run(capsys, "convert", str(path), "-o", str(tmp_path / "e"), "--json")
    assert code == 0, err
    assert [p["name"] for p in json.loads(out)["populations"]] == \
        ["conv1", "conv2", "conv3", "fc"]


def expect_error(capsys, tmp_path, argv, *fragments):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, *argv, "-o", str(out_dir))
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert not out_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_unsupported_layer(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    import cli_models
    torch.save(cli_models.with_maxpool().state_dict(), weights)
    expect_error(capsys, tmp_path, ["convert", "cli_models:with_maxpool", "--weights",
                                    str(weights), "--input-shape", "1,8,8"],
                 "'2'", "MaxPool2d", "AvgPool2d")


def test_corrupt_checkpoint(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"this is not a checkpoint")
    expect_error(capsys, tmp_path, ["convert", "cli_models:mlp", "--weights", str(weights),
                                    "--input-shape", "1,8,8"],
                 "not a state dict saved with torch.save")


def test_mismatched_checkpoint(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    import cli_models
    torch.save(cli_models.with_maxpool().state_dict(), weights)
    expect_error(capsys, tmp_path, ["convert", "cli_models:mlp", "--weights", str(weights),
                                    "--input-shape", "1,8,8"], "does not match the model",
                 "missing")


def test_corrupt_program(tmp_path, capsys):
    path = tmp_path / "bad.pt2"
    path.write_bytes(b"PK\x03\x04 truncated")
    expect_error(capsys, tmp_path, ["convert", str(path)], "not a readable torch.export")


def test_wrong_input_shape(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    import cli_models
    cli_models.save_mlp_weights(weights)
    expect_error(capsys, tmp_path, ["convert", "cli_models:mlp", "--weights", str(weights),
                                    "--input-shape", "1,5,5"], "does not run on an input",
                 "(2, 1, 5, 5)")


@pytest.mark.parametrize("args,fragment", [
    (["--timesteps", "0"], "timesteps"),
    (["--timesteps", "100000"], "timesteps"),
    (["--method", "ilif", "--timesteps", "40"], "bits per value"),
    (["--group-size", "0"], "group size"),
    (["--group-size", "1000"], "group size"),
    (["--group-size", "conv9=2"], "unknown layer"),
    (["--method", "if", "--group-size", "4"], "applies to method 'gn'"),
    (["--method", "cos", "--cos-steps", "0"], "cos_steps"),
    (["--weight-bits", "1"], "weight bits"),
])
def test_out_of_range_options(tmp_path, capsys, args, fragment):
    expect_error(capsys, tmp_path, ["convert", "digits-cnn", *args], fragment)


def test_eval_of_a_missing_or_corrupt_directory(tmp_path, capsys):
    code, _, err = run(capsys, "eval", str(tmp_path))
    assert code != 0 and "qnet.json" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "qnet.json").write_text("{ not json")
    code, _, err = run(capsys, "eval", str(tmp_path))
    assert code != 0 and "not valid JSON" in err


def test_failed_convert_keeps_an_existing_output(tmp_path, capsys):
    out_dir = tmp_path / "keep"
    assert run(capsys, "convert", "digits-mlp", "-o", str(out_dir), "--json")[0] == 0
    before = (out_dir / "qnet.json").read_text()
    code, _, _ = run(capsys, "convert", "digits-mlp", "-o", str(out_dir), "--timesteps", "0")
    assert code != 0
    assert (out_dir / "qnet.json").read_text() == before


def test_console_script_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hwsnn", "convert", "nonexistent-model",
                           "-o", str(tmp_path / "x")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("hwsnn: error: cannot tell what model")


def test_demo_runs_the_flow(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "-o", str(tmp_path / "demo"), "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["method"] == "gn" and rep["samples"] > 500
    assert rep["golden_accuracy"] >= rep["ann_accuracy"] - 0.01
    # ... and on to Verilog, simulated against the golden model.
    sim = rep["sim"]
    assert sim["simulator"] == "verilator" and sim["samples"] == 20
    assert sim["exact"] and sim["mismatches"] == 0
    assert sim["checked_taps"] == ["conv1", "conv2", "conv3"]
    assert 1.0 <= sim["cycle_ratio"] <= 1.15


def test_convert_into_a_network_directory_keeps_what_hwsnn_did_not_write(tmp_path, capsys):
    """A re-convert replaces the network files and hwsnn's own outputs made from the old
    network (identified by the QNet they record, or as hwsnn's sim and report files), and
    keeps everything else: the user's files, also inside rtl/, build/ and sim/."""
    from hwsnn.hdl.verilog import fingerprint
    from hwsnn.snn.qnet import load as load_qnet
    from hwsnn.tools.outdir import REPORT_SIGNATURE
    d = tmp_path / "net"
    assert run(capsys, "convert", "digits-mlp", "-o", str(d), "-T", "1", "--json")[0] == 0
    old = fingerprint(load_qnet(d))
    made = {  # what hwsnn verilog, sim, build and report would have written
        "rtl/hwsnn_net.json": json.dumps({"made_from": {"qnet_sha256": old}}),
        "rtl/hwsnn_net.v": "module hwsnn_net;", "rtl/hwsnn_net.md": "# ports",
        "build/icebreaker/report.json": json.dumps({"qnet_sha256": old}),
        "build/icebreaker/hwsnn_board.bin": "bits", "build/icebreaker/build_hwsnn_board.sh": "",
        "sim/verilator/bench.json": "{}", "sim/verilator/report.json": "{}",
        "sim/verilator/build/Vtop": "binary", "report.md": f"# net\n{REPORT_SIGNATURE}\n",
        "report/cycles_per_layer.png": "png"}
    mine = {"notes.txt": "mine", "rtl/wrapper.v": "module wrapper;",
            "build/icebreaker/pinout.txt": "mine", "sim/verilator/notes.txt": "mine",
            "report/photo.png": "mine"}
    for path, text in {**made, **mine}.items():
        (d / path).parent.mkdir(parents=True, exist_ok=True)
        (d / path).write_text(text)

    code, out, err = run(capsys, "convert", "digits-mlp", "-o", str(d), "-T", "2", "--json")
    assert code == 0, err
    removed = {p.replace("build/Vtop", "build") for p in made}  # the simulator's build dir
    assert sorted(json.loads(out)["removed_stale"]) == sorted(removed)
    assert load_qnet(d).timesteps == 2
    for path, text in mine.items():
        assert (d / path).read_text() == text
    for path in made:
        assert not (d / path).exists()
    assert not [p for p in d.rglob(".hwsnn-*")]
    # The same conversion again: the same network, nothing stale.
    desc = d / "rtl" / "other.json"
    desc.write_text(json.dumps({"made_from": {"qnet_sha256": fingerprint(load_qnet(d))}}))
    code, out, _ = run(capsys, "convert", "digits-mlp", "-o", str(d), "-T", "2", "--json")
    assert code == 0 and json.loads(out)["removed_stale"] == [] and desc.is_file()


def test_convert_into_the_current_directory(tmp_path, capsys, monkeypatch):
    d = tmp_path / "net"
    assert run(capsys, "convert", "digits-mlp", "-o", str(d), "-T", "1", "--json")[0] == 0
    (d / "notes.txt").write_text("mine")
    monkeypatch.chdir(d)
    code, out, err = run(capsys, "convert", "digits-cnn", "-o", ".", "-T", "1", "--json")
    assert code == 0, err
    assert (d / "notes.txt").read_text() == "mine"
    assert json.loads((d / "qnet.json").read_text())["metadata"]["model"] == "digits-cnn"


def test_an_interrupted_replacement_restores_the_previous_network(tmp_path, capsys,
                                                                   monkeypatch):
    import os

    from hwsnn.tools import outdir
    d = tmp_path / "net"
    assert run(capsys, "convert", "digits-mlp", "-o", str(d), "-T", "1", "--json")[0] == 0
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 6:  # the old files are out, one new file is in
            raise OSError(28, "No space left on device", str(dst))
        return os.replace(src, dst)

    monkeypatch.setattr(outdir.os, "replace", failing_replace)
    code, out, err = run(capsys, "convert", "digits-mlp", "-o", str(d), "-T", "3", "--json")
    assert code == 2 and len(err.splitlines()) == 1 and "No space left" in err
    assert json.loads(out)["exit_status"] == 2
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_a_failed_write_leaves_no_directory_behind(tmp_path):
    from hwsnn.tools.outdir import write_network

    def fail(tmp):
        (tmp / "qnet.json").write_text("{}")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError):
        write_network(tmp_path / "a" / "b" / "net", fail)
    assert list(tmp_path.iterdir()) == []


def test_convert_refuses_an_accuracy_loss_and_names_the_width(tmp_path, capsys):
    """4-bit weights cost the digits CNN (GN, T=2) more than 0.3 points of the float SNN
    on the calibration data: refused with the narrowest width that does not, which then
    converts within the limit."""
    import re
    out_dir = tmp_path / "cnn"
    argv = ["convert", "digits-cnn", "-o", str(out_dir), "--method", "gn", "-T", "2"]
    code, out, err = run(capsys, *argv, "--weight-bits", "4")
    assert code == 2 and not out_dir.exists()
    (line,) = err.strip().splitlines()
    assert "4-bit weights" in line and "points below the float SNN" in line
    bits = int(re.search(r"--weight-bits (\d+) keeps it within 0.3 points", line).group(1))
    assert 4 < bits <= 16
    code, out, _ = run(capsys, *argv, "--weight-bits", str(bits), "--json")
    assert code == 0
    check = json.loads(out)["quantization_check"]
    assert check["ok"] and check["loss_points"] <= 0.3 and check["weight_bits"] == bits
    # The loss can be accepted explicitly.
    code, out, _ = run(capsys, *argv, "--weight-bits", "4", "--max-accuracy-loss", "100",
                       "--json")
    assert code == 0 and json.loads(out)["quantization_check"]["loss_points"] > 0.3


def test_lanes_per_population_in_every_command(tmp_path, capsys):
    """``--lanes fc1=8,fc2=1`` (the rest get 1) means the same to verilog, build, eval and
    sim, read by one parser and checked against the network's populations by one plan
    (``hdl.plan.NetworkPlan``)."""
    from hwsnn.snn import golden
    from hwsnn.snn.qnet import load as load_qnet
    net_dir = tmp_path / "mlp"
    assert run(capsys, "convert", "digits-mlp", "-o", str(net_dir), "-T", "1", "--json")[0] == 0
    code, out, _ = run(capsys, "verilog", str(net_dir), "--lanes", "fc1=8, fc2=2",
                       "--no-taps", "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["lanes"] == {"fc1": 8, "fc2": 2, "fc3": 1}
    desc = json.loads((net_dir / "rtl" / "hwsnn_net.json").read_text())
    assert desc["made_from"]["lanes"] == rep["lanes"]
    code, out, _ = run(capsys, "build", str(net_dir), "--board", "ulx3s-85f", "--lanes",
                       "fc1=8,fc2=2", "--check-only", "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["lanes"] == {"fc1": 8, "fc2": 2}
    per = rep["fit_check"]["estimate"]["per_engine"]
    assert {k: per[k]["lanes"] for k in ("fc1", "fc2", "fc3")} == {"fc1": 8, "fc2": 2, "fc3": 1}
    code, out, _ = run(capsys, "eval", str(net_dir), "--lanes", "fc1=8,fc2=2", "--samples",
                       "16", "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["lanes"] == {"fc1": 8, "fc2": 2}
    # Each population's ideal cycles are those of a run with its own lane count.
    net = load_qnet(net_dir)
    from hwsnn.frontends import data
    x, _ = data.load_for(tuple(net.input.shape), "test", meta=net.metadata,
                         value_range=(net.input.lo, net.input.hi))
    codes = golden.encode(net, x[:16])
    for name, lanes in (("fc1", 8), ("fc2", 2), ("fc3", 1)):
        alone = golden.run(net, codes, lanes=lanes).cycles[name].sum(1).double().mean()
        assert rep["ideal_cycles_per_layer"][name] == float(alone)
    # sim writes the design anew where its lanes differ, and it equals the golden model.
    code, out, _ = run(capsys, "sim", str(net_dir), "--lanes", "fc1=4,fc2=2", "--samples",
                       "3", "--simulator", "icarus", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["exact"] and rep["samples"] == 3
    desc = json.loads((net_dir / "rtl" / "hwsnn_net.json").read_text())
    assert desc["made_from"]["lanes"] == {"fc1": 4, "fc2": 2, "fc3": 1}
    # Refused, in one line, naming the population and the network's populations.
    for argv, fragments in (
            (["verilog", str(net_dir), "--lanes", "fc9=2"],
             ["--lanes names 'fc9'", "fc1, fc2, fc3"]),
            (["build", str(net_dir), "--board", "icebreaker", "--lanes", "fc9=2",
              "--check-only"], ["--lanes names 'fc9'", "fc1, fc2, fc3"]),
            (["eval", str(net_dir), "--lanes", "fc9=2"], ["--lanes names 'fc9'"]),
            (["verilog", str(net_dir), "--lanes", "fc1=0"], ["--lanes 0"]),
            (["verilog", str(net_dir), "--lanes", "fc1=two"], ["--lanes 'two'"]),
            (["verilog", str(net_dir), "--lanes", "fc1=2,fc1=4"], ["names fc1 twice"]),
            (["verilog", str(net_dir), "--lanes", "fc1="], ["population=N pairs"]),
            (["sim", str(net_dir), "--lanes", "fc9=2"], ["--lanes names 'fc9'"])):
        code, out, err = run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        for f in fragments:
            assert f in err, err
