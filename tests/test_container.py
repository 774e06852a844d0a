"""The .arm container: round trip, and clean errors for every kind of damage."""
import struct

import numpy as np
import pytest

import armcodec
from armcodec import container, transforms
from armcodec.container import ArmHeader
from armcodec.errors import FormatError

from conftest import load


def sample_file():
    h = ArmHeader("RGB", 20, 10, 16, "default", bytes(range(16)), icc_profile=b"icc!", stream_crcs=[1, 2])
    return container.write(h, [b"\x01\x00\x00\x00", b"\x02\x00\x00\x00\x03\x00\x00\x00"])


def test_write_parse_round_trip():
    h, streams = container.parse(sample_file())
    assert (h.mode, h.width, h.height, h.tile, h.model, h.icc_profile) == ("RGB", 20, 10, 16, "default", b"icc!")
    assert h.weights_sha256 == bytes(range(16)) and h.stream_crcs == [1, 2]
    assert streams == [b"\x01\x00\x00\x00", b"\x02\x00\x00\x00\x03\x00\x00\x00"]
    assert sample_file()[:4] == b"ARMC"


def test_every_truncation_is_refused():
    data = sample_file()
    for n in range(len(data)):
        with pytest.raises(armcodec.FormatError):
            container.parse(data[:n])


def test_every_header_byte_flip_is_refused():
    data = sample_file()
    header_end = len(data) - 12
    for k in range(header_end):
        bad = bytearray(data)
        bad[k] ^= 0x40
        with pytest.raises(armcodec.ArmcodecError):
            container.parse(bytes(bad))


def test_appended_bytes_are_refused():
    with pytest.raises(armcodec.FormatError):
        container.parse(sample_file() + b"\0\0\0\0")


def _with_fields(**kw):
    """A file whose header fields are changed and whose header CRC is recomputed."""
    h = ArmHeader("RGB", 20, 10, 16, "default", bytes(16), stream_crcs=[1, 2])
    for k, v in kw.items():
        setattr(h, k, v)
    return container.write(h, [b"\x01\x00\x00\x00"] * 2)


def test_huge_declared_size_is_refused_before_allocation():
    with pytest.raises(armcodec.LimitError):
        container.parse(_with_fields(width=2**31, height=2**31))
    with pytest.raises(armcodec.LimitError):
        container.parse(_with_fields(width=2**16, height=2**16), max_pixels=2**20)


def test_wrong_stream_count_and_tile_size_are_refused():
    with pytest.raises(armcodec.FormatError):
        container.parse(_with_fields(width=200))  # needs more tiles than streams
    with pytest.raises(armcodec.FormatError):
        container.parse(_with_fields(tile=2))


def test_version_and_magic():
    data = bytearray(sample_file())
    data[4] = 9
    with pytest.raises(armcodec.FormatError, match="version 9"):
        container.parse(bytes(data))
    with pytest.raises(armcodec.FormatError, match="magic"):
        container.parse(b"\x89PNG\r\n\x1a\n" + bytes(40))


def test_corrupted_payload_is_detected(tiny_codec):
    """Flipping payload bytes of a real file raises, never returns a wrong image."""
    img = load("kodim23_rgb_64x48.png")
    data = tiny_codec.compress(img)
    header, streams = container.parse(data)
    payload_start = len(data) - sum(len(s) for s in streams)
    rng = np.random.default_rng(0)
    for k in rng.choice(np.arange(payload_start, len(data)), 12, replace=False):
        bad = bytearray(data)
        bad[k] ^= 1 << int(rng.integers(0, 8))
        try:
            out = tiny_codec.decode(bytes(bad)).array
        except armcodec.ArmcodecError:
            continue
        assert np.array_equal(out, img)  # a flip the ANS tail absorbs must still give the exact image


def test_swapped_streams_are_detected(tiny_codec):
    img = load("kodim05_rgb_37x29.png")
    data = tiny_codec.compress(img)  # tile 16: 6 tiles
    header, streams = container.parse(data)
    header.stream_crcs = header.stream_crcs
    swapped = container.write(header, [streams[1], streams[0], *streams[2:]])
    with pytest.raises(armcodec.ArmcodecError):
        tiny_codec.decode(swapped)


