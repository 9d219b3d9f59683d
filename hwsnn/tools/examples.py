"""The bundled example designs whose Verilog is kept in the repository's ``rtl/``.

    python -m hwsnn.tools.examples rtl      # regenerate (also: make rtl)

A test regenerates them and fails when ``rtl/`` is stale. (This module converts the
bundled models, so it lives outside ``hwsnn.hdl``, which reads only QNets.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..frontends.pytorch import trace
from ..hdl import verilog
from ..models import BUNDLED
from ..snn.convert import convert
from ..snn.quantize import quantize

# top name → (model, method, T, τ, lanes)
EXAMPLES = {
    "digits_mlp_gn": ("digits-mlp", "gn", 2, 4, 4),
    "digits_cnn_gn": ("digits-cnn", "gn", 2, 4, 4),
    "digits_cnn_ilif": ("digits-cnn", "ilif", 4, None, 4),
}


def example_qnet(top: str):
    model, method, steps, tau, _ = EXAMPLES[top]
    spec = BUNDLED[model]
    graph = trace(spec.load(), torch.zeros(2, *spec.input_shape))
    net = quantize(convert(graph, method=method, timesteps=steps, group_size=tau,
                           progress=False))
    net.metadata["model"] = model
    return net


def generate(out_dir, tops=None) -> list[dict]:
    """Write every example design (or those named in ``tops``) into ``out_dir``."""
    written = []
    for top in tops or EXAMPLES:
        lanes = EXAMPLES[top][4]
        written.append(verilog.write(None, example_qnet(top), lanes=lanes, top=top,
                                     out_dir=out_dir))
    return written


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "rtl")
    for desc in generate(out):
        print(f"wrote {desc['files']['verilog']} ({desc['verilog_lines']} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
