"""The UART host link's Verilog in cocotb (Verilator and Icarus), driven by the real host
client (hwsnn.flow.host.Client) through an in-process serial shim (sim/link_bench.py), against
the golden model: IDENTIFY, INFER round trips, corrupt and truncated frames, recovery.
And fuzzed (sim/link_fuzz_bench.py): a fixed-seed run of random, truncated and corrupted
frames, every reply checked against the protocol's model (hwsnn.sim.link_model)."""

import random

import pytest
import torch
from hdl.random_nets import random_qnet

from hwsnn.flow import host
from hwsnn.hdl.verilog import fingerprint
from hwsnn.sim.link_model import Fuzzer
from hwsnn.sim.link_run import build_fuzz, build_link, fuzz_images, run_fuzz, run_link
from hwsnn.snn import golden
from hwsnn.snn.convert import convert
from hwsnn.snn.quantize import quantize

SAMPLES = 4
ERROR_CASES = [("bad CRC (payload bit)", host.ERR_CRC), ("bad CRC (CRC byte)", host.ERR_CRC),
               ("truncated", host.ERR_TRUNCATED), ("framing", host.ERR_FRAMING),
               ("bad length", host.ERR_LENGTH), ("unknown command", host.ERR_COMMAND),
               ("busy", host.ERR_BUSY)]
# After the samples in turn: one INFER after each corrupt frame (or two), one with garbage
# before it, one answered while a frame arrived (busy) and one after that.
EXTRA_INFERENCES = 8
STATUS_REQUESTS = 6


@pytest.fixture(scope="module")
def small():
    """A small random QNet (5 pixels, 5 classes) and codes with different readouts."""
    net = random_qnet(random.Random(33), "gn")
    codes = torch.randint(0, 256, (SAMPLES, *net.input.shape),
                          generator=torch.Generator().manual_seed(33))
    assert len({tuple(r) for r in golden.run(net, codes).readout.tolist()}) >= 3
    return net, codes


@pytest.fixture(scope="module")
def small_link(small, tmp_path_factory):
    """The small net's link built (once per simulator) and its run with every fault."""
    cache = {}

    def get(simulator):
        if simulator not in cache:
            design = build_link(small[0], tmp_path_factory.mktemp(f"link-{simulator}"),
                                simulator=simulator, quick_build=True)
            cache[simulator] = design, run_link(design, small[1])
        return cache[simulator]

    return get


def golden_answers(net, codes):
    res = golden.run(net, codes)
    return [(int(p), r.tolist()) for r, p in zip(res.readout, res.predictions, strict=True)]


