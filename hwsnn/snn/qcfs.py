"""The QCFS training activation (Bu et al., ICLR 2022).

``QCFS(x) = θ · clip(floor(x·L/θ + 1/2), 0, L) / L`` with a trainable threshold θ per layer
and L quantization levels. The floor uses a straight-through gradient. The forward pass is a
registered custom operator (``torch.ops.hwsnn.qcfs``) so that it survives ``torch.fx`` tracing
and ``torch.export`` as one node, which the frontend recognises.

Rounding is half up (``floor(x + 1/2)``), never ``torch.round`` (half to even).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.library.custom_op("hwsnn::qcfs", mutates_args=())
def _qcfs_op(x: torch.Tensor, threshold: torch.Tensor, levels: int) -> torch.Tensor:
    q = torch.floor(x * levels / threshold + 0.5).clamp(0, levels)
    return q * threshold / levels


@_qcfs_op.register_fake
def _(x, threshold, levels):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output):
    x, threshold, levels = inputs
    ctx.save_for_backward(x, threshold)
    ctx.levels = levels


def _backward(ctx, grad):
    x, threshold = ctx.saved_tensors
    levels = ctx.levels
    u = x * levels / threshold + 0.5
    q = torch.floor(u)
    inside = (q >= 0) & (q <= levels)
    clamped = q.clamp(0, levels)
    # Straight-through floor: d floor(u)/du = 1 inside the clip range.
    grad_x = grad * inside.to(grad.dtype)
    grad_t = grad * (clamped / levels - inside.to(grad.dtype) * x / threshold)
    return grad_x, grad_t.sum().reshape(threshold.shape), None


_qcfs_op.register_autograd(_backward, setup_context=_setup_context)


def qcfs(x: torch.Tensor, threshold: torch.Tensor, levels: int) -> torch.Tensor:
    """Functional QCFS: ``threshold · clip(floor(x·levels/threshold + 1/2), 0, levels)/levels``."""
    return _qcfs_op(x, threshold, int(levels))


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation with a trainable threshold.

    Parameters: ``levels`` (L, the number of non-zero output levels) and the initial
    ``threshold`` (θ, trained). Members: ``threshold : nn.Parameter`` (a scalar).
    """

    def __init__(self, levels: int = 4, threshold: float = 1.0):
        super().__init__()
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"QCFS levels must be a positive integer, not {levels!r}")
        if not threshold > 0:
            raise ValueError(f"QCFS threshold must be positive, not {threshold!r}")
        self.levels = levels
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return qcfs(x, self.threshold, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, threshold={float(self.threshold.detach()):.4g}"


def replace_relu(model: nn.Module, levels: int = 4, threshold: float = 1.0) -> nn.Module:
    """Swap every ``nn.ReLU`` (and ``ReLU6``/``Hardtanh(0, m)``) submodule of ``model`` for QCFS.

    Clipped ReLUs start from their clip value as threshold. Returns the same model, changed
    in place. Functional ``F.relu`` calls inside ``forward`` are not modules and stay as they
    are; write them as modules to have them replaced.
    """
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, QCFS(levels, threshold))
        elif isinstance(child, nn.Hardtanh) and child.min_val == 0:
            setattr(model, name, QCFS(levels, float(child.max_val)))
        else:
            replace_relu(child, levels, threshold)
    return model
