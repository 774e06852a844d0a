"""Every image a PNG can hold: palette (1/2/4/8-bit indices, tRNS alpha), 1/2/4-bit grey, 16-bit
samples, interlaced files, the ancillary chunks; coded exactly and written back as the same image
(same Pillow mode, pixels, palette, transparency; 16-bit samples and chunks checked natively)."""
import glob
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import armcodec
from armcodec import container
from armcodec.io import png
from armcodec.io.image import read_image, write_image
from armcodec_cli.main import app

from conftest import DATA

SUITE = Path(__file__).resolve().parents[2] / "shared" / "data" / "pngsuite"
LOCAL = sorted(DATA.glob("pngsuite_*.png"))


def pillow_view(path_or_bytes):
    im = Image.open(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes)
    im.load()
    return im.mode, np.asarray(im), im.getpalette(), im.info.get("transparency")


def same_for_pillow(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2] == b[2] and a[3] == b[3]


def round_trip_cli(files, tmp_path, model="fast"):
    """armcodec compress, then decompress to PNG: the same image for Pillow and natively."""
    runner = CliRunner()
    for src in files:
        r = runner.invoke(app, ["compress", str(src), "-o", str(tmp_path / "c.arm"), "-f", "--model", model, "--device", "cpu"])
        assert r.exit_code == 0, (src.name, r.output)
        r = runner.invoke(app, ["decompress", str(tmp_path / "c.arm"), "-o", str(tmp_path / "back.png"), "-f", "--device", "cpu"])
        assert r.exit_code == 0, (src.name, r.output)
        assert same_for_pillow(pillow_view(src), pillow_view(tmp_path / "back.png")), src.name
        (a, info), (b, info2) = read_image(src), read_image(tmp_path / "back.png")
        assert np.array_equal(a, b) and a.dtype == b.dtype, src.name
        assert (info.mode, info.bits, info.palette, info.metadata, info.icc_profile) == \
            (info2.mode, info2.bits, info2.palette, info2.metadata, info2.icc_profile), src.name


@pytest.mark.classic
def test_each_colour_type_and_depth_round_trips_through_the_cli(tmp_path):
    assert len(LOCAL) >= 18
    round_trip_cli(LOCAL, tmp_path)


@pytest.mark.classic
@pytest.mark.skipif(not SUITE.is_dir(), reason="../shared/data/pngsuite is not there")
def test_the_whole_pngsuite_round_trips_and_damaged_files_are_refused(tmp_path):
    files = sorted(SUITE.glob("*.png"))
    good = [f for f in files if not f.name.startswith("x")]
    assert len(good) == 161
    round_trip_cli(good, tmp_path)
    runner = CliRunner()
    for bad in (f for f in files if f.name.startswith("x")):
        r = runner.invoke(app, ["compress", str(bad), "-o", str(tmp_path / "x.arm"), "-f", "--model", "fast", "--device", "cpu"])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code != 0 and len(lines) == 1 and bad.name in lines[0] and "Traceback" not in r.output, (bad.name, r.output)
        assert not (tmp_path / "x.arm").exists()


def test_the_model_codes_every_new_layout_exactly(tiny_codec):
    """With the classic path off, the model codes 16-bit (high and low bytes), 1/2/4-bit grey
    (scaled) and palette images (their colours, mapped back to the indices)."""
    for name in ("basn0g01", "basi0g02", "basn0g16", "basn2c16", "basi4a16", "basn6a16", "basn3p01", "tbbn3p08",
                 "tm3n3p02", "tbbn2c16"):
        a, info = read_image(DATA / f"pngsuite_{name}.png")
        enc = tiny_codec.encode(DATA / f"pngsuite_{name}.png")
        assert enc.coder == "model", name
        header, streams = container.parse(enc.data)
        assert len(streams) == header.n_tiles() * len(header.group_sizes)
        dec = tiny_codec.decode(enc.data)
        assert np.array_equal(dec.array, a) and dec.array.dtype == a.dtype, name
        assert (dec.mode, dec.bits, dec.palette, dec.metadata) == (info.mode, info.bits, info.palette, info.metadata)


