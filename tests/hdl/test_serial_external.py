"""The layer-serial plan with its weights and spike planes in external SDRAM
(``SerialPlan(external=True)``, docs/sdram.md): the tiles bounded by the weight buffer, each
tile's weight image by hand, the SDRAM's words, and the model run from that image bit for
bit as the golden model, moving exactly the words the plan counts."""

import random

import numpy as np
import pytest
import torch

from hwsnn.errors import ParameterError
from hwsnn.hdl.serial import SerialPlan, decode_program
from hwsnn.hdl.serial_model import SerialMachine
from hwsnn.snn import golden
from hwsnn.snn.cifar_nets import cifar_qnet
from hwsnn.snn.random_nets import METHODS, random_codes, random_qnet, small_cifar_qnet

from .test_serial import _net, _pop


def _wide_net():
    """input (1, 4, 4) → h: conv 3×3, padding 1, 5 channels (τ = 2) → out: readout 3."""
    from hwsnn.snn.qnet import QProjection
    rng = np.random.default_rng(3)
    h = _pop("h", "gn", (5, 4, 4), [QProjection("input", "conv",
                                                rng.integers(-9, 10, (5, 1, 3, 3)), 1, 1)])
    out = _pop("out", "readout", (3,), [QProjection("h", "dense",
                                                     rng.integers(-9, 10, (3, 80)))])
    return _net((1, 4, 4), [h, out])


def _same_as_golden(plan, codes):
    run = SerialMachine(plan).run(codes)
    ref = golden.run(plan.net, codes, lanes=plan.lanes, record=True)
    assert torch.equal(run.readout, ref.readout)
    for name, counts in run.outputs.items():
        assert torch.equal(counts, ref.outputs[name]), name
    moved = plan.transfers()
    for key, words in run.sdram.items():
        assert torch.equal(words, torch.full_like(words, moved[key])), key
    # (the ideal: the on-chip processor's, and a cycle a weight word loaded)
    assert torch.equal(run.scan + run.ops + run.sdram["weights"], plan.ideal_cycles(ref, codes))
    return run


def test_a_hand_worked_external_plan():
    net = _wide_net()
    h_w = net.populations[0].projections[0].stored  # [5, 1, 3, 3]
    o_w = net.populations[1].projections[0].stored  # [3, 80]
    # 2 lanes of 8-bit weights: a weight word is 16 bits, one SDRAM word. h has 9 rows
    # (its taps), 3 lane groups; a buffer of 20 words holds 2 of its groups a tile, and
    # out's 80 rows (h's 16 positions × 5 channels) need 80 words for its 2 groups... so
    # with 90 words: h in one tile of 3 groups (27 words), out in one of 2 (160 > 90: 1).
    plan = SerialPlan(net, lanes=2, external=True, weight_words=90)
    h, out = plan.layers
    assert h.tiles == ((0, 5),) and out.tiles == ((0, 2), (2, 3))
    assert plan.weight_word_sdram == 1 and plan.plane_word_sdram == 1  # 2 × 2-bit counts
    t_h, t_o1, t_o2 = plan.tiles
    assert (t_h.weight_addr, t_h.weight_words) == (0, 27)
    assert (t_o1.weight_addr, t_o1.weight_words) == (27, 80)
    assert (t_o2.weight_addr, t_o2.weight_words) == (107, 80)
    assert plan.memories["weights"] == (16, 80) and plan.memories["planes"][1] == 0
    # Tile h: tap (0, ky, kx) = row ky·3 + kx, its 3 groups' words in a row: channels
    # 0-1, 2-3, 4 and a zero lane.
    img = plan.tile_weights(0)
    for ky in range(3):
        for kx in range(3):
            r = ky * 3 + kx
            assert list(img[3 * r:3 * r + 3].reshape(-1)) == \
                [h_w[c, 0, ky, kx] for c in range(5)] + [0]
    # out's second tile: output 2 and a zero lane; its source rows in plane order
    # ((y·4 + x)·5 + c), the QNet's columns in (c, y, x) order.
    img = plan.tile_weights(2)
    for c in range(5):
        for pos in range(16):
            assert list(img[pos * 5 + c]) == [o_w[2, c * 16 + pos], 0]
    # The records' first fields: from 0 in each tile (one projection each).
    assert all(r.weight_field == 0 for t in plan.tiles for r in t.records)
    # The SDRAM: the tiles' images back to back, a buffer word one SDRAM word (low lane
    # in the low byte), then h's planes from the next 512-word row.
    image = plan.sdram_image()
    assert len(image) == 187 == plan.sdram["weights"].words
    word = int(image[27 + 3])  # out's first tile, row 3 (position 0, channel 3)
    assert (word & 0xFF, word >> 8) == (o_w[0, 3 * 16] & 0xFF, o_w[1, 3 * 16] & 0xFF)
    assert plan.sdram["planes"].base == 512
    assert plan.sdram["planes"].words == 2 * 16 * 3  # 2 steps of 16 positions × 3 groups
    assert plan.sdram_words == 512 + 96
    # Words moved a sample: the weights once (187); out's 2 tiles each read h's 2 planes
    # (48 words each); h's sweeps write its 2 planes.
    assert plan.transfers() == {"weights": 187, "plane_reads": 2 * 2 * 48,
                                "plane_writes": 2 * 48}
    # The program carries the weight image's place and size; the plan comes back from
    # its arguments.
    assert decode_program(plan.program_words(), plan.program_fields()) == plan.tiles
    again = SerialPlan(net, **plan.arguments())
    assert again.tiles == plan.tiles and again.arguments()["weight_words"] == 90
    torch.manual_seed(0)
    _same_as_golden(plan, torch.randint(0, 256, (3, 1, 4, 4)))


