"""Hand-worked golden-model examples, one per neuron kind (docs/qnet.md, "Semantics").

Every expected number below is derived by hand in the comments, step by step; the tests
assert that ``hwsnn.snn.golden.run`` produces exactly these literals. Notation: x are the input
codes, I the synaptic current of one step (bias included), V the membrane, s the spike
count, Θ the threshold, τ the group size.
"""

from __future__ import annotations

import numpy as np
import torch

from hwsnn.snn import golden
from hwsnn.snn.qnet import InputSpecQ, QNet, QPopulation, QProjection, validate


def dense(source, rows):
    return QProjection(source, "dense", np.array(rows, dtype=np.int64))


def pop(name, kind, theta, tau, steps, v0, bias, projs, *, shape=None, steps_out=None,
        bits=16, saturate=False, scale=None):
    bias = np.array(bias, dtype=np.int64)
    return QPopulation(
        name=name, kind=kind, shape=tuple(shape or bias.shape), threshold=theta,
        group_size=tau, steps_in=steps, steps_out=steps if steps_out is None else steps_out,
        v0=v0, bias=bias.reshape(shape or bias.shape), projections=projs, bias_bits=8,
        membrane_bits=bits, saturate=saturate, theta=float(theta), unit=1.0,
        readout_scale=(1.0 if scale is None else scale) if kind == "readout" else None)


def qnet(method, T, pops, rho=0, shape=(2,)):
    net = QNet(method, T, rho, InputSpecQ(shape), pops, 8, 32)
    validate(net)
    return net


def run(net, codes, lanes=1):
    return golden.run(net, torch.tensor(codes, dtype=torch.int64), lanes=lanes, record=True)


def outputs(res, name, sample=0):
    """[steps][neurons] of one sample."""
    out = res.outputs[name][sample]
    return out.reshape(out.shape[0], -1).tolist()


def test_if_neuron_tau_1():
    # x = (3, 1); h: W = [2, 1], B = -1, Θ = 8, v0 = Θ/2 = 4, τ = 1, T = 3.
    # The input stage adds W·x = 2·3 + 1·1 = 7 every step, so I = 7 − 1 = 6.
    #   t1: V = 4 + 6 = 10, s = clip(floor(10/8) = 1, 0, 1) = 1, V = 10 − 8 = 2
    #   t2: V = 2 + 6 = 8,  s = 1, V = 0
    #   t3: V = 0 + 6 = 6,  s = floor(6/8) = 0, V = 6
    # Readout: W = [3, −1]ᵀ, B = (1, 2), V(0) = 0, scale 0.25.
    #   t1 (s = 1): (0 + 3 + 1, 0 − 1 + 2) = (4, 1)
    #   t2 (s = 1): (4 + 3 + 1, 1 − 1 + 2) = (8, 2)
    #   t3 (s = 0): (8 + 0 + 1, 2 + 0 + 2) = (9, 4)   → prediction 0, logits (2.25, 1.0)
    h = pop("h", "gn", 8, 1, 3, 4, [-1], [dense("input", [[2, 1]])])
    out = pop("out", "readout", 4, 1, 3, 0, [1, 2], [dense("h", [[3], [-1]])], scale=0.25)
    net = qnet("if", 3, [h, out])
    res = run(net, [[3, 1]])
    assert outputs(res, "h") == [[1], [1], [0]]
    assert res.membranes["h"].tolist() == [[6]]
    assert res.readout.tolist() == [[9, 4]]
    assert res.membranes["out"].tolist() == [[9, 4]]
    assert res.predictions.tolist() == [0]
    assert res.logits.tolist() == [[2.25, 1.0]]
    # Input bit-planes, MSB first: 3 = 0b00000011, 1 = 0b00000001 → set bits per plane
    # (0, 0, 0, 0, 0, 0, 1, 2).
    assert res.events["input"].tolist() == [[0, 0, 0, 0, 0, 0, 1, 2]]
    assert res.events["h"].tolist() == [[1, 1, 0]]
    assert res.spikes["h"].tolist() == [[1, 1, 0]]
    # Cycles, P = 1. h: the 3 input events cost ceil(1/1) = 1 each, charged to step 0, and
    # every step ends with a sweep of ceil(1/1) = 1: (3 + 1, 1, 1). Readout: one h event
    # costs ceil(2/1) = 2; steps 1, 2 carry an event; the last step adds the sweep 2.
    assert res.cycles["h"].tolist() == [[4, 1, 1]]
    assert res.cycles["out"].tolist() == [[2, 2, 2]]
    # Synaptic events = SOPs (all counts are 1): 3 input events × fan-out 1 + 2 × 2 = 7.
    assert res.synaptic_events.tolist() == [7]
    assert res.sops.tolist() == [7]
    # P = 3: h costs ceil(1/3) = 1 per event and sweep; a readout event ceil(2/3) = 1, and
    # its report at the end still takes one cycle per value: 2.
    res3 = run(net, [[3, 1]], lanes=3)
    assert res3.cycles["h"].tolist() == [[4, 1, 1]]
    assert res3.cycles["out"].tolist() == [[1, 1, 2]]


