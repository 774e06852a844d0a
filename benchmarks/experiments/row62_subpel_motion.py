"""Row 62: would motion vectors finer than a pixel help the `video` preset's model as it is
(no retraining)?  Encoder only, real files (sizes from the coded bytes, the vectors' side
information included): each clip's first frames with the integer block search (the format today)
against the same search refined to half or quarter pixels, the previous frame then interpolated
bilinearly in integers (``(sum of weights * the four neighbours + 8) >> 4`` at quarter pixels),
both sides able to compute it exactly.

    python -m benchmarks.experiments.row62_subpel_motion [--frames 6] [--out FILE]

Writes ``results/subpel_motion.json``: per clip and precision the bpsp of the file and of the model."""
from __future__ import annotations

import argparse
import io
import itertools
import json
from pathlib import Path

import numpy as np

from armcodec import video
from armcodec.coding import motion
from armcodec.encoder import motion as motion_search
from armcodec.io.frames import frame_files, frames_source, y4m_source

HERE = Path(__file__).parent
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "video"
CLIPS = ("y4m/carphone_qcif_120f.y4m", "y4m/mobile_calendar_cif_30f.y4m", "y4m/foreman_cif_60f.y4m",
         "usc_sipi_motion", "y4m/CiscoVT2people_320x192_9f.y4m")


def per_pixel(vectors: np.ndarray, h: int, w: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    dy = np.repeat(np.repeat(vectors[:, :, 0], block, 0), block, 1)[:h, :w]
    dx = np.repeat(np.repeat(vectors[:, :, 1], block, 0), block, 1)[:h, :w]
    return dy, dx


def compensate_fine(prev: np.ndarray, vectors: np.ndarray | None, block: int = motion.BLOCK, unit: int = 4) -> np.ndarray:
    """prev uint8 (H, W, g); vectors in 1/unit pixels -> the bilinearly interpolated moved frame
    (integers: weights in 1/unit steps, rounded once)."""
    if vectors is None or not vectors.any():
        return prev
    h, w = prev.shape[:2]
    dy, dx = per_pixel(vectors, h, w, block)
    iy, fy = np.divmod(dy, unit)
    ix, fx = np.divmod(dx, unit)
    y0 = np.arange(h)[:, None] + iy
    x0 = np.arange(w)[None, :] + ix
    p = prev.astype(np.int64)

    def at(y, x):
        return p[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]

    wy1, wx1 = fy[..., None], fx[..., None]
    wy0, wx0 = unit - wy1, unit - wx1
    acc = (wy0 * wx0 * at(y0, x0) + wy0 * wx1 * at(y0, x0 + 1) + wy1 * wx0 * at(y0 + 1, x0)
           + wy1 * wx1 * at(y0 + 1, x0 + 1))
    return np.ascontiguousarray(((acc + unit * unit // 2) // (unit * unit)).astype(np.uint8))


def search_fine(unit: int):
    """The integer search, then each block's vector refined in 1/unit steps within half a pixel
    either way by the sum of absolute differences of the interpolated frame."""
    integer = motion_search.search

    def search(cur: np.ndarray, prev: np.ndarray, block: int = motion.BLOCK, radius: int = 7) -> np.ndarray:
        v = integer(cur, prev, block, radius) * unit
        h, w = cur.shape[:2]
        by, bx = motion.block_grid(h, w, block)
        c = cur.astype(np.int64).sum(2)
        best = np.full((by, bx), np.inf)
        out = v.copy()
        half = unit // 2
        for qy in range(-half, half + 1):
            for qx in range(-half, half + 1):
                cand = v + np.array([qy, qx])
                moved = compensate_fine(prev, cand, block, unit).astype(np.int64).sum(2)
                diff = np.zeros((by * block, bx * block), np.int64)
                diff[:h, :w] = np.abs(c - moved)
                sad = diff.reshape(by, block, bx, block).sum((1, 3)).astype(float)
                sad += 0.5 * (qy != 0 or qx != 0) * block * block / unit  # a small cost for leaving the integer vector
                better = sad < best
                best[better] = sad[better]
                out[better] = cand[better]
        return out
    return search


def source(name: str, n: int):
    path = DATA / name
    src = frames_source(frame_files([path])) if path.is_dir() else y4m_source(open(path, "rb"), name)
    src.frames = iter(list(itertools.islice(src.frames, n)))
    return src


def encode(name: str, n: int, unit: int) -> dict:
    saved = motion_search.search, motion.compensate
    try:
        if unit > 1:
            video.motion_search.search = search_fine(unit)
            video.motion.compensate = lambda prev, vectors, block=motion.BLOCK: compensate_fine(prev, vectors, block, unit)
        src = source(name, n)
        stats = video.VideoCodec().encode(src, io.BytesIO())
    finally:
        motion_search.search, motion.compensate = saved
    return {"bpsp": round(stats.bpsp, 5), "model_bpsp": round(stats.model_bpsp, 5)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--units", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--clips", nargs="+", default=list(CLIPS))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "subpel_motion.json")
    a = ap.parse_args(argv)
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    for name in a.clips:
        rec = out.setdefault(name, {})
        for unit in a.units:
            rec[f"1/{unit}"] = encode(name, a.frames, unit)
            print(name, f"1/{unit}", rec[f"1/{unit}"], flush=True)
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
