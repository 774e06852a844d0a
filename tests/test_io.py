"""Images in and out: exact modes accepted, everything else refused with a reason."""
import shutil

import numpy as np
import pytest
from PIL import Image

import armcodec
from armcodec.io.image import ImageInfo, from_pil, read_image, write_image

from conftest import DATA, load


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".ppm", ".webp"])
def test_lossless_formats_read_back_exactly(tmp_path, suffix):
    img = load("kodim05_rgb_37x29.png")
    p = tmp_path / f"x{suffix}"
    write_image(p, img, ImageInfo("RGB"))
    arr, info = read_image(p)
    assert info.mode == "RGB" and np.array_equal(arr, img)


def test_modes_and_icc_profile_survive(tmp_path):
    for name, mode in [("usc_sipi_6.1_gray_40x33.png", "L"), ("usc_sipi_6.1_la_28x21.png", "LA"), ("kodim03_rgba_32x24.png", "RGBA")]:
        arr, info = read_image(DATA / name)
        assert info.mode == mode
        write_image(tmp_path / "o.png", arr, ImageInfo(mode, b"fake-icc"))
        arr2, info2 = read_image(tmp_path / "o.png")
        assert np.array_equal(arr, arr2) and info2.mode == mode and info2.icc_profile == b"fake-icc"


@pytest.mark.parametrize("make, why", [
    (lambda: Image.new("F", (8, 8)), "float"),
    (lambda: Image.new("CMYK", (8, 8)), "CMYK"),
    (lambda: Image.new("I", (8, 8)), "32-bit integer"),
])
def test_unsupported_modes_are_refused(tmp_path, make, why):
    p = tmp_path / "x.tif"
    make().save(p)
    with pytest.raises(armcodec.UnsupportedInputError, match=why):
        read_image(p)


def test_palette_1_bit_and_16_bit_pillow_images_are_read_exactly():
    """Modes 0.2 refused: P keeps its indices and palette, 1 is 1-bit grey (0/1), I;16 is uint16."""
    rng = np.random.default_rng(1)
    p = Image.fromarray(rng.integers(0, 5, (6, 7)).astype(np.uint8), "P")
    p.putpalette(bytes(range(15)))
    arr, info = from_pil(p)
    assert info.mode == "P" and info.palette == bytes(range(15)) and np.array_equal(arr[:, :, 0], np.asarray(p))
    one = Image.fromarray(rng.integers(0, 2, (6, 7)).astype(bool))
    arr, info = from_pil(one)
    assert (info.mode, info.bits) == ("L", 1) and np.array_equal(arr[:, :, 0], np.asarray(one))
    sixteen = Image.fromarray(rng.integers(0, 65536, (6, 7)).astype(np.uint16))
    arr, info = from_pil(sixteen)
    assert (info.mode, info.bits) == ("L", 16) and arr.dtype == np.uint16 and np.array_equal(arr[:, :, 0], np.asarray(sixteen))


def test_16_bit_rgb_png_is_read_exactly_not_truncated(tmp_path):
    """Pillow loads a 48-bit PNG as 8-bit RGB; armcodec reads (and writes) its 16-bit samples."""
    import struct
    import zlib

    raw = b"".join(b"\0" + bytes(range(k, k + 24)) for k in range(4))  # 4 rows of 4 RGB16 pixels
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    p = tmp_path / "rgb16.png"
    p.write_bytes(png)
    arr, info = read_image(p)
    want = np.frombuffer(b"".join(bytes(range(k, k + 24)) for k in range(4)), ">u2").reshape(4, 4, 3)
    assert (info.mode, info.bits) == ("RGB", 16) and arr.dtype == np.uint16 and np.array_equal(arr, want)
    for suffix in (".png", ".tiff"):
        write_image(tmp_path / f"back{suffix}", arr, info)
        back, info2 = read_image(tmp_path / f"back{suffix}")
        assert np.array_equal(back, want) and (info2.mode, info2.bits) == ("RGB", 16)
    with pytest.raises(armcodec.UnsupportedInputError, match="BMP cannot store mode RGB at 16 bits"):
        write_image(tmp_path / "x.bmp", arr, info)


def test_multiframe_and_unreadable_inputs_are_refused(tmp_path):
    frames = [Image.new("L", (4, 4), v) for v in (0, 255)]
    frames[0].save(tmp_path / "a.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(armcodec.UnsupportedInputError, match="frames"):
        read_image(tmp_path / "a.tif")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(armcodec.UnsupportedInputError):
        read_image(tmp_path / "junk.png")
    with pytest.raises(armcodec.UnsupportedInputError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_lossy_outputs_are_refused(tmp_path):
    with pytest.raises(armcodec.UnsupportedInputError, match="lossless"):
        write_image(tmp_path / "x.jpg", load("kodim05_rgb_37x29.png"), ImageInfo("RGB"))
    with pytest.raises(armcodec.UnsupportedInputError):
        write_image(tmp_path / "x.ppm", load("kodim03_rgba_32x24.png"), ImageInfo("RGBA"))


def test_a_transparent_colour_is_kept(tmp_path, tiny_dir, monkeypatch):
    """PNG's tRNS on RGB (the PngSuite's tbrn2c08) and L images comes back; a format that cannot
    hold it is refused (armcodec 0.2 dropped it silently)."""
    from typer.testing import CliRunner

    from armcodec_cli.main import app

    monkeypatch.setenv("ARMCODEC_WEIGHTS_DIR", str(tiny_dir))
    grey = tmp_path / "grey.png"
    Image.fromarray(np.asarray(Image.open(DATA / "usc_sipi_6.1_gray_40x33.png"))).save(grey, transparency=7)
    shutil.copy(DATA / "pngsuite_tbrn2c08.png", tmp_path / "rgb.png")
    runner = CliRunner()
    for name, colour in (("rgb.png", (255, 255, 255)), ("grey.png", 7)):
        src = tmp_path / name
        assert Image.open(src).info["transparency"] == colour
        r = runner.invoke(app, ["compress", str(src), "--model", "tiny", "--device", "cpu"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["decompress", f"{src}.arm", "-o", str(tmp_path / f"back_{name}"), "--device", "cpu"])
        assert r.exit_code == 0, r.output
        back = Image.open(tmp_path / f"back_{name}")
        assert back.info["transparency"] == colour and np.array_equal(np.asarray(back), np.asarray(Image.open(src)))
        r = runner.invoke(app, ["decompress", f"{src}.arm", "-o", str(tmp_path / "x.tiff"), "--device", "cpu"])
        assert r.exit_code == 5 and "transparent colour" in r.stderr
