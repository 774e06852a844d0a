"""The classic path: where a PNG's zlib stream or lossless WebP is smaller than the model's file
(small, flat or synthetic images), the encoder keeps it in a short header (container kind 2)."""
import io

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import armcodec
from armcodec import container
from armcodec.coding import classic
from armcodec_cli.main import app

from conftest import DATA, load

pytestmark = pytest.mark.classic


def gradient() -> np.ndarray:
    x = np.zeros((32, 32, 4), np.uint8)
    x[..., 0] = np.arange(32)[None, :] * 8
    x[..., 1] = np.arange(32)[:, None] * 8
    x[..., 3] = 255
    return x


def png_size(a: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", optimize=True)
    return len(buf.getvalue())


def test_a_small_graphic_is_never_larger_than_its_png(tiny_dir):
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir)
    for a in (gradient(), np.full((7, 5), 200, np.uint8), np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))):
        enc = codec.encode(a)
        assert enc.coder == "png" and len(enc.data) <= png_size(a)  # 0.2: 955 bytes for the gradient, PNG 106
        assert np.array_equal(codec.decompress(enc.data), a)
        assert armcodec.read_info(enc.data)["kind"] == "classic (png)"
        assert np.array_equal(armcodec.decompress(enc.data, device="cpu"), a)  # no weights needed


def test_photographs_keep_the_models_path():
    enc = armcodec.Codec("fast", "cpu").encode(load("kodim23_rgb_64x48.png"))
    assert enc.coder == "model" and len(enc.data) < png_size(load("kodim23_rgb_64x48.png"))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_candidates_decode_to_the_array_and_webp_keeps_colours_under_transparency(mode):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (9, 13, len(mode))).astype(np.uint8) * 60
    if mode.endswith("A"):
        a[..., -1][a[..., -1] == 0] = 0  # some fully transparent pixels with colours under them
    got = classic.candidates(a, mode)
    assert [n for n, _ in got] == (["png", "webp"] if mode.startswith("RGB") else ["png"])
    for name, payload in got:
        assert np.array_equal(classic.decode(name, payload, mode, 13, 9), a)


def test_damaged_classic_files_are_refused(tiny_dir):
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir)
    data = codec.compress(gradient())
    header, (payload,) = container.parse(data)
    with pytest.raises(armcodec.FormatError, match="without a payload"):
        codec.decode(data[: len(data) - len(payload)])
    for k in range(len(data) - len(payload), len(data)):  # every payload byte flipped, every truncation
        for bad in (data[:k] + bytes([data[k] ^ 0x10]) + data[k + 1 :], data[:k]):
            try:
                out = codec.decode(bad).array
            except armcodec.ArmcodecError:
                continue
            assert np.array_equal(out, gradient())  # raise or decode exactly, never a wrong image
    for mode, w in (("RGBA", 31), ("RGB", 32), ("L", 32)):  # a stream read as another size or mode
        with pytest.raises(armcodec.FormatError):
            classic.decode("png", payload, mode, w, 32)
    a = gradient()
    a[..., 3] = a[..., 0]  # alpha that varies, so the WebP holds RGBA
    webp = dict(classic.candidates(a, "RGBA"))["webp"]
    with pytest.raises(armcodec.FormatError, match="holds mode RGBA"):
        classic.decode("webp", webp, "RGB", 32, 32)


def test_the_cli_reports_the_path_and_can_skip_it(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("ARMCODEC_WEIGHTS_DIR", str(tiny_dir))
    Image.fromarray(gradient()).save(tmp_path / "g.png")
    runner = CliRunner()
    import json

    r = runner.invoke(app, ["compress", str(tmp_path / "g.png"), "--model", "tiny", "--json", "--device", "cpu"])
    assert r.exit_code == 0 and json.loads(r.stdout)["coder"] == "png"
    r = runner.invoke(app, ["compress", str(tmp_path / "g.png"), "--model", "tiny", "--json", "--no-classic", "-f", "--device", "cpu"])
    assert r.exit_code == 0 and json.loads(r.stdout)["coder"] == "model"
    r = runner.invoke(app, ["decompress", str(tmp_path / "g.png.arm"), "-o", str(tmp_path / "back.png"), "--device", "cpu"])
    assert r.exit_code == 0 and np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), gradient())


def graphic(h: int = 300, w: int = 280) -> np.ndarray:
    """A flat-coloured synthetic image above WEBP_SLOW_PIXELS: rectangles, stripes, a ramp."""
    rng = np.random.default_rng(3)
    a = np.zeros((h, w, 3), np.uint8)
    for _ in range(40):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        a[y : y + rng.integers(5, 60), x : x + rng.integers(5, 60)] = rng.integers(0, 256, 3)
    a[::7, :, 1] = 200
    a[:, 100:140, 2] = np.arange(40, dtype=np.uint8) * 6
    return a


def test_large_images_try_webp_quick_first_and_at_full_effort_where_it_comes_near(tiny_dir, monkeypatch):
    a = graphic()
    assert a.shape[0] * a.shape[1] > classic.WEBP_SLOW_PIXELS
    quick, full = classic.candidates(a, "RGB", webp="quick"), classic.candidates(a, "RGB", webp="full")
    every = dict(classic.candidates(a, "RGB"))
    assert [n for n, _ in quick] == ["png", "webp"] and [n for n, _ in full] == ["webp"]
    assert len(every["webp"]) == min(len(dict(quick)["webp"]), len(dict(full)["webp"]))  # "all": the smaller
    assert classic.candidates(gradient(), "RGBA", webp="full") == []  # small images: all settings in "quick"
    assert classic.webp_worth_full([100], 98) and not classic.webp_worth_full([100], 97)  # 2.5%: quality 100 at most 2.3% smaller
    asked = []
    real = classic.candidates
    monkeypatch.setattr(classic, "candidates", lambda *x, **k: asked.append(k.get("webp", x[7] if len(x) > 7 else "all"))
                        or real(*x, **k))
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir)
    enc = codec.encode(a)
    assert enc.coder == "webp" and asked == ["quick", "full"]  # the model did not beat WebP: full effort tried
    header, (payload,) = container.parse(enc.data)
    assert len(payload) == min(len(every["webp"]), len(every["png"]))
    assert np.array_equal(codec.decompress(enc.data), a)
