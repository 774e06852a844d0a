"""The armcodec command, through typer's CliRunner, on the tiny test model."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from armcodec_cli.main import app

from conftest import DATA, load

runner = CliRunner()


@pytest.fixture
def work(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("ARMCODEC_WEIGHTS_DIR", str(tiny_dir))
    for name in ("kodim23_rgb_64x48.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png"):
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def test_compress_decompress_json(work):
    src = [str(work / n) for n in ("kodim23_rgb_64x48.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png")]
    r = runner.invoke(app, ["compress", *src, "--model", "tiny", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["channels"] for x in recs] == [3, 1, 4]
    for x in recs:
        assert {"input", "output", "width", "height", "channels", "bytes", "bpsp", "model_bits", "seconds"} <= set(x)
        assert x["bytes"] * 8 >= x["model_bits"]
    out = work / "out"
    r = runner.invoke(app, ["decompress", *[x["output"] for x in recs], "-o", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    for n in ("kodim23_rgb_64x48.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png"):
        a, b = Image.open(DATA / n), Image.open(out / n)
        assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


def test_verify_and_output_format_checks(work):
    src = work / "kodim03_rgba_32x24.png"
    r = runner.invoke(app, ["compress", str(src), "--model", "tiny", "--verify", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["verified"] is True
    r = runner.invoke(app, ["decompress", str(src) + ".arm", "-o", str(work / "x.ppm")])
    assert r.exit_code != 0 and "cannot store mode RGBA" in r.stderr
    assert not (work / "x.ppm").exists()
    r = runner.invoke(app, ["decompress", str(src) + ".arm", "-o", str(work / "x.tif"), "--max-pixels", "100"])
    assert r.exit_code != 0 and "exceeds the limit" in r.stderr


def test_existing_output_is_kept_without_force(work):
    src = work / "kodim23_rgb_64x48.png"
    target = work / "kept.arm"
    target.write_bytes(b"precious")
    r = runner.invoke(app, ["compress", str(src), "-o", str(target), "--model", "tiny"])
    assert r.exit_code != 0 and "exists" in r.stderr
    assert target.read_bytes() == b"precious"
    r = runner.invoke(app, ["compress", str(src), "-o", str(target), "--model", "tiny", "--force"])
    assert r.exit_code == 0 and target.read_bytes()[:4] == b"ARMC"


@pytest.mark.parametrize("content", [b"", b"random bytes " * 10, None])
def test_decompress_refuses_bad_files_with_one_line(work, content):
    bad = work / "bad.arm"
    if content is None:
        shutil.copy(DATA / "kodim23_rgb_1x1.png", bad)  # a PNG is not an .arm file
    else:
        bad.write_bytes(content)
    r = runner.invoke(app, ["decompress", str(bad), "-o", str(work / "x.png")])
    assert r.exit_code != 0
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("armcodec: error:")
    assert "Traceback" not in r.output
    assert not (work / "x.png").exists()


def test_truncated_file_and_batch_continues(work):
    r = runner.invoke(app, ["compress", str(work / "kodim23_rgb_64x48.png"), "--model", "tiny"])
    assert r.exit_code == 0
    good = work / "kodim23_rgb_64x48.png.arm"
    trunc = work / "trunc.arm"
    trunc.write_bytes(good.read_bytes()[:-9])
    r = runner.invoke(app, ["decompress", str(trunc), str(good), "-o", str(work / "o")])
    assert r.exit_code != 0
    assert "trunc.arm" in r.stderr and "1 of 2 files failed" in r.stderr
    assert np.array_equal(np.asarray(Image.open(work / "o" / "kodim23_rgb_64x48.png")), load("kodim23_rgb_64x48.png"))


def test_unreadable_input_and_info_and_models(work):
    r = runner.invoke(app, ["compress", str(work / "missing.png"), "--model", "tiny"])
    assert r.exit_code != 0 and "no such file" in r.stderr
    runner.invoke(app, ["compress", str(work / "kodim23_rgb_64x48.png"), "--model", "tiny"])
    r = runner.invoke(app, ["info", str(work / "kodim23_rgb_64x48.png.arm"), "--json"])
    info = json.loads(r.stdout)
    assert info["model"] == "tiny" and info["width"] == 64 and info["mode"] == "RGB"
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0 and "tiny" in r.stdout
    r = runner.invoke(app, ["compress", str(work / "kodim23_rgb_64x48.png"), "--model", "nope", "-f"])
    assert r.exit_code != 0 and "unknown model" in r.stderr


def test_killed_compress_leaves_nothing_at_the_target(work):
    """SIGTERM part-way through a batch: no file at the pending target, no temporary left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    big = work / "big.png"
    Image.fromarray(np.tile(load("kodim05_rgb_130x70.png"), (8, 8, 1))).save(big)
    env = {**os.environ, "ARMCODEC_WEIGHTS_DIR": os.environ["ARMCODEC_WEIGHTS_DIR"]}
    proc = subprocess.Popen([sys.executable, "-c", "from armcodec_cli.main import main; main()", "compress", str(big),
                             "--model", "tiny", "--device", "cpu", "-o", str(work / "big.arm")],
                            env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not (work / "big.arm").exists()
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp.arm") or ".tmp" in p.name]


def test_bench_writes_verified_results_for_each_codec(work):
    out = work / "results"
    r = runner.invoke(app, ["bench", str(work / "kodim23_rgb_64x48.png"), str(work / "usc_sipi_6.1_gray_40x33.png"),
                            "--codecs", "armcodec,armcodec-noadapt,png,webp", "--model", "tiny", "--out", str(out), "--name", "t"])
    assert r.exit_code == 0, r.output
    arm = json.loads((out / "t" / "armcodec-tiny.json").read_text())
    assert arm["summary"]["images"] == 2 and arm["environment"]["commit"] is not None
    assert arm["summary"]["decode_together"] == 6 and arm["summary"]["decode_together_s_mean"] > 0
    for row in arm["images"]:
        assert row["bytes"] * 8 >= row["model_bits"] and row["decode_s"] > 0
    assert {p.name for p in (out / "t").iterdir()} >= {"armcodec-tiny.json", "armcodec-tiny-noadapt.json", "png.json", "webp.json", "table.md"}
    assert "armcodec tiny" in (out / "t" / "table.md").read_text()
    try:
        import matplotlib  # noqa: F401  (the plot is written only with the [bench] extra)
    except ImportError:
        return
    with Image.open(out / "t" / "plot.png") as plot:
        assert plot.format == "PNG" and plot.width > 300


def test_bench_codecs_take_turns_image_by_image(work, monkeypatch):
    """Every codec runs on an image before the next image: their times come from the same minutes."""
    import io
    import sys

    from armcodec_benchmarks.bench import run

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: a line per codec and image, no bar
    lines = []
    images = [str(work / "kodim23_rgb_64x48.png"), str(work / "usc_sipi_6.1_gray_40x33.png")]
    run(images, "order", "armcodec,png,webp", model="tiny", out=work / "results", log=lines.append, together=1)
    order = [line.split()[:2] for line in lines if "bpsp  enc" in line]
    assert order == [["armcodec", "kodim23_rgb_64x48.png"], ["png", "kodim23_rgb_64x48.png"],
                     ["webp", "kodim23_rgb_64x48.png"], ["armcodec", "usc_sipi_6.1_gray_40x33.png"],
                     ["png", "usc_sipi_6.1_gray_40x33.png"], ["webp", "usc_sipi_6.1_gray_40x33.png"]]
    assert json.loads((work / "results" / "order" / "png.json").read_text())["summary"]["images"] == 2


def test_adapt_and_feedback_flags_pick_the_profile_and_all_decode(work):
    src = work / "kodim23_rgb_64x48.png"
    for flags, profile in ((["--adapt"], 8), (["--no-feedback"], 2), (["--no-adapt"], 1), (["--orient", "--no-feedback"], 3),
                           (["--orient"], 9)):
        out = work / f"p{profile}.arm"
        r = runner.invoke(app, ["compress", str(src), "-o", str(out), "--model", "tiny", *flags])
        assert r.exit_code == 0, r.output
        info = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
        assert info["coder_profile"] == profile
        r = runner.invoke(app, ["decompress", str(out), "-o", str(work / f"p{profile}.png")])
        assert r.exit_code == 0, r.output
        assert np.array_equal(np.asarray(Image.open(work / f"p{profile}.png")), load("kodim23_rgb_64x48.png"))


def test_no_binned_writes_the_one_table_layout_that_0_10_reads(work):
    src = work / "kodim23_rgb_64x48.png"
    for flag, binned in (("--binned", True), ("--no-binned", False)):
        out = work / f"{flag}.arm"
        r = runner.invoke(app, ["compress", str(src), "-o", str(out), "--model", "tiny", "--no-classic", flag])
        assert r.exit_code == 0, r.output
        info = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
        assert info["coder_tools"].get("binned", False) is binned  # (listed only when on)
        r = runner.invoke(app, ["decompress", str(out), "-o", str(work / f"{flag}.png")])
        assert r.exit_code == 0, r.output
        assert np.array_equal(np.asarray(Image.open(work / f"{flag}.png")), load("kodim23_rgb_64x48.png"))
