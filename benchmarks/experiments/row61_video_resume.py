"""Row 61: temporal-planes-s3's checkpoint resumed on the CPU for more steps (moved pairs, as row
49): real files (sizes from the coded bytes) of each clip's first frames with the installed weights
and with the resumed ones exported to another weights folder
(``python -m armcodec.training.video --steps 0 --out CKPT --export NAME --preset video --planes
--weights-dir DIR``, DIR a copy of ``weights/``).

    python -m benchmarks.experiments.row61_video_resume --weights-dir DIR [--frames 10] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.experiments.row48_tile_context import NAMES, encode

HERE = Path(__file__).parent


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights-dir", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "video_resume.json")
    a = ap.parse_args(argv)
    out = {"frames": a.frames, "clips": {}}
    for name in NAMES:
        rec = {key: encode(name, a.frames, weights_dir=wd) for key, wd in (("installed", None), ("resumed", a.weights_dir))}
        rec["change"] = round(rec["resumed"]["bpsp"] / rec["installed"]["bpsp"] - 1, 5)
        out["clips"][name] = rec
        print(name, rec, flush=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
