import pytest
import torch

from hwsnn.frontends import data
from hwsnn.frontends.pytorch import trace
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
            spec = BUNDLED[name]
            cache[name] = trace(spec.load(), torch.zeros(2, *spec.input_shape))
        return cache[name]

    return get
