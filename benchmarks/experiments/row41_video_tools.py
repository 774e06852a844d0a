"""Row 41: the video coder tools beside temporal-s, on real files (sizes from the coded bytes).

1. The residual feedback: carphone's first 5 frames with and without it (bpsp, model bpsp, encode s).
2. Copying unchanged tiles: foreman's first frame repeated 4 times, each repeat's bytes with the
   copy map and without it (the encoder made to find no unchanged tile).

`python -m benchmarks.experiments.row41_video_tools` (writes results/video_tools.json)."""
import io
import itertools
import json
import time
from pathlib import Path

from armcodec import video
from armcodec.io.frames import y4m_source

CLIPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "video" / "y4m"


def frames(name: str, n: int):
    src = y4m_source(open(CLIPS / name, "rb"), name)
    return src, list(itertools.islice(src.frames, n))


def encode(codec, src, frs, sizes=None):
    src.frames = iter(frs)
    t = time.perf_counter()
    stats = codec.encode(src, io.BytesIO(), progress=(lambda s: sizes.append(s.bytes)) if sizes is not None else None)
    return {"bpsp": stats.bpsp, "model_bpsp": stats.model_bpsp, "encode_s": time.perf_counter() - t}


out = {"feedback": {}, "repeated_frame": {}}
src, frs = frames("carphone_qcif_120f.y4m", 5)
for fb in (False, True):
    out["feedback"]["on" if fb else "off"] = encode(video.VideoCodec(feedback=fb), src, frs)
src, frs = frames("foreman_cif_60f.y4m", 1)
keep = video.copied_blocks
for copy in (False, True):
    video.copied_blocks = keep if copy else (lambda planes, context, tile, log2: (None, None))
    sizes = []
    encode(video.VideoCodec(copy_blocks=False), src, frs * 4, sizes)  # (0.6's block maps left out)
    out["repeated_frame"]["copy" if copy else "no copy"] = {"frame_bytes": sizes}
video.copied_blocks = keep
print(json.dumps(out, indent=1))
(Path(__file__).parent / "results" / "video_tools.json").write_text(json.dumps(out, indent=1) + "\n")