def test_wrong_weights_are_refused(tiny_codec):
    data = bytearray(tiny_codec.compress(load("kodim23_rgb_1x1.png")))
    header, streams = container.parse(bytes(data))
    header.weights_sha256 = bytes(16)
    with pytest.raises(armcodec.ModelError, match="weights"):
        tiny_codec.decode(container.write(header, streams))
    header.model = "no-such-model"
    with pytest.raises(armcodec.ModelError, match="no-such-model"):
        tiny_codec.decode(container.write(header, streams))


def test_grey_modes_round_trip_and_only_rgb_can_be_grey():
    h = ArmHeader("RGBA", 20, 10, 16, "default", bytes(16), stream_crcs=[1, 2, 3, 4], grey=True)
    data = container.write(h, [b"\0" * 4] * 4)
    assert data[11] == 6  # the mode byte: RGBA coded as grey
    back, _ = container.parse(data)
    assert back.grey and back.mode == "RGBA" and back.channels == 4
    assert transforms.plane_groups("RGBA", True) == [(slice(0, 1), slice(0, 3)), (slice(3, 4), slice(3, 4))]
    assert transforms.plane_groups("RGB") == [(slice(0, 3), slice(0, 3))]
    with pytest.raises(ValueError, match="grey"):
        container.mode_code("LA", grey=True)


def test_replicated_kind_round_trips_and_bad_factors_are_refused():
    h = ArmHeader("L", 20, 12, 16, "default", bytes(16), stream_crcs=[1], replication=(3, 4))
    data = container.write(h, [b"\0" * 4])
    assert data[10] == container.KIND_REPLICATED
    back, _ = container.parse(data)
    assert back.replication == (3, 4) and back.coded_size == (4, 5) and back.n_tiles() == 1
    assert back.describe()["replication"] == [3, 4]
    assert container.parse(sample_file())[0].replication == (1, 1)
    from mutations import layout

    at = layout(data)["fields"]["replication"]
    for fy, fx in ((1, 1), (0, 2), (5, 4), (3, 3)):  # no replication, zero, not dividing 12 or 20
        bad = bytearray(data)
        bad[at : at + 2] = bytes((fy, fx))
        head_end = len(bad) - 8
        bad[head_end:head_end + 4] = struct.pack("<I", __import__("zlib").crc32(bytes(bad[:head_end])))
        with pytest.raises(armcodec.FormatError, match="replication"):
            container.parse(bytes(bad))
    with pytest.raises(armcodec.FormatError, match="replication"):
        container.write(ArmHeader("L", 20, 12, 16, "default", bytes(16), stream_crcs=[1], replication=(5, 1)), [b"\0" * 4])


@pytest.mark.parametrize("tools", list(container.PROFILE_TOOLS.values()))
def test_version_2_round_trips_every_tool_set(tools):
    h = ArmHeader("RGB", 300, 200, 150, "pixelcnn-l", bytes(range(16)), stream_crcs=[7, 8, 9, 10], tools=tools)
    data = container.write(h, [b"abcd"] * 4)
    g, streams = container.parse(data)
    assert (g.version, g.tools, g.width, g.height, g.model) == (2, tools, 300, 200, "pixelcnn-l")
    assert streams == [b"abcd"] * 4 and g.stream_crcs == [7, 8, 9, 10]
    assert g.describe()["coder_tools"]["feedback"] == tools.feedback


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16383, 16384, 2**32 - 1])
def test_varints_round_trip(n):
    r = container._Reader(container.varint(n), 0, len(container.varint(n)))
    assert r.varint() == n and r.pos == len(container.varint(n)) <= 5


@pytest.mark.parametrize("raw, message", [(b"\x80\x00", "overlong"), (b"\xff\xff\xff\xff\x7f", "too large"),
                                          (b"\x80\x80\x80\x80\x80\x01", "longer than 5"), (b"\x80", "truncated")])
def test_bad_varints_are_refused(raw, message):
    with pytest.raises(armcodec.FormatError, match=message):
        container._Reader(raw, 0, len(raw)).varint()


