"""Row 42: copied blocks (the video record's block maps) on real clips, sizes from the coded bytes.

Per clip (training clips of ``../shared/data/video-train`` first: the decision is made there; then
clips of ``../shared/data/video``), its first frames coded by the `video` preset without block maps (tiles equal to the
moved previous frame are still copied whole) and with them (the encoder's block size choice), each
file decoded and compared; the share of samples in copied blocks and the block sizes picked.

`python -m benchmarks.experiments.row42_copied_blocks [--frames N]` (writes results/copied_blocks.json)."""
import argparse
import io
import itertools
import json
import time
from pathlib import Path

import numpy as np

from armcodec import container_video as cv
from armcodec import video
from armcodec.io.frames import frames_source, video_source, y4m_source

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA = SHARED / "video"
# the clips and their frames: the training clips (lossy sources, where copies are common) and the check clips
CLIPS = {"mm_tests_data_test.mp4": 6, "mm_tests_data_test.avi": 6, "Cisco_Men_whisper_640x320_CABAC_Bframe_9.264": 4,
         "vtest.avi": 4, "foreman_cif_60f.y4m": 4, "CiscoVT2people_320x192_9f.y4m": 4, "carphone_qcif_120f.y4m": 4}


def source(name: str):
    if name.endswith(".y4m"):
        return y4m_source(open(DATA / "y4m" / name, "rb"), name)
    if (DATA / name).is_dir():
        return frames_source(sorted((DATA / name).glob("*.png")))
    path = DATA / name if (DATA / name).exists() else SHARED / "video-train" / name
    return video_source(path, video_only=True)


def run(name: str, n: int, copy_blocks: bool) -> dict:
    src = source(name)
    frames = list(itertools.islice(src.frames, n))
    src.frames = iter(frames)
    codec = video.VideoCodec(copy_blocks=copy_blocks)
    buf = io.BytesIO()
    t = time.perf_counter()
    stats = codec.encode(src, buf)
    enc = time.perf_counter() - t
    buf.seek(0)
    header = codec.open(buf)
    t = time.perf_counter()
    out = list(codec.decode(buf, header))
    dec = time.perf_counter() - t
    exact = len(out) == len(frames) and all(
        all(np.array_equal(a, b) for a, b in zip(f.groups, o.groups)) for f, (_, o, _) in zip(frames, out))
    # what the records hold: block size and the share of samples in copied blocks and tiles
    buf.seek(header.size)
    copied, sizes, shapes = 0, [], header.tile_shapes()
    channels = [ch for (w, h, ch), k in zip(header.planes, header.plane_streams()) for _ in range(k)]
    for _ in frames:
        rec = cv.read_record(buf, header, buf.tell())
        for k, (h, w) in enumerate(shapes):
            if rec.copied and rec.copied[k]:
                copied += h * w * channels[k]
            elif rec.blocks and rec.blocks[k] is not None:
                s = 1 << rec.block_log2
                m = np.repeat(np.repeat(rec.blocks[k], s, 0), s, 1)[:h, :w]
                copied += int(m.sum()) * channels[k]
        if rec.blocks:
            sizes.append(1 << rec.block_log2)
    return {"frames": len(frames), "bytes": stats.bytes, "bpsp": round(stats.bpsp, 4),
            "model_bpsp": round(stats.model_bpsp, 4), "encode_s": round(enc, 1), "decode_s": round(dec, 1),
            "exact": exact, "copied_share": round(copied / (len(frames) * stats.samples_per_frame), 4),
            "block_sizes": sizes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=0, help="frames per clip (default: the table above)")
    ap.add_argument("clips", nargs="*", default=list(CLIPS))
    args = ap.parse_args()
    path = Path(__file__).parent / "results" / "copied_blocks.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in args.clips:
        n = args.frames or CLIPS[name]
        results[name] = {"without": run(name, n, False), "with": run(name, n, True)}
        print(name, json.dumps(results[name]), flush=True)
        path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
