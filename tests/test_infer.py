"""hwsnn infer through the host link protocol, against the software stand-in board."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hwsnn import golden, host
from hwsnn.convert import convert
from hwsnn.infer import GoldenDevice, infer
from hwsnn.quantize import quantize


@pytest.fixture(scope="module")
def mlp_dir(bundled_graph, tmp_path_factory):
    d = tmp_path_factory.mktemp("mlp")
    net = quantize(convert(bundled_graph("digits-mlp"), method="ilif", timesteps=2,
                           progress=False))
    net.save(d)
    return d, net


def test_infer_on_the_golden_board_matches_and_counts(mlp_dir, digits_test):
    d, net = mlp_dir
    r = infer(d, "golden", samples=5, offset=3)
    assert r["samples"] == 5 and r["golden_mismatches"] == 0
    want = golden.run(net, golden.encode(net, digits_test[0][3:8]))
    assert [row["class"] for row in r["results"]] == want.predictions.tolist()
    assert [row["values"] for row in r["results"]] == want.readout.tolist()
    assert r["status"] == {"accepted": 7, "rejected": 0, "inferences": 5}


def test_golden_board_rejects_bad_frames_like_the_hardware(mlp_dir):
    _, net = mlp_dir
    dev = GoldenDevice(net)
    frame = bytearray(host.encode_frame(host.CMD_INFER, bytes(64)))
    frame[10] ^= 1
    dev.write(b"\x00\x13" + bytes(frame))  # garbage, then a corrupted frame
    reply = host.FrameParser().feed(dev.read(100))
    assert reply == [host.Frame(host.CMD_ERROR, bytes([host.ERR_CRC]))]
    dev.write(host.encode_frame(host.CMD_INFER, bytes(10)))
    assert host.FrameParser().feed(dev.read(100))[0].payload == bytes([host.ERR_LENGTH])
    dev.write(host.encode_frame(0x42))
    assert host.FrameParser().feed(dev.read(100))[0].payload == bytes([host.ERR_COMMAND])


def test_cli_infer_images_and_errors(mlp_dir, digits_test, tmp_path):
    d, net = mlp_dir
    images = tmp_path / "img.npy"
    np.save(images, digits_test[0][:2].numpy())
    r = subprocess.run([sys.executable, "-m", "hwsnn.cli", "infer", str(d), "--port", "golden",
                        "--images", str(images), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["samples"] == 2 and "accuracy" not in out
    r = subprocess.run([sys.executable, "-m", "hwsnn.cli", "infer", str(d), "--port",
                        str(tmp_path / "no-such-tty")], capture_output=True, text=True)
    assert r.returncode == 2 and "cannot open" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
