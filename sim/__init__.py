"""Simulation of generated Verilog against the golden model (installed as ``hwsnn.sim``).

``hwsnn_bench.py`` is the cocotb bench that runs inside the simulator; ``run`` builds the
design with Verilator or Icarus, runs the bench, and compares what the design did with
the golden model (``compare``), down to every population's events when the design has
debug taps. ``link_bench.py`` and ``link_run`` do the same for the UART host link
(``hwsnn.hdl.link.HostLink``), with the host client (``hwsnn.flow.host.Client``) talking to the
simulated design.
"""
