import pytest
import torch

from hwsnn import data
from hwsnn.frontend import trace
from hwsnn.models import BUNDLED


@pytest.fixture(scope="session")
def digits_test():
    return data.load("digits", "test")


@pytest.fixture(scope="session")
def digits_train():
    return data.load("digits", "train")


@pytest.fixture(scope="session")
def bundled_graph():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = trace(BUNDLED[name].load(), torch.zeros(2, 1, 8, 8))
        return cache[name]

    return get
