"""Decoding memory is bounded by tile size and batch, not by the image size.

Each decode runs in a fresh process and reports its peak resident set size.  An image with 36x
the tiles of another (a mosaic of a real photograph) must peak within a few MiB of it, plus its
own pixels: a decoder that held every tile's activations at once would need about 50 MiB more.
The full-size figures for the shipped model are in benchmarks/results/memory.json
(benchmarks/memory.py)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load

CHILD = r"""
import json, re, sys
from pathlib import Path
import torch
import armcodec
torch.set_num_threads(1)
codec = armcodec.Codec("tiny", device="cpu", weights_dir=Path(sys.argv[1]), batch_bytes=2 << 20)
codec.decode(Path(sys.argv[2]).read_bytes())
# VmHWM: this process's peak RSS (ru_maxrss would include the forking parent's)
print(json.dumps({"peak_mb": int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024}))
"""


def peak_decode_mb(weights_dir, arm_path) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(weights_dir), str(arm_path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the peak RSS")
def test_decode_peak_memory_does_not_grow_with_the_image(tiny_dir, tiny_codec, tmp_path):
    photo = load("kodim05_rgb_130x70.png")  # 16-pixel tiles: 36 tiles per 96x96, 1296 per 576x576
    small = np.ascontiguousarray(np.tile(photo, (2, 1, 1))[:96, :96])
    large = np.ascontiguousarray(np.tile(photo, (9, 5, 1))[:576, :576])
    paths = {}
    for name, img in (("small", small), ("large", large)):
        paths[name] = tmp_path / f"{name}.arm"
        paths[name].write_bytes(tiny_codec.compress(img))
    p_small = peak_decode_mb(tiny_dir, paths["small"])
    p_large = peak_decode_mb(tiny_dir, paths["large"])
    image_mb = (large.nbytes + paths["large"].stat().st_size) / 2**20
    assert p_large - p_small < 8 + 3 * image_mb, (p_small, p_large)
