"""Row 49: does the `video` preset's model use the motion-compensated previous frame?  Real
files (sizes from the coded bytes) of each clip's first frames with the block search's vectors
(`VideoCodec(motion=True)`, the default) and without (every vector zero), for the installed
weights or another weights folder (a model trained on motion-compensated pairs:
`python -m armcodec.training.video ... --motion`, exported there).

    python -m benchmarks.experiments.row49_motion_pairs [--weights-dir DIR] [--frames 6] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.experiments.row48_tile_context import NAMES, encode

HERE = Path(__file__).parent


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights-dir", type=Path)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "motion_pairs.json")
    a = ap.parse_args(argv)
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    key = str(a.weights_dir or "installed")
    out[key] = {}
    for name in NAMES:
        rec = {m: encode(name, a.frames, motion=m == "motion", weights_dir=a.weights_dir) for m in ("motion", "no motion")}
        out[key][name] = rec
        print(key, name, rec, flush=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
