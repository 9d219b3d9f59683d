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

import re

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..snn.qnet import INPUT, QNet
from .buffers import RegisteredFIFO, SkidBuffer
from .engine import LayerEngine
from .events import pixel_signature, readout_signature
from .plan import DEFAULT_FIFO_DEPTH, NetworkPlan, check_input_lanes

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


# (``check_input_lanes`` lives in ``hdl.plan``, with the readers' FIFO depths.)
__all__ = ["Network", "NetworkPlan", "port_name", "load_signature", "tap_signature",
           "check_input_lanes", "DEFAULT_FIFO_DEPTH", "COUNTER_BITS"]


class Network(wiring.Component):
    """The network of ``net`` with ``lanes`` lanes per engine (an int, a dict by
    population name, or ``"fc1=8,fc2=1"``), and debug taps when ``taps``. ``input_lanes``
    (M > 0) gives the populations with a dense projection from the image (group or IF
    neurons) a multiply-accumulate input stage of M lanes (``hdl.inputmac``).
    ``queue_depth`` sets every engine's output queue (lane groups; default: two sweeps'
    worth): a shallow queue saves block RAM, and a sweep waits while it is full.

    ``plan`` (a ``hdl.plan.NetworkPlan`` of ``net``) gives all of these but ``taps`` at
    once; without it the network makes its own from them. ``plan`` is the one it uses."""

    def __init__(self, net: QNet, *, lanes: int | dict[str, int] | str = 1,
                 fifo_depth: int = DEFAULT_FIFO_DEPTH, taps: bool = False, loadable=(),
                 input_lanes: int = 0, queue_depth: int | None = None,
                 plan: NetworkPlan | None = None):
        if plan is None:
            plan = NetworkPlan(net, lanes, input_lanes=input_lanes, queue_depth=queue_depth,
                               loadable=loadable, fifo_depth=fifo_depth)
        elif not isinstance(plan, NetworkPlan):
            raise TypeError(f"plan must be a hwsnn.hdl.plan.NetworkPlan, not "
                            f"{type(plan).__name__}")
        elif plan.net is not net:
            raise ValueError("the given plan was made for a different QNet")
        self.plan = plan
        self.net = net
        self.fifo_depth = plan.fifo_depth
        self.lanes = dict(plan.lanes)
        self.input_lanes = plan.input_lanes
        self.stores = plan.stores
        self.engines = {name: LayerEngine(net, name, lanes=n, loadable=plan.loadable_of(name),
                                          input_lanes=plan.input_lanes,
                                          queue_depth=plan.queue_depth,
                                          plan=plan.engines[name])
                        for name, n in plan.lanes.items()}
        self.queue_depth = plan.queue_depth
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
        ports = {name: iter(e.event_inputs) for name, e in self.engines.items()}
        for source, consumer, depth in self.plan.readers:
            readers.setdefault(source, []).append((next(ports[consumer]), depth))
        for source, ports in readers.items():
            producer = self.pixels if source == INPUT else self.engines[source].o
            self._fan_out(m, source, producer, ports)
        # The readout leaves through a skid buffer: the argmax logic ends in flip-flops.
        out = self.engines[self.net.output.name].o
        m.submodules.out_skid = skid = SkidBuffer(out.payload.shape())
        wiring.connect(m, out, skid.i)
        wiring.connect(m, skid.o, wiring.flipped(self.o))
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
        """Hand every beat of ``producer`` to all ``ports`` at once (through a buffer
        each, or directly for the pixels, which every input stage reads in step): a beat
        leaves when every reader can take it."""
        shape = producer.payload.shape()
        targets = []
        for i, (port, depth) in enumerate(ports):
            if depth == 0:
                targets.append(port)
                continue
            q = SkidBuffer(shape) if depth <= 2 else RegisteredFIFO(shape, depth=depth)
            m.submodules[f"fifo_{source}_{i}"] = q
            wiring.connect(m, q.o, port)
            targets.append(q.i)
        all_ready = 1
        for t in targets:
            all_ready = all_ready & t.ready
        accept = Signal(name=f"{source}_accept")
        m.d.comb += [accept.eq(producer.valid & all_ready), producer.ready.eq(all_ready)]
        m.d.comb += [t.valid.eq(accept) for t in targets]
        m.d.comb += [t.payload.eq(producer.payload) for t in targets]
