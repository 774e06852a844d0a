"""Golden .arm files written with a frozen tiny model must keep decoding exactly (new ones are added
only on purpose: tests/make_golden.py; old ones are never rewritten).  Format version 1 (armcodec
0.1): ``<stem>.arm``: coder profile 1 (no
adaptation; these bytes predate profile 2 and must not change); ``<stem>.p2.arm``: coder profile 2
(per-tile adaptation offsets); ``<stem>.p4.arm``: coder profile 4 (offsets and residual feedback);
``<stem>.p6.arm``: coder profile 6 (the feedback's second feature set); ``<stem>.p8.arm``: coder
profile 8 (the third: a level symbol, coefficients per tile, quarter or sixteenth), and
``<stem>.p8-levels.arm`` the same with the tiles' levels forced to each level in turn;
``<stem>.p4-ls.arm``: profile 4 as its first encoder wrote it (plain least squares coefficients,
commit 5d7bc4f), kept to show that files from it keep decoding: the encoder's choice of
coefficients is its own business, the format did not change.  Format version 2 (coder tools in the
header): ``<stem>.v2-<tools>.arm`` for each set of tools the encoder writes; the encoder must write
their bytes again, and the same tile streams as the version-1 file with the same tools.  armcodec
0.3 (every PNG): ``v3-*.arm``, one per new layout (:data:`V3`) and a classic-tiles file.  armcodec
0.11 (coder tool 5, binned symbols, what new files use): ``<stem>.v11-<tools>.arm`` (:data:`V11`),
``pyramid/<stem>.binned.arm``, ``pyramid/shipped-0.11-pyramid-s3.arm``, ``video/*-binned*.arm`` and
``video/shipped-0.11-*.arm``; the older files are written again with ``binned=False``.  armcodec 0.12:
``pyramid/shipped-pyramid-s4.arm`` (the pyramid preset's new weights).  armcodec 0.13 (the video
previous-frame predictor, quarter-pixel vectors and a record's mixture indices):
``video/clip420-predictor.y4m.arm`` and ``video/shipped-0.13-*.arm``; the older video files are
written again with it off.  armcodec 0.18: ``pyramid/shipped-pyramid-s5.arm`` (the pyramid preset's
new weights)."""
import dataclasses
import re

import numpy as np
import pytest

import armcodec
from armcodec import container
from armcodec import container_video as cv

from conftest import DATA, load

GOLDEN = DATA / "golden"


@pytest.fixture(autouse=True)
def float_orientation_proxy(monkeypatch):
    """The golden files' orientations were picked by the float proxy: the encoder writes their bytes
    again with it.  These tests pin the coder and the format, not the search (the int8 proxy of
    0.12.9 may pick otherwise at a near tie; its picks: tests/test_orient.py)."""
    from armcodec.encoder import search

    monkeypatch.setattr(search, "INT8_PROXY", False)
PROFILES = (1, 2, 4, 6, 8)
FEEDBACK_FEATURES = {1: 0, 2: 0, 4: 1, 6: 2, 8: 3}
STEMS = sorted(p.stem for p in GOLDEN.glob("*.arm")
               if not re.search(r"\.(p|v2-|v11-)[\w-]+$", p.stem) and not p.stem.startswith("v3-"))
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


# version-2 golden files: name -> (Codec options, the version-1 profile with the same tools)
V2 = {"plain": ({"adaptive": False, "binned": False}, 1), "adapt": ({"feedback": False, "binned": False}, 2),
      "fb3": ({"binned": False}, 8), "orient-fb3": ({"orient": True, "binned": False}, 9)}


def test_version_2_golden_files_exist():
    assert all((GOLDEN / f"{s}.v2-{n}.arm").exists() for s in STEMS for n in V2)


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("name", V2)
def test_encoder_still_writes_the_golden_bytes(stem, name):
    """Same model, same image, same tools: the same bytes (the coder and format did not drift), and
    the same tile streams as the version-1 file with those tools where one exists."""
    options, profile = V2[name]
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, classic=False, **options)
    data = codec.compress(DATA / f"{stem}.png")
    assert data == (GOLDEN / f"{stem}.v2-{name}.arm").read_bytes()
    header, streams = container.parse(data)
    assert header.version == 2 and header.tools == container.PROFILE_TOOLS[profile]
    if profile in PROFILES:
        old_header, old_streams = container.parse(golden_path(stem, profile).read_bytes())
        assert old_header.version == 1 and old_streams == streams
    img = load(f"{stem}.png")
    assert np.array_equal(codec.decode(data).array, img if img.ndim == 3 else img[:, :, None])


