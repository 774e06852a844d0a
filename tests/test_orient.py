"""Orientation per tile (coder tool 2): every orientation round-trips, the choice travels in the
stream before the offsets, the encoder's float copy of the network tracks the exact one, and a
corrupted choice is refused."""
import numpy as np
import pytest
import torch

import armcodec
from armcodec import container
from armcodec.coding import side
from armcodec.encoder import group
from armcodec.encoder import search
from armcodec.coding.ans import StreamEncoder
from armcodec.coding.scan import DecodeCoder
from armcodec.errors import FormatError

from armcodec.container import CoderTools
from conftest import DATA, load, retool


@pytest.mark.parametrize("forced", range(side.N_ORIENTATIONS))
@pytest.mark.parametrize("name", ["kodim05_rgb_37x29.png", "kodim03_rgba_32x24.png", "usc_sipi_6.1_gray_40x33.png"])
def test_every_orientation_round_trips(tiny_dir, monkeypatch, forced, name):
    """Edge tiles of odd sizes, RGB, RGBA (alpha as its own plane group) and grey: whatever the
    encoder picks, the decoder puts every pixel back where it was."""
    chosen = []

    def pick(proxy, tiles, device):
        chosen.append(len(tiles))
        return np.full(len(tiles), forced, dtype=np.int64)

    monkeypatch.setattr(group, "choose_orientations", pick)
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=True, feedback=False)
    img = load(name)
    enc = codec.encode(img)
    assert chosen and container.parse(enc.data)[0].tools == CoderTools(True, True, binned=True)
    dec = codec.decode(enc.data)
    assert np.array_equal(dec.array.reshape(img.shape), img)
    assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)


def test_mirrored_tiles_code_different_bits(tiny_dir, monkeypatch):
    """The orientation really changes what the model sees (not a no-op flag)."""
    img = load("kodim05_rgb_37x29.png")
    bits = []
    for o in range(side.N_ORIENTATIONS):
        monkeypatch.setattr(group, "choose_orientations", lambda p, t, d, o=o: np.full(len(t), o, dtype=np.int64))
        bits.append(armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=True, feedback=False).encode(img).model_bits)
    assert len(set(round(b, 6) for b in bits)) == side.N_ORIENTATIONS


def test_float_copy_tracks_the_integer_model_and_picks_the_cheapest():
    """The shipped default's dequantized float copy is within 0.3% of the exact model bits in every
    orientation, and the orientation it picks costs at most 0.3% more (exact bits) than the best."""
    codec = armcodec.Codec(device="cpu", orient=False, tile_size=64)
    img = load("kodim23_rgb_64x48.png")
    proxy = codec.model.net.float_proxy()
    exact = []
    for o in range(side.N_ORIENTATIONS):
        flipped = search.orient(torch.from_numpy(img.copy()).permute(2, 0, 1), o).permute(1, 2, 0).numpy()
        exact.append(armcodec.Codec(device="cpu", adaptive=False, tile_size=64).encode(flipped).model_bits)
        x = torch.from_numpy(np.ascontiguousarray(flipped)).permute(2, 0, 1).float()[None]
        with torch.no_grad():
            assert float(proxy(x).sum()) == pytest.approx(exact[-1], rel=3e-3)
    pick = int(search.choose_orientations(proxy, [img], "cpu")[0])
    assert exact[pick] <= min(exact) * 1.003


def test_orientation_is_the_models_setting_unless_asked(tiny_dir):
    assert armcodec.Codec(device="cpu").profile == 9
    assert armcodec.Codec(device="cpu", feedback=False).profile == 3
    assert armcodec.Codec(device="cpu", orient=False).profile == 8
    assert armcodec.Codec(device="cpu", orient=False, feedback=False).profile == 2
    assert armcodec.Codec("fast", device="cpu").profile == 8
    assert armcodec.Codec("max", device="cpu").profile == 9
    assert armcodec.Codec("max", device="cpu", feedback=False).profile == 3
    assert armcodec.Codec("max", device="cpu", orient=False).profile == 8
    assert armcodec.Codec("max", device="cpu", adaptive=False).profile == 1
    assert armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=True, feedback=False).profile == 3


