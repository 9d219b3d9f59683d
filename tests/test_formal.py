# amaranth: UnusedElaboratable=no
"""Formal proofs (SymbiYosys, k-induction) that the stream blocks never lose, duplicate or
reorder a beat, and that mutated copies of them fail those proofs (docs/formal.md).

- ``test_proof``: each harness with its white-box invariants, in ``prove`` mode: a bounded
  model check of ``DEPTH`` cycles from reset and k-induction of the same length; both
  must pass, and the induction must close (an unbounded proof).
- ``test_reachable``: the covers of each black-box harness are reached (the environment's
  assumptions leave the interesting runs possible: a tracked beat through a full buffer,
  the longest event with the next one waiting, the credit's bound).
- ``test_mutant_fails``: each mutant (``formal.harness``: one deliberate bug each) fails
  a bounded model check of its black-box core properties, with a counterexample.
"""

from functools import cache

import pytest
from formal.harness import (
    CreditHarness,
    DatapathNeverDrops,
    DatapathTimingHarness,
    ExpanderHarness,
    ExpanderIgnoresReady,
    ExpanderOneGroupShort,
    ExpanderTakesWhileBusy,
    FifoHarness,
    FifoReadsWithoutRoom,
    FifoReadyWhenFull,
    FifoWithRepeatingSkid,
    SequencerAlwaysCredit,
    SequencerTooDeep,
    SkidHarness,
    SkidIgnoresReady,
    SkidReadyWhenFull,
    SkidRepeats,
    run,
    tiny_net,
)

from hwsnn.hdl.plan import EnginePlan

DEPTH = 20  # cycles of the bounded check and length of the induction


@cache
def plan(name: str) -> EnginePlan:
    """The engines the proofs use: expanders of every kind of projection, and engines of
    each kind (group neurons, two-bank ILIF, readout) for the queue and the datapath."""
    if name == "dense":  # 5 outputs in lanes of 2: G = 3 lane groups
        return EnginePlan(tiny_net((3,), "dense", (5,)), "h2", 2)
    if name == "dense_map":  # a dense projection from a (2, 2, 2) map, by flat index
        return EnginePlan(tiny_net((2, 2, 2), "dense", (3,)), "h2", 1)
    if name == "conv":  # kernel 3, stride 1, padding 1 over 4×4, G = 2: up to 18 ops
        return EnginePlan(tiny_net((2, 4, 4), "conv", (3, 4, 4), kernel=3, stride=1,
                                   padding=1), "h2", 2)
    if name == "conv_stride":  # kernel 3, stride 2, no padding: some events reach nothing
        return EnginePlan(tiny_net((1, 4, 6), "conv", (2, 1, 2), kernel=3, stride=2), "h2",
                          1)
    if name == "gn":  # 8 neurons, one lane: a sweep of 8 operations
        return EnginePlan(tiny_net((3,), "dense", (8,)), "h2", 1)
    if name == "gn_lanes":  # 8 neurons in lanes of 3: a sweep of 3 operations
        return EnginePlan(tiny_net((3,), "dense", (8,)), "h2", 3)
    if name == "ilif":  # two membrane banks: a fire state machine of its own
        return EnginePlan(tiny_net((3,), "dense", (6,), method="ilif"), "h2", 1)
    if name == "readout":
        return EnginePlan(tiny_net((3,), "dense", (8,)), "out", 1)
    raise KeyError(name)


PROOFS = {
    "skid": lambda: SkidHarness(whitebox=True),
    "fifo_depth3": lambda: FifoHarness(depth=3, whitebox=True),
    "fifo_depth4": lambda: FifoHarness(depth=4, whitebox=True),
    "fifo_depth5": lambda: FifoHarness(depth=5, whitebox=True),
    "expander_dense": lambda: ExpanderHarness(plan("dense"), whitebox=True),
    "expander_dense_map": lambda: ExpanderHarness(plan("dense_map"), whitebox=True),
    "expander_conv": lambda: ExpanderHarness(plan("conv"), whitebox=True),
    "expander_conv_stride": lambda: ExpanderHarness(plan("conv_stride"), whitebox=True),
    "datapath_gn": lambda: DatapathTimingHarness(plan("gn")),
    "datapath_ilif": lambda: DatapathTimingHarness(plan("ilif")),
    "datapath_readout": lambda: DatapathTimingHarness(plan("readout")),
    "credit_gn": lambda: CreditHarness(plan("gn"), 4, whitebox=True),
    "credit_gn_lanes": lambda: CreditHarness(plan("gn_lanes"), 5, whitebox=True),
    "credit_ilif": lambda: CreditHarness(plan("ilif"), 4, whitebox=True),
    "credit_readout": lambda: CreditHarness(plan("readout"), 4, whitebox=True),
}

