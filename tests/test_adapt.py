"""Per-tile adaptation (coder tool 1): the choice is honest, it travels in the stream, and a
corrupted choice is refused."""
import numpy as np
import pytest
import torch

import armcodec
from armcodec import container
from armcodec.coding import side
from armcodec.encoder import search
from armcodec.coding.ans import StreamEncoder
from armcodec.coding.scan import DecodeCoder, Schedule, Tile, tile_grid
from armcodec.errors import FormatError
from armcodec.models.pixelcnn_exact import WavefrontState
from armcodec.exact.tables import channel_tables, symbol_bits

from armcodec.container import CoderTools
from conftest import DATA, load, retool


def _params(net, img):
    h, w, _ = img.shape
    sched = Schedule([Tile(0, 0, h, w)], net, max(h, w))
    values = torch.from_numpy(img[sched.i, sched.j].astype(np.int64))
    state = WavefrontState(net, 1, max(h, w), "cpu")
    pos = state.flat_index(sched.n, sched.i, sched.j)
    state.write_pixels(pos, values)
    return net.run(state, pos).long(), values


def test_estimate_matches_the_real_tables_and_the_choice_is_the_cheapest():
    """On a real image with the shipped model: the encoder's estimate is within 0.1% of the bits of
    the real tables for every offset, and the offset it picks costs (in real bits) at most 0.1%
    more than the best one."""
    m = armcodec.Codec("default", "cpu").model
    img = load("kodim23_rgb_64x48.png")
    params, values = _params(m.net, img)
    one_block = torch.zeros(len(values), dtype=torch.int64)
    chosen = search.choose_shifts(params, values, one_block, 1, m.net.cfg, m.luts)[0]
    for c in range(3):
        real = {}
        for d in range(side.SHIFT_MIN, side.SHIFT_MAX + 1):
            shift = torch.full((len(values),), d, dtype=torch.int64)
            real[d] = symbol_bits(channel_tables(params, c, values[:, :c], m.net.cfg, m.luts, shift), values[:, c])
            est = float(search.estimate_bits(params, values, c, m.net.cfg, m.luts, d).sum())
            assert est == pytest.approx(real[d], rel=1e-3)
        assert real[int(chosen[c])] <= min(real.values()) * 1.001


def test_every_shift_at_once_gives_each_shifts_estimate():
    """The search's estimate of all shifts from one window of scales (``bits_of_shifts``) equals
    the estimate of each shift alone, bit for bit: on real parameters and on log2-scales far
    beyond the grid at both ends (where the clamp holds the edge scale) and values 0 and 255."""
    m = armcodec.Codec("default", "cpu").model
    params, values = _params(m.net, load("kodim23_rgb_64x48.png"))
    cfg = m.net.cfg
    k, g = cfg.mixtures, cfg.image_channels
    gen = torch.Generator().manual_seed(5)
    wild = torch.randint(-400, 400, (3000, cfg.n_params), generator=gen)
    wild[:, 2 * g * k : 3 * g * k] = torch.randint(-70, 80, (3000, g * k), generator=gen)
    wild_values = torch.randint(0, 256, (3000, g), generator=gen)
    wild_values[:300], wild_values[300:600] = 0, 255
    for p, v in ((params, values), (wild, wild_values)):
        for c in range(g):
            est = search._BinEstimate(p, v, c, cfg, search._CdfRows(m.luts))
            every = est.bits_of_shifts(side.SHIFT_MIN, side.N_SHIFTS)
            for n, d in enumerate(range(side.SHIFT_MIN, side.SHIFT_MAX + 1)):
                assert torch.equal(every[:, n], est.bits(d)), (c, d)


def test_adaptive_file_is_smaller_and_both_profiles_decode():
    img = load("kodim05_rgb_130x70.png")
    plain = armcodec.Codec(device="cpu", adaptive=False).encode(img)
    adaptive = armcodec.Codec(device="cpu", feedback=False, orient=False).encode(img)
    assert container.parse(plain.data)[0].tools == CoderTools(binned=True)
    assert container.parse(adaptive.data)[0].tools == CoderTools(True, binned=True)
    assert len(adaptive.data) < len(plain.data)
    codec = armcodec.Codec(device="cpu")
    for enc in (plain, adaptive):
        dec = codec.decode(enc.data)
        assert np.array_equal(dec.array, img)
        assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)


def test_model_bits_count_the_offsets_and_the_file_stays_within_overhead():
    """With adaptation model_bits is the two-part code: pixels under the shifted tables plus the
    offsets under their fixed table (4 bits each); the file is within 0.5% (+ container) of it."""
    img = load("kodim05_rgb_130x70.png")
    enc = armcodec.Codec(device="cpu", feedback=False, orient=False).encode(img)
    header, streams = container.parse(enc.data)
    blocks = sum(-(-t.h // side.BLOCK) * -(-t.w // side.BLOCK) for t in tile_grid(70, 130, header.tile))
    offset_bits = side.side_bits(blocks * 3)
    assert offset_bits == pytest.approx(blocks * 3 * np.log2(side.N_SHIFTS), rel=1e-3)
    overhead = len(enc.data) - sum(len(s) for s in streams)
    assert enc.model_bits <= len(enc.data) * 8 <= enc.model_bits * 1.005 + 8 * overhead + 64 * len(streams)


def test_tool_flip_is_caught(tiny_codec):
    """The same streams read without the adaptation never give a wrong image."""
    data = retool(tiny_codec.compress(DATA / "kodim05_rgb_37x29.png"), CoderTools())
    with pytest.raises(armcodec.ArmcodecError):
        tiny_codec.decode(data)


@pytest.mark.parametrize("symbol", [side.N_SHIFTS, 255])
def test_invalid_adaptation_symbol_is_refused(symbol):
    enc = StreamEncoder()
    enc.push(np.array([symbol]), side.side_tables(1))
    with pytest.raises(FormatError, match="adaptation"):
        DecodeCoder([enc.finish()], "cpu", channels=1, blocks=(np.zeros(0, np.int64), [1]))


def test_side_symbols_round_trip():
    shifts = np.array([[side.SHIFT_MIN, 0, side.SHIFT_MAX], [1, -1, 2]])
    enc = StreamEncoder()
    enc.push(side.to_symbols(shifts.ravel()), side.side_tables(6))
    dec = DecodeCoder([enc.finish()], "cpu", channels=3, blocks=(np.zeros(0, np.int64), [2]))
    assert dec.adaptation.shifts.tolist() == shifts.tolist()


def test_blocks_cover_edge_tiles():
    """Tiles of 70x45 and 6x33 pixels: 3x2 and 1x2 blocks, numbered tile after tile, row-major."""
    tiles = [Tile(0, 0, 45, 70), Tile(0, 70, 33, 6)]
    sched = Schedule(tiles, armcodec.Codec("default", "cpu").model.net, 16)
    block_of, counts = side.Adaptation.blocks(tiles, sched.n, sched.i, sched.j)
    assert counts == [6, 2]
    expect = np.where(sched.n == 0, (sched.i // 32) * 3 + sched.j // 32, 6 + sched.i // 32)
    assert np.array_equal(block_of, expect)
