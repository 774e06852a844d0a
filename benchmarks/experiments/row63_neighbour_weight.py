"""Row 63: the previous-frame predictor's mixture weight per sample, from the coded neighbours
(0.14), encoder-side estimates and real files.

``estimate``: per grey plane of each clip's first frames after the first, the temporal model's and
the predictor's estimated bits per sample (their own tables, no coder tools; as row 62's
``planes``), then their mixture with a log2-odds per tile (the best of 17, as the coder's index)
plus ``k`` times the neighbours' mean of ``log2(1 + |model miss|) - log2(1 + |predictor miss|)``
(the model's miss: from the mean of its likeliest component; the neighbours in the same tile),
for neighbourhoods of 4, 6, 8 and 10 coded samples and k = 0 (0.13), 1.5, 2, 2.5.

``files``: the first frames through ``VideoCodec(neighbours=False, sharp=False)`` (0.13's
records), with the neighbour term alone (``sharp=False``), and the default (0.14: also coder tool
6, H.264's quarter pixels where a group's moved frame is closer by them, row 64), sizes of the
coded bytes, every file decoded and compared.

    python -m benchmarks.experiments.row63_neighbour_weight --study estimate|files [--frames 6]

Writes ``results/neighbour_weight.json`` (one key per study)."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from armcodec import video
from armcodec.encoder.search import estimate_bits
from armcodec.models import previous_frame_exact as pf
from benchmarks.experiments.row62_subpel_motion import moved_grey_planes, source

HERE = Path(__file__).parent
CLIPS = ("y4m/carphone_qcif_120f.y4m", "y4m/mobile_calendar_cif_30f.y4m", "usc_sipi_motion", "y4m/foreman_cif_60f.y4m")
SETS = {4: pf.NEIGHBOURS, 6: pf.NEIGHBOURS + ((0, -2), (-2, 0)), 8: pf.NEIGHBOURS + ((0, -2), (-2, 0), (-1, -2), (-1, 2)),
        10: pf.GAP_NEIGHBOURS}


def estimate(clips, n: int) -> dict:
    out = {}
    for name in clips:
        total, samples = {}, 0
        for c, g, ctx, tiles, sched, ys, xs, values in moved_grey_planes(name, n):
            net, cfg = c.model.net, c.model.net.cfg
            bits, model = {}, None
            for key, m in (("model", net), ("predictor", pf.PreviousFramePredictor(cfg))):
                src = m.encoder_pass(tiles, sched, c.tile_size, c.device, values, context=(ctx, ys, xs))
                bits[key] = estimate_bits(src.params, values, 0, cfg, c.model.luts, 0).numpy()
                model = src.params.long() if key == "model" else model
            a, b = bits["model"], bits["predictor"]
            x = values[:, 0].numpy()
            miss_m = np.log2(1 + np.abs(16 * (x - 128) - pf.likeliest_mean(model, cfg, values)[:, 0]) / 16)
            miss_p = np.log2(1 + np.abs(x - ctx[ys, xs, 0].astype(np.int64)))
            h, w = g.shape[:2]
            gap, tile = np.zeros((h + 2, w + 4)), np.full((h + 2, w + 4), -1)
            gap[ys + 2, xs + 2], tile[ys + 2, xs + 2] = miss_m - miss_p, sched.n
            _, region = np.unique(sched.n, return_inverse=True)
            samples += len(a)
            for size, near in SETS.items():
                d, count = np.zeros(len(a)), np.zeros(len(a))
                for di, dj in near:
                    same = tile[ys + 2 + di, xs + 2 + dj] == sched.n
                    d += np.where(same, gap[ys + 2 + di, xs + 2 + dj], 0)
                    count += same
                d /= np.maximum(count, 1)
                for k in (0.0, 1.5, 2.0, 2.5):
                    if k == 0 and size != 4:
                        continue
                    mixes = []
                    for odds in range(-8, 9):  # the predictor's log2-odds, per tile
                        wp = 1 / (1 + 2.0 ** -np.clip(odds + k * d, -30, 30))
                        mixes.append(np.bincount(region, -np.log2(wp * 2.0 ** -b + (1 - wp) * 2.0 ** -a)))
                    key = "per tile (0.13)" if k == 0 else f"{size} neighbours, k={k}"
                    total[key] = total.get(key, 0.0) + float(np.min(mixes, 0).sum())
        out[name] = {k: round(v / samples, 4) for k, v in total.items()}
        print(name, out[name], flush=True)
    return out


def files(clips, n: int) -> dict:
    out = {}
    for name in clips:
        for label, codec in (("0.13", video.VideoCodec(neighbours=False, sharp=False)),
                             ("neighbour term", video.VideoCodec(sharp=False)), ("0.14", video.VideoCodec())):
            stats = []
            buf = io.BytesIO()
            codec.encode(source(name, n), buf, progress=stats.append)
            f = io.BytesIO(buf.getvalue())
            dec = video.VideoCodec()
            back = [fr for _, fr, _ in dec.decode(f, dec.open(f))]
            exact = all(np.array_equal(a, b) for x, y in zip(back, source(name, n).frames) for a, b in zip(x.groups, y.groups))
            out.setdefault(name, {})[label] = {"bytes": len(buf.getvalue()), "inter_frame_bytes": sum(s.bytes for s in stats if not s.key),
                                               "exact": exact}
            print(name, label, out[name][label], flush=True)
        base = out[name]["0.13"]["inter_frame_bytes"]
        out[name]["inter_frames_change"] = {v: round(out[name][v]["inter_frame_bytes"] / base - 1, 5)
                                            for v in ("neighbour term", "0.14")}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--study", choices=("estimate", "files"), required=True)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("clips", nargs="*", default=list(CLIPS))
    a = ap.parse_args(argv)
    path = HERE / "results" / "neighbour_weight.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out[a.study] = {"frames": a.frames, "results": {"estimate": estimate, "files": files}[a.study](a.clips, a.frames)}
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
