"""A model of the layer-serial processor that runs the layer program from its memory images
(docs/serial.md): what the RTL is to do, operation by operation, in plain Python.

``SerialMachine(plan)`` knows the processor's parameters (lanes P, the field widths of
its memories) and reads everything else from memory, as the hardware will: the tile
descriptors decoded from the program words, the weights and biases unpacked from their
words (two's complement fields, sign-extended), the pixels from the pixel memory, and the
spike planes from the plane memory it writes itself. A tile's membranes are its lane
groups, P lanes each; lanes past the population's channels (the last group's padding)
read whatever fields follow, as the hardware's weight reader does, and their counts are
written into the plane and never read back (the scanner drops them).

It counts what the hardware spends: ``descriptor`` words read, ``scan`` (plane words and
pixels read), ``ops`` (accumulations and sweep operations issued, and a readout's values
reported; a fire sweep's word counts ``plan.sweep_cycles`` times, once for each group
of lanes that shares the rule units). The golden model (``hwsnn.snn.golden``) is the
reference for its results; ``SerialPlan.ideal_cycles`` for its ``scan + ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .serial import KINDS, SerialPlan, TileDescriptor, decode_program, descriptor_words

__all__ = ["SerialMachine", "SerialRun"]


@dataclass
class SerialRun:
    """One batch through the machine."""

    readout: torch.Tensor  # [B, classes]
    outputs: dict[str, torch.Tensor]  # population → [B, steps_out, *shape] counts written
    descriptor: torch.Tensor  # [B] program words read
    scan: torch.Tensor  # [B] plane words and pixels read
    ops: torch.Tensor  # [B] operations issued (and readout values reported)
    # [B] SDRAM words moved (external memory; else 0): weights loaded, plane words read
    # and written, each as the SDRAM words they take
    sdram: dict[str, torch.Tensor] | None = None


def _fields(words, bits: int, lanes: int, extra: int) -> np.ndarray:
    """Sign-extended fields of ``words`` (P a word), with ``extra`` zero fields after."""
    mask, half = (1 << bits) - 1, 1 << (bits - 1)
    out = np.zeros(len(words) * lanes + extra, dtype=np.int64)
    for k, word in enumerate(words):
        for lane in range(lanes):
            v = (int(word) >> (lane * bits)) & mask
            out[k * lanes + lane] = v - (1 << bits) if v >= half else v
    return out


class SerialMachine:
    def __init__(self, plan: SerialPlan):
        self.plan = plan
        self.lanes = P = plan.lanes
        self.sweep_cycles = plan.sweep_cycles  # per membrane word (the shared rule units)
        self.tiles = decode_program(plan.program_words(), plan.program_fields())
        widest = max(t.tile_groups for t in self.tiles) * P
        self.external = plan.external
        if self.external:  # (each tile's weights are loaded from the SDRAM image)
            self.sdram = plan.sdram_image()
            self.weights = None
        else:
            self.weights = _fields(plan.memory_words("weights"), plan.weight_bits, P, widest)
        self.biases = _fields(plan.memory_words("biases"), plan.bias_bits, P, 0).reshape(-1, P)
        self.plane_depth = plan.plane_words_total()
        self.count_limit = 1 << plan.plane_bits
        self.names = [layer.population for layer in plan.layers for _ in layer.tiles]
        self.header_words = {}  # (the program's words per tile, for the descriptor count)
        spec = plan.program_fields()
        for k, t in enumerate(self.tiles):
            self.header_words[k] = descriptor_words(spec, t)

    def run(self, codes: torch.Tensor) -> SerialRun:
        codes = torch.as_tensor(codes).to(torch.int64)
        net = self.plan.net
        outs = {p.name: [] for p in net.populations if p.kind != "readout"}
        readouts, counters = [], []
        for sample in codes:
            readout, recorded, counts = self._sample(sample.reshape(-1).numpy())
            readouts.append(readout)
            counters.append(counts)
            for name in outs:
                outs[name].append(recorded[name])
        cnt = torch.tensor(counters, dtype=torch.int64).reshape(len(codes), 6)
        return SerialRun(
            readout=torch.tensor(np.array(readouts), dtype=torch.int64).reshape(len(codes), -1),
            outputs={k: torch.tensor(np.array(v), dtype=torch.int64) for k, v in outs.items()},
            descriptor=cnt[:, 0], scan=cnt[:, 1], ops=cnt[:, 2],
            sdram={"weights": cnt[:, 3], "plane_reads": cnt[:, 4], "plane_writes": cnt[:, 5]})

    # -- one sample -------------------------------------------------------------------------
    def _sample(self, pixels: np.ndarray):
        net = self.plan.net
        self.pixels = pixels
        self.planes = np.zeros((self.plane_depth, self.lanes), dtype=np.int64)
        self.count = [0] * 6  # descriptor, scan, ops, SDRAM: weights, plane reads, writes
        recorded = {p.name: np.zeros((p.steps_out, *p.shape), dtype=np.int64)
                    for p in net.populations if p.kind != "readout"}
        readout = np.zeros(net.output.size, dtype=np.int64)
        for k, (tile, name) in enumerate(zip(self.tiles, self.names, strict=True)):
            self.count[0] += self.header_words[k]
            result = self._tile(tile, recorded.get(name))
            if result is not None:  # (a readout's tile: the values of its channels)
                readout[tile.c0:tile.c0 + len(result)] = result
        return readout, recorded, list(self.count)

    def _tile(self, d: TileDescriptor, recorded):
        P, G = self.lanes, d.tile_groups
        if self.external:
            self._load_weights(d)
        kind = KINDS[d.kind]
        positions = d.height * d.width
        lanes = G * P
        # (V0 for GN and readouts; an ILIF adds its offset after accumulating instead)
        v = np.full((positions, lanes), d.v0 if kind != "ilif" else 0, dtype=np.int64)
        bias = self._bias(d, positions, lanes)
        current = bias.copy() if d.has_current else None
        image = [r for r in d.records if r.source_is_image]
        # The input stage: the image's non-zero pixels, once per tile: into the current
        # (GN), or into V as an ILIF's (or a readout's) Horner sum of the 8 bit-planes.
        replay = KINDS[d.kind] == "gn" and self.plan.net.method != "ilif" \
            and not d.has_current
        for r in image:
            if not replay:
                self._pixels(d, r, current if d.has_current else v)
        if self.plan.net.method == "ilif":
            return self._ilif(d, v, bias, recorded)
        return self._rate(d, v, bias, current, recorded, image if replay else ())

    def _rate(self, d, v, bias, current, recorded, replay):
        kind, steps = KINDS[d.kind], d.steps_in
        positions = d.height * d.width
        stats = None
        for t in range(steps):
            for r in d.records:
                if not r.source_is_image:
                    self._plane(d, r, t, 0, v)
            for r in replay:  # (no current memory: the input stage again, every step)
                self._pixels(d, r, v)
            if kind == "readout":  # (its bias field is T·B, added by the last sweep)
                if t == steps - 1:
                    values = (v + bias)[0, :self._real(d)].copy()
                    self.count[2] += len(values)  # the values, one a cycle
                    return values
                if t == d.cos_steps - 1:  # the pre-simulation's sweep clears the readout
                    self.count[2] += self._real(d)  # (counted as a report, as golden does)
                    v[:] = 0
                continue
            v += current if current is not None else bias
            s = np.clip(np.floor_divide(v, d.threshold), 0, d.group_size)
            v -= s * d.threshold
            self.count[2] += positions * d.tile_groups * self.sweep_cycles
            self._write(d, t, s, recorded)
            if d.cos_steps and t < d.cos_steps:
                stats = _track(stats, s, v)
                if t == d.cos_steps - 1:
                    v[:] = _calibrated(stats, v, d)
        return None

    def _ilif(self, d, v, bias, recorded):
        kind = KINDS[d.kind]
        positions = d.height * d.width
        for t in range(d.steps_in):
            for r in d.records:
                if not r.source_is_image:
                    self._plane(d, r, t, d.steps_in - 1 - t, v)
        v += bias  # (bias + V0)
        if kind == "readout":
            values = v[0, :self._real(d)].copy()
            self.count[2] += len(values)
            return values
        top = 2**d.steps_out * d.threshold - 1
        v = np.minimum(v, top)
        for k in range(d.steps_out):
            weight = d.threshold << (d.steps_out - 1 - k)
            fire = (v >= weight).astype(np.int64)
            v -= fire * weight
            self.count[2] += positions * d.tile_groups * self.sweep_cycles
            self._write(d, k, fire, recorded)
        return None

    def _real(self, d: TileDescriptor) -> int:
        """The tile's channels that exist (its last lane group may run past them)."""
        return min(d.channels - d.c0, d.tile_groups * self.lanes)

    # -- memories ---------------------------------------------------------------------------
    def _bias(self, d, positions, lanes):
        """The tile's biases, a word per lane group (and position, one per neuron)."""
        G, g0 = d.tile_groups, d.c0 // self.lanes
        groups = -(-d.channels // self.lanes)
        rows = [d.bias_word + (0 if d.bias_per_channel else p * groups) + g0
                for p in range(positions)]
        return np.stack([self.biases[r:r + G].reshape(-1) for r in rows])

    def _load_weights(self, d):
        """External: the tile's weight image, read from the SDRAM into the weight buffer
        (its fields, from field 0)."""
        n, P = self.plan.weight_word_sdram, self.lanes
        at = d.weight_addr * n
        raw = self.sdram[at:at + d.weight_words * n].astype(np.int64)
        words = [sum(int(raw[j * n + i]) << (16 * i) for i in range(n))
                 for j in range(d.weight_words)]
        self.weights = _fields(words, self.plan.weight_bits, P, 0)
        self.count[3] += d.weight_words * n

    def _row(self, d, r, row):
        if self.external:  # (a tile's rows are its own lanes, from field 0)
            first = r.weight_field + row * d.tile_groups * self.lanes
        else:
            first = r.weight_field + row * d.channels + d.c0
        return self.weights[first:first + d.tile_groups * self.lanes] << r.weight_shift

    def _event(self, d, r, target, c, y, x, row, count, shift):
        """One event: its operations, ⌈tile channels / P⌉ per output position reached."""
        G = d.tile_groups
        if not r.conv:
            target[0] += (count * self._row(d, r, row)) << shift
            self.count[2] += G
            return
        k, s, pad = r.kernel, r.stride, r.padding
        for oy in range(max(0, -(-(y + pad - k + 1) // s)), min(d.height - 1, (y + pad) // s) + 1):
            for ox in range(max(0, -(-(x + pad - k + 1) // s)),
                            min(d.width - 1, (x + pad) // s) + 1):
                tap = (c * k + (y + pad - oy * s)) * k + (x + pad - ox * s)
                target[oy * d.width + ox] += (count * self._row(d, r, tap)) << shift
                self.count[2] += G

    def _pixels(self, d, r, target):
        """The input stage: every pixel read once, each non-zero one an event W · code."""
        hw = r.src_height * r.src_width
        for j in range(r.src_channels * hw):
            self.count[1] += 1
            code = int(self.pixels[j])
            if code:
                c, rest = divmod(j, hw)
                y, x = divmod(rest, r.src_width)
                self._event(d, r, target, c, y, x, j, code, 0)

    def _plane(self, d, r, t, shift, target):
        """Scan step t's plane of the source: every word read once, every non-zero count of
        a real channel an event, in (y, x, c) order; with a pooling folded into the weights
        (``r.pool``), at its position and row of the pooled map."""
        groups = -(-r.src_channels // self.lanes)
        words = r.src_height * r.src_width * groups
        base = r.source_plane + t * words
        pooled_width = -(-r.src_width >> r.pool)
        self.count[4] += words * self.plan.plane_word_sdram if self.external else 0
        for a in range(words):
            self.count[1] += 1
            pos, g = divmod(a, groups)
            y, x = divmod(pos, r.src_width)
            y, x = y >> r.pool, x >> r.pool
            for lane in np.nonzero(self.planes[base + a])[0]:
                c = g * self.lanes + int(lane)
                if c < r.src_channels:
                    self._event(d, r, target, c, y, x,
                                (y * pooled_width + x) * r.src_channels + c,
                                int(self.planes[base + a, lane]), shift)

    def _write(self, d, t, counts, recorded):
        """The sweep writes one word per (position, lane group) of step t's plane."""
        P, G = self.lanes, d.tile_groups
        groups = -(-d.channels // P)
        positions = d.height * d.width
        if counts.max(initial=0) >= self.count_limit:
            raise AssertionError(f"a count {counts.max()} does not fit the plane's fields")
        g0 = d.c0 // P
        if self.external:
            self.count[5] += positions * G * self.plan.plane_word_sdram
        for p in range(positions):
            at = d.plane + t * positions * groups + p * groups + g0
            self.planes[at:at + G] = counts[p].reshape(G, P)
        if recorded is not None:
            real = min(d.channels - d.c0, G * P)
            block = counts[:, :real].T.reshape(real, *([d.height, d.width]
                                                        if recorded.ndim == 4 else []))
            if recorded.ndim == 4:
                recorded[t, d.c0:d.c0 + real] = block
            else:
                recorded[t, d.c0:d.c0 + real] = block.reshape(-1)


def _track(stats, s, v):
    """cos: each neuron's statistics over the pre-simulation steps (as the golden model)."""
    big = np.iinfo(np.int64).max
    if stats is None:
        stats = {"n": np.zeros_like(s), "min_fire": np.full_like(v, big),
                 "max_quiet": np.full_like(v, -big), "quiet": np.zeros(v.shape, bool)}
    fired = s > 0
    stats["n"] = stats["n"] + s
    stats["min_fire"] = np.where(fired, np.minimum(stats["min_fire"], v), stats["min_fire"])
    stats["max_quiet"] = np.where(fired, stats["max_quiet"], np.maximum(stats["max_quiet"], v))
    stats["quiet"] = stats["quiet"] | ~fired
    return stats


def _calibrated(stats, v, d):
    """cos: V0 after the pre-simulation (docs/qnet.md)."""
    theta = d.threshold
    down = d.v0 - np.maximum(stats["min_fire"] + 1, theta)
    up_by = np.where(stats["quiet"], theta + 1 - stats["max_quiet"], theta)
    up = d.v0 + np.maximum(up_by, theta)
    return np.where((v < 0) & (stats["n"] > 0), down, np.where(v >= theta, up, d.v0))
