"""armcodec inside other tools: the Pillow and imageio plugins, pipes, `armcodec eval` and
`armcodec sample` (on the tiny test model)."""
import io
import json
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError
from typer.testing import CliRunner

import armcodec
from armcodec_cli.main import app

from conftest import DATA

runner = CliRunner()
IMAGES = ("kodim23_rgb_64x48.png", "usc_sipi_6.1_gray_40x33.png", "usc_sipi_6.1_la_28x21.png", "kodim03_rgba_32x24.png")


@pytest.fixture
def work(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("ARMCODEC_WEIGHTS_DIR", str(tiny_dir))
    for name in IMAGES:
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def _cli_compress(src, out):
    r = runner.invoke(app, ["compress", str(src), "-o", str(out), "--model", "tiny", "--device", "cpu"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("name", IMAGES)
def test_pillow_opens_cli_files_and_saves_files_the_cli_decodes(work, name):
    src = Image.open(work / name)
    _cli_compress(work / name, work / "a.arm")
    im = Image.open(work / "a.arm")
    assert (im.format, im.mode, im.size) == ("ARM", src.mode, src.size)
    assert np.array_equal(np.asarray(im), np.asarray(src))
    src.save(work / "b.arm", model="tiny")
    assert Image.open(work / "b.arm").format == "ARM"
    r = runner.invoke(app, ["decompress", str(work / "b.arm"), "-o", str(work / "b.png"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    back = Image.open(work / "b.png")
    assert back.mode == src.mode and np.array_equal(np.asarray(back), np.asarray(src))


def test_pillow_keeps_the_icc_profile_and_knows_the_format(work):
    icc = b"\x00" * 128 + b"not a real profile"
    src = Image.open(work / "kodim23_rgb_64x48.png")
    src.save(work / "c.arm", model="tiny", icc_profile=icc)
    assert Image.open(work / "c.arm").info["icc_profile"] == icc
    assert Image.registered_extensions()[".arm"] == "ARM" and Image.MIME["ARM"] == "image/x-armcodec"
    buf = io.BytesIO()
    src.save(buf, format="ARM", model="tiny")
    assert np.array_equal(armcodec.decompress(buf.getvalue(), device="cpu"), np.asarray(src))


def test_pillow_errors_carry_armcodecs_message(work):
    Image.open(work / "kodim23_rgb_64x48.png").save(work / "d.arm", model="tiny")
    data = (work / "d.arm").read_bytes()
    bad_header = bytearray(data)
    bad_header[12] ^= 0xFF
    (work / "h.arm").write_bytes(bytes(bad_header))
    with pytest.raises(UnidentifiedImageError, match="armcodec: .*CRC"):
        Image.open(work / "h.arm")
    bad_data = bytearray(data)
    bad_data[-5] ^= 0xFF
    (work / "s.arm").write_bytes(bytes(bad_data))
    im = Image.open(work / "s.arm")  # the header is fine: the damage shows when the pixels load
    with pytest.raises(OSError, match="armcodec: "):
        im.load()
    with pytest.raises(OSError, match="cannot write mode CMYK"):
        Image.open(work / "kodim23_rgb_64x48.png").convert("CMYK").save(work / "p.arm")
    assert not (work / "p.arm").exists()


@pytest.mark.parametrize("name", IMAGES)
def test_imageio_reads_and_writes_arm(work, name):
    a = iio.imread(work / name)
    iio.imwrite(work / "e.arm", a, model="tiny")
    assert np.array_equal(iio.imread(work / "e.arm"), a)
    assert iio.improps(work / "e.arm").shape == a.shape
    data = iio.imwrite("<bytes>", a, extension=".arm", model="tiny")
    assert data == (work / "e.arm").read_bytes()
    assert np.array_equal(iio.imread(data), a)
    assert iio.imread(work / name).shape == a.shape  # other formats still go to their plugins


def test_imageio_refuses_damaged_files_and_batches(work):
    a = iio.imread(work / "kodim23_rgb_64x48.png")
    data = bytearray(iio.imwrite("<bytes>", a, extension=".arm", model="tiny"))
    data[12] ^= 0xFF
    (work / "bad.arm").write_bytes(bytes(data))
    with pytest.raises(OSError, match="armcodec: .*CRC"):
        iio.imread(work / "bad.arm")
    with pytest.raises(ValueError, match="one image"):
        iio.imwrite(work / "f.arm", np.stack([a, a]), is_batch=True, model="tiny")


def test_pipes_give_the_files_bytes_and_only_data_on_stdout(work):
    src = work / "kodim23_rgb_64x48.png"
    _cli_compress(src, work / "g.arm")
    r = runner.invoke(app, ["compress", "-", "-o", "-", "--model", "tiny", "--device", "cpu"], input=src.read_bytes())
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == (work / "g.arm").read_bytes()
    r = runner.invoke(app, ["decompress", "-", "--device", "cpu"], input=(work / "g.arm").read_bytes())
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.stdout_bytes))), np.asarray(Image.open(src)))
    r = runner.invoke(app, ["decompress", "-", "-o", "-", "--format", "tiff", "--device", "cpu"], input=(work / "g.arm").read_bytes())
    assert r.exit_code == 0 and np.array_equal(np.asarray(Image.open(io.BytesIO(r.stdout_bytes))), np.asarray(Image.open(src)))
    r = runner.invoke(app, ["decompress", "-", "--format", "jpg"], input=(work / "g.arm").read_bytes())
    assert r.exit_code == 2 and "not a lossless output format" in r.stderr and not r.stdout_bytes
    r = runner.invoke(app, ["decompress", "-"], input=b"not an arm file")
    assert r.exit_code == 3 and "not an armcodec file" in r.stderr and not r.stdout_bytes
    r = runner.invoke(app, ["compress", str(src), str(src), "-o", "-", "--model", "tiny"])
    assert r.exit_code == 2 and not r.stdout_bytes


def test_real_pipes(work):
    """Through a shell's pipes: `cat a.png | armcodec compress - -o - > a.arm` and back."""
    src = work / "kodim03_rgba_32x24.png"
    cmd = [sys.executable, "-c", "from armcodec_cli.main import main; main()"]
    enc = subprocess.run(cmd + ["compress", "-", "-o", "-", "--model", "tiny", "--device", "cpu"], input=src.read_bytes(),
                         capture_output=True, check=True)
    assert enc.stdout[:4] == b"ARMC" and b"bpsp" in enc.stderr
    dec = subprocess.run(cmd + ["decompress", "-", "-o", "-", "--device", "cpu"], input=enc.stdout, capture_output=True, check=True)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(dec.stdout))), np.asarray(Image.open(src)))


