"""End-to-end images per second through a board design's UART host link, simulated.

The design as ``hwsnn build`` made it for a board (its network, lanes, input stage,
weights in SPRAM, the link at the build's clock and baud rate; read from
``DIR/build/<board>/report.json``) runs in Verilator under the cocotb link bench
(``sim/link_bench.py``), which bit-bangs the UART at that rate and runs the unchanged host
client (``hwsnn.flow.host.Client``): the weights are loaded over the link first, then the test
images go out

- pipelined and packed (``Client.infer_many``: zero runs coded, the next frame streaming
  in while the board computes the one before), and
- one at a time, not packed (``Client.infer`` with plain INFER frames), for comparison,

every answer checked against the golden model. Images per second = images × clock /
simulated cycles from the first byte written to the last reply byte read.

    .venv/bin/python benchmarks/link_throughput.py /tmp/mlp-gn --board icebreaker \\
        --samples 200 --json build/bench/link_throughput.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hwsnn.sim.link_run import link_throughput


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", type=Path, help="a converted network with a build")
    ap.add_argument("--board", default="icebreaker")
    ap.add_argument("--samples", type=int, default=200, help="test images, pipelined")
    ap.add_argument("--sequential", type=int, default=20,
                    help="test images one at a time, for comparison (0: skip)")
    ap.add_argument("--json", type=Path, help="write the result here")
    ap.add_argument("--work", type=Path, help="simulator build directory (kept)")
    args = ap.parse_args(argv)
    r = link_throughput(args.directory, args.board, args.samples, args.sequential, args.work)
    for mode, run in r["runs"].items():
        print(f"{mode:10s} {run['samples']:5d} images: {run['images_per_second']:8.0f} "
              f"images/s, {run['bytes_per_image']:.0f} bytes/image sent, compute "
              f"{run['inference_us_mean']:.1f} µs/image, all golden")
    print(f"(at {r['clock_mhz']:g} MHz, {r['baud']:,} baud; protocol 2 at 115200 baud: "
          f"{r['protocol2_115200_images_per_second']:.1f} images/s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
