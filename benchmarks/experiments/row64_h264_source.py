"""Row 64: why x264 lossless codes cockatoo.mp4 (an H.264 High 4:4:4 source, decoded) 26% smaller
than armcodec, when JPEG-XL per frame is level with armcodec (encoder-side studies, no format).

``x264``: x264 lossless (``-qp 0 -preset veryslow``, as the video bench runs it) on the clip's first
30 decoded frames with one tool at a time switched off: B-frames, 16 reference frames (``ref=1``),
sub-pixel motion (``subme=0``, which also drops x264's rate-distortion mode decision), partitions
below 16x16, every frame intra.

``residuals``: the luma of frames 5 and 20 against the previous frame moved per block: the mean
absolute residual for blocks of 16 and 8 pixels, a search radius of 7 (the coder's) or 16 (the
format's largest vector), integer vectors, and quarter-pixel vectors interpolated bilinearly (the
coder's, ``coding/motion.compensate``) or by H.264's 6-tap luma filter (the source's own); and how
many 4x4 luma blocks of frame 5 equal some block of frame 4 exactly (integer or H.264 quarter-pixel
positions within 32 pixels: an H.264 source's skipped blocks).

``textures``: the same residuals (blocks of 16, the coder's search) for the luma of frames 3 and
5 of mobile_calendar and carphone, with the order-0 entropy of each residual plane: what moved
coder tool 6 (0.14) into the format.

    python -m benchmarks.experiments.row64_h264_source --study x264|residuals|textures

Writes ``results/h264_source.json`` (one key per study)."""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from armcodec.coding import motion
from armcodec.encoder import motion as motion_search
from armcodec.io.frames import ffmpeg_exe

HERE = Path(__file__).parent
CLIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "video" / "cockatoo.mp4"
W, H = 1280, 720


