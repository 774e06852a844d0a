"""Row 62: the video coder's previous frame, four studies (encoder only, real files unless said).

``subpel``: would motion vectors finer than a pixel help the `video` preset's temporal model as it
is?  The first frames of each clip with the integer block search (the format before 0.13) against
the same search refined to half or quarter pixels, the previous frame then interpolated bilinearly
in integers.

``planes``: how far is the temporal model from the moved previous frame itself?  Per plane of the
frames after the first, the model's estimated bits (its own tables, no coder tools) against the
previous-frame predictor's (:mod:`armcodec.models.previous_frame_exact`, quarter-pixel vectors), the
better of the two per tile, per 32x32 block, per sample (an oracle), and their mixture
``w p_model + (1 - w) p_predictor`` with ``w`` fixed or the best of nine per tile or block.

``fit``: the predictor's constants (scale base, activity and edge slopes), every combination's
bits (a discretized logistic) on 400K samples of moved-frame planes of the training clips
(`video-train`, and carphone's and vtest's frames after the 60th).

``files``: the first frames of each clip through ``VideoCodec(predictor=False / True)`` (the
mixture of 0.13), sizes from the coded bytes, every file decoded and compared.

    python -m benchmarks.experiments.row62_subpel_motion --study subpel|planes|fit|files [--frames 6]

Writes ``results/previous_frame.json`` (one key per study)."""
from __future__ import annotations

import argparse
import io
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from armcodec import video
from armcodec.coding import motion
from armcodec.coding.planes import image_coords
from armcodec.coding.scan import Schedule, tile_grid
from armcodec.encoder import motion as motion_search
from armcodec.encoder.search import estimate_bits
from armcodec.io.frames import frame_files, frames_source, video_source, y4m_source
from armcodec.models import previous_frame_exact as pf

HERE = Path(__file__).parent
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CLIPS = ("y4m/carphone_qcif_120f.y4m", "y4m/mobile_calendar_cif_30f.y4m", "y4m/foreman_cif_60f.y4m",
         "usc_sipi_motion", "y4m/CiscoVT2people_320x192_9f.y4m")
TRAINING = (("video-train/mm_demo_demo.mp4", 0, 6), ("video-train/VID_1280x720_cabac_temporal_direct.264", 100, 3),
            ("video-train/Cisco_Men_whisper_640x320_CABAC_Bframe_9.264", 0, 5), ("video-train/mm_tests_data_test.mp4", 0, 5),
            ("video-train/mm_demo_demo_spatiotemporal_det.mp4", 0, 5), ("video/y4m/carphone_qcif_120f.y4m", 60, 8),
            ("video/vtest.avi", 60, 3))


def source(name: str, n: int, start: int = 0):
    path = DATA / "video" / name if not name.startswith(("video/", "video-train/")) else DATA / name
    if path.is_dir():
        src = frames_source(frame_files([path]))
    elif path.suffix == ".y4m":
        src = y4m_source(open(path, "rb"), name)
    else:
        src = video_source(path)
    src.frames = iter(list(itertools.islice(src.frames, start + n))[start:])
    return src


# --- subpel: the temporal model with finer vectors ----------------------------------------------
def search_fine(unit: int):
    """The integer search, then each block's vector refined in 1/unit steps within half a pixel."""
    integer = motion_search.search

    def search(cur, prev, block=motion.BLOCK, radius=7):
        return motion_search.refine(cur, prev, integer(cur, prev, block, radius), block, unit)
    return search


def subpel(clips, n: int) -> dict:
    out = {}
    for name in clips:
        for unit in (1, 2, 4):
            saved = motion_search.search, motion.compensate
            try:
                if unit > 1:
                    plain = motion.compensate
                    motion_search.search = search_fine(unit)
                    motion.compensate = lambda prev, vectors, block=motion.BLOCK, unit_=1: plain(prev, vectors, block, unit)
                stats = video.VideoCodec(predictor=False).encode(source(name, n), io.BytesIO())
            finally:
                motion_search.search, motion.compensate = saved
            out.setdefault(name, {})[f"1/{unit}"] = {"bpsp": round(stats.bpsp, 5), "model_bpsp": round(stats.model_bpsp, 5)}
            print(name, f"1/{unit}", out[name][f"1/{unit}"], flush=True)
    return out


# --- planes: the model against the predictor, by region ---------------------------------------
def moved_grey_planes(name: str, n: int):
    """Each grey plane of the clip's first n frames after the first, with what a pass over it
    needs: (the video codec of its frames, the plane, its moved previous plane (the coder's block
    search, refined to quarter pixels, blended), tiles, schedule, ys, xs, values), inside the
    codec's coding context."""
    frames = list(source(name, n).frames)
    vc = video.VideoCodec()
    c = vc.codec = vc.codec_for([(g.shape[1], g.shape[0], g.shape[2]) for g in frames[0].groups])
    with c._coding():
        for prev, cur in zip(frames, frames[1:]):
            for g, p in zip(cur.groups, prev.groups):
                if g.shape[2] != 1:
                    continue
                ctx = motion.compensate(p, motion_search.refine(g, p, motion_search.search(g, p)), unit=motion.QUARTER)
                tiles = tile_grid(*g.shape[:2], c.tile_size)
                sched = Schedule(tiles, c.model.net, c.tile_size)
                ys, xs = image_coords(tiles, sched, None)
                yield c, g, ctx, tiles, sched, ys, xs, torch.from_numpy(g[ys, xs].astype(np.int64))