def check_round_trips(net, codes, record, extra):
    """Every INFER gave the golden model's class and readout for its sample (checked here
    against a golden run of our own, not only by the bench), the samples in turn first."""
    want = golden_answers(net, codes)
    rows = record["inferences"]
    assert len(rows) == len(codes) + extra
    assert [r["sample"] for r in rows[:len(codes)]] == list(range(len(codes)))
    for r in rows:
        assert r["ok"] and "error" not in r, r
        assert (r["prediction"], r["values"]) == want[r["sample"]], r
        assert r["cycles"] > 0


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_identify_and_round_trips_equal_golden(small, small_link, simulator):
    net, codes = small
    design, record = small_link(simulator)
    assert record["passed"] and record["cocotb_tests"] == 1 and record["cocotb_failed"] == 0, \
        record["failed"] or record["crashed"]
    ident = next(c for c in record["checks"] if c["name"] == "identify")
    assert ident["ok"]
    assert ident["observed"] == {"version": host.PROTOCOL_VERSION,
                                 "model_id": fingerprint(net)[:16], "classes": net.classes,
                                 "pixels": codes[0].numel(), "stores": 0,
                                 "layout": "00000000"}
    check_round_trips(net, codes, record, EXTRA_INFERENCES)
    assert record["counts"]["inference_mismatches"] == 0


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_corrupt_frames_get_their_error_and_the_link_recovers(small, small_link, simulator):
    net, codes = small
    design, record = small_link(simulator)
    errors = record["errors"]
    assert [(e["case"], e["code"]) for e in errors] == ERROR_CASES
    assert all(e["ok"] for e in errors)
    truncated = next(e for e in errors if e["case"] == "truncated")
    quiet = truncated["quiet_cycles"]  # from the last bit sent to the ERROR reply
    assert design.timeout_cycles - design.divisor <= quiet <= \
        design.timeout_cycles + 20 * design.divisor
    # The INFER after each corrupt frame (and the one with garbage before it) is golden.
    contexts = [r["context"] for r in record["inferences"][len(codes):]]
    assert contexts == ["after a bad payload bit", "after a bad CRC byte",
                        "after a truncated frame", "garbage before the frame",
                        "after a framing error", "after bad length and unknown command",
                        "answered while two frames arrived", "after busy"]
    # STATUS counted every frame as the bench expected, and the last one is known here.
    statuses = record["statuses"]
    assert len(statuses) == STATUS_REQUESTS and all(s["ok"] for s in statuses), statuses
    infers = 2 * len(codes) + EXTRA_INFERENCES  # the samples in turn, then pipelined
    assert statuses[-1]["observed"] == {  # + the STATUS pipelined behind an INFER
        "accepted": 1 + infers + STATUS_REQUESTS + 1, "rejected": len(ERROR_CASES),
        "inferences": infers, "last_error": host.ERR_BUSY, "loaded": True}
    bad_crc = next(s for s in statuses if s["context"] == "after a bad payload bit")
    assert bad_crc["observed"]["last_error"] == host.ERR_CRC
    assert bad_crc["observed"]["inferences"] == 2 * len(codes) + 1  # the corrupt one never ran


def test_wrong_expectation_fails_the_bench(small, small_link):
    """A golden value changed by one makes the bench report that sample and fail."""
    net, codes = small
    design, _ = small_link("verilator")
    wrong = golden_answers(net, codes[:2])
    wrong[0][1][1] += 1
    record = run_link(design, codes[:2], faults=False, expected=wrong)
    assert not record["passed"] and record["cocotb_failed"] == 1
    assert [c["name"] for c in record["failed"]] == [  # one at a time, and pipelined
        "infer sample 0 (in turn)", "infer_many: 2 samples (pipelined, packed)"]
    assert record["failed"][0]["observed"] == list(golden_answers(net, codes[:1])[0])
    assert [r["ok"] for r in record["inferences"]] == [False, True]
    assert record["errors"] == []


def test_digits_link_equals_golden(bundled_graph, digits_test, tmp_path):
    """The bundled digits MLP (64 pixels, 10 classes, 4 lanes) behind the link, in Icarus."""
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    codes = golden.encode(net, digits_test[0][:3])
    design = build_link(net, tmp_path, simulator="icarus", lanes=4)
    record = run_link(design, codes)
    assert record["passed"] and record["cocotb_failed"] == 0, \
        record["failed"] or record["crashed"]
    check_round_trips(net, codes, record, EXTRA_INFERENCES)
    assert [(e["case"], e["code"]) for e in record["errors"]] == ERROR_CASES
    # The classes are the golden model's, so the link's accuracy is the golden accuracy.
    observed = [r["prediction"] for r in record["inferences"][:len(codes)]]
    assert observed == golden.run(net, codes).predictions.tolist()


def test_spram_weights_loaded_over_the_link(small, tmp_path):
    """The input weights in UP5K SPRAM primitives (simulated with Yosys's model of
    SB_SPRAM256KA), written by the real client's LOAD frames: INFER is refused before,
    and every round trip after equals the golden model, corrupt frames included."""
    net, codes = small
    first = net.populations[0].name
    design = build_link(net, tmp_path, simulator="icarus", lanes=2,
                        loadable=[(first, 0)], primitives=True)
    assert "SB_SPRAM256KA" in design.source.read_text()
    (spec,) = design.stores
    assert spec.depth * spec.bytes_per_word > 3 * 4  # several LOAD frames of 4 bytes
    record = run_link(design, codes, load_chunk=4)
    assert record["passed"] and record["cocotb_failed"] == 0, \
        record["failed"] or record["crashed"]
    ident = next(c for c in record["checks"] if c["name"] == "identify")
    assert ident["observed"]["stores"] == 1
    assert [(e["case"], e["code"]) for e in record["errors"]] == \
        [("infer before the weights are loaded", host.ERR_NOT_LOADED)] + ERROR_CASES
    loaded = next(s for s in record["statuses"] if s["context"] == "after loading the weights")
    assert loaded["ok"] and loaded["observed"]["loaded"]
    check_round_trips(net, codes, record, EXTRA_INFERENCES)