def test_wide_weight_words_take_powers_of_two():
    """16 lanes of 8-bit weights: 128 bits, 8 SDRAM words; of 6-bit weights, 96 bits in 8
    (a power of two, so that an address is a shift); 4-bit counts, 64 bits in 4."""
    net = small_cifar_qnet()
    plan = SerialPlan(net, 16, membrane_words=1024, keep_current=False, external=True)
    assert plan.weight_word_sdram == 8 and plan.plane_word_sdram == 4
    image = plan.sdram_image()
    k = 4  # layer 2's tile (layers 0 and 1 take two each): conv64 over the pooled map
    layer = plan.layers[2]
    w = plan.tile_weights(k)
    assert w.shape == (plan.tiles[k].weight_words, 16)
    # Its first tap's row: output channels 0-15 of (c_in 0, ky 0, kx 0), of the pooled
    # kernel (the pooling kept once), as fields of the first 8 SDRAM words of its image.
    q = net.populations[2].projections[0]
    f = 1 << layer.projections[0].pool
    at = plan.tiles[k].weight_addr * 8
    packed = sum(int(image[at + i]) << (16 * i) for i in range(8))
    fields = [(packed >> (8 * lane)) & 0xFF for lane in range(16)]
    assert fields == [int(q.stored[c, 0, 0, 0]) & 0xFF for c in range(16)]
    assert f == 2 and layer.projections[0].kernel == 3


def test_the_weight_buffer_bounds_the_tiles():
    """h, 12 input channels × 9 taps: 108 rows a lane group of 2 channels; 324 words hold
    its 3 groups, 323 two, 215 one, 107 none (out: 20 rows a group)."""
    from hwsnn.snn.qnet import QProjection
    rng = np.random.default_rng(4)
    h = _pop("h", "gn", (5, 2, 2), [QProjection("input", "conv",
                                                rng.integers(-9, 10, (5, 12, 3, 3)), 1, 1)])
    out = _pop("out", "readout", (3,), [QProjection("h", "dense",
                                                     rng.integers(-9, 10, (3, 20)))])
    net = _net((12, 2, 2), [h, out])
    for words, tiles in ((324, ((0, 5),)), (323, ((0, 4), (4, 5))),
                         (215, ((0, 2), (2, 4), (4, 5)))):
        plan = SerialPlan(net, 2, external=True, weight_words=words)
        assert plan.layers[0].tiles == tiles, words
        assert max(t.weight_words for t in plan.tiles) <= words
        _same_as_golden(plan, random_codes(random.Random(words), net, 1))
    with pytest.raises(ParameterError, match="population h: .* 108 rows .* 107 words"):
        SerialPlan(net, 2, external=True, weight_words=107)
    with pytest.raises(ParameterError, match="population 11.*4096 rows.*2048 words"):
        SerialPlan(small_cifar_qnet(), 16, external=True, weight_words=2048)


