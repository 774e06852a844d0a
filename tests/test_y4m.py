"""Y4M streams: read and written back byte for byte, frame by frame; what is not 8-bit refused."""
import io

import numpy as np
import pytest

from armcodec.errors import FormatError
from armcodec.io.y4m import Y4MFrame, Y4MHeader, Y4MReader, Y4MWriter

from conftest import DATA

SHARED_Y4M = DATA.parents[2] / "shared" / "data" / "video" / "y4m"


def stream(header: bytes, frames: int, params=b"", seed=0) -> bytes:
    h = Y4MHeader.parse(header)
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    w = Y4MWriter(out, h)
    for _ in range(frames):
        w.write(Y4MFrame([rng.integers(0, 256, s, dtype=np.uint8) for s in h.plane_shapes()], params))
    return out.getvalue()


def round_trip(data: bytes) -> bytes:
    r = Y4MReader(io.BytesIO(data))
    out = io.BytesIO()
    w = Y4MWriter(out, r.header)
    for f in r:
        w.write(f)
    return out.getvalue()


@pytest.mark.parametrize("header,shapes", [
    (b"YUV4MPEG2 W7 H5 F30000:1001 Ip A128:117 C420mpeg2 XYSCSS=420MPEG2", [(5, 7), (3, 4), (3, 4)]),
    (b"YUV4MPEG2 W6 H4 F25:1 It A1:1 C420paldv", [(4, 6), (2, 3), (2, 3)]),
    (b"YUV4MPEG2 W6 H4 F25:1 C420", [(4, 6), (2, 3), (2, 3)]),
    (b"YUV4MPEG2 W5 H3 F24:1 Ib C422 XCOLORRANGE=FULL Xanother", [(3, 5), (3, 3), (3, 3)]),
    (b"YUV4MPEG2 W4 H4 F1:1 Im C444", [(4, 4)] * 3),
    (b"YUV4MPEG2 W4 H2 C444alpha", [(2, 4)] * 4),
    (b"YUV4MPEG2 W3 H3 F5:1 Cmono", [(3, 3)]),
    (b"YUV4MPEG2 W8 H2", [(2, 8), (1, 4), (1, 4)]),  # no C: 4:2:0
])
def test_every_colour_space_round_trips_byte_for_byte(header, shapes):
    h = Y4MHeader.parse(header)
    assert h.plane_shapes() == shapes
    data = stream(header, 3, params=b" Ixyz" if b"C444 " in header + b" " else b"")
    assert round_trip(data) == data
    frames = list(Y4MReader(io.BytesIO(data)))
    assert len(frames) == 3 and [p.shape for p in frames[0].planes] == shapes


def test_header_fields_are_parsed_and_comments_kept():
    h = Y4MHeader.parse(b"YUV4MPEG2 W176 H144 F30000:1001 Ip A128:117 C420mpeg2 XYSCSS=420MPEG2 Xa=b")
    assert (h.width, h.height, h.rate, h.interlace, h.aspect, h.colorspace) == (176, 144, (30000, 1001), "p", (128, 117), "420mpeg2")
    assert h.comments == ("YSCSS=420MPEG2", "a=b")


@pytest.mark.parametrize("header,message", [
    (b"YUV4MPEG2 W8 H8 C420p10", "10-bit"), (b"YUV4MPEG2 W8 H8 Cmono16", "16-bit"), (b"YUV4MPEG2 W8 H8 C411", "C411"),
    (b"YUV4MPEG W8 H8", "YUV4MPEG2"), (b"YUV4MPEG2 H8", "width"), (b"YUV4MPEG2 W0 H8", "outside"),
    (b"YUV4MPEG2 W8 H8 Fx", "frame rate"), (b"YUV4MPEG2 W8 H8 A1", "aspect"),
])
def test_what_is_not_read_is_refused_with_a_message(header, message):
    with pytest.raises(FormatError, match=message):
        Y4MReader(io.BytesIO(header + b"\nFRAME\n" + bytes(200)))


def test_truncated_and_damaged_streams_are_refused():
    data = stream(b"YUV4MPEG2 W4 H4 C420jpeg", 2)
    with pytest.raises(FormatError, match="inside frame 1"):
        list(Y4MReader(io.BytesIO(data[:-3])))
    bad = data.replace(b"FRAME", b"FRAMX", 2).replace(b"FRAMX", b"FRAME", 1)
    with pytest.raises(FormatError, match="frame 1 does not start"):
        list(Y4MReader(io.BytesIO(bad)))
    with pytest.raises(FormatError, match="empty"):
        Y4MReader(io.BytesIO(b""))
    with pytest.raises(FormatError, match="longer than"):
        Y4MReader(io.BytesIO(b"YUV4MPEG2 " + b"X" * 5000))


def test_frames_are_read_one_at_a_time():
    """The reader asks the stream only for what the next frame needs (a pipe of any length)."""
    data = stream(b"YUV4MPEG2 W16 H16 C420jpeg", 50)
    src = io.BytesIO(data)
    r = Y4MReader(src)
    next(r)
    assert src.tell() == len(b"YUV4MPEG2 W16 H16 C420jpeg\n") + len(b"FRAME\n") + 16 * 16 * 3 // 2


@pytest.mark.skipif(not SHARED_Y4M.exists(), reason="needs ../shared/data/video/y4m")
def test_the_shared_clips_round_trip():
    for p in sorted(SHARED_Y4M.glob("*.y4m")):
        data = p.read_bytes()
        assert round_trip(data) == data, p.name


def test_a_y4m_file_given_as_an_image_is_refused_by_name(tmp_path):
    from armcodec.errors import UnsupportedInputError
    from armcodec.io.image import read_image

    p = tmp_path / "clip.y4m"
    p.write_bytes(stream(b"YUV4MPEG2 W4 H4 C420jpeg", 1))
    with pytest.raises(UnsupportedInputError, match="YUV4MPEG2 .* video coding is not implemented"):
        read_image(p)
