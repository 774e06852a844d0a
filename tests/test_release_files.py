"""Files written by armcodec 0.1.0 (commit cd17f9d, the release before the engine rework) with the
shipped weights, under the names that release wrote (``default``, ``fast``, ``max``), in every mode
and with every coder profile it wrote by default or on request (tests/data/release-0.1/cases.json):
they must decode bit for bit, through the weights' aliases.  A promise to users: never regenerate."""
import json

import numpy as np
import pytest

import armcodec
from armcodec import container
from armcodec.io.image import read_image

from conftest import DATA

RELEASE = DATA / "release-0.1"
CASES = json.loads((RELEASE / "cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_release_file_decodes_exactly(case):
    data = (RELEASE / case["file"]).read_bytes()
    header, _ = container.parse(data)
    assert header.version == 1 and header.model in ("default", "fast", "max")
    want, info = read_image(RELEASE / case["source"])
    dec = armcodec.Codec(device="cpu").decode(data)
    assert dec.mode == info.mode and np.array_equal(dec.array, want)
    assert np.array_equal(armcodec.decompress(data).reshape(want.shape), want)


def test_every_profile_and_mode_of_the_release_is_covered():
    headers = [container.parse((RELEASE / c["file"]).read_bytes())[0] for c in CASES]
    assert {h.profile for h in headers} >= {1, 3, 5, 7, 8, 9}
    assert {(h.mode, h.grey) for h in headers} >= {("RGB", False), ("LA", False), ("L", False), ("RGBA", True),
                                                   ("RGBA", False)}
    assert any(h.replication != (1, 1) for h in headers) and {h.model for h in headers} == {"default", "fast", "max"}