def test_model_bits_count_the_orientation_symbols(tiny_dir, monkeypatch):
    """One 2-bit symbol per tile on top of the adaptation's bits, and the file stays within 0.5%."""
    img = load("kodim05_rgb_37x29.png")
    monkeypatch.setattr(group, "choose_orientations", lambda p, t, d: np.zeros(len(t), dtype=np.int64))
    oriented = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=True, feedback=False).encode(img)
    plain = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=False, feedback=False).encode(img)
    header, streams = container.parse(oriented.data)
    assert oriented.model_bits - plain.model_bits == pytest.approx(len(streams) * np.log2(side.N_ORIENTATIONS), rel=1e-4)
    overhead = len(oriented.data) - sum(len(s) for s in streams)
    assert oriented.model_bits <= len(oriented.data) * 8 <= oriented.model_bits * 1.005 + 8 * overhead + 64 * len(streams)


@pytest.mark.parametrize("symbol", [side.N_ORIENTATIONS, 255])
def test_invalid_orientation_symbol_is_refused(symbol):
    enc = StreamEncoder()
    enc.push(np.array([0]), side.side_tables(1))
    enc.push(np.array([symbol]), side.side_tables(1, side.N_ORIENTATIONS))
    with pytest.raises(FormatError, match="orientation"):
        DecodeCoder([enc.finish()], "cpu", channels=1, blocks=(np.zeros(0, np.int64), [1]), oriented=True)


def test_orientation_comes_before_the_offsets():
    enc = StreamEncoder()
    enc.push(side.to_symbols(np.array([3, -2])), side.side_tables(2))
    enc.push(np.array([2]), side.side_tables(1, side.N_ORIENTATIONS))
    dec = DecodeCoder([enc.finish()], "cpu", channels=2, blocks=(np.zeros(0, np.int64), [1]), oriented=True)
    assert dec.adaptation.orientations.tolist() == [2]
    assert dec.adaptation.shifts.tolist() == [[3, -2]]


def test_tile_coords_are_their_own_inverse():
    h, w = np.array([5]), np.array([7])
    i, j = np.meshgrid(np.arange(5), np.arange(7), indexing="ij")
    i, j = i.ravel(), j.ravel()
    for o in range(side.N_ORIENTATIONS):
        oo = np.full(len(i), o)
        r, c = side.tile_coords(oo, h, w, i, j)
        assert sorted(zip(r, c)) == sorted(zip(i, j))
        assert np.array_equal(np.stack(side.tile_coords(oo, h, w, r, c)), np.stack([i, j]))
        grid = torch.arange(35).view(5, 7)
        assert np.array_equal(search.orient(grid, o).numpy()[i, j], grid.numpy()[r, c])


@pytest.mark.parametrize("claimed", [CoderTools(), CoderTools(True)])
def test_oriented_streams_read_with_other_tools_are_caught(tiny_dir, claimed):
    """Streams with orientations read without the orientation tool never give a wrong image."""
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=True, feedback=False)
    data = retool(codec.compress(DATA / "kodim05_rgb_37x29.png"), claimed)
    with pytest.raises(armcodec.ArmcodecError):
        codec.decode(data)


def test_a_cheaper_proxy_picks_the_orientation_and_the_file_still_decodes(monkeypatch):
    """``default`` searches orientations with the float copy of ``fast`` (its manifest's
    ``orient_proxy``): the choice only steers the encoder, so the file decodes exactly."""
    seen = []
    real = group.choose_orientations

    def spy(proxy, tiles, device):
        seen.append(proxy.cfg.width)
        return real(proxy, tiles, device)

    monkeypatch.setattr(group, "choose_orientations", spy)
    img = load("kodim05_rgb_37x29.png")
    fast_width = armcodec.Codec("fast", device="cpu").model.net.cfg.width
    own_width = armcodec.Codec(device="cpu").model.net.cfg.width
    assert fast_width != own_width
    for kwargs, width in (({}, fast_width), ({"orient_proxy": "default"}, own_width), ({"model": "max"}, own_width)):
        codec = armcodec.Codec(device="cpu", orient=True, tile_size=16, **kwargs)
        data = codec.compress(img)
        assert seen and set(seen) == {width}
        seen.clear()
        assert np.array_equal(armcodec.Codec(device="cpu").decompress(data), img)


