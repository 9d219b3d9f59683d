"""The layer-serial processor's compiler pass (docs/serial.md): tiles, the layer program and
the memory map, computed from a QNet in plain Python.

``SerialPlan(net, lanes=P)`` decides what the processor, its estimate and the golden
model's serial cycle count share:

- **tiles**: ranges of output channels, multiples of P, computed one after another when a
  population's membranes do not fit the membrane memory;
- **the layer program**: one ``TileDescriptor`` per tile, in execution order, encoded into
  32-bit words (``program_words``; ``decode_program`` reads them back);
- **the memory images**: the weights as fields, P a word, each projection's straight after
  the last one's (``weight_fields``); the biases laid out like the membranes, one word of P
  per lane group (``bias_words``; a convolution's per channel only, else per position
  too); ``memory_words`` packs them; the image's pixels; the spike planes placed by
  liveness;
- **the cycles** the processor spends besides the dataflow engines' work: reading the
  planes and the pixels (``scan_cycles``), the sweeps' shared rule units
  (``shared_rule_cycles``), and the descriptors.

Spike planes are laid out like the membranes: a population ``[C, H, W]`` (a vector is
``[N, 1, 1]``) with G = ⌈C/P⌉ lane groups keeps step t's counts at word
``plane + t·H·W·G + (y·W + x)·G + g``, channel g·P + l in field l of ``plane_bits`` bits
(``hdl.scanner``). A dense projection's weight rows follow the order the planes are read
in: source neuron (c, y, x) is row ``(y·W + x)·C + c``, output neuron i its field ``i`` of
the row; a convolution's row is the tap (c_in, ky, kx), as in the dataflow engines. The
image is not a plane: its pixels are bytes in stream order (c, y, x), read by the input
stage, which turns every non-zero pixel into one event whose count is its code (the
lanes' multipliers take it whole; the dataflow engines' input stages take a pixel's set
bits one at a time: docs/hardware.md).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..errors import ParameterError
from ..snn.qnet import FORMAT_VERSION, INPUT, PIXEL_BITS, QNet, QPopulation
from ..snn.widths import bias_values, widths
from .estimate import blocks_for

__all__ = ["SerialPlan", "LayerDescriptor", "ProjectionDescriptor", "TileDescriptor",
           "ProjectionRecord", "Region", "count_bits", "default_rule_units", "plane_bits",
           "pool_factor", "pooled_weights",
           "decode_program",
           "descriptor_words", "KINDS", "PROGRAM_WIDTH", "HEADER_FIELDS", "RECORD_FIELDS"]

PROGRAM_WIDTH = 32  # bits per word of the layer program
KINDS = ("gn", "ilif", "readout")  # a descriptor's kind field: the index


def count_bits(pop: QPopulation) -> int:
    """Bits of one neuron's count in one step's plane: ⌈log2(τ + 1)⌉ for a group neuron,
    1 for an ILIF bit-plane; a readout writes no plane (0)."""
    if pop.kind == "readout":
        return 0
    if pop.kind == "ilif":
        return 1
    return max(1, int(pop.group_size).bit_length())


def default_rule_units(lanes: int) -> int:
    """The neuron-rule units of a processor of ``lanes`` lanes unless asked: one per 8
    lanes, at least one (a power of two that divides ``lanes``)."""
    units = max(1, lanes // 8)
    return units if units & (units - 1) == 0 and lanes % units == 0 else 1


def plane_bits(net: QNet) -> int:
    """Bits of a plane field, one width for the whole plane memory: the widest count,
    rounded up to 1, 2, 4 or 8 bits (so that P fields make the words of a memory whose
    lanes the sweep writes at once)."""
    widest = max((count_bits(p) for p in net.populations), default=1)
    return next(b for b in (1, 2, 4, 8, 16) if b >= widest)


@dataclass(frozen=True)
class Region:
    """A stretch of one memory: ``words`` words from word ``base``; ``bits_used`` of its
    bits hold data (the rest pads its last word, or a channel count to a lane group)."""

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
    weight_field: int  # the first weight's field in the weight memory (external: its
    # first row among its population's rows; a tile's record has the field, rows × the
    # tile's lanes)
    weights: int  # its weights (fields; external: as stored, without the padding lanes)
    source_plane: int  # word address of the source's first plane (the image: pixel 0)
    pool: int = 0  # log2 f: an f×f average pooling folded into its weights, kept once
    # (``pool_factor``); kernel, stride and padding are then the pooled grid's
    rows: int = 0  # weight rows: a source neuron's or a tap's output channels each


@dataclass(frozen=True)
class LayerDescriptor:
    """One population as the compiler sees it (its tiles become ``TileDescriptor``s)."""

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
    bias_word: int  # the first word of its biases
    bias_per_channel: bool  # one bias per output channel (a map whose biases vary by
    # channel only, as a convolution's do), else one per neuron in (position, channel) order
    plane: int  # word address of its first output plane (readout: -1, none)
    plane_words: int  # words of one step's plane (positions × lane groups)


# The layer program: one descriptor per tile, a header and one record per projection, each
# a fixed list of unsigned fields packed from bit 0 of its first word on (signed values in
# two's complement), cut into PROGRAM_WIDTH-bit words.
HEADER_FIELDS = _HEADER = (
    "kind", "threshold", "group_size", "v0", "steps_in", "steps_out", "cos_steps", "channels",
    "height", "width", "c0", "tile_groups", "bias_word", "bias_per_channel", "plane",
    "plane_step", "has_current", "projections", "last", "weight_addr", "weight_words")
RECORD_FIELDS = _PROJECTION = (
    "source_is_image", "conv", "src_channels", "src_height", "src_width", "source_plane",
    "source_step", "kernel", "stride", "padding", "weight_field", "weight_shift", "pool")
_SIGNED = {"v0"}


@dataclass(frozen=True)
class ProjectionRecord:
    source_is_image: int
    conv: int
    src_channels: int
    src_height: int
    src_width: int
    source_plane: int
    source_step: int  # words of one step's plane of the source (the image: 0)
    kernel: int
    stride: int
    padding: int
    weight_field: int
    weight_shift: int
    pool: int  # log2 f: the source's events at (y >> pool, x >> pool), row of that grid


@dataclass(frozen=True)
class TileDescriptor:
    """What the processor's registers hold while it computes one tile: the output channels
    [c0, c0 + tile_groups·P) ∩ [0, channels) of one population."""

    kind: int  # index into KINDS
    threshold: int
    group_size: int
    v0: int
    steps_in: int
    steps_out: int
    cos_steps: int
    channels: int
    height: int
    width: int
    c0: int
    tile_groups: int
    bias_word: int
    bias_per_channel: int
    plane: int  # own planes' first word (a readout: 0)
    plane_step: int  # words of one step's own plane: positions × lane groups
    has_current: int  # GN fed by the image: an input current, computed once per tile
    projections: int
    last: int  # the program's last tile
    # External memory (``SerialPlan(external=True)``): the tile's weights, ``weight_words``
    # words of the weight buffer loaded from buffer word ``weight_addr`` of the SDRAM's
    # weight image before the tile runs (on-chip plans: 0, 0)
    weight_addr: int = 0
    weight_words: int = 0
    records: tuple[ProjectionRecord, ...] = ()


def _channels(shape) -> tuple[int, int]:
    """(channels, positions): a [C, H, W] map keeps P channels of a position per word, a
    vector [N] is N channels at one position."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]) * int(shape[2])
    return math.prod(int(d) for d in shape), 1


