"""Compatibility check against a corpus of .arm files written by an earlier release (kept outside the
repository; 12 of its files are tests/data/release-0.1).

    # write the corpus with the earlier release (a worktree of its commit on PYTHONPATH):
    git worktree add /tmp/old cd17f9d && mkdir -p /tmp/oldpkgs && for p in armcodec:armcodec cli:armcodec_cli \
        weights:armcodec_weights benchmarks:armcodec_benchmarks; do ln -sfn /tmp/old/${p%%:*} /tmp/oldpkgs/${p##*:}; done
    PYTHONPATH=/tmp/oldpkgs python tests/release_corpus.py make /tmp/corpus
    # decode it with this version, and re-encode every source whose options are still written:
    python tests/release_corpus.py check /tmp/corpus

``check`` requires every file to decode bit for bit and every re-encode to give the same tile
streams (the header may differ); it writes check_result.json into the corpus folder.  Measured at
the engine rework (armcodec 0.2 against 0.1.0 at cd17f9d): 59 files, 59 exact, 55 re-encoded with
identical streams, each new file 4 to 8 bytes smaller.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import armcodec

K = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
OPTS = {"default": {}, "fast": {"model": "fast"}, "max": {"model": "max"}, "nofeedback": {"feedback": False},
        "noadapt": {"adaptive": False}, "tile64": {"tile_size": 64}, "noorient": {"orient": False},
        "fastnoadapt": {"model": "fast", "adaptive": False}}


def images() -> dict:
    rgb = np.asarray(Image.open(K / "kodim05.png"))[100:172, 200:296]  # 72x96 RGB
    rgb2 = np.asarray(Image.open(K / "kodim23.png"))[200:270, 300:390]
    alpha = np.asarray(Image.open(K / "kodim21.png").convert("L"))[50:122, 500:596]
    grey = np.asarray(Image.open(K / "kodim08.png").convert("L"))[10:69, 20:103]  # 59x83, odd
    return {"rgb": rgb, "rgb2": rgb2, "rgba": np.dstack([rgb, alpha]), "l": grey, "la": np.dstack([grey, alpha[:59, :83]]),
            "greyrgb": np.dstack([grey] * 3), "greyrgba": np.dstack([grey] * 3 + [alpha[:59, :83]]),
            "upscaled": np.repeat(np.repeat(rgb[:24, :32], 3, 0), 2, 1), "flat": np.full((20, 30, 3), 77, np.uint8),
            "one": rgb[:1, :1]}


def make(root: Path) -> None:
    src, out = root / "src", root / "arm"
    src.mkdir(parents=True, exist_ok=True)
    out.mkdir(exist_ok=True)
    imgs = images()
    for name, a in imgs.items():
        mode = "L" if a.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[a.shape[2]]
        Image.fromarray(a, mode).save(src / f"{name}.png")
    torch.set_num_threads(2)
    cases = []
    for opt, options in OPTS.items():
        names = list(imgs) if opt in ("default", "fast", "noadapt") else ["rgb", "rgba", "l", "la", "greyrgb"]
        codec = armcodec.Codec(device="cpu", **options)
        for name in names:
            dst = out / f"{name}.{opt}.arm"
            if opt == "default":  # through the CLI, as a user would
                subprocess.run([sys.executable, "-c", "from armcodec_cli.main import main; main()", "compress",
                                str(src / f"{name}.png"), "-o", str(dst), "-f", "--threads", "2"], check=True)
            else:
                dst.write_bytes(codec.compress(src / f"{name}.png"))
            cases.append({"file": dst.name, "source": f"{name}.png", "api": options})
    for fs in (1, 2):  # the feedback's older feature sets, which 0.1 wrote on request
        codec = armcodec.Codec(device="cpu", feedback_features=fs)
        for name in ("rgb", "la"):
            dst = out / f"{name}.fs{fs}.arm"
            dst.write_bytes(codec.compress(src / f"{name}.png"))
            cases.append({"file": dst.name, "source": f"{name}.png", "api": {"feedback_features": fs}})
    (root / "cases.json").write_text(json.dumps({"armcodec": armcodec.__version__, "cases": cases}, indent=1))


def check(root: Path) -> int:
    from armcodec import container
    from armcodec.io.image import read_image

    torch.set_num_threads(2)
    cases = json.loads((root / "cases.json").read_text())["cases"]
    codecs, rows = {}, []
    for c in cases:
        data = (root / "arm" / c["file"]).read_bytes()
        want, _ = read_image(root / "src" / c["source"])
        t0 = time.time()
        row = {"file": c["file"], "decoded_exact": bool(np.array_equal(armcodec.Codec("default", "cpu").decode(data).array, want)),
               "decode_s": round(time.time() - t0, 2)}
        api = dict(c.get("api", {}))
        if "feedback_features" not in api:  # options this version still writes: re-encode
            key = json.dumps(api, sort_keys=True)
            codecs.setdefault(key, armcodec.Codec(device="cpu", **api))
            new = codecs[key].compress(root / "src" / c["source"])
            (h_old, s_old), (h_new, s_new) = container.parse(data), container.parse(new)
            row.update(streams_identical=s_old == s_new, tools_same=h_old.tools == h_new.tools, old_bytes=len(data),
                       new_bytes=len(new))
        rows.append(row)
        print(json.dumps(row), flush=True)
    enc = [r for r in rows if "streams_identical" in r]
    summary = {"armcodec": armcodec.__version__, "files": len(rows), "decoded_exact": sum(r["decoded_exact"] for r in rows),
               "reencoded": len(enc), "streams_identical": sum(r["streams_identical"] for r in enc),
               "new_not_larger": sum(r["new_bytes"] <= r["old_bytes"] for r in enc)}
    print(json.dumps(summary))
    (root / "check_result.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0 if summary["decoded_exact"] == len(rows) and summary["streams_identical"] == len(enc) else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        raise SystemExit(__doc__)
    sys.exit(make(Path(sys.argv[2])) if sys.argv[1] == "make" else check(Path(sys.argv[2])))
