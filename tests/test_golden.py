"""Golden .arm files written with a frozen tiny model must keep decoding exactly (regenerate only
on purpose: tests/make_golden.py).  ``<stem>.arm``: format version 1, coder profile 1 (no
adaptation; these bytes predate profile 2 and must not change); ``<stem>.p2.arm``: coder profile 2
(per-tile adaptation offsets)."""
import numpy as np
import pytest

import armcodec
from armcodec import container

from conftest import DATA, load

GOLDEN = DATA / "golden"
STEMS = sorted(p.stem for p in GOLDEN.glob("*.arm") if not p.stem.endswith(".p2"))
CASES = [(stem, profile) for stem in STEMS for profile in (1, 2)]


def golden_path(stem: str, profile: int):
    return GOLDEN / (f"{stem}.arm" if profile == 1 else f"{stem}.p2.arm")


def test_golden_files_exist():
    assert len(STEMS) == 4
    assert all(golden_path(s, 2).exists() for s in STEMS)


@pytest.mark.parametrize("stem,profile", CASES)
def test_golden_file_decodes_exactly(stem, profile):
    data = golden_path(stem, profile).read_bytes()
    assert container.parse(data)[0].profile == profile
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN)
    img = load(f"{stem}.png")
    dec = codec.decode(data)
    assert np.array_equal(dec.array, img if img.ndim == 3 else img[:, :, None])


@pytest.mark.parametrize("stem,profile", CASES)
def test_encoder_still_writes_the_golden_bytes(stem, profile):
    """Same model, same image, same profile: the same bytes (the coder and format did not drift)."""
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, adaptive=profile == 2)
    assert codec.compress(DATA / f"{stem}.png") == golden_path(stem, profile).read_bytes()
