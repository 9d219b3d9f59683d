"""Amaranth 0.5 hardware: spike-event streams, neuron fire units and layer engines that
implement the QNet semantics exactly (see docs/qnet.md and docs/hardware.md)."""
