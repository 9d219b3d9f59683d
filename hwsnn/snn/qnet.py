"""QNet: the integer network, the contract between software and hardware.

A QNet is written as two files in one directory: ``qnet.json`` (structure, integers,
widths) and ``qnet.npz`` (integer weight and bias arrays, named in the JSON). The golden
model (``hwsnn.snn.golden``) and the HDL generator read only a QNet. The format is documented
in ``docs/qnet.md``; ``FORMAT_VERSION`` changes whenever its meaning changes, and a loader
refuses any other version.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

FORMAT = "hwsnn-qnet"
FORMAT_VERSION = 1
KINDS = ("gn", "ilif", "readout")
METHODS = ("if", "if-shift", "gn", "ilif", "cos")
EXACT_LIMIT = 2**52  # golden sums run in float64: every bound must stay below this
# The image: the source name projections read it by, and its pixel codes (unsigned,
# PIXEL_BITS wide: 0..PIXEL_LEVELS). The golden model and the hardware take these from here.
INPUT = "input"
PIXEL_BITS = 8
PIXEL_LEVELS = 2**PIXEL_BITS - 1


@dataclass
class QProjection:
    """Integer weights from ``source`` (a population or ``INPUT``, the image).

    ``dense``: ``weight[N_out, N_in]`` over the flattened source. ``conv``:
    ``weight[C_out, C_in, K, K]`` with ``stride`` and zero ``padding``. Every weight is
    ``w · 2**weight_shift`` with ``w`` a signed ``weight_bits``-bit integer: memories keep
    ``w``, the adders shift it (a per-projection scale that lets a layer whose one input
    count is worth many thresholds keep its weights' precision).
    """

    source: str
    kind: str
    weight: np.ndarray
    stride: int = 1
    padding: int = 0
    weight_bits: int = 8
    weight_shift: int = 0

    @property
    def stored(self) -> np.ndarray:
        """The weights as memories hold them, in ``weight_bits``: ``weight >> weight_shift``
        (every weight is a multiple of ``2**weight_shift``)."""
        return self.weight >> self.weight_shift

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1]) if self.kind == "conv" else 1


@dataclass
class QPopulation:
    """One population of integer neurons.

    ``kind``: ``gn`` (IF is τ = 1), ``ilif`` or ``readout``. ``threshold`` is Θ (for the
    readout: the integer scale of one logit unit). ``v0`` is the initial membrane of a GN
    or readout, and for ILIF the offset added after accumulation. ``steps_in``/``steps_out``
    are the input steps consumed and output steps emitted (ILIF: bit-planes).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    threshold: int
    group_size: int
    steps_in: int
    steps_out: int
    v0: int
    bias: np.ndarray
    projections: list[QProjection]
    bias_bits: int
    membrane_bits: int
    saturate: bool
    theta: float
    unit: float
    readout_scale: float | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def levels(self) -> int:
        """Largest output count per step (GN: τ) or per value (ILIF: 2^T − 1)."""
        return 2**self.steps_out - 1 if self.kind == "ilif" else self.group_size


@dataclass
class InputSpecQ:
    """The image: ``shape`` without batch, ``bits`` per pixel code (``PIXEL_BITS``), the
    value range ``[lo, hi]`` that maps to codes 0..PIXEL_LEVELS, and (for the record) the
    normalisation folded into the first projections."""

    shape: tuple[int, ...]
    bits: int = PIXEL_BITS
    lo: float = 0.0
    hi: float = 1.0
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass
class QNet:
    method: str
    timesteps: int
    cos_steps: int
    input: InputSpecQ
    populations: list[QPopulation]
    weight_bits: int
    max_membrane_bits: int
    metadata: dict = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def output(self) -> QPopulation:
        return self.populations[-1]

    @property
    def classes(self) -> int:
        return self.output.size

    def population(self, name: str) -> QPopulation:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    # -- serialisation ---------------------------------------------------------------------
    def to_json(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {}
        pops = []
        for p in self.populations:
            arrays[f"{p.name}/bias"] = p.bias.astype(np.int64)
            projs = []
            for i, q in enumerate(p.projections):
                key = f"{p.name}/w{i}"
                arrays[key] = q.weight.astype(np.int64)
                projs.append({"source": q.source, "kind": q.kind, "weight": key,
                              "shape": list(q.weight.shape), "stride": q.stride,
                              "padding": q.padding, "weight_bits": q.weight_bits,
                              "weight_shift": q.weight_shift})
            pops.append({
                "name": p.name, "kind": p.kind, "shape": list(p.shape),
                "threshold": p.threshold, "group_size": p.group_size,
                "steps_in": p.steps_in, "steps_out": p.steps_out, "v0": p.v0,
                "bias": f"{p.name}/bias", "bias_bits": p.bias_bits,
                "membrane_bits": p.membrane_bits, "saturate": p.saturate,
                "theta": p.theta, "unit": p.unit, "readout_scale": p.readout_scale,
                "projections": projs,
            })
        doc = {
            "format": FORMAT, "version": self.version, "method": self.method,
            "timesteps": self.timesteps, "cos_steps": self.cos_steps,
            "input": {"shape": list(self.input.shape), "bits": self.input.bits,
                      "lo": self.input.lo, "hi": self.input.hi,
                      "mean": self.input.mean, "std": self.input.std},
            "weight_bits": self.weight_bits, "max_membrane_bits": self.max_membrane_bits,
            "populations": pops, "metadata": self.metadata,
        }
        return doc, arrays

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``qnet.json`` and ``qnet.npz`` into ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc, arrays = self.to_json()
        _atomic_write(directory / "qnet.npz", lambda f: np.savez_compressed(f, **arrays),
                      binary=True)
        _atomic_write(directory / "qnet.json",
                      lambda f: f.write(json.dumps(doc, indent=1, sort_keys=False) + "\n"))
        return directory


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write, binary: bool = False):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_directory(directory: str | os.PathLike, write, removed: list | None = None) -> Path:
    """Write a network directory: ``write(tmp)`` makes the network files in a temporary
    directory, which then become ``directory``'s. A failure leaves nothing half-written; an
    existing directory must be empty or hold a network hwsnn wrote, whose other files are
    kept (see ``hwsnn.tools.outdir``). The stale outputs it removes are appended to ``removed``."""
    from ..tools.outdir import write_network
    return write_network(directory, write, removed)


def load(directory: str | os.PathLike) -> QNet:
    """Read and validate a QNet directory; any problem is a ``CheckpointError``."""
    directory = Path(directory)
    jpath, npath = directory / "qnet.json", directory / "qnet.npz"
    if not jpath.is_file():
        raise CheckpointError(f"{directory} holds no qnet.json: is it the output of "
                              "'hwsnn convert'?")
    try:
        doc = json.loads(jpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{jpath} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{jpath} is not a hwsnn QNet (format {FORMAT!r} expected)")
    if doc.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{jpath} is QNet version {doc.get('version')!r}; this hwsnn "
                              f"reads version {FORMAT_VERSION}: convert the model again")
    try:
        with np.load(npath, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{npath} cannot be read: {exc}") from None
    try:
        return _from_json(doc, arrays)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{jpath} is malformed: {type(exc).__name__}: {exc}") from None


def _array(arrays, key, shape=None) -> np.ndarray:
    if key not in arrays:
        raise CheckpointError(f"qnet.npz lacks array {key!r}")
    a = arrays[key]
    if a.dtype.kind not in "iu":
        raise CheckpointError(f"qnet.npz array {key!r} is {a.dtype}, not integer")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise CheckpointError(f"qnet.npz array {key!r} has shape {a.shape}, the JSON says "
                              f"{tuple(shape)}")
    return a.astype(np.int64)


def _from_json(doc: dict, arrays: dict) -> QNet:
    inp = doc["input"]
    net = QNet(
        method=doc["method"], timesteps=int(doc["timesteps"]), cos_steps=int(doc["cos_steps"]),
        input=InputSpecQ(tuple(inp["shape"]), int(inp["bits"]), float(inp["lo"]),
                         float(inp["hi"]), inp.get("mean"), inp.get("std")),
        populations=[], weight_bits=int(doc["weight_bits"]),
        max_membrane_bits=int(doc["max_membrane_bits"]), metadata=doc.get("metadata", {}),
    )
    for p in doc["populations"]:
        projs = [QProjection(q["source"], q["kind"], _array(arrays, q["weight"], q["shape"]),
                             int(q["stride"]), int(q["padding"]), int(q["weight_bits"]),
                             int(q.get("weight_shift", 0)))
                 for q in p["projections"]]
        net.populations.append(QPopulation(
            name=p["name"], kind=p["kind"], shape=tuple(p["shape"]),
            threshold=int(p["threshold"]), group_size=int(p["group_size"]),
            steps_in=int(p["steps_in"]), steps_out=int(p["steps_out"]), v0=int(p["v0"]),
            bias=_array(arrays, p["bias"], p["shape"]), projections=projs,
            bias_bits=int(p["bias_bits"]), membrane_bits=int(p["membrane_bits"]),
            saturate=bool(p["saturate"]), theta=float(p["theta"]), unit=float(p["unit"]),
            readout_scale=p.get("readout_scale"),
        ))
    validate(net)
    return net


def validate(net: QNet) -> None:
    """Check the structural invariants the golden model and the hardware rely on."""
    def bad(msg):
        raise CheckpointError(f"invalid QNet: {msg}")

    if net.method not in METHODS:
        bad(f"unknown method {net.method!r}")
    if net.method == "cos" and net.cos_steps < 1:
        bad("method cos needs at least one pre-simulation step (cos_steps ≥ 1)")
    if net.input.bits != PIXEL_BITS:
        bad(f"input bits {net.input.bits}; only {PIXEL_BITS}-bit inputs are supported")
    if not net.populations or net.populations[-1].kind != "readout":
        bad("the last population must be the readout")
    seen = {INPUT: tuple(net.input.shape)}
    for p in net.populations:
        if p.kind not in KINDS:
            bad(f"population {p.name}: unknown kind {p.kind!r}")
        if p.name in seen:
            bad(f"population name {p.name!r} repeats")
        if p.kind == "readout" and p is not net.populations[-1]:
            bad(f"readout {p.name} is not the last population")
        if p.threshold < 1 or p.group_size < 1:
            bad(f"population {p.name}: threshold and group size must be positive")
        if not 2 <= p.membrane_bits <= 62:
            bad(f"population {p.name}: membrane width {p.membrane_bits} outside 2..62")
        if not p.projections:
            bad(f"population {p.name} has no input")
        for q in p.projections:
            if q.source not in seen:
                bad(f"population {p.name} reads {q.source!r}, which does not precede it")
            src = seen[q.source]
            limit = 2 ** (q.weight_bits - 1) - 1
            if not 0 <= q.weight_shift <= 32:
                bad(f"population {p.name}: weight shift {q.weight_shift} outside 0..32")
            if np.any(q.weight % (1 << q.weight_shift)):
                bad(f"population {p.name}: a weight is not a multiple of 2^{q.weight_shift}")
            if np.abs(q.stored).max(initial=0) > limit:
                bad(f"population {p.name}: a weight exceeds {q.weight_bits} bits"
                    + (f" (after its shift by {q.weight_shift})" if q.weight_shift else ""))
            if q.kind == "dense":
                if q.weight.shape != (p.size, math.prod(src)):
                    bad(f"population {p.name}: dense weight {q.weight.shape} does not map "
                        f"{src} to {p.shape}")
            elif q.kind == "conv":
                if len(src) != 3 or len(p.shape) != 3 or q.weight.ndim != 4 \
                        or q.weight.shape[:2] != (p.shape[0], src[0]):
                    bad(f"population {p.name}: conv weight {q.weight.shape} does not map "
                        f"{src} to {p.shape}")
                k = q.weight.shape[-1]
                for axis in (1, 2):
                    out = (src[axis] + 2 * q.padding - k) // q.stride + 1
                    if out != p.shape[axis]:
                        bad(f"population {p.name}: conv output size {out} != {p.shape[axis]}")
            else:
                bad(f"population {p.name}: unknown projection kind {q.kind!r}")
        seen[p.name] = tuple(p.shape)