def test_multiply_accumulate_input_stage_over_the_link(bundled_graph, digits_test, tmp_path):
    """The board configuration of the MNIST-shaped design, on the digits MLP: input
    weights 8 lanes wide in four side-by-side SB_SPRAM256KA tiles (Yosys's model), loaded
    by the real client, read by the 8-lane multiply-accumulate input stage; every round
    trip equals the golden model."""
    net = quantize(convert(bundled_graph("digits-mlp"), method="gn", timesteps=2,
                           group_size=4, progress=False))
    codes = golden.encode(net, digits_test[0][:3])
    first = net.populations[0].name
    design = build_link(net, tmp_path, simulator="icarus", lanes=2, loadable=[(first, 0)],
                        primitives=True, input_lanes=8)
    assert design.source.read_text().count("SB_SPRAM256KA") >= 4
    (spec,) = design.stores
    assert spec.lanes == 8 and spec.bytes_per_word == 8
    record = run_link(design, codes, faults=False, load_chunk=64)
    assert record["passed"] and record["cocotb_failed"] == 0, \
        record["failed"] or record["crashed"]
    check_round_trips(net, codes, record, 0)


def test_serial_processor_weights_loaded_over_the_link(bundled_graph, digits_test, tmp_path):
    """The layer-serial processor with its weight banks in UP5K SPRAM primitives (Yosys's
    model; 4-bit weights, two to a 16-bit location), loaded by the real client's LOAD
    frames: INFER refused before, every round trip after equal to the golden model."""
    from hwsnn.hdl.serial import SerialPlan
    net = quantize(convert(bundled_graph("digits-cnn"), method="gn", timesteps=2,
                           group_size=4, progress=False), weight_bits=4)
    plan = SerialPlan(net, lanes=2, membrane_words=64, keep_current=False, loadable=True)
    codes = golden.encode(net, digits_test[0][:3])
    design = build_link(net, tmp_path, simulator="icarus", primitives=True, serial=plan)
    assert design.source.read_text().count("SB_SPRAM256KA") == 2
    assert [s.bytes_per_word for s in design.stores] == [1, 1]
    record = run_link(design, codes, faults=False, load_chunk=256)
    assert record["passed"] and record["cocotb_failed"] == 0, \
        record["failed"] or record["crashed"]
    assert [(e["case"], e["code"]) for e in record["errors"]] == \
        [("infer before the weights are loaded", host.ERR_NOT_LOADED)]
    check_round_trips(net, codes, record, 0)


FUZZ_SEED = 17


@pytest.fixture(scope="module")
def fuzz_link(small, tmp_path_factory):
    """The small net's link in the fuzz harness (Verilator), every projection's weights
    in a run-time store (LOAD and COMMIT frames)."""
    net = small[0]
    loadable = [(p.name, k) for p in net.populations for k in range(len(p.projections))]
    return build_fuzz(net, tmp_path_factory.mktemp("fuzz"), lanes=2, loadable=loadable,
                      quick_build=True)


