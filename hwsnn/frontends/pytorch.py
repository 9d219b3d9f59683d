"""Frontend: a torch model → ``Graph``.

Two ways in, one walker:

- an ``nn.Module`` is traced with ``torch.fx`` (QCFS modules are kept as leaves);
- a ``torch.export`` program (``.pt2``) is read at the aten level from ``ep.module()``.

The walker runs the traced graph on an example input and, beside every concrete value,
keeps a symbolic one: either the output of a population (after an activation) or an affine
expression ``Σ_terms chain(source) + bias`` that is still waiting for its activation. Linear
operations (conv, linear, BatchNorm, average pooling, flatten, dropout, scalar scaling,
residual additions) extend the expression; an activation closes it into a population whose
projections are the composed chains. Everything else is refused, naming the module, its
type and what to do instead. Nothing is ever dropped silently.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ShapeError, UnsupportedLayerError
from ..snn.qcfs import QCFS, _qcfs_op, qcfs
from .graph import INPUT, INPUT_LEVELS, Activation, Graph, InputSpec, Population, Projection

aten = torch.ops.aten

# ---------------------------------------------------------------------------------------
# Linear operations of a chain (their bias is tracked separately, in the affine value).


@dataclass
class _Conv:
    weight: torch.Tensor  # [C_out, C_in, K, K]
    stride: int
    padding: int
    name: str = ""

    def apply(self, x):
        return F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)

    def as_conv(self, channels):
        return self


@dataclass
class _Pool:
    """Average pooling that counts the zero padding (``count_include_pad``): a
    convolution of every channel with itself, weights 1/divisor."""

    kernel: int
    stride: int
    divisor: float
    name: str = ""
    padding: int = 0

    def apply(self, x):
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding,
                            count_include_pad=True) * (self.kernel**2 / self.divisor)

    def as_conv(self, channels):
        eye = torch.eye(channels, dtype=torch.float64)[:, :, None, None]
        w = eye * torch.ones(self.kernel, self.kernel, dtype=torch.float64) / self.divisor
        return _Conv(w, self.stride, self.padding, self.name)


@dataclass
class _Scale:
    """Per-channel (or per-feature for vectors) scaling: BatchNorm, normalisation, x*c."""

    scale: torch.Tensor  # [C] or []
    name: str = ""

    def apply(self, x):
        s = self.scale.to(x.dtype)
        if s.dim() == 0:
            return x * s
        return x * s.reshape(1, -1, *([1] * (x.dim() - 2)))

    def as_conv(self, channels):
        s = self.scale.expand(channels) if self.scale.dim() == 0 else self.scale
        return _Conv(torch.diag(s.to(torch.float64))[:, :, None, None], 1, 0, self.name)


@dataclass
class _Flatten:
    name: str = ""

    def apply(self, x):
        return x.reshape(x.shape[0], -1)

    def as_conv(self, channels):
        return None


@dataclass
class _Linear:
    weight: torch.Tensor  # [N_out, N_in]
    name: str = ""

    def apply(self, x):
        return x.reshape(x.shape[0], -1) @ self.weight.T


# ---------------------------------------------------------------------------------------
# Symbolic values.


@dataclass
class _Source:
    """The output of a population (or the input): spikes in the SNN."""

    name: str
    shape: tuple[int, ...]


@dataclass
class _Affine:
    """``Σ_terms ops(source) + bias``: a current that has not met its activation yet."""

    terms: list[tuple[str, tuple[int, ...], list]]
    bias: torch.Tensor  # float64, full shape without batch
    modules: list[str] = field(default_factory=list)

    @property
    def shape(self):
        return tuple(self.bias.shape)


@dataclass
class _Const:
    value: object


class _Refusal(Exception):
    """A layer the walker refuses: (module path, type, what to do instead)."""


def _stand_in(result, name: str):
    """The symbolic value of a refused node: a fresh source of its shape, so that the walk
    goes on to find the other layers it cannot convert."""
    if isinstance(result, torch.Tensor):
        shape = tuple(result.shape[1:])
        return _Affine([(f"<{name}>", shape, [])], torch.zeros(shape, dtype=torch.float64))
    if isinstance(result, (tuple, list)):
        return tuple(_stand_in(r, name) for r in result)
    return _Const(result)


def _is_data(v) -> bool:
    if isinstance(v, (_Source, _Affine)):
        return True
    if isinstance(v, (tuple, list)):
        return any(_is_data(e) for e in v)
    return False


def _as_affine(v) -> _Affine:
    if isinstance(v, _Affine):
        return v
    return _Affine([(v.name, v.shape, [])], torch.zeros(v.shape, dtype=torch.float64))


def _input_affine(spec: InputSpec) -> _Affine:
    """The model input as an affine value of the 8-bit codes: ``x = lo + code·step``,
    normalised by ``(x − mean)/std`` when the spec has a normalisation."""
    shape = tuple(spec.shape)
    channels = shape[0]
    step = (spec.hi - spec.lo) / INPUT_LEVELS
    mean = torch.zeros(channels, dtype=torch.float64)
    std = torch.ones(channels, dtype=torch.float64)
    if spec.mean is not None:
        mean = _per_channel(spec.mean, channels, "mean")
        std = _per_channel(spec.std, channels, "std")
    scale = step / std
    shift = (spec.lo - mean) / std
    bias = shift.reshape(-1, *([1] * (len(shape) - 1))).expand(shape).clone()
    return _Affine([(INPUT, shape, [_Scale(scale, "input")])], bias, ["input"])


def _extend(x, op, bias=None, module=None) -> _Affine:
    """Apply linear ``op`` (+ ``bias``) to a symbolic value."""
    aff = _as_affine(x)
    terms = [(s, shape, ops + [op]) for s, shape, ops in aff.terms]
    new_bias = op.apply(aff.bias.unsqueeze(0))[0]
    if bias is not None:
        new_bias = new_bias + bias
    modules = aff.modules + ([module] if module else [])
    return _Affine(terms, new_bias.contiguous(), modules)


# ---------------------------------------------------------------------------------------
# What to tell the user for what we refuse.

_POOL_HINT = ("max-pooling on spike trains is wrong for rate coding; replace it by "
              "average pooling (nn.AvgPool2d, nn.AdaptiveAvgPool2d) and retrain")
_ACT_HINT = ("spiking neurons implement ReLU-like activations only; train with nn.ReLU, "
             "a clipped ReLU or hwsnn.QCFS")
_HINTS = {
    "maxpool": _POOL_HINT, "max_pool": _POOL_HINT, "adaptivemaxpool": _POOL_HINT,
    "adaptive_max_pool": _POOL_HINT,
    "sigmoid": _ACT_HINT, "tanh": _ACT_HINT, "gelu": _ACT_HINT, "silu": _ACT_HINT,
    "leakyrelu": _ACT_HINT, "leaky_relu": _ACT_HINT, "elu": _ACT_HINT, "softplus": _ACT_HINT,
    "mish": _ACT_HINT, "hardswish": _ACT_HINT, "prelu": _ACT_HINT,
    "softmax": "remove it: hwsnn predicts with the argmax of the readout, which a softmax "
               "does not change",
    "attention": "attention has no event-driven equivalent in hwsnn; use a CNN or an MLP",
    "layernorm": "only BatchNorm (folded into the preceding layer) is supported",
    "layer_norm": "only BatchNorm (folded into the preceding layer) is supported",
    "groupnorm": "only BatchNorm (folded into the preceding layer) is supported",
    "instancenorm": "only BatchNorm (folded into the preceding layer) is supported",
    "conv1d": "only 2-D convolutions (nn.Conv2d) are supported",
    "conv3d": "only 2-D convolutions (nn.Conv2d) are supported",
    "convtranspose": "transposed convolutions are not supported",
    "lstm": "recurrent layers are not supported", "gru": "recurrent layers are not supported",
    "rnn": "recurrent layers are not supported",
    "embedding": "embeddings are not supported; feed images or feature vectors",
}


def _hint(*names: str) -> str:
    for name in names:
        key = name.lower()
        for pattern, hint in _HINTS.items():
            if pattern in key:
                return hint
    return ("hwsnn converts Conv2d, Linear, BatchNorm, ReLU/clipped ReLU/QCFS, AvgPool2d, "
            "AdaptiveAvgPool2d, Flatten, Dropout and residual additions; rewrite the model "
            "with these")


def _pool_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _border_is_padding(kernel: int, stride: int, padding: int, size: int) -> bool:
    """Whether a (kernel, stride, padding) window step over a map of ``size`` would see
    only its own zero padding at the positions just outside its output map. Then a
    following convolution's zero padding of that output is what the step gives there, and
    the two compose into one convolution exactly."""
    return kernel <= stride + padding and \
        _pool_out(size, kernel, stride, padding) * stride - padding >= size


def _avg_pool_call(kernel: int, stride: int, padding: int) -> str:
    if kernel == stride and not padding:
        return f"nn.AvgPool2d({kernel})"
    return f"nn.AvgPool2d({kernel}, {stride}, {padding})" if padding else \
        f"nn.AvgPool2d({kernel}, {stride})"


def _exact_pool(stride: int, size: tuple[int, ...], out: tuple[int, ...],
                prefer: tuple[int, int] | None = None) -> str | None:
    """An average pool of ``stride`` from a ``size`` map to an ``out`` map that folds
    exactly into whatever follows it, padded convolutions included, as a call, or None.
    Tried in turn: kernel = stride without padding, ``prefer`` (kernel, padding), then
    kernels of at least the stride by padding and size."""
    tries = [(stride, 0), *([prefer] if prefer else [])] + [
        (k, p) for p in range(stride + 1) for k in range(stride, 2 * stride + 2) if 2 * p <= k]
    for k, p in tries:
        if all(_pool_out(n, k, stride, p) == o and _border_is_padding(k, stride, p, n)
               for n, o in zip(size, out, strict=True)):
            return _avg_pool_call(k, stride, p)
    return None


def _max_pool_hint(kernel: int, stride: int, padding: int, size: tuple[int, int]) -> str:
    """What to put instead of a max pool over a ``size`` map: an average pool with the same
    output size that folds exactly into whatever follows it."""
    out = tuple(_pool_out(n, kernel, stride, padding) for n in size)
    pool = _exact_pool(stride, size, out, prefer=(kernel, padding))
    if pool is not None:
        return (f"max-pooling on spike trains is wrong for rate coding; replace it by {pool} "
                f"(the same {out[0]}x{out[1]} output on this {size[0]}x{size[1]} map, folded "
                "exactly into the next layer) and retrain")
    return (f"max-pooling on spike trains is wrong for rate coding; replace it by "
            f"nn.AvgPool2d({stride}) (kernel = stride: folded exactly into the next layer "
            f"when {stride} divides the map size) and retrain")


# ---------------------------------------------------------------------------------------
# The walker.


def _pair(v, what: str, where: str) -> int:
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise UnsupportedLayerError(
                f"{where}: non-square {what} {tuple(v)} is not supported; use equal values "
                "for height and width")
        v = v[0]
    return int(v)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return isinstance(m, QCFS) or super().is_leaf_module(m, qualname)


class _Walker(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, input_spec: InputSpec):
        super().__init__(gm)
        self.input_spec = input_spec
        self.sym: dict[torch.fx.Node, object] = {}
        self.populations: list[Population] = []
        self.names: set[str] = {INPUT}
        self.placeholders = 0
        self.model_output = None
        self.refusals: list[tuple[str, str, str]] = []  # (where, what, why) of every refusal

    # -- plumbing ------------------------------------------------------------------------
    def run_node(self, n):
        result = super().run_node(n)
        try:
            self.sym[n] = self._symbolic(n, result)
        except _Refusal as r:
            # Go on with a stand-in to find every layer that cannot be converted.
            self.refusals.append(r.args)
            self.sym[n] = _stand_in(result, n.name)
        except UnsupportedLayerError as exc:
            self.refusals.append(("", "", str(exc).splitlines()[0]))
            self.sym[n] = _stand_in(result, n.name)
        return result

    def _s(self, a):
        return self.sym[a] if isinstance(a, torch.fx.Node) else _Const(a)

    def _c(self, a):
        return torch.fx.node.map_arg(a, lambda nd: self.env[nd])

    def _where(self, n) -> tuple[str, str]:
        """(module path, type name) of a node, for messages."""
        if n.op == "call_module":
            return n.target, type(self.module.get_submodule(n.target)).__name__
        stack = n.meta.get("nn_module_stack")
        if stack:
            path, typ = list(stack.values())[-1]
            typ = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
            return path or n.name, typ.rsplit(".", 1)[-1]
        return n.name, _target_name(n)

    def _refuse(self, n, why: str | None = None):
        path, typ = self._where(n)
        what = _target_name(n)
        reason = why or self._max_pool_hint(n) or _hint(typ, what)
        kind = typ if typ == what or n.op == "call_module" else f"{typ}, operation {what}"
        raise _Refusal(path, kind, reason)

    def _max_pool_hint(self, n) -> str | None:
        """The advice for a 2-D max pool, worked out for its own map size."""
        if n.op == "call_module":
            m = self.module.get_submodule(n.target)
            if not isinstance(m, nn.MaxPool2d):
                return None
            kernel, stride, padding = m.kernel_size, m.stride, m.padding
        else:
            name = _target_name(n)
            if "max_pool2d" not in name or "adaptive" in name:
                return None
            args = [self._c(v) for v in n.args[1:4]]
            kernel = args[0] if args else n.kwargs.get("kernel_size")
            stride = (args[1] if len(args) > 1 else n.kwargs.get("stride")) or kernel
            padding = args[2] if len(args) > 2 else n.kwargs.get("padding", 0)
        try:
            k, s, p = (_pair(v, what, "") for v, what in
                       ((kernel, "kernel"), (stride or kernel, "stride"), (padding, "padding")))
        except UnsupportedLayerError:
            return None
        size = tuple(self._c(n.args[0]).shape[-2:])
        return _max_pool_hint(k, s, p, size) if len(size) == 2 else None

    def refusal(self) -> UnsupportedLayerError | None:
        """One error naming every layer refused, or None."""
        if not self.refusals:
            return None
        groups: dict[tuple[str, str], list[str]] = {}
        for where, kind, why in self.refusals:
            groups.setdefault((kind, why), [])
            if where and where not in groups[(kind, why)]:
                groups[(kind, why)].append(where)
        parts = []
        for (kind, why), places in groups.items():
            named = ", ".join(f"'{p}'" for p in places)
            parts.append(f"{named} ({kind}): {why}" if places else why)
        if len(self.refusals) == 1:
            where = self.refusals[0][0]
            return UnsupportedLayerError(f"unsupported layer {parts[0]}" if where else parts[0])
        count = sum(max(1, len(p)) for p in groups.values())
        return UnsupportedLayerError(f"{count} layers cannot be converted: " + "; ".join(parts))

    # -- symbolic evaluation -------------------------------------------------------------
    def _symbolic(self, n, result):
        if n.op == "placeholder":
            self.placeholders += 1
            if self.placeholders > 1:
                raise UnsupportedLayerError(
                    f"the model takes more than one input ('{n.name}'); hwsnn converts "
                    "models with a single image or vector input")
            return self._input(result)
        if n.op == "output":
            out = n.args[0]
            if isinstance(out, (tuple, list)):
                if len(out) != 1:
                    raise UnsupportedLayerError(
                        "the model returns several tensors; return only the class scores")
                out = out[0]
            self.model_output = (self._s(out), self._c(out))
            return None
        args = list(n.args) + list(n.kwargs.values())
        flat = []
        torch.fx.node.map_arg(args, lambda nd: flat.append(self.sym[nd]))
        if not any(_is_data(v) for v in flat):
            return _Const(result)
        return self._dispatch(n, result)

    def _input(self, example):
        spec = self.input_spec
        shape = tuple(example.shape[1:])
        if spec.shape and tuple(spec.shape) != shape:
            raise ShapeError(f"example input has shape {shape}, expected {tuple(spec.shape)}")
        spec.shape = shape
        return _input_affine(spec)

    def _dispatch(self, n, result):
        if n.op == "call_module" and n.target.startswith("_guards"):
            return _Const(result)  # torch.export's shape guards
        if n.op == "call_module":
            return self._module(n, self.module.get_submodule(n.target))
        if n.op == "call_method":
            return self._method(n, result)
        return self._function(n, result)

    # -- modules -------------------------------------------------------------------------
    def _module(self, n, m):
        x = self._s(n.args[0])
        name = n.target
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                self._refuse(n, f"padding_mode={m.padding_mode!r}; use zero padding")
            return self._conv(n, x, m.weight, m.bias, m.stride, m.padding, m.dilation,
                              m.groups, name)
        if isinstance(m, nn.Linear):
            return self._linear(n, x, m.weight, m.bias, name)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.running_mean is None:
                self._refuse(n, "BatchNorm without running statistics cannot be folded; "
                                "use track_running_stats=True")
            return self._batch_norm(n, x, m.running_mean, m.running_var, m.weight, m.bias,
                                    m.eps, name)
        if isinstance(m, QCFS):
            act = Activation("qcfs", float(m.threshold.detach()), m.levels)
            return self._activate(n, x, act, name)
        if isinstance(m, nn.ReLU):
            return self._activate(n, x, Activation("relu"), name)
        if isinstance(m, nn.Hardtanh):  # includes ReLU6
            return self._clip(n, x, m.min_val, m.max_val, name)
        if isinstance(m, nn.AvgPool2d):
            return self._avg_pool(n, x, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                  m.count_include_pad, m.divisor_override, name)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return self._adaptive_pool(n, x, m.output_size, name)
        if isinstance(m, nn.Flatten):
            return self._flatten(n, x, self._c(n.args[0]).dim(), m.start_dim, m.end_dim)
        if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)):
            return x
        self._refuse(n)

    # -- functions (torch, F, aten) and methods -------------------------------------------
    def _function(self, n, result):
        t = n.target
        a = n.args
        kw = n.kwargs
        name = self._where(n)[0]

        def arg(i, key, default=None):
            if len(a) > i:
                return self._c(a[i])
            return self._c(kw.get(key, default))

        x = self._s(a[0]) if a else None
        if t in (torch.relu, F.relu, aten.relu.default, aten.relu_.default):
            return self._activate(n, x, Activation("relu"), name)
        if t in (F.relu6, aten.relu6.default if hasattr(aten, "relu6") else None):
            return self._clip(n, x, 0.0, 6.0, name)
        if t in (F.hardtanh, aten.hardtanh.default, aten.hardtanh_.default):
            return self._clip(n, x, arg(1, "min_val", -1.0), arg(2, "max_val", 1.0), name)
        if t in (torch.clamp, torch.clip, aten.clamp.default, aten.clip.default):
            return self._clip(n, x, arg(1, "min"), arg(2, "max"), name)
        if t in (qcfs, _qcfs_op, getattr(torch.ops.hwsnn.qcfs, "default", None)):
            return self._activate(
                n, x, Activation("qcfs", float(arg(1, "threshold")), int(arg(2, "levels"))),
                name)
        if t in (F.conv2d, aten.conv2d.default):
            return self._conv(n, x, arg(1, "weight"), arg(2, "bias"), arg(3, "stride", 1),
                              arg(4, "padding", 0), arg(5, "dilation", 1), arg(6, "groups", 1),
                              name)
        if t is aten.convolution.default:
            if arg(6, "transposed"):
                self._refuse(n, _hint("convtranspose"))
            return self._conv(n, x, arg(1, "weight"), arg(2, "bias"), arg(3, "stride"),
                              arg(4, "padding"), arg(5, "dilation"), arg(8, "groups"), name)
        if t in (F.linear, aten.linear.default):
            return self._linear(n, x, arg(1, "weight"), arg(2, "bias"), name)
        if t is F.batch_norm:
            if arg(5, "training", False):
                self._refuse(n, "BatchNorm in training mode; call model.eval() first")
            return self._batch_norm(n, x, arg(1, "running_mean"), arg(2, "running_var"),
                                    arg(3, "weight"), arg(4, "bias"), arg(7, "eps", 1e-5), name)
        if t is aten.batch_norm.default:
            if arg(5, "training"):
                self._refuse(n, "BatchNorm in training mode; export the model after "
                                "model.eval()")
            return self._batch_norm(n, x, arg(3, "running_mean"), arg(4, "running_var"),
                                    arg(1, "weight"), arg(2, "bias"), arg(7, "eps"), name)
        if t is aten._native_batch_norm_legit_no_training.default:
            out = self._batch_norm(n, x, arg(3, "running_mean"), arg(4, "running_var"),
                                   arg(1, "weight"), arg(2, "bias"), arg(6, "eps"), name)
            return (out, _Const(None), _Const(None))
        if t in (F.avg_pool2d, aten.avg_pool2d.default):
            return self._avg_pool(n, x, arg(1, "kernel_size"), arg(2, "stride"),
                                  arg(3, "padding", 0), arg(4, "ceil_mode", False),
                                  arg(5, "count_include_pad", True),
                                  arg(6, "divisor_override"), name)
        if t in (F.adaptive_avg_pool2d, aten.adaptive_avg_pool2d.default,
                 aten._adaptive_avg_pool2d.default):
            return self._adaptive_pool(n, x, arg(1, "output_size"), name)
        if t in (torch.flatten, aten.flatten.using_ints):
            return self._flatten(n, x, self._c(a[0]).dim(), arg(1, "start_dim", 0),
                                 arg(2, "end_dim", -1))
        if t in (torch.reshape, aten.view.default, aten.reshape.default,
                 aten._unsafe_view.default):
            return self._reshape(n, x, result)
        if t in (F.dropout, F.dropout2d, aten.dropout.default, aten.clone.default,
                 aten.alias.default, aten.detach.default, aten.contiguous.default
                 if hasattr(aten, "contiguous") else None):
            return x
        if t in (operator.add, operator.iadd, torch.add, aten.add.Tensor, aten.add_.Tensor):
            alpha = kw.get("alpha", 1)
            if alpha != 1:
                self._refuse(n, "addition with alpha != 1 is not supported")
            return self._add(n, self._s(a[0]), self._s(a[1]))
        if t in (operator.mul, torch.mul, aten.mul.Tensor, aten.mul.Scalar):
            return self._scale(n, self._s(a[0]), self._s(a[1]), invert=False)
        if t in (operator.truediv, torch.div, aten.div.Tensor, aten.div.Scalar):
            return self._scale(n, self._s(a[0]), self._s(a[1]), invert=True)
        if t in (torch.mean, aten.mean.dim):
            return self._mean(n, x, arg(1, "dim"), arg(2, "keepdim", False), name)
        if t is getattr and a[1] in ("shape", "ndim", "dtype", "device"):
            return _Const(result)
        if t is operator.getitem:
            if isinstance(x, tuple) and isinstance(a[1], int):
                return x[a[1]]
            self._refuse(n, "indexing or slicing activations is not supported")
        self._refuse(n)

    def _method(self, n, result):
        m = n.target
        x = self._s(n.args[0])
        rest = [self._c(v) for v in n.args[1:]]
        if m in ("size", "dim", "numel"):
            return _Const(result)  # shape queries: plain numbers
        if m in ("relu", "relu_"):
            return self._activate(n, x, Activation("relu"), n.name)
        if m in ("clamp", "clip"):
            lo = rest[0] if rest else n.kwargs.get("min")
            hi = rest[1] if len(rest) > 1 else n.kwargs.get("max")
            return self._clip(n, x, lo, hi, n.name)
        if m in ("view", "reshape"):
            return self._reshape(n, x, result)
        if m == "flatten":
            start = rest[0] if rest else n.kwargs.get("start_dim", 0)
            end = rest[1] if len(rest) > 1 else n.kwargs.get("end_dim", -1)
            return self._flatten(n, x, self._c(n.args[0]).dim(), start, end)
        if m in ("contiguous", "clone", "detach"):
            return x
        if m in ("add", "add_"):
            return self._add(n, x, self._s(n.args[1]))
        if m in ("mul", "mul_"):
            return self._scale(n, x, self._s(n.args[1]), invert=False)
        if m in ("div", "div_"):
            return self._scale(n, x, self._s(n.args[1]), invert=True)
        if m == "mean":
            return self._mean(n, x, rest[0] if rest else n.kwargs.get("dim"),
                              rest[1] if len(rest) > 1 else n.kwargs.get("keepdim", False),
                              n.name)
        self._refuse(n)

    # -- the operations --------------------------------------------------------------------
    def _extend(self, x, op, bias=None, module=None) -> _Affine:
        return _extend(x, op, bias, module)

    def _conv(self, n, x, weight, bias, stride, padding, dilation, groups, name):
        where = f"layer '{name}'"
        if int(groups) != 1:
            self._refuse(n, "grouped/depthwise convolutions are not supported; use groups=1")
        if _pair(dilation, "dilation", where) != 1:
            self._refuse(n, "dilated convolutions are not supported; use dilation=1")
        if weight.shape[-1] != weight.shape[-2]:
            self._refuse(n, f"non-square kernel {tuple(weight.shape[-2:])}; use a square kernel")
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            elif int(stride if not isinstance(stride, (tuple, list)) else stride[0]) == 1 \
                    and weight.shape[-1] % 2 == 1:
                padding = weight.shape[-1] // 2
            else:
                self._refuse(n, "padding='same' with an even kernel or a stride; give the "
                                "padding as a number")
        w = weight.detach().to(torch.float64)
        op = _Conv(w, _pair(stride, "stride", where), _pair(padding, "padding", where), name)
        b = None if bias is None else bias.detach().to(torch.float64).reshape(-1, 1, 1)
        return self._extend(x, op, b, name)

    def _linear(self, n, x, weight, bias, name):
        w = weight.detach().to(torch.float64)
        b = None if bias is None else bias.detach().to(torch.float64)
        return self._extend(x, _Linear(w, name), b, name)

    def _batch_norm(self, n, x, mean, var, weight, bias, eps, name):
        scale = 1.0 / torch.sqrt(var.detach().to(torch.float64) + eps)
        if weight is not None:
            scale = scale * weight.detach().to(torch.float64)
        shift = -mean.detach().to(torch.float64) * scale
        if bias is not None:
            shift = shift + bias.detach().to(torch.float64)
        shape = _as_affine(x).shape
        shift = shift.reshape(-1, *([1] * (len(shape) - 1)))
        return self._extend(x, _Scale(scale, name), shift, name)

    def _clip(self, n, x, lo, hi, name):
        if lo is None or float(lo) != 0.0:
            self._refuse(n, f"a clip with lower bound {lo} is not ReLU-like; clip at 0")
        if hi is None:
            return self._activate(n, x, Activation("relu"), name)
        if not float(hi) > 0:
            self._refuse(n, f"clip upper bound {hi} must be positive")
        return self._activate(n, x, Activation("clip", float(hi)), name)

    def _avg_pool(self, n, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor,
                  name):
        where = f"layer '{name}'"
        k = _pair(kernel, "kernel", where)
        s = k if stride in (None, [], ()) else _pair(stride, "stride", where)
        p = _pair(padding, "padding", where)
        if p and not count_include_pad and not divisor:
            self._refuse(n, "average pooling with padding and count_include_pad=False divides "
                            "the border windows by fewer pixels, which no convolution does; "
                            "use count_include_pad=True (the default)")
        size = _as_affine(x).shape[1:]
        if ceil_mode and len(size) == 2 and any(
                -(-(d + 2 * p - k) // s) + 1 != _pool_out(d, k, s, p) for d in size):
            self._refuse(n, f"ceil_mode=True adds a partial window on this {size[0]}x{size[1]} "
                            "map, which no convolution computes; use ceil_mode=False")
        return self._extend(x, _Pool(k, s, float(divisor or k * k), name, p), None, name)

    def _adaptive_pool(self, n, x, output_size, name):
        shape = _as_affine(x).shape
        out = _pair(output_size, "output size", f"layer '{name}'") \
            if output_size is not None else shape[-1]
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] % out:
            self._refuse(n, f"adaptive pooling of a {shape} input to {out}x{out} is not a "
                            "uniform pooling; use input sizes divisible by the output size")
        k = shape[1] // out
        return self._extend(x, _Pool(k, k, float(k * k), name), None, name)

    def _mean(self, n, x, dims, keepdim, name):
        shape = _as_affine(x).shape
        dims = sorted(d % (len(shape) + 1) for d in ([dims] if isinstance(dims, int) else dims))
        if len(shape) != 3 or dims != [2, 3]:
            self._refuse(n, "only a global spatial mean (dims 2 and 3) is supported")
        pooled = self._extend(x, _Pool(shape[1], shape[1], float(shape[1] * shape[2]), name))
        if shape[1] != shape[2]:
            self._refuse(n, "global mean over a non-square map is not supported")
        return pooled if keepdim else self._extend(pooled, _Flatten(name))

    def _flatten(self, n, x, ndim, start, end):
        start %= ndim
        end %= ndim
        if end != ndim - 1 or start > 1:
            self._refuse(n, "only flattening all dimensions after the batch is supported")
        return self._extend(x, _Flatten(n.name))

    def _reshape(self, n, x, result):
        before = tuple(self._c(n.args[0]).shape)
        after = tuple(result.shape)
        if after == before:
            return x
        if after == (before[0], math.prod(before[1:])):
            return self._extend(x, _Flatten(n.name))
        self._refuse(n, f"reshaping {before} to {after} is not a flatten; only flattening "
                        "after the batch dimension is supported")

    def _add(self, n, a, b):
        if _is_data(a) and _is_data(b):
            aa, bb = _as_affine(a), _as_affine(b)
            if aa.shape != bb.shape:
                self._refuse(n, f"adding shapes {aa.shape} and {bb.shape}; residual branches "
                                "must have equal shapes")
            return _Affine(aa.terms + bb.terms, aa.bias + bb.bias, aa.modules + bb.modules)
        data, const = (a, b) if _is_data(a) else (b, a)
        aff = _as_affine(data)
        c = torch.as_tensor(const.value, dtype=torch.float64)
        if c.dim() > 0 and c.shape[0] == 1 and c.dim() == len(aff.shape) + 1:
            c = c[0]
        try:
            bias = aff.bias + c
        except RuntimeError:
            self._refuse(n, f"adding a constant of shape {tuple(c.shape)}")
        if bias.shape != aff.bias.shape:
            self._refuse(n, f"adding a constant of shape {tuple(c.shape)} changes the shape")
        return _Affine(aff.terms, bias, aff.modules)

    def _scale(self, n, a, b, invert):
        if _is_data(a) and _is_data(b):
            self._refuse(n, "multiplying two activations is not linear")
        if invert and not _is_data(a):
            self._refuse(n, "dividing by an activation is not supported")
        data, const = (a, b) if _is_data(a) else (b, a)
        c = torch.as_tensor(const.value, dtype=torch.float64)
        if c.numel() != 1:
            self._refuse(n, "only scaling by a scalar is supported")
        c = c.reshape(())
        return self._extend(data, _Scale(1.0 / c if invert else c, n.name))

    def _activate(self, n, x, activation, name):
        if isinstance(x, _Source):
            self._refuse(n, "an activation applied directly to another activation's "
                            "output; put a Conv2d or Linear between them")
        return _Source(self._population(x, activation, name).name, x.shape)

    def _population(self, aff: _Affine, activation: Activation, fallback: str) -> Population:
        # Name the population after the layer that computes it (conv1, fc, ...).
        named = [op.name for op in aff.terms[0][2] if isinstance(op, (_Conv, _Linear))]
        name = _unique(named[-1] if named else fallback, self.names)
        self.names.add(name)
        projections = [_materialize(src, shape, ops, aff.shape, name)
                       for src, shape, ops in aff.terms]
        pop = Population(name, aff.shape, projections, aff.bias, activation, aff.modules)
        self.populations.append(pop)
        return pop

    def finish(self) -> Graph:
        if self.model_output is None:
            raise UnsupportedLayerError("the model has no output")
        out, concrete = self.model_output
        if not _is_data(out):
            raise UnsupportedLayerError("the model output does not depend on its input")
        if concrete.dim() != 2:
            raise UnsupportedLayerError(
                f"the model output has shape {tuple(concrete.shape)}; hwsnn needs class "
                "scores of shape [batch, classes]")
        aff = _as_affine(out)
        if len(aff.shape) != 1:
            aff = self._extend(aff, _Flatten("output"))
        self._population(aff, Activation("none"), "readout")
        return Graph(self.input_spec, self.populations)


def _unique(name: str, taken: set[str]) -> str:
    base = name.replace("/", ".") or "layer"
    candidate, i = base, 1
    while candidate in taken:
        i += 1
        candidate = f"{base}_{i}"
    return candidate


def _per_channel(v, channels: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).flatten()
    if t.numel() == 1:
        return t.expand(channels).clone()
    if t.numel() != channels:
        raise ShapeError(f"normalisation {what} has {t.numel()} values, the input has "
                         f"{channels} channels")
    return t


def _target_name(n) -> str:
    t = n.target
    if isinstance(t, str):
        return t
    return getattr(t, "__name__", None) or str(t)


# ---------------------------------------------------------------------------------------
# Closing a chain into one projection.


def _materialize(source: str, src_shape, ops, out_shape, pop_name: str) -> Projection:
    names = ", ".join(sorted({op.name for op in ops if op.name})) or pop_name
    if any(isinstance(op, _Linear) for op in ops):
        proj = Projection(source, "dense", _dense_weight(src_shape, ops))
    elif len(src_shape) == 3 and len(out_shape) == 3:
        proj = _conv_projection(source, src_shape, ops, names)
    else:
        proj = Projection(source, "dense", _dense_weight(src_shape, ops))
    _check(proj, src_shape, ops, out_shape, names)
    return proj


def _dense_weight(src_shape, ops) -> torch.Tensor:
    if len(ops) == 1 and isinstance(ops[0], _Linear) and len(src_shape) == 1:
        return ops[0].weight
    if [type(op) for op in ops] == [_Flatten, _Linear]:
        return ops[1].weight
    n_in = math.prod(src_shape)

    def chain(v):
        x = v.reshape(1, *src_shape)
        for op in ops:
            x = op.apply(x)
        return x.reshape(-1)

    return torch.func.jacrev(chain)(torch.zeros(n_in, dtype=torch.float64)).detach()


def _conv_projection(source, src_shape, ops, names) -> Projection:
    channels, h, w = src_shape
    spec = None
    for i, op in enumerate(ops):
        step = op.as_conv(channels)
        if step is None:
            continue
        if spec is None:
            spec = step
        else:
            k = spec.weight.shape[-1]
            if step.padding and not all(_border_is_padding(k, spec.stride, spec.padding, d)
                                        for d in (h, w)):
                mid = tuple(_pool_out(d, k, spec.stride, spec.padding) for d in (h, w))
                pooled = all(isinstance(o, (_Pool, _Scale)) for o in ops[:i])
                pool = _exact_pool(spec.stride, (h, w), mid) if pooled else None
                raise UnsupportedLayerError(
                    f"layers {names}: a padded convolution after another linear layer with no "
                    "activation between them cannot be folded exactly: its zero padding of "
                    f"the intermediate {mid[0]}x{mid[1]} map is not what the layer before "
                    "gives there; "
                    + (f"pool with {pool} instead (the same {mid[0]}x{mid[1]} map, folded "
                       "exactly), or " if pool else "")
                    + "put an activation between them")
            spec = _compose(spec, step)
        channels = step.weight.shape[0]
    if spec is None:
        eye = torch.eye(src_shape[0], dtype=torch.float64)[:, :, None, None]
        spec = _Conv(eye, 1, 0)
    return Projection(source, "conv", spec.weight.contiguous(), spec.stride, spec.padding)


def _compose(a: _Conv, b: _Conv) -> _Conv:
    """The convolution equal to applying ``a`` then ``b`` (when padding allows it)."""
    ka, kb, sa = a.weight.shape[-1], b.weight.shape[-1], a.stride
    k = ka + (kb - 1) * sa
    w = torch.zeros(b.weight.shape[0], a.weight.shape[1], k, k, dtype=torch.float64)
    for dy in range(kb):
        for dx in range(kb):
            w[:, :, dy * sa:dy * sa + ka, dx * sa:dx * sa + ka] += torch.einsum(
                "om,mihw->oihw", b.weight[:, :, dy, dx], a.weight)
    return _Conv(w, sa * b.stride, a.padding + sa * b.padding)


def _check(proj: Projection, src_shape, ops, out_shape, names):
    """The projection must equal the chain it replaces, on random input."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, *src_shape, generator=gen, dtype=torch.float64)
    want = x
    for op in ops:
        want = op.apply(want)
    want = want.reshape(2, *out_shape)
    got = proj.apply(x, out_shape)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-9, atol=1e-9):
        raise UnsupportedLayerError(
            f"layers {names}: folding them into one projection did not reproduce them "
            "exactly; please report this model")


