"""Bounded fuzzing of the whole decode path: every damaged file either raises an ArmcodecError
or decodes to the exact original; nothing else, and never a wrong image.

Structure-aware cases (tests/mutations.py: every boundary truncation, header fields with the
CRC fixed up, swapped and duplicated tiles, payload flips, foreign files) run in full; random
mutations run through hypothesis.  The long run is ``python tests/fuzz_decode.py``."""
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import armcodec
from armcodec import container

from armcodec.io.image import read_image
from conftest import DATA, load, write_with_metadata
from mutations import structured_cases

SOURCES = ["kodim05_rgb_37x29.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png", "with metadata", "classic",
           "palette", "16-bit levels", "filtered metadata", "16-bit bytes", "classic tiles"]


@pytest.fixture(scope="module")
def corpus(tiny_codec, tmp_path_factory):
    out = []
    for name in SOURCES[:3]:
        img = load(name)
        out.append((tiny_codec.compress(img), img if img.ndim == 3 else img[:, :, None]))
    path = tmp_path_factory.mktemp("meta") / "m.png"  # a version-3 file: EXIF, XMP and text in the header
    write_with_metadata(load("kodim23_rgb_64x48.png")[:20, :24], path)
    out.append((tiny_codec.compress(path), load("kodim23_rgb_64x48.png")[:20, :24]))
    flat = np.repeat(np.arange(0, 240, 10, dtype=np.uint8)[None, :, None], 18, 0).repeat(3, 2)  # the classic path (kind 2)
    data = armcodec.Codec("tiny", "cpu", weights_dir=tiny_codec.weights_dir, classic=True).compress(flat)
    assert armcodec.read_info(data)["kind"] == "classic (png)"
    out.append((data, flat))
    for name in ("pngsuite_tbbn3p08.png", "pngsuite_basn2c16.png",  # palette with tRNS; 16 bits in 32 levels
                 "pngsuite_ps1n0g08.png"):  # a suggested palette as differences (metadata kind 9)
        out.append((tiny_codec.compress(DATA / name), read_image(DATA / name)[0]))
    sixteen = np.random.default_rng(7).integers(0, 65536, (10, 12, 3)).astype(np.uint16)  # high and low bytes
    out.append((tiny_codec.compress(sixteen), sixteen))
    out.append(classic_tiles_file(tiny_codec))
    return out


def classic_tiles_file(codec):
    """A file whose tile stream 1 is a PNG zlib stream (coder tool 4), built from the model's file."""
    import dataclasses

    from armcodec.coding import tile_png

    img = load("kodim05_rgb_37x29.png")[:24, :32]
    header, streams = container.parse(codec.compress(img))
    streams[1] = tile_png.encode(img[:16, 16:32])
    flags = [False, True] + [False] * (len(streams) - 2)
    header = dataclasses.replace(header, tools=dataclasses.replace(header.tools, classic_tiles=True), classic_streams=flags)
    data = container.write(header, streams)
    assert np.array_equal(codec.decode(data).array, img)
    return data, img


def classic_cases(data: bytes):
    """A classic file (kind 2, a short header): every truncation, every byte flipped, and in the
    header every byte flipped with the header CRC fixed up."""
    from mutations import fix_header_crc

    hend = container.PREAMBLE.size + int.from_bytes(data[6:10], "little")
    for k in range(len(data)):
        yield f"truncate at {k}", data[:k]
        flipped = data[:k] + bytes([data[k] ^ 0x5A]) + data[k + 1 :]
        yield f"flip byte {k}", flipped
        if container.PREAMBLE.size <= k < hend:
            yield f"flip header byte {k} (crc fixed)", fix_header_crc(flipped, hend)


@pytest.mark.parametrize("which", range(len(SOURCES)), ids=SOURCES)
def test_structured_damage_raises_or_decodes_exactly(tiny_codec, corpus, which):
    data, img = corpus[which]
    n, wrong = 0, []
    for label, bad in (classic_cases(data) if SOURCES[which] == "classic" else structured_cases(data)):
        n += 1
        t0 = time.perf_counter()
        try:
            out = tiny_codec.decode(bad).array
        except armcodec.ArmcodecError:
            pass
        else:
            if not np.array_equal(out, img):
                wrong.append(f"{label}: returned a wrong image")
        if time.perf_counter() - t0 > 20:
            wrong.append(f"{label}: took over 20 s")
    assert n > (100 if SOURCES[which] == "classic" else 150) and not wrong, wrong


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=4)),
    st.tuples(st.just("u32"), st.floats(0, 1), st.sampled_from([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x10000])),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("splice"), st.floats(0, 1), st.floats(0, 1)),
)


