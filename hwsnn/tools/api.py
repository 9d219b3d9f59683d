"""The Python API: load a model, convert it, evaluate a conversion.

    import hwsnn
    conv = hwsnn.convert(model, example_input, method="gn", group_size=4, timesteps=2)
    conv.save("build/cnn")
    report = hwsnn.evaluate("build/cnn")
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, HwsnnError, ParameterError
from ..frontends import data
from ..frontends.graph import Graph
from ..frontends.pytorch import trace, trace_export
from ..models import BUNDLED
from ..snn import floatsim, golden
from ..snn.convert import DEFAULT_PERCENTILE, SNN, load_snn, save_snn
from ..snn.convert import convert as convert_graph
from ..snn.qnet import QNet, write_directory
from ..snn.qnet import load as load_qnet
from ..snn.quantize import DEFAULT_MAX_MEMBRANE_BITS, DEFAULT_WEIGHT_BITS, quantize

__version__ = "0.1.0"


@dataclass
class LoadedModel:
    """A model ready to trace: an ``nn.Module`` or a ``torch.export`` program."""

    model: object
    input_shape: tuple[int, ...] | None
    name: str
    dataset: str | None = None


def load_model(spec: str, weights: str | None = None,
               input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    """Resolve a MODEL argument: a bundled name, a ``.pt2`` program, or
    ``package.module:factory`` (with a state-dict file in ``weights``)."""
    if spec in BUNDLED:
        b = BUNDLED[spec]
        try:
            return LoadedModel(b.load(), b.input_shape, spec, b.dataset)
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f"bundled model {spec} cannot be loaded: {exc}") from None
    if spec.endswith(".pt2"):
        if not os.path.isfile(spec):
            raise CheckpointError(f"{spec}: no such file")
        try:
            with _quiet_torch():
                program = torch.export.load(spec)
        except Exception as exc:  # torch raises many kinds for a bad archive
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{spec} is not a readable torch.export program: "
                                  f"{first}") from None
        shape = input_shape or _program_input_shape(program)
        return LoadedModel(program, shape, Path(spec).stem)
    if ":" in spec:
        module_name, _, factory_name = spec.partition(":")
        if weights is None:
            raise CheckpointError(f"{spec} needs its trained weights: pass --weights FILE "
                                  "(a state dict saved with torch.save)")
        factory = _import_factory(spec, module_name, factory_name)
        try:
            model = factory()
        except Exception as exc:  # the user's code: any error
            raise CheckpointError(f"{spec}: the factory raised {type(exc).__name__}: "
                                  f"{_first_line(exc)}") from None
        if not isinstance(model, nn.Module):
            raise CheckpointError(f"{spec} returned {type(model).__name__}, not an nn.Module: "
                                  "give a function that builds the model")
        load_state_dict(model, weights)
        return LoadedModel(model.eval(), input_shape, factory_name)
    raise HwsnnError(
        f"cannot tell what model {spec!r} is: give a bundled model ("
        f"{', '.join(sorted(BUNDLED))}), a torch.export program (.pt2), or "
        "package.module:factory with --weights FILE")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _quiet_torch():
    """Keep torch's warnings and logged tracebacks about a file it cannot read off the
    terminal: hwsnn says what is wrong in one line."""
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _import_factory(spec: str, module_name: str, factory_name: str):
    """``module:factory``, importable from the current directory as from ``python -c``."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.split(".")[0] != exc.name.split(".")[0] \
                and not module_name.startswith(exc.name + "."):
            raise CheckpointError(f"cannot import {module_name} (for {spec}): it needs "
                                  f"'{exc.name}', which is not installed") from None
        raise CheckpointError(
            f"cannot import {spec}: no module named {module_name!r} in the current directory "
            f"({cwd}) or on PYTHONPATH: run hwsnn where {module_name.replace('.', '/')}.py "
            "is, or add its directory to PYTHONPATH") from None
    except Exception as exc:  # the user's module: a syntax error, an error at import
        raise CheckpointError(f"cannot import {module_name} (for {spec}): "
                              f"{type(exc).__name__}: {_first_line(exc)}") from None
    finally:
        if added:
            sys.path.remove(cwd)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise CheckpointError(f"cannot use {spec}: module {module_name} has no function "
                              f"{factory_name!r}")
    return factory