def test_a_palette_that_repeats_a_colour_takes_the_classic_path(tiny_dir):
    idx = np.array([[0, 1, 2, 1], [2, 2, 0, 1]], np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(bytes([10, 20, 30, 10, 20, 30, 5, 5, 5]))  # entries 0 and 1 are the same colour
    with pytest.raises(armcodec.UnsupportedInputError, match="classic"):
        armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, classic=False).encode(im)
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, classic=True)
    enc = codec.encode(im)
    dec = codec.decode(enc.data)
    assert enc.coder == "png" and np.array_equal(dec.array[:, :, 0], idx) and dec.palette == bytes(im.getpalette())


def test_16_bit_arrays_and_pa_images_round_trip(tiny_codec):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 65536, (9, 11, 3)).astype(np.uint16)
    assert np.array_equal(tiny_codec.decompress(tiny_codec.compress(a)), a)
    pa = Image.fromarray(rng.integers(0, 4, (6, 5)).astype(np.uint8), "P")
    pa.putpalette(bytes(range(12)))
    pa = pa.convert("PA")
    dec = tiny_codec.decode(tiny_codec.compress(pa))
    assert dec.mode == "PA" and np.array_equal(dec.array, np.asarray(pa)) and dec.palette == bytes(pa.getpalette("RGB"))


def test_outputs_that_cannot_hold_the_image_are_refused(tmp_path):
    a, info = read_image(DATA / "pngsuite_basn3p02.png")
    with pytest.raises(armcodec.UnsupportedInputError, match="TIFF cannot store mode P at 2 bits"):
        write_image(tmp_path / "x.tiff", a, info)
    a, info = read_image(DATA / "pngsuite_ccwn2c08.png")
    with pytest.raises(armcodec.UnsupportedInputError, match=r"PNG chunks \(cHRM, gAMA\)"):
        write_image(tmp_path / "x.webp", a, info)


def test_damaged_pngs_are_refused_with_the_reason(tmp_path):
    data = (DATA / "pngsuite_basn0g16.png").read_bytes()
    idat = data.index(b"IDAT")
    bad = data[: idat + 10] + bytes([data[idat + 10] ^ 1]) + data[idat + 11 :]
    with pytest.raises(armcodec.UnsupportedInputError, match="CRC mismatch in chunk 'IDAT'"):
        read_image(bad)
    with pytest.raises(armcodec.UnsupportedInputError, match="IEND"):
        read_image(data[:-12])


def test_metadata_is_deflated_in_the_header_when_that_is_smaller(tiny_codec):
    """ps1n0g08's sPLT chunk (a 1.3 KB suggested palette) costs far less in the header."""
    a, info = read_image(DATA / "pngsuite_ps1n0g08.png")
    splt = dict((k, v) for kind, k, v in info.metadata if kind == "chunk")["sPLT"]
    enc = tiny_codec.encode(DATA / "pngsuite_ps1n0g08.png")
    header, _ = container.parse(enc.data)
    assert header.metadata == info.metadata and splt not in enc.data
    assert int.from_bytes(enc.data[6:10], "little") < len(splt) // 2  # the whole header


def test_strip_leaves_out_what_does_not_change_the_pixels(tmp_path, tiny_dir):
    """--strip / Codec(strip=True): text, time and suggested palettes go, the pixels, palette,
    transparency, ICC profile and gamma stay; the default keeps everything."""
    from PIL import PngImagePlugin

    from armcodec.api import strip_metadata

    rng = np.random.default_rng(0)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", rng.bytes(100).hex())  # 200 characters that do not deflate much
    info.add(b"gAMA", (45455).to_bytes(4, "big"))
    info.add(b"tIME", bytes([7, 234, 12, 2, 1, 2, 3]))
    im = Image.fromarray(rng.integers(0, 4, (12, 10), dtype=np.uint8), "P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 9, 9, 9])
    im.save(tmp_path / "in.png", pnginfo=info, transparency=bytes([0, 255, 128, 255]), icc_profile=b"\0" * 132)
    _, full = read_image(tmp_path / "in.png")
    kinds = {(kind, key) for kind, key, _ in full.metadata}
    assert {("text", "Comment"), ("chunk", "gAMA"), ("chunk", "tIME"), ("transparency", "")} <= kinds
    kept = strip_metadata(full.metadata)
    assert {(kind, key) for kind, key, _ in kept} == {("chunk", "gAMA"), ("transparency", "")}
    sizes = []
    for strip in (False, True):
        codec = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, strip=strip)
        data = codec.encode(tmp_path / "in.png").data
        dec = codec.decode(data)
        a, _ = read_image(tmp_path / "in.png")
        assert np.array_equal(dec.array, a) and dec.palette == full.palette and dec.icc_profile == full.icc_profile
        assert dec.metadata == (kept if strip else full.metadata)
        sizes.append(len(data))
    assert sizes[1] < sizes[0] - 100
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "s.arm"), "--strip",
                                 "--model", "fast", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert armcodec.read_info((tmp_path / "s.arm").read_bytes())["mode"] == "P"
    assert armcodec.Codec("fast", device="cpu").decode((tmp_path / "s.arm").read_bytes()).metadata == kept


