"""Bad input through the command line: every case is refused with exit status 2 and one
line on stderr that starts ``hwsnn: error:`` and names the input, without a traceback and
without a file written, changed or removed; with ``--json`` the refusal is also one JSON
object on stdout. No case runs a simulator or a synthesis tool."""

import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hwsnn.hdl.verilog import fingerprint
from hwsnn.snn.qnet import load as load_qnet
from hwsnn.tools.cli import main

MODULE = "hwsnn_bad_input_models"  # written into the workspace, imported from there

MODELS = '''
import torch
from torch import nn

import hwsnn


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def boom():
    raise RuntimeError("no GPU here")


def not_a_module():
    return 3


class Many(nn.Module):
    """Four kinds of layers hwsnn cannot convert, five modules."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.gelu1 = nn.GELU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.gate = nn.Sigmoid()
        self.gelu2 = nn.GELU()
        self.fc = nn.Linear(64, 10)
        self.softmax = nn.Softmax(1)

    def forward(self, x):
        x = self.pool(self.gelu1(self.conv(x)))
        x = self.gelu2(self.gate(self.conv2(x)))
        return self.softmax(self.fc(x.flatten(1)))


def many():
    return Many()


def stem():
    """A torchvision ResNet's stem: conv 7x7/2, BN, ReLU, max pool 3x3/2 padding 1."""
    return nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
'''

HDF5 = b"\x89HDF\r\n\x1a\n"