# armcodec 0.11: binned symbols (coder tool 5), what the encoder writes by default; name -> Codec options
V11 = {"plain": {"adaptive": False}, "fb3": {}, "orient-fb3": {"orient": True}}


def test_binned_golden_files_exist():
    assert all((GOLDEN / f"{s}.v11-{n}.arm").exists() for s in STEMS for n in V11)


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("name", V11)
def test_binned_golden_files_decode_and_the_encoder_writes_them_again(stem, name):
    """The default layout since 0.11: the same bytes again, the tool in the header, the image back;
    the flat layout of the same tools (the version-2 file) is within 3% of it (this random tiny
    model often gives a value almost no mass, which costs a bit more binned; photographs with
    trained weights: within bytes, tests/test_roundtrip.py)."""
    data = (GOLDEN / f"{stem}.v11-{name}.arm").read_bytes()
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, classic=False, **V11[name])
    assert codec.compress(DATA / f"{stem}.png") == data
    header, _ = container.parse(data)
    assert header.tools.binned and dataclasses.replace(header.tools, binned=False) == container.PROFILE_TOOLS[V2[name][1]]
    img = load(f"{stem}.png")
    assert np.array_equal(armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN).decode(data).array,
                          img if img.ndim == 3 else img[:, :, None])
    flat = (GOLDEN / f"{stem}.v2-{name}.arm").read_bytes()
    assert abs(len(data) - len(flat)) <= 8 + len(flat) * 3 // 100



# armcodec 0.3 (every PNG): file -> (source in tests/data, Codec options, whether the encoder must
# write the same bytes again: the model's files are exact; classic payloads depend on zlib and libwebp)
V3 = {
    "v3-p-trns.arm": ("pngsuite_tbbn3p08.png", {"classic": False, "binned": False}, True),  # palette colours + tRNS alpha
    "v3-l1.arm": ("pngsuite_basn0g01.png", {"classic": False, "binned": False}, True),  # 1-bit grey, scaled
    "v3-l16-bytes.arm": ("pngsuite_basn0g16.png", {"classic": False, "binned": False}, True),  # high and reflected low bytes
    "v3-rgb16-levels.arm": ("pngsuite_basn2c16.png", {"classic": False, "binned": False}, True),  # 16 bits in 32 levels
    # gAMA, sPLT: deflated metadata (0.3-0.12.9; 0.12.10 writes the sPLT as differences: v3-chunks-filtered.arm)
    "v3-chunks.arm": ("pngsuite_ps1n0g08.png", {"classic": False, "binned": False}, False),
    "v3-chunks-filtered.arm": ("pngsuite_ps1n0g08.png", {"classic": False, "binned": False}, True),  # 0.12.10: kind 9
    "v3-classic-p2.arm": ("pngsuite_basn3p02.png", {"classic": True}, False),
    "v3-classic-interlaced.arm": ("pngsuite_basi0g02.png", {"classic": True}, False),
    "v3-classic-rgb16.arm": ("pngsuite_tbbn2c16.png", {"classic": True}, False),
}


def classic_tiles_file(codec) -> bytes:
    """A model file whose tile stream 1 is a PNG zlib stream (coder tool 4), built by hand: the
    encoder picks such tiles only where zlib wins, which a random tiny model does not show."""
    import dataclasses

    from armcodec.coding import tile_png

    img = load("kodim05_rgb_37x29.png")[:24, :32]
    header, streams = container.parse(codec.compress(img))
    streams[1] = tile_png.encode(img[:16, 16:32])
    flags = [False, True] + [False] * (len(streams) - 2)
    return container.write(dataclasses.replace(header, tools=dataclasses.replace(header.tools, classic_tiles=True),
                                               classic_streams=flags), streams)


@pytest.mark.parametrize("name", V3)
def test_version_3_golden_files_decode_and_the_model_writes_them_again(name):
    from armcodec.io.image import read_image

    src, options, same_bytes = V3[name]
    data = (GOLDEN / name).read_bytes()
    arr, info = read_image(DATA / src)
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, **options)
    dec = codec.decode(data)
    assert np.array_equal(dec.array, arr) and (dec.mode, dec.bits, dec.palette, dec.metadata) == \
        (info.mode, info.bits, info.palette, info.metadata)
    assert (container.parse(data)[0].classic is None) == ("classic" not in name)
    if same_bytes:
        assert codec.compress(DATA / src) == data