def test_group_neuron_tau_3():
    # x = (5, 2); h: Θ = 6, v0 = 3, τ = 3, T = 2.
    # n0: W = [4, 2], B = 1 → I = 20 + 4 + 1 = 25
    #   t1: V = 3 + 25 = 28, floor(28/6) = 4 → clipped to τ = 3, V = 28 − 18 = 10
    #   t2: V = 10 + 25 = 35, floor(35/6) = 5 → 3, V = 35 − 18 = 17
    # n1: W = [−1, 1], B = 7 → I = −5 + 2 + 7 = 4
    #   t1: V = 3 + 4 = 7, s = floor(7/6) = 1, V = 1
    #   t2: V = 1 + 4 = 5, s = 0, V = 5
    # Readout: W = [[1, −2], [0, 3]], B = (0, −1)
    #   t1, s = (3, 1): r0 = 3 − 2 + 0 = 1, r1 = 0 + 3 − 1 = 2
    #   t2, s = (3, 0): r0 = 1 + 3 + 0 = 4, r1 = 2 + 0 − 1 = 1   → prediction 0
    h = pop("h", "gn", 6, 3, 2, 3, [1, 7], [dense("input", [[4, 2], [-1, 1]])])
    out = pop("out", "readout", 2, 1, 2, 0, [0, -1], [dense("h", [[1, -2], [0, 3]])])
    res = run(qnet("gn", 2, [h, out]), [[5, 2]])
    assert outputs(res, "h") == [[3, 1], [3, 0]]
    assert res.membranes["h"].tolist() == [[17, 5]]
    assert res.readout.tolist() == [[4, 1]]
    assert res.predictions.tolist() == [0]
    assert res.spikes["h"].tolist() == [[4, 3]]  # 3 + 1, 3 + 0
    assert res.events["h"].tolist() == [[2, 1]]  # non-zero counts
    # x = (5, 2) = (0b101, 0b010): 3 set bits; fan-out 2 each → 6 synaptic events and 6
    # SOPs. h → out: events 2 + 1 = 3, × 2 = 6; spikes 4 + 3 = 7, × 2 = 14 SOPs.
    assert res.synaptic_events.tolist() == [12]
    assert res.sops.tolist() == [20]
    # The multiply-accumulate input stage (M input lanes): one pass per ceil(2/M) groups,
    # each over the 2 non-zero pixels plus a clear and a hand-over: M = 1 → 2 · (2 + 2) = 8
    # instead of 3 bit-events × ceil(2/1) = 6; M = 2 → 1 · 4 = 4. Same values.
    for m, cost in ((1, 8), (2, 4)):
        fast = golden.run(qnet("gn", 2, [h, out]), torch.tensor([[5, 2]]), input_lanes=m)
        assert fast.cycles["h"].tolist() == [[cost + 2, 2]]  # + the sweeps of 2
        assert fast.cycles["out"].tolist() == res.cycles["out"].tolist()
        assert fast.readout.tolist() == [[4, 1]]
    assert res.cycles["h"].tolist() == [[6 + 2, 2]]
    # A zero pixel is skipped: x = (5, 0) → 1 non-zero pixel, M = 2: 1 · (1 + 2) = 3.
    zero = golden.run(qnet("gn", 2, [h, out]), torch.tensor([[5, 0]]), input_lanes=2)
    assert zero.cycles["h"].tolist() == [[3 + 2, 2]]


