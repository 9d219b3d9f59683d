"""A whole QNet as one pipelined design: one engine per population, wired by the graph.

Every population's spike stream goes through a buffer to each engine that reads it (a
source read by several engines, or twice, feeds all of its buffers at once): a two-entry
register slice (``SkidBuffer``, the default: the source's own output queue is the FIFO),
or with ``fifo_depth`` above 2 a block-RAM FIFO of that depth. Engines run
concurrently on successive steps (rate methods) or successive samples (ILIF). An engine
with several inputs reads step t from each in turn (earliest source first), so every FIFO
that is read after another one holds a whole step of its source's events, which keeps the
pipeline free of deadlock.

Members: ``pixels : In(stream.Signature(8))``, the image codes in C order, sample after
sample; ``o : Out(readout stream)``, every readout value of a sample in index order, the
last with ``argmax``; ``cycles : Out(32)``, clock cycles since reset.

With ``taps=True`` the network also exposes, for every population ``p`` (its name made
an identifier by ``port_name``), ``tap_p : Out(tap signature)``: ``valid`` is high in
every cycle in which ``p`` hands an event (or an end-of-step marker) to its readers, and
``payload`` is that event; and ``work_p : Out(32)``: the cycles ``p``'s engine has spent
on its own work since reset (``LayerEngine.active``). The readout's tap is its output.

With ``loadable`` ((population, projection index) pairs), those projections' weights
live in run-time stores (``hdl.store``, SPRAM on a UP5K) listed in ``stores``
(``plan.StoreSpec``), written through ``load : In(load_signature)`` before inference.
"""

from __future__ import annotations

import math
import re

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..errors import ParameterError
from ..graph import INPUT
from ..qnet import QNet
from .buffers import RegisteredFIFO, SkidBuffer
from .engine import LayerEngine
from .events import pixel_signature, readout_signature
from .plan import mac_eligible, store_specs

DEFAULT_FIFO_DEPTH = 2  # a skid buffer between engines; the engines' output queues buffer
COUNTER_BITS = 32


def port_name(population: str) -> str:
    """A population name as a Verilog/Python identifier (``layer1.0`` → ``layer1_0``)."""
    name = re.sub(r"\W", "_", population)
    return name if name and not name[0].isdigit() else f"p_{name}"


def load_signature(stores) -> wiring.Signature:
    """One byte for the run-time weight stores: store ``sel``, word ``addr``, ``byte``
    index in the word, ``data``; written in the cycle ``en`` is high."""
    depth = max(s.depth for s in stores)
    nbytes = max(s.bytes_per_word for s in stores)
    return wiring.Signature({"en": Out(1), "sel": Out(range(max(2, len(stores)))),
                             "addr": Out(range(max(2, depth))),
                             "byte": Out(range(max(2, nbytes))), "data": Out(8)})


