"""The layer-serial processor's compiler pass (docs/serial.md): tiles, the layer program's
descriptors and the memory map, computed from a QNet in plain Python.

Design stage (issue 19): no hardware reads this plan yet. What it fixes is what the
processor, its estimate and the golden model's serial cycle count will share: which output
channels each tile holds, where every projection's weights, every population's biases and
every spike plane live, how densely the weights are packed, and the cycles the processor
spends besides the dataflow engines' work (scanning the planes, one word a cycle).

Units: weights and biases are packed as fields, P per word, one projection's (or
population's) fields straight after the last one's, so that no bit of a word is left
empty between rows (a row may start in the middle of a word: the weight reader reads two
interleaved banks and aligns the P fields it needs). Planes are words of ``plane_width``
bits; each step's plane of a population starts at a word boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ParameterError
from ..snn.qnet import FORMAT_VERSION, INPUT, PIXEL_BITS, QNet, QPopulation
from .estimate import blocks_for

__all__ = ["SerialPlan", "LayerDescriptor", "ProjectionDescriptor", "Region", "count_bits",
           "PLANE_WIDTH"]

PLANE_WIDTH = 32  # bits per word of the spike-plane memory


def count_bits(pop: QPopulation) -> int:
    """Bits of one neuron's field in one step's plane: ⌈log2(τ + 1)⌉ for a group neuron,
    1 for an ILIF bit-plane; a readout writes no plane (0)."""
    if pop.kind == "readout":
        return 0
    if pop.kind == "ilif":
        return 1
    return max(1, int(pop.group_size).bit_length())


@dataclass(frozen=True)
class Region:
    """A stretch of one memory: ``words`` words from word ``base``; ``bits_used`` of its
    bits hold data (the rest pads its last word, or a row to a word boundary)."""

    memory: str
    name: str
    base: int
    words: int
    bits_used: int


@dataclass(frozen=True)
class ProjectionDescriptor:
    """A projection as the processor's sequencer reads it."""

    source: str
    kind: str  # dense | conv
    source_shape: tuple[int, ...]
    kernel: int
    stride: int
    padding: int
    weight_bits: int
    weight_shift: int
    weight_field: int  # the first weight's field in the weight memory
    weights: int  # its weights (fields)
    source_plane: int  # word address of the source's first plane (the image's: pixels)


@dataclass(frozen=True)
class LayerDescriptor:
    """One population's entry of the layer program."""

    population: str
    kind: str
    shape: tuple[int, ...]
    threshold: int
    group_size: int
    v0: int
    steps_in: int
    steps_out: int
    membrane_bits: int
    tiles: tuple[tuple[int, int], ...]  # output channel ranges [start, stop)
    projections: tuple[ProjectionDescriptor, ...]
    bias_field: int
    bias_per_channel: bool  # one bias per output channel (a map whose biases vary by
    # channel only, as a convolution's do), else one per neuron
    plane: int  # word address of its first output plane (readout: -1, none)
    plane_words: int  # words of one step's plane


