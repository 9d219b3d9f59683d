"""The real data hwsnn ships with: scikit-learn's UCI handwritten digits and real MNIST.

- ``digits``: scikit-learn's bundled 1797 grey-scale 8×8 images, 10 classes, pixel values
  0..16 scaled to [0, 1]; split stratified, seed 0, 30 % test.
- ``digits28``: the same data upsampled (bilinear) to 28×28: an MNIST-shaped workload.
- ``mnist``: 10,000 real MNIST digits (28×28, 8-bit grey scaled to [0, 1]) shipped in
  ``hwsnn/datasets/mnist.npz`` (provenance in its README); split stratified, seed 0,
  8,000 train / 2,000 test.

Every split is fixed, so every figure hwsnn reports is reproducible, and nothing is
downloaded at run time.
"""

from __future__ import annotations

import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ..errors import HwsnnError

TEST_FRACTION = 0.3
SPLIT_SEED = 0
DATASETS = ("digits", "digits28", "mnist")
MNIST_FILE = Path(__file__).resolve().parents[1] / "datasets" / "mnist.npz"
MNIST_TEST = 2000  # of the 10,000 shipped digits


@cache
def _split(name: str = "digits"):
    from sklearn.model_selection import train_test_split

    if name == "mnist":
        x, y = read_mnist()
        x = (x / 255.0).astype(np.float32)
        test = MNIST_TEST
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images / 16.0).astype(np.float32)
        y = bunch.target.astype(np.int64)
        test = TEST_FRACTION
    return train_test_split(x, y, test_size=test, random_state=SPLIT_SEED, stratify=y)


def read_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The shipped MNIST digits as stored: ``x`` uint8 [10000, 28, 28], ``y`` int64."""
    try:
        with np.load(MNIST_FILE, allow_pickle=False) as f:
            x, y = f["x"], f["y"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise HwsnnError(f"the shipped MNIST file {MNIST_FILE} is missing or damaged "
                         f"({exc}): reinstall hwsnn, or rebuild it with "
                         "examples/make_mnist.py") from None
    return x, y


def load(name: str = "digits", split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images [N, 1, H, W] in [0, 1], labels [N])`` of a bundled data set split."""
    if name not in DATASETS:
        raise HwsnnError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise HwsnnError(f"unknown split {split!r}: choose 'train' or 'test'")
    x_train, x_test, y_train, y_test = _split("mnist" if name == "mnist" else "digits")
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    images = torch.from_numpy(x).unsqueeze(1)
    if name == "digits28":
        images = torch.nn.functional.interpolate(
            images, size=(28, 28), mode="bilinear", align_corners=False
        ).clamp(0, 1)
    return images, torch.from_numpy(y)


def for_shape(shape: tuple[int, ...]) -> str:
    """Name the bundled data set whose images fit an input of ``shape`` (without batch)."""
    size = int(np.prod(shape))
    if size == 64:
        return "digits"
    if size == 784:
        return "digits28"
    raise HwsnnError(
        f"no bundled data set has inputs of shape {tuple(shape)}: bundled are 1x8x8 (digits) "
        "and 1x28x28 (digits28); give your own with --data FILE.npz (arrays x, y)"
    )


