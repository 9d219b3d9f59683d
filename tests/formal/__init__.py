"""Formal proofs (SymbiYosys) of the stream blocks of ``hwsnn.hdl``: the property harnesses
and their runner are in ``harness``; ``tests/test_formal.py`` runs them; ``docs/formal.md``
says what is proven."""
