"""The real data hwsnn ships with: scikit-learn's bundled UCI handwritten digits.

1797 grey-scale 8×8 images, 10 classes, pixel values 0..16 scaled to [0, 1]. The split is
fixed (stratified, seed 0, 30 % test), so every figure hwsnn reports is reproducible.
``digits28`` is the same data upsampled (bilinear) to 28×28: an MNIST-shaped workload.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from .errors import HwsnnError

TEST_FRACTION = 0.3
SPLIT_SEED = 0
DATASETS = ("digits", "digits28")


@cache
def _split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)


def load(name: str = "digits", split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images [N, 1, H, W] in [0, 1], labels [N])`` of a bundled data set split."""
    if name not in DATASETS:
        raise HwsnnError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise HwsnnError(f"unknown split {split!r}: choose 'train' or 'test'")
    x_train, x_test, y_train, y_test = _split()
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


def load_for(shape: tuple[int, ...], split: str = "test", path: str | None = None):
    """Data for a model input ``shape``: from an .npz file (arrays ``x``, ``y``) or bundled."""
    if path is not None:
        try:
            with np.load(path) as f:
                x = torch.as_tensor(f["x"], dtype=torch.float32)
                y = torch.as_tensor(f["y"], dtype=torch.int64)
        except (OSError, KeyError, ValueError) as exc:
            raise HwsnnError(
                f"cannot read data file {path}: {exc} (expected an .npz with arrays x, y)"
            ) from None
        if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
            raise HwsnnError(
                f"data file {path} holds inputs of shape {tuple(x.shape[1:])}, "
                f"the model expects {tuple(shape)}"
            )
        return x.reshape(-1, *shape), y
    x, y = load(for_shape(shape), split)
    return x.reshape(-1, *shape), y