def test_the_filtered_golden_file_holds_a_list_of_differences(monkeypatch):
    """v3-chunks-filtered.arm's sPLT is a kind-9 item (a suggested palette as differences of its
    entries), and the file is smaller than v3-chunks.arm, the same image as 0.3-0.12.9 wrote it."""
    seen = []
    unfiltered = container._unfiltered
    monkeypatch.setattr(container, "_unfiltered", lambda key, value: seen.append(key) or unfiltered(key, value))
    data = (GOLDEN / "v3-chunks-filtered.arm").read_bytes()
    container.parse(data)
    assert seen == ["sPLT"] and len(data) < len((GOLDEN / "v3-chunks.arm").read_bytes()) - 300


def test_the_classic_tiles_golden_file_decodes():
    data = (GOLDEN / "v3-classic-tiles.arm").read_bytes()
    header, _ = container.parse(data)
    assert header.tools.classic_tiles and header.classic_streams[:2] == [False, True]
    codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, classic=False, binned=False)
    assert np.array_equal(codec.decode(data).array, load("kodim05_rgb_37x29.png")[:24, :32])
    assert classic_tiles_file(codec) == data


# armcodec 0.4: the multi-scale family (a frozen tiny polyphase pyramid, its own weights directory)
PYRAMID = GOLDEN / "pyramid"
PYRAMID_TOOLS = {"adapt": {"binned": False}, "orient": {"orient": True, "binned": False},
                 "plain": {"adaptive": False, "binned": False}, "binned": {}}


def pyramid_files():
    return [(stem, name) for stem in ("kodim05_rgb_37x29", "usc_sipi_6.1_gray_40x33", "kodim03_rgba_32x24",
                                      "usc_sipi_6.1_la_28x21") for name in PYRAMID_TOOLS]  # binned: 0.11


def test_pyramid_golden_files_exist():
    assert all((PYRAMID / f"{stem}.{name}.arm").exists() for stem, name in pyramid_files())


@pytest.mark.parametrize("stem,name", pyramid_files())
def test_pyramid_golden_files_decode_and_the_encoder_writes_them_again(stem, name):
    data = (PYRAMID / f"{stem}.{name}.arm").read_bytes()
    codec = armcodec.Codec("golden-pyramid", device="cpu", weights_dir=PYRAMID, classic=False, **PYRAMID_TOOLS[name])
    img = load(f"{stem}.png")
    assert np.array_equal(codec.decompress(data), img)
    assert codec.compress(DATA / f"{stem}.png") == data


# files of the shipped `pyramid` preset's weights (the model's path, no PNG/WebP): pyramid-s (0.6, 0.7)
# pyramid-s2 (0.8, 0.9), pyramid-s3 (0.10), pyramid-s3 with binned symbols (0.11), pyramid-s4 (0.12)
# and pyramid-s5 (0.18). The default codec decodes each (finding the weights the file names) and those
# weights write it again byte for byte; the last is what the preset writes today.
SHIPPED_PYRAMID = (("kodim05_rgb_37x29", "shipped-pyramid-s.arm", "pyramid-s", False),
                   ("kodim05_rgb_37x29", "shipped-pyramid-s2.arm", "pyramid-s2", False),
                   ("kodim05_rgb_37x29", "shipped-pyramid-s3.arm", "pyramid-s3", False),
                   ("kodim05_rgb_37x29", "shipped-0.11-pyramid-s3.arm", "pyramid-s3", True),
                   ("kodim05_rgb_37x29", "shipped-pyramid-s4.arm", "pyramid-s4", True),
                   ("kodim05_rgb_37x29", "shipped-pyramid-s5.arm", "pyramid-s5", True))


def shipped_pyramid_codec(weights: str, binned: bool):
    return armcodec.Codec(weights, device="cpu", tile_size=128, classic=False, binned=binned)


@pytest.mark.parametrize("stem,name,weights,binned", SHIPPED_PYRAMID)
def test_files_of_the_shipped_pyramid_weights_decode_and_are_written_again(stem, name, weights, binned):
    data = (PYRAMID / name).read_bytes()
    assert container.parse(data)[0].model == weights and container.parse(data)[0].tools.binned == binned
    assert np.array_equal(armcodec.Codec(device="cpu").decompress(data), load(f"{stem}.png"))
    assert shipped_pyramid_codec(weights, binned).compress(DATA / f"{stem}.png") == data
    if name == SHIPPED_PYRAMID[-1][1]:
        assert armcodec.Codec("pyramid", device="cpu", classic=False).compress(DATA / f"{stem}.png") == data


