"""Decoding many files at once (``Codec.decode_many``, ``armcodec decompress`` of several files):
tiles of different images share the model's batches and steps, and every image is exactly what
decoding it alone gives, whatever mix of layouts, tools, tile sizes and classic files."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import armcodec
from armcodec.errors import ChecksumError

from conftest import DATA, load

GOLDEN = DATA / "golden"


def test_every_golden_file_decodes_the_same_in_one_batch():
    """Every golden layout (format versions 1-3, every coder profile and tool set, palette, 1-bit,
    16-bit, PNG chunks, classic files and classic tiles) in one call."""
    files = [p.read_bytes() for p in sorted(GOLDEN.glob("*.arm"))]
    assert len(files) > 40
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN)
    alone = [codec.decode(f) for f in files]
    together = codec.decode_many(files)
    assert len(together) == len(files)
    for a, b in zip(alone, together):
        assert np.array_equal(a.array, b.array) and a.array.dtype == b.array.dtype
        assert (a.mode, a.bits, a.palette, a.metadata, a.icc_profile) == (b.mode, b.bits, b.palette, b.metadata, b.icc_profile)
        assert b.model_bits == pytest.approx(a.model_bits, rel=1e-12)


def test_mixed_images_and_tile_sizes_share_batches(tiny_dir):
    """Same model, different tile sizes and coder tools: each kind goes through its own batches;
    images of one kind share steps (one tile of each image in every batch)."""
    imgs = [load("kodim05_rgb_130x70.png"), load("kodim03_rgba_32x24.png"), load("usc_sipi_6.1_gray_40x33.png"),
            load("kodim23_rgb_64x48.png"), load("usc_sipi_6.1_la_28x21.png")]
    codecs = [armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, tile_size=t, feedback=fb)
              for t, fb in ((16, True), (32, True), (16, False))]
    files, want = [], []
    for c in codecs:
        for img in imgs:
            enc = c.encode(img)
            files.append(enc.data)
            want.append((img, enc.model_bits))
    got = codecs[0].decode_many(files)
    for (img, bits), dec in zip(want, got):
        assert np.array_equal(dec.array.reshape(img.shape), img)
        assert dec.model_bits == pytest.approx(bits, rel=1e-12)
    assert codecs[0].decode_many([]) == []


def test_a_damaged_file_in_a_batch_raises_its_error(tiny_codec):
    good = tiny_codec.compress(load("kodim23_rgb_64x48.png"))
    bad = bytearray(tiny_codec.compress(load("kodim05_rgb_37x29.png")))
    bad[-3] ^= 0x40  # inside the last tile stream: its CRC32 must fail
    with pytest.raises(armcodec.ArmcodecError) as err:
        tiny_codec.decode_many([good, bytes(bad)])
    assert isinstance(err.value, (ChecksumError, armcodec.errors.FormatError))
    assert np.array_equal(tiny_codec.decode_many([good])[0].array, load("kodim23_rgb_64x48.png"))


def test_cli_decodes_files_together_and_one_bad_file_alone(tmp_path, tiny_dir, monkeypatch):
    """``armcodec decompress a.arm b.arm c.arm`` decodes them in one call; a damaged file among
    them fails alone with its own message and the others are written exactly."""
    from typer.testing import CliRunner

    from armcodec_cli.main import app

    monkeypatch.setenv("ARMCODEC_WEIGHTS_DIR", str(tiny_dir))
    codec = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir)
    names = ["kodim23_rgb_64x48.png", "kodim03_rgba_32x24.png", "usc_sipi_6.1_gray_40x33.png", "kodim05_rgb_37x29.png"]
    calls = []
    real = armcodec.Codec.decode_parsed_many
    monkeypatch.setattr(armcodec.Codec, "decode_parsed_many", lambda self, parsed, progress=None: (
        calls.append(len(parsed)), real(self, parsed, progress))[1])
    paths = []
    for n in names:
        p = tmp_path / (n + ".arm")
        p.write_bytes(codec.compress(load(n)))
        paths.append(str(p))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["decompress", *paths, "-o", str(out) + "/", "--json"])
    assert r.exit_code == 0, r.output
    assert calls[0] == 4
    for n in names:
        assert np.array_equal(np.asarray(Image.open(out / n)), load(n))
    bad = bytearray(Path(paths[1]).read_bytes())
    bad[-3] ^= 0x40
    Path(paths[1]).write_bytes(bytes(bad))
    calls.clear()
    r = CliRunner().invoke(app, ["decompress", *paths, "-o", str(tmp_path / "again") + "/"])
    assert r.exit_code != 0 and "kodim03_rgba_32x24.png.arm: " in r.stderr and "1 of 4 files failed" in r.stderr
    assert calls[0] == 4 and sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(set(names) - {names[1]})
