"""The data sets hwsnn ships: the fixed splits and the real MNIST file."""

import hashlib

import numpy as np
import pytest
import torch

from hwsnn.errors import HwsnnError
from hwsnn.frontends import data

# The sha256 of the shipped images' bytes as examples/make_mnist.py printed it, recorded in
# hwsnn/datasets/README.md: a changed or damaged file fails here.
MNIST_X_SHA256 = "0768d16c5adea568dee18fa5e4e1acb117e9ec2c5d6b1dffe5fc29c1e61c1eca"


def test_the_shipped_mnist_file_is_the_documented_one():
    x, y = data.read_mnist()
    assert x.dtype == np.uint8 and x.shape == (10_000, 28, 28)
    assert hashlib.sha256(x.tobytes()).hexdigest() == MNIST_X_SHA256
    readme = (data.MNIST_FILE.parent / "README.md").read_text()
    assert MNIST_X_SHA256 in readme
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 10_000 and counts.min() > 800  # about 1,000 per digit
    for d in range(10):
        assert f"{d}: {counts[d]}" in readme


def test_mnist_split_is_fixed_stratified_and_disjoint():
    xtr, ytr = data.load("mnist", "train")
    xte, yte = data.load("mnist", "test")
    assert xtr.shape == (8000, 1, 28, 28) and xte.shape == (2000, 1, 28, 28)
    assert xtr.dtype == torch.float32 and float(xtr.min()) == 0 and float(xtr.max()) == 1
    # 8-bit levels scaled to [0, 1]
    assert torch.equal(torch.round(xte * 255) / 255, xte)
    train_rows = {bytes(np.asarray(v)) for v in (xtr * 255).to(torch.uint8).flatten(1)}
    assert not any(bytes(np.asarray(v)) in train_rows
                   for v in (xte * 255).to(torch.uint8).flatten(1))
    # stratified: every digit's share of the test split within one image of its share
    full = np.bincount(data.read_mnist()[1], minlength=10)
    assert np.all(np.abs(np.bincount(yte.numpy(), minlength=10) - full * 0.2) <= 1)
    again, _ = data.load("mnist", "test")
    assert torch.equal(again, xte)


def test_mnist_labels_belong_to_their_images():
    """Independent of any hwsnn model: a nearest-class-mean classifier fitted on the train
    split scores about 80 % on real MNIST (10 % if the labels were shuffled)."""
    xtr, ytr = data.load("mnist", "train")
    xte, yte = data.load("mnist", "test")
    means = torch.stack([xtr[ytr == d].flatten(1).mean(0) for d in range(10)])
    pred = torch.cdist(xte.flatten(1), means).argmin(1)
    assert (pred == yte).float().mean() > 0.75


def test_unknown_data_set_is_named():
    with pytest.raises(HwsnnError, match="mnist"):
        data.load("cifar10")


@pytest.mark.parametrize("name, least", [("mnist-mlp", 0.96), ("mnist-cnn", 0.99)])
def test_bundled_mnist_models_are_measured_on_mnist(tmp_path, capsys, name, least):
    """A bundled MNIST model is calibrated and evaluated on the MNIST split, never on the
    upsampled digits that share its input shape; its ANN accuracy there is the float
    model's own, computed here directly."""
    import json

    from hwsnn.models import BUNDLED
    from hwsnn.tools.cli import main

    x, y = data.load("mnist", "test")
    with torch.no_grad():
        direct = (BUNDLED[name].load()(x).argmax(1) == y).float().mean().item()
    assert direct >= least
    out = tmp_path / name
    assert main(["convert", name, "-o", str(out), "--timesteps", "2", "--json"]) == 0
    conv = json.loads(capsys.readouterr().out)
    assert conv["quantization_check"]["samples"] == 512
    assert conv["quantization_check"]["float_snn_accuracy"] > 0.9  # on MNIST train images
    assert main(["eval", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["samples"] == 2000 and r["ann_accuracy"] == pytest.approx(direct, abs=1e-6)


def _write_idx(path, array: np.ndarray, gz: bool):
    import gzip
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    raw = head + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


@pytest.mark.parametrize("gz", [False, True])
def test_a_torchvision_mnist_folder_is_read_like_the_npz(tmp_path, gz):
    """IDX files written here by hand (header: 0, 0, type 8, ndim, big-endian sizes) in
    torchvision's MNIST/raw layout: read back as the same images in [0, 1] and labels."""
    x, y = data.read_mnist()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte", x[:30], gz)
    _write_idx(raw / "train-labels-idx1-ubyte", y[:30], gz)
    _write_idx(raw / "t10k-images-idx3-ubyte", x[30:42], gz)
    _write_idx(raw / "t10k-labels-idx1-ubyte", y[30:42], gz)
    for split, sl in (("train", slice(0, 30)), ("test", slice(30, 42))):
        lx, ly = data.load_for((1, 28, 28), split, str(tmp_path), value_range=(0.0, 1.0))
        assert lx.shape == (sl.stop - sl.start, 1, 28, 28)
        assert torch.equal(lx, torch.from_numpy(x[sl] / 255.0).float().unsqueeze(1))
        assert torch.equal(ly, torch.from_numpy(y[sl]))
    (raw / ("t10k-labels-idx1-ubyte" + (".gz" if gz else ""))).unlink()
    with pytest.raises(HwsnnError, match="t10k-labels-idx1-ubyte"):
        data.load_for((1, 28, 28), "test", str(tmp_path))
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x00" * 7)
    with pytest.raises(HwsnnError, match="truncated"):
        data.read_idx(bad)


FACTORY = '''
import torch
from torch.utils.data import Dataset

from hwsnn.frontends import data


class Digits(Dataset):
    def __init__(self, split):
        self.x, self.y = data.load("digits", split)

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def digits(split):
    return Digits(split)


def broken(split):
    raise OSError("no such folder /data/mnist")
'''


def test_a_dataset_factory_is_read_from_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "hwsnn_user_data.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    x, y = data.load_for((1, 8, 8), "test", "hwsnn_user_data:digits", value_range=(0, 1))
    dx, dy = data.load("digits", "test")
    assert torch.equal(x, dx[:7]) and torch.equal(y, dy[:7])
    with pytest.raises(HwsnnError, match=r"broken\('train'\) raised OSError: no such folder"):
        data.load_for((1, 8, 8), "train", "hwsnn_user_data:broken")
