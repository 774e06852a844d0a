"""Exact round trips of real images through the library, and the rate against the model's bits."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import armcodec
from armcodec import container

from conftest import REAL_IMAGES, DATA, load


@pytest.mark.parametrize("name", REAL_IMAGES)
def test_real_images_round_trip_exactly(tiny_codec, name):
    img = load(name)
    enc = tiny_codec.encode(DATA / name)
    dec = tiny_codec.decode(enc.data)
    expect = img if img.ndim == 3 else img[:, :, None]
    assert dec.array.dtype == np.uint8
    assert np.array_equal(dec.array, expect)
    assert dec.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[expect.shape[2]]
    assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)


@pytest.mark.parametrize("name", ["kodim05_rgb_130x70.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png"])
def test_file_rate_is_within_overhead_of_model_bits(tiny_codec, name):
    enc = tiny_codec.encode(DATA / name)
    header, streams = container.parse(enc.data)
    container_bytes = len(enc.data) - sum(len(s) for s in streams)
    file_bits = len(enc.data) * 8
    assert file_bits >= enc.model_bits
    assert file_bits <= enc.model_bits * 1.005 + 8 * container_bytes + 64 * len(streams)


def test_default_model_round_trip_and_rate():
    """The shipped model: exact, and the file within 0.5% (+ container) of model_bits."""
    img = load("kodim23_rgb_64x48.png")
    codec = armcodec.Codec(device="cpu")
    enc = codec.encode(img)
    assert np.array_equal(armcodec.decompress(enc.data, device="cpu"), img)
    _, streams = container.parse(enc.data)
    overhead = len(enc.data) - sum(len(s) for s in streams)
    assert enc.model_bits <= len(enc.data) * 8 <= enc.model_bits * 1.005 + 8 * overhead + 64 * len(streams)
    assert enc.bpsp < 6.0  # a trained model, not noise


@pytest.mark.parametrize("model", ["fast", "pyramid"])
def test_binned_symbols_cost_what_the_flat_tables_cost_with_trained_weights(model):
    """Coder tool 5 (binned symbols, the default since 0.11) against 0.10's flat tables on a
    photograph with shipped weights: both exact, both headers say which, the model's bits within
    0.01% and the files within 0.05% (+ 4 bytes a stream)."""
    img = load("kodim05_rgb_130x70.png")
    binned = armcodec.Codec(model, device="cpu", classic=False).encode(img)
    flat = armcodec.Codec(model, device="cpu", classic=False, binned=False).encode(img)
    assert container.parse(binned.data)[0].tools.binned and not container.parse(flat.data)[0].tools.binned
    for enc in (binned, flat):
        assert np.array_equal(armcodec.decompress(enc.data, device="cpu"), img)
    assert binned.model_bits == pytest.approx(flat.model_bits, rel=1e-4)
    streams = len(container.parse(flat.data)[1])
    assert abs(len(binned.data) - len(flat.data)) <= len(flat.data) // 2000 + 4 * streams


def test_top_level_functions_and_shapes(tiny_dir):
    codec = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir)
    gray = load("usc_sipi_6.1_gray_40x33.png")
    out = codec.decompress(codec.compress(gray))
    assert out.shape == gray.shape and np.array_equal(out, gray)
    info = armcodec.read_info(codec.compress(gray))
    assert info["mode"] == "L" and info["width"] == 40 and info["height"] == 33


def test_tile_size_is_stored_and_used(tiny_dir):
    img = load("kodim05_rgb_37x29.png")
    for tile in (8, 13, 64):
        codec = armcodec.Codec("tiny", device="cpu", tile_size=tile, weights_dir=tiny_dir)
        data = codec.compress(img)
        assert armcodec.read_info(data)["tile_size"] == tile
        assert np.array_equal(armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir).decompress(data), img)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 23), w=st.integers(1, 23), c=st.sampled_from([1, 2, 3, 4]),
    kind=st.sampled_from(["noise", "flat", "extremes", "gradient"]), seed=st.integers(0, 2**16),
)
def test_property_any_shape_and_mode_round_trips(tiny_codec, h, w, c, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    elif kind == "flat":
        img = np.full((h, w, c), rng.integers(0, 256), dtype=np.uint8)
    elif kind == "extremes":
        img = (rng.integers(0, 2, (h, w, c)) * 255).astype(np.uint8)
    else:
        img = ((np.arange(h)[:, None, None] * 7 + np.arange(w)[None, :, None] * 11 + np.arange(c)) % 256).astype(np.uint8)
    dec = tiny_codec.decode(tiny_codec.compress(img))
    assert np.array_equal(dec.array, img)


def test_bad_arrays_are_refused(tiny_codec):
    for bad in [np.zeros((4, 4), np.int32), np.zeros((4, 4), np.float32), np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4, 3), np.uint8), np.zeros(4, np.uint8)]:
        with pytest.raises(armcodec.UnsupportedInputError):
            tiny_codec.compress(bad)


def test_grey_rgb_is_coded_as_one_plane_and_decodes_as_rgb(tiny_codec):
    """An RGB image with R = G = B (a black-and-white photograph saved as RGB) is coded as its
    grey plane, the very streams of the L image, and decodes to the RGB image bit for bit."""
    grey = load("usc_sipi_6.1_gray_40x33.png")
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    enc = tiny_codec.encode(rgb)
    dec = tiny_codec.decode(enc.data)
    assert dec.mode == "RGB" and np.array_equal(dec.array, rgb)
    assert np.array_equal(tiny_codec.decompress(enc.data), rgb)
    header, streams = container.parse(enc.data)
    assert header.grey and header.describe()["grey_rgb"] and header.mode == "RGB"
    assert streams == container.parse(tiny_codec.compress(grey))[1]
    assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)


def test_grey_rgba_keeps_its_alpha_and_a_single_colour_pixel_keeps_rgb(tiny_codec):
    la = load("usc_sipi_6.1_la_28x21.png")
    rgba = np.concatenate([np.repeat(la[:, :, :1], 3, axis=2), la[:, :, 1:]], axis=2)
    enc = tiny_codec.encode(rgba)
    header, streams = container.parse(enc.data)
    assert header.grey and header.mode == "RGBA" and len(streams) == 2 * header.n_tiles()
    assert np.array_equal(tiny_codec.decode(enc.data).array, rgba)
    almost = np.repeat(la[:, :, :1], 3, axis=2).copy()
    almost[5, 7, 2] ^= 1  # one blue sample differs: no longer grey, coded as RGB
    enc = tiny_codec.encode(almost)
    assert not container.parse(enc.data)[0].grey
    assert np.array_equal(tiny_codec.decode(enc.data).array, almost)


def test_nearest_neighbour_upscale_is_coded_as_its_blocks_and_decodes_exactly(tiny_codec):
    """An image of fy x fx blocks of equal pixels (an integer nearest-neighbour upscale) is coded
    as the small image, the very same streams, and decodes to the full image bit for bit."""
    small = load("kodim23_rgb_64x48.png")
    big = np.repeat(np.repeat(small, 3, axis=0), 2, axis=1)
    assert armcodec.api.replication_factors(big) == (3, 2)
    enc = tiny_codec.encode(big)
    header, streams = container.parse(enc.data)
    assert header.replication == (3, 2) and (header.height, header.width) == big.shape[:2]
    assert streams == container.parse(tiny_codec.compress(small))[1]
    dec = tiny_codec.decode(enc.data)
    assert np.array_equal(dec.array, big) and dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)
    almost = big.copy()
    almost[-1, -1, 1] ^= 1  # one sample breaks the last block: coded in full
    enc = tiny_codec.encode(almost)
    assert container.parse(enc.data)[0].replication == (1, 1)
    assert np.array_equal(tiny_codec.decode(enc.data).array, almost)


def test_replication_with_grey_alpha_and_one_axis(tiny_codec):
    la = load("usc_sipi_6.1_la_28x21.png")
    rgba = np.concatenate([np.repeat(la[:, :, :1], 3, axis=2), la[:, :, 1:]], axis=2)
    wide = np.repeat(rgba, 4, axis=1)  # 4x horizontally only, grey RGB with alpha
    header = container.parse(tiny_codec.compress(wide))[0]
    assert header.replication == (1, 4) and header.grey
    assert np.array_equal(tiny_codec.decompress(tiny_codec.compress(wide)), wide)
    flat = np.full((40, 24, 3), 77, np.uint8)  # one colour: the largest factors that divide
    header = container.parse(tiny_codec.compress(flat))[0]
    assert header.replication == (40, 24) and header.coded_size == (1, 1)
    assert np.array_equal(tiny_codec.decompress(tiny_codec.compress(flat)), flat)


@pytest.mark.parametrize("model", ["pyramid", "fast"])
def test_a_programs_torch_settings_change_no_byte_and_are_restored(model):
    """A program that set ``torch.set_float32_matmul_precision("medium")`` (bfloat16 products on a
    CPU with AMX: 0.12.0 and earlier then wrote files no other process decoded, and decoded none),
    float64 as the default dtype (coding failed) or that codes inside ``torch.autocast`` (bfloat16
    products) gets the same bytes and the same image; its own settings are back after each call."""
    import contextlib

    import torch

    from armcodec.exact import kernels

    img = load("kodim05_rgb_130x70.png")[:48, :64]
    codec = armcodec.Codec(model, device="cpu", classic=False)
    reference = codec.encode(img).data

    @contextlib.contextmanager
    def setting(get, put, value):
        old = get()
        put(value)
        try:
            yield
            assert get() == value  # armcodec put the program's value back
        finally:
            put(old)

    def precision(value):
        return setting(torch.get_float32_matmul_precision, torch.set_float32_matmul_precision, value)

    for program in (precision("medium"), setting(torch.get_default_dtype, torch.set_default_dtype, torch.float64),
                    torch.autocast("cpu", torch.bfloat16)):
        with program:
            inside = armcodec.Codec(model, device="cpu", classic=False)
            assert codec.encode(img).data == reference and inside.encode(img).data == reference
            assert np.array_equal(inside.decode(reference).array, img)
    # inside a call the products run at full float32 precision
    x = torch.randint(-511, 512, (256, 432), generator=torch.Generator().manual_seed(0)).float()
    w = torch.randint(-127, 128, (432, 96), generator=torch.Generator().manual_seed(1)).float()
    with precision("medium"), kernels.exact_settings():
        assert torch.equal((x @ w).double(), x.double() @ w.double())
