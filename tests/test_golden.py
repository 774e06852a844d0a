"""Golden .arm files written by format version 1 with a frozen tiny model must keep decoding
exactly (regenerate only on purpose: tests/make_golden.py)."""
import numpy as np
import pytest

import armcodec

from conftest import DATA, load

GOLDEN = DATA / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.arm"))


def test_golden_files_exist():
    assert len(CASES) == 4


@pytest.mark.parametrize("stem", CASES)
def test_golden_file_decodes_exactly(stem):
    data = (GOLDEN / f"{stem}.arm").read_bytes()
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN)
    img = load(f"{stem}.png")
    dec = codec.decode(data)
    assert np.array_equal(dec.array, img if img.ndim == 3 else img[:, :, None])


@pytest.mark.parametrize("stem", CASES)
def test_encoder_still_writes_the_golden_bytes(stem):
    """Same model, same image: the same bytes (the coder and format did not drift)."""
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN)
    assert codec.compress(DATA / f"{stem}.png") == (GOLDEN / f"{stem}.arm").read_bytes()
