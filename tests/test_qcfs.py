import torch
from torch import nn

from hwsnn import QCFS, qcfs, replace_relu


def test_forward_rounds_half_up_and_clips():
    act = QCFS(levels=4, threshold=2.0)
    # x·L/θ + 1/2 = 2x + 1/2: x = 0.25 → 1.0 → floor 1 (half up; torch.round would give 0)
    x = torch.tensor([-1.0, 0.0, 0.2, 0.25, 0.75, 1.9, 3.0])
    expected = torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 2.0])
    assert torch.equal(act(x), expected)


def test_straight_through_gradients():
    x = torch.tensor([-1.0, 0.3, 0.9, 5.0], requires_grad=True)
    t = torch.tensor(1.0, requires_grad=True)
    y = qcfs(x, t, 4)
    y.sum().backward()
    # Inside the clip range the floor passes the gradient straight through.
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    # dy/dθ = q/L − x/θ inside, q/L outside (q the clipped level): independent computation
    q = torch.floor(x.detach() * 4 + 0.5).clamp(0, 4)
    inside = torch.tensor([0.0, 1.0, 1.0, 0.0])
    assert torch.allclose(t.grad, (q / 4 - inside * x.detach()).sum())


def test_replace_relu_swaps_modules():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 3), nn.ReLU6()))
    replace_relu(model, levels=8, threshold=3.0)
    acts = [m for m in model.modules() if isinstance(m, QCFS)]
    assert len(acts) == 2
    assert acts[0].levels == 8 and float(acts[0].threshold.detach()) == 3.0
    assert float(acts[1].threshold.detach()) == 6.0


def test_survives_torch_export():
    model = nn.Sequential(nn.Linear(4, 4), QCFS(4, 1.5))
    ep = torch.export.export(model.eval(), (torch.randn(2, 4),))
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert torch.ops.hwsnn.qcfs.default in targets
    x = torch.randn(2, 4)  # an exported program has the example's static batch size
    assert torch.equal(ep.module()(x), model(x))
