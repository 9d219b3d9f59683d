"""Plans: everything the hardware of a QNet needs, computed once in plain Python.

``NetworkPlan`` is the whole network: lanes per population (the one place that reads and
checks them: an int, a dict, or ``"fc1=8,fc2=1"``), the multiply-accumulate input stage,
the output queues, the run-time weight stores and the FIFO depths between engines, and an
``EnginePlan`` per population. The network (``hdl.network``), the estimate
(``hdl.estimate``), the Verilog writer, the board build and the host take it.

Memory layout with P lanes: a vector population ``[N]`` keeps neuron i at address i // P,
lane i % P (G = ceil(N/P) addresses). A spatial population ``[C, H, W]`` keeps neuron
(c, y, x) at address (y·W + x)·G + c // P, lane c % P (G = ceil(C/P), H·W·G addresses):
the P lanes of one address are P channels of one position, so that one convolution event
updates P output channels per cycle.

Weight ROMs hold one P-wide word per (input row, lane group): a dense projection's row is
the source neuron j (address j·G + g); a convolution's row is (c_in, ky, kx).

With M input lanes (``input_lanes``), a dense projection from the image is read by the
multiply-accumulate input stage instead: its words are M wide, neuron i in lane i % M of
group i // M (G_M = ceil(N/M) groups), pixel j's group g at address j·G_M + g.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..snn.qnet import FORMAT_VERSION, INPUT, QNet, QProjection
from ..snn.widths import bias_values, mac_eligible, source_levels, widths

__all__ = ["NetworkPlan", "EnginePlan", "ProjectionPlan", "StoreSpec", "mac_eligible",
           "parse_lanes", "lanes_by_population", "describe_lanes", "check_input_lanes",
           "check_queue_depth", "reader_depths", "store_specs", "layout_id",
           "DEFAULT_FIFO_DEPTH"]

DEFAULT_FIFO_DEPTH = 2  # a skid buffer between engines; the engines' output queues buffer
MIN_QUEUE_DEPTH = 4


# -- lanes, input lanes, queues: read and checked here only -----------------------------------
def _lane_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ParameterError(f"--lanes {text!r} is not a positive integer") from None
    if value < 1:
        raise ParameterError(f"--lanes {value}: the lane count must be at least 1")
    return value


def parse_lanes(text) -> int | dict[str, int]:
    """``--lanes``: ``N`` for every engine, or ``fc1=8,fc2=1`` per population (the
    populations not named get 1). An int or a dict passes through (``lanes_by_population``
    checks it against a network)."""
    if not isinstance(text, str):
        return text
    if "=" not in text:
        return _lane_count(text)
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if not name or not value.strip():
            raise ParameterError(f"--lanes {text!r}: give N, or population=N pairs like "
                                 "fc1=8,fc2=1")
        if name in out:
            raise ParameterError(f"--lanes {text!r} names {name} twice")
        out[name] = _lane_count(value.strip())
    return out


def lanes_by_population(net: QNet, lanes) -> dict[str, int]:
    """Lanes per population of ``net``, in population order, from an int (every engine), a
    dict by population name (the rest get 1) or a ``--lanes`` string (``parse_lanes``);
    a name that is not a population or a count that is not a positive integer is refused."""
    lanes = parse_lanes(lanes)
    names = [p.name for p in net.populations]
    if isinstance(lanes, dict):
        given = lanes
    elif isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ParameterError(f"--lanes {lanes!r}: the lane count must be a positive integer")
    else:
        given = dict.fromkeys(names, lanes)
    for name, n in given.items():
        if name not in names:
            raise ParameterError(f"--lanes names {name!r}, which is not a population of "
                                 f"this network ({', '.join(names)})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ParameterError(f"--lanes must be positive integers, not {n!r} for {name}")
    return {n: given.get(n, 1) for n in names}


def describe_lanes(lanes) -> str:
    """``4 lanes`` for an int, ``lanes fc1=2, fc2=1`` for a dict."""
    if isinstance(lanes, int):
        return f"{lanes} lane{'s' if lanes > 1 else ''}"
    return "lanes " + ", ".join(f"{k}={v}" for k, v in lanes.items())


def check_input_lanes(net: QNet, input_lanes: int) -> None:
    """Refuse ``input_lanes`` for a network without a population that could use them."""
    if isinstance(input_lanes, bool) or not isinstance(input_lanes, int) or input_lanes < 0:
        raise ParameterError(f"--input-lanes must be a non-negative integer, not "
                             f"{input_lanes!r}")
    if input_lanes and not any(mac_eligible(net, p) for p in net.populations):
        raise ParameterError(
            "--input-lanes: no population of this network has a multiply-accumulate input "
            "stage (it needs group or IF neurons fed by a dense layer from the image; this "
            f"network is {net.method}, first layer "
            f"{net.populations[0].projections[0].kind}); leave --input-lanes out")


def check_queue_depth(queue_depth: int | None) -> None:
    """Every engine's output queue: None (two sweeps' worth) or at least 4 lane groups."""
    if queue_depth is not None and (isinstance(queue_depth, bool)
                                    or not isinstance(queue_depth, int)
                                    or queue_depth < MIN_QUEUE_DEPTH):
        raise ParameterError(f"--queue-depth must be an integer of at least "
                             f"{MIN_QUEUE_DEPTH}, not {queue_depth!r}")


@dataclass
class ProjectionPlan:
    """One incoming projection: its weight ROM and how events reach its outputs."""

    proj: QProjection
    src_shape: tuple[int, ...]
    max_count: int  # largest count per event (input: 1 per bit-event)
    rows: int  # weight ROM rows (before × G)
    init: list[list[int]]  # ROM words, P lanes each
    is_input: bool

    @property
    def kind(self) -> str:
        return self.proj.kind


class EnginePlan:
    """Constants of the engine for population ``name`` of ``net`` with ``lanes`` lanes."""

    def __init__(self, net: QNet, name: str, lanes: int, input_lanes: int = 0):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise TypeError(f"Lane count must be a positive integer, not {lanes!r}")
        if isinstance(input_lanes, bool) or not isinstance(input_lanes, int) \
                or input_lanes < 0:
            raise TypeError(f"Input lane count must be a non-negative integer, not "
                            f"{input_lanes!r}")
        if net.version != FORMAT_VERSION:
            raise ParameterError(f"QNet version {net.version} is not supported by these "
                                 f"engines (version {FORMAT_VERSION})")
        try:
            pop = net.population(name)
        except KeyError:
            raise ParameterError(f"the QNet has no population {name!r}") from None
        if pop.saturate:
            raise ParameterError(
                f"population {name} saturates its membrane ({pop.membrane_bits} bits); the "
                "engines need exact widths: convert with a larger --max-membrane-bits")
        self.net, self.pop, self.lanes = net, pop, lanes
        self.kind = pop.kind
        self.ilif = net.method == "ilif"
        self.spatial = len(pop.shape) == 3
        self.channels = pop.shape[0]
        self.height, self.width = (pop.shape[1], pop.shape[2]) if self.spatial else (1, 1)
        self.positions = self.height * self.width
        self.groups = math.ceil(self.channels / lanes)
        self.addresses = self.positions * self.groups
        # The multiply-accumulate input stage (0: bit-events through the main pipeline).
        self.mac_lanes = input_lanes if mac_eligible(net, pop) else 0
        if self.mac_lanes and self.mac_lanes % lanes:
            raise ParameterError(f"population {name}: --input-lanes {input_lanes} must be a "
                                 f"multiple of its {lanes} lanes")
        self.mac_groups = math.ceil(self.channels / self.mac_lanes) if self.mac_lanes else 0
        shapes = {INPUT: tuple(net.input.shape)}
        shapes.update({p.name: tuple(p.shape) for p in net.populations})
        self.projections = [self._projection(q, shapes[q.source]) for q in pop.projections]
        inputs = [p for p in self.projections if p.is_input]
        if len(inputs) > 1:
            raise ParameterError(f"population {name} has {len(inputs)} projections from the "
                                 "input; the input stage supports one")
        self.input_projection = inputs[0] if inputs else None
        if inputs and pop.kind == "readout" and not self.ilif \
                and (net.timesteps > 1 or net.method == "cos"):
            raise ParameterError(f"population {name}: a readout fed by the image itself has no "
                                 "engine for rate methods; add a hidden layer or use ilif")
        # Inputs are read earliest source first (see hdl.network: no deadlock in a DAG).
        order = {p.name: i for i, p in enumerate(net.populations)}
        self.event_indices = sorted((i for i, p in enumerate(self.projections)
                                     if not p.is_input),
                                    key=lambda i: order[self.projections[i].proj.source])
        self.event_projections = [self.projections[i] for i in self.event_indices]
        self.input_index = next((i for i, p in enumerate(self.projections) if p.is_input), None)
        # The GN input stage keeps the input current in its own RAM and adds it every step.
        self.has_current = self.input_projection is not None and self.kind == "gn"
        # Offset-spike calibration (cos): ρ pre-simulation steps before the T steps, the
        # last of them setting V0 (GN) or clearing the readout (hdl.neuron).
        self.cos_steps = net.cos_steps if net.method == "cos" else 0
        self.steps = net.timesteps + self.cos_steps
        self.steps_in = pop.steps_in
        self.bits_out = pop.steps_out
        self._widths()

    # -- layout -----------------------------------------------------------------------------
    def address(self, neuron: tuple[int, ...]) -> tuple[int, int]:
        """(address, lane) of a neuron given by (c, y, x) or (i,)."""
        if self.spatial:
            c, y, x = neuron
            return (y * self.width + x) * self.groups + c // self.lanes, c % self.lanes
        (i,) = neuron
        return i // self.lanes, i % self.lanes

    def words(self, values: np.ndarray, fill: int = 0) -> list[list[int]]:
        """Per-neuron values of the population → P-lane memory words in address order."""
        values = np.asarray(values, dtype=np.int64).reshape(self.channels, -1)
        out = [[fill] * self.lanes for _ in range(self.addresses)]
        for c in range(self.channels):
            for pos in range(self.positions):
                a = pos * self.groups + c // self.lanes
                out[a][c % self.lanes] = int(values[c, pos])
        return out

    def _projection(self, q: QProjection, src_shape) -> ProjectionPlan:
        is_input = q.source == INPUT
        max_count = 1 if is_input else source_levels(self.net, q.source)
        w = q.stored  # (the adders shift it back by q.weight_shift)
        p, g = self.lanes, self.groups
        if is_input and self.mac_lanes:
            p, g = self.mac_lanes, self.mac_groups
        if q.kind == "dense":
            if self.spatial:
                raise ParameterError(f"population {self.pop.name}: a dense projection into a "
                                     "spatial population is not supported")
            rows = w.shape[1]
            flat = w  # [N_out, N_in]
            init = [[0] * p for _ in range(rows * g)]
            for j in range(rows):
                for i in range(w.shape[0]):
                    init[j * g + i // p][i % p] = int(flat[i, j])
        else:
            if not self.spatial or len(src_shape) != 3:
                raise ParameterError(f"population {self.pop.name}: a convolution needs "
                                     "spatial source and target")
            cin, k = w.shape[1], w.shape[-1]
            rows = cin * k * k
            init = [[0] * p for _ in range(rows * g)]
            for ci in range(cin):
                for ky in range(k):
                    for kx in range(k):
                        r = (ci * k + ky) * k + kx
                        for co in range(w.shape[0]):
                            init[r * g + co // p][co % p] = int(w[co, ci, ky, kx])
        return ProjectionPlan(q, tuple(src_shape), max_count, rows, init, is_input)

    def word_lanes(self, k: int) -> int:
        """Lanes of one word of projection k's weights (M for the MAC input stage)."""
        return self.mac_lanes if (self.mac_lanes and self.projections[k].is_input) \
            else self.lanes

    def conv_ranges(self, plan: ProjectionPlan, axis: int) -> list[tuple[int, int]]:
        """For each source coordinate along ``axis`` (1: y, 2: x): (first output coordinate
        it reaches, how many)."""
        q = plan.proj
        k, s, pad = q.kernel, q.stride, q.padding
        out_size = self.pop.shape[axis]
        ranges = []
        for v in range(plan.src_shape[axis]):
            lo = max(0, -((-(v + pad - k + 1)) // s))
            hi = min(out_size - 1, (v + pad) // s)
            ranges.append((lo, max(0, hi - lo + 1)))
        return ranges

    # -- widths -------------------------------------------------------------------------------
    def _widths(self):
        wd = widths(self.net, self.pop)
        # vbits: the membrane memory; cmp_bits: the neuron rule's subtractors, which see
        # V − τΘ (GN) or V − Θ·2^(T−1) (ILIF); bbits, cbits: bias words and input current.
        self.vbits, self.cmp_bits, self.bbits, self.cbits = (wd.membrane, wd.compare,
                                                             wd.bias, wd.current)
        self.bias_words = self.words(bias_values(self.net, self.pop))
        # A spatial population whose bias depends on the channel only (no folded input
        # normalisation at the borders) reads it from a ROM of one word per lane group.
        G = self.groups
        self.bias_per_group = self.spatial and all(
            w == self.bias_words[a % G] for a, w in enumerate(self.bias_words))
        self.bias_rom_words = self.bias_words[:G] if self.bias_per_group else self.bias_words

    @property
    def out_count(self) -> int:
        """Largest spike count of an output event (an ILIF event is one bit)."""
        return 1 if self.ilif else self.pop.group_size

    @property
    def keeps_statistics(self) -> bool:
        """A GN engine of a cos network: it keeps each neuron's pre-simulation statistics
        and sets the calibrated V0 (``hdl.neuron``)."""
        return bool(self.cos_steps) and self.kind == "gn"

    @property
    def current_collisions(self) -> str:
        """What a read of the input current RAM that meets a write to its address gives
        (``hdl.ram``): undefined, as the membranes' (such a read is a forwarding hit),
        but for the multiply-accumulate input stage's writes, which are not forwarded."""
        return "old" if self.mac_lanes else "undefined"

    @property
    def queue_depth(self) -> int:
        """Default output queue depth in lane groups: two sweeps' worth (with cos, the
        ρ + T sweeps of a sample, so that an engine runs a whole sample ahead of the next
        one, as it does at T = 2) and the operations in flight, at least 16."""
        sweeps = self.steps if self.cos_steps else 2
        return max(16, sweeps * self.addresses + 10)

    @property
    def input_size(self) -> int:
        return int(np.prod(self.net.input.shape))


# -- weights loaded at run time ---------------------------------------------------------------
@dataclass
class StoreSpec:
    """A projection whose weights are written over the host link (``hdl.store``): its
    words in address order, packed as the hardware reads them (lane l in bits
    ``l·wbits ..``, two's complement, little-endian bytes)."""

    population: str
    projection: int
    source: str
    lanes: int
    weight_bits: int
    words: list[list[int]]

    @property
    def depth(self) -> int:
        return max(1, len(self.words))

    @property
    def width(self) -> int:
        return self.lanes * self.weight_bits

    @property
    def bytes_per_word(self) -> int:
        return math.ceil(self.width / 8)

    def describe(self) -> dict:
        return {"population": self.population, "projection": self.projection,
                "source": self.source, "lanes": self.lanes, "weight_bits": self.weight_bits,
                "depth": self.depth, "bytes_per_word": self.bytes_per_word}

    def encode(self) -> bytes:
        """The store's contents as LOAD payload bytes, word after word."""
        mask = (1 << self.weight_bits) - 1
        out = bytearray()
        for word in self.words:
            v = 0
            for lane, w in enumerate(word):
                v |= (int(w) & mask) << (lane * self.weight_bits)
            out += v.to_bytes(self.bytes_per_word, "little")
        return bytes(out)


def store_specs(net: QNet, lanes, loadable, input_lanes: int = 0) -> list[StoreSpec]:
    """The stores of ``loadable`` ((population, projection index) pairs), in the order
    the link numbers them: populations in QNet order, projections in engine order
    (``NetworkPlan.stores``)."""
    return NetworkPlan(net, lanes, input_lanes=input_lanes, loadable=loadable).stores


def reader_depths(net: QNet, plans: dict[str, EnginePlan],
                  fifo_depth: int = DEFAULT_FIFO_DEPTH) -> list[tuple[str, str, int]]:
    """(source, consumer, FIFO depth) of every event input, each consumer's in port order
    (``plans``: the engine plans by population). A port read after another one buffers a
    whole step of its source."""
    out = []
    for p in net.populations:
        for k, pp in enumerate(plans[p.name].event_projections):
            depth = fifo_depth if k == 0 else max(fifo_depth, math.prod(pp.src_shape) + 2)
            out.append((pp.proj.source, p.name, depth))
    return out


class NetworkPlan:
    """The plan of the whole network of ``net``, made once and read by everything that
    builds, sizes or talks to its hardware.

    Parameters: ``lanes`` (an int for every engine, a dict by population name, the rest
    getting 1, or a ``--lanes`` string such as ``"fc1=8,fc2=1"``); ``input_lanes`` (M > 0:
    the multiply-accumulate input stage of the populations ``mac_eligible`` accepts);
    ``queue_depth`` (every engine's output queue in lane groups; None: two sweeps' worth);
    ``loadable`` ((population, projection index) pairs whose weights are loaded at run
    time, ``hdl.store``); ``fifo_depth`` (the buffers between engines).

    Attributes: those, checked (``lanes`` as a dict in population order, ``loadable`` as a
    sorted tuple of pairs), and ``engines`` (population → ``EnginePlan``), ``stores`` (the
    ``StoreSpec`` of each loadable projection, in link order), ``readers`` ((source,
    consumer, FIFO depth) of every event input, ``reader_depths``).
    """

    def __init__(self, net: QNet, lanes=1, *, input_lanes: int = 0,
                 queue_depth: int | None = None, loadable=(),
                 fifo_depth: int = DEFAULT_FIFO_DEPTH):
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise TypeError(f"FIFO depth must be an integer of at least 2, not {fifo_depth!r}")
        self.net = net
        self.lanes = lanes_by_population(net, lanes)
        check_input_lanes(net, input_lanes)
        check_queue_depth(queue_depth)
        self.input_lanes = input_lanes
        self.queue_depth = queue_depth
        self.fifo_depth = fifo_depth
        loadable = self._check_loadable(loadable)
        self.engines = {p.name: EnginePlan(net, p.name, self.lanes[p.name], input_lanes)
                        for p in net.populations}
        self._set_stores(loadable)
        self.readers = reader_depths(net, self.engines, fifo_depth)

    def _check_loadable(self, loadable) -> tuple[tuple[str, int], ...]:
        pairs = set()
        names = {p.name for p in self.net.populations}
        for item in loadable:
            try:
                pop, k = item
            except (TypeError, ValueError):
                raise ParameterError(f"loadable weights are (population, projection) pairs, "
                                     f"not {item!r}") from None
            if pop not in names:
                raise ParameterError(f"no population {pop!r} to hold loadable weights")
            if isinstance(k, bool) or not isinstance(k, int):
                raise ParameterError(f"population {pop}: projection index {k!r} is not an "
                                     "integer")
            pairs.add((pop, k))
        order = {p.name: i for i, p in enumerate(self.net.populations)}
        return tuple(sorted(pairs, key=lambda t: (order[t[0]], t[1])))

    def _set_stores(self, loadable) -> None:
        stores = []
        for pop, k in loadable:
            plan = self.engines[pop]
            if not 0 <= k < len(plan.projections):
                raise ParameterError(f"population {pop} has no projection {k}")
            pp = plan.projections[k]
            stores.append(StoreSpec(pop, k, pp.proj.source, plan.word_lanes(k),
                                    pp.proj.weight_bits, pp.init))
        self.loadable = loadable
        self.stores = stores

    def with_loadable(self, loadable) -> NetworkPlan:
        """The same plan with the weights of ``loadable`` loaded at run time (the engine
        plans are shared, not made again)."""
        other = copy.copy(self)
        other._set_stores(self._check_loadable(loadable))
        return other

    def loadable_of(self, population: str) -> list[int]:
        """The projections of ``population`` whose weights are loaded at run time."""
        return [s.projection for s in self.stores if s.population == population]


def layout_id(specs: list[StoreSpec]) -> bytes:
    """4 bytes naming the store layout (IDENTIFY reports them; the host checks)."""
    import hashlib
    import json
    text = json.dumps([s.describe() for s in specs], sort_keys=True)
    return hashlib.sha256(text.encode()).digest()[:4]
