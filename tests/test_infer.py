"""hwsnn infer through the host link protocol, against the software stand-in board."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hwsnn.errors import HwsnnError
from hwsnn.flow import host
from hwsnn.flow.infer import GoldenDevice, infer
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize


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
    r = subprocess.run([sys.executable, "-m", "hwsnn", "infer", str(d), "--port", "golden",
                        "--images", str(images), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["samples"] == 2 and "accuracy" not in out
    r = subprocess.run([sys.executable, "-m", "hwsnn", "infer", str(d), "--port",
                        str(tmp_path / "no-such-tty")], capture_output=True, text=True)
    assert r.returncode == 2 and "cannot open" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_weights_to_load_follow_the_build_the_board_reports(mlp_dir, tmp_path):
    """infer finds the store layout a board reports among DIR's builds, and refuses with
    the layout when none matches."""
    import shutil

    from hwsnn.flow.infer import stores_for
    from hwsnn.hdl.plan import layout_id, store_specs
    src, net = mlp_dir
    d = tmp_path / "mlp"
    shutil.copytree(src, d)
    first = net.populations[0].name
    specs = store_specs(net, {p.name: 4 for p in net.populations}, [(first, 0)])
    report = d / "build" / "icebreaker" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"lanes": 4, "loadable": [[first, 0]]}))
    ident = host.Identity(host.PROTOCOL_VERSION, bytes(8), 10, 64, 1, layout_id(specs))
    got = stores_for(d, net, ident)
    assert [s.describe() for s in got] == [s.describe() for s in specs]
    assert got[0].encode() == specs[0].encode()
    other = host.Identity(host.PROTOCOL_VERSION, bytes(8), 10, 64, 1, b"\x00\x01\x02\x03")
    with pytest.raises(HwsnnError, match="layout 00010203.*checked: icebreaker"):
        stores_for(d, net, other)


def test_weights_to_load_for_a_serial_build(bundled_graph, tmp_path):
    """A layer-serial build with its weights in SPRAM (``--arch serial``): the two weight
    banks, rebuilt from the report's plan arguments, with the fit check's own layout;
    every weight of the network appears once in their bytes (a projection with a pooling
    folded in, each of its repeated weights once)."""
    from hwsnn import boards
    from hwsnn.flow.build import fit_check_serial
    from hwsnn.flow.infer import stores_for
    from hwsnn.hdl.plan import layout_id
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False), weight_bits=4)
    net.save(tmp_path)
    fit = fit_check_serial(net, boards.all_boards()["icebreaker"], 2, weights="spram")
    assert fit["serial"]["weights"] == "spram" and fit["resources"]["spram_blocks"]["used"] == 2
    report = tmp_path / "build" / "icebreaker" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"arch": "serial", "lanes": 2, "serial": fit["serial"]}))
    specs = fit["plan"].stores
    got = stores_for(tmp_path, net, host.Identity(host.PROTOCOL_VERSION, bytes(8), 10, 64,
                                                  2, layout_id(specs)))
    assert [s.describe() for s in got] == fit["stores"]
    assert [s.encode() for s in got] == [s.encode() for s in specs]
    # Bank 0 holds words 0, 2, 4, … and bank 1 words 1, 3, …: two 4-bit fields a byte.
    fields = []
    for even, odd in zip(got[0].encode(), got[1].encode() + b"\0", strict=False):
        fields += [even & 15, even >> 4, odd & 15, odd >> 4]
    weights = []
    for layer, pop in zip(fit["plan"].layers, net.populations, strict=True):
        for d, q in zip(layer.projections, pop.projections, strict=True):
            f = 1 << d.pool
            w = q.weight if q.kind == "conv" or len(d.source_shape) != 3 else \
                q.weight.reshape(q.weight.shape[0], *d.source_shape)
            w = w[..., ::f, ::f] if d.pool else w
            weights += [int(v) & 15 for v in w.reshape(-1).tolist()]
    assert any(d.pool for layer in fit["plan"].layers for d in layer.projections)
    assert fit["plan"].weight_packing == 1.0
    assert sorted(fields[:len(weights)]) == sorted(weights)


def test_store_bytes_by_hand():
    """Two lanes of 4-bit weights: one byte per word, lane 0 in the low nibble, two's
    complement: (-4, 0) → 0x0C, (7, -1) → 0xF7."""
    from hwsnn.hdl.plan import StoreSpec
    spec = StoreSpec("p", 0, "input", 2, 4, [[-4, 0], [7, -1]])
    assert spec.bytes_per_word == 1 and spec.encode() == bytes([0x0C, 0xF7])
    wide = StoreSpec("p", 0, "input", 3, 8, [[1, -1, 2]])  # 24 bits: three bytes
    assert wide.encode() == bytes([0x01, 0xFF, 0x02])


def test_weights_to_load_with_the_multiply_accumulate_input_stage(bundled_graph, tmp_path):
    """A build with ``input_lanes`` stores 8-lane input words: another layout, which
    ``stores_for`` rebuilds from the report's ``input_lanes``."""
    from hwsnn.flow.infer import stores_for
    from hwsnn.hdl.plan import layout_id, store_specs
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           progress=False))
    net.save(tmp_path)
    first = net.populations[0].name
    lanes = {p.name: 4 for p in net.populations}
    bits = store_specs(net, lanes, [(first, 0)])
    mac = store_specs(net, lanes, [(first, 0)], 8)
    assert mac[0].lanes == 8 and layout_id(mac) != layout_id(bits)
    report = tmp_path / "build" / "icebreaker" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"lanes": 4, "input_lanes": 8, "loadable": [[first, 0]]}))
    got = stores_for(tmp_path, net, host.Identity(host.PROTOCOL_VERSION, bytes(8), 10, 64,
                                                  1, layout_id(mac)))
    assert got[0].describe() == mac[0].describe() and got[0].bytes_per_word == 8
    # (Pixel-major rows of consecutive neurons: the same bytes, in longer words.)
    assert got[0].encode() == mac[0].encode() == bits[0].encode()