def test_if_shift():
    # if-shift: V(0) = 0 and the bias carries the shift Θ/(2T). T = 2, Θ = 8 (a multiple of
    # 2T = 4), shift 8/4 = 2. x = (4, 0), W = [1, 3] → W·x = 4; B = −1 + 2 = 1 → I = 5.
    #   t1: V = 0 + 5 = 5, s = floor(5/8) = 0, V = 5
    #   t2: V = 5 + 5 = 10, s = 1, V = 2
    # (with v0 = Θ/2 = 4 instead, it would fire at t1: 4 + 5 = 9.)
    # Readout: W = [2, 1]ᵀ, B = 0: t1 (s = 0) → (0, 0); t2 (s = 1) → (2, 1) → prediction 0
    h = pop("h", "gn", 8, 1, 2, 0, [1], [dense("input", [[1, 3]])])
    out = pop("out", "readout", 2, 1, 2, 0, [0, 0], [dense("h", [[2], [1]])])
    res = run(qnet("if-shift", 2, [h, out]), [[4, 0]])
    assert outputs(res, "h") == [[0], [1]]
    assert res.membranes["h"].tolist() == [[2]]
    assert res.readout.tolist() == [[2, 1]]
    assert res.predictions.tolist() == [0]


def test_ilif():
    # T = 2 bits (levels 3). x = (5, 3) = (0b00000101, 0b00000011): the 8 input bit-planes,
    # MSB first, are (0,0) ×5, then t6 = (1,0), t7 = (0,1), t8 = (1,1).
    # h: Θ = 4, v0 (offset) = Θ/2 = 2. V ← 2V + W·plane.
    # n0: W = [2, −1], B = 1: t6: 0 + 2 = 2; t7: 4 − 1 = 3; t8: 6 + 2 − 1 = 7 (= W·x = 10 − 3)
    #     V = 7 + 1 + 2 = 10, a = floor(10/4) = 2 → bits (1, 0)
    # n1: W = [−1, 3], B = 0: t6: −1; t7: −2 + 3 = 1; t8: 2 − 1 + 3 = 4 (= −5 + 9)
    #     V = 4 + 0 + 2 = 6, a = floor(6/4) = 1 → bits (0, 1)
    # n2: W = [3, 3], B = 0: t6: 3; t7: 6 + 3 = 9; t8: 18 + 3 + 3 = 24 (= 15 + 9)
    #     V = 24 + 0 + 2 = 26, a = floor(26/4) = 6 → clipped to 3 → bits (1, 1)
    # Readout (accumulates h's T = 2 planes): W = [[1, 2, −1], [0, 1, 1]], B = (1, 0)
    #   plane 1 = (1, 0, 1): r0 = 0 + 1 − 1 = 0, r1 = 0 + 1 = 1
    #   plane 2 = (0, 1, 1): r0 = 2·0 + 2 − 1 = 1, r1 = 2·1 + 1 + 1 = 4
    #   + B: (2, 4)   (check: a = (2, 1, 3): 2 + 2 − 3 + 1 = 2, 1 + 3 = 4) → prediction 1
    h = pop("h", "ilif", 4, 1, 8, 2, [1, 0, 0],
            [dense("input", [[2, -1], [-1, 3], [3, 3]])], steps_out=2)
    out = pop("out", "readout", 2, 1, 2, 0, [1, 0], [dense("h", [[1, 2, -1], [0, 1, 1]])],
              steps_out=1)
    net = qnet("ilif", 2, [h, out])
    res = run(net, [[5, 3]])
    assert outputs(res, "h") == [[1, 0, 1], [0, 1, 1]]
    assert res.membranes["h"].tolist() == [[10, 6, 26]]
    assert res.readout.tolist() == [[2, 4]]
    assert res.predictions.tolist() == [1]
    assert res.events["input"].tolist() == [[0, 0, 0, 0, 0, 1, 1, 2]]
    assert res.events["h"].tolist() == [[2, 2]]
    # Cycles, P = 1: h is charged per input plane, ceil(3/1) = 3 per event, then one sweep
    # of 3 per output plane; the readout gets 2 events per plane × ceil(2/1) = 2, then its
    # sweep of 2.
    assert res.cycles["h"].tolist() == [[0, 0, 0, 0, 0, 3, 3, 6, 3, 3]]
    assert res.cycles["out"].tolist() == [[4, 4, 2]]
    # The same numbers from the integer QCFS(3) ANN: a = clip(floor((W·x + B + Θ/2)/Θ), 0, 3).
    readout, pred, acts = golden.qcfs_reference(net, torch.tensor([[5, 3]]), 3)
    assert acts["h"].tolist() == [[2, 1, 3]]
    assert readout.tolist() == [[2, 4]]
    assert pred.tolist() == [1]