def test_an_unknown_orientation_proxy_fails_when_the_codec_is_made():
    with pytest.raises(armcodec.errors.ModelError, match="unknown model"):
        armcodec.Codec(device="cpu", orient=True, orient_proxy="nope")
    assert armcodec.Codec(device="cpu", orient=False, orient_proxy="nope").orient_proxy is None


def test_proxy_in_strips_gives_the_whole_tiles_bits(monkeypatch):
    """The orientation search runs its float proxy in strips with the rows above each (the rows
    its output reads): every estimate is the whole tile's (up to float32 rounding where oneDNN
    takes another kernel for a strip's shape: the same bits on the Kodak tiles, docs/PROFILE.md),
    and so is the pick, in lanes or not."""
    proxy = armcodec.Codec(device="cpu")._proxy_net()  # the default's: `fast`'s float copy
    img = load("kodim05_rgb_130x70.png")
    x = torch.from_numpy(img.copy()).permute(2, 0, 1).float()[None]
    with torch.no_grad():
        whole = proxy(x.contiguous(memory_format=torch.channels_last))[:, :3].double().sum((1, 2, 3))
        for pixels in (130, 700, 1 << 30):  # one row a strip (fewer than the rows above), 5 rows, the tile
            monkeypatch.setattr(search, "PROXY_PIXELS", pixels)
            assert torch.allclose(search.proxy_bits(proxy, x, 3), whole, rtol=1e-6, atol=0)
    tiles = [img, img[:, ::-1].copy(), img[::-1].copy(), img[:64, :64].copy()]
    monkeypatch.setattr(search, "PROXY_PIXELS", 1 << 30)
    picks = search.choose_orientations(proxy, tiles, "cpu")
    monkeypatch.setattr(search, "PROXY_PIXELS", 1000)
    old = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert np.array_equal(search.choose_orientations(proxy, tiles, "cpu"), picks)
    finally:
        torch.set_num_threads(old)
    assert picks[1] == picks[0] ^ 1 and picks[2] == picks[0] ^ 2  # a mirrored tile's pick is mirrored


def _int8_runs() -> bool:
    from armcodec.exact import fused, kernels

    return fused.enabled("cpu") and kernels.int8_conv_exact()