def frames(n: int) -> np.ndarray:
    """The clip's first n decoded frames, uint8 (n, 3, H, W) Y, U, V (its yuv444p)."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(CLIP), "-frames:v", str(n), "-f", "rawvideo",
                          "-pix_fmt", "yuv444p", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 3, H, W)


def x264(n: int = 30) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.yuv", Path(d) / "out.mkv"
        src.write_bytes(frames(n).tobytes())
        for label, params in (("veryslow", ""), ("bframes=0", ":bframes=0"), ("ref=1", ":bframes=0:ref=1"),
                              ("ref=1 subme=0", ":bframes=0:ref=1:subme=0"),
                              ("ref=1 partitions=none", ":bframes=0:ref=1:partitions=none"), ("intra only", ":keyint=1")):
            subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv444p", "-s", f"{W}x{H}",
                            "-r", "20", "-i", str(src), "-c:v", "libx264", "-qp", "0", "-preset", "veryslow",
                            "-x264-params", "log-level=error" + params, str(dst)], check=True)
            size = dst.stat().st_size
            out[label] = {"bytes": size, "bpsp": round(8 * size / (n * 3 * W * H), 4)}
            print(label, out[label], flush=True)
    return out


def h264_quarter(p: np.ndarray, pad: int) -> np.ndarray:
    """(H, W) uint8 -> int64 (4, 4, H + 2 pad, W + 2 pad): [fy, fx] the H.264 luma sample at
    (x + fx / 4, y + fy / 4) (8.4.2.2.1: the 6-tap half samples, the averaged quarter ones; edges repeat)."""
    P = np.pad(p.astype(np.int64), pad + 3, mode="edge")
    fir = lambda a, ax: (np.take(a, range(0, a.shape[ax] - 5), ax) - 5 * np.take(a, range(1, a.shape[ax] - 4), ax)  # noqa: E731
                         + 20 * np.take(a, range(2, a.shape[ax] - 3), ax) + 20 * np.take(a, range(3, a.shape[ax] - 2), ax)
                         - 5 * np.take(a, range(4, a.shape[ax] - 1), ax) + np.take(a, range(5, a.shape[ax]), ax))
    b1, h1 = fir(P, 1), fir(P, 0)
    j1 = fir(b1, 0)
    n0, n1 = P.shape[0] - 6, P.shape[1] - 6
    G = P[3:-3, 3:-3]
    b = np.clip((b1[3:-3, 1 : 1 + n1] + 16) >> 5, 0, 255)
    h = np.clip((h1[1 : 1 + n0, 3:-3] + 16) >> 5, 0, 255)
    j = np.clip((j1[1 : 1 + n0, 1 : 1 + n1] + 512) >> 10, 0, 255)
    right = lambda a: np.pad(a, ((0, 0), (0, 1)), mode="edge")[:, 1:]  # noqa: E731
    down = lambda a: np.pad(a, ((0, 1), (0, 0)), mode="edge")[1:]  # noqa: E731
    Q = np.empty((4, 4) + G.shape, np.int64)
    Q[0, 0], Q[0, 2], Q[2, 0], Q[2, 2] = G, b, h, j
    Q[0, 1], Q[0, 3], Q[1, 0], Q[3, 0] = (G + b + 1) >> 1, (b + right(G) + 1) >> 1, (G + h + 1) >> 1, (h + down(G) + 1) >> 1
    Q[2, 1], Q[2, 3], Q[1, 2], Q[3, 2] = (h + j + 1) >> 1, (j + right(h) + 1) >> 1, (b + j + 1) >> 1, (j + down(b) + 1) >> 1
    Q[1, 1], Q[1, 3], Q[3, 1], Q[3, 3] = (b + h + 1) >> 1, (b + right(h) + 1) >> 1, (h + down(b) + 1) >> 1, (right(h) + down(b) + 1) >> 1
    return Q


def h264_refined_residual(cur: np.ndarray, prev: np.ndarray, vectors: np.ndarray, block: int) -> np.ndarray:
    """Each block's best quarter-pixel vector within half a pixel of its integer one, H.264's filter."""
    pad = 24
    Q = h264_quarter(prev, pad)
    res = np.zeros(cur.shape, np.int64)
    for i in range(vectors.shape[0]):
        for k in range(vectors.shape[1]):
            y0, x0 = i * block, k * block
            cb = cur[y0 : y0 + block, x0 : x0 + block].astype(np.int64)
            best = None
            for oy in range(-2, 3):
                for ox in range(-2, 3):
                    iy, fy = divmod(4 * int(vectors[i, k, 0]) + oy, 4)
                    ix, fx = divmod(4 * int(vectors[i, k, 1]) + ox, 4)
                    d = cb - Q[fy, fx, y0 + iy + pad : y0 + iy + pad + cb.shape[0], x0 + ix + pad : x0 + ix + pad + cb.shape[1]]
                    s = np.abs(d).sum() + (0 if oy == ox == 0 else 1)
                    if best is None or s < best[0]:
                        best = (s, d)
            res[y0 : y0 + block, x0 : x0 + block] = best[1]
    return res


def exact_blocks(cur: np.ndarray, prev: np.ndarray, radius: int = 32) -> dict:
    """The share of cur's 4x4 blocks equal to some 4x4 block of prev at an integer or H.264
    quarter-pixel position within ``radius`` pixels (by a hash of every window)."""
    prime = np.uint64(1099511628211)

    def windows(a):
        a = a.astype(np.uint64)
        out = np.zeros((a.shape[0] - 3, a.shape[1] - 3), np.uint64)
        with np.errstate(over="ignore"):
            for i in range(4):
                for j in range(4):
                    out = out * prime + a[i : i + out.shape[0], j : j + out.shape[1]] + np.uint64(1)
        return out

    want = windows(cur)[::4, ::4]
    pad = radius + 8
    Q = h264_quarter(prev, pad)
    by, bx = np.mgrid[0 : want.shape[0], 0 : want.shape[1]]
    found = {"integer": np.zeros(want.shape, bool), "quarter": np.zeros(want.shape, bool)}
    for fy in range(4):
        for fx in range(4):
            have = windows(Q[fy, fx])
            for iy in range(-radius, radius + 1):
                for ix in range(-radius, radius + 1):
                    hit = have[by * 4 + iy + pad, bx * 4 + ix + pad] == want
                    if fy == fx == 0:
                        found["integer"] |= hit
                    found["quarter"] |= hit
    return {k: round(float(v.mean()), 4) for k, v in found.items()}


def residuals() -> dict:
    fr = frames(21)
    out = {}
    for t in (5, 20):
        cur, prev = fr[t, 0][:, :, None], fr[t - 1, 0][:, :, None]
        c = cur[:, :, 0].astype(np.int64)
        for block, radius in ((16, 7), (16, 16), (8, 16)):
            v = motion_search.search(cur, prev, block, radius)
            vq = motion_search.refine(cur, prev, v, block, motion.QUARTER)
            row = {"integer": c - motion.compensate(prev, v, block)[:, :, 0],
                   "bilinear quarter": c - motion.compensate(prev, vq, block, motion.QUARTER)[:, :, 0],
                   "H.264 quarter": h264_refined_residual(cur[:, :, 0], prev[:, :, 0], v, block)}
            out[f"frame {t}, block {block}, radius {radius}"] = {k: round(float(np.abs(r).mean()), 3) for k, r in row.items()}
            print(t, block, radius, out[f"frame {t}, block {block}, radius {radius}"], flush=True)
    out["frame 5, exact 4x4 luma blocks within 32 pixels"] = exact_blocks(fr[5, 0], fr[4, 0])
    print(out["frame 5, exact 4x4 luma blocks within 32 pixels"], flush=True)
    return out


def textures() -> dict:
    from benchmarks.experiments.row62_subpel_motion import source

    def entropy(r):
        p = np.unique(r, return_counts=True)[1] / r.size
        return round(float(-(p * np.log2(p)).sum()), 3)

    out = {}
    for name in ("y4m/mobile_calendar_cif_30f.y4m", "y4m/carphone_qcif_120f.y4m"):
        fr = list(source(name, 6).frames)
        for t in (3, 5):
            cur, prev = fr[t].groups[0], fr[t - 1].groups[0]
            v = motion_search.search(cur, prev)
            c = cur[:, :, 0].astype(np.int64)
            row = {"integer": c - motion.compensate(prev, v)[:, :, 0],
                   "bilinear quarter": c - motion.compensate(prev, motion_search.refine(cur, prev, v), unit=motion.QUARTER)[:, :, 0],
                   "H.264 quarter": c - motion.compensate(prev, motion_search.refine(cur, prev, v, sharp=True), unit=motion.QUARTER,
                                                          sharp=True)[:, :, 0]}
            out[f"{name} frame {t}"] = {k: {"mean_abs": round(float(np.abs(r).mean()), 3), "order0_bits": entropy(r)}
                                        for k, r in row.items()}
            print(name, t, out[f"{name} frame {t}"], flush=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--study", choices=("x264", "residuals", "textures"), required=True)
    a = ap.parse_args(argv)
    path = HERE / "results" / "h264_source.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out[a.study] = {"x264": x264, "residuals": residuals, "textures": textures}[a.study]()
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