def test_readout_accumulates_and_ties_go_to_the_lowest_index():
    # h: W = [2, 0], B = 0, Θ = 4, v0 = 2, τ = 1, T = 2.
    # Readout: W = [2, 1, 3]ᵀ, B = (1, 2, 1), V(0) = 0, scale 0.5.
    # Sample 0, x = (1, 0): I = 2.
    #   h: t1: V = 2 + 2 = 4 → s = 1, V = 0; t2: V = 2 → s = 0, V = 2
    #   readout: t1 (s = 1): (2 + 1, 1 + 2, 3 + 1) = (3, 3, 4)
    #            t2 (s = 0): (3 + 1, 3 + 2, 4 + 1) = (4, 5, 5) → tie of 1 and 2 → prediction 1
    # Sample 1, x = (3, 0): I = 6.
    #   h: t1: V = 2 + 6 = 8 → s = 1, V = 4; t2: V = 10 → s = 1 (τ = 1), V = 6
    #   readout: t1: (3, 3, 4); t2: (3 + 3, 3 + 3, 4 + 4) = (6, 6, 8) → prediction 2
    h = pop("h", "gn", 4, 1, 2, 2, [0], [dense("input", [[2, 0]])])
    out = pop("out", "readout", 2, 1, 2, 0, [1, 2, 1], [dense("h", [[2], [1], [3]])],
              scale=0.5)
    res = run(qnet("if", 2, [h, out]), [[1, 0], [3, 0]])
    assert outputs(res, "h", 0) == [[1], [0]]
    assert outputs(res, "h", 1) == [[1], [1]]
    assert res.membranes["h"].tolist() == [[2], [6]]
    assert res.readout.tolist() == [[4, 5, 5], [6, 6, 8]]
    assert res.predictions.tolist() == [1, 2]
    assert res.logits.tolist() == [[2.0, 2.5, 2.5], [3.0, 3.0, 4.0]]