def read_arrays(path: str, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Numeric arrays ``keys`` of an .npz file (or the one array of an .npy file, as
    ``keys[0]``), never unpickling: a file with Python objects is refused like a corrupt
    one. ``what`` says what the file is for, in messages."""
    expected = (f"an .npz with numeric arrays {', '.join(keys)} (numpy.savez(FILE, "
                + ", ".join(f"{k}=..." for k in keys) + "))")
    if len(keys) == 1:
        expected = f"an .npy array, or {expected}"
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as exc:
        raise HwsnnError(f"cannot read {what} {path}: {exc.strerror}") from None
    if head[:2] != b"PK" and head != b"\x93NUMPY":
        raise HwsnnError(f"{what} {path} is not a NumPy file: give {expected}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {k: loaded[k] for k in keys if k in loaded.files}
        else:
            arrays = {keys[0]: loaded}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = ("it holds Python objects, which hwsnn does not unpickle"
                  if "pickle" in str(exc) else "it is corrupt or truncated")
        raise HwsnnError(f"cannot read {what} {path}: {reason}; give {expected}") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise HwsnnError(f"{what} {path} has no array {', '.join(missing)}: give {expected}")
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise HwsnnError(f"{what} {path}: array {k} holds {a.dtype}, not numbers: give "
                             f"{expected}")
    return arrays


IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (the MNIST format; gzip-compressed when its name ends in .gz)."""
    import gzip
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise HwsnnError(f"cannot read the IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise HwsnnError(f"{path} is not an IDX file (the MNIST format): its first bytes "
                         "are not 0, 0, a type code")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise HwsnnError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise HwsnnError(f"{path}: the header says {'x'.join(map(str, dims))} values, the "
                         f"file holds {len(body) // dtype.itemsize}: it is truncated")
    return np.frombuffer(body, dtype).reshape(dims)


def _find_idx(folder: Path, name: str) -> Path | None:
    for sub in ("", "raw", "MNIST/raw", "FashionMNIST/raw", "KMNIST/raw"):
        for suffix in ("", ".gz"):
            p = folder / sub / (name + suffix)
            if p.is_file():
                return p
    return None


def read_idx_folder(folder: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A torchvision-style MNIST / Fashion-MNIST folder: ``split`` ``train`` reads
    train-images-idx3-ubyte and train-labels-idx1-ubyte, ``test`` the t10k files (gzipped
    or not, in the folder or its raw/, MNIST/raw/ or FashionMNIST/raw/). Returns the images
    scaled to [0, 1] (as torchvision's ToTensor) and the labels."""
    folder = Path(folder)
    names = IDX_FILES[split]
    found = [_find_idx(folder, n) for n in names]
    missing = [n for n, p in zip(names, found, strict=True) if p is None]
    if missing:
        raise HwsnnError(f"data folder {folder} holds no {' or '.join(missing)} (.gz or not, "
                         "in the folder or its raw/, MNIST/raw/, FashionMNIST/raw/): give a "
                         "torchvision-style MNIST folder or an .npz with arrays x, y")
    images, labels = (read_idx(p) for p in found)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise HwsnnError(f"data folder {folder}: {found[0].name} holds "
                         f"{'x'.join(map(str, images.shape))}, {found[1].name} "
                         f"{'x'.join(map(str, labels.shape))}: expected N images and N labels")
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    return x, labels.astype(np.int64)


def read_factory(spec: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``package.module:factory``: a function that takes the split (``"train"`` or
    ``"test"``) and returns a torch Dataset of (image tensor, integer label) pairs."""
    from ..tools.api import _first_line, _import_factory
    module_name, _, name = spec.partition(":")
    factory = _import_factory(spec, module_name, name)
    try:
        dataset = factory(split)
        pairs = [dataset[i] for i in range(len(dataset))]
    except Exception as exc:  # the user's code: any error
        raise HwsnnError(f"--data {spec}: {name}({split!r}) raised {type(exc).__name__}: "
                         f"{_first_line(exc)}; give a function of the split that returns a "
                         "torch Dataset of (image, label)") from None
    try:
        x = torch.stack([torch.as_tensor(p[0], dtype=torch.float32) for p in pairs])
        y = torch.as_tensor([int(p[1]) for p in pairs], dtype=torch.int64)
    except (TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise HwsnnError(f"--data {spec}: the Dataset's items are not (image tensor, integer "
                         f"label) pairs of one shape ({_first_line(exc)})") from None
    if not len(x):
        raise HwsnnError(f"--data {spec}: the {split} Dataset is empty")
    return x, y


def dataset_of(meta: dict) -> str | None:
    """The shipped data set a network was converted for (its metadata's ``dataset``)."""
    name = meta.get("dataset")
    return name if name in DATASETS else None


def unknown_data(meta: dict) -> bool:
    """Whether a network was converted from a model whose data hwsnn does not know (its
    metadata says ``"dataset": null``): such a network is never run on a shipped data set
    that merely shares its input shape."""
    return "dataset" in meta and meta["dataset"] is None


def shipped_for(shape: tuple[int, ...], meta: dict | None = None) -> str:
    """The shipped data set a network runs on by default: the one its metadata ``meta``
    names, else the one of its input ``shape``; an error when ``meta`` says its data is
    unknown, or no shipped set has that shape."""
    if meta is not None:
        if unknown_data(meta):
            raise HwsnnError(f"{meta.get('model', 'this network')} was converted without a "
                             "known data set: give its data with --data DATA (an .npz with "
                             "arrays x, y, an MNIST folder or package.module:factory)")
        if dataset_of(meta):
            return dataset_of(meta)
    return for_shape(shape)


def check_range(x: torch.Tensor, value_range: tuple[float, float], what: str,
                convertible: bool = True) -> None:
    """Refuse inputs outside the range ``[lo, hi]`` the network was converted for (they
    would be clipped to it, silently: uint8 pixels given to a network made for [0, 1]
    would all read as white). ``convertible``: whether the advice may name convert's
    ``--input-range`` (not for a bundled model converted on the fly)."""
    lo, hi = value_range
    if x.numel() == 0:
        return
    xmin, xmax = float(x.min()), float(x.max())
    slack = 1e-3 * (hi - lo)
    if xmin >= lo - slack and xmax <= hi + slack:
        return
    text = (f"{what} holds values in [{xmin:g}, {xmax:g}], but the network takes inputs in "
            f"[{lo:g}, {hi:g}]")
    if xmax > 2 * hi and xmin >= 0 and xmax <= 255 and hi <= 1:
        text += ": they look like 8-bit pixels; divide x by 255"
    else:
        text += ": scale x into that range"
    raise HwsnnError(text + (", or convert the model with --input-range LO,HI of your data"
                             if convertible else ""))


def read_user(path: str, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """The user's labelled data ``path`` as it is: an .npz file (arrays ``x``, ``y``), a
    torchvision-style MNIST folder of IDX files (its ``split``) or
    ``package.module:factory`` (see ``read_factory``). Returns ``(inputs [N, ...] float32,
    labels [N] int64)``, neither reshaped nor range-checked (``load_for`` does both)."""
    if Path(path).is_dir():
        ax, ay = read_idx_folder(path, split)
    elif ":" in path and not Path(path).exists():
        ax, ay = read_factory(path, split)
    else:
        arrays = read_arrays(path, ("x", "y"), "data file")
        ax, ay = arrays["x"], arrays["y"]
    x = torch.as_tensor(ax, dtype=torch.float32)
    y = torch.as_tensor(ay, dtype=torch.int64)
    if len(x) != len(y) or y.dim() != 1:
        raise HwsnnError(f"data file {path} holds {len(x)} inputs x but labels y of shape "
                         f"{tuple(y.shape)}: give one label per input")
    if not len(x):
        raise HwsnnError(f"data file {path} holds no samples: give at least one input and "
                         "its label")
    return x, y


def describe(path: str | None, dataset: str | None = None, split: str = "test") -> str:
    """What a measurement ran on, in reports: the user's ``path`` as given, else ``the
    DATASET test split``."""
    return path if path is not None else f"the {dataset} {split} split"


def load_for(shape: tuple[int, ...], split: str = "test", path: str | None = None,
             dataset: str | None = None, value_range: tuple[float, float] | None = None,
             meta: dict | None = None, convertible: bool = True):
    """Data for a model input ``shape``: from ``path``, an .npz file (arrays ``x``, ``y``),
    a torchvision-style MNIST folder of IDX files (its ``split``) or
    ``package.module:factory`` (see ``read_factory``), else the shipped data
    set ``dataset`` (a bundled model's own, or named by a network's metadata ``meta``), else
    the shipped one of that shape, unless ``meta`` says the network's data is unknown. A
    file's values must lie in ``value_range`` (the network's input range) when given
    (``convertible``: see ``check_range``)."""
    if path is not None:
        x, y = read_user(path, split)
        if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
            raise HwsnnError(
                f"data file {path} holds inputs of shape {tuple(x.shape[1:])}, "
                f"the model expects {tuple(shape)}: give data of the model's input shape "
                f"({int(np.prod(shape))} values per input)"
            )
        if value_range is not None:
            check_range(x, value_range, f"data file {path}", convertible)
        return x.reshape(-1, *shape), y
    x, y = load(dataset or shipped_for(shape, meta), split)
    return x.reshape(-1, *shape), y
