"""Golden .arm files written with a frozen tiny model must keep decoding exactly (regenerate only
on purpose: tests/make_golden.py).  ``<stem>.arm``: format version 1, coder profile 1 (no
adaptation; these bytes predate profile 2 and must not change); ``<stem>.p2.arm``: coder profile 2
(per-tile adaptation offsets); ``<stem>.p4.arm``: coder profile 4 (offsets and residual feedback);
``<stem>.p6.arm``: coder profile 6 (the feedback's second feature set); ``<stem>.p8.arm``: coder
profile 8 (the third: a level symbol, coefficients per tile, quarter or sixteenth), and
``<stem>.p8-levels.arm`` the same with the tiles' levels forced to each level in turn;
``<stem>.p4-ls.arm``: profile 4 as its first encoder wrote it (plain least squares coefficients,
commit 5d7bc4f), kept to show that files from it keep decoding: the encoder's choice of
coefficients is its own business, the format did not change."""
import re

import numpy as np
import pytest

import armcodec
from armcodec import container

from conftest import DATA, load

GOLDEN = DATA / "golden"
PROFILES = (1, 2, 4, 6, 8)
FEEDBACK_FEATURES = {1: 0, 2: 0, 4: 1, 6: 2, 8: 3}
STEMS = sorted(p.stem for p in GOLDEN.glob("*.arm") if not re.search(r"\.p[\w-]+$", p.stem))
CASES = [(stem, profile) for stem in STEMS for profile in PROFILES]


def golden_path(stem: str, profile: int):
    return GOLDEN / (f"{stem}.arm" if profile == 1 else f"{stem}.p{profile}.arm")


def test_golden_files_exist():
    assert len(STEMS) == 4
    assert all(golden_path(s, p).exists() for s in STEMS for p in PROFILES)


@pytest.mark.parametrize("stem,profile", CASES)
def test_golden_file_decodes_exactly(stem, profile):
    data = golden_path(stem, profile).read_bytes()
    assert container.parse(data)[0].profile == profile
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN)
    img = load(f"{stem}.png")
    dec = codec.decode(data)
    assert np.array_equal(dec.array, img if img.ndim == 3 else img[:, :, None])


@pytest.mark.parametrize("stem", STEMS)
def test_files_of_the_first_feedback_encoder_still_decode(stem):
    data = (GOLDEN / f"{stem}.p4-ls.arm").read_bytes()
    assert data != golden_path(stem, 4).read_bytes()
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN)
    img = load(f"{stem}.png")
    assert np.array_equal(codec.decode(data).array, img if img.ndim == 3 else img[:, :, None])


@pytest.mark.parametrize("stem", STEMS)
def test_files_with_coefficients_per_block_decode(stem):
    data = (GOLDEN / f"{stem}.p8-levels.arm").read_bytes()
    assert container.parse(data)[0].profile == 8 and data != golden_path(stem, 8).read_bytes()
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN)
    img = load(f"{stem}.png")
    assert np.array_equal(codec.decode(data).array, img if img.ndim == 3 else img[:, :, None])


@pytest.mark.parametrize("stem,profile", CASES)
def test_encoder_still_writes_the_golden_bytes(stem, profile):
    """Same model, same image, same profile: the same bytes (the coder and format did not drift)."""
    features = FEEDBACK_FEATURES[profile]
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, adaptive=profile != 1, feedback=features > 0,
                           feedback_features=features or 1)
    assert codec.compress(DATA / f"{stem}.png") == golden_path(stem, profile).read_bytes()