def test_cos_offset_spike_calibration():
    # cos, ρ = 2 pre-simulation steps, then T = 2; τ = 1, Θ = 4, v0 = 2 everywhere.
    # x = (2, 0); h1: W = [1, 0], B = 0 → I = 2.
    #   pre t1: V = 2 + 2 = 4 → s = 1, V = 0;  pre t2: V = 2 → s = 0, V = 2
    #   n = 1, V_ρ = 2 ∈ [0, Θ) → V0 = v0 = 2, so the main run repeats: s = (1, 0), V = 2.
    # h2 reads h1 (pre-simulation spikes 1, 0); W = [6, −16, 1, 20, 0]ᵀ,
    # B = (−3, 12, 0, −14, 5).
    # A (W 6, B −3):   pre t1: V = 2 + 6 − 3 = 5 → s = 1, V = 1 (min_fire 1)
    #                  pre t2: V = 1 − 3 = −2 → quiet. V_ρ = −2 < 0, n = 1:
    #                  V0 = v0 − max(Θ, min_fire + 1) = 2 − max(4, 2) = −2
    # B (W −16, B 12): pre t1: V = 2 − 16 + 12 = −2 → quiet (max_quiet −2)
    #                  pre t2: V = −2 + 12 = 10 → s = 1, V = 6. V_ρ = 6 ≥ Θ:
    #                  V0 = v0 + max(Θ, Θ + 1 − max_quiet) = 2 + max(4, 7) = 9
    # C (W 1, B 0):    pre t1: V = 3 → quiet; pre t2: V = 3 → quiet. V_ρ = 3: V0 = 2
    # D (W 20, B −14): pre t1: V = 2 + 20 − 14 = 8 → s = 1 (τ = 1), V = 4 (min_fire 4)
    #                  pre t2: V = 4 − 14 = −10 → quiet. V_ρ < 0, n = 1:
    #                  V0 = 2 − max(4, 4 + 1) = −3
    # E (W 0, B 5):    pre t1: V = 7 → s = 1, V = 3; pre t2: V = 8 → s = 1, V = 4.
    #                  V_ρ = 4 ≥ Θ and never quiet: V0 = v0 + Θ = 6
    # Main run (h1 sends 1, 0 again):
    # A: V0 −2: t1: −2 + 6 − 3 = 1 → 0;      t2: 1 − 3 = −2 → 0.   V = −2
    # B: V0 9:  t1: 9 − 16 + 12 = 5 → 1, V 1; t2: 1 + 12 = 13 → 1, V = 9
    # C: V0 2:  t1: 3 → 0;                    t2: 3 → 0.            V = 3
    # D: V0 −3: t1: −3 + 20 − 14 = 3 → 0;     t2: 3 − 14 = −11 → 0. V = −11
    # E: V0 6:  t1: 6 + 5 = 11 → 1, V 7;      t2: 7 + 5 = 12 → 1,   V = 8
    # Readout starts again from 0 after the pre-simulation. W = [[1, 2, 3, 0, 0],
    # [0, 1, 0, 0, 1]], B = (0, 2); main spikes of h2 are (0, 1, 0, 0, 1) at both steps:
    #   t1: r0 = 2, r1 = 1 + 1 + 2 = 4;  t2: r0 = 4, r1 = 8 → prediction 1
    # (without the restart it would end at (3 + 4, 7 + 8) = (7, 15): during the
    # pre-simulation r = (1, 3) after (1, 0, 0, 1, 1), then (3, 7) after (0, 1, 0, 0, 1).)
    h1 = pop("h1", "gn", 4, 1, 4, 2, [0], [dense("input", [[1, 0]])])
    h2 = pop("h2", "gn", 4, 1, 4, 2, [-3, 12, 0, -14, 5],
             [dense("h1", [[6], [-16], [1], [20], [0]])])
    out = pop("out", "readout", 2, 1, 4, 0, [0, 2],
              [dense("h2", [[1, 2, 3, 0, 0], [0, 1, 0, 0, 1]])])
    res = run(qnet("cos", 2, [h1, h2, out], rho=2), [[2, 0]])
    # Outputs list the ρ pre-simulation steps first, then the T steps.
    assert outputs(res, "h1") == [[1], [0], [1], [0]]
    assert outputs(res, "h2") == [[1, 0, 0, 1, 1], [0, 1, 0, 0, 1],
                                  [0, 1, 0, 0, 1], [0, 1, 0, 0, 1]]
    assert res.membranes["h1"].tolist() == [[2]]
    assert res.membranes["h2"].tolist() == [[-2, 9, 3, -11, 8]]
    assert res.readout.tolist() == [[4, 8]]
    assert res.predictions.tolist() == [1]
    # Cycles, P = 1. x = (2, 0): one set bit (plane 7), charged once, to the first
    # pre-simulation step: h1 = (1 + 1, 1, 1, 1). h2: an h1 event costs ceil(5/1) = 5, sweep
    # 5: (10, 5, 10, 5). Readout: an h2 event costs 2; (3, 2, 2, 2) events; the sweep of 2
    # comes at the last step of each run: (6, 4 + 2, 4, 4 + 2).
    assert res.events["input"].tolist() == [[0, 0, 0, 0, 0, 0, 1, 0]]
    assert res.cycles["h1"].tolist() == [[2, 1, 1, 1]]
    assert res.cycles["h2"].tolist() == [[10, 5, 10, 5]]
    assert res.cycles["out"].tolist() == [[6, 6, 4, 6]]