def test_bad_external_arguments():
    net = _wide_net()
    with pytest.raises(ParameterError, match="external=True only"):
        SerialPlan(net, 2, weight_words=10)
    with pytest.raises(ParameterError, match="loadable"):
        SerialPlan(net, 2, external=True, loadable=True)
    with pytest.raises(ParameterError, match="external must be True or False"):
        SerialPlan(net, 2, external="yes")
    with pytest.raises(ParameterError, match="external"):
        SerialPlan(net, 2, external=True).weight_fields()


@pytest.mark.parametrize("method", METHODS)
def test_random_networks_from_sdram(method):
    """Random networks (every method), lanes and buffers drawn: the model, loading each
    tile's weights from the SDRAM image, is bit-exact and moves the plan's words."""
    checked = 0
    for seed in range(12):
        rng = random.Random(seed)
        net = random_qnet(rng, method)
        lanes = rng.choice([1, 2, 4, 8])
        rows = max(sum(q.stored.size // q.stored.shape[0] for q in p.projections)
                   for p in net.populations)
        words = rng.choice([None, rows, 2 * rows + 1])
        plan = SerialPlan(net, lanes=lanes, keep_current=rng.random() < 0.5,
                          external=True, weight_words=words)
        _same_as_golden(plan, random_codes(rng, net, 2))
        checked += 1
    assert checked == 12


def test_resnet20_from_sdram():
    """Issue 20's ResNet-20 (GN τ = 4, T = 2), its residual blocks two projections into a
    population, each tile's weights from the SDRAM image."""
    net = cifar_qnet("resnet20")
    plan = SerialPlan(net, 16, membrane_words=1024, keep_current=False, external=True,
                      weight_words=2048)
    run = _same_as_golden(plan, random_codes(random.Random(5), net, 1))
    assert run.sdram["weights"][0] == plan.sdram["weights"].words


def test_sdram_pages_and_checksum():
    """The link loads the SDRAM's weight image as pages of 65,536 words; the processor's
    read-back checksum by hand: a = Σ w, b = Σ a, each modulo 2^32."""
    from hwsnn.hdl.serial import SDRAM_PAGE, sdram_checksum
    assert sdram_checksum([1, 2, 3]) == (10 << 32) | 6  # a: 1, 3, 6; b: 1 + 3 + 6
    big = [0xFFFF] * 70_000  # (both sums wrap)
    a = (0xFFFF * 70_000) % 2**32
    b = sum(0xFFFF * k for k in range(1, 70_001)) % 2**32
    assert sdram_checksum(big) == (b << 32) | a
    # ResNet-20's 141,144 words: two full pages and the rest, in order, the bytes
    # little-endian.
    net = cifar_qnet("resnet20")
    plan = SerialPlan(net, 16, membrane_words=1024, keep_current=False, external=True,
                      weight_words=1024)
    image = plan.sdram_image()
    pages = plan.stores
    assert len(image) == 141_144
    assert [p.depth for p in pages] == [SDRAM_PAGE, SDRAM_PAGE, 141_144 - 2 * SDRAM_PAGE]
    blob = b"".join(p.encode() for p in pages)
    assert blob == image.astype("<u2").tobytes()
    assert int.from_bytes(blob[2 * 70_000:2 * 70_001], "little") == image[70_000]
    assert plan.sdram_checksum() == sdram_checksum(image)