def mutate(data: bytes, m) -> bytes:
    b = bytearray(data)
    kind = m[0]
    if kind == "truncate":
        return bytes(b[: int(m[1] * (len(b) - 1))])
    if kind == "flip":
        for pos, bit in m[1]:
            b[int(pos * (len(b) - 1))] ^= 1 << bit
    elif kind == "u32":
        p = int(m[1] * (len(b) - 4))
        b[p : p + 4] = m[2].to_bytes(4, "little")
    elif kind == "append":
        b += m[1]
    else:  # move a block of the file elsewhere
        a, c = sorted((int(m[1] * len(b)), int(m[2] * len(b))))
        b = b[:a] + b[c:] + b[a:c]
    return bytes(b)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(SOURCES) - 1), m=mutation)
def test_mutated_files_raise_or_decode_exactly(tiny_codec, corpus, which, m):
    data, img = corpus[which]
    bad = mutate(data, m)
    try:
        out = tiny_codec.decode(bad).array
    except armcodec.ArmcodecError:
        return
    assert np.array_equal(out, img)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_armcodec_errors(junk):
    with pytest.raises(armcodec.ArmcodecError):
        armcodec.decompress(b"ARMC" + junk, device="cpu")
    with pytest.raises(armcodec.ArmcodecError):
        armcodec.decompress(junk, device="cpu")


# --- video files (format version 4): the same oracle, frame by frame -------------------------------
@pytest.fixture(scope="module")
def video_file(vcodec):
    import io

    from armcodec.io.frames import y4m_source
    from conftest import moving_frames, y4m_bytes

    fr = moving_frames(3, 18, 20)
    patched = fr[2].copy()
    patched[2:6, 3:9] ^= 3
    # frame 2: copied tiles (a copy map); frame 3 a key frame; frame 4: copied blocks (block maps)
    clip = y4m_bytes([fr[0], fr[1], fr[1], fr[2], patched], [b"", b" Ib", b"", b"", b""])
    out = io.BytesIO()
    vcodec.encode(y4m_source(io.BytesIO(clip)), out)
    frames = [f.groups for f in y4m_source(io.BytesIO(clip)).frames]
    from armcodec import container_video as cv

    f = io.BytesIO(out.getvalue())
    header = vcodec.open(f)
    recs = []
    for _ in frames:
        recs.append(cv.read_record(f, header, f.tell()))
    assert any(recs[2].copied) and recs[4].blocks  # the fuzzed file has both maps
    assert recs[4].quarter and recs[4].mix  # and mixture indices (0.13)
    assert header.tools.long_motion and any(r.motion for r in recs)  # and motion fields as tool 9 sends them (0.17)
    return out.getvalue(), frames


def decode_video(vcodec, data: bytes, seekable: bool):
    import io

    f = io.BytesIO(data)
    header = vcodec.open(f)
    return [fr.groups for _, fr, _ in vcodec.decode(f, header, seekable=seekable)]


def check_video(vcodec, bad: bytes, frames) -> None:
    for seekable in (True, False):
        try:
            got = decode_video(vcodec, bad, seekable)
        except armcodec.ArmcodecError:
            continue
        assert len(got) == len(frames)
        assert all(np.array_equal(a, b) for g, f in zip(got, frames) for a, b in zip(g, f))


def test_video_structured_damage_raises_or_decodes_exactly(vcodec, video_file):
    data, frames = video_file
    for seekable in (True, False):  # intact: both ways, exactly
        got = decode_video(vcodec, data, seekable)
        assert all(np.array_equal(a, b) for g, f in zip(got, frames) for a, b in zip(g, f)) and len(got) == len(frames)
    for cut in range(0, len(data), 29):  # truncations
        check_video(vcodec, data[:cut], frames)
    for pos in range(3, len(data), 41):  # every 41st byte, a bit in turn
        b = bytearray(data)
        b[pos] ^= 1 << (pos % 8)
        check_video(vcodec, bytes(b), frames)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutation)
def test_mutated_video_files_raise_or_decode_exactly(vcodec, video_file, m):
    data, frames = video_file
    check_video(vcodec, mutate(data, m), frames)
