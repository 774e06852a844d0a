"""Row 48: what confining the temporal model's view of the previous frame to the pixel's own tile
would cost in bits (the format change that would let the decoder run the next frame's wavefront a
few dozen steps behind this one's, row 47).  Encoder only, real files (sizes from the coded bytes):
each clip's first frames with the `video` preset as it is, and with (a) every window position
outside the pixel's tile read as outside the frame and (b) the motion-compensated sources clamped
into the tile (instead of into the frame).

    python -m benchmarks.experiments.row48_tile_context [--frames 6] [--out FILE]

Writes ``results/tile_context.json``: per clip bpsp and model bpsp of both, and the change."""
from __future__ import annotations

import argparse
import io
import itertools
import json
from pathlib import Path

import numpy as np

from armcodec import video
from armcodec.coding import motion
from armcodec.io.frames import y4m_source
from armcodec.models import temporal_exact

HERE = Path(__file__).parent
CLIPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "video" / "y4m"
NAMES = ("foreman_cif_60f.y4m", "carphone_qcif_120f.y4m", "CiscoVT2people_320x192_9f.y4m", "mobile_calendar_cif_30f.y4m")


def tile_bounds(ys: np.ndarray, xs: np.ndarray, h: int, w: int, tile: int):
    top, left = (ys // tile) * tile, (xs // tile) * tile
    return top, left, np.minimum(top + tile, h), np.minimum(left + tile, w)


def confined(tile: int):
    """The two functions that make the previous frame tile-local: the context's rows, and the
    motion compensation (sources clamped into each position's tile)."""
    terms = temporal_exact.IntTemporalPixelCNN.context_terms

    def context_terms(self, planes, ys, xs, device, which=None):
        assert which is None  # the encoder: one plane group
        out = terms(self, planes, ys, xs, device)
        h, w = planes.shape[:2]
        di, dj = np.array(temporal_exact.window_offsets(self.cfg.context_reach)).T
        rows = out.rows

        def tile_rows(a: int, b: int) -> np.ndarray:
            got = rows(a, b)
            top, left, bottom, right = tile_bounds(ys[a:b, None], xs[a:b, None], h, w, tile)
            y, x = ys[a:b, None] + di[None], xs[a:b, None] + dj[None]
            got[(y < top) | (y >= bottom) | (x < left) | (x >= right)] = 0  # row 0: padding, all zero
            return got

        out.rows = tile_rows
        return out

    def tile_compensate(prev, vectors, block=motion.BLOCK):
        if vectors is None or not vectors.any():
            return prev
        h, w = prev.shape[:2]
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        dy = np.repeat(np.repeat(vectors[:, :, 0], block, 0), block, 1)[:h, :w]
        dx = np.repeat(np.repeat(vectors[:, :, 1], block, 0), block, 1)[:h, :w]
        top, left, bottom, right = tile_bounds(ys, xs, h, w, tile)
        return np.ascontiguousarray(prev[np.clip(ys + dy, top, bottom - 1), np.clip(xs + dx, left, right - 1)])

    return context_terms, tile_compensate


def encode(name: str, n: int, **codec) -> dict:
    """The first ``n`` frames of clip ``name`` through ``VideoCodec(**codec)``: bpsp of the file
    and of the model, and the weights that coded it."""
    src = y4m_source(open(CLIPS / name, "rb"), name)
    src.frames = iter(list(itertools.islice(src.frames, n)))
    vc = video.VideoCodec(**codec)
    stats = vc.encode(src, io.BytesIO())
    return {"bpsp": round(stats.bpsp, 5), "model_bpsp": round(stats.model_bpsp, 5), "weights": vc.codec.model.entry.name}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "tile_context.json")
    a = ap.parse_args(argv)
    tile = video.VideoCodec().codec.tile_size
    keep = temporal_exact.IntTemporalPixelCNN.context_terms, motion.compensate
    out = {}
    for name in NAMES:
        rec = {"as is": encode(name, a.frames)}
        temporal_exact.IntTemporalPixelCNN.context_terms, motion.compensate = confined(tile)
        try:
            rec["own tile"] = encode(name, a.frames)
        finally:
            temporal_exact.IntTemporalPixelCNN.context_terms, motion.compensate = keep
        rec["change"] = round(rec["own tile"]["bpsp"] / rec["as is"]["bpsp"] - 1, 5)
        out[name] = rec
        print(name, rec, flush=True)
    a.out.write_text(json.dumps({"tile": tile, "frames": a.frames, "clips": out}, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
