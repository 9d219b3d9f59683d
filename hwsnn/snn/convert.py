"""Convert: ``Graph`` (float ANN) → ``SNN`` (float spiking network with thresholds).

Threshold balancing gives every hidden population a threshold θ: the trained QCFS λ, the
clip value of a clipped ReLU, or (plain ReLU) the maximum or a percentile of the layer's
activations over calibration data. The method then fixes the neuron of every population:

=========  ==========================================================================
method     neuron
=========  ==========================================================================
if         IF, soft reset, V0 = θ/2 (a group neuron with τ = 1)
if-shift   IF, soft reset, V0 = 0, θ/(2T) added to the bias every step (Deng & Gu)
gn         group neuron GN(τ): τ IF members at θ/τ, 2θ/τ, ..., θ on one membrane
ilif       inverse-LIF with temporal separation: T-bit values, MSB-first (SpikeConverter)
cos        IF plus offset-spike calibration: ρ pre-simulation steps shift V0 (Hao et al.)
=========  ==========================================================================

The last population is the readout: it accumulates and never fires.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import CheckpointError, ParameterError
from ..frontends.graph import Activation, Graph, InputSpec, Population, Projection

METHODS = ("if", "if-shift", "gn", "ilif", "cos")
MAX_TIMESTEPS = 256
MAX_ILIF_BITS = 16
MAX_GROUP_SIZE = 64
MAX_COS_STEPS = 256
DEFAULT_GROUP_SIZE = 4
DEFAULT_PERCENTILE = 99.99


@dataclass
class SNNPopulation:
    """A population of the float SNN. ``kind`` is ``gn`` (IF is τ = 1), ``ilif`` or
    ``readout``. ``theta`` is θ; ``group_size`` is τ (1 for ILIF and the readout)."""

    name: str
    shape: tuple[int, ...]
    projections: list[Projection]
    bias: torch.Tensor
    activation: Activation
    kind: str
    theta: float
    group_size: int = 1

    @property
    def is_readout(self) -> bool:
        return self.kind == "readout"


@dataclass
class SNN:
    """A converted spiking network with float weights and thresholds."""

    input: InputSpec
    populations: list[SNNPopulation]
    method: str
    timesteps: int
    cos_steps: int = 0
    metadata: dict = field(default_factory=dict)

    @property
    def output(self) -> SNNPopulation:
        return self.populations[-1]

    @property
    def ilif_levels(self) -> int:
        return 2**self.timesteps - 1

    def unit(self, pop: SNNPopulation | str) -> float:
        """The value of one output count of a population (``"input"``: one input code)."""
        if isinstance(pop, str):
            if pop == "input":
                return 1.0
            pop = self.population(pop)
        if pop.kind == "readout":
            return 1.0
        if pop.kind == "ilif":
            return pop.theta / self.ilif_levels
        return pop.theta / pop.group_size

    def population(self, name: str) -> SNNPopulation:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def ann(self) -> Graph:
        """The ANN this SNN was converted from (the graph part of it)."""
        return Graph(self.input, [Population(p.name, p.shape, p.projections, p.bias,
                                             p.activation) for p in self.populations])


def _check_int(value, name: str, lo: int, hi: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParameterError(f"{name} must be an integer in {lo}..{hi}, not {value!r}{hint}")
    return value


def calibrate_thresholds(graph: Graph, calibration: torch.Tensor | None, *,
                         percentile: float | None = DEFAULT_PERCENTILE, batch_size: int = 256,
                         progress: bool = True) -> dict[str, float]:
    """Threshold balancing: θ per hidden population.

    QCFS layers keep their trained λ and clipped ReLUs their clip value; plain ReLU layers
    take the ``percentile`` (``None``: the maximum) of their activations over
    ``calibration`` (raw model inputs).
    """
    thresholds: dict[str, float] = {}
    relu = []
    for pop in graph.hidden():
        if pop.activation.kind in ("qcfs", "clip"):
            thresholds[pop.name] = float(pop.activation.threshold)
        else:
            relu.append(pop.name)
    if not relu:
        return thresholds
    if calibration is None or len(calibration) == 0:
        raise ParameterError(
            f"layers {', '.join(relu)} use plain ReLU: threshold balancing needs calibration "
            "data: give --calibration-data DATA (your training data), or --dataset NAME when "
            "the model was trained on a shipped set (digits, digits28, mnist)")
    if percentile is not None and not 0 < percentile <= 100:
        raise ParameterError(f"percentile must be in (0, 100], not {percentile}")
    collected: dict[str, list[torch.Tensor]] = {n: [] for n in relu}
    batches = range(0, len(calibration), batch_size)
    for i in tqdm(batches, desc="threshold balancing", unit="batch", disable=not progress,
                  leave=False):
        values = graph.forward(graph.input.to_codes(calibration[i:i + batch_size]))
        for name in relu:
            v = values[name].flatten()
            collected[name].append(v[v > 0] if percentile is not None else v.max().reshape(1))
    for name in relu:
        v = torch.cat(collected[name])
        if v.numel() == 0 or v.max() <= 0:
            thresholds[name] = 1.0  # never active on the calibration data; any θ works
        elif percentile is None or percentile >= 100:
            thresholds[name] = float(v.max())
        else:
            k = max(1, int(round(percentile / 100 * v.numel())))
            thresholds[name] = float(v.kthvalue(min(k, v.numel())).values)
    return thresholds


def convert(graph: Graph, *, method: str = "gn", timesteps: int = 4,
            group_size: int | dict[str, int] | None = None, cos_steps: int = 8,
            calibration: torch.Tensor | None = None,
            percentile: float | None = DEFAULT_PERCENTILE,
            thresholds: dict[str, float] | None = None, progress: bool = True) -> SNN:
    """Convert a float ``Graph`` into a float ``SNN`` with the chosen ``method``.

    ``group_size`` is τ for ``gn`` (an int, or a dict by population name for per-layer
    sizes; default 4). ``timesteps`` is T (for ``ilif``: the bits per value). ``cos_steps``
    is ρ, the pre-simulation steps of ``cos``. ``thresholds`` overrides θ per population.
    """
    if method not in METHODS:
        raise ParameterError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "ilif":
        _check_int(timesteps, "timesteps (bits per value) for ilif", 1, MAX_ILIF_BITS)
    else:
        _check_int(timesteps, "timesteps", 1, MAX_TIMESTEPS)
    hidden = [p.name for p in graph.hidden()]
    sizes = _group_sizes(method, group_size, hidden)
    if method == "cos":
        _check_int(cos_steps, "cos_steps (pre-simulation steps ρ)", 1, MAX_COS_STEPS)
    theta = calibrate_thresholds(graph, calibration, percentile=percentile, progress=progress)
    for name, value in (thresholds or {}).items():
        if name not in theta:
            raise ParameterError(f"threshold given for unknown layer {name!r}; layers: "
                                 f"{', '.join(hidden)}")
        if not value > 0:
            raise ParameterError(f"threshold of {name} must be positive, not {value}")
        theta[name] = float(value)
    kind = "ilif" if method == "ilif" else "gn"
    pops = []
    for p in graph.populations:
        if p.is_readout:
            pops.append(SNNPopulation(p.name, p.shape, p.projections, p.bias, p.activation,
                                      "readout", 1.0, 1))
        else:
            pops.append(SNNPopulation(p.name, p.shape, p.projections, p.bias, p.activation,
                                      kind, theta[p.name], sizes[p.name]))
    return SNN(graph.input, pops, method, timesteps, cos_steps if method == "cos" else 0)


def _group_sizes(method: str, group_size, hidden: list[str]) -> dict[str, int]:
    if method != "gn":
        if group_size not in (None, 1) and not (isinstance(group_size, dict) and
                                                 set(group_size.values()) <= {1}):
            raise ParameterError(f"group size {group_size!r} applies to method 'gn' only; "
                                 f"method {method!r} uses single IF neurons")
        return dict.fromkeys(hidden, 1)
    if group_size is None:
        group_size = DEFAULT_GROUP_SIZE
    if isinstance(group_size, dict):
        unknown = set(group_size) - set(hidden)
        if unknown:
            raise ParameterError(f"group size given for unknown layer(s) "
                                 f"{', '.join(sorted(unknown))}; layers: {', '.join(hidden)}")
        sizes = {n: group_size.get(n, DEFAULT_GROUP_SIZE) for n in hidden}
    else:
        sizes = dict.fromkeys(hidden, group_size)
    for name, tau in sizes.items():
        _check_int(tau, f"group size τ of {name}", 1, MAX_GROUP_SIZE)
    return sizes


# ---------------------------------------------------------------------------------------
# The float SNN on disk (snn.json + snn.npz), beside the QNet, for `hwsnn eval`.

SNN_FORMAT = "hwsnn-snn"
SNN_VERSION = 1


def save_snn(snn: SNN, directory) -> None:
    directory = Path(directory)
    arrays, pops = {}, []
    for p in snn.populations:
        arrays[f"{p.name}/bias"] = p.bias.numpy()
        projs = []
        for i, q in enumerate(p.projections):
            arrays[f"{p.name}/w{i}"] = q.weight.numpy()
            projs.append({"source": q.source, "kind": q.kind, "weight": f"{p.name}/w{i}",
                          "stride": q.stride, "padding": q.padding})
        pops.append({"name": p.name, "shape": list(p.shape), "kind": p.kind,
                     "theta": p.theta, "group_size": p.group_size, "bias": f"{p.name}/bias",
                     "activation": {"kind": p.activation.kind,
                                    "threshold": p.activation.threshold,
                                    "levels": p.activation.levels},
                     "projections": projs})
    inp = snn.input
    doc = {"format": SNN_FORMAT, "version": SNN_VERSION, "method": snn.method,
           "timesteps": snn.timesteps, "cos_steps": snn.cos_steps,
           "input": {"shape": list(inp.shape), "lo": inp.lo, "hi": inp.hi, "mean": inp.mean,
                     "std": inp.std},
           "populations": pops, "metadata": snn.metadata}
    np.savez_compressed(directory / "snn.npz", **arrays)
    (directory / "snn.json").write_text(json.dumps(doc, indent=1) + "\n")


def load_snn(directory) -> SNN:
    directory = Path(directory)
    path = directory / "snn.json"
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != SNN_FORMAT or doc.get("version") != SNN_VERSION:
            raise CheckpointError(f"{path} is not a version {SNN_VERSION} hwsnn SNN; convert "
                                  "the model again")
        with np.load(directory / "snn.npz", allow_pickle=False) as f:
            arrays = {k: torch.from_numpy(f[k]) for k in f.files}
        inp = doc["input"]
        pops = [SNNPopulation(
            p["name"], tuple(p["shape"]),
            [Projection(q["source"], q["kind"], arrays[q["weight"]], q["stride"], q["padding"])
             for q in p["projections"]],
            arrays[p["bias"]], Activation(**p["activation"]), p["kind"], p["theta"],
            p["group_size"]) for p in doc["populations"]]
        return SNN(InputSpec(tuple(inp["shape"]), inp["lo"], inp["hi"], inp["mean"],
                             inp["std"]), pops, doc["method"], doc["timesteps"],
                   doc["cos_steps"], doc.get("metadata", {}))
    except CheckpointError:
        raise
    except FileNotFoundError as exc:
        raise CheckpointError(f"{directory} lacks {Path(exc.filename).name}: is it the output "
                              "of 'hwsnn convert'?") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} or snn.npz is corrupt: {type(exc).__name__}: {exc}") \
            from None