def _geometry(shape) -> tuple[int, int, int]:
    """(C, H, W) of a population or the image (a vector: [N, 1, 1])."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    return math.prod(int(d) for d in shape), 1, 1


def lane_fields(word: int, bits: int, lanes: int) -> list[int]:
    """A packed word → its ``lanes`` signed fields of ``bits`` bits (field l in bits
    l·bits ..)."""
    mask, half = (1 << bits) - 1, 1 << (bits - 1)
    out = []
    for lane in range(lanes):
        v = (word >> (lane * bits)) & mask
        out.append(v - (1 << bits) if v >= half else v)
    return out


class SerialPlan:
    """The serial processor's plan for ``net`` on one engine of ``lanes`` lanes.

    ``membrane_words``: the membrane memory's depth, in words of P membranes; a population
    whose membranes need more is split into tiles of output channels (each a multiple of
    P channels, the last one the rest), and one whose P channels alone do not fit is
    refused. None: one tile per population, the memory as deep as the largest needs.

    Attributes: ``layers`` (a ``LayerDescriptor`` per population, in QNet order),
    ``tiles`` (a ``TileDescriptor`` per tile, in execution order), ``regions`` (every
    ``Region``), ``memories`` (name → (width in bits, depth in words)), ``plane_bits``,
    ``weight_bits``, ``bias_bits``, ``weight_packing`` (weight bits over the weight
    memory's bits).

    ``arguments()``: the keyword arguments that make the same plan again (a build report
    records them).

    ``loadable``: the weight memory is written at run time over the host link (SPRAM on a
    UP5K, which the bitstream cannot fill) instead of initialised by the bitstream;
    ``stores`` then lists it (``weight_stores``) as the link numbers its stores.

    ``weight_slices``: the bits of each block-RAM weight bank's slices, each its own
    memory of the bank's depth (0: one memory a bank). A bank deeper than one block RAM
    is otherwise a cascade of blocks behind multiplexers in logic; cut into slices as wide
    as the device's block holds at that depth (``slices_for``), each slice is one block
    and no multiplexer is left (the fit check tries this first). The same weights and
    cycles either way; run-time stores (``loadable``) are never sliced.

    ``rule_units``: the neuron-rule units R the P lanes share (a power of two dividing P):
    a fire sweep spends P/R cycles (``sweep_cycles``) on each membrane word, R lanes a
    cycle. None: ``default_rule_units(P)``, P/8 (at least 1): the sweeps are about 1 % of
    a CNN's cycles, and the rule (τ comparisons of a membrane) is a third of a lane.
    """

    def __init__(self, net: QNet, lanes: int = 16, *, membrane_words: int | None = None,
                 keep_current: bool = True, loadable: bool = False,
                 rule_units: int | None = None, weight_slices: int = 0,
                 external: bool = False, weight_words: int | None = None):
        if not isinstance(net, QNet):
            raise TypeError(f"SerialPlan needs a QNet, not {type(net).__name__}")
        if net.version != FORMAT_VERSION:
            raise ParameterError(f"QNet version {net.version} is not supported (version "
                                 f"{FORMAT_VERSION})")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ParameterError(f"lanes must be a positive integer, not {lanes!r}")
        if membrane_words is not None and (isinstance(membrane_words, bool) or not
                                           isinstance(membrane_words, int)
                                           or membrane_words < 1):
            raise ParameterError(f"membrane_words must be a positive integer, not "
                                 f"{membrane_words!r}")
        for pop in net.populations:
            if pop.saturate:
                raise ParameterError(
                    f"population {pop.name} saturates its membrane ({pop.membrane_bits} "
                    "bits); the processor needs exact widths: convert with a larger "
                    "--max-membrane-bits")
            if pop.kind == "readout" and net.method != "ilif" and any(
                    q.source == INPUT for q in pop.projections):
                raise ParameterError(f"population {pop.name}: a readout fed by the image "
                                     "itself has no processor for rate methods; add a hidden "
                                     "layer or use ilif")
            for q in pop.projections:
                if q.kind == "dense" and len(pop.shape) == 3:
                    raise ParameterError(f"population {pop.name}: a dense projection into "
                                         "a spatial population is not supported")
        for flag, value in (("keep_current", keep_current), ("loadable", loadable),
                            ("external", external)):
            if not isinstance(value, bool):
                raise ParameterError(f"{flag} must be True or False, not {value!r}")
        if rule_units is None:
            rule_units = default_rule_units(lanes)
        if (isinstance(rule_units, bool) or not isinstance(rule_units, int) or rule_units < 1
                or rule_units & (rule_units - 1) or lanes % rule_units):
            raise ParameterError(f"rule_units must be a power of two that divides the "
                                 f"{lanes} lanes, not {rule_units!r}")
        _check_slices(weight_slices)
        if weight_words is not None and (not external or isinstance(weight_words, bool)
                                         or not isinstance(weight_words, int)
                                         or weight_words < 1):
            raise ParameterError(f"weight_words (the weight buffer's words) is a positive "
                                 f"integer, for external=True only, not {weight_words!r}")
        if external and loadable:
            raise ParameterError("external=True keeps the weights in SDRAM, loaded over the "
                                 "link there: loadable (weights in on-chip run-time stores) "
                                 "does not apply")
        self.external, self.weight_words = external, weight_words
        self.net, self.lanes, self.keep_current = net, lanes, keep_current
        self.loadable = loadable
        self.weight_slices = weight_slices
        self.rule_units = rule_units
        self.sweep_cycles = lanes // rule_units  # per membrane word of a fire sweep
        self.membrane_words = membrane_words  # (as asked: ``memories`` has the depth)
        self.plane_bits = plane_bits(net)
        self.weight_bits = max(q.weight_bits for p in net.populations for q in p.projections)
        # (the bias as added: a rate readout's T·B, an ILIF's B + V0: ``widths``)
        self.bias_bits = max(widths(net, p).bias for p in net.populations)
        self.regions: list[Region] = []
        shapes = _shapes(net)
        pools, rows = _pools_and_rows(net)
        tiles = {p.name: self._tiles(p, membrane_words,
                                     sum(rows[p.name]) if external else None)
                 for p in net.populations}
        planes = self._place_planes()
        self.layers: list[LayerDescriptor] = []
        field, bias_word = 0, 0
        for pop in net.populations:
            projs = []
            row = 0
            for i, q in enumerate(pop.projections):
                pool = pools[pop.name, i]
                f = 1 << pool if q.kind == "conv" else 1  # (the kernel's pooled grid)
                n = int(pooled_weights(q, shapes[q.source], pool).size)
                plane = 0 if q.source == INPUT else planes[q.source].base
                projs.append(ProjectionDescriptor(
                    q.source, q.kind, shapes[q.source], q.kernel // f, q.stride // f,
                    q.padding // f, q.weight_bits, q.weight_shift,
                    row if external else field, n, plane, pool, rows[pop.name][i]))
                if not external:
                    self.regions.append(Region("weights", f"{pop.name}.{i}", field // lanes,
                                               _span(field, n, lanes), n * q.weight_bits))
                field += n
                row += rows[pop.name][i]
            per_channel = _bias_per_channel(pop)
            channels, positions = _channels(pop.shape)
            words = math.ceil(channels / lanes) * (1 if per_channel else positions)
            self.regions.append(Region("biases", pop.name, bias_word, words,
                                       channels * (1 if per_channel else positions)
                                       * widths(net, pop).bias))
            own = planes.get(pop.name)
            self.layers.append(LayerDescriptor(
                pop.name, pop.kind, shapes[pop.name], pop.threshold, pop.group_size, pop.v0,
                pop.steps_in, pop.steps_out, pop.membrane_bits, tiles[pop.name],
                tuple(projs), bias_word, per_channel, own.base if own else -1,
                self._plane_words(pop.name)))
            bias_word += words
        self.weight_field_count = field
        self.tiles = self._tile_descriptors()
        self.sdram: dict[str, Region] = {}
        if external:
            self._place_sdram()
        tile_words = max(self._tile_words(p, t) for p in net.populations
                         for t in tiles[p.name])
        with_current = [p for p in net.populations if self._has_current(p)]
        current_words = max((self._tile_words(p, t) for p in with_current
                             for t in tiles[p.name]), default=0)
        self.memories = {
            "weights": (lanes * self.weight_bits,
                        max(t.weight_words for t in self.tiles) if external
                        else math.ceil(field / lanes)),
            "biases": (lanes * self.bias_bits, bias_word),
            "membranes": (lanes * max(widths(net, p).membrane for p in net.populations),
                          membrane_words if membrane_words is not None else tile_words),
            "currents": (lanes * max((widths(net, p).current for p in with_current),
                                     default=1), current_words),
            "planes": (lanes * self.plane_bits,
                       0 if external else self.plane_words_total()),
            "pixels": (PIXEL_BITS, math.prod(net.input.shape)),
            "program": (PROGRAM_WIDTH, len(self.program_words())),
        }

    # -- tiles ----------------------------------------------------------------------------
    def _tile_words(self, pop: QPopulation, tile: tuple[int, int]) -> int:
        _, positions = _channels(pop.shape)
        return positions * math.ceil((tile[1] - tile[0]) / self.lanes)

    def _tiles(self, pop: QPopulation, membrane_words: int | None, rows: int | None):
        """Output channel ranges of ``pop``: as many lane groups a tile as the membrane
        memory holds and, with the weights in external memory (``rows``: the weight rows
        of its projections), as the weight buffer holds (a row of a lane group a word)."""
        channels, positions = _channels(pop.shape)
        groups = math.ceil(channels / self.lanes)
        if membrane_words is not None:
            groups = membrane_words // positions  # lane groups of P channels per tile
            if groups < 1:
                raise ParameterError(
                    f"population {pop.name} {list(pop.shape)}: {positions} positions × "
                    f"{self.lanes} channels need {positions} membrane words, more than the "
                    f"{membrane_words} there are; give the membrane memory at least "
                    f"{positions} words")
        if rows is not None and self.weight_words is not None:
            if rows > self.weight_words:
                raise ParameterError(
                    f"population {pop.name}: a lane group of {self.lanes} channels has "
                    f"{rows} rows of weights, more than the weight buffer's "
                    f"{self.weight_words} words; give it at least {rows}")
            groups = min(groups, self.weight_words // rows)
        step = groups * self.lanes
        return tuple((c, min(c + step, channels)) for c in range(0, channels, step))

    def _has_current(self, pop: QPopulation) -> bool:
        """A GN population fed by the image keeps its input current (bias + W·x, computed
        once per tile) in the current memory; without ``keep_current`` its input stage
        runs again in every step, straight into the membranes."""
        return (self.keep_current and pop.kind == "gn"
                and any(q.source == INPUT for q in pop.projections))

    def _replays(self, pop: QPopulation) -> bool:
        return (not self.keep_current and pop.kind == "gn"
                and any(q.source == INPUT for q in pop.projections))

    # -- planes ---------------------------------------------------------------------------
    def plane_words_total(self) -> int:
        """Words the placed planes span (the plane memory's depth on chip)."""
        return max((r.base + r.words for r in self.regions if r.memory == "planes"),
                   default=0)

    def _plane_words(self, name: str) -> int:
        """Words of one step's plane of population ``name``: positions × lane groups."""
        pop = self.net.population(name)
        if pop.kind == "readout":
            return 0
        channels, positions = _channels(pop.shape)
        return positions * math.ceil(channels / self.lanes)

    def _place_planes(self) -> dict[str, Region]:
        """Every population's planes, placed first fit by liveness: they live from the
        population that writes them to the last population that reads them."""
        net = self.net
        order = {p.name: i for i, p in enumerate(net.populations)}
        last = {p.name: order[p.name] for p in net.populations}
        for p in net.populations:
            for q in p.projections:
                if q.source != INPUT:
                    last[q.source] = max(last[q.source], order[p.name])
        live: list[tuple[int, int, Region]] = []  # (first, last, region)
        placed: dict[str, Region] = {}
        for pop in net.populations:
            if pop.kind == "readout":
                continue
            name, first = pop.name, order[pop.name]
            words = pop.steps_out * self._plane_words(name)
            busy = sorted((r.base, r.base + r.words) for a, b, r in live
                          if a <= last[name] and first <= b)
            base = 0
            for lo, hi in busy:
                if base + words <= lo:
                    break
                base = max(base, hi)
            region = Region("planes", name, base, words,
                            pop.size * count_bits(pop) * pop.steps_out)
            live.append((first, last[name], region))
            placed[name] = region
            self.regions.append(region)
        return placed

    # -- the layer program ----------------------------------------------------------------
    def _tile_descriptors(self) -> list[TileDescriptor]:
        net, out = self.net, []
        cos = net.cos_steps if net.method == "cos" else 0
        weight_addr = 0  # (external: the next tile's image, in weight buffer words)
        for layer in self.layers:
            pop = net.population(layer.population)
            channels, height, width = _geometry(pop.shape)
            for c0, c1 in layer.tiles:
                groups = math.ceil((c1 - c0) / self.lanes)
                # (external: a tile's rows are its own lanes, back to back from field 0)
                scale = groups * self.lanes if self.external else 1
                records = []
                for q in layer.projections:
                    c, h, w = _geometry(q.source_shape)
                    records.append(ProjectionRecord(
                        int(q.source == INPUT), int(q.kind == "conv"), c, h, w,
                        q.source_plane, 0 if q.source == INPUT else
                        self._plane_words(q.source), q.kernel, q.stride, q.padding,
                        q.weight_field * scale, q.weight_shift, q.pool))
                words = sum(q.rows for q in layer.projections) * groups \
                    if self.external else 0
                out.append(TileDescriptor(
                    KINDS.index(pop.kind), pop.threshold, pop.group_size, pop.v0,
                    pop.steps_in, pop.steps_out, cos if pop.kind != "ilif" else 0,
                    channels, height, width, c0, groups,
                    layer.bias_word, int(layer.bias_per_channel), max(layer.plane, 0),
                    layer.plane_words, int(self._has_current(pop)), len(records), last=0,
                    weight_addr=weight_addr if self.external else 0, weight_words=words,
                    records=tuple(records)))
                weight_addr += words
        out[-1] = TileDescriptor(**{**_header_values(out[-1]), "last": 1,
                                    "records": out[-1].records})
        return out

    def program_fields(self) -> dict[str, tuple[int, bool]]:
        """Field name → (bits, signed) of the program's header and projection records:
        each as wide as this network's largest value needs."""
        values: dict[str, list[int]] = {}
        for t in self.tiles:
            for name, v in _header_values(t).items():
                values.setdefault(name, []).append(v)
            for r in t.records:
                for f in fields(r):
                    values.setdefault(f.name, []).append(getattr(r, f.name))
        out = {}
        for name, vs in values.items():
            signed = name in _SIGNED
            lo, hi = min(vs), max(vs)
            bits = max(1, hi.bit_length(), (~lo).bit_length() if lo < 0 else 0)
            out[name] = (bits + 1 if signed else bits, signed)
        return out

    def program_words(self) -> list[int]:
        """The layer program: each tile's header, then its projection records, each record
        starting at a word boundary."""
        spec, words = self.program_fields(), []
        for t in self.tiles:
            words += _pack([(_header_values(t)[n], *spec[n]) for n in _HEADER])
            for r in t.records:
                words += _pack([(getattr(r, n), *spec[n]) for n in _PROJECTION])
        return words

    # -- external memory (SDRAM) ----------------------------------------------------------
    @staticmethod
    def rows_per_group(net: QNet) -> dict[str, int]:
        """External: each population's weight rows, the buffer words one lane group of its
        output channels takes (the smallest weight buffer that runs it has the most)."""
        return {name: sum(rows) for name, rows in _pools_and_rows(net)[1].items()}

    @property
    def weight_word_sdram(self) -> int:
        """SDRAM words (16 bits) a word of P weights takes: a power of two (the rest of
        its bits zero), so that a buffer word's address is a shift of its index."""
        return _pow2_words(self.lanes * self.weight_bits)

    @property
    def plane_word_sdram(self) -> int:
        """SDRAM words a plane word (P counts) takes, a power of two."""
        return _pow2_words(self.lanes * self.plane_bits)

    def _place_sdram(self) -> None:
        """The SDRAM's map: the tiles' weight images from word 0, then the planes (from a
        row's start)."""
        weights = sum(t.weight_words for t in self.tiles) * self.weight_word_sdram
        plane_base = -(-weights // SDRAM_ROW) * SDRAM_ROW
        self.sdram = {
            "weights": Region("sdram", "weights", 0, weights,
                              sum(r.bits_used for r in self._weight_regions())),
            "planes": Region("sdram", "planes", plane_base,
                             self.plane_words_total() * self.plane_word_sdram,
                             sum(r.bits_used for r in self.regions if r.memory == "planes"))}

    def _weight_regions(self):
        for layer in self.layers:
            for i, q in enumerate(layer.projections):
                yield Region("weights", f"{layer.population}.{i}", 0, 0,
                             q.weights * q.weight_bits)

    @property
    def sdram_words(self) -> int:
        """The SDRAM words the plan uses (16 bits each; 0 on chip)."""
        return max((r.base + r.words for r in self.sdram.values()), default=0)

    def tile_weights(self, k: int) -> np.ndarray:
        """External: tile ``k``'s weight image as its buffer holds it, [weight_words, P]
        fields (weight >> its shift): for each projection, each row's fields of the
        tile's output channels, a word per lane group (channels past the population's:
        0)."""
        if not self.external:
            raise ParameterError("tile_weights is the external-memory layout: "
                                 "plan with external=True")
        tile = self.tiles[k]
        layer = [layer for layer in self.layers for _ in layer.tiles][k]
        pop = self.net.population(layer.population)
        lanes = tile.tile_groups * self.lanes
        out = np.zeros((tile.weight_words, self.lanes), dtype=np.int64)
        for desc, q in zip(layer.projections, pop.projections, strict=True):
            rows = _weight_rows(q, desc)[:, tile.c0:tile.c0 + lanes]  # [rows, ≤ lanes]
            block = np.zeros((desc.rows, lanes), dtype=np.int64)
            block[:, :rows.shape[1]] = rows
            first = desc.weight_field * tile.tile_groups
            out[first:first + desc.rows * tile.tile_groups] = block.reshape(-1, self.lanes)
        return out

    def sdram_image(self) -> np.ndarray:
        """External: the SDRAM's initial words (uint16) up to the end of the weights: each
        tile's weight image, a buffer word as ``weight_word_sdram`` words, its lowest bits
        first (field l in bits l·b .. of the word)."""
        if not self.external:
            raise ParameterError("sdram_image is the external-memory layout: plan with "
                                 "external=True")
        if getattr(self, "_sdram_image", None) is None:  # (the same for every copy)
            n = self.weight_word_sdram
            out = np.zeros(self.sdram["weights"].words, dtype=np.uint16)
            for k, tile in enumerate(self.tiles):
                if tile.weight_words:
                    at = tile.weight_addr * n
                    out[at:at + tile.weight_words * n] = _sdram_words(
                        self.tile_weights(k), self.weight_bits, n)
            self._sdram_image = out
        return self._sdram_image.copy()

    def transfers(self) -> dict[str, int]:
        """External: SDRAM words (16 bits) moved per sample, the same for every sample:
        ``weights`` (every tile's weight image, read once before it runs), ``plane_reads``
        (every word of every plane scan) and ``plane_writes`` (every word every sweep
        writes); on chip, all 0."""
        if not self.external:
            return {"weights": 0, "plane_reads": 0, "plane_writes": 0}
        weights = sum(t.weight_words for t in self.tiles) * self.weight_word_sdram
        reads = writes = 0
        for layer in self.layers:
            pop = self.net.population(layer.population)
            for c0, c1 in layer.tiles:
                for q in layer.projections:
                    if q.source != INPUT:
                        reads += pop.steps_in * self._plane_words(q.source)
                if pop.kind != "readout":
                    _, positions = _channels(pop.shape)
                    writes += pop.steps_out * positions * math.ceil((c1 - c0) / self.lanes)
        return {"weights": weights, "plane_reads": reads * self.plane_word_sdram,
                "plane_writes": writes * self.plane_word_sdram}

    # -- memory images --------------------------------------------------------------------
    def weight_fields(self) -> np.ndarray:
        """Every weight as stored (weight >> its shift), in field order: a dense row per
        source neuron in plane order ((y·W + x)·C + c), a convolution's per tap; a
        projection with a pooling folded in (``pool_factor``) keeps each weight once, its
        rows those of the pooled grid."""
        if self.external:
            raise ParameterError("with external=True the weights are laid out by tile: "
                                 "tile_weights, sdram_image")
        out = np.zeros(self.weight_field_count, dtype=np.int64)
        for layer, pop in zip(self.layers, self.net.populations, strict=True):
            for desc, q in zip(layer.projections, pop.projections, strict=True):
                rows = _weight_rows(q, desc)
                out[desc.weight_field:desc.weight_field + desc.weights] = rows.reshape(-1)
        return out

    def bias_words(self) -> np.ndarray:
        """[words, P] every bias the processor adds (``widths.bias_values``: a rate
        readout's T·B, an ILIF's B + V0), laid out like the membranes: population p's lane
        group g (of channels g·P ..) at word ``bias_word + g``, or for one bias per neuron
        at ``bias_word + position·G + g``; padding lanes 0."""
        out = np.zeros((self.memories["biases"][1], self.lanes), dtype=np.int64)
        for layer, pop in zip(self.layers, self.net.populations, strict=True):
            channels, positions = _channels(pop.shape)
            groups = math.ceil(channels / self.lanes)
            b = np.asarray(bias_values(self.net, pop), dtype=np.int64).reshape(channels,
                                                                               positions)
            if layer.bias_per_channel:
                b = b[:, :1]
            padded = np.zeros((groups * self.lanes, b.shape[1]), dtype=np.int64)
            padded[:channels] = b
            rows = padded.T.reshape(-1, self.lanes)  # (position, group) order
            out[layer.bias_word:layer.bias_word + len(rows)] = rows
        return out

    def memory_words(self, name: str) -> list[int]:
        """The initial words of the weight, bias or program memory, P fields a word (field
        l in bits l·b ..), two's complement (the program: ``program_words``)."""
        if name == "program":
            return self.program_words()
        if name == "weights":
            values, bits = self.weight_fields(), self.weight_bits
        elif name == "biases":
            values, bits = self.bias_words().reshape(-1), self.bias_bits
        else:
            raise ParameterError(f"memory {name!r} has no initial image (weights, biases, "
                                 "program)")
        return _words(values, bits, self.lanes)

    def weight_stores(self) -> list:
        """The weight memory as run-time stores (``hdl.store``, in link order): its even
        words, then its odd ones (the processor's two banks), each word P fields of the
        weight bits."""
        from .plan import StoreSpec
        P, wbits = self.lanes, self.weight_bits
        return [StoreSpec("processor", bank, f"weights, {which} words", P, wbits,
                          [lane_fields(w, wbits, P) for w in words])
                for (bank, which), words in zip(((0, "even"), (1, "odd")), self.bank_words(),
                                                strict=True)]

    def bank_words(self) -> tuple[list[int], list[int]]:
        """The weight banks' packed words (``memory_words``): the even words of the weight
        image and a zero word after it, then the odd ones."""
        words = self.memory_words("weights") + [0]
        return words[0::2], words[1::2]

    def weight_slice_spans(self) -> list[tuple[int, int]]:
        """(first bit, bits) of each slice of a weight word under ``weight_slices`` (the
        last one the rest; one span, the whole word, without slices)."""
        width = self.lanes * self.weight_bits
        step = self.weight_slices or width
        return [(lo, min(step, width - lo)) for lo in range(0, width, step)]

    def arguments(self) -> dict:
        """``lanes``, ``membrane_words`` (as asked), ``keep_current``, ``loadable``,
        ``rule_units``, ``weight_slices`` (and with external memory ``external``,
        ``weight_words``): ``SerialPlan(net, **plan.arguments())`` makes this plan
        again."""
        args = {"lanes": self.lanes, "membrane_words": self.membrane_words,
                "keep_current": self.keep_current, "loadable": self.loadable,
                "rule_units": self.rule_units, "weight_slices": self.weight_slices}
        if self.external:  # (on-chip plans' arguments as before: old reports match)
            args.update(external=True, weight_words=self.weight_words)
        return args

    @property
    def bank_depth(self) -> int:
        """Words of the deeper weight bank (the even one: the image's words and a zero
        word after them, split even and odd; external: the one weight buffer's)."""
        if self.external:
            return max(1, self.memories["weights"][1])
        return -(-(self.memories["weights"][1] + 1) // 2)

    def slices_for(self, modes) -> int:
        """The ``weight_slices`` that make each slice of a weight bank one block RAM of a
        device with block ``modes`` ((depth, width) configurations), the fewest blocks
        (the widest mode as deep as a bank); 0 when no mode is that deep, or when one
        block already holds a whole word."""
        width, depth = self.lanes * self.weight_bits, self.bank_depth
        deep = [w for d, w in modes if d >= depth]
        if not deep or max(deep) >= width:
            return 0
        return max(deep)

    def with_weight_slices(self, bits: int) -> SerialPlan:
        """The same plan with its block-RAM weight banks cut into slices of ``bits`` bits
        (0: whole)."""
        _check_slices(bits)
        other = copy.copy(self)
        other.weight_slices = bits
        return other

    def with_loadable(self, loadable: bool) -> SerialPlan:
        """The same plan with its weights loaded at run time (or not)."""
        if not isinstance(loadable, bool):
            raise ParameterError(f"loadable must be True or False, not {loadable!r}")
        other = copy.copy(self)
        other.loadable = loadable
        return other

    @property
    def stores(self) -> list:
        """The stores the host link loads: ``weight_stores`` with ``loadable``, the SDRAM's
        pages (``sdram_stores``) with external memory, else none."""
        if self.external:
            return self.sdram_stores()
        return self.weight_stores() if self.loadable else []

    def sdram_stores(self) -> list:
        """External: the SDRAM's weight image as the link's stores, pages of
        ``SDRAM_PAGE`` 16-bit words (a LOAD frame addresses a page's words; store k is
        SDRAM words k·SDRAM_PAGE ..)."""
        image = self.sdram_image()
        return [SdramPage(k, image[at:at + SDRAM_PAGE])
                for k, at in enumerate(range(0, len(image), SDRAM_PAGE))]

    def sdram_checksum(self) -> int:
        """External: the 64-bit checksum of the weight image the processor computes when it
        reads it back after a COMMIT (``sdram_checksum`` of ``sdram_image``)."""
        return sdram_checksum(self.sdram_image())

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
        """Cycles per sample spent reading words, one a cycle, beyond the engine's work on
        the events (the same for every sample): for every tile, each step's plane of each
        projection's source, and the image's pixels once (without ``keep_current``, once per
        step)."""
        total = 0
        for layer in self.layers:
            pop = self.net.population(layer.population)
            for _ in layer.tiles:
                for q in layer.projections:
                    if q.source == INPUT:
                        runs = pop.steps_in if self._replays(pop) else 1
                        total += runs * math.prod(self.net.input.shape)
                    else:
                        total += pop.steps_in * self._plane_words(q.source)
        return total

    def shared_rule_cycles(self) -> int:
        """Cycles per sample the fire sweeps spend beyond one a membrane word, as the lanes
        share ``rule_units`` rule units: P/R − 1 more for every word of every sweep (the
        same for every sample; a readout's sweep is counted as its values reported, as
        the golden model does)."""
        extra = self.sweep_cycles - 1
        total = 0
        for t in self.tiles:
            kind = KINDS[t.kind]
            if kind != "readout":
                total += t.height * t.width * t.tile_groups * (
                    t.steps_out if kind == "ilif" else t.steps_in)
        return extra * total

    def image_ops(self, codes, *, bit_planes: bool = False) -> torch.Tensor:
        """[B] operations of the input stages: every non-zero pixel one event, its code the
        count (a product in the lanes' multipliers), times the outputs it reaches and the
        tile's lane groups, in every run (once; without ``keep_current``, once per step of
        a GN layer). ``bit_planes``: as the golden model counts them instead (the dataflow
        engines' input stages), every set bit an event, once."""
        from ..snn.golden import reach

        codes = torch.as_tensor(codes).to(torch.int64)
        total = torch.zeros(codes.shape[0], dtype=torch.int64)
        for layer in self.layers:
            pop = self.net.population(layer.population)
            image = [q for q in pop.projections if q.source == INPUT]
            if not image:
                continue
            groups = sum(math.ceil((c1 - c0) / self.lanes) for c0, c1 in layer.tiles)
            if not bit_planes:
                events, runs = (codes != 0).to(torch.int64), (
                    pop.steps_in if self._replays(pop) else 1)
            else:  # (an ILIF layer's steps are the planes, most significant first)
                bits = range(PIXEL_BITS) if self.net.method != "ilif" else \
                    range(PIXEL_BITS - 1, PIXEL_BITS - 1 - pop.steps_in, -1)
                events, runs = sum(((codes >> b) & 1) for b in bits), 1
            for q in image:
                if q.kind == "conv":
                    r = reach(q, tuple(self.net.input.shape)).to(torch.int64)
                    reached = (events.sum(1) * r).flatten(1).sum(1)
                else:
                    reached = events.flatten(1).sum(1)
                total += runs * reached * groups
        return total

    def ideal_cycles(self, result, codes):
        """[B] ideal cycles per sample of the serial processor for a golden run at this
        plan's lanes (``golden.run(net, codes, lanes=plan.lanes)``) on ``codes``: the
        dataflow engines' work one after another (``ideal_cycles_total``: with tiles of
        whole lane groups the events and sweeps cost the same, tile by tile) with the
        input stages' operations as the processor has them (``image_ops``: an event per
        non-zero pixel, not per set bit, and without ``keep_current`` once per step), plus
        ``scan_cycles`` and ``shared_rule_cycles``; with external memory, plus a cycle for
        every SDRAM word of the tiles' weight images (loaded before each tile runs, a word
        a cycle; the planes' words stream beside the work)."""
        lanes = result.lanes
        if lanes != self.lanes and not (isinstance(lanes, dict)
                                        and set(lanes.values()) == {self.lanes}):
            raise ParameterError(f"the golden run used lanes {lanes!r}; this plan has "
                                 f"{self.lanes}")
        if codes is None or len(codes) != len(result.readout):
            raise ParameterError("the ideal cycles depend on the image: pass the codes "
                                 "the golden run had")
        return (result.ideal_cycles_total - self.image_ops(codes, bit_planes=True)
                + self.image_ops(codes) + self.scan_cycles() + self.shared_rule_cycles()
                + self.transfers()["weights"])

    def cycle_parts(self, result, codes) -> dict[str, torch.Tensor]:
        """Where ``ideal_cycles`` go, [B] each: ``compute`` (the operations: events'
        accumulations, the fire sweeps, a readout's values), ``spikes`` (reading the
        planes and the pixels: ``scan_cycles``) and ``weights`` (loading the tiles'
        weight images from SDRAM; 0 on chip). They add up to ``ideal_cycles``."""
        total = self.ideal_cycles(result, codes)
        scan = torch.full_like(total, self.scan_cycles())
        weights = torch.full_like(total, self.transfers()["weights"])
        return {"compute": total - scan - weights, "spikes": scan, "weights": weights}


def _shapes(net: QNet) -> dict[str, tuple[int, ...]]:
    """The image's and every population's shape, by name."""
    shapes = {INPUT: tuple(int(d) for d in net.input.shape)}
    shapes.update({p.name: tuple(int(d) for d in p.shape) for p in net.populations})
    return shapes


def _pools_and_rows(net: QNet):
    """Each projection's folded pooling (``pool_factor``, by (population, index)) and each
    population's weight rows per projection, the pooling's weights kept once: a source
    neuron's or a tap's output channels each."""
    shapes = _shapes(net)
    pools = {(p.name, i): pool_factor(q, shapes[q.source])
             for p in net.populations for i, q in enumerate(p.projections)}
    rows = {p.name: [int(pooled_weights(q, shapes[q.source], pools[p.name, i]).size)
                     // q.stored.shape[0] for i, q in enumerate(p.projections)]
            for p in net.populations}
    return pools, rows


def _weight_rows(q, desc: ProjectionDescriptor) -> np.ndarray:
    """[rows, outputs] the weights of ``q`` as stored, kept once under its pooling: a dense
    row per source neuron in plane order ((y·W + x)·C + c), a convolution's per tap (c_in,
    ky, kx)."""
    w = pooled_weights(q, desc.source_shape, desc.pool)
    if q.kind == "dense":
        n_out = w.shape[0]
        if q.source != INPUT:  # source rows into plane order
            c, h, wd = w.shape[1:]
            w = w.reshape(n_out, c, h * wd).transpose(0, 2, 1).reshape(n_out, -1)
        return w.T
    return w.transpose(1, 2, 3, 0).reshape(-1, w.shape[0])


def _sdram_words(fields: np.ndarray, bits: int, n: int) -> np.ndarray:
    """[words, P] fields of ``bits`` bits (two's complement) → each word as ``n`` 16-bit
    SDRAM words, field l in bits l·bits .. of the word, its lowest 16 bits first."""
    words, lanes = fields.shape
    ones = (fields[..., None] >> np.arange(bits)) & 1  # [words, P, bits], bit 0 first
    flat = np.zeros((words, n * SDRAM_WORD), dtype=np.uint8)
    flat[:, :lanes * bits] = ones.reshape(words, lanes * bits)
    return np.packbits(flat, axis=1, bitorder="little").view("<u2").reshape(-1)


SDRAM_PAGE = 1 << 16  # words of the SDRAM a link store holds (its address: 16 bits)


def sdram_checksum(words) -> int:
    """A checksum of 16-bit ``words`` in order, as the processor computes it reading them
    back: two 32-bit sums, a = Σ w and b = Σ a (each after adding the next word, modulo
    2^32; b sees each word's position), as b·2^32 + a."""
    w = np.asarray(words, dtype=np.uint64)
    a = np.cumsum(w, dtype=np.uint64) & 0xFFFFFFFF
    b = int(a.sum(dtype=np.uint64)) & 0xFFFFFFFF
    return (b << 32) | (int(a[-1]) if len(a) else 0)


class SdramPage:
    """A page of the SDRAM's weight image as a link store (the interface of
    ``hdl.plan.StoreSpec``): ``words`` 16-bit words, one lane of 16 bits each."""

    lanes, weight_bits, bytes_per_word, width = 1, 16, 2, 16

    def __init__(self, page: int, words: np.ndarray):
        self.page, self.image = page, np.asarray(words, dtype=np.uint16)
        self.population, self.projection = "sdram", page
        self.source = f"SDRAM words {page * SDRAM_PAGE} .. {page * SDRAM_PAGE + len(words) - 1}"

    @property
    def words(self) -> np.ndarray:
        return self.image.reshape(-1, 1)

    @property
    def depth(self) -> int:
        return max(1, len(self.image))

    def describe(self) -> dict:
        return {"population": self.population, "projection": self.projection,
                "source": self.source, "lanes": 1, "weight_bits": 16, "depth": self.depth,
                "bytes_per_word": 2}

    def encode(self) -> bytes:
        return self.image.astype("<u2").tobytes()


SDRAM_WORD = 16  # bits of an SDRAM word (the ULX3S's chip: 16 data lines)
SDRAM_ROW = 512  # words of an SDRAM row (its columns): the planes start at a row's start


def _pow2_words(bits: int) -> int:
    words = -(-bits // SDRAM_WORD)
    return 1 << (words - 1).bit_length()


def _header_values(t: TileDescriptor) -> dict[str, int]:
    return {n: getattr(t, n) for n in _HEADER}


def _pack(values) -> list[int]:
    """(value, bits, signed) fields from bit 0 up → PROGRAM_WIDTH-bit words."""
    string, at = 0, 0
    for value, bits, signed in values:
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise ParameterError(f"program field value {value} does not fit {bits} bits")
        string |= (value & ((1 << bits) - 1)) << at
        at += bits
    words = max(1, -(-at // PROGRAM_WIDTH))
    return [(string >> (k * PROGRAM_WIDTH)) & ((1 << PROGRAM_WIDTH) - 1) for k in range(words)]


def _unpack(words, at: int, spec, names) -> tuple[dict[str, int], int]:
    """The fields ``names`` of the record starting at word ``at`` → (values, next word)."""
    total = sum(spec[n][0] for n in names)
    count = max(1, -(-total // PROGRAM_WIDTH))
    if at + count > len(words):
        raise ParameterError(f"the layer program ends inside a record at word {at}")
    string = sum(int(w) << (k * PROGRAM_WIDTH) for k, w in enumerate(words[at:at + count]))
    out, bit = {}, 0
    for n in names:
        bits, signed = spec[n]
        v = (string >> bit) & ((1 << bits) - 1)
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out[n] = v
        bit += bits
    return out, at + count


def descriptor_words(spec, tile: TileDescriptor) -> int:
    """Words of ``tile``'s descriptor in a program with field widths ``spec``."""
    def words(names):
        return max(1, -(-sum(spec[n][0] for n in names) // PROGRAM_WIDTH))

    return words(_HEADER) + len(tile.records) * words(_PROJECTION)


def decode_program(words, spec) -> list[TileDescriptor]:
    """The tiles of a layer program (``SerialPlan.program_words``) with its field widths
    (``SerialPlan.program_fields``), up to the tile marked last."""
    tiles, at = [], 0
    while True:
        head, at = _unpack(words, at, spec, _HEADER)
        records = []
        for _ in range(head["projections"]):
            rec, at = _unpack(words, at, spec, _PROJECTION)
            records.append(ProjectionRecord(**rec))
        tiles.append(TileDescriptor(**head, records=tuple(records)))
        if head["last"]:
            return tiles


def _words(values: np.ndarray, bits: int, lanes: int) -> list[int]:
    mask = (1 << bits) - 1
    out = []
    for start in range(0, len(values), lanes):
        word = 0
        for lane, v in enumerate(values[start:start + lanes]):
            word |= (int(v) & mask) << (lane * bits)
        out.append(word)
    return out


def _blocks(w: np.ndarray, f: int, h: int, wd: int) -> np.ndarray:
    """``w`` [.., h, wd] rebuilt from its every f-th row and column, each repeated f×f."""
    top = w[..., ::f, ::f]
    return np.repeat(np.repeat(top, f, axis=-2), f, axis=-1)[..., :h, :wd]


def pool_factor(q, source_shape) -> int:
    """log2 of the largest power of two f for which ``q``'s weights hold an f×f average
    pooling of its source folded in: every weight repeated over aligned f×f blocks (a
    convolution's kernel taps, with kernel, stride and padding multiples of f; a dense
    projection's source positions, ``source_shape`` [C, H, W]). Then an event at (y, x) is
    one at (y >> log2 f, x >> log2 f) of a map f times smaller, under the kernel, stride
    and padding divided by f, and each weight is stored once. 0 for the image's
    projections and for any other."""
    if q.source == INPUT:
        return 0
    w = np.asarray(q.stored)
    if q.kind == "conv":  # (f up to the kernel)
        h = wd = limit = q.kernel
        steps = (q.kernel, q.stride, q.padding)
    else:  # (f up to the first that leaves one position: any larger is the same)
        c, h, wd = _geometry(source_shape)
        w = w.reshape(w.shape[0], c, h, wd)
        limit, steps = 2 * max(h, wd) - 1, ()
    pool = 0
    while (f := 2 << pool) <= limit and not any(v % f for v in steps) \
            and np.array_equal(_blocks(w, f, h, wd), w):
        pool += 1
    return pool


def pooled_weights(q, source_shape, pool: int) -> np.ndarray:
    """``q``'s weights as stored (``QProjection.stored``), each kept once under its pooling
    (``pool_factor``): a convolution's [C_out, C_in, K/f, K/f]; a dense projection's from a
    population [N, C, ⌈H/f⌉, ⌈W/f⌉] (a vector source: [N, C, 1, 1]); from the image, as
    stored."""
    w = np.asarray(q.stored, dtype=np.int64)
    f = 1 << pool
    if q.kind == "conv":
        return w[..., ::f, ::f]
    if q.source == INPUT:
        return w
    c, h, wd = _geometry(source_shape)
    return w.reshape(w.shape[0], c, h, wd)[..., ::f, ::f]


def _check_slices(bits) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 0:
        raise ParameterError(f"weight_slices must be a number of bits (0: whole words), "
                             f"not {bits!r}")


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
