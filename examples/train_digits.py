"""Train the bundled example models on the shipped data sets with QCFS activations.

    python examples/train_digits.py            # every model, writes hwsnn/models/*.pt
    python examples/train_digits.py --model digits-cnn
    python examples/train_digits.py --model digits28-mlp   # 28×28 digits (data set digits28)
    python examples/train_digits.py --model mnist-cnn      # real MNIST (data set mnist)

CPU only, one thread, fixed seed: about a minute per digits model, a few minutes per
MNIST model. The checkpoints ship inside the package, so users never need to run this.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from hwsnn.frontends import data
from hwsnn.models import BUNDLED


def train(name: str, epochs: int, seed: int = 0) -> float:
    augment = name.endswith("cnn") or BUNDLED[name].dataset == "mnist"
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    spec = BUNDLED[name]
    model = spec.factory()
    x_train, y_train = data.load(spec.dataset, "train")
    x_test, y_test = data.load(spec.dataset, "test")
    thresholds = [p for n, p in model.named_parameters() if n.endswith("threshold")]
    others = [p for n, p in model.named_parameters() if not n.endswith("threshold")]
    opt = torch.optim.Adam(
        [{"params": others, "weight_decay": 1e-4}, {"params": thresholds, "weight_decay": 5e-4}],
        lr=3e-3,
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        # Whole batches only: BatchNorm statistics of a 9-sample batch are noise.
        for i in range(0, len(order) - 31, 32):
            idx = order[i : i + 32]
            xb = x_train[idx]
            if augment:
                # Shift by at most one pixel per 14 (the convolutions are shift-equivariant).
                r = max(1, xb.shape[-1] // 14)
                dy, dx = torch.randint(-r, r + 1, (2,), generator=gen).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad()
            loss = loss_fn(model(xb), y_train[idx])
            loss.backward()
            opt.step()
        sched.step()
        if (epoch + 1) % 10 == 0:
            acc = evaluate(model, x_test, y_test)
            print(f"{name} epoch {epoch + 1:3d} loss {loss.item():.4f} test {acc:.4f}")
    acc = evaluate(model, x_test, y_test)
    torch.save(model.state_dict(), spec.weights)
    print(f"{name}: test accuracy {acc:.4f}, {time.time() - start:.0f} s, saved {spec.weights}")
    return acc


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def main():
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(BUNDLED), action="append")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    for name in args.model or sorted(BUNDLED):
        train(name, args.epochs)


if __name__ == "__main__":
    main()
