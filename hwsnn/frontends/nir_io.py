"""NIR in and out: read a Neuromorphic Intermediate Representation graph into a QNet, and
write a converted network back as NIR (see docs/nir.md).

Import. A NIR graph (``Input``, ``Affine``/``Linear``, ``Conv2d``, ``SumPool2d``/``AvgPool2d``,
``Flatten``, ``Scale``, ``IF``, ``LIF`` only on request, ``Threshold`` at T = 1, ``I`` before
the output, ``Output``) is walked like a torch model: linear nodes extend an affine chain,
a neuron node closes it into a population, the output closes the readout. NIR does not say
what hwsnn needs to know beyond that, so three semantics come from options (recorded in the
QNet's metadata as ``nir.assumed`` when they were not given):

==========  =========================  ====================================================
option      default                    meaning
==========  =========================  ====================================================
reset       ``subtract``               soft reset (``V −= θ``); ``zero`` (hard reset) is
                                       refused: hwsnn has no hard reset
threshold   ``gt``                     fire when ``V > θ`` (the NIR text); ``ge``: ``V ≥ θ``
v0          ``zero``                   initial membrane 0; ``half``: θ/2 (hwsnn's own rule)
==========  =========================  ====================================================

In integers ``V > Θ`` is ``V − 1 ≥ Θ``, so ``gt`` is a membrane that starts one unit lower.

A graph whose weights, biases and thresholds are already integers (with r = 1, and an input
range that maps raw values 1:1 to the 8-bit codes, ``--input-range 0,255``) is taken over
exactly, without requantisation: its golden model equals the graph's own simulation bit for
bit. Any other graph is quantised like a converted ANN (``hwsnn.snn.quantize``).

Export. The QNet is written as the integer network the hardware runs: ``Input`` (the 8-bit
input codes) → ``Conv2d``/``Affine`` (+``Flatten``) → ``IF`` (threshold Θ, r = 1) → ... →
``Affine`` → ``Output`` (the readout, to be summed over the T steps). What NIR cannot say
(soft reset, ``≥``, the initial membrane, group neurons that emit up to τ spikes per step,
COS calibration) is written into the graph's metadata (``hwsnn``, ``hwsnn_semantics``); an
hwsnn import reads it back, so SNN → NIR → SNN gives the identical QNet.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ParameterError, UnsupportedLayerError
from ..snn.convert import SNN, SNNPopulation
from ..snn.qnet import EXACT_LIMIT, InputSpecQ, QNet, QPopulation, QProjection, validate
from ..snn.quantize import DEFAULT_MAX_MEMBRANE_BITS, DEFAULT_WEIGHT_BITS, quantize
from ..snn.widths import set_membrane_widths, signed_bits
from .graph import INPUT, INPUT_BITS, INPUT_LEVELS, Activation, Graph, InputSpec, Projection
from .pytorch import (
    _Affine,
    _as_affine,
    _Conv,
    _extend,
    _Flatten,
    _input_affine,
    _is_data,
    _Linear,
    _materialize,
    _Pool,
    _Scale,
    _Source,
    _unique,
)

RESETS = ("subtract", "zero")
THRESHOLDS = ("gt", "ge")
INITIALS = ("zero", "half")
LIF_MODES = ("refuse", "if")
DEFAULT_RESET = "subtract"
DEFAULT_THRESHOLD = "gt"
DEFAULT_V0 = "zero"
METADATA_KEY = "hwsnn"
NOT_EXPRESSIBLE = (
    "NIR's IF resets to v_reset; hwsnn neurons reset by subtraction (V -= threshold)",
    "NIR's IF fires when V > threshold; hwsnn fires when V >= threshold",
    "NIR has no initial membrane potential; hwsnn starts at v0 (per population, in 'hwsnn')",
    "group neurons GN(tau) emit 0..tau spikes per step (a multi-spike IF clipped at tau); "
    "a NIR IF emits at most one",
    "temporal separation (ilif: values sent bit-serially, MSB first) has no NIR form",
    "offset-spike calibration (cos) sets v0 per sample after a pre-simulation",
    "the input is the 8-bit code of each pixel: code = round((x - lo) / (hi - lo) * 255)",
    "the output is the readout current of one step: sum it over the T steps (argmax = class)",
)


class UnsupportedNIRError(UnsupportedLayerError):
    """A NIR node (or graph) that hwsnn cannot represent exactly."""


def _refuse(name: str, node, why: str):
    raise UnsupportedNIRError(f"unsupported NIR node '{name}' ({_type(node)}): {why}")


def _type(node) -> str:
    return type(node).__name__


# ---------------------------------------------------------------------------------------
# Reading.


def read(source):
    """A ``nir.NIRGraph`` from a file path or an in-memory graph."""
    import nir

    if isinstance(source, nir.NIRGraph):
        return source
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        graph = nir.read(path)
    except Exception as exc:  # h5py and nir raise many kinds for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable NIR graph: {first}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise CheckpointError(f"{path} holds a single NIR node, not a graph")
    return graph


def _hwsnn_doc(graph) -> dict | None:
    raw = (getattr(graph, "metadata", None) or {}).get(METADATA_KEY)
    if raw is None:
        return None
    if isinstance(raw, np.ndarray):
        raw = raw.item()
    if isinstance(raw, bytes):
        raw = raw.decode("utf8")
    try:
        doc = json.loads(raw)
    except (TypeError, ValueError):
        raise CheckpointError("the NIR graph's 'hwsnn' metadata is not valid JSON") from None
    return doc if isinstance(doc, dict) and doc.get("format") == "hwsnn-qnet" else None


def _arr(v, name, node, what) -> np.ndarray:
    if v is None:
        _refuse(name, node, f"it has no {what}")
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


def _ints(v, name, node, what) -> int:
    """A square size (kernel, stride, padding, dilation) from an int or a pair."""
    if isinstance(v, str):
        _refuse(name, node, f"{what} {v!r} must be given as numbers")
    a = np.atleast_1d(_arr(v, name, node, what)).astype(np.int64).ravel()
    if a.size == 0 or len(set(a.tolist())) != 1:
        _refuse(name, node, f"non-square {what} {tuple(a.tolist())}; hwsnn needs equal height "
                            "and width values")
    return int(a[0])


def _order(graph) -> list[str]:
    """Node names in topological order (Kahn, ties by insertion order); refuses cycles."""
    names = list(graph.nodes)
    for src, dst in graph.edges:
        for n in (src, dst):
            if n not in graph.nodes:
                raise UnsupportedNIRError(f"the NIR graph has an edge to unknown node '{n}'")
    indeg = {n: 0 for n in names}
    for _, dst in graph.edges:
        indeg[dst] += 1
    ready = [n for n in names if indeg[n] == 0]
    out = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for src, dst in graph.edges:
            if src == n:
                indeg[dst] -= 1
                if indeg[dst] == 0:
                    ready.append(dst)
    if len(out) != len(names):
        loop = sorted(n for n in names if n not in out)
        raise UnsupportedNIRError(
            f"the NIR graph has a cycle through {', '.join(repr(n) for n in loop)}: recurrent "
            "connections have no feed-forward form in hwsnn")
    return out


@dataclass
class _RawPop:
    """A population as the NIR graph defines it (spikes worth 1, per-neuron threshold)."""

    name: str
    shape: tuple[int, ...]
    projections: list[Projection]
    bias: torch.Tensor
    threshold: torch.Tensor | None  # per neuron; None for the readout
    nodes: list[str] = field(default_factory=list)

    @property
    def is_readout(self):
        return self.threshold is None


@dataclass
class NIRImport:
    """What ``load`` made of a NIR graph: the three stages and what it assumed."""

    graph: Graph
    snn: SNN
    qnet: QNet
    exact: bool
    assumed: dict[str, str]
    approximations: list[str]

    def save(self, directory):
        from ..tools.api import Conversion

        return Conversion(self.graph, self.snn, self.qnet).save(directory)


class _Walker:
    def __init__(self, graph, spec: InputSpec, codes_in: bool, timesteps: int, lif: str,
                 v0: str, names: dict[str, str] | None = None):
        self.graph = graph
        self.given_names = names or {}
        self.spec = spec
        self.codes_in = codes_in
        self.timesteps = timesteps
        self.lif = lif
        self.v0 = v0
        self.pops: list[_RawPop] = []
        self.names = {INPUT}
        self.approximations: list[str] = []

    def run(self) -> list[_RawPop]:
        g = self.graph
        order = _order(g)
        preds = {n: [s for s, d in g.edges if d == n] for n in order}
        succs = {n: [d for s, d in g.edges if s == n] for n in order}
        values: dict[str, object] = {}
        inputs = [n for n in order if _type(g.nodes[n]) == "Input"]
        outputs = [n for n in order if _type(g.nodes[n]) == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedNIRError(
                f"the NIR graph has {len(inputs)} Input and {len(outputs)} Output nodes; hwsnn "
                "converts graphs with exactly one of each")
        out = None
        for name in order:
            node = g.nodes[name]
            if _type(node) == "Input":
                values[name] = self._input(name, node)
                continue
            ins = [values[p] for p in preds[name] if p in values]
            if not ins:
                if _type(node) == "Output" or succs[name]:
                    _refuse(name, node, "it is not reached from the Input node")
                continue  # a dangling node that feeds nothing
            x = ins[0]
            for other in ins[1:]:
                x = self._add(name, node, x, other)
            if _type(node) == "Output":
                out = (name, x, preds[name])
                continue
            values[name] = self._node(name, node, x, succs[name])
        if out is None:
            raise UnsupportedNIRError("the NIR graph's Output is not reached from its Input")
        self._readout(*out)
        return self.pops

    # -- nodes ---------------------------------------------------------------------------
    def _input(self, name, node):
        shape = None
        itype = getattr(node, "input_type", None) or {}
        for v in itype.values():
            if v is not None:
                shape = tuple(int(d) for d in np.asarray(v).ravel())
        if not shape:
            _refuse(name, node, "the Input node gives no shape")
        if len(shape) not in (1, 3):
            _refuse(name, node, f"input shape {shape}: hwsnn takes [C, H, W] images or [N] "
                                "vectors")
        if self.spec.shape and tuple(self.spec.shape) != shape:
            _refuse(name, node, f"input shape {shape} differs from the recorded "
                                f"{tuple(self.spec.shape)}")
        self.spec.shape = shape
        if self.codes_in:
            return _Source(INPUT, shape)
        return _input_affine(self.spec)

    def _add(self, name, node, a, b):
        aa, bb = _as_affine(a), _as_affine(b)
        if aa.shape != bb.shape:
            _refuse(name, node, f"its inputs have different shapes {aa.shape} and {bb.shape}")
        return _Affine(aa.terms + bb.terms, aa.bias + bb.bias, aa.modules + bb.modules)

    def _node(self, name, node, x, succs):
        t = _type(node)
        shape = _as_affine(x).shape
        if t in ("Affine", "Linear"):
            w = torch.from_numpy(_arr(node.weight, name, node, "weight"))
            if w.dim() != 2:
                _refuse(name, node, f"weight of shape {tuple(w.shape)}; hwsnn needs [out, in]")
            if len(shape) != 1:
                _refuse(name, node, f"it receives a {shape} map; put a Flatten before it")
            if w.shape[1] != shape[0]:
                _refuse(name, node, f"weight {tuple(w.shape)} does not take {shape[0]} inputs")
            b = None
            if t == "Affine" and getattr(node, "bias", None) is not None:
                b = torch.from_numpy(_arr(node.bias, name, node, "bias")).reshape(-1)
                if b.numel() != w.shape[0]:
                    _refuse(name, node, f"bias of {b.numel()} values for {w.shape[0]} outputs")
            return _extend(x, _Linear(w, name), b, name)
        if t == "Conv2d":
            return self._conv(name, node, x, shape)
        if t in ("SumPool2d", "AvgPool2d"):
            if len(shape) != 3:
                _refuse(name, node, f"pooling a {shape} value; it needs a [C, H, W] map")
            k = _ints(node.kernel_size, name, node, "kernel size")
            s = _ints(getattr(node, "stride", None) if getattr(node, "stride", None) is not None
                      else k, name, node, "stride")
            if _ints(getattr(node, "padding", 0), name, node, "padding") != 0:
                _refuse(name, node, "padded pooling cannot be folded exactly; use padding 0")
            divisor = 1.0 if t == "SumPool2d" else float(k * k)
            return _extend(x, _Pool(k, s, divisor, name), None, name)
        if t == "Flatten":
            if len(shape) == 1:
                return x
            start = int(getattr(node, "start_dim", 0))
            end = int(getattr(node, "end_dim", -1))
            if start % len(shape) != 0 or end % len(shape) != len(shape) - 1:
                _refuse(name, node, f"flattening dims {start}..{end} of {shape}; only "
                                    "flattening the whole map is supported")
            return _extend(x, _Flatten(name))
        if t == "Scale":
            scale = torch.from_numpy(_arr(node.scale, name, node, "scale"))
            return _extend(x, _Scale(self._per_channel(name, node, scale, shape, "scale"),
                                     name), None, name)
        if t in ("IF", "LIF", "Threshold"):
            return self._neuron(name, node, x, shape)
        if t == "I":
            if len(succs) != 1 or _type(self.graph.nodes[succs[0]]) != "Output":
                _refuse(name, node, "an integrator (I) is supported only as the readout, "
                                    "right before the Output")
            r = torch.from_numpy(_arr(node.r, name, node, "r"))
            return _extend(x, _Scale(self._per_channel(name, node, r, shape, "r"), name),
                           None, name)
        _refuse(name, node, _HINTS.get(t, "hwsnn converts Input, Affine, Linear, Conv2d, "
                                          "SumPool2d, AvgPool2d, Flatten, Scale, IF, LIF "
                                          "(--nir-lif if), Threshold (T = 1), I and Output"))

    def _conv(self, name, node, x, shape):
        w = torch.from_numpy(_arr(node.weight, name, node, "weight"))
        if w.dim() != 4:
            _refuse(name, node, f"weight of shape {tuple(w.shape)}; a Conv2d needs 4 dims")
        if len(shape) != 3 or shape[0] != w.shape[1]:
            _refuse(name, node, f"weight {tuple(w.shape)} does not read a {shape} input")
        if w.shape[-1] != w.shape[-2]:
            _refuse(name, node, f"non-square kernel {tuple(w.shape[-2:])}")
        if int(np.asarray(getattr(node, "groups", 1)).ravel()[0]) != 1:
            _refuse(name, node, "grouped/depthwise convolutions are not supported")
        if _ints(getattr(node, "dilation", 1), name, node, "dilation") != 1:
            _refuse(name, node, "dilated convolutions are not supported")
        stride = _ints(getattr(node, "stride", 1), name, node, "stride")
        padding = getattr(node, "padding", 0)
        if isinstance(padding, str):
            k = w.shape[-1]
            if padding == "valid":
                padding = 0
            elif padding == "same" and stride == 1 and k % 2 == 1:
                padding = k // 2
            else:
                _refuse(name, node, f"padding {padding!r} with kernel {k}, stride {stride}")
        padding = _ints(padding, name, node, "padding")
        b = getattr(node, "bias", None)
        bias = None
        if b is not None:
            bias = torch.from_numpy(_arr(b, name, node, "bias"))
            if bias.numel() == 1 and w.shape[0] != 1:
                bias = bias.reshape(()).expand(w.shape[0])
            if bias.numel() != w.shape[0]:
                _refuse(name, node, f"bias of {bias.numel()} values for {w.shape[0]} channels")
            bias = bias.reshape(-1, 1, 1)
        return _extend(x, _Conv(w, stride, padding, name), bias, name)

    def _per_channel(self, name, node, v, shape, what) -> torch.Tensor:
        """A per-neuron parameter as a scalar or a per-channel vector (what _Scale takes)."""
        try:
            full = torch.broadcast_to(v.reshape(shape) if v.numel() == math.prod(shape)
                                      else v, shape)
        except RuntimeError:
            _refuse(name, node, f"{what} of shape {tuple(v.shape)} does not fit {shape}")
        flat = full.reshape(-1)
        if bool((flat == flat[0]).all()):
            return flat[0].clone()
        if len(shape) == 1:
            return full.clone()
        per = full.reshape(shape[0], -1)
        if bool((per == per[:, :1]).all()):
            return per[:, 0].clone()
        _refuse(name, node, f"{what} varies within a channel; hwsnn needs one value per "
                            "channel")

    def _neuron(self, name, node, x, shape):
        t = _type(node)
        if t == "Threshold":
            if self.timesteps != 1 or self.v0 != "zero":
                _refuse(name, node, "a stateless Threshold equals an IF neuron only at one time "
                                    "step from V = 0: use --timesteps 1 (and --nir-v0 zero)")
            theta = _arr(node.threshold, name, node, "threshold")
            r = np.ones_like(theta)
            reset = None
        else:
            if t == "LIF":
                if self.lif != "if":
                    _refuse(name, node, "a leaky neuron has no exact form in hwsnn (IF and group "
                                        "neurons only); pass --nir-lif if to approximate it "
                                        "by an IF without leak")
                leak = _arr(node.v_leak, name, node, "v_leak")
                if np.any(leak != 0):
                    _refuse(name, node, "v_leak != 0 (a constant drive through the leak)")
                self.approximations.append(
                    f"{name}: LIF approximated by IF (leak dropped, input gain 1)")
                theta = _arr(node.v_threshold, name, node, "v_threshold")
                r = np.ones_like(theta)
            else:
                theta = _arr(node.v_threshold, name, node, "v_threshold")
                r = _arr(node.r, name, node, "r")
            reset = getattr(node, "v_reset", None)
        try:
            theta_t = torch.from_numpy(
                np.broadcast_to(theta.reshape(shape) if theta.size == math.prod(shape)
                                else theta, shape).copy())
        except ValueError:
            _refuse(name, node, f"threshold of shape {theta.shape} does not fit {shape}")
        if not bool((theta_t > 0).all()):
            _refuse(name, node, "thresholds must be positive")
        self._per_channel(name, node, theta_t, shape, "threshold")
        if reset is not None and np.any(_arr(reset, name, node, "v_reset") != 0):
            _refuse(name, node, "v_reset != 0: hwsnn resets by subtracting the threshold")
        gain = self._per_channel(name, node, torch.from_numpy(r), shape, "r")
        if gain.dim() or float(gain) != 1.0:
            x = _extend(x, _Scale(gain, name), None, name)
        aff = _as_affine(x)
        pop = self._population(aff, self.given_names.get(name, name), theta_t)
        pop.nodes.append(name)
        return _Source(pop.name, aff.shape)

    def _population(self, aff: _Affine, node_name, threshold) -> _RawPop:
        name = _unique(node_name, self.names)
        self.names.add(name)
        projections = [_materialize(src, shape, ops, aff.shape, name)
                       for src, shape, ops in aff.terms]
        pop = _RawPop(name, aff.shape, projections, aff.bias.clone(), threshold)
        self.pops.append(pop)
        return pop

    def _readout(self, name, x, preds):
        if not _is_data(x):
            raise UnsupportedNIRError("the NIR graph's output does not depend on its input")
        aff = _as_affine(x)
        if len(aff.shape) != 1:
            aff = _extend(aff, _Flatten("output"))
        label = preds[0] if len(preds) == 1 and not isinstance(x, _Source) else "readout"
        label = self.given_names.get(name, label)
        self._population(aff, label, None)


_HINTS = {
    "LI": "a leaky integrator has no exact form in hwsnn; the readout is a plain integrator",
    "CubaLIF": "current-based (synaptic) neurons have no form in hwsnn; use IF neurons",
    "CubaLI": "current-based (synaptic) neurons have no form in hwsnn",
    "Delay": "synaptic delays are not supported",
    "Conv1d": "only 2-D convolutions are supported",
    "NIRGraph": "nested graphs (recurrent layers) are not supported; export a feed-forward "
                "network",
}


# ---------------------------------------------------------------------------------------
# From the walked populations to a QNet.


def _integral(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all()) and bool((t == torch.round(t)).all())


def _exact_possible(pops: list[_RawPop], max_weight_bits: int = 16) -> bool:
    for p in pops:
        if not p.is_readout:
            th = p.threshold.reshape(-1)
            if not (_integral(th) and bool((th == th[0]).all()) and float(th[0]) >= 1):
                return False
        if not _integral(p.bias) or (p.bias.numel() and float(p.bias.abs().max())
                                      >= EXACT_LIMIT):
            return False
        for q in p.projections:
            if not _integral(q.weight):
                return False
            if float(q.weight.abs().max()) > 2 ** (max_weight_bits - 1) - 1:
                return False
    return True


def _weight_bits_for(pops, at_least: int) -> int:
    m = max(float(q.weight.abs().max()) for p in pops for q in p.projections)
    bits = at_least
    while 2 ** (bits - 1) - 1 < m:
        bits += 1
    return bits


def _v0(rule: str, compare: str, threshold: int) -> int:
    base = threshold // 2 if rule == "half" else 0
    return base - (1 if compare == "gt" else 0)


def _finish_widths(net: QNet) -> None:
    """Bias and membrane widths from the worst-case bounds, as ``quantize`` derives them."""
    warnings = [w for w in net.metadata.get("warnings", []) if "membrane needs" not in w]
    for q in net.populations:
        q.bias_bits = signed_bits(int(q.bias.min()), int(q.bias.max()))
    warnings += set_membrane_widths(net)
    if warnings:
        net.metadata["warnings"] = warnings
    else:
        net.metadata.pop("warnings", None)


def load(source, *, timesteps: int | None = None, reset: str | None = None,
         threshold: str | None = None, v0: str | None = None, lif: str = "refuse",
         input_range=None, normalize=None, weight_bits: int | None = None,
         max_membrane_bits: int | None = None, exact: bool | None = None) -> NIRImport:
    """Read a NIR graph (a path or a ``nir.NIRGraph``) into a QNet.

    ``reset``, ``threshold`` and ``v0`` are the semantics NIR leaves open (defaults in the
    module doc; a graph written by hwsnn carries its own). ``lif="if"`` approximates LIF
    neurons by IF neurons. ``input_range``/``normalize`` map the graph's raw input to the
    8-bit codes (default 0..1). ``exact``: take integer graphs over verbatim (default: when
    possible); ``False`` always requantises, ``True`` refuses a graph that is not integer.
    """
    graph = read(source)
    doc = _hwsnn_doc(graph)
    given = {"reset": reset, "threshold": threshold, "v0": v0}
    for key, value, choices in (("reset", reset, RESETS), ("threshold", threshold, THRESHOLDS),
                                ("v0", v0, INITIALS)):
        if value is not None and value not in choices:
            raise ParameterError(f"NIR {key} {value!r}: choose one of {', '.join(choices)}")
    if lif not in LIF_MODES:
        raise ParameterError(f"--nir-lif {lif!r}: choose one of {', '.join(LIF_MODES)}")
    recorded = dict((doc or {}).get("metadata", {}).get("nir_semantics", {}))
    sem = {"reset": reset or recorded.get("reset") or DEFAULT_RESET,
           "threshold": threshold or recorded.get("threshold") or DEFAULT_THRESHOLD,
           "v0": v0 or recorded.get("v0") or DEFAULT_V0}
    assumed = {k: sem[k] for k, v in given.items() if v is None and k not in recorded}
    # A graph written by hwsnn records v0 per population: keep it unless told otherwise.
    from_doc = doc is not None and v0 is None and threshold is None
    if sem["reset"] == "zero":
        raise UnsupportedNIRError("NIR graph with hard reset (--nir-reset zero): hwsnn neurons "
                                  "reset by subtraction only; a hard reset cannot be "
                                  "represented")
    if doc is not None:
        T = int(timesteps or doc["timesteps"])
        inp = doc["input"]
        spec = InputSpec(tuple(inp["shape"]), float(inp["lo"]), float(inp["hi"]),
                         inp.get("mean"), inp.get("std"))
        codes_in = True
    else:
        T = int(timesteps or 4)
        lo, hi = (float(v) for v in (input_range or (0.0, 1.0)))
        if not hi > lo:
            raise ParameterError(f"input range ({lo}, {hi}) is empty")
        mean, std = normalize if normalize is not None else (None, None)
        spec = InputSpec((), lo, hi,
                         None if mean is None else [float(v) for v in np.ravel(mean)],
                         None if std is None else [float(v) for v in np.ravel(std)])
        codes_in = False
    if T < 1 or T > 256:
        raise ParameterError(f"timesteps must be an integer in 1..256, not {T}")
    names = {node: pop for pop, node in (doc or {}).get("nir_nodes", {}).items()}
    walker = _Walker(graph, spec, codes_in, T, lif, sem["v0"], names)
    pops = walker.run()
    hidden_seen = any(not p.is_readout for p in pops)
    if not hidden_seen:
        raise UnsupportedNIRError("the NIR graph has no spiking neurons (IF, LIF, Threshold)")
    codes_unit = codes_in or (spec.lo == 0.0 and spec.hi == float(INPUT_LEVELS)
                              and spec.mean is None)
    can_exact = codes_unit and _exact_possible(pops)
    if exact and not can_exact:
        raise ParameterError("the NIR graph is not an integer network (integer weights, biases "
                             "and thresholds, r = 1, input range 0,255): it must be quantised")
    use_exact = can_exact if exact is None else exact
    wbits = weight_bits or (doc or {}).get("weight_bits") or DEFAULT_WEIGHT_BITS
    mbits = max_membrane_bits or (doc or {}).get("max_membrane_bits") \
        or DEFAULT_MAX_MEMBRANE_BITS
    ggraph, snn = _float_stages(pops, spec, T)
    if use_exact:
        qnet = _exact_qnet(pops, spec, T, dict(sem, from_doc=from_doc), doc,
                           _weight_bits_for(pops, wbits), mbits)
    else:
        qnet = quantize(snn, weight_bits=wbits, max_membrane_bits=mbits)
        for q in qnet.populations:
            if q.kind != "readout":
                q.v0 = _v0(sem["v0"], sem["threshold"], q.threshold)
    qnet.metadata["nir_semantics"] = dict(sem)
    qnet.metadata["nir"] = {"assumed": assumed, "exact": use_exact,
                            "approximations": walker.approximations,
                            "nodes": {p.name: p.nodes for p in pops if p.nodes}}
    _finish_widths(qnet)
    validate(qnet)
    snn.metadata.update(qnet.metadata)
    return NIRImport(ggraph, snn, qnet, use_exact, assumed, walker.approximations)


def _float_stages(pops: list[_RawPop], spec: InputSpec, T: int) -> tuple[Graph, SNN]:
    """The float graph and SNN, normalised to θ = 1 per population (a spike is worth 1)."""
    from .graph import Population

    gpops, spops = [], []
    for p in pops:
        projs, bias = p.projections, p.bias
        if not p.is_readout:
            inv = 1.0 / p.threshold.to(torch.float64)
            projs = [Projection(q.source, q.kind, _scale_rows(q, inv, p.shape), q.stride,
                                q.padding) for q in projs]
            bias = bias * inv
        act = Activation("none") if p.is_readout else Activation("clip", 1.0)
        gpops.append(Population(p.name, p.shape, projs, bias, act, list(p.nodes)))
        spops.append(SNNPopulation(p.name, p.shape, projs, bias, act,
                                   "readout" if p.is_readout else "gn", 1.0, 1))
    ggraph = Graph(spec, gpops)
    return ggraph, SNN(spec, spops, "if", T, 0, {"source": "nir"})


def _scale_rows(q: Projection, inv: torch.Tensor, shape) -> torch.Tensor:
    if q.kind == "conv":
        per = inv.reshape(shape[0], -1)[:, 0]
        return q.weight * per.reshape(-1, 1, 1, 1)
    return q.weight * inv.reshape(-1, 1)


def _exact_qnet(pops, spec, T, sem, doc, wbits, mbits) -> QNet:
    by_name = {p["name"]: p for p in (doc or {}).get("populations", [])}
    method = (doc or {}).get("method", "if")
    cos_steps = int((doc or {}).get("cos_steps", 0))
    steps = T + cos_steps
    qpops = []
    for p in pops:
        d = by_name.get(p.name, {})
        recorded = d.get("projections", [])
        projs = [QProjection(q.source, q.kind, q.weight.round().to(torch.int64).numpy(),
                             q.stride, q.padding,
                             int(recorded[i].get("weight_bits", wbits))
                             if i < len(recorded) else wbits,
                             int(recorded[i].get("weight_shift", 0)) if i < len(recorded)
                             else 0)
                 for i, q in enumerate(p.projections)]
        bias = p.bias.round().to(torch.int64).numpy()
        if p.is_readout:
            theta_int = int(d.get("threshold", 1))
            q = QPopulation(p.name, "readout", tuple(p.shape), theta_int, 1, steps, steps, 0,
                            bias, projs, 0, 0, False,
                            float(d.get("theta", 1.0)), float(d.get("unit", 1.0)),
                            d.get("readout_scale", 1.0 / T / theta_int))
        else:
            theta_int = int(p.threshold.reshape(-1)[0])
            v0 = int(d["v0"]) if d and sem.get("from_doc") \
                else _v0(sem["v0"], sem["threshold"], theta_int)
            q = QPopulation(p.name, "gn", tuple(p.shape), theta_int,
                            int(d.get("group_size", 1)), steps, steps, v0, bias, projs, 0, 0,
                            False, float(d.get("theta", theta_int)),
                            float(d.get("unit", 1.0)), None)
        qpops.append(q)
    meta = dict((doc or {}).get("metadata", {}))
    return QNet(method, T, cos_steps,
                InputSpecQ(tuple(spec.shape), INPUT_BITS, spec.lo, spec.hi, spec.mean,
                           spec.std),
                qpops, wbits, mbits, meta)


# ---------------------------------------------------------------------------------------
# Writing.


def _tensor(a: np.ndarray) -> np.ndarray:
    """Integers as float32 where that is exact (what the torch libraries load), else float64."""
    a = np.asarray(a)
    if a.size == 0 or np.abs(a).max() < 2**24:
        return a.astype(np.float32)
    return a.astype(np.float64)


def to_nir(qnet: QNet):
    """The QNet as a ``nir.NIRGraph``: the integer network the hardware runs."""
    import nir

    if qnet.method == "ilif":
        raise UnsupportedNIRError(
            "method ilif (temporal separation: values sent bit-serially, MSB first, after all "
            "input bit-planes are accumulated) has no NIR form; convert with a rate method "
            "(if, if-shift, gn, cos) to export NIR")
    nodes: dict[str, object] = {"input": nir.Input(input_type={
        "input": np.array(qnet.input.shape)})}
    edges: list[tuple[str, str]] = []
    taken = {"input", "output"}
    node_of = {INPUT: "input"}
    shapes = {INPUT: tuple(qnet.input.shape)}
    flat_of: dict[str, str] = {}

    def fresh(base):
        name = _unique(base, taken)
        taken.add(name)
        return name

    for p in qnet.populations:
        target = "output" if p.kind == "readout" else fresh(p.name)
        for i, q in enumerate(p.projections):
            src_node = node_of[q.source]
            w = _tensor(q.weight)
            b = p.bias if i == 0 else np.zeros(p.bias.shape, dtype=np.int64)
            if q.kind == "conv":
                per = b.reshape(b.shape[0], -1)
                if not (per == per[:, :1]).all():
                    raise UnsupportedNIRError(
                        f"population {p.name}: its bias varies across positions (an input "
                        "offset folded through zero padding), which a NIR Conv2d bias cannot "
                        "hold")
                proj = nir.Conv2d(input_shape=np.array(shapes[q.source][1:]), weight=w,
                                  stride=np.array([q.stride, q.stride]),
                                  padding=np.array([q.padding, q.padding]),
                                  dilation=np.array([1, 1]), groups=1,
                                  bias=_tensor(per[:, 0]))
            else:
                if len(shapes[q.source]) != 1:
                    if q.source not in flat_of:
                        fname = fresh(f"{q.source}.flatten")
                        nodes[fname] = nir.Flatten(
                            input_type={"input": np.array(shapes[q.source])},
                            start_dim=0, end_dim=-1)
                        edges.append((src_node, fname))
                        flat_of[q.source] = fname
                    src_node = flat_of[q.source]
                proj = nir.Affine(weight=w, bias=_tensor(b.reshape(-1)))
            pname = fresh(f"{p.name}.w{i}")
            nodes[pname] = proj
            edges.append((src_node, pname))
            edges.append((pname, target))
        if p.kind == "readout":
            if len(p.projections) != 1:
                raise UnsupportedNIRError(
                    f"readout {p.name} adds {len(p.projections)} projections; a NIR Output "
                    "takes one")
            continue
        size = tuple(p.shape)
        extra = {"v_reset": np.zeros(size, dtype=np.float32)} \
            if "v_reset" in getattr(nir.IF, "__dataclass_fields__", {}) else {}
        nodes[target] = nir.IF(r=np.ones(size, dtype=np.float32),
                               v_threshold=_tensor(np.full(size, p.threshold)), **extra)
        node_of[p.name] = target
        shapes[p.name] = size
    nodes["output"] = nir.Output(output_type={"output": np.array(qnet.output.shape)})
    doc, _ = qnet.to_json()
    doc = json.loads(json.dumps(doc))
    doc["metadata"].setdefault("nir_semantics", {
        "reset": "subtract", "threshold": "ge",
        "v0": "zero" if qnet.method == "if-shift" else "half"})
    doc["nir_nodes"] = {p.name: node_of.get(p.name, "output") for p in qnet.populations}
    notes = list(NOT_EXPRESSIBLE)
    if any(p.group_size > 1 for p in qnet.populations if p.kind == "gn"):
        notes.insert(0, "THIS NETWORK USES GROUP NEURONS (tau > 1): its IF nodes stand for "
                        "multi-spike neurons; a one-spike IF simulation differs")
    if qnet.method == "cos":
        notes.insert(0, "THIS NETWORK USES COS: v0 is calibrated per sample")
    semantics = {
        "reset": "subtract", "threshold": "ge",
        "v0": {p.name: p.v0 for p in qnet.populations if p.kind == "gn"},
        "group_size": {p.name: p.group_size for p in qnet.populations if p.kind == "gn"},
        "timesteps": qnet.timesteps, "input": "8-bit codes 0..255 of [lo, hi] = "
        f"[{qnet.input.lo}, {qnet.input.hi}]", "readout": "sum the Output over the time steps; "
        "logits = sum * readout_scale", "readout_scale": qnet.output.readout_scale,
        "not_expressible_in_nir": notes,
    }
    metadata = {METADATA_KEY: json.dumps(doc), "hwsnn_semantics": json.dumps(semantics),
                "generator": "hwsnn"}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    _fix_types(graph, qnet)
    return graph


def _fix_types(graph, qnet: QNet) -> None:
    """Give every node its input and output shapes (what nir.write and loaders expect)."""
    shapes = {"input": tuple(qnet.input.shape)}
    for name in _order(graph):
        node = graph.nodes[name]
        preds = [s for s, d in graph.edges if d == name]
        t = _type(node)
        if t == "Input":
            continue
        ins = shapes[preds[0]]
        if t == "Conv2d":
            k = node.weight.shape[-1]
            s, pad = int(node.stride[0]), int(node.padding[0])
            h = (ins[1] + 2 * pad - k) // s + 1
            w = (ins[2] + 2 * pad - k) // s + 1
            out = (node.weight.shape[0], h, w)
        elif t == "Flatten":
            out = (math.prod(ins),)
        elif t == "Affine":
            out = (node.weight.shape[0],)
        else:
            out = ins
        node.input_type = {"input": np.array(ins)}
        node.output_type = {"output": np.array(out)}
        shapes[name] = out


def write(qnet: QNet, path) -> Path:
    """Write the QNet as a NIR file (HDF5)."""
    import nir

    graph = to_nir(qnet)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), graph)
    return path
