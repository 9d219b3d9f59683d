"""Small models for the CLI tests, importable as ``cli_models:factory``."""

import torch
from torch import nn


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def with_maxpool():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def save_mlp_weights(path, seed=0):
    torch.manual_seed(seed)
    torch.save(mlp().state_dict(), path)
