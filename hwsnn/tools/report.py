"""``hwsnn report DIR``: one Markdown page for a converted (and maybe simulated and built)
design: accuracy, bit-exactness, resources, timing, and plots.

It computes the accuracy figures afresh (``hwsnn eval``: ANN, float SNN and integer
golden model on the test data) and reads what the other commands left in DIR: the latest
``hwsnn sim`` of each simulator (``DIR/sim/<simulator>/report.json``) and every
``hwsnn build`` (``DIR/build/<board>/report.json``). What was not run is named, with the
command that runs it. Writes ``DIR/report.md`` and its plots in ``DIR/report/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import HwsnnError

FIGURES = "report"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect(directory) -> dict:
    """The figures of the page (also what ``--json`` prints)."""
    from ..snn.qnet import load as load_qnet
    from . import api
    directory = Path(directory)
    if not (directory / "qnet.json").is_file():
        raise HwsnnError(f"{directory} holds no converted network (qnet.json): run "
                         f"'hwsnn convert MODEL -o {directory}' first")
    net = load_qnet(directory)
    evaluation = api.evaluate(directory)
    sims = {}
    for p in sorted(directory.glob("sim/*/report.json")):
        r = _read(p)
        if r is not None:
            sims[p.parent.name] = r
    builds = {}
    for p in sorted(directory.glob("build/*/report.json")):
        r = _read(p)
        if r is not None and not r.get("estimated", True):
            builds[p.parent.name] = r
    return {"directory": str(directory), "model": net.metadata.get("model"),
            "method": net.method, "timesteps": net.timesteps,
            "populations": [{"name": p.name, "kind": p.kind, "shape": list(p.shape),
                             "group_size": p.group_size} for p in net.populations],
            "evaluation": evaluation, "simulations": sims, "builds": builds}


def plots(r: dict, out: Path) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    ev = r["evaluation"]
    names = list(ev["ideal_cycles_per_layer"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    xs = range(len(names))
    sim = next(iter(r["simulations"].values()), None)
    rows = {row["population"]: row for row in (sim or {}).get("layers", [])}
    if sim is not None and set(rows) == set(names):
        # The simulated design's own lanes (and input stage), against its work counters.
        lanes = ", ".join(str(rows[n].get("lanes")) for n in names)
        ax.bar([x - 0.2 for x in xs], [rows[n]["ideal_cycles_per_inference"] for n in names],
               0.4, label=f"golden ideal (lanes {lanes})")
        measured = [rows[n].get("work_cycles_per_inference") for n in names]
        if any(v is not None for v in measured):
            ax.bar([x + 0.2 for x in xs], [v or 0 for v in measured], 0.4,
                   label=f"simulated ({sim['simulator']})")
    else:
        ax.bar(list(xs), [ev["ideal_cycles_per_layer"][n] for n in names], 0.5,
               label="golden ideal (1 lane)")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("cycles per inference")
    ax.set_title("work per layer")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    p = out / "cycles_per_layer.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths["cycles_per_layer"] = f"{FIGURES}/{p.name}"

    if r["builds"]:
        from ..flow.build import logic_of
        kinds = ("logic", "ffs", "bram_blocks", "spram_blocks", "dsps")
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        width = 0.8 / len(r["builds"])
        for i, (board, b) in enumerate(r["builds"].items()):
            vals = []
            for k in kinds:
                v = (logic_of(b["resources"]) if k == "logic" else b["resources"].get(k)) or {}
                used, avail = v.get("used"), v.get("available")
                vals.append(100 * used / avail if used is not None and avail else 0)
            ax.bar([x + i * width for x in range(len(kinds))], vals, width, label=board)
        ax.set_xticks([x + width * (len(r["builds"]) - 1) / 2 for x in range(len(kinds))],
                      ["logic", "FFs", "block RAM", "SPRAM", "DSP"])
        ax.set_ylabel("% of the device (post-route)")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        p = out / "utilisation.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths["utilisation"] = f"{FIGURES}/{p.name}"
    return paths


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def markdown(r: dict) -> str:
    ev = r["evaluation"]
    d = r["directory"]
    gs = ev.get("group_size") or []
    lines = [f"# {r['model'] or 'network'}: {r['method'].upper()}, T = {r['timesteps']}"
             + (f", τ = {', '.join(map(str, gs))}" if gs else ""), "",
             "Layers: " + ", ".join(f"{p['name']} {p['kind']} {'×'.join(map(str, p['shape']))}"
                                    for p in r["populations"]) + ".", "",
             "## Accuracy", "",
             f"On {ev['samples']} test samples, {ev['weight_bits']}-bit weights:", "",
             "| ANN | float SNN | integer golden (what the hardware computes) |",
             "|---|---|---|",
             f"| {_pct(ev['ann_accuracy'])} | {_pct(ev['float_snn_accuracy'])} | "
             f"{_pct(ev['golden_accuracy'])} |", "",
             f"MSE between ANN logits and SNN readout: {ev['mse_float_snn']:.4f} (float), "
             f"{ev['mse_golden']:.4f} (golden). SOPs per inference: "
             f"{ev['sops_per_inference']:,.0f}."]
    if "exact_reference" in ev:
        lines += ["", f"Exact reference {ev['exact_reference']}: "
                  f"{_pct(ev['exact_reference_accuracy'])}, "
                  f"{ev['prediction_mismatches']} predictions differ from the golden model."]
    lines += ["", "## Bit-exactness (RTL against the golden model)", ""]
    if r["simulations"]:
        lines += ["| simulator | samples | result | cycles / inference | ideal | latency "
                  "(cycles) |", "|---|---|---|---|---|---|"]
        for name, s in r["simulations"].items():
            result = "bit-exact" if s["exact"] else (
                f"**{s['mismatches']} mismatches**: {s.get('first_divergence_text')}")
            lines.append(f"| {name} | {s['samples']} | {result} | "
                         f"{s['cycles_per_inference']:,.0f} | "
                         f"{s['ideal_cycles_per_inference']:,.0f} | {s['latency_cycles']:,} |")
    else:
        lines.append(f"Not simulated yet: `hwsnn sim {d}`.")
    lines += ["", f"![cycles per layer]({r['figures']['cycles_per_layer']})", "",
              "## Boards", ""]
    if r["builds"]:
        from ..flow.build import logic_of
        lines += ["| board | fits | logic cells / LUT4s | block RAM | SPRAM | DSP | Fmax (MHz) "
                  "| clock (MHz) | latency (µs) | inferences/s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for board, b in r["builds"].items():
            res = {**b["resources"], "logic": logic_of(b["resources"])}

            def use(kind, res=res):
                v = res.get(kind) or {}
                return f"{v['used']} / {v['available']}" if v.get("used") is not None \
                    and v.get("available") else "–"
            lines.append(f"| {board} | {'yes' if b['fits'] else 'no'} | {use('logic')} | "
                         f"{use('bram_blocks')} | {use('spram_blocks')} | {use('dsps')} | "
                         f"{b['fmax_mhz']:.1f} | {b['clock_mhz']:g}"
                         f"{'' if b['meets_clock'] else ' (NOT met)'} | "
                         f"{b['latency_us']:.0f} | {b['inferences_per_second']:,.0f} |")
        if "utilisation" in r["figures"]:
            lines += ["", f"![utilisation]({r['figures']['utilisation']})"]
    else:
        lines.append(f"Not built yet: `hwsnn build {d} --board NAME` (see `hwsnn boards`).")
    lines.append("")
    return "\n".join(lines)


def write(directory) -> dict:
    """Collect, plot, and write ``DIR/report.md``; returns the figures with the path."""
    directory = Path(directory)
    r = collect(directory)
    r["figures"] = plots(r, directory / FIGURES)
    path = directory / "report.md"
    path.write_text(markdown(r))
    r["report"] = str(path)
    return r
