"""Copy the photographs that ship inside scikit-image into a folder, as a test set outside ../shared.

scikit-image's wheel carries a few sample images in ``skimage/data/`` (no download). The 13 below
are real photographs or instrument images stored as PNG (so without JPEG traces): 6 RGB and 7 grey.
None of them is in ``../shared/data``; armcodec's models never trained on them and no setting was
chosen on them. Their provenance is in scikit-image's ``skimage/data/_fetchers.py`` docstrings
(NASA public domain, CC0 photographs, the Middlebury 2014 stereo pair, the Brooklyn Museum).

    pip install scikit-image==0.26.0
    python benchmarks/skimage_set.py /tmp/skimage13
    armcodec bench /tmp/skimage13 --threads 2 --name skimage13
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

RGB = ["astronaut", "chelsea", "coffee", "ihc", "motorcycle_left", "motorcycle_right"]
GREY = ["brick", "camera", "cell", "coins", "grass", "gravel", "moon"]


def main(out: Path) -> None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("skimage_set: scikit-image is not installed (pip install scikit-image==0.26.0)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    out.mkdir(parents=True, exist_ok=True)
    for name in RGB + GREY:
        src = data / f"{name}.png"
        if not src.is_file():
            raise SystemExit(f"skimage_set: {src} is missing from this scikit-image")
        shutil.copyfile(src, out / f"skimage_{name}.png")
    print(f"{len(RGB + GREY)} images in {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benchmarks/skimage_set.py OUT_FOLDER")
    main(Path(sys.argv[1]))
