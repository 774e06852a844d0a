"""Regenerate tests/data/golden (only on purpose: when the .arm format changes).

The frozen model golden-tiny is exported only when it is missing (it predates the linear
skip and must stay as it is, so that the old weights format keeps being exercised).

    python tests/make_golden.py
"""
from pathlib import Path

import numpy as np

import armcodec
from armcodec.coding import feedback
from conftest import DATA, make_tiny_model
from armcodec.train import export_model

GOLDEN = DATA / "golden"
SOURCES = ["kodim05_rgb_37x29.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png", "usc_sipi_6.1_la_28x21.png"]

if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    if not (GOLDEN / "golden-tiny.safetensors").exists():
        export_model(make_tiny_model(), GOLDEN, "golden-tiny", tile_size=16)
    for suffix, adaptive, features in ((".arm", False, 0), (".p2.arm", True, 0), (".p4.arm", True, 1), (".p6.arm", True, 2),
                                       (".p8.arm", True, 3)):
        codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, adaptive=adaptive, feedback=features > 0,
                               feedback_features=features or 1)
        assert suffix == ".arm" or suffix == f".p{codec.profile}.arm"
        for name in SOURCES:
            (GOLDEN / (Path(name).stem + suffix)).write_bytes(codec.compress(DATA / name))
            print("wrote", Path(name).stem + suffix)
    # profile 8 with the tiles' levels forced to tile, quarters, sixteenths in turn (the encoder
    # rarely finds the finer levels cheaper on so small an image), so that their bytes are frozen too
    real_fit = feedback.fit

    def every_level(fb, residuals, precisions, *args):
        fb.set_levels(np.arange(fb.n_tiles) % feedback.LEVELS)
        real_fit(fb, residuals, precisions)

    feedback.choose = every_level
    for name in SOURCES:
        (GOLDEN / (Path(name).stem + ".p8-levels.arm")).write_bytes(codec.compress(DATA / name))
        print("wrote", Path(name).stem + ".p8-levels.arm")