def _unwritable() -> str:
    if os.geteuid() == 0:  # root writes through permissions: /proc takes no new entries
        return "/proc/hwsnn-out"
    return "locked/out"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("bad-input")
    cwd = os.getcwd()
    os.chdir(ws)
    try:
        (ws / f"{MODULE}.py").write_text(MODELS)
        (ws / "hwsnn_broken_models.py").write_text("def mlp(:\n    pass\n")
        sys.path.insert(0, str(ws))
        mod = __import__(MODULE)
        for name in ("mlp", "many", "stem"):
            torch.save(getattr(mod, name)().state_dict(), ws / f"{name}.pt")
        torch.save(mod.mlp(), ws / "model.pt")  # a whole model: pickled classes
        (ws / "garbage.pt").write_bytes(b"not a checkpoint")
        (ws / "garbage.pt2").write_bytes(b"PK\x03\x04 truncated")
        (ws / "garbage.nir").write_bytes(b"not HDF5")
        (ws / "garbage.npy").write_bytes(b"not numpy")
        with open(ws / "pickled.npy", "wb") as f:
            pickle.dump([1, 2, 3], f)
        np.save(ws / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
        np.savez(ws / "objects.npz", x=np.array([{}], dtype=object), y=np.zeros(1))
        np.save(ws / "small.npy", np.zeros((3, 5)))
        np.savez(ws / "shape.npz", x=np.zeros((2, 3, 5), np.float32), y=np.zeros(2, np.int64))
        from hwsnn.frontends import data
        dx, dy = data.load("digits", "test")
        pixels = (dx[:4] * 255).round().to(torch.uint8).numpy()  # 8-bit pixels, not [0, 1]
        np.savez(ws / "uint8.npz", x=pixels, y=dy[:4].numpy())
        np.save(ws / "uint8.npy", pixels)
        (ws / "file.txt").write_text("a file\n")
        (ws / "notes").mkdir()
        (ws / "notes" / "notes.txt").write_text("a user's notes\n")
        (ws / "empty").mkdir()
        (ws / "locked").mkdir()
        (ws / "results").mkdir()
        (ws / "results" / "BENCHMARKS.md").write_text("# my own benchmarks\n")
        assert main(["convert", "digits-mlp", "-o", "net", "-T", "1", "--json"]) == 0
        assert main(["convert", "digits-cnn", "-o", "cnn", "-T", "1", "--json"]) == 0
        net = ws / "net"
        # What the user put in the network directory, and a stale build of another QNet.
        (net / "rtl").mkdir()
        (net / "rtl" / "hwsnn_net.v").write_text("// the user's own module\n")
        (net / "report.md").write_text("# my own notes on this network\n")
        build = net / "build" / "icebreaker"
        build.mkdir(parents=True)
        (build / "hwsnn_board.bin").write_bytes(b"\0" * 16)
        (build / "report.json").write_text(json.dumps({"qnet_sha256": "0" * 64}))
        assert fingerprint(load_qnet(net)) != "0" * 64
        os.chmod(ws / "locked", 0o500)
        yield ws
    finally:
        os.chdir(cwd)
        sys.path.remove(str(ws))
        sys.modules.pop(MODULE, None)
        os.chmod(ws / "locked", 0o700)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its contents (directories: '')."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(root))] = ""
    return out


M = MODULE
CASES = [
    # output locations
    (["convert", "digits-mlp", "-o", "notes"], ["-o notes", "did not write", "notes.txt"]),
    (["convert", "digits-mlp", "-o", "file.txt/out"], ["-o file.txt/out", "is a file"]),
    (["convert", "digits-mlp", "-o", "file.txt"], ["-o file.txt", "is a file"]),
    (["convert", "digits-mlp", "-o", _unwritable()], [f"-o {_unwritable()}", "cannot write"]),
    (["convert", "digits-mlp", "-o", "."], ["-o .", "did not write"]),
    (["demo", "-o", "notes"], ["-o notes", "did not write"]),
    (["export-nir", "net", "-o", "file.txt/x.nir"], ["-o file.txt/x.nir", "is a file"]),
    (["export-nir", "net", "-o", "empty"], ["-o empty", "is a directory"]),
    (["export-nir", "net", "-o", "file.txt"], ["-o file.txt", "not a file hwsnn wrote"]),
    (["verilog", "net"], ["net/rtl/hwsnn_net.v", "did not write", "--top"]),
    (["report", "net"], ["net/report.md", "did not write"]),
    (["explore", "digits-mlp", "--board", "icebreaker", "--plot", "file.txt"],
     ["--plot file.txt", ".png"]),
    (["explore", "digits-mlp", "--board", "icebreaker", "--pick", "notes"],
     ["--pick notes", "did not write"]),
    (["bench", "--quick", "--out", "file.txt"], ["--out file.txt", "is a file"]),
    (["bench", "--quick", "--out", "results"], ["results/BENCHMARKS.md", "did not write"]),
    (["flash", "net", "--board", "icebreaker", "--dry-run"],
     ["hwsnn_board.bin", "not built from the network in net", "hwsnn build net"]),
    # options
    (["convert", "digits-mlp", "-o", "out", "--percentile", "150"], ["--percentile '150'"]),
    (["convert", "digits-mlp", "-o", "out", "--percentile", "nan"], ["--percentile 'nan'"]),
    (["convert", "digits-mlp", "-o", "out", "--calibration-samples", "0"],
     ["--calibration-samples 0"]),
    (["convert", "digits-mlp", "-o", "out", "--normalize", "0.5/0"], ["--normalize", "STD"]),
    (["convert", "digits-mlp", "-o", "out", "--input-range", "1,0"], ["--input-range"]),
    (["convert", "digits-mlp", "-o", "out", "--timesteps", "abc"],
     ["--timesteps", "'abc'", "--help"]),
    (["convert", "digits-mlp", "-o", "out", "--timesteps", "0"], ["timesteps", "1..256"]),
    (["convert", "digits-mlp", "-o", "out", "--group-size", "x"], ["group size 'x'"]),
    (["convert", "digits-mlp", "-o", "out", "--weight-bits", "1"], ["weight bits", "2..16"]),
    (["eval", "net", "--samples", "0"], ["--samples 0"]),
    (["verilog", "cnn", "--lanes", "0"], ["--lanes 0"]),
    (["sim", "cnn", "--samples", "0"], ["--samples"]),
    (["sim", "net"], ["net/rtl/hwsnn_net.v", "did not write"]),
    (["build", "cnn", "--board", "nosuchboard"], ["'nosuchboard'", "icebreaker"]),
    (["build", "cnn", "--board", "icebreaker", "--clock", "0"], ["--clock '0'"]),
    # the fit error: advice, never the board already chosen
    (["build", "cnn", "--board", "ulx3s-85f", "--lanes", "128", "--check-only", "--arch",
      "dataflow"],
     ["cnn does not fit ULX3S", "--queue-depth 16"]),
    # models, checkpoints, data files
    (["convert", "nonexistent-model", "-o", "out"], ["'nonexistent-model'", "bundled model"]),
    (["convert", "garbage.pt2", "-o", "out"], ["garbage.pt2", "torch.export"]),
    (["convert", "garbage.nir", "-o", "out"], ["garbage.nir", "NIR"]),
    (["convert", f"{M}:mlp", "--weights", "garbage.pt", "--input-shape", "1,8,8", "-o", "out"],
     ["garbage.pt", "not a state dict", "model.state_dict()"]),
    (["convert", f"{M}:mlp", "--weights", "model.pt", "--input-shape", "1,8,8", "-o", "out"],
     ["model.pt", "Python objects", "model.state_dict()"]),
    (["convert", f"{M}:mlp", "--weights", "missing.pt", "--input-shape", "1,8,8", "-o", "out"],
     ["missing.pt", "no such file"]),
    (["convert", f"{M}:mlp", "--weights", "many.pt", "--input-shape", "1,8,8", "-o", "out"],
     ["many.pt", "does not match the model"]),
    (["convert", "nosuchmodule:mlp", "--weights", "mlp.pt", "--input-shape", "1,8,8",
      "-o", "out"], ["'nosuchmodule'", "current directory", "PYTHONPATH"]),
    (["convert", f"{M}:nothere", "--weights", "mlp.pt", "-o", "out"], ["'nothere'"]),
    (["convert", f"{M}:boom", "--weights", "mlp.pt", "-o", "out"],
     [f"{M}:boom", "RuntimeError: no GPU here"]),
    (["convert", f"{M}:not_a_module", "--weights", "mlp.pt", "-o", "out"],
     ["not_a_module returned int"]),
    (["convert", "hwsnn_broken_models:mlp", "--weights", "mlp.pt", "-o", "out"],
     ["hwsnn_broken_models", "SyntaxError"]),
    (["convert", f"{M}:many", "--weights", "many.pt", "--input-shape", "1,8,8", "-o", "out"],
     ["5 layers cannot be converted", "'gelu1', 'gelu2' (GELU)", "'pool' (MaxPool2d)",
      "'gate' (Sigmoid)", "'softmax' (Softmax)"]),
    (["convert", f"{M}:stem", "--weights", "stem.pt", "--input-shape", "3,16,16", "-o", "out"],
     ["'3' (MaxPool2d)", "nn.AvgPool2d(2)", "4x4 output on this 8x8 map"]),
    (["convert", "digits-mlp", "-o", "out", "--calibration-data", "garbage.npy"],
     ["garbage.npy", "not a NumPy file"]),
    (["eval", "net", "--data", "objects.npz"], ["objects.npz", "Python objects"]),
    (["eval", "empty"], ["empty holds no qnet.json", "hwsnn convert"]),
    (["eval", "net", "--data", "empty"],
     ["data folder empty", "t10k-images-idx3-ubyte", "torchvision-style MNIST folder"]),
    (["eval", "net", "--data", "uint8.npz"],
     ["data file uint8.npz", "[0, 255]", "[0, 1]", "divide x by 255"]),
    (["convert", "digits-mlp", "-o", "out", "--calibration-data", "uint8.npz"],
     ["data file uint8.npz", "divide x by 255", "--input-range"]),
    (["sim", "cnn", "--data", "uint8.npz"], ["data file uint8.npz", "divide x by 255"]),
    (["infer", "net", "--port", "golden", "--images", "uint8.npy"],
     ["--images uint8.npy", "divide x by 255"]),
    (["infer", "net", "--port", "golden", "--images", "garbage.npy"],
     ["--images garbage.npy", "not a NumPy file"]),
    (["infer", "net", "--port", "golden", "--images", "pickled.npy"],
     ["--images pickled.npy", "not a NumPy file"]),
    (["infer", "net", "--port", "golden", "--images", "objects.npy"],
     ["--images objects.npy", "Python objects"]),
    (["infer", "net", "--port", "golden", "--images", "small.npy"],
     ["small.npy", "15 values"]),
    (["infer", "net", "--port", "golden", "--data", "uint8.npz"],
     ["data file uint8.npz", "divide x by 255"]),
    (["infer", "net", "--port", "golden", "--data", "uint8.npz", "--images", "uint8.npy"],
     ["--data uint8.npz and --images uint8.npy cannot be used together"]),
    (["explore", "digits-mlp", "--board", "icebreaker", "--data", "uint8.npz"],
     ["data file uint8.npz", "divide x by 255"]),
    (["explore", "digits-mlp", "--board", "icebreaker", "--data", "shape.npz"],
     ["data file shape.npz", "(3, 5)", "the model expects (1, 8, 8)"]),
    (["bench", "--quick", "--data", "uint8.npz"], ["data file uint8.npz", "divide x by 255"]),
    (["bench", "--quick", "--data", "shape.npz"],
     ["data file shape.npz", "(3, 5)", "no bundled model takes", "digits-mlp 1x8x8"]),
]

# What the libraries say that hwsnn must not pass on: unsafe to follow, or not one line.
NEVER = ("Traceback", "weights_only", "allow_pickle", "add_safe_globals", "pickle.load")


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("argv,fragments", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(workspace, capfd, argv,
                                                             fragments, as_json):
    before = snapshot(workspace)
    code = main(argv + (["--json"] if as_json else []))
    out, err = capfd.readouterr()
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hwsnn: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    for bad in NEVER:
        assert bad not in err and bad not in out
    assert snapshot(workspace) == before
    if as_json:
        assert json.loads(out) == {"error": lines[0].removeprefix("hwsnn: error: "),
                                   "exit_status": 2}
    else:
        assert out == ""


def test_enough_cases():
    assert len(CASES) >= 25


def test_the_fit_error_never_suggests_the_chosen_board(workspace, capfd):
    """On every board, a design too large for it: the advice may name other boards that
    hold it, never the one given."""
    from hwsnn import boards
    for board in boards.all_boards():
        code = main(["build", "cnn", "--board", board, "--lanes", "128", "--check-only",
                     "--arch", "dataflow"])
        _, err = capfd.readouterr()
        assert code == 2 and "does not fit" in err
        advice = err.split(": try ", 1)[1]
        named = advice.split("--board ", 1)[1].rstrip(")\n").split(", ") \
            if "--board " in advice else []
        assert board not in named, err
        for other in named:  # ... and those it names hold it
            assert main(["build", "cnn", "--board", other, "--lanes", "128",
                         "--check-only"]) == 0
            capfd.readouterr()