# armcodec 0.4: video files (format version 4), a frozen tiny temporal model (its own weights directory)
VIDEO = GOLDEN / "video"


def predictor_tools(predictor: bool | float) -> dict:
    """A video codec's predictor options as a release wrote them: False (before 0.13), 0.13 (the
    predictor's mixture), 0.14 (its neighbour term, H.264's quarter pixels), True (0.15 and 0.16: R, G, B
    groups by the mixture, classic groups), 0.17 (long vectors, coder tool 9)."""
    now = predictor is True or predictor == 0.17
    return dict(predictor=bool(predictor), neighbours=now or predictor == 0.14, sharp=now or predictor == 0.14,
                colour=now, classic_groups=now, long_motion=predictor == 0.17)


def video_codec(feedback: bool = False, copy_blocks: bool = False, binned: bool = False, predictor: bool | float = False):
    from armcodec.video import VideoCodec

    return VideoCodec("golden-temporal", "cpu", key_interval=3, weights_dir=VIDEO, feedback=feedback,
                      copy_blocks=copy_blocks, binned=binned, **predictor_tools(predictor))


def encode_video(codec, source) -> bytes:
    import io

    out = io.BytesIO()
    codec.encode(source, out)
    return out.getvalue()


def video_records(data: bytes, codec) -> list:
    """The frame records of a video file."""
    import io

    from armcodec import container_video as cv

    f = io.BytesIO(data)
    header = codec.open(f)
    pos, out = header.size, []
    while (rec := cv.read_record(f, header, pos)) is not None:
        out.append(rec)
        pos += rec.size
    return out


def golden_video_sources():
    """(golden file, a fresh VideoSource of its input, the feedback used, block maps used, binned
    symbols used, the previous-frame predictor used): a 4:2:0 Y4M clip with FRAME parameters and
    RGBA frames with the adaptation alone (0.4); a clip whose third frame repeats its second with
    the feedback and 0.5's records (the compact stream table, a copy map); a clip whose second
    frame changes a few blocks of its first, with 0.6's block maps; that clip and the first with
    binned symbols (0.11); a noisy clip panning by fractions of a pixel with every tool and the
    predictor (0.13: quarter-pixel vectors, the mixture indices; the last field 0.13: without
    0.14's neighbour term, which this model's means, always the previous sample, leave at zero:
    the shipped files of 0.14 cover it); a 64x48 crop of mobile_calendar's first 4 frames with
    0.14's tools (its groups' quarter samples H.264's or the blend's, both kinds); R, G, B frames
    of a scrolling text window and of a noisy pan by fractions of a pixel with 0.15's (R, G, B
    groups by the mixture, plane groups as one lossless WebP)."""
    import io

    from armcodec.io.frames import frames_source, y4m_source

    def clip(name):
        return lambda: y4m_source(io.BytesIO((VIDEO / name).read_bytes()))

    return [("clip420.y4m.arm", clip("clip420.y4m"), False, False, False, False),
            ("rgba-frames.arm", lambda: frames_source([VIDEO / "rgba-frames"]), False, False, False, False),
            ("clip420-repeat.y4m.arm", clip("clip420-repeat.y4m"), True, False, False, False),
            ("clip420-blocks.y4m.arm", clip("clip420-blocks.y4m"), True, True, False, False),
            ("clip420-blocks-binned.y4m.arm", clip("clip420-blocks.y4m"), True, True, True, False),
            ("clip420-binned.y4m.arm", clip("clip420.y4m"), False, False, True, False),
            ("clip420-predictor.y4m.arm", clip("clip420-subpixel.y4m"), True, True, True, 0.13),
            ("clip420-mobile.y4m.arm", clip("clip420-mobile.y4m"), True, True, True, 0.14),
            ("screen-frames.arm", lambda: frames_source([VIDEO / "screen-frames"]), True, True, True, True),
            ("rgb-subpixel.arm", lambda: frames_source([VIDEO / "rgb-subpixel"]), True, True, True, True),
            ("clip420-shake.y4m.arm", clip("clip420-shake.y4m"), True, True, True, 0.17)]


