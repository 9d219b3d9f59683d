"""The payloads that travel between the parts of a layer engine (``hdl.engine``).

- ``expander_event_layout``: one event handed to an expander: the source neuron (its
  coordinates, or its index), the count and the shift of its weight term;
- ``expander_op_layout``: one memory operation an expander issues: membrane address,
  weight-ROM address, count, shift;
- ``issue_layout``: the operation the sequencer issues into the datapath in a cycle
  (an accumulation or a sweep); ``stage_layout`` adds ``valid``, as it moves down the
  datapath's pipeline;
- ``queue_layout``: one lane group of results waiting for the output serializer.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream

from .events import bits_for
from .plan import EnginePlan, ProjectionPlan

ACC, SWEEP = 0, 1  # the kinds of operation


def expander_event_layout(proj: ProjectionPlan) -> data.StructLayout:
    src = proj.src_shape
    if len(src) == 3:
        fields = {"c": range(max(2, src[0])), "y": range(max(2, src[1])),
                  "x": range(max(2, src[2]))}
    else:
        fields = {"index": range(max(2, src[0]))}
    return data.StructLayout({**fields, "count": bits_for(proj.max_count), "shift": 4})


def expander_op_layout(engine: EnginePlan, proj: ProjectionPlan) -> data.StructLayout:
    return data.StructLayout({"addr": range(max(2, engine.addresses)),
                              "waddr": range(max(2, proj.rows * engine.groups)),
                              "count": bits_for(proj.max_count), "shift": 4})


def _issue_fields(plan: EnginePlan) -> dict:
    rom_depth = max(max(1, len(p.init)) for p in plan.projections)
    return {
        "kind": 1,  # ACC or SWEEP
        "cur": 1,  # an accumulation into the input-current RAM
        "bank": 1, "addr": range(max(2, plan.addresses)), "waddr": range(max(2, rom_depth)),
        "proj": range(max(2, len(plan.projections))),
        "count": bits_for(max(p.max_count for p in plan.projections)), "shift": 4,
        "last_step": 1,  # GN sweep: reset V to V0 after firing
        "fire_k": range(max(2, plan.bits_out)),  # ILIF quotient bit
        "end": 1,  # last sweep operation of the step
        "bias_g": range(max(2, plan.groups)),  # a sweep's lane group (plan.bias_per_group)
        # cos sweeps: the first pre-simulation step (its statistics start afresh), and the
        # last one (GN: V0 replaces V; readout: cleared, not reported)
        **({"first": 1, "calibrate": 1} if plan.cos_steps else {}),
    }


def issue_layout(plan: EnginePlan) -> data.StructLayout:
    return data.StructLayout(_issue_fields(plan))


def stage_layout(plan: EnginePlan) -> data.StructLayout:
    """An operation in the pipeline: ``valid`` (bit 0), then ``issue_layout``'s fields."""
    return data.StructLayout({"valid": 1, **_issue_fields(plan)})


def issue_signature(plan: EnginePlan) -> stream.Signature:
    """Sequencer → datapath: the pipeline never stalls, so the stream is always ready."""
    return stream.Signature(issue_layout(plan), always_ready=True)


def queue_layout(plan: EnginePlan) -> data.StructLayout:
    """One entry of the output queue: a lane group's values (readout) or spike counts
    with the group's position and the end-of-step flag."""
    if plan.pop.kind == "readout":
        return data.StructLayout({"values": data.ArrayLayout(signed(plan.vbits), plan.lanes),
                                  "addr": range(max(2, plan.addresses))})
    return data.StructLayout({"counts": data.ArrayLayout(unsigned(bits_for(plan.out_count)),
                                                         plan.lanes),
                              "g": range(max(2, plan.groups)),
                              "y": range(max(2, plan.height)),
                              "x": range(max(2, plan.width)),
                              "end": 1})