def test_saturating_group_neuron_and_readout():
    # membrane_bits 4 → V ∈ [−8, 7]; gn, τ = 3, Θ = 4, v0 = 2, T = 3; x = (5, 5).
    # n0: W = [2, 0]   → I = 10
    #   t1: V = sat(2 + 10 = 12) = 7, s = floor(7/4) = 1, V = 3
    #   t2: V = sat(3 + 10 = 13) = 7, s = 1, V = 3;  t3: the same, V = 3
    #   (unsaturated it would send 3, 2, 3.)
    # n1: W = [−3, 0]  → I = −15
    #   t1: V = sat(2 − 15 = −13) = −8, s = 0;  t2: sat(−8 − 15) = −8;  t3: −8
    # n2: W = [3, −3], B = 1 → I = 15 − 15 + 1 = 1: the clamp acts on the full update, never
    #   on single events (2 + 15 = 17 → 7, then 7 − 15 = −8 would be wrong).
    #   t1: V = 2 + 1 = 3, s = 0;  t2: V = 4, s = 1, V = 0;  t3: V = 1, s = 0
    # Readout, membrane_bits 5 → [−16, 15]: W = [[7, 0, 0], [−7, 0, 1]], B = 0
    #   r0: t1: 7;  t2: 14;  t3: sat(21) = 15
    #   r1: t1: −7; t2: sat(−14 + 1 = −13) = −13;  t3: sat(−13 − 7 = −20) = −16
    h = pop("h", "gn", 4, 3, 3, 2, [0, 0, 1], [dense("input", [[2, 0], [-3, 0], [3, -3]])],
            bits=4, saturate=True)
    out = pop("out", "readout", 2, 1, 3, 0, [0, 0], [dense("h", [[7, 0, 0], [-7, 0, 1]])],
              bits=5, saturate=True)
    res = run(qnet("gn", 3, [h, out]), [[5, 5]])
    assert outputs(res, "h") == [[1, 0, 0], [1, 0, 1], [1, 0, 0]]
    assert res.membranes["h"].tolist() == [[3, -8, 1]]
    assert res.readout.tolist() == [[15, -16]]
    assert res.predictions.tolist() == [0]