# ---------------------------------------------------------------------------------------
# Entry points.


def trace(model: nn.Module, example_input: torch.Tensor, *, input_range=(0.0, 1.0),
          normalize=None) -> Graph:
    """Extract the ``Graph`` of an ``nn.Module`` (or a ``torch.fx.GraphModule``).

    ``example_input`` is one batch of model inputs (its values matter only for tracing).
    ``input_range`` is the range of raw input values mapped to 8-bit codes; ``normalize``
    is an optional ``(mean, std)`` pair applied to the raw input before the model, folded
    into the first layer.
    """
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise ShapeError("the example input must be a tensor with a batch dimension, "
                         f"got {getattr(example_input, 'shape', type(example_input))}")
    model = model.eval()
    if isinstance(model, torch.fx.GraphModule):
        gm = model
    else:
        try:
            graph = _Tracer().trace(model)
            gm = torch.fx.GraphModule(model, graph)
        except Exception:
            # Data-dependent Python control flow defeats fx; torch.export may still work.
            gm = torch.export.export(model, (example_input,)).module()
    return _walk(gm, example_input, input_range, normalize)


def trace_export(program, example_input: torch.Tensor | None = None, *,
                 input_range=(0.0, 1.0), normalize=None) -> Graph:
    """Extract the ``Graph`` of a ``torch.export.ExportedProgram``."""
    if example_input is None:
        spec = [a for a in program.graph_signature.input_specs
                if a.kind == torch.export.graph_signature.InputKind.USER_INPUT]
        if len(spec) != 1:
            raise UnsupportedLayerError("the exported program must take exactly one input")
        node = next(n for n in program.graph.nodes if n.op == "placeholder"
                    and n.name == spec[0].arg.name)
        meta = node.meta.get("val")
        if meta is None:
            raise CheckpointError("the exported program records no input shape")
        example_input = torch.zeros(tuple(int(d) for d in meta.shape))
    return _walk(program.module(), example_input, input_range, normalize)


def _walk(gm, example_input, input_range, normalize) -> Graph:
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise ShapeError(f"input range ({lo}, {hi}) is empty")
    mean, std = normalize if normalize is not None else (None, None)
    if std is not None and any(float(s) <= 0 for s in torch.as_tensor(std).flatten()):
        raise ShapeError(f"normalisation std must be positive, got {std}")
    spec = InputSpec((), lo, hi,
                     None if mean is None else [float(v) for v in torch.as_tensor(mean).flatten()],
                     None if std is None else [float(v) for v in torch.as_tensor(std).flatten()])
    walker = _Walker(gm, spec)
    with torch.no_grad():
        try:
            walker.run(example_input)
        except (UnsupportedLayerError, ShapeError) as exc:
            # fx appends the failing node and a debugging hint; keep our one line.
            raise type(exc)(str(exc).splitlines()[0]) from None
        except RuntimeError as exc:
            msg = str(exc).splitlines()[0]
            raise ShapeError(f"the model does not run on an input of shape "
                             f"{tuple(example_input.shape)}: {msg}") from None
    refused = walker.refusal()
    if refused is not None:
        raise refused
    return walker.finish()
