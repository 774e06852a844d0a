"""How much smaller lossless WebP gets at full effort (method 4, quality 100: the classic path's
setting until 0.12.7 above 64K pixels) than at a quicker quality, and what each costs: the bound
behind ``classic.WEBP_QUICK_QUALITY`` and ``WEBP_FULL_MARGIN`` (WebP at quality 100 is tried only
where the quick file times the margin is below the smallest other file, so it must never be more
than 1 - margin smaller than the quick one).  Measured on the validation photographs (every tenth
of the training folder), on the graphics the classic path is for (the PngSuite's colour images,
as RGB or RGBA) and on grey frames (the USC-SIPI sequences, as RGB); Kodak and eval/ reported.

    python -m benchmarks.experiments.row57_webp_quick ../shared/data

Prints per set the total bytes and seconds (one thread, Pillow's libwebp) of each setting and the
smallest ratio full / quick (how much smaller full effort came out at best), and writes
``benchmarks/experiments/results/webp_quick.json`` (or ``--out``).
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from armcodec.training.data import list_images, split_train_val

SETTINGS = [(4, 100), (4, 75), (4, 50), (3, 75), (2, 50)]  # (method, quality); the first is full effort


def webp_sizes(a: np.ndarray) -> tuple[list[int], list[float]]:
    sizes, secs = [], []
    for method, quality in SETTINGS:
        t = time.perf_counter()
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="WEBP", lossless=True, method=method, quality=quality, exact=True)
        secs.append(time.perf_counter() - t)
        sizes.append(len(buf.getvalue()))
    return sizes, secs


def rgb(path: Path) -> np.ndarray:
    im = Image.open(path)
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    return np.asarray(im)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="../shared/data")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "webp_quick.json")
    args = ap.parse_args(argv)
    d = args.data
    sets = {
        "validation": split_train_val(list_images(d / "train"))[1],
        "pngsuite": [p for p in sorted((d / "pngsuite").glob("*.png")) if not p.name.startswith("x")],
        "usc_sipi_frames": sorted((d / "video").glob("usc_sipi_*/*.png")),
        "kodak (reported)": sorted((d / "kodak").glob("*.png")),
        "eval (reported)": sorted((d / "eval").glob("*.png")),
    }
    out = {"settings": SETTINGS, "sets": {}}
    for name, paths in sets.items():
        rows = []
        for p in paths:
            a = rgb(Path(p))
            sizes, secs = webp_sizes(a)
            rows.append({"image": Path(p).name, "pixels": a.shape[0] * a.shape[1], "bytes": sizes, "seconds": secs})
        s = np.array([r["bytes"] for r in rows], float)
        big = np.array([r["pixels"] > 1 << 16 for r in rows])
        ratio = s[:, :1] / s  # full / each setting
        summary = {
            "images": len(rows), "above_64k_pixels": int(big.sum()),
            "bytes": s.sum(0).astype(int).tolist(),
            "seconds": np.array([r["seconds"] for r in rows]).sum(0).round(2).tolist(),
            "min_full_over_setting": ratio.min(0).round(4).tolist(),
            "min_full_over_setting_above_64k": ratio[big].min(0).round(4).tolist() if big.any() else None,
            "max_full_over_setting": ratio.max(0).round(4).tolist(),
        }
        out["sets"][name] = {"summary": summary, "rows": rows}
        print(name, json.dumps(summary), flush=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