def load_state_dict(model: nn.Module, path: str) -> None:
    """Load a state-dict file strictly, with a message that says what does not match.

    Only plain tensors are read (``torch.load(weights_only=True)``): a file that holds
    other Python objects is refused, never unpickled."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        with _quiet_torch():
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds for a corrupt file
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path} holds Python objects besides tensors (a whole model saved with "
                "torch.save(model)?); hwsnn reads only state dicts and never runs code "
                "from a file: save model.state_dict() with torch.save and pass that "
                "file") from None
        raise CheckpointError(f"{path} is not a state dict saved with torch.save (the file "
                              "is corrupt, truncated or of another kind): save "
                              "model.state_dict() with torch.save and pass that file") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"],
                                                                        dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict (name → tensor)")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}"
                         f"{' ...' if len(unexpected) > 3 else ''}")
        if wrong:
            parts.append(f"shape mismatch {', '.join(wrong[:3])}")
        raise CheckpointError(f"{path} does not match the model: {'; '.join(parts)}")
    model.load_state_dict(state)


def _program_input_shape(program) -> tuple[int, ...] | None:
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in [
                s.arg.name for s in program.graph_signature.input_specs
                if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]:
            val = node.meta.get("val")
            if val is not None:
                return tuple(int(d) for d in val.shape[1:])
    return None


@dataclass
class Conversion:
    """The three stages of a conversion: float graph, float SNN, integer QNet."""

    graph: Graph
    snn: SNN
    qnet: QNet

    def save(self, directory: str | os.PathLike, removed: list | None = None) -> Path:
        """Write the QNet and the float SNN into ``directory`` (all or nothing).

        ``directory`` must be new, empty, or hold a network hwsnn wrote: then its network
        files are replaced, anything else in it is kept, and hwsnn's own outputs made from
        the previous network (Verilog, simulation and build results, the report) are
        removed and appended to ``removed`` (see ``hwsnn.tools.outdir``)."""
        def write(tmp: Path):
            self.qnet.save(tmp)
            save_snn(self.snn, tmp)

        return write_directory(directory, write, removed)


def convert(model, example_input: torch.Tensor | None = None, *, method: str = "gn",
            timesteps: int = 4, group_size=None, cos_steps: int = 8,
            weight_bits: int = DEFAULT_WEIGHT_BITS,
            max_membrane_bits: int = DEFAULT_MAX_MEMBRANE_BITS,
            calibration: torch.Tensor | None = None,
            percentile: float | None = DEFAULT_PERCENTILE, input_range=(0.0, 1.0),
            normalize=None, thresholds: dict[str, float] | None = None,
            progress: bool = True, name: str | None = None) -> Conversion:
    """Convert a trained model (``nn.Module`` or ``torch.export`` program) to a QNet.

    ``example_input`` is one batch of inputs (needed for an ``nn.Module``). See
    ``hwsnn.snn.convert.convert`` for the method options and ``hwsnn.snn.quantize.quantize`` for
    the widths. ``calibration`` (raw inputs) drives threshold balancing of ReLU layers.
    """
    if isinstance(model, torch.export.ExportedProgram):
        graph = trace_export(model, example_input, input_range=input_range,
                             normalize=normalize)
    else:
        if example_input is None:
            raise ParameterError("an nn.Module needs an example input batch to be traced")
        graph = trace(model, example_input, input_range=input_range, normalize=normalize)
    snn = convert_graph(graph, method=method, timesteps=timesteps, group_size=group_size,
                        cos_steps=cos_steps, calibration=calibration, percentile=percentile,
                        thresholds=thresholds, progress=progress)
    snn.metadata.update({"model": name or type(model).__name__, "hwsnn_version": __version__,
                         "torch_version": torch.__version__})
    qnet = quantize(snn, weight_bits=weight_bits, max_membrane_bits=max_membrane_bits)
    return Conversion(graph, snn, qnet)


DEFAULT_MAX_ACCURACY_LOSS = 0.3  # percentage points of the float SNN's accuracy


def quantization_check(conv: Conversion, x: torch.Tensor, y: torch.Tensor, *,
                       max_loss: float = DEFAULT_MAX_ACCURACY_LOSS) -> dict:
    """How much accuracy the integer network loses against the float SNN on labelled data
    ``x``, ``y`` (the calibration data at convert), and, when more than ``max_loss``
    percentage points, the narrowest weight width that keeps within it (``None`` when not
    even 16 bits do). Returns ``{"samples", "float_snn_accuracy", "golden_accuracy",
    "loss_points", "max_loss_points", "ok", "weight_bits", "suggested_weight_bits"}``."""
    qnet = conv.qnet
    flt = golden.accuracy(floatsim.run(conv.snn, x).predictions, y)

    def integer(net):
        return golden.accuracy(golden.run(net, golden.encode(net, x)).predictions, y)

    gold = integer(qnet)
    loss = 100 * (flt - gold)
    out = {"samples": len(x), "float_snn_accuracy": flt, "golden_accuracy": gold,
           "loss_points": loss, "max_loss_points": max_loss, "ok": loss <= max_loss,
           "weight_bits": qnet.weight_bits, "suggested_weight_bits": None}
    if not out["ok"]:
        for bits in range(qnet.weight_bits + 1, 17):
            wider = quantize(conv.snn, weight_bits=bits,
                             max_membrane_bits=qnet.max_membrane_bits)
            if 100 * (flt - integer(wider)) <= max_loss:
                out["suggested_weight_bits"] = bits
                break
    return out


def refuse_accuracy_loss(check: dict, what: str) -> None:
    """Raise a ``ParameterError`` naming the loss and the width that avoids it."""
    if check["ok"]:
        return
    text = (f"{what}: with {check['weight_bits']}-bit weights the integer network scores "
            f"{100 * check['golden_accuracy']:.2f} % on the {check['samples']} calibration "
            f"samples, {check['loss_points']:.2f} points below the float SNN "
            f"({100 * check['float_snn_accuracy']:.2f} %)")
    bits = check["suggested_weight_bits"]
    if bits is not None:
        text += (f"; --weight-bits {bits} keeps it within {check['max_loss_points']:g} "
                 "points")
    else:
        text += ("; not even 16-bit weights keep it within "
                 f"{check['max_loss_points']:g} points: use fewer time steps or another "
                 "method")
    raise ParameterError(text + f" (or accept the loss: --max-accuracy-loss "
                                f"{math.ceil(check['loss_points'] * 10) / 10:g})")


def load_conversion(directory) -> tuple[SNN, QNet]:
    qnet = load_qnet(directory)
    return load_snn(directory), qnet


def evaluate(directory=None, *, snn: SNN | None = None, qnet: QNet | None = None,
             x: torch.Tensor | None = None, y: torch.Tensor | None = None,
             lanes: int | dict[str, int] | str = 1, samples: int | None = None,
             data_path: str | None = None) -> dict:
    """ANN vs float SNN vs integer golden on labelled data (default: the test split of the
    network's data set).

    Returns a dict with accuracies (fractions), prediction mismatches against the exact
    QCFS reference where the method has one, the ANN-vs-SNN logit MSE, SOPs and the ideal
    cycles per inference with ``lanes`` lanes (an int for every engine, or per
    population: a dict or ``"fc1=8,fc2=1"``, the rest getting 1).
    """
    if directory is not None:
        snn, qnet = load_conversion(directory)
    if isinstance(lanes, str | dict):  # lanes per population: checked before any work
        from ..hdl.plan import lanes_by_population, parse_lanes
        lanes = parse_lanes(lanes)
        if isinstance(lanes, dict):
            lanes_by_population(qnet, lanes)
    if x is None:
        x, y = data.load_for(tuple(snn.input.shape), "test", data_path,
                             meta=(qnet or snn).metadata,
                             value_range=(snn.input.lo, snn.input.hi))
    if samples is not None:
        if samples < 1:
            raise ParameterError(f"samples must be positive, not {samples}")
        x, y = x[:samples], y[:samples]
    if tuple(x.shape[1:]) != tuple(snn.input.shape):
        x = x.reshape(len(x), *snn.input.shape)
    ann = snn.ann().forward(snn.input.to_codes(x))[snn.output.name]
    flt = floatsim.run(snn, x)
    codes = golden.encode(qnet, x)
    gold = golden.run(qnet, codes, lanes=lanes)
    report = {
        "samples": len(x),
        "method": qnet.method,
        "timesteps": qnet.timesteps,
        "group_size": sorted({p.group_size for p in qnet.populations if p.kind == "gn"}),
        "cos_steps": qnet.cos_steps,
        "weight_bits": qnet.weight_bits,
        "ann_accuracy": golden.accuracy(ann.argmax(1), y),
        "float_snn_accuracy": golden.accuracy(flt.predictions, y),
        "golden_accuracy": golden.accuracy(gold.predictions, y),
        "float_vs_golden_mismatches": int((flt.predictions != gold.predictions).sum()),
        "mse_float_snn": float(((flt.logits - ann) ** 2).mean()),
        "mse_golden": float(((gold.logits - ann) ** 2).mean()),
        "sops_per_inference": float(gold.sops.double().mean()),
        "synaptic_events_per_inference": float(gold.synaptic_events.double().mean()),
        "lanes": lanes,
        "ideal_cycles_per_inference": float(gold.ideal_cycles_bottleneck.double().mean()),
        "ideal_cycles_total_per_inference": float(gold.ideal_cycles_total.double().mean()),
        "ideal_cycles_per_layer": {k: float(v.sum(1).double().mean())
                                   for k, v in gold.cycles.items()},
        "spikes_per_inference": {k: float(v.sum(1).double().mean())
                                 for k, v in gold.spikes.items()},
    }
    levels = exact_reference_levels(qnet)
    if levels is not None:
        _, ref_pred, _ = golden.qcfs_reference(qnet, codes, levels)
        report["exact_reference"] = f"QCFS(L={levels}) integer ANN"
        report["exact_reference_accuracy"] = golden.accuracy(ref_pred, y)
        report["prediction_mismatches"] = int((ref_pred != gold.predictions).sum())
    return report


def exact_reference_levels(qnet: QNet) -> int | None:
    """L of the QCFS ANN the method reproduces exactly, or None: ILIF with T bits → 2^T − 1;
    GN (or IF) at T = 1 with one group size τ across layers → τ."""
    if qnet.method == "ilif":
        return 2**qnet.timesteps - 1
    if qnet.method in ("gn", "if") and qnet.timesteps == 1:
        sizes = {p.group_size for p in qnet.populations if p.kind == "gn"}
        if len(sizes) == 1:
            return sizes.pop()
    return None


def parse_group_size(text: str):
    """``4`` or ``conv1=4,conv2=2`` → int or dict."""
    try:
        if "=" not in text:
            return int(text)
        out = {}
        for part in text.split(","):
            k, _, v = part.partition("=")
            out[k.strip()] = int(v)
        return out
    except ValueError:
        raise ParameterError(f"group size {text!r} is not an integer or a list like "
                             "conv1=4,conv2=2") from None