COVERS = {
    "skid": (lambda: SkidHarness(), 10),
    "fifo": (lambda: FifoHarness(depth=4), 20),
    "expander_dense": (lambda: ExpanderHarness(plan("dense")), 12),
    "expander_conv": (lambda: ExpanderHarness(plan("conv")), 24),
    "expander_conv_stride": (lambda: ExpanderHarness(plan("conv_stride")), 16),
    "datapath": (lambda: DatapathTimingHarness(plan("gn")), 12),
    "credit": (lambda: CreditHarness(plan("gn"), 4), 30),
}

# name: (harness with the mutant, bounded-check depth)
MUTANTS = {
    "skid_ready_when_full": (lambda: SkidHarness(dut_class=SkidReadyWhenFull), DEPTH),
    "skid_ignores_ready": (lambda: SkidHarness(dut_class=SkidIgnoresReady), DEPTH),
    "skid_repeats": (lambda: SkidHarness(dut_class=SkidRepeats), DEPTH),
    "fifo_reads_without_room": (lambda: FifoHarness(dut_class=FifoReadsWithoutRoom), DEPTH),
    "fifo_ready_when_full": (lambda: FifoHarness(dut_class=FifoReadyWhenFull), DEPTH),
    "fifo_repeating_skid": (lambda: FifoHarness(dut_class=FifoWithRepeatingSkid), DEPTH),
    "expander_dense_takes_while_busy": (
        lambda: ExpanderHarness(plan("dense"), dut_class=ExpanderTakesWhileBusy), DEPTH),
    "expander_dense_ignores_ready": (
        lambda: ExpanderHarness(plan("dense"), dut_class=ExpanderIgnoresReady), DEPTH),
    "expander_dense_one_group_short": (
        lambda: ExpanderHarness(plan("dense"), dut_class=ExpanderOneGroupShort), DEPTH),
    "expander_conv_takes_while_busy": (
        lambda: ExpanderHarness(plan("conv"), dut_class=ExpanderTakesWhileBusy), DEPTH),
    "expander_conv_ignores_ready": (
        lambda: ExpanderHarness(plan("conv"), dut_class=ExpanderIgnoresReady), DEPTH),
    "expander_conv_one_group_short": (
        lambda: ExpanderHarness(plan("conv"), dut_class=ExpanderOneGroupShort), DEPTH),
    "credit_always": (
        lambda: CreditHarness(plan("gn"), 4, sequencer_class=SequencerAlwaysCredit), 30),
    "credit_too_deep": (
        lambda: CreditHarness(plan("gn"), 4, sequencer_class=SequencerTooDeep), 30),
    "datapath_never_drops": (
        lambda: DatapathTimingHarness(plan("gn"), dut_class=DatapathNeverDrops), DEPTH),
}

# The black-box core properties (interface details off): a mutant must break one of these.
CORE = {
    "o: a stalled beat stays offered, unchanged",
    "never a beat out with none in flight",
    "never more beats in flight than the capacity",
    "the tracked beat is in flight",
    "the tracked beat leaves with its payload",
    "never an operation no event is due",
    "at most one event's operations due",
    "the tracked event has operations due",
    "only the tracked event's operations are due",
    "o offers the tracked event's next operation",
    "a push always finds room in the queue",
    "a sweep operation leaves exactly LATENCY cycles after its issue",
    "pushed or dropped, never both",
}


@pytest.mark.parametrize("name", list(PROOFS))
def test_proof(name, tmp_path):
    """The bounded check of ``DEPTH`` cycles passes and k-induction closes."""
    result = run(PROOFS[name](), mode="prove", depth=DEPTH, workdir=tmp_path)
    assert result.passed and result.inductive, str(result)


@pytest.mark.parametrize("name", list(COVERS))
def test_reachable(name, tmp_path):
    """Every ``Cover`` of the black-box harness is reached within its depth."""
    harness, depth = COVERS[name]
    result = run(harness(), mode="cover", depth=depth, workdir=tmp_path)
    assert result.passed, str(result)


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_fails(name, tmp_path):
    """The mutant fails its bounded check with a counterexample to a core property."""
    make, depth = MUTANTS[name]
    harness = make()
    harness.interface = False
    result = run(harness, mode="bmc", depth=depth, workdir=tmp_path)
    assert result.status == "FAIL", str(result)
    assert result.failed and set(result.failed) <= CORE, str(result)

