"""Random small QNets for the tests (the generators live in ``hwsnn.random_nets``, where
the benchmarks find them too)."""

from hwsnn.random_nets import limit_qnet, random_codes, random_qnet

__all__ = ["limit_qnet", "random_codes", "random_qnet"]
