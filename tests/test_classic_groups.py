"""Coder tool 8 (video files, 0.15): a frame's plane group as one lossless WebP of its samples or of
its residual to the moved previous frame, where that is smaller than the model's streams (screen
content, flat graphics): exact round trips, the encoder's choice, the record's validation, damage."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from armcodec import container_video as cv
from armcodec.coding import classic
from armcodec.errors import FormatError
from armcodec.io.frames import frames_source
from armcodec.video import VideoCodec
from test_fuzz import check_video, decode_video


@pytest.mark.parametrize("channels", [1, 3])
def test_payloads_round_trip_samples_and_residuals(channels):
    rng = np.random.default_rng(0)
    x, moved = rng.integers(0, 256, (2, 21, 30, channels), dtype=np.uint8)
    for code, ctx in ((classic.GROUP_SAMPLES, None), (classic.GROUP_RESIDUAL, moved)):
        got = classic.group_samples(code, classic.group_payload(x, ctx), 30, 21, channels, ctx)
        assert got.shape == (21, 30, channels) and np.array_equal(got, x)
    p = classic.group_payload(x)
    with pytest.raises(FormatError):
        classic.group_samples(classic.GROUP_SAMPLES, p, 31, 21, channels)  # another size
    with pytest.raises(FormatError):
        classic.group_samples(classic.GROUP_RESIDUAL, p, 30, 21, channels)  # a residual without the previous frame
    with pytest.raises(FormatError):
        classic.group_samples(classic.GROUP_SAMPLES, p[:-7], 30, 21, channels)  # truncated
    if channels == 1:  # a grey plane's WebP has three equal channels
        with pytest.raises(FormatError, match="unequal"):
            classic.group_samples(classic.GROUP_SAMPLES, classic.group_payload(np.concatenate([x, x, x[::-1]], 2)), 30, 21, 1)


def test_a_pair_of_planes_round_trips():
    rng = np.random.default_rng(1)
    u, v, mu, mv = rng.integers(0, 256, (4, 17, 23, 1), dtype=np.uint8)
    for code, moved in ((classic.PAIR_SAMPLES, None), (classic.PAIR_RESIDUAL, (mu, mv))):
        a, b = classic.pair_samples(code, classic.pair_payload(u, v, moved), 23, 17, moved)
        assert np.array_equal(a, u) and np.array_equal(b, v)
    with pytest.raises(FormatError, match="unequal"):
        classic.pair_samples(classic.PAIR_SAMPLES, classic.group_payload(np.concatenate([u, v, u], 2)), 23, 17)
    with pytest.raises(FormatError):
        classic.pair_samples(classic.GROUP_SAMPLES, classic.pair_payload(u, v), 23, 17)


def test_flat_chroma_planes_are_coded_as_one_webp(temporal_dir):
    """A 4:2:0 clip of flat graphics: U and V go as one WebP (code 3 or 4 on U, 5 on V), decode
    exactly from the start and from a middle frame; a damaged pair is refused or decodes exactly."""
    from armcodec.io.frames import y4m_source
    from conftest import y4m_bytes

    frames = [f[:, :, 1] for f in screen_clip_arrays(4)]
    clip = y4m_bytes(frames)
    codec = VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir)
    out = io.BytesIO()
    codec.encode(y4m_source(io.BytesIO(clip)), out)
    data = out.getvalue()
    header, recs = records(codec, data)
    codes = [[c for c, _ in r.classic] for r in recs]
    assert all(c[1] in classic.PAIR_CODES and c[2] == classic.IN_PAIR for c in codes), codes
    want = [f.groups for f in y4m_source(io.BytesIO(clip)).frames]
    for start in (0, 2):
        f = io.BytesIO(data)
        got = [fr.groups for _, fr, _ in codec.decode(f, codec.open(f), slice(start, None), seekable=True)]
        assert len(got) == 4 - start and all(np.array_equal(a, b) for g, w in zip(got, want[start:]) for a, b in zip(g, w))
    rec = recs[1]
    (y, (code, length), v) = rec.classic
    import dataclasses

    for bad in (((0, 0), (code, length), (0, 0)),  # V left out of U's pair
                (y, (5, 0), (5, 0)),  # a second plane without a first
                ((code, length), (5, 0), v)):  # Y and U: planes of other sizes
        raw = cv.write_record(dataclasses.replace(rec, classic=bad))
        with pytest.raises(FormatError, match="classic"):
            cv.read_record(io.BytesIO(raw), header, 0)
    for pos in range(3, len(data), 17):
        b = bytearray(data)
        b[pos] ^= 1 << (pos % 8)
        check_video(codec, bytes(b), want)


def screen_clip_arrays(n: int):
    frames = []
    for t in range(n):
        im = Image.new("RGB", (64, 40), (58, 110, 165))
        d = ImageDraw.Draw(im)
        d.rectangle((2, 2, 40, 37), fill=(250, 250, 250))
        for k in range(12):
            y = 4 + 4 * k - 2 * t
            if 3 <= y <= 34:
                d.line((4, y, 10 + (7 * k) % 28, y), fill=(20, 20, 20) if k % 3 else (200, 40, 40))
        d.rectangle((42 + 3 * t, 10, 50 + 3 * t, 20), fill=(240, 200, 0))
        frames.append(np.asarray(im))
    return frames


def screen_clip(folder, n: int = 4):
    """R, G, B frames of flat graphics: a window whose striped text scrolls 2 rows a frame and a
    box moving 3 pixels right a frame, over a flat background."""
    folder.mkdir()
    frames = screen_clip_arrays(n)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"s{t}.png")
    return frames


@pytest.fixture(scope="module")
def classic_file(temporal_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("screen") / "frames"
    frames = screen_clip(folder)
    codec = VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir)
    out = io.BytesIO()
    codec.encode(frames_source([folder]), out)
    return codec, folder, frames, out.getvalue()


def records(codec, data):
    from test_golden import video_records

    return codec.open(io.BytesIO(data)), video_records(data, codec)


def test_flat_graphics_are_coded_as_webp_and_decode_exactly(classic_file, temporal_dir):
    """The encoder keeps a group's WebP where it is smaller than the model's streams: the key frame's
    samples, later frames' residuals to the moved previous frame; the file decodes exactly from the
    start and from a middle frame, and is smaller than the model's alone."""
    codec, folder, frames, data = classic_file
    header, recs = records(codec, data)
    assert header.tools.classic_groups
    assert recs[0].classic[0][0] == classic.GROUP_SAMPLES and any(r.classic[0][0] == classic.GROUP_RESIDUAL for r in recs)
    for start in (0, 2):
        f = io.BytesIO(data)
        got = [fr.groups[0] for _, fr, _ in codec.decode(f, codec.open(f), slice(start, None), seekable=True)]
        assert len(got) == len(frames) - start and all(np.array_equal(a, b) for a, b in zip(got, frames[start:]))
    plain = VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir, classic_groups=False)
    out = io.BytesIO()
    plain.encode(frames_source([folder]), out)
    assert len(data) < len(out.getvalue())
    assert not records(plain, out.getvalue())[0].tools.classic_groups


