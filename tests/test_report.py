"""hwsnn report DIR: one page with accuracy, bit-exactness, resources and timing."""

import json
import subprocess
import sys

from hwsnn.frontends import data
from hwsnn.sim.run import simulate
from hwsnn.snn import golden
from hwsnn.snn.qnet import load as load_qnet

PNG = b"\x89PNG\r\n\x1a\n"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hwsnn", *args], capture_output=True,
                          text=True)


def test_report_before_and_after_sim_and_build(tmp_path):
    d = tmp_path / "mlp"
    r = _cli("convert", "digits-mlp", "-o", str(d), "--method", "gn", "--group-size", "4",
             "--timesteps", "2", "--json")
    assert r.returncode == 0, r.stderr

    r = _cli("report", str(d), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    md = (d / "report.md").read_text()
    assert f"Not simulated yet: `hwsnn sim {d}`" in md and "Not built yet" in md
    assert (d / out["figures"]["cycles_per_layer"]).read_bytes()[:8] == PNG
    # The golden accuracy on the page is the golden model's, computed here again.
    net = load_qnet(d)
    x, y = data.load("digits", "test")
    acc = float((golden.run(net, golden.encode(net, x)).predictions == y).double().mean())
    assert out["evaluation"]["golden_accuracy"] == acc
    assert f"| {100 * acc:.2f} % |" in md

    # After a simulation and a build (a build report as 'hwsnn build' writes it).
    simulate(d, simulator="icarus", samples=2, progress=False)
    build = d / "build" / "icebreaker"
    build.mkdir(parents=True)
    build.joinpath("report.json").write_text(json.dumps({
        "estimated": False, "fits": True, "fmax_mhz": 40.5, "clock_mhz": 36.0,
        "meets_clock": True, "latency_us": 290.0, "inferences_per_second": 3450.0,
        "resources": {"luts": {"used": 4000, "available": 5280},
                      "bram_blocks": {"used": 20, "available": 30},
                      "dsps": {"used": 0, "available": 8}}}))
    r = _cli("report", str(d), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    md = (d / "report.md").read_text()
    assert out["simulations"]["icarus"]["exact"] and "| icarus | 2 | bit-exact |" in md
    assert "| icebreaker | yes | 4000 / 5280 | 20 / 30 | – | 0 / 8 | 40.5 | 36 | 290 |" in md
    assert (d / out["figures"]["utilisation"]).read_bytes()[:8] == PNG


def test_report_of_a_directory_without_a_network(tmp_path):
    r = _cli("report", str(tmp_path))
    assert r.returncode == 2 and "hwsnn convert" in r.stderr
    assert not (tmp_path / "report.md").exists()