def planes(clips, n: int) -> dict:
    out = {}
    weights = (0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 7 / 8, 15 / 16, 1)
    for name in clips:
        total, samples = {}, 0
        for c, g, ctx, tiles, sched, ys, xs, values in moved_grey_planes(name, n):
            m = c.model
            bits = {}
            for key, net in (("model", m.net), ("predictor", pf.PreviousFramePredictor(m.net.cfg))):
                src = net.encoder_pass(tiles, sched, c.tile_size, c.device, values, context=(ctx, ys, xs))
                bits[key] = estimate_bits(src.params, values, 0, m.net.cfg, m.luts, 0).numpy()
            a, b = bits["model"], bits["predictor"]
            samples += g.size
            add = {"model": a.sum(), "predictor": b.sum(), "better per sample": np.minimum(a, b).sum(),
                   "mixture w=1/2": -np.log2(0.5 * 2.0 ** -a + 0.5 * 2.0 ** -b).sum()}
            for label, size in (("tile", c.tile_size), ("32x32", 32)):
                _, region = np.unique((ys // size) * 100000 + xs // size, return_inverse=True)
                add[f"better per {label}"] = np.minimum(np.bincount(region, a), np.bincount(region, b)).sum()
                mixes = [np.bincount(region, -np.log2(w * 2.0 ** -a + (1 - w) * 2.0 ** -b)) for w in weights]
                add[f"mixture, best of 9 per {label}"] = np.min(mixes, 0).sum()
            for k, v in add.items():
                total[k] = total.get(k, 0.0) + float(v)
        out[name] = {k: round(v / samples, 4) for k, v in total.items()}
        print(name, out[name], flush=True)
    return out


# --- fit: the predictor's constants --------------------------------------------------------------
def fit() -> dict:
    res, act, edge = [], [], []
    for name, start, n in TRAINING:
        frames = list(source(name, n, start).frames)
        for prev, cur in zip(frames, frames[1:]):
            for g, p in zip(cur.groups, prev.groups):
                if g.shape[2] != 1:
                    continue
                ctx = motion.compensate(p, motion_search.search(g, p))[:, :, 0].astype(np.int64)
                r = g[:, :, 0].astype(np.int64) - ctx
                padded = np.pad(r, 1)
                h, w = r.shape
                a = sum(np.abs(padded[1 + di : 1 + di + h, 1 + dj : 1 + dj + w]) for di, dj in pf.NEIGHBOURS)
                res.append(r.ravel())
                act.append(pf.ilog(a).ravel())
                edge.append(pf.ilog(pf.edge_strength(ctx)).ravel())
        print(name, len(res), "planes", flush=True)
    r, la, le = (np.concatenate(x) for x in (res, act, edge))
    pick = np.random.default_rng(0).choice(len(r), min(len(r), 400_000), replace=False)
    r, la, le = r[pick], la[pick], le[pick]

    def bits(idx):
        s = 2.0 ** (np.clip(idx, -32, 48) / 8)
        cdf = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        return float(-np.log2(np.maximum(cdf((r + 0.5) / s) - cdf((r - 0.5) / s), 1e-12)).mean())

    best = min((bits(base + ((a * la + e * le) >> 4)), base, a, e)
               for a in range(17) for e in range(9) for base in range(-40, 17, 2))
    out = {"samples": int(len(r)), "bits": round(best[0], 4), "SCALE_BASE": best[1], "ACT_SLOPE": best[2], "EDGE_SLOPE": best[3]}
    print(out, flush=True)
    return out


# --- files: the coder with and without the predictor ------------------------------------------
def files(clips, n: int) -> dict:
    out = {}
    for name in clips:
        for on in (False, True):
            frames = list(source(name, n).frames)
            src = source(name, n)
            codec = video.VideoCodec(predictor=on)
            buf = io.BytesIO()
            stats = codec.encode(src, buf)
            buf.seek(0)
            got = [f for _, f, _ in codec.decode(buf, codec.open(buf))]
            if len(got) != len(frames) or not all(np.array_equal(a, b) for x, y in zip(got, frames)
                                                  for a, b in zip(x.groups, y.groups)):
                raise SystemExit(f"{name}: not exact")
            out.setdefault(name, {})["predictor" if on else "model"] = {"bpsp": round(stats.bpsp, 5),
                                                                        "model_bpsp": round(stats.model_bpsp, 5)}
        print(name, out[name], flush=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", choices=("subpel", "planes", "fit", "files"), required=True)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--clips", nargs="+", default=list(CLIPS))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "previous_frame.json")
    a = ap.parse_args(argv)
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    run = {"subpel": lambda: subpel(a.clips, a.frames), "planes": lambda: planes(a.clips, a.frames), "fit": fit,
           "files": lambda: files(a.clips, a.frames)}[a.study]
    out[a.study] = {"frames": a.frames, "results": run()} if a.study != "fit" else run()
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
