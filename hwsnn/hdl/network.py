"""A whole QNet as one pipelined design: one engine per population, wired by the graph.

Every population's spike stream goes through a FIFO to each engine that reads it (a
source read by several engines, or twice, feeds all of its FIFOs at once). Engines run
concurrently on successive steps (rate methods) or successive samples (ILIF). An engine
with several inputs reads step t from each in turn (earliest source first), so every FIFO
that is read after another one holds a whole step of its source's events, which keeps the
pipeline free of deadlock.

Members: ``pixels : In(stream.Signature(8))``, the image codes in C order, sample after
sample; ``o : Out(readout stream)``, every readout value of a sample in index order, the
last with ``argmax``; ``cycles : Out(32)``, clock cycles since reset.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..graph import INPUT
from ..qnet import QNet
from .engine import LayerEngine
from .events import pixel_signature, readout_signature

DEFAULT_FIFO_DEPTH = 16


class Network(wiring.Component):
    """The network of ``net`` with ``lanes`` lanes per engine (an int, or a dict by
    population name)."""

    def __init__(self, net: QNet, *, lanes: int | dict[str, int] = 1,
                 fifo_depth: int = DEFAULT_FIFO_DEPTH):
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise TypeError(f"FIFO depth must be an integer of at least 2, not {fifo_depth!r}")
        self.net = net
        self.fifo_depth = fifo_depth
        lanes_of = lanes if isinstance(lanes, dict) else {}
        self.engines = {p.name: LayerEngine(net, p.name,
                                            lanes=lanes_of.get(p.name, lanes if isinstance(
                                                lanes, int) else 1))
                        for p in net.populations}
        out = self.engines[net.output.name]
        super().__init__({
            "pixels": In(pixel_signature()),
            "o": Out(readout_signature(net.output.size, out.plan.vbits)),
            "cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        for name, engine in self.engines.items():
            m.submodules[f"engine_{name}"] = engine
        # Who reads whom: source → [(consumer port, FIFO depth)].
        readers: dict[str, list] = {}
        for engine in self.engines.values():
            if engine.plan.input_projection is not None:
                readers.setdefault(INPUT, []).append((engine.pixels, 0))
            for k, pp in enumerate(engine.plan.event_projections):
                src_size = 1
                for d in pp.src_shape:
                    src_size *= d
                # A port read after another one buffers a whole step of its source.
                depth = self.fifo_depth if k == 0 else max(self.fifo_depth, src_size + 2)
                readers.setdefault(pp.proj.source, []).append((engine.event_inputs[k], depth))
        for source, ports in readers.items():
            producer = self.pixels if source == INPUT else self.engines[source].o
            self._fan_out(m, source, producer, ports)
        wiring.connect(m, wiring.flipped(self.o), self.engines[self.net.output.name].o)
        m.d.sync += self.cycles.eq(self.cycles + 1)
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
            q = fifo.SyncFIFOBuffered(width=width, depth=depth)
            m.submodules[f"fifo_{source}_{i}"] = q
            m.d.comb += [port.valid.eq(q.r_rdy), port.payload.eq(q.r_data),
                         q.r_en.eq(port.ready), q.w_data.eq(producer.payload)]
            writers.append((q.w_rdy, q))
        all_ready = 1
        for ready, _ in writers:
            all_ready = all_ready & ready
        m.d.comb += [accept.eq(producer.valid & all_ready), producer.ready.eq(all_ready)]
        for _, target in writers:
            if isinstance(target, fifo.SyncFIFOBuffered):
                m.d.comb += target.w_en.eq(accept)
            else:
                m.d.comb += [target.valid.eq(producer.valid & all_ready),
                             target.payload.eq(producer.payload)]