def test_fuzzed_frames_are_answered_as_the_protocol_says(fuzz_link):
    """400 frames, half of them bad, through the real client: every reply is the one the
    protocol's model gives (ERROR codes, counters, busy; INFER equal to the golden
    model), starts when the model says, and after every bad frame a good request is
    answered correctly; no reply is missing (a hang) and none is extra. First the fixed
    cases (bugs the fuzz found): a weight load with a frame hit on the line so that a
    second reply is still to come when the first ERROR arrives must load again once the
    line is quiet (``Client.load_weights`` loaded again at once and failed every time)."""
    assert len(fuzz_link.stores) == 4
    r = run_fuzz(fuzz_link, frames=400, bad_frames=200, seed=FUZZ_SEED, images=16,
                 fixed=Fuzzer.FIXED)
    assert r["passed"] and r["cocotb_failed"] == 0, r["failures"][:1] or r["crashed"]
    assert r["frames"] >= 400 and r["bad_frames"] >= 200
    assert r["answered_as_expected"] == r["frames"]
    assert r["hangs"] == 0 and r["wrong_answers"] == 0 and r["late_count"] == 0
    assert r["line"] == {"bad_stop_bits": 0, "glitches": 0, "overflow": False,
                         "mismatched_writes": 0, "left_over_bytes": 0}
    # every kind of bad frame was tried, every good request, and every error code came
    assert set(r["kinds"]) >= set(Fuzzer.BAD) | set(Fuzzer.BAD_STORES) | {
        "identify", "status", "infer", "infer_packed", "pipelined", "load", "commit", "gaps"}
    assert sorted(map(int, r["error_replies"])) == list(range(1, 10))
    for name in Fuzzer.FIXED:
        assert r["kinds"][name] == {"cases": 1, "frames": r["kinds"][name]["frames"],
                                    "bad": 1, "ok": 1}
    assert r["unanswered_errors"] > 0  # errors while an ERROR reply waited: counted only


def test_fuzz_reports_a_wrong_answer(small, fuzz_link):
    """One readout value of one image changed by one: the INFERs of that image are wrong
    answers and fail the run; nothing else is."""
    net = small[0]
    codes = fuzz_images(net, 4, FUZZ_SEED)
    res = golden.run(net, codes)
    answers = [(int(p), v.tolist()) for p, v in zip(res.predictions, res.readout,
                                                     strict=True)]
    answers[1][1][0] += 1
    r = run_fuzz(fuzz_link, frames=80, seed=FUZZ_SEED, images=4, answers=answers)
    assert not r["passed"] and r["cocotb_failed"] == 1
    assert r["wrong_answers"] > 0 and r["hangs"] == 0
    assert all("INFER" in f["problem"] and f["problem"].startswith("wrong")
               for f in r["failures"]), r["failures"]


def test_sdram_weights_loaded_over_the_link_and_read_back(tmp_path):
    """The layer-serial processor with its weights and planes in SDRAM (docs/sdram.md),
    the chip's timing-checking model empty at power-up: the real client writes the weight
    image in LOAD frames into the SDRAM's pages and COMMITs; the processor reads it back
    and only the plan's checksum makes it "loaded". INFER before is refused, every round
    trip after equals the golden model."""
    from hwsnn.hdl.serial import SerialPlan
    net = random_qnet(random.Random(61), "gn")
    plan = SerialPlan(net, lanes=2, keep_current=False, external=True)
    codes = torch.randint(0, 256, (3, *net.input.shape),
                          generator=torch.Generator().manual_seed(61))
    design = build_link(net, tmp_path, simulator="icarus", serial=plan)
    assert [s.bytes_per_word for s in design.stores] == [2]
    assert design.stores[0].depth == plan.sdram["weights"].words
    record = run_link(design, codes, faults=False, load_chunk=32)
    assert record["passed"] and record["cocotb_failed"] == 0, \
        record["failed"] or record["crashed"]
    assert [(e["case"], e["code"]) for e in record["errors"]] == \
        [("infer before the weights are loaded", host.ERR_NOT_LOADED)]
    check_round_trips(net, codes, record, 0)
    # One word loaded wrong: the read-back checksum differs, so the weights never count
    # as loaded and every INFER is refused (ERROR 7).
    page = design.stores[0]
    page.image = page.image.copy()
    page.image[len(page.image) // 2] ^= 0x0100
    record = run_link(design, codes, faults=False, load_chunk=32)
    assert not record["passed"]
    status = next(s for s in record["statuses"] if s["context"] == "after loading the weights")
    assert status["observed"]["loaded"] is False
    assert all("ERROR 7" in str(f["observed"]) for f in record["failed"]
               if f["name"].startswith("infer sample"))
