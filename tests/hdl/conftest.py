import pytest

from hwsnn.hdl.ram import poison_collisions


@pytest.fixture(autouse=True)
def _poisoned_collisions():
    """Every design simulated here gives a read that meets a write to its address, in a
    memory that leaves such a read undefined (``hdl.ram``), all ones: a bit-exact test
    then fails if the design used one."""
    with poison_collisions():
        yield