def test_unknown_tools_and_tools_without_the_adaptation_are_refused():
    with pytest.raises(ValueError):
        container.CoderTools(False, True, 0)
    h = ArmHeader("L", 8, 8, 16, "w", bytes(16), stream_crcs=[0], tools=container.CoderTools(True))
    data = container.write(h, [b""])
    # the tool list (count 1: id 1, length 0) rewritten to name tool 10, then the CRC fixed up
    from mutations import layout, splice_header

    at = layout(data)["fields"]["tools"]
    with pytest.raises(armcodec.FormatError, match="coder tool 10"):
        container.parse(splice_header(data, at, 3, b"\x01\x0a\x00"))
    for tool in (6, 7, 8, 9):  # video files only
        with pytest.raises(armcodec.FormatError, match="video coder"):
            container.parse(splice_header(data, at, 3, bytes([1, tool, 0])))
    assert container.parse(splice_header(data, at, 3, b"\x01\x05\x00"))[0].tools == container.CoderTools(binned=True)
    with pytest.raises(armcodec.FormatError, match="wrong length"):  # tool 5 has no value
        container.parse(splice_header(data, at, 4, b"\x01\x05\x01\x00"))
    with pytest.raises(armcodec.FormatError, match="need the adaptation"):
        container.parse(splice_header(data, at, 3, b"\x01\x02\x00"))


def test_version_2_headers_are_not_longer_than_version_1():
    """The same Kodak-sized image: the version-2 header (varints, tools, weights name) is no longer than
    version 1's was (65 bytes with the name "default" and two streams)."""
    h = ArmHeader("RGB", 768, 512, 512, "pixelcnn-l", bytes(16), stream_crcs=[0, 0],
                  tools=container.CoderTools(True, True, 3))
    data = container.write(h, [b"", b""])
    assert int.from_bytes(data[6:10], "little") <= 65


def test_metadata_makes_a_version_3_file_and_comes_back():
    items = (("exif", "", b"Exif\0\0MM\0*"), ("xmp", "", b"<x/>"), ("text", "Title", "\u00e9t\u00e9".encode()))
    h = ArmHeader("RGB", 20, 10, 16, "default", bytes(16), stream_crcs=[1, 2], metadata=items)
    data = container.write(h, [b"\0" * 4, b"\0" * 8])
    assert data[4] == container.METADATA_VERSION
    back, _ = container.parse(data)
    assert back.metadata == items and back.version == 3
    plain = container.write(ArmHeader("RGB", 20, 10, 16, "default", bytes(16), stream_crcs=[1, 2]), [b"\0" * 4, b"\0" * 8])
    assert plain[4] == 2 and container.parse(plain)[0].metadata == ()