@pytest.mark.skipif(not _int8_runs(), reason="needs a CPU whose int8 convolution is exact and the compiled loops")
def test_int8_proxy_tracks_the_float_proxy():
    """The orientation search's proxy with its blocks in int8 (encoder/int8_proxy.py): each
    block's gate convolution is the float one's on the stream rounded to 1/32, rounded to the
    gate's grid; the block's new stream is the float block's on those integers; a tile's
    estimated bits are within 0.4% of the float proxy's under every orientation, and it picks the
    float proxy's orientation where that leads clearly."""
    import torch.nn.functional as F

    from armcodec.encoder.int8_proxy import STREAM_STEPS, Int8Proxy, int8_proxy, stream_uint8
    from armcodec.models.pixelcnn import GATE_SCALE

    codec = armcodec.Codec(device="cpu")
    net = codec._proxy_net().to(memory_format=torch.channels_last)  # `fast`'s float copy
    proxy = int8_proxy(net, "cpu")
    assert isinstance(proxy, Int8Proxy) and proxy.rows_above == net.rows_above
    assert int8_proxy(net, "cuda") is None and int8_proxy(codec.model.net, "cpu") is None  # not a float PixelCNN

    gen = torch.Generator().manual_seed(5)
    rs, f, blocks = net.cfg.resid_scale, net.cfg.width, proxy.blocks
    h = (torch.randint(-net.cfg.resid_max, net.cfg.resid_max + 1, (2, f, 9, 13), generator=gen) * rs).float()
    h = h.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for k, (conv, mix) in enumerate(zip(net.gate_convs, net.mix_convs)):
            x8 = stream_uint8(h)
            x = (x8.permute(0, 3, 1, 2).double() - 128) / STREAM_STEPS
            assert (x - h.double().clamp(-128 / STREAM_STEPS, 127 / STREAM_STEPS)).abs().max() <= 0.5 / STREAM_STEPS
            up, left, _ = conv.reach
            u = F.conv2d(x, (conv.weight * conv.mask).double(), conv.bias.double(), padding=(up, left))[:, :, :9]
            want_u8 = torch.clamp(torch.round(u / GATE_SCALE) + 128, 0, 255)
            u8 = blocks.conv(blocks.gates[k], x8, 1 / STREAM_STEPS, 128, GATE_SCALE, 128)[:, :, :9].double()
            assert (u8 - want_u8).abs().max() <= 1 and (u8 != want_u8).double().mean() < 1e-3  # ties round either way
            a, b = (u8[:, :f] - 128).clamp(-64, 64), (u8[:, f:] - 96).clamp(0, 64)
            g = torch.floor(a * b / 64) * GATE_SCALE  # the exact model's gate
            v = F.conv2d(g, mix.weight.double(), mix.bias.double()).clamp(-4, 4)
            want = (h.double() + v).clamp(-net.cfg.resid_max * rs, net.cfg.resid_max * rs)
            blocks.block(k, h)
            assert torch.allclose(h.double(), want, rtol=0, atol=1e-4)

    for name in ("kodim05_rgb_130x70.png", "kodim23_rgb_64x48.png"):  # small tiles: their borders weigh more
        x = torch.from_numpy(load(name).copy()).permute(2, 0, 1).float()[None]
        with torch.no_grad():
            for o in range(side.N_ORIENTATIONS):
                flipped = search.orient(x, o)
                assert float(search.proxy_bits(proxy, flipped, 3)) == \
                    pytest.approx(float(search.proxy_bits(net, flipped, 3)), rel=4e-3)
    a, b = load("kodim05_rgb_37x29.png"), load("kodim23_rgb_64x48.png")  # float picks 3 and 1, >= 0.1% ahead
    tiles = [a, a[:, ::-1].copy(), b, b[::-1].copy()]
    picks = search.choose_orientations(net, tiles, "cpu")
    assert list(picks) == [3, 2, 1, 3]
    search.INT8_PROXY = False
    try:
        assert np.array_equal(search.choose_orientations(net, tiles, "cpu"), picks)
    finally:
        search.INT8_PROXY = True


def test_int8_proxy_kernels_round_and_gate_as_torch_does():
    """The int8 proxy's compiled loops: the stream to uint8 as torch rounds (half to even) and
    clamps, and the gate of uint8 values as the exact model's integers: ``(a * b) >> 6``."""
    from armcodec.models import float_kernels

    gen = torch.Generator().manual_seed(2)
    h = (torch.randint(-700, 701, (2, 5, 7, 6), generator=gen) / 128).float()
    h[0, 0, 0, :4] = torch.tensor([0.5 / 32, 1.5 / 32, -0.5 / 32, 2.5 / 32])  # ties
    out = np.empty((2, 5, 7, 6), dtype=np.uint8)
    float_kernels.to_uint8(h.numpy(), np.float32(32), out)
    assert np.array_equal(out, torch.clamp(torch.round(h * 32) + 128, 0, 255).to(torch.uint8).numpy())

    u8 = torch.randint(0, 256, (2, 6, 7, 8), generator=gen, dtype=torch.uint8).numpy()
    got = np.zeros((2, 5, 7, 4), dtype=np.uint8)
    float_kernels.gate_uint8(u8, 5, 4, got)
    u = u8[:, :5].astype(np.int64) - 128
    a, b = np.clip(u[..., :4], -64, 64), np.clip(u[..., 4:] + 32, 0, 64)
    assert np.array_equal(got.astype(np.int64), np.floor_divide(a * b, 64) + 128)
