"""QNet files: a lossless round trip, and a precise refusal of anything else."""

import json

import numpy as np
import pytest
import torch

from hwsnn import CheckpointError, load_qnet
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize


@pytest.fixture(scope="module")
def qnet(bundled_graph):
    return quantize(convert(bundled_graph("digits-cnn"), method="cos", timesteps=2,
                            progress=False))


def test_round_trip_is_exact(qnet, tmp_path, digits_test):
    qnet.save(tmp_path)
    back = load_qnet(tmp_path)
    assert back.to_json()[0] == qnet.to_json()[0]
    for a, b in zip(qnet.populations, back.populations, strict=True):
        assert np.array_equal(a.bias, b.bias)
        for p, q in zip(a.projections, b.projections, strict=True):
            assert np.array_equal(p.weight, q.weight)
    codes = golden.encode(qnet, digits_test[0][:50])
    assert torch.equal(golden.run(qnet, codes).readout, golden.run(back, codes).readout)


def edit(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def test_other_version_is_refused(qnet, tmp_path):
    qnet.save(tmp_path)
    edit(tmp_path / "qnet.json", lambda d: d.update(version=99))
    with pytest.raises(CheckpointError, match="version 99"):
        load_qnet(tmp_path)


def test_truncated_arrays_are_refused(qnet, tmp_path):
    qnet.save(tmp_path)
    data = (tmp_path / "qnet.npz").read_bytes()
    (tmp_path / "qnet.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_qnet(tmp_path)


def test_shape_mismatch_is_refused(qnet, tmp_path):
    qnet.save(tmp_path)
    edit(tmp_path / "qnet.json", lambda d: d["populations"][1]["projections"][0]
         .update(shape=[1, 2, 3, 3]))
    with pytest.raises(CheckpointError, match="has shape"):
        load_qnet(tmp_path)


def test_source_order_is_checked(qnet, tmp_path):
    qnet.save(tmp_path)
    edit(tmp_path / "qnet.json",
         lambda d: d["populations"][0]["projections"][0].update(source="conv3"))
    with pytest.raises(CheckpointError, match="does not precede it"):
        load_qnet(tmp_path)


def test_missing_field_is_refused(qnet, tmp_path):
    qnet.save(tmp_path)
    edit(tmp_path / "qnet.json", lambda d: d["populations"][0].pop("threshold"))
    with pytest.raises(CheckpointError, match="malformed"):
        load_qnet(tmp_path)


def test_golden_refuses_bad_inputs(qnet):
    from hwsnn import ShapeError
    with pytest.raises(ShapeError, match=r"\[batch, 1, 8, 8\]"):
        golden.run(qnet, torch.zeros(2, 64, dtype=torch.int64))
    with pytest.raises(ShapeError, match="0..255"):
        golden.run(qnet, torch.full((1, 1, 8, 8), 300))
    with pytest.raises(ShapeError, match="integer input codes"):
        golden.run(qnet, torch.zeros(1, 1, 8, 8))


def test_weight_shift_round_trip_and_checks(qnet, tmp_path):
    import copy
    net = copy.deepcopy(qnet)
    q = net.populations[0].projections[0]
    q.weight, q.weight_shift = q.weight * 8, 3
    net.save(tmp_path)
    back = load_qnet(tmp_path)
    b = back.populations[0].projections[0]
    assert b.weight_shift == 3 and np.array_equal(b.weight, q.weight)
    assert np.array_equal(b.stored, q.weight // 8)
    # A file without the field (written before it existed) means no shift.
    edit(tmp_path / "qnet.json",
         lambda d: d["populations"][1]["projections"][0].pop("weight_shift"))
    assert load_qnet(tmp_path).populations[1].projections[0].weight_shift == 0
    edit(tmp_path / "qnet.json",
         lambda d: d["populations"][0]["projections"][0].update(weight_shift=4))
    with pytest.raises(CheckpointError, match="not a multiple of 2\\^4"):
        load_qnet(tmp_path)
    edit(tmp_path / "qnet.json",
         lambda d: d["populations"][0]["projections"][0].update(weight_shift=0))
    with pytest.raises(CheckpointError, match="exceeds 8 bits"):
        load_qnet(tmp_path)
