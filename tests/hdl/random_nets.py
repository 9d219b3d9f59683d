"""Random small QNets for the tests (the generators live in ``hwsnn.snn.random_nets``, where
the benchmarks find them too)."""

from hwsnn.snn.random_nets import limit_qnet, random_codes, random_qnet

__all__ = ["limit_qnet", "random_codes", "random_qnet"]