# files of the shipped `video` preset as each release wrote them (source, file, weights, binned): 0.7's
# grey planes by temporal-planes-s and RGBA frames by temporal-s, 0.8's grey planes by temporal-planes-s2,
# 0.9's by temporal-planes-s3, 0.11's both with binned symbols, 0.12.11's by temporal-planes-s4,
# 0.13's with the previous-frame predictor (the last field: whether the encoder could use it), 0.14's
# with its neighbour term and the 6-tap quarter pixels (the last field 0.14), 0.15's with R, G, B groups
# by the mixture and plane groups as one lossless WebP (the last field True), 0.17's with long vectors
# (coder tool 9, the last field 0.17).
# The preset decodes each of them (switching to the weights the file names) and those weights write
# it again byte for byte; the last file of each source is what the preset writes today.
SHIPPED_VIDEO = (("clip420.y4m.arm", "shipped-clip420.y4m.arm", "temporal-planes-s", False, False),
                 ("rgba-frames.arm", "shipped-rgba-frames.arm", "temporal-s", False, False),
                 ("clip420.y4m.arm", "shipped-0.8-clip420.y4m.arm", "temporal-planes-s2", False, False),
                 ("clip420.y4m.arm", "shipped-0.9-clip420.y4m.arm", "temporal-planes-s3", False, False),
                 ("clip420.y4m.arm", "shipped-0.11-clip420.y4m.arm", "temporal-planes-s3", True, False),
                 ("clip420.y4m.arm", "shipped-0.12.11-clip420.y4m.arm", "temporal-planes-s4", True, False),
                 ("clip420.y4m.arm", "shipped-0.13-clip420.y4m.arm", "temporal-planes-s4", True, 0.13),
                 ("clip420.y4m.arm", "shipped-0.14-clip420.y4m.arm", "temporal-planes-s4", True, 0.14),
                 ("clip420-mobile.y4m.arm", "shipped-0.14-mobile.y4m.arm", "temporal-planes-s4", True, 0.14),
                 ("rgba-frames.arm", "shipped-0.11-rgba-frames.arm", "temporal-s", True, False),
                 ("rgba-frames.arm", "shipped-0.13-rgba-frames.arm", "temporal-s", True, 0.13),
                 ("rgba-frames.arm", "shipped-0.14-rgba-frames.arm", "temporal-s", True, 0.14),
                 ("clip420.y4m.arm", "shipped-0.15-clip420.y4m.arm", "temporal-planes-s4", True, True),
                 ("clip420-mobile.y4m.arm", "shipped-0.15-mobile.y4m.arm", "temporal-planes-s4", True, True),
                 ("rgba-frames.arm", "shipped-0.15-rgba-frames.arm", "temporal-s", True, True),
                 ("screen-frames.arm", "shipped-0.15-screen-frames.arm", "temporal-s", True, True),
                 ("clip420-mobile.y4m.arm", "shipped-0.16-mobile.y4m.arm", "temporal-planes-s4", True, True),
                 ("clip420.y4m.arm", "shipped-0.17-clip420.y4m.arm", "temporal-planes-s4", True, 0.17),
                 ("clip420-mobile.y4m.arm", "shipped-0.17-mobile.y4m.arm", "temporal-planes-s4", True, 0.17),
                 ("rgba-frames.arm", "shipped-0.17-rgba-frames.arm", "temporal-s", True, 0.17),
                 ("screen-frames.arm", "shipped-0.17-screen-frames.arm", "temporal-s", True, 0.17),
                 ("clip420-shake.y4m.arm", "shipped-0.17-shake.y4m.arm", "temporal-planes-s4", True, 0.17))
# the files above that today's encoder writes again byte for byte with their tools (0.16's block search
# moved the vectors of the others; those tools still code their sources exactly: the test below)
SHIPPED_REWRITTEN = ("shipped-rgba-frames.arm", "shipped-0.11-rgba-frames.arm", "shipped-0.13-rgba-frames.arm",
                     "shipped-0.14-rgba-frames.arm", "shipped-0.15-clip420.y4m.arm", "shipped-0.15-rgba-frames.arm",
                     "shipped-0.15-screen-frames.arm", "shipped-0.16-mobile.y4m.arm", *(
                         f"shipped-0.17-{n}.arm" for n in ("clip420.y4m", "mobile.y4m", "rgba-frames", "screen-frames",
                                                           "shake.y4m")))