def test_saturating_ilif():
    # membrane_bits 6 → V ∈ [−32, 31]; ilif, T = 2, Θ = 4, v0 = 2; x = (255, 0): all 8
    # input planes are (1, 0). The clamp follows every accumulate step and the bias.
    # n0: W = [5, 0], B = −30: 5, 15, sat(35) = 31, sat(67) = 31, … → 31
    #     V = 31 − 30 + 2 = 3, a = floor(3/4) = 0 → bits (0, 0)
    #     (unsaturated: 5·255 − 30 + 2 = 1247 → a = 3.)
    # n1: W = [−5, 0], B = −10: −5, −15, sat(−35) = −32, … → −32
    #     V = sat(−32 − 10 + 2 = −40) = −32, a = 0 → bits (0, 0)
    # n2: W = [5, 0], B = 20: → 31, V = sat(31 + 20 + 2 = 53) = 31, a = floor(31/4) = 7
    #     → clipped to 3 → bits (1, 1)
    # Readout (not saturating): W = [[1, 1, 1], [0, 0, −1]], B = (0, 5)
    #   plane (0, 0, 1): r = (1, −1);  plane (0, 0, 1): r = (2 + 1, −2 − 1) = (3, −3)
    #   + B: (3, 2) → prediction 0
    h = pop("h", "ilif", 4, 1, 8, 2, [-30, -10, 20],
            [dense("input", [[5, 0], [-5, 0], [5, 0]])], steps_out=2, bits=6, saturate=True)
    out = pop("out", "readout", 2, 1, 2, 0, [0, 5], [dense("h", [[1, 1, 1], [0, 0, -1]])],
              steps_out=1)
    res = run(qnet("ilif", 2, [h, out]), [[255, 0]])
    assert outputs(res, "h") == [[0, 0, 1], [0, 0, 1]]
    assert res.membranes["h"].tolist() == [[3, -32, 31]]
    assert res.readout.tolist() == [[3, 2]]
    assert res.predictions.tolist() == [0]


def test_convolution_reach_and_spatial_sweep():
    # Input [1, 3, 3], every code 1 (= 0b00000001: one set bit per pixel, in plane 8).
    # conv K = 2, stride 1, no padding → [2, 2, 2]; channel 0 all weights 1, channel 1 −1.
    # Θ = 8, v0 = 4, τ = 1, T = 1: channel 0 sees 4 pixels → V = 4 + 4 = 8 → s = 1, V = 0;
    # channel 1: V = 4 − 4 = 0 → s = 0, V = 0.
    # Reach: a corner pixel is read by 1 output position, an edge pixel by 2, the centre
    # by 4: 4·1 + 4·2 + 4 = 16 positions, each costing ceil(C_out/P) cycles.
    # Sweep of a spatial population: H·W·ceil(C/P).
    #   P = 1: 16·2 + 4·2 = 40;  P = 3: 16·1 + 4·1 = 20
    # Readout: dense, all weights 1, B = 0: 4 spikes → r = 4; 4 events × ceil(1/P) + sweep 1.
    w = np.stack([np.ones((1, 2, 2)), -np.ones((1, 2, 2))]).astype(np.int64)
    c = pop("c", "gn", 8, 1, 1, 4, np.zeros((2, 2, 2)), [QProjection("input", "conv", w)],
            shape=(2, 2, 2))
    out = pop("out", "readout", 2, 1, 1, 0, [0], [dense("c", [[1] * 8])])
    net = qnet("if", 1, [c, out], shape=(1, 3, 3))
    codes = [[[[1, 1, 1], [1, 1, 1], [1, 1, 1]]]]
    res = run(net, codes)
    assert outputs(res, "c") == [[1, 1, 1, 1, 0, 0, 0, 0]]
    assert res.membranes["c"].reshape(1, -1).tolist() == [[0] * 8]
    assert res.readout.tolist() == [[4]]
    assert res.cycles["c"].tolist() == [[40]]
    assert res.cycles["out"].tolist() == [[5]]
    # 16 reached positions × C_out 2 = 32 synaptic events (= SOPs), + 4 × 1 into the readout.
    assert res.synaptic_events.tolist() == [36]
    assert run(net, codes, lanes=3).cycles["c"].tolist() == [[20]]