def tap_signature(layout) -> wiring.Signature:
    """A one-way view of an event stream: every transfer, never stalled by the tap."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})


def _reader_depths(net: QNet, plans, fifo_depth: int) -> list[tuple[str, str, int]]:
    """(source, consumer, FIFO depth) of every event input, each consumer's in port order.
    A port read after another one buffers a whole step of its source."""
    out = []
    for p in net.populations:
        for k, pp in enumerate(plans[p.name].event_projections):
            depth = fifo_depth if k == 0 else max(fifo_depth, math.prod(pp.src_shape) + 2)
            out.append((pp.proj.source, p.name, depth))
    return out


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


class Network(wiring.Component):
    """The network of ``net`` with ``lanes`` lanes per engine (an int, or a dict by
    population name), and debug taps when ``taps``. ``input_lanes`` (M > 0) gives the
    populations with a dense projection from the image (group or IF neurons) a
    multiply-accumulate input stage of M lanes (``hdl.inputmac``). ``queue_depth`` sets
    every engine's output queue (lane groups; default: two sweeps' worth): a shallow
    queue saves block RAM, and a sweep waits while it is full."""

    def __init__(self, net: QNet, *, lanes: int | dict[str, int] = 1,
                 fifo_depth: int = DEFAULT_FIFO_DEPTH, taps: bool = False, loadable=(),
                 input_lanes: int = 0, queue_depth: int | None = None):
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise TypeError(f"FIFO depth must be an integer of at least 2, not {fifo_depth!r}")
        self.net = net
        self.fifo_depth = fifo_depth
        lanes_of = lanes if isinstance(lanes, dict) else {}
        self.lanes = {p.name: lanes_of.get(p.name, lanes if isinstance(lanes, int) else 1)
                      for p in net.populations}
        check_input_lanes(net, input_lanes)
        self.input_lanes = input_lanes
        self.stores = store_specs(net, self.lanes, loadable, input_lanes)
        self.engines = {p.name: LayerEngine(net, p.name, lanes=self.lanes[p.name],
                                            loadable=[s.projection for s in self.stores
                                                      if s.population == p.name],
                                            input_lanes=input_lanes,
                                            queue_depth=queue_depth)
                        for p in net.populations}
        self.queue_depth = queue_depth
        out = self.engines[net.output.name]
        members = {
            "pixels": In(pixel_signature()),
            "o": Out(readout_signature(net.output.size, out.plan.vbits)),
            "cycles": Out(COUNTER_BITS),
        }
        if self.stores:
            members["load"] = In(load_signature(self.stores))
        self.taps = bool(taps)
        self.port_names = {p.name: port_name(p.name) for p in net.populations}
        if len(set(self.port_names.values())) != len(self.port_names):
            raise TypeError("population names collide as identifiers: "
                            f"{sorted(self.port_names)}")
        if self.taps:
            for p in net.populations:
                ident = self.port_names[p.name]
                if p.kind != "readout":
                    members[f"tap_{ident}"] = Out(tap_signature(
                        self.engines[p.name].o.payload.shape()))
                members[f"work_{ident}"] = Out(COUNTER_BITS)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for name, engine in self.engines.items():
            m.submodules[f"engine_{name}"] = engine
        # Who reads whom: source → [(consumer port, FIFO depth)].
        readers: dict[str, list] = {}
        for engine in self.engines.values():
            if engine.plan.input_projection is not None:
                readers.setdefault(INPUT, []).append((engine.pixels, 0))
        plans = {name: e.plan for name, e in self.engines.items()}
        ports = {name: iter(e.event_inputs) for name, e in self.engines.items()}
        for source, consumer, depth in _reader_depths(self.net, plans, self.fifo_depth):
            readers.setdefault(source, []).append((next(ports[consumer]), depth))
        for source, ports in readers.items():
            producer = self.pixels if source == INPUT else self.engines[source].o
            self._fan_out(m, source, producer, ports)
        # The readout leaves through a skid buffer: the argmax logic ends in flip-flops.
        out = self.engines[self.net.output.name].o
        m.submodules.out_skid = skid = SkidBuffer(len(out.payload.as_value()))
        m.d.comb += [skid.i_data.eq(out.payload), skid.i_valid.eq(out.valid),
                     out.ready.eq(skid.i_ready),
                     self.o.payload.eq(skid.o_data), self.o.valid.eq(skid.o_valid),
                     skid.o_ready.eq(self.o.ready)]
        m.d.sync += self.cycles.eq(self.cycles + 1)
        for i, spec in enumerate(self.stores):
            port = getattr(self.engines[spec.population], f"load{spec.projection}")
            m.d.comb += [port.en.eq(self.load.en & (self.load.sel == i)),
                         port.addr.eq(self.load.addr), port.byte.eq(self.load.byte),
                         port.data.eq(self.load.data)]
        if self.taps:
            for name, engine in self.engines.items():
                ident = self.port_names[name]
                if engine.plan.pop.kind != "readout":
                    tap = getattr(self, f"tap_{ident}")
                    m.d.comb += [tap.valid.eq(engine.o.valid & engine.o.ready),
                                 tap.payload.eq(engine.o.payload)]
                work = getattr(self, f"work_{ident}")
                with m.If(engine.active):
                    m.d.sync += work.eq(work + 1)
        return m

    @staticmethod
    def _fan_out(m, source, producer, ports):
        """Hand every beat of ``producer`` to all ``ports`` at once (through FIFOs, or
        directly for the pixels, which every input stage reads in step)."""
        width = len(producer.payload.as_value()) if hasattr(producer.payload, "as_value") \
            else len(producer.payload)
        accept = Signal(name=f"{source}_accept")
        writers = []
        for i, (port, depth) in enumerate(ports):
            if depth == 0:
                writers.append((port.ready, port))
                continue
            if depth <= 2:
                q = SkidBuffer(width)
                m.d.comb += [port.valid.eq(q.o_valid), port.payload.eq(q.o_data),
                             q.o_ready.eq(port.ready), q.i_data.eq(producer.payload)]
                writers.append((q.i_ready, q.i_valid))
            else:
                q = RegisteredFIFO(width=width, depth=depth)
                m.d.comb += [port.valid.eq(q.r_rdy), port.payload.eq(q.r_data),
                             q.r_en.eq(port.ready), q.w_data.eq(producer.payload)]
                writers.append((q.w_rdy, q.w_en))
            m.submodules[f"fifo_{source}_{i}"] = q
        all_ready = 1
        for ready, _ in writers:
            all_ready = all_ready & ready
        m.d.comb += [accept.eq(producer.valid & all_ready), producer.ready.eq(all_ready)]
        for _, target in writers:
            if isinstance(target, Signal):  # a buffer's write enable
                m.d.comb += target.eq(accept)
            else:
                m.d.comb += [target.valid.eq(producer.valid & all_ready),
                             target.payload.eq(producer.payload)]