def test_eval_is_compress_model_bits(work):
    src = [str(work / n) for n in IMAGES[:3]]
    for flag in ("--no-adapt", "--adapt"):
        r = runner.invoke(app, ["eval", *src, "--model", "tiny", "--device", "cpu", "--json", flag])
        assert r.exit_code == 0, r.output
        ev = [json.loads(line) for line in r.stdout.splitlines()]
        mean = json.loads(r.stderr.strip().splitlines()[-1])
        c = runner.invoke(app, ["compress", *src, "--model", "tiny", "--device", "cpu", "--json", "-f", flag])
        comp = [json.loads(line) for line in c.stdout.splitlines()]
        for e, x in zip(ev, comp):
            assert e["input"] == x["input"] and e["model_bits"] == pytest.approx(x["model_bits"], rel=1e-12)
            assert e["bpsp"] == pytest.approx(x["model_bpsp"], rel=1e-12)
        assert mean["images"] == 3 and mean["mean_bpsp"] == pytest.approx(np.mean([e["bpsp"] for e in ev]))
    r = runner.invoke(app, ["eval", str(work), "--model", "tiny", "--device", "cpu"])  # a folder: its images
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == len(IMAGES) and "mean over 4 images" in r.stderr


def test_samples_are_the_models_own_and_fixed_by_the_seed(work, tiny_dir):
    from armcodec.sampling import sample_image

    codec = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, adaptive=False)
    m = codec.model
    a, bits = sample_image(m.net, m.luts, 20, 37, codec.tile_size, (0, 0), "cpu")  # several tiles
    b, _ = sample_image(m.net, m.luts, 20, 37, codec.tile_size, (0, 0), "cpu")
    c, _ = sample_image(m.net, m.luts, 20, 37, codec.tile_size, (1, 0), "cpu")
    assert a.shape == (20, 37, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert codec.evaluate(a).model_bits == pytest.approx(bits, rel=1e-12)  # drawn from the tables eval reads
    r = runner.invoke(app, ["sample", "--model", "tiny", "--size", "32x32", "-n", "2", "--seed", "0",
                            "-o", str(work / "s"), "--device", "cpu", "--grid", str(work / "grid.png")])
    assert r.exit_code == 0, r.output
    files = sorted((work / "s").glob("*.png"))
    assert [p.name for p in files] == ["tiny_0_000.png", "tiny_0_001.png"]
    arrays = [np.asarray(Image.open(p)) for p in files]
    assert all(x.shape == (32, 32, 3) and x.std() > 0 for x in arrays) and not np.array_equal(*arrays)
    assert Image.open(work / "grid.png").size == (66, 32)
    r = runner.invoke(app, ["eval", *map(str, files), "--model", "tiny", "--device", "cpu", "--json"])
    assert all(json.loads(line)["bpsp"] <= 7 for line in r.stdout.splitlines())
    again = runner.invoke(app, ["sample", "--model", "tiny", "--size", "32x32", "-n", "2", "-o", str(work / "t"), "--device", "cpu"])
    assert again.exit_code == 0 and all(np.array_equal(np.asarray(Image.open(work / "t" / p.name)), x)
                                        for p, x in zip(files, arrays))
    r = runner.invoke(app, ["sample", "--model", "tiny", "--size", "32x32", "-n", "2", "-o", str(work / "s")])
    assert r.exit_code == 8 and "exists" in r.stderr
    r = runner.invoke(app, ["sample", "--model", "tiny", "--size", "32", "-o", str(work / "u")])
    assert r.exit_code == 2 and "WIDTHxHEIGHT" in r.stderr


def test_exif_xmp_and_text_come_back(work):
    from conftest import write_with_metadata

    src = work / "meta.png"
    write_with_metadata(np.asarray(Image.open(work / "kodim23_rgb_64x48.png")), src)
    _cli_compress(src, work / "meta.arm")
    r = runner.invoke(app, ["decompress", str(work / "meta.arm"), "-o", str(work / "back.png"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    a, b = Image.open(src), Image.open(work / "back.png")
    assert b.text == a.text and b.info["exif"] == a.info["exif"] and np.array_equal(np.asarray(a), np.asarray(b))
    im = Image.open(work / "meta.arm")
    assert im.info["exif"] == a.info["exif"] and im.info["Title"] == "a test" and b"test" in im.info["xmp"]
    for suffix, lost in ((".bmp", "EXIF and text chunks"), (".webp", "text chunks"), (".tiff", "EXIF and text")):
        r = runner.invoke(app, ["decompress", str(work / "meta.arm"), "-o", str(work / f"x{suffix}")])
        assert r.exit_code == 5 and lost in r.stderr and not (work / f"x{suffix}").exists()
    assert armcodec.read_info((work / "meta.arm").read_bytes())["format_version"] == 3