def _channels(shape) -> tuple[int, int]:
    """(channels, positions): a [C, H, W] map keeps P channels of a position per word, a
    vector [N] is N channels at one position."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]) * int(shape[2])
    return math.prod(int(d) for d in shape), 1


class SerialPlan:
    """The serial processor's plan for ``net`` on one engine of ``lanes`` lanes.

    ``membrane_words``: the membrane memory's depth, in words of P membranes; a population
    whose membranes need more is split into tiles of output channels (each a multiple of
    P channels, the last one the rest), and one whose P channels alone do not fit is
    refused. None: one tile per population, the memory as deep as the largest needs.
    ``plane_width``: bits per word of the spike planes.

    Attributes: ``layers`` (a ``LayerDescriptor`` per population, in QNet order),
    ``regions`` (every ``Region``), ``memories`` (name → (width in bits, depth in words)),
    ``weight_packing`` (weight bits over the weight memory's bits).
    """

    def __init__(self, net: QNet, lanes: int = 16, *, membrane_words: int | None = None,
                 plane_width: int = PLANE_WIDTH):
        if not isinstance(net, QNet):
            raise TypeError(f"SerialPlan needs a QNet, not {type(net).__name__}")
        if net.version != FORMAT_VERSION:
            raise ParameterError(f"QNet version {net.version} is not supported (version "
                                 f"{FORMAT_VERSION})")
        for name, value in (("lanes", lanes), ("plane_width", plane_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, not {value!r}")
        if membrane_words is not None and (isinstance(membrane_words, bool) or not
                                           isinstance(membrane_words, int)
                                           or membrane_words < 1):
            raise ParameterError(f"membrane_words must be a positive integer, not "
                                 f"{membrane_words!r}")
        self.net, self.lanes, self.plane_width = net, lanes, plane_width
        self.weight_bits = max(q.weight_bits for p in net.populations for q in p.projections)
        self.regions: list[Region] = []
        tiles = {p.name: self._tiles(p, membrane_words) for p in net.populations}
        planes = self._place_planes()
        self.layers: list[LayerDescriptor] = []
        field, bias_field = 0, 0
        shapes = {INPUT: tuple(int(d) for d in net.input.shape)}
        shapes.update({p.name: tuple(int(d) for d in p.shape) for p in net.populations})
        for pop in net.populations:
            projs = []
            for i, q in enumerate(pop.projections):
                n = int(q.weight.size)
                projs.append(ProjectionDescriptor(
                    q.source, q.kind, shapes[q.source], q.kernel, q.stride, q.padding,
                    q.weight_bits, q.weight_shift, field, n, planes[q.source].base))
                self.regions.append(Region("weights", f"{pop.name}.{i}", field // lanes,
                                           _span(field, n, lanes), n * q.weight_bits))
                field += n
            per_channel = _bias_per_channel(pop)
            biases = pop.shape[0] if per_channel else pop.size
            self.regions.append(Region("biases", pop.name, bias_field // lanes,
                                       _span(bias_field, biases, lanes),
                                       biases * pop.bias_bits))
            own = planes.get(pop.name)
            self.layers.append(LayerDescriptor(
                pop.name, pop.kind, shapes[pop.name], pop.threshold, pop.group_size, pop.v0,
                pop.steps_in, pop.steps_out, pop.membrane_bits, tiles[pop.name],
                tuple(projs), bias_field, per_channel, own.base if own else -1,
                self._plane_words(pop.name)))
            bias_field += biases
        self.weight_fields, self.bias_fields = field, bias_field
        tile_words = max(self._tile_words(p, t) for p in net.populations
                         for t in tiles[p.name])
        self.memories = {
            "weights": (lanes * self.weight_bits, math.ceil(field / lanes)),
            "biases": (lanes * max(p.bias_bits for p in net.populations),
                       math.ceil(bias_field / lanes)),
            "membranes": (lanes * max(p.membrane_bits for p in net.populations),
                          membrane_words if membrane_words is not None else tile_words),
            "planes": (plane_width, max((r.base + r.words for r in self.regions
                                         if r.memory == "planes"), default=0)),
        }

    # -- tiles ----------------------------------------------------------------------------
    def _tile_words(self, pop: QPopulation, tile: tuple[int, int]) -> int:
        _, positions = _channels(pop.shape)
        return positions * math.ceil((tile[1] - tile[0]) / self.lanes)

    def _tiles(self, pop: QPopulation, membrane_words: int | None):
        channels, positions = _channels(pop.shape)
        if membrane_words is None:
            return ((0, channels),)
        groups = membrane_words // positions  # lane groups of P channels per tile
        if groups < 1:
            raise ParameterError(
                f"population {pop.name} {list(pop.shape)}: {positions} positions × "
                f"{self.lanes} channels need {positions} membrane words, more than the "
                f"{membrane_words} there are; give the membrane memory at least "
                f"{positions} words")
        step = groups * self.lanes
        return tuple((c, min(c + step, channels)) for c in range(0, channels, step))

    # -- planes ---------------------------------------------------------------------------
    def _plane_words(self, name: str) -> int:
        """Words of one step's plane of ``name`` (the image: one of its bit-planes)."""
        if name == INPUT:
            return math.ceil(math.prod(self.net.input.shape) / self.plane_width)
        pop = self.net.population(name)
        return math.ceil(pop.size * count_bits(pop) / self.plane_width)

    def _place_planes(self) -> dict[str, Region]:
        """Every plane region, placed first fit by liveness: the image's bit-planes and
        each population's output planes live from the population that writes them (the
        image: before the first) to the last population that reads them."""
        net = self.net
        order = {p.name: i for i, p in enumerate(net.populations)}
        last = {INPUT: -1}
        last.update({p.name: order[p.name] for p in net.populations})
        for p in net.populations:
            for q in p.projections:
                last[q.source] = max(last[q.source], order[p.name])
        live: list[tuple[int, int, Region]] = []  # (first, last, region)
        placed: dict[str, Region] = {}
        writers = [(INPUT, -1, PIXEL_BITS)] + [(p.name, order[p.name], p.steps_out)
                                               for p in net.populations
                                               if p.kind != "readout"]
        for name, first, steps in writers:
            words = steps * self._plane_words(name)
            size = (math.prod(net.input.shape) * PIXEL_BITS if name == INPUT else
                    net.population(name).size * count_bits(net.population(name)) * steps)
            busy = sorted((r.base, r.base + r.words) for a, b, r in live
                          if a <= last[name] and first <= b)
            base = 0
            for lo, hi in busy:
                if base + words <= lo:
                    break
                base = max(base, hi)
            region = Region("planes", name, base, words, size)
            live.append((first, last[name], region))
            placed[name] = region
            self.regions.append(region)
        return placed

    # -- figures --------------------------------------------------------------------------
    @property
    def weight_packing(self) -> float:
        """Weight bits over the bits of the weight memory's words."""
        width, depth = self.memories["weights"]
        used = sum(r.bits_used for r in self.regions if r.memory == "weights")
        return used / (width * depth) if depth else 1.0

    def memory_bits(self) -> dict[str, int]:
        """Bits of each memory (width × depth)."""
        return {k: w * d for k, (w, d) in self.memories.items()}

    def block_rams(self, modes) -> dict[str, int]:
        """Block RAMs of each memory in the cheapest of a device's ``modes`` ((depth,
        width) configurations, e.g. ``boards.get("ulx3s-85f").device.bram_modes``)."""
        return {k: blocks_for(d, w, modes) if d else 0 for k, (w, d) in self.memories.items()}

    def scan_cycles(self) -> int:
        """Cycles per sample the plane reader spends reading words, one a cycle, beyond
        the engine's work on the events (the same for every sample): for every tile of
        every population, each step's plane of each projection's source (the image:
        its 8 bit-planes, once per tile, for the input stage or as an ILIF's steps)."""
        total = 0
        for layer in self.layers:
            pop = self.net.population(layer.population)
            for _ in layer.tiles:
                for q in layer.projections:
                    words = self._plane_words(q.source)
                    steps = PIXEL_BITS if q.source == INPUT else pop.steps_in
                    total += steps * words
        return total

    def ideal_cycles(self, result):
        """[B] ideal cycles per sample of the serial processor for a golden run at this
        plan's lanes (``golden.run(net, codes, lanes=plan.lanes)``): the dataflow engines'
        work one after another (``ideal_cycles_total``: with tiles of whole lane groups
        the events and sweeps cost the same, tile by tile) plus ``scan_cycles``."""
        lanes = result.lanes
        if lanes != self.lanes and not (isinstance(lanes, dict)
                                        and set(lanes.values()) == {self.lanes}):
            raise ParameterError(f"the golden run used lanes {lanes!r}; this plan has "
                                 f"{self.lanes}")
        return result.ideal_cycles_total + self.scan_cycles()


def _bias_per_channel(pop: QPopulation) -> bool:
    """Whether a [C, H, W] population's biases vary by channel only."""
    if len(pop.shape) != 3:
        return False
    b = pop.bias.reshape(pop.shape[0], -1)
    return bool((b == b[:, :1]).all())


def _span(first_field: int, fields: int, lanes: int) -> int:
    """Words that fields ``first_field`` … ``first_field + fields − 1`` touch, P a word."""
    if fields == 0:
        return 0
    return (first_field + fields - 1) // lanes - first_field // lanes + 1
