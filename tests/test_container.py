"""The .arm container: round trip, and clean errors for every kind of damage."""
import struct

import numpy as np
import pytest

import armcodec
from armcodec import container
from armcodec.container import ArmHeader

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
    assert container.plane_groups("RGBA", True) == [(slice(0, 1), slice(0, 3)), (slice(3, 4), slice(3, 4))]
    assert container.plane_groups("RGB") == [(slice(0, 3), slice(0, 3))]
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
    for fy, fx in ((1, 1), (0, 2), (5, 4), (3, 3)):  # no replication, zero, not dividing 12 or 20
        bad = bytearray(data)
        bad[27:29] = bytes((fy, fx))  # the factors follow the preamble (10 bytes) and kind .. tile (17)
        head_end = len(bad) - 8
        bad[head_end:head_end + 4] = struct.pack("<I", __import__("zlib").crc32(bytes(bad[:head_end])))
        with pytest.raises(armcodec.FormatError, match="replication"):
            container.parse(bytes(bad))
    with pytest.raises(armcodec.FormatError, match="replication"):
        container.write(ArmHeader("L", 20, 12, 16, "default", bytes(16), stream_crcs=[1], replication=(5, 1)), [b"\0" * 4])