@pytest.mark.parametrize("item", [(10, b"\0", b""), (255, b"\0", b""), (1, b"\1k", b""), (4, b"\0", b"")])
def test_bad_metadata_is_refused(item):
    import struct
    import zlib

    h = ArmHeader("RGB", 20, 10, 16, "default", bytes(16), stream_crcs=[1, 2], metadata=(("exif", "", b"e"),))
    data = bytearray(container.write(h, [b"\0" * 4, b"\0" * 8]))
    hlen = struct.unpack_from("<I", data, 6)[0]
    code, key, _ = item
    at = data.index(b"\x01\x01\x00\x01e")  # count 1, kind exif, no key, value "e"
    data[at + 1 : at + 3] = bytes([code]) + key[:1]
    data[10 + hlen : 14 + hlen] = (zlib.crc32(bytes(data[: 10 + hlen])) & 0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(FormatError, match="metadata|transparent colour of 1 bytes"):
        container.parse(bytes(data))


def six_cube() -> bytes:
    return bytes(c for r in range(0, 256, 51) for g in range(0, 256, 51) for b in range(0, 256, 51) for c in (r, g, b))


RECORD_ITEMS = (
    ("chunk", "gAMA", b"\0\0\xb1\x8f"),
    ("chunk", "PLTE", six_cube()),  # a true-colour image's suggested palette
    ("chunk", "sPLT", b"six-cube\0\x08" + b"".join(bytes(six_cube()[3 * k : 3 * k + 3]) + b"\xff\0\x01" for k in range(216))),
    ("chunk", "sPLT", b"wide\0\x10" + b"".join(k.to_bytes(2, "big") * 4 + b"\0\x02" for k in range(0, 65536, 1021))),
    ("chunk", "hIST", b"".join(k.to_bytes(2, "big") for k in range(40))),
    ("text", "Comment", b"not a list of records " * 3),
)


def test_lists_of_records_are_stored_as_differences_and_come_back(monkeypatch):
    """Suggested palettes (PLTE, sPLT at 8 and 16 bits) and histograms go into the header as
    differences of neighbouring records (kind 9), which deflate to a fraction; every item comes
    back as it was, and the list is smaller than without the filter."""
    h = ArmHeader("RGB", 20, 10, 16, "default", bytes(16), stream_crcs=[1, 2], metadata=RECORD_ITEMS)
    data = container.write(h, [b"\0" * 4, b"\0" * 8])
    assert container.parse(data)[0].metadata == RECORD_ITEMS
    listed = container._metadata_bytes(RECORD_ITEMS)
    monkeypatch.setattr(container, "_filtered", lambda *item: None)
    unfiltered = container._metadata_bytes(RECORD_ITEMS)
    assert len(listed) < len(unfiltered) / 3
    assert len(container.write(h, [b"\0" * 4, b"\0" * 8])) - len(data) == len(unfiltered) - len(listed)


def test_items_the_filter_does_not_shrink_are_written_as_before():
    """Random records, short ones and other kinds: the same list bytes as armcodec 0.12.9 wrote
    (the unfiltered list wins ties), so files without such lists are byte for byte as before."""
    rng = np.random.default_rng(3)
    items = (("palette", "", rng.integers(0, 256, 768, dtype=np.uint8).tobytes()), ("chunk", "PLTE", b"\1\2\3" * 5),
             ("exif", "", b"Exif\0\0MM\0*" * 10))
    raw = container.varint(3) + b"".join(container._item_bytes(*item) for item in items)
    packed = container._deflate(raw)
    expected = container.varint(1) + b"\x07\x00" + container.varint(len(packed)) + packed
    assert container._metadata_bytes(items) == (expected if len(expected) < len(raw) else raw)


@pytest.mark.parametrize("stride", [1, 2, 3, 6, 10, 255])
def test_the_record_differences_undo_themselves(stride):
    rng = np.random.default_rng(stride)
    for n in (0, 1, stride, 3 * stride + 1, 500):
        value = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        for start in {0, 1, n // 2, n}:
            coded = container._delta(value, stride, start)
            assert coded[:start] == value[:start] and len(coded) == n
            assert container._delta(coded, stride, start, undo=True) == value


@pytest.mark.parametrize("key, inner", [
    ("", b""),  # truncated: no kind
    ("", b"\x05"),  # no stride
    ("", b"\x05\x03"),  # no start
    ("", b"\x07\x03\x00abc"),  # a deflated list inside
    ("", b"\x09\x03\x00abc"),  # filtered twice
    ("", b"\xc8\x03\x00abc"),  # an unknown kind
    ("k", b"\x01\x03\x00abc"),  # EXIF with a key
    ("", b"\x05\x00\x00abc"),  # stride 0
    ("", b"\x05\x80\x02\x00abc"),  # stride 256
    ("", b"\x05\x03\x04abc"),  # start past the value
])
def test_bad_filtered_items_are_refused(monkeypatch, key, inner):
    h = ArmHeader("RGB", 20, 10, 16, "default", bytes(16), stream_crcs=[1, 2], metadata=(("exif", "", b"e"),))
    monkeypatch.setattr(container, "_metadata_bytes",
                        lambda items: container.varint(1) + container._item_bytes("filtered", key, inner))
    data = container.write(h, [b"\0" * 4, b"\0" * 8])
    with pytest.raises(FormatError, match="metadata|truncated|header"):
        container.parse(data)