def shipped_video_codec(weights: str | None = None, binned: bool = True, predictor: bool | float = True):
    """The shipped `video` preset, or the codec of one of its weights as the preset runs them
    (in its 128x128 tiles); ``predictor`` 0.13: the predictor's mixture without the neighbour term
    and with bilinear quarter pixels (what 0.13 wrote)."""
    from armcodec.video import VideoCodec

    if weights is None:
        return VideoCodec("video", "cpu", key_interval=3)
    return VideoCodec(weights, "cpu", key_interval=3, tile_size=128, binned=binned, **predictor_tools(predictor))


@pytest.mark.parametrize("k", range(len(SHIPPED_VIDEO)))
def test_files_of_the_shipped_video_preset_decode_and_are_written_again(k):
    import io

    from armcodec.video import read_info

    of, name, weights, binned, predictor = SHIPPED_VIDEO[k]
    source = dict((n, s) for n, s, *_ in golden_video_sources())[of]
    data = (VIDEO / name).read_bytes()
    assert read_info(io.BytesIO(data))["model"] == weights
    codec = shipped_video_codec()  # the preset decodes every file its releases wrote (switching weights)
    f = io.BytesIO(data)
    got = list(codec.decode(f, codec.open(f), seekable=True))
    assert codec.codec.model.entry.name == weights
    want = list(source().frames)
    assert len(got) == len(want)
    assert all(np.array_equal(a, b) for (_, g, _), w in zip(got, want) for a, b in zip(g.groups, w.groups))
    again = encode_video(shipped_video_codec(weights, binned, predictor), source())
    assert again == data if name in SHIPPED_REWRITTEN else decodes_to(codec, again, want)
    mix = [v for rec in video_records(data, codec) for v in rec.mix]
    assert bool(mix) == bool(predictor) or name.endswith("screen-frames.arm")  # (its groups may all be WebP)
    assert not mix or (max(mix) >= cv.N_MIX) == (predictor is True or predictor in (0.14, 0.17))
    if name == [n for o, n, *_ in SHIPPED_VIDEO if o == of][-1]:
        assert encode_video(shipped_video_codec(), source()) == data


# the golden files this release writes again byte for byte (the others: 0.4's full stream table, and
# the vectors that 0.16's block search moved; their tools still code their sources exactly)
VIDEO_REWRITTEN = ("clip420-repeat.y4m.arm", "screen-frames.arm", "clip420-shake.y4m.arm")


def decodes_to(codec, data: bytes, want) -> bool:
    """Whether ``codec`` decodes the video file ``data`` to the frames ``want``."""
    import io

    f = io.BytesIO(data)
    got = list(codec.decode(f, codec.open(f), seekable=True))
    return len(got) == len(want) and all(np.array_equal(a, b) for (_, g, _), w in zip(got, want)
                                         for a, b in zip(g.groups, w.groups))


@pytest.mark.parametrize("k", range(len(golden_video_sources())))
def test_video_golden_files_decode_and_the_encoder_writes_them_again(k):
    import io

    name, source, feedback, copy_blocks, binned, predictor = golden_video_sources()[k]
    data = (VIDEO / name).read_bytes()
    codec = video_codec(feedback, copy_blocks, binned, predictor)
    f = io.BytesIO(data)
    header = codec.open(f)
    got = list(codec.decode(f, header, seekable=True))
    want = list(source().frames)
    assert len(got) == len(want) and all(g.extra == w.extra for (_, g, _), w in zip(got, want))
    assert all(np.array_equal(a, b) for (_, g, _), w in zip(got, want) for a, b in zip(g.groups, w.groups))
    from armcodec.video import read_info

    info = read_info(io.BytesIO(data))
    assert info["key_frames"] < info["frames"]  # frames coded with their predecessor among them
    recs = video_records(data, codec)
    if name == "screen-frames.arm":  # 0.15: every group one lossless WebP, of its samples or of its residual
        assert [r.classic[0][0] for r in recs] == [1, 2, 2]
    elif predictor:  # planes coded by the mixture with the previous-frame predictor among them
        assert any(rec.mix for rec in recs)
    if predictor == 0.17:  # vectors beyond 0.16's 16 pixels (20 rows down), read as tool 9 sends them
        from armcodec.coding import motion

        used = [g for g, t in enumerate(recs[1].temporal) if t]
        fields, _ = motion.unpack(recs[1].motion, [motion.block_grid(*header.planes[g][1::-1]) for g in used],
                                  [motion.QUARTER] * len(used), sharp=True, long=True)
        assert np.abs(fields[0]).max() > motion.MAX_VECTOR * motion.QUARTER
    again = encode_video(codec, source())
    assert again == data if name in VIDEO_REWRITTEN else decodes_to(codec, again, want)