def rewritten(raw: bytes, at: int, old: bytes, new: bytes, streams: bytes | None = None) -> bytes:
    """A record's bytes with ``old`` at ``at`` (of the record header) replaced by ``new``, the
    header's length and CRC fixed (and its streams replaced by ``streams``)."""
    (rlen,) = struct.unpack_from("<I", raw)
    assert raw[at : at + len(old)] == old
    body = raw[4:at] + new + raw[at + len(old) : 4 + rlen]
    head = struct.pack("<I", len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + (raw[8 + rlen :] if streams is None else streams)


def test_classic_groups_are_validated(classic_file):
    codec, _, _, data = classic_file
    header, recs = records(codec, data)
    rec = recs[0]
    code, length = rec.classic[0]
    raw = cv.write_record(rec)
    at = 4 + 1 + 1 + 1 + len(rec.extra) + 1  # rlen, flags, number, extra (its length, then it), motion (empty)
    old = bytes([code]) + cv.varint(length)
    assert cv.read_record(io.BytesIO(raw), header, 0).classic == rec.classic
    for new in (bytes([3]) + cv.varint(length),  # no such code
                bytes([2]) + cv.varint(length),  # a residual in a key frame's group
                bytes([1]) + cv.varint(length - 4),  # four bytes of padding
                bytes([1]) + cv.varint(length + 4)):  # longer than its stream
        with pytest.raises(FormatError, match="classic"):
            cv.read_record(io.BytesIO(rewritten(raw, at, old, new)), header, 0)
    if length % 4:  # padding that is not zero
        (rlen,) = struct.unpack_from("<I", raw)
        streams = bytearray(raw[8 + rlen :])
        streams[len(rec.streams[0]) - 1] ^= 1
        with pytest.raises(FormatError, match="classic"):
            cv.read_record(io.BytesIO(rewritten(raw, at, old, old, bytes(streams))), header, 0)
    with pytest.raises(ValueError, match="classic"):
        cv.write_record(cv.FrameRecord(rec.temporal, 0, b"", rec.streams, [], b"", rec.frame_crc, classic=rec.classic * 2))


def test_damaged_classic_files_raise_or_decode_exactly(classic_file):
    codec, _, frames, data = classic_file
    frames = [[f] for f in frames]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(decode_video(codec, data, True), frames))
    for cut in range(0, len(data), 37):
        check_video(codec, data[:cut], frames)
    for pos in range(3, len(data), 23):
        b = bytearray(data)
        b[pos] ^= 1 << (pos % 8)
        check_video(codec, bytes(b), frames)


def test_cli_codes_screen_frames_as_webp_and_no_classic_turns_it_off(tmp_path):
    """The shipped `video` preset from the command line: a folder of flat-graphics frames comes back
    as the same PNG frames, with the WebP groups; --no-classic writes no classic group (the tool
    left out of the header, as 0.14 wrote)."""
    from test_video import cli

    frames = screen_clip(tmp_path / "frames", 3)
    sizes = {}
    for flag in ((), ("--no-classic",)):
        arm = tmp_path / f"seq{len(flag)}.arm"
        r = cli("compress", tmp_path / "frames", "--video", "-o", arm, *flag)
        assert r.returncode == 0, r.stderr.decode()
        codec = VideoCodec("video", "cpu")
        header, recs = records(codec, arm.read_bytes())
        assert header.tools.classic_groups == (not flag) and header.tools.colour_mixture
        assert any(r.classic and r.classic[0][0] for r in recs) == (not flag)
        sizes[flag] = arm.stat().st_size
        out = tmp_path / f"back{len(flag)}"
        r = cli("decompress", arm, "-o", f"{out}/")
        assert r.returncode == 0, r.stderr.decode()
        assert [np.array_equal(np.asarray(Image.open(out / f"s{t}.png")), f) for t, f in enumerate(frames)] == [True] * 3
    assert sizes[()] < sizes[("--no-classic",)]
