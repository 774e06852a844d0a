"""Batch compression on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1
(`dask scheduler`, `dask worker`), and `--workers 2` (a local cluster): files byte-identical to a
serial run, a bad file reported while the rest go on.  Skipped without the cluster extra."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from armcodec_cli.main import app

from conftest import DATA

distributed = pytest.importorskip("distributed")
runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args) -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "dask", *args]


@pytest.fixture
def batch(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("ARMCODEC_WEIGHTS_DIR", str(tiny_dir))
    src = tmp_path / "in"
    src.mkdir()
    big = np.asarray(Image.open(DATA / "kodim05_rgb_130x70.png"))
    for k in range(7):
        Image.fromarray(big[: 30 + 5 * k, 10 * k : 10 * k + 40]).save(src / f"img{k}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    files = sorted(src.iterdir())
    serial = tmp_path / "serial"
    r = runner.invoke(app, ["compress", *map(str, files), "-o", str(serial), "--model", "tiny", "--device", "cpu"])
    assert r.exit_code != 0 and "1 of 8 files failed" in r.stderr
    return files, serial


def _check(out: Path, serial: Path, result) -> None:
    assert result.exit_code == 5, result.output  # the broken file's error code
    assert "broken.png" in result.stderr and "1 of 8 files failed" in result.stderr
    recs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(recs) == 7 and {r["output"] for r in recs} == {str(out / f"img{k}.png.arm") for k in range(7)}
    for k in range(7):
        assert (out / f"img{k}.png.arm").read_bytes() == (serial / f"img{k}.png.arm").read_bytes()
    assert not (out / "broken.png.arm").exists()


def test_a_scheduler_and_two_workers(batch, tmp_path, tiny_dir):
    files, serial = batch
    port = _free_port()
    env = {**os.environ, "ARMCODEC_WEIGHTS_DIR": str(tiny_dir), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        address = f"tcp://127.0.0.1:{port}"
        for _ in range(2):
            procs.append(subprocess.Popen(_dask("worker", address, "--nthreads", "1", "--no-dashboard"),
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        out = tmp_path / "cluster"
        r = runner.invoke(app, ["compress", *map(str, files), "-o", str(out), "--model", "tiny", "--device", "cpu",
                                "--scheduler", address, "--json"])
        _check(out, serial, r)
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_local_worker_processes(batch, tmp_path):
    files, serial = batch
    out = tmp_path / "local"
    r = runner.invoke(app, ["compress", *map(str, files), "-o", str(out), "--model", "tiny", "--device", "cpu",
                            "--workers", "2", "--json"])
    _check(out, serial, r)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, batch):
    files, _ = batch
    r = runner.invoke(app, ["compress", str(files[0]), "-o", str(tmp_path / "x"), "--model", "tiny",
                            "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    assert r.exit_code == 1 and "cannot reach the Dask scheduler" in r.stderr
