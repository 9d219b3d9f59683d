"""Stream signatures between engines.

A spike event names one neuron of the source population and its spike count (1..τ; 1
for an ILIF bit-plane). Only non-zero counts travel. ``end`` marks the end of a step:
an ``end`` beat carries no spike. Neurons of a spatial population ``[C, H, W]`` are named
by their coordinates ``(c, y, x)``, so that a convolution needs no division to find the
positions an event reaches; neurons of a vector population ``[N]`` by their ``index``.

Pixels enter the first engine as a stream of 8-bit codes in C order (c, y, x), one
sample after another. The readout engine reports ``(index, value)`` beats in index order;
the last beat of a sample has ``last`` set and carries the ``argmax`` (lowest index wins).
"""

from __future__ import annotations

from amaranth.hdl import Const, signed, unsigned
from amaranth.lib import data, stream

from ..snn.qnet import PIXEL_BITS


def bits_for(n: int) -> int:
    """Bits of an unsigned integer that holds 0..n."""
    return max(1, int(n).bit_length())


class EventLayout(data.StructLayout):
    """Payload of a spike event from a population of ``shape`` with counts up to
    ``max_count``."""

    def __init__(self, shape: tuple[int, ...], max_count: int):
        shape = tuple(shape)
        fields = {}
        if len(shape) == 3:
            c, h, w = shape
            fields.update(c=unsigned(bits_for(c - 1)), y=unsigned(bits_for(h - 1)),
                          x=unsigned(bits_for(w - 1)))
        elif len(shape) == 1:
            fields["index"] = unsigned(bits_for(shape[0] - 1))
        else:
            raise ValueError(f"Population shape must be (N,) or (C, H, W), not {shape!r}")
        fields["count"] = unsigned(bits_for(max_count))
        fields["end"] = unsigned(1)
        super().__init__(fields)
        self.population_shape = shape
        self.max_count = max_count


def event_signature(shape: tuple[int, ...], max_count: int) -> stream.Signature:
    return stream.Signature(EventLayout(shape, max_count))




def pixel_signature() -> stream.Signature:
    return stream.Signature(unsigned(PIXEL_BITS))


class ReadoutLayout(data.StructLayout):
    def __init__(self, classes: int, value_bits: int):
        super().__init__({
            "index": unsigned(bits_for(classes - 1)),
            "value": signed(value_bits),
            "argmax": unsigned(bits_for(classes - 1)),
            "last": unsigned(1),
        })


def readout_signature(classes: int, value_bits: int) -> stream.Signature:
    return stream.Signature(ReadoutLayout(classes, value_bits))


def const_mul(value, factor: int):
    """``value × factor`` as a sum of shifted copies of ``value`` (one per set bit of the
    constant): adders, which stay in the fabric, where Yosys would spend a slow DSP block
    on a product with a constant."""
    if factor == 0:
        return Const(0, 1)
    return sum(value << b for b in range(factor.bit_length()) if (factor >> b) & 1)