@pytest.mark.parametrize("name", [p.name for p in LOCAL])
def test_the_png_writer_gives_back_what_was_read(name, tmp_path):
    a, info = read_image(DATA / name)
    write_image(tmp_path / "w.png", a, info)
    b, info2 = read_image(tmp_path / "w.png")
    assert np.array_equal(a, b) and info.metadata == info2.metadata and info.palette == info2.palette
    assert same_for_pillow(pillow_view(DATA / name), pillow_view(tmp_path / "w.png"))
    p = png.parse((tmp_path / "w.png").read_bytes())
    assert p.interlace == 0  # interlaced input is written back non-interlaced


def mixed_image() -> np.ndarray:
    """A photograph beside a synthetic region (a screenshot's UI): the model wins one, zlib the other."""
    from conftest import load

    photo = load("kodim05_rgb_130x70.png")[:64, :64]
    ui = np.full((64, 64, 3), 240, np.uint8)
    ui[8:56:8, 4:60] = (20, 40, 200)
    return np.concatenate([photo, ui], axis=1)


@pytest.mark.classic
def test_tiles_that_zlib_codes_smaller_are_kept_as_png_streams():
    a = mixed_image()
    mixed = armcodec.Codec("fast", "cpu", tile_size=64)
    model_only = armcodec.Codec("fast", "cpu", tile_size=64, classic=False)
    enc, ref = mixed.encode(a), model_only.encode(a)
    info = armcodec.read_info(enc.data)
    assert enc.coder == "model+png" and info["coder_tools"]["classic_tiles"] and 0 < info["png_streams"] < info["streams"]
    assert len(enc.data) < len(ref.data)
    assert np.array_equal(mixed.decompress(enc.data), a) and np.array_equal(model_only.decompress(enc.data), a)
    header, streams = container.parse(enc.data)
    assert len(streams) == header.n_tiles() == len(header.classic_streams)
    # the map is the last stream: a flipped bit fails its CRC; every damaged byte raises or decodes exactly
    with pytest.raises(armcodec.ChecksumError, match="map"):
        mixed.decode(enc.data[:-1] + bytes([enc.data[-1] ^ 0x01]))
    png_stream = next(k for k, f in enumerate(header.classic_streams) if f)
    start = len(enc.data) - sum(header.stream_lengths) - 4 + sum(header.stream_lengths[:png_stream])
    for k in range(start, start + header.stream_lengths[png_stream]):
        bad = enc.data[:k] + bytes([enc.data[k] ^ 0x20]) + enc.data[k + 1 :]
        try:
            out = mixed.decompress(bad)
        except armcodec.ArmcodecError:
            continue
        assert np.array_equal(out, a)


def test_16_bit_samples_of_few_values_are_coded_as_their_levels(tiny_codec):
    """A 16-bit label image (a few distinct values per channel: segmentation masks, synthetic
    ramps) is coded as the 8-bit indices of its levels, the levels in the header; more than 256
    values in a channel keeps the high and low bytes."""
    rng = np.random.default_rng(5)
    labels = np.array([0, 1000, 1001, 65535], np.uint16)[rng.integers(0, 4, (20, 24))]
    for a, levels in ((labels, [4]), (rng.integers(0, 65536, (20, 24)).astype(np.uint16), [])):
        data = tiny_codec.compress(a)
        assert armcodec.read_info(data)["levels"] == levels
        header, streams = container.parse(data)
        assert len(streams) == header.n_tiles() * (1 if levels else 2)
        assert np.array_equal(tiny_codec.decompress(data), a)
    with pytest.raises(armcodec.FormatError, match="levels"):
        container.parse_levels(b"\x01\x00\x05\x00\x00\x00", 1)  # two levels, the second equal to the first
