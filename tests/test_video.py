"""Video: the temporal model's exactness, the video container, VideoCodec and the CLI's video paths."""
from __future__ import annotations

import io
import itertools
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from armcodec import container_video as cv
from armcodec.coding.planes import GroupJob, decode_groups
from armcodec.container import CoderTools
from armcodec.encoder.group import encode_group
from armcodec.errors import ArmcodecError, ChecksumError, FormatError, UnsupportedInputError
from armcodec.exact.tables import TableLUTs
from armcodec.io.frames import VideoFrame, VideoSource, frames_source, natural_key, write_y4m, y4m_source
from armcodec.models.temporal import TemporalPixelCNN, context_input
from armcodec.training.export import export_model, export_net
from armcodec.video import VideoCodec
from conftest import TINY_TEMPORAL, make_tiny_temporal, moving_frames, y4m_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
# --- the model -----------------------------------------------------------------------------------
@pytest.mark.parametrize("grids", [{}, {"head_steps": 128}])
def test_temporal_encoder_and_decoder_agree_and_the_context_pays(grids):
    """The encoder's pass and the decoder's steps give the same integers with a previous frame
    (the round trip's CRCs), and a frame coded with its predecessor costs what the model says;
    on the default grids and with the finer head grid of temporal-planes-s2."""
    net = export_net(make_tiny_temporal(grids=grids))
    luts = TableLUTs.compute().to("cpu")
    prev, cur = moving_frames(2)
    prev, cur = prev[:, :, None], cur[:, :, None]
    for tools in (CoderTools(), CoderTools(True), CoderTools(True, feedback=3)):
        for ctx in (None, prev):
            g = encode_group(cur, net, luts, 16, torch.device("cpu"), tools, context=ctx)
            (out, bits), = decode_groups([GroupJob(g, *cur.shape, 0, ctx)], net, luts, 16, torch.device("cpu"), tools)
            assert (out == cur).all()
            assert bits == pytest.approx(g.model_bits, rel=1e-9)
            assert sum(map(len, g.streams)) * 8 <= g.model_bits * 1.005 + 64 * len(g.streams)


def test_context_terms_do_not_depend_on_their_block_size(monkeypatch):
    """The previous frame's terms are computed a block at a time as the scan reaches them: blocks
    of 7 positions (every decoder step and encoder chunk straddles some) give the streams and the
    frame of one block for everything."""
    from armcodec.models import temporal_exact

    net = export_net(make_tiny_temporal())
    luts = TableLUTs.compute().to("cpu")
    prev, cur = (f[:, :, None] for f in moving_frames(2))
    cpu = torch.device("cpu")
    whole = encode_group(cur, net, luts, 16, cpu, CoderTools(True), context=prev)
    monkeypatch.setattr(temporal_exact, "CONTEXT_CHUNK", 7)
    small = encode_group(cur, net, luts, 16, cpu, CoderTools(True), context=prev)
    assert small.streams == whole.streams
    (out, _), = decode_groups([GroupJob(whole, *cur.shape, 0, prev)], net, luts, 16, cpu, CoderTools(True))
    assert (out == cur).all()


@pytest.mark.parametrize("grids", [{}, {"head_steps": 128}])
def test_temporal_exact_model_tracks_its_qat_float_graph(grids):
    """The exported integers and the QAT float graph give nearly the same bits (the float graph
    adds each term on its grid as the exact model does)."""
    m = make_tiny_temporal(grids=grids)
    net = export_net(m)
    luts = TableLUTs.compute().to("cpu")
    prev, cur = moving_frames(2, 32, 32)
    g = encode_group(cur[:, :, None], net, luts, 32, torch.device("cpu"), CoderTools(), context=prev[:, :, None],
                     count_only=True)
    x = torch.from_numpy(cur).float()[None, None].expand(1, 3, -1, -1)
    c = torch.from_numpy(prev).float()[None, None].expand(1, 3, -1, -1)
    r = TINY_TEMPORAL.context_reach
    cinp = torch.nn.functional.pad(context_input(c), (r,) * 4)
    with torch.no_grad():
        float_bits = m(x, qat=True, context=cinp)[:, :1].sum().item()
    assert g.model_bits == pytest.approx(float_bits, rel=0.03)


def test_a_frame_without_context_is_the_image_model():
    """A key frame (no previous frame) costs what the same network without the context layers does."""
    from armcodec.models.pixelcnn import PixelCNN

    m = make_tiny_temporal()
    image = PixelCNN(TINY_TEMPORAL)
    image.load_state_dict(m.state_dict(), strict=False)
    x = torch.from_numpy(moving_frames(1)[0]).float()[None, None].expand(1, 3, -1, -1)
    with torch.no_grad():
        assert torch.equal(m(x, qat=True), image(x, qat=True))


def test_warm_start_keeps_the_image_model():
    from armcodec.models.pixelcnn import PixelCNN, PixelCNNConfig

    torch.manual_seed(1)
    image = PixelCNN(PixelCNNConfig(width=8, blocks=1, head_width=8, mixtures=2))
    t = TemporalPixelCNN.from_image_model(image, 1)
    x = torch.from_numpy(moving_frames(1)[0]).float()[None, None].expand(1, 3, -1, -1).contiguous()
    cinp = torch.nn.functional.pad(context_input(x), (1,) * 4)
    with torch.no_grad():
        assert torch.equal(t(x, context=cinp), image(x))  # the context terms start at zero


# --- the container ---------------------------------------------------------------------------------
def encode_bytes(codec: VideoCodec, data: bytes, n: int | None = None) -> bytes:
    src = y4m_source(io.BytesIO(data))
    if n is not None:
        src.frames = itertools.islice(src.frames, n)
    out = io.BytesIO()
    codec.encode(src, out)
    return out.getvalue()


def decode_bytes(codec: VideoCodec, data: bytes, frames=None, seekable=True) -> bytes:
    f = io.BytesIO(data)
    h = codec.open(f)
    out = io.BytesIO()
    write_y4m(out, h.description, (fr for _, fr, _ in codec.decode(f, h, frames, seekable=seekable)))
    return out.getvalue()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return y4m_bytes(moving_frames(5), [b"", b" Ib", b"", b" XFOO=1", b""])


@pytest.fixture(scope="module")
def coded(vcodec, clip) -> bytes:
    return encode_bytes(vcodec, clip)


def test_y4m_round_trip_is_byte_exact(vcodec, clip, coded):
    assert decode_bytes(vcodec, coded) == clip
    assert decode_bytes(vcodec, coded, seekable=False) == clip  # a pipe: record by record


def test_temporal_frames_are_smaller_than_key_frames(vcodec, temporal_dir, clip, coded):
    intra = encode_bytes(VideoCodec("tiny-temporal", "cpu", key_interval=1, weights_dir=temporal_dir), clip)
    assert len(coded) < len(intra)
    info = __import__("armcodec.video", fromlist=["read_info"]).read_info(io.BytesIO(coded))
    assert info["frames"] == 5 and info["key_frames"] == 2 and info["source"] == "y4m"


@pytest.mark.parametrize("rng", [slice(1, 3), slice(3, 5), slice(4, None), slice(0, 1), slice(2, 2)])
def test_a_frame_range_decodes_exactly(vcodec, clip, coded, rng):
    whole = list(y4m_source(io.BytesIO(clip)).frames)
    f = io.BytesIO(coded)
    h = vcodec.open(f)
    got = list(vcodec.decode(f, h, rng, seekable=True))
    want = list(range(5))[rng]
    assert [n for n, _, _ in got] == want
    for n, frame, _ in got:
        assert all((a == b).all() for a, b in zip(frame.groups, whole[n].groups))


def test_every_truncation_is_refused(vcodec, coded):
    for cut in list(range(0, 64, 3)) + list(range(64, len(coded), max(1, len(coded) // 97))):
        with pytest.raises(ArmcodecError):
            decode_bytes(vcodec, coded[:cut])
        with pytest.raises(ArmcodecError):
            decode_bytes(vcodec, coded[:cut], seekable=False)


def test_flipped_bytes_are_refused_or_decode_exactly(vcodec, clip, coded):
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(coded), 60, replace=False):
        bad = bytearray(coded)
        bad[pos] ^= 1 << int(rng.integers(8))
        try:
            out = decode_bytes(vcodec, bytes(bad))
        except ArmcodecError:
            continue
        assert out == clip  # a flip the format does not read (none is expected)


def test_header_fields_are_validated():
    h = cv.VideoHeader("y4m", 30, 21, [(30, 21, 1), (15, 11, 1), (15, 11, 1)], 3, 16, "m", bytes(16),
                       description=b"YUV4MPEG2 W30 H21")
    data = cv.write_header(h)
    assert cv.read_header(io.BytesIO(data)).planes == h.planes
    with pytest.raises(ChecksumError):
        cv.read_header(io.BytesIO(data[:20] + bytes([data[20] ^ 1]) + data[21:]))
    with pytest.raises(FormatError):
        cv.read_header(io.BytesIO(data[:-3]))
    with pytest.raises(ArmcodecError):  # a limit before anything is allocated
        cv.read_header(io.BytesIO(data), max_pixels=100)


def test_weights_of_another_model_are_refused(vcodec, coded, tiny_dir):
    other = VideoCodec("tiny", "cpu", weights_dir=tiny_dir)
    with pytest.raises(ArmcodecError, match="written with weights"):
        other.open(io.BytesIO(coded))


def test_a_preset_codes_grey_planes_with_its_planes_weights(tmp_path, clip):
    """A preset that names weights for grey planes (``encoder.planes``) codes YUV and grey frames
    with them and RGB frames with its own; the file names the weights it was written with, and
    the preset's codec (and the CLI) decodes both kinds."""
    import json

    from armcodec.video import read_info

    d = tmp_path / "w"
    export_model(make_tiny_temporal(0), d, "tiny-temporal", tile_size=16)
    planes = export_model(make_tiny_temporal(1), d, "tiny-planes", tile_size=16)
    man = json.loads((d / "manifest.json").read_text())
    for p in man["presets"]:
        if p["name"] == "tiny-temporal":
            p["encoder"], p["tile_size"] = {**p.get("encoder", {}), "planes": planes["sha256"]}, 24
    (d / "manifest.json").write_text(json.dumps(man))
    codec = VideoCodec("tiny-temporal", "cpu", key_interval=3, weights_dir=d)
    assert codec.codec_for([(30, 21, 1)]).tile_size == 24  # the preset's tiles
    yuv = encode_bytes(codec, clip, 3)
    assert read_info(io.BytesIO(yuv))["model"] == "tiny-planes"
    assert decode_bytes(VideoCodec("tiny-temporal", "cpu", weights_dir=d), yuv) == clip[: len(decode_bytes(codec, yuv))]
    for k, f in enumerate(moving_frames(3)):
        Image.fromarray(np.stack([f, 255 - f, f // 2], 2)).save(tmp_path / f"f{k}.png")
    paths = sorted(tmp_path.glob("f*.png"))
    out = io.BytesIO()
    codec.encode(frames_source(paths), out)
    assert read_info(io.BytesIO(out.getvalue()))["model"] == "tiny-temporal"
    f = io.BytesIO(out.getvalue())
    fresh = VideoCodec("tiny-temporal", "cpu", weights_dir=d)
    h = fresh.open(f)
    back = [fr.groups[0] for _, fr, _ in fresh.decode(f, h)]
    assert all(np.array_equal(b, np.asarray(Image.open(p))) for b, p in zip(back, paths)) and len(back) == 3


def test_an_image_model_codes_every_frame_alone(tiny_dir, clip):
    codec = VideoCodec("tiny", "cpu", weights_dir=tiny_dir)
    data = encode_bytes(codec, clip, 3)
    assert decode_bytes(codec, data) == clip[: len(decode_bytes(codec, data))]
    assert __import__("armcodec.video", fromlist=["read_info"]).read_info(io.BytesIO(data))["key_frames"] == 3


# --- frame folders --------------------------------------------------------------------------------
def test_natural_order():
    names = ["f10.png", "f2.png", "f1.png", "F3.png"]
    assert sorted(names, key=natural_key) == ["f1.png", "f2.png", "F3.png", "f10.png"]


def test_rgba_frames_round_trip_with_their_names(vcodec, tmp_path):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (18, 20, 4), dtype=np.uint8)
    for k in (1, 2, 10):
        Image.fromarray(np.roll(base, k, 1), "RGBA").save(tmp_path / f"shot{k}.png")
    src = frames_source([tmp_path])
    assert src.groups == [(20, 18, 3), (20, 18, 1)]
    out = io.BytesIO()
    vcodec.encode(src, out)
    f = io.BytesIO(out.getvalue())
    h = vcodec.open(f)
    got = list(vcodec.decode(f, h, seekable=True))
    assert [fr.extra for _, fr, _ in got] == [b"shot1.png", b"shot2.png", b"shot10.png"]
    for (_, fr, _), k in zip(got, (1, 2, 10)):
        assert (np.concatenate(fr.groups, 2) == np.roll(base, k, 1)).all()


def test_frames_of_another_size_or_with_metadata_are_refused(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a1.png")
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "a2.png")
    with pytest.raises(UnsupportedInputError, match="a2.png"):
        list(frames_source([tmp_path]).frames)
    (tmp_path / "a2.png").unlink()
    im = Image.fromarray(np.zeros((8, 8), np.uint8))
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("Comment", "kept?")
    im.save(tmp_path / "a3.png", pnginfo=meta)
    with pytest.raises(UnsupportedInputError, match="metadata"):
        list(frames_source([tmp_path]).frames)


# --- the command line -------------------------------------------------------------------------------
def cli(*args, stdin=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "armcodec_cli.main", *map(str, args)], capture_output=True,
                          input=stdin, cwd=cwd)


def test_cli_y4m_frames_and_ffv1(tmp_path, clip):
    """The shipped video preset: Y4M in and out byte for byte (a file and a pipe), a middle range,
    FFV1 out, info; a damaged file leaves no output."""
    src = tmp_path / "clip.y4m"
    src.write_bytes(clip)
    r = cli("compress", src, "--key-interval", "2")
    assert r.returncode == 0, r.stderr.decode()
    arm = tmp_path / "clip.y4m.arm"
    r = cli("decompress", arm, "-o", tmp_path / "back.y4m")
    assert r.returncode == 0, r.stderr.decode()
    assert (tmp_path / "back.y4m").read_bytes() == clip
    r = cli("decompress", "-", stdin=arm.read_bytes())
    assert r.returncode == 0 and r.stdout == clip
    r = cli("compress", "-", "-o", "-", "--key-interval", "2", stdin=clip)
    assert r.returncode == 0 and r.stdout == arm.read_bytes()  # the same file from a pipe
    r = cli("decompress", arm, "-o", tmp_path / "mid.y4m", "--frames", "1:4")
    assert r.returncode == 0, r.stderr.decode()
    whole = list(y4m_source(io.BytesIO(clip)).frames)
    mid = list(y4m_source(open(tmp_path / "mid.y4m", "rb")).frames)
    assert len(mid) == 3 and all((a == b).all() for f, g in zip(mid, whole[1:4]) for a, b in zip(f.groups, g.groups))
    r = cli("decompress", arm, "-o", tmp_path / "clip.mkv")
    assert r.returncode == 0, r.stderr.decode()
    from armcodec.io.frames import ffmpeg_exe

    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", tmp_path / "clip.mkv", "-f", "rawvideo", "-pix_fmt",
                          "yuv420p", "-"], capture_output=True, check=True).stdout
    assert raw == b"".join(b"".join(g.tobytes() for g in f.groups) for f in whole)
    r = cli("info", arm)
    assert r.returncode == 0 and b"frames: 5" in r.stdout
    bad = tmp_path / "bad.arm"
    bad.write_bytes(arm.read_bytes()[:-40])
    r = cli("decompress", bad, "-o", tmp_path / "bad.y4m")
    assert r.returncode != 0 and not (tmp_path / "bad.y4m").exists() and b"error" in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_no_predictor_writes_the_earlier_records(tmp_path, clip):
    """``--no-predictor``: integer vectors and no predictor map (what armcodec 0.12 reads); both
    files come back as the clip."""
    src = tmp_path / "clip.y4m"
    src.write_bytes(clip)
    got = {}
    for flag in ("--predictor", "--no-predictor"):
        out = tmp_path / f"clip{flag}.arm"
        r = cli("compress", src, "-o", out, flag)
        assert r.returncode == 0, r.stderr.decode()
        r = cli("decompress", out, "-o", "-")
        assert r.returncode == 0 and r.stdout == clip
        codec = VideoCodec("video", "cpu")
        f = io.BytesIO(out.read_bytes())
        header = codec.open(f)
        pos, recs = header.size, []
        while (rec := cv.read_record(f, header, pos)) is not None:
            recs.append(rec)
            pos += rec.size
        got[flag] = [rec.quarter for rec in recs]
    assert any(got["--predictor"]) and not any(got["--no-predictor"])


def test_cli_png_folder_round_trip(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, f in enumerate(moving_frames(4, 16, 24)):
        Image.fromarray(f).save(frames / f"img{k + 8}.png")
    r = cli("compress", frames, "--video", "-o", tmp_path / "seq.arm")
    assert r.returncode == 0, r.stderr.decode()
    r = cli("decompress", tmp_path / "seq.arm", "-o", str(tmp_path / "out") + "/")
    assert r.returncode == 0, r.stderr.decode()
    for k in range(4):
        a = np.asarray(Image.open(frames / f"img{k + 8}.png"))
        b = Image.open(tmp_path / "out" / f"img{k + 8}.png")
        assert b.mode == "L" and (np.asarray(b) == a).all()


def test_cli_refuses_what_it_cannot_write_exactly(tmp_path, clip):
    src = tmp_path / "c.y4m"
    src.write_bytes(clip)
    assert cli("compress", src).returncode == 0
    r = cli("decompress", tmp_path / "c.y4m.arm", "-o", str(tmp_path / "pngs") + "/")
    assert r.returncode != 0 and b"not PNG images" in r.stderr
    r = cli("decompress", tmp_path / "c.y4m.arm", "-o", tmp_path / "x.mp4")
    assert r.returncode != 0 and b".mkv" in r.stderr
    r = cli("decompress", tmp_path / "c.y4m.arm", "--frames", "3", "-o", tmp_path / "y.y4m")
    assert r.returncode != 0 and b"A:B" in r.stderr


@pytest.mark.skipif(not (SHARED / "y4m" / "CiscoVT2people_320x192_9f.y4m").exists(), reason="../shared not present")
def test_shared_clip_round_trips_smaller_than_intra(tmp_path):
    """A real clip (9 frames of a video call) through the shipped video preset: exact, and the
    frames after the key frame cost less than the same frames coded alone."""
    clip = (SHARED / "y4m" / "CiscoVT2people_320x192_9f.y4m").read_bytes()
    short = b"".join(clip.split(b"FRAME")[:4][:1]) + b"".join(b"FRAME" + p for p in clip.split(b"FRAME")[1:4])
    codec = VideoCodec("video", "cpu")
    data = encode_bytes(codec, short)
    assert decode_bytes(codec, data) == short
    intra = encode_bytes(VideoCodec("video", "cpu", key_interval=1), short)
    assert len(data) < len(intra)


def test_video_files_in_and_ffv1_or_png_frames_out(tmp_path):
    """A video file's decoded frames are what is stored: YUV as the decoder's planes (back as Y4M
    or FFV1, not as PNG), RGB as RGB (back as FFV1 or PNG frames); other pixel formats (10-bit) and
    audio are refused by name (audio unless --video-only)."""
    from armcodec.io.frames import ffmpeg_exe, video_source
    from armcodec.io.y4m import Y4MReader

    ff = ffmpeg_exe()
    mp4, av, rgb, deep = tmp_path / "m.mp4", tmp_path / "av.mp4", tmp_path / "rgb.mkv", tmp_path / "deep.mkv"
    src = ["-f", "lavfi", "-i", "testsrc=size=40x24:rate=5", "-t", "0.6"]
    subprocess.run([ff, "-v", "error", *src, "-c:v", "libx264", "-pix_fmt", "yuv420p", mp4], check=True)
    subprocess.run([ff, "-v", "error", *src, "-f", "lavfi", "-i", "sine=frequency=440", "-c:v", "libx264", "-c:a", "aac",
                    "-shortest", av], check=True)
    subprocess.run([ff, "-v", "error", *src, "-c:v", "ffv1", "-pix_fmt", "bgr0", rgb], check=True)
    subprocess.run([ff, "-v", "error", *src, "-c:v", "ffv1", "-pix_fmt", "yuv420p10le", deep], check=True)
    decoded = subprocess.run([ff, "-v", "error", "-i", mp4, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                             capture_output=True, check=True).stdout  # the decoder's own planes
    planes = [f.groups for f in video_source(mp4).frames]
    assert [g.shape for g in planes[0]] == [(24, 40, 1), (12, 20, 1), (12, 20, 1)]
    assert b"".join(g.tobytes() for fr in planes for g in fr) == decoded and len(planes) == 3
    with pytest.raises(UnsupportedInputError, match="Audio"):
        video_source(av)
    with pytest.raises(UnsupportedInputError, match="yuv420p10le"):
        video_source(deep)
    r = cli("compress", av)
    assert r.returncode == 5 and b"--video-only" in r.stderr and not (tmp_path / "av.mp4.arm").exists()
    assert cli("compress", av, "--video-only").returncode == 0
    for f in (mp4, rgb):
        r = cli("compress", f)
        assert r.returncode == 0, r.stderr.decode()
    r = cli("compress", deep)
    assert r.returncode != 0 and b"yuv420p10le" in r.stderr and not (tmp_path / "deep.mkv.arm").exists()

    from armcodec.video import read_info

    info = read_info(open(tmp_path / "m.mp4.arm", "rb"))
    assert (info["rate"], info["source_codec"], info["frames"]) == ("5", "h264", 3)
    assert info["pixel_format"] == "yuv420p (Y4M C420mpeg2)"  # x264's chroma siting (left), kept
    r = cli("decompress", tmp_path / "m.mp4.arm")  # -> m.mkv (FFV1 in the same planes), checked by decoding it again
    assert r.returncode == 0, r.stderr.decode()
    assert [[g.tobytes() for g in f.groups] for f in video_source(tmp_path / "m.mkv").frames] == \
        [[g.tobytes() for g in fr] for fr in planes]
    assert cli("decompress", tmp_path / "m.mp4.arm", "-o", tmp_path / "m.y4m").returncode == 0
    back = list(Y4MReader(open(tmp_path / "m.y4m", "rb")))
    assert b"".join(q.tobytes() for f in back for q in f.planes) == decoded
    r = cli("decompress", tmp_path / "m.mp4.arm", "-o", str(tmp_path / "png") + "/")
    assert r.returncode != 0 and b"Y4M planes" in r.stderr

    frames = [f.groups[0] for f in video_source(rgb).frames]
    assert len(frames) == 3 and frames[0].shape == (24, 40, 3)
    r = cli("decompress", tmp_path / "rgb.mkv.arm", "-o", str(tmp_path / "png") + "/")
    assert r.returncode == 0, r.stderr.decode()
    got = [np.asarray(Image.open(tmp_path / "png" / f"frame_{k:06d}.png")) for k in range(3)]
    assert all((a == b).all() for a, b in zip(got, frames))


def test_unchanged_tiles_are_copied_not_coded(vcodec):
    """A tile equal to the previous frame's samples there is copied (a bit in the record's copy
    map, no stream); the others are coded; the frames come back exactly, and a copy map that marks
    a stream with bytes, or a tile of a key frame, is refused."""
    f0 = moving_frames(1, 40, 44)[0]
    f1 = f0.copy()
    f1[20:, 32:] ^= 1  # the last column of tiles below row 20 (16x16 tiles) of the luma plane changes; the chroma planes do not
    clip = y4m_bytes([f0, f1, f1])
    data = encode_bytes(vcodec, clip)
    assert decode_bytes(vcodec, data) == clip
    f = io.BytesIO(data)
    header = vcodec.open(f)
    recs = [cv.read_record(f, header, header.size)]
    recs.append(cv.read_record(f, header, header.size + recs[0].size))
    recs.append(cv.read_record(f, header, header.size + recs[0].size + recs[1].size))
    assert recs[0].copied == () and recs[0].key
    luma = 3 * 3  # 40x44 in 16x16 tiles
    assert [k for k, c in enumerate(recs[1].copied) if not c and k < luma] == [5, 8]  # rows 16.. and columns 32..
    assert all(recs[1].copied[luma:]) and all(recs[2].copied)  # a repeated frame: nothing coded
    assert recs[2].size < len(recs[2].streams) + 32 and all(len(recs[1].streams[k]) == 0 for k, c in enumerate(recs[1].copied) if c)
    # a copy map marking a stream with bytes (luma tile 5 of frame 1), then a key frame's streams
    bad = cv.FrameRecord(recs[1].temporal, 1, b"", recs[1].streams, [], recs[1].motion, recs[1].frame_crc,
                         tuple(k in (5,) or c for k, c in enumerate(recs[1].copied)))
    with pytest.raises(ValueError):
        cv.write_record(bad)
    key = cv.FrameRecord((False,) * 3, 0, b"", [b""] * len(recs[0].streams), [], b"", recs[0].frame_crc,
                         (True,) * len(recs[0].streams))
    raw = cv.write_record(key)
    with pytest.raises(FormatError, match="copy map"):
        cv.read_record(io.BytesIO(raw), header, 0)


def test_copied_blocks_are_not_coded(temporal_dir):
    """Blocks of a tile equal to the previous frame there are copied (the record's block map) and
    not coded: the frames come back exactly, the map is the equal blocks, the file is smaller than
    without block maps."""
    from armcodec.video import equal_blocks

    f0 = moving_frames(1, 40, 44)[0]
    f1 = f0.copy()
    f1[5:9, 3:7] ^= 1  # inside the first 16x16 luma tile
    f1[33:, 40:] ^= 1  # the bottom right tile's corner
    clip = y4m_bytes([f0, f1, f1])
    # the temporal model's maps (the previous-frame predictor codes equal samples for almost nothing)
    codec = VideoCodec("tiny-temporal", "cpu", key_interval=3, weights_dir=temporal_dir, motion=False, predictor=False,
                       classic_groups=False)
    data = encode_bytes(codec, clip)
    assert decode_bytes(codec, data) == clip and decode_bytes(codec, data, seekable=False) == clip
    f = io.BytesIO(data)
    header = codec.open(f)
    r0 = cv.read_record(f, header, header.size)
    r1 = cv.read_record(f, header, header.size + r0.size)
    assert r0.blocks == () and r1.blocks and r1.temporal == (True,) * 3
    y0, y1 = [next(iter(y4m_source(io.BytesIO(y4m_bytes([fr]))).frames)).groups[0] for fr in (f0, f1)]
    for k, (ty, tx) in ((0, (0, 0)), (8, (32, 32))):
        want = equal_blocks(y1[ty : ty + 16, tx : tx + 16], y0[ty : ty + 16, tx : tx + 16], r1.block_log2)
        assert not r1.copied[k] and np.array_equal(r1.blocks[k], want) and want.any() and not want.all()
    assert all(r1.copied[k] for k in range(1, 8))  # unchanged luma tiles are copied whole
    plain = VideoCodec("tiny-temporal", "cpu", key_interval=3, weights_dir=temporal_dir, motion=False, copy_blocks=False,
                       predictor=False, classic_groups=False)
    without = encode_bytes(plain, clip)
    assert len(data) < len(without)
    assert decode_bytes(codec, without) == clip  # the same decoder reads both


def test_block_maps_are_validated():
    """The block map section round-trips for every block size, stored or deflated, and damaged
    or misplaced maps are refused."""

    header = cv.VideoHeader("y4m", 44, 40, [(44, 40, 1), (22, 20, 1), (22, 20, 1)], 3, 16, "x", bytes(16))
    shapes = header.tile_shapes()
    assert len(shapes) == header.n_streams() == 9 + 4 + 4 and shapes[8] == (8, 12)
    rng = np.random.default_rng(0)
    for log2 in (2, 3, 4, 5):
        for density in (0.1, 0.9):
            maps = []
            for k, (h, w) in enumerate(shapes):
                m = rng.random(cv.block_map_shape(h, w, log2)) < density
                m.flat[0] = True  # at least one copied block
                maps.append(m if k % 3 else None)
            data = cv.write_block_maps(maps, log2)
            got, got_log2 = cv.read_block_maps(data[0], _section_payload(data), header, (True,) * 3, (), 7)
            assert got_log2 == log2 and all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(got, maps))
    maps = [None] * len(shapes)
    maps[3] = np.array([[False, True], [True, True]])  # a 16x16 tile in 8x8 blocks
    good = cv.write_block_maps(maps, 3)
    code, payload = good[0], _section_payload(good)
    assert code == 3  # stored (deflate does not pay for 6 bytes)
    bad_cases = [
        (3 | 2 << 4, payload),  # an unknown method
        (6, payload),  # 64x64 blocks
        (1, payload),  # 2x2 blocks
        (2, payload),  # 4x4 blocks: the runs do not cover the tile's 16
        (3, payload + b"\0"),  # bytes left over
        (3, payload[:-1]),  # truncated
        (3, payload[:2] + bytes([payload[2] | 1 << 7]) + payload[3:]),  # a map flag past the last stream
        (3, payload[:-3] + bytes([3, 1, 0, 3])),  # a zero run after the first
        (3, payload[:-1] + bytes([2])),  # runs that do not sum to the blocks
        (3 | 1 << 4, payload),  # "deflated" bytes that are not deflate
    ]
    for code2, p in bad_cases:
        with pytest.raises(FormatError):
            cv.read_block_maps(code2, p, header, (True,) * 3, (), 7)
    with pytest.raises(FormatError, match="previous frame"):  # a key frame's tile
        cv.read_block_maps(code, payload, header, (False, True, True), (), 7)
    with pytest.raises(FormatError, match="copied one"):  # a copied tile
        cv.read_block_maps(code, payload, header, (True,) * 3, tuple(k == 3 for k in range(len(shapes))), 7)
    with pytest.raises(ValueError):
        cv.write_block_maps(maps, 6)


def _section_payload(section: bytes) -> bytes:
    """The L bytes of a block map section (after its u8 and varint L)."""
    r = cv._Reader(section, 1, len(section))
    n = r.varint()
    assert r.end - r.pos == n
    return section[r.pos :]


def test_motion_vectors_are_found_sent_and_applied(temporal_dir):
    """A scene moved by (3, -5): the block search finds the move, the decoder moves the previous
    frame by what was sent, and the frame costs less than with the previous frame unmoved."""
    from armcodec.coding import motion
    from armcodec.encoder.motion import search

    rng = np.random.default_rng(5)
    scene = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    prev, cur = scene[10:42, 10:58, None], scene[13:45, 5:53, None]
    field = search(cur, prev)
    assert (field[:-1, 1:] == (3, -5)).all()  # every block that stays inside the previous frame
    moved = motion.compensate(prev, field)
    assert (moved[:16, 16:32] == cur[:16, 16:32]).all()
    data = motion.pack([field])
    assert (motion.unpack(data, [field.shape[:2]])[0][0] == field).all()
    with pytest.raises(FormatError):
        motion.unpack(data[:-1], [field.shape[:2]])
    with pytest.raises(FormatError):
        motion.unpack(motion.pack([field * 0 + 40]), [field.shape[:2]])  # beyond MAX_VECTOR
    clip = y4m_bytes([prev[:, :, 0], cur[:, :, 0]])
    sizes = [len(encode_bytes(VideoCodec("tiny-temporal", "cpu", weights_dir=temporal_dir, motion=m), clip)) for m in (True, False)]
    assert sizes[0] < sizes[1]
    codec = VideoCodec("tiny-temporal", "cpu", weights_dir=temporal_dir)
    assert decode_bytes(codec, encode_bytes(codec, clip)) == clip


def _direct_refine(cur, prev, vectors, block, unit, sharp):
    """The refinement as a direct evaluation: every candidate vector's frame moved by the decoder's
    compensate, its blocks' SADs, the least kept in the kernels' order (strictly below)."""
    from armcodec.coding import motion
    from armcodec.encoder.motion import block_sad

    phases = motion.sixtap_phases(prev) if sharp else None
    base = vectors * unit
    best, out = np.full(base.shape[:2], np.inf), base.copy()
    reach = 3 * unit // 4
    for qy in range(-reach, reach + 1):
        for qx in range(-reach, reach + 1):
            cand = np.clip(base + np.array([qy, qx]), -motion.MAX_VECTOR * unit, motion.MAX_VECTOR * unit)
            moved = motion.compensate(prev, cand, block, unit, sharp, phases).astype(np.int64)
            sad = block_sad(cur.astype(np.int64), moved, block) + (0.5 * block * block / unit if qy or qx else 0.0)
            better = sad < best
            best[better], out[better] = sad[better], cand[better]
    return out


def test_the_compiled_refinement_picks_the_vectors_of_a_direct_evaluation():
    """The refinement kernel (encoder-only) moves samples as the decoder's compensate does: on
    smooth random frames of 1-3 channels and sizes that are not multiples of the block, it picks
    what evaluating every candidate with compensate picks, for H.264's and the blend's quarter
    pixels and for half pixels."""
    from armcodec.encoder.motion import refine, search

    rng = np.random.default_rng(11)
    for _ in range(4):
        h, w, ch = (int(v) for v in (rng.integers(20, 60), rng.integers(20, 60), rng.integers(1, 4)))
        prev = np.clip(np.cumsum(rng.integers(-12, 13, (h, w, ch)), 1) + 128, 0, 255).astype(np.uint8)
        cur = np.clip(np.roll(prev, (3, -5), (0, 1)).astype(int) + rng.integers(-2, 3, prev.shape), 0, 255).astype(np.uint8)
        field = search(cur, prev, 8)
        for unit, sharp in ((4, True), (4, False), (2, False)):
            assert (refine(cur, prev, field, 8, unit, sharp) == _direct_refine(cur, prev, field, 8, unit, sharp)).all()


def test_a_shaking_camera_moves_every_block_together():
    """A smooth scene panned by (-11, 14) pixels (a shaking camera; 0.15's search, which charged
    every pixel of a vector's length, kept such blocks at zero): every block inside the frame gets
    the pan, the frame moved by it matches exactly there, and a 4:4:4 frame's three planes share one field."""
    from armcodec.coding import motion
    from armcodec.encoder.motion import search

    rng = np.random.default_rng(3)
    scene = np.clip(np.cumsum(np.cumsum(rng.integers(-2, 3, (100, 130)), 0), 1) // 4 + 128, 0, 255).astype(np.uint8)
    prev, cur = scene[20:84, 20:100, None], scene[9:73, 34:114, None]
    field = search(cur, prev)
    assert (field[1:, :-1] == (-11, 14)).all()
    moved = motion.compensate(prev, field)
    assert (moved[16:, :64] == cur[16:, :64]).all()
    from armcodec.video import _same_size

    assert _same_size([np.zeros((8, 8, 1))] * 3) == [[0, 1, 2]]
    assert _same_size([np.zeros((8, 8, 1)), np.zeros((4, 4, 1)), np.zeros((4, 4, 1))]) == [[0], [1, 2]]


def test_long_vectors_follow_a_shake_beyond_16_pixels(temporal_dir):
    """Coder tool 9 (0.17): a scene textured at two scales (8x8 patches and noise) moved by (27, -38)
    pixels, beyond the 16 pixels of the files before it.  The search on frames shrunk by 4 finds the
    move for the blocks that stay inside the previous frame (the 16-pixel search cannot), the field
    travels as median differences
    and comes back equal, and the clip costs less than without the tool and decodes exactly (also
    when the file is read with the tool's flag, as every reader does: the header says it)."""
    from armcodec.coding import motion
    from armcodec.encoder.motion import search

    rng = np.random.default_rng(0)
    patches = np.kron(rng.integers(0, 200, (22, 26)), np.ones((8, 8), int))[:170, :200]
    scene = (patches + rng.integers(0, 56, (170, 200))).astype(np.uint8)
    prev, cur = scene[40:136, 50:178, None], scene[67:163, 12:140, None]
    inside = (slice(0, 4), slice(3, 8))  # the blocks whose moved place is inside the previous frame
    field = search(cur, prev, reach=motion.MAX_LONG_VECTOR)
    found = (field[inside] == (27, -38)).all(2)
    assert found.mean() >= 0.9  # (the first block of a row may keep a cheaper vector near its neighbours')
    assert (np.abs(search(cur, prev)) <= motion.MAX_VECTOR).all()
    moved = motion.compensate(prev, field)
    for y, x in zip(*np.nonzero(found)):
        block = (slice(16 * y, 16 * y + 16), slice(48 + 16 * x, 64 + 16 * x))
        assert (moved[block] == cur[block]).all()
    quarter = field * motion.QUARTER
    for sharp in (None, [True]):
        data = motion.pack([quarter], sharp, long=True)
        got, flags = motion.unpack(data, [field.shape[:2]], [motion.QUARTER], sharp=sharp is not None, long=True)
        assert (got[0] == quarter).all() and flags == [sharp is not None]
    clip = y4m_bytes([prev[:, :, 0], cur[:, :, 0]])
    sizes = [len(encode_bytes(VideoCodec("tiny-temporal", "cpu", weights_dir=temporal_dir, long_motion=m), clip))
             for m in (True, False)]
    assert sizes[0] < 0.9 * sizes[1]
    codec = VideoCodec("tiny-temporal", "cpu", weights_dir=temporal_dir)
    data = encode_bytes(codec, clip)
    assert cv.read_header(io.BytesIO(data)).tools.long_motion
    assert decode_bytes(codec, data) == clip


def test_long_vectors_are_checked_as_they_are_rebuilt():
    """Tool 9's field: each vector is its neighbours' median plus the difference sent; a vector
    beyond 64 pixels (in its units), a damaged or short field is refused."""
    from armcodec.coding import motion

    shapes = [(2, 3), (1, 2)]
    ok = [np.array([[[256, -256], [255, 0], [-3, 7]], [[0, 0], [256, 256], [1, -1]]]), np.array([[[64, -64], [-5, 2]]])]
    data = motion.pack(ok, long=True)
    got, _ = motion.unpack(data, shapes, [motion.QUARTER, 1], long=True)
    assert all((a == b).all() for a, b in zip(got, ok))
    # block (1, 2): the median of left (256, 256), above (-3, 7) and above right (outside: (0, 0))
    assert (motion.median_differences(ok[0])[1, 2] == (1 - 0, -1 - 7)).all()
    with pytest.raises(FormatError, match="longer than 64"):
        motion.unpack(data, shapes, [1, 1], long=True)  # 256 whole pixels
    with pytest.raises(FormatError, match="fit"):
        motion.unpack(data, shapes, [motion.QUARTER, 1])  # read as tool 9 was not there: the wrong size
    with pytest.raises(FormatError):
        motion.unpack(data[:-2], shapes, [motion.QUARTER, 1], long=True)
    # differences that each fit 16 bits but walk a vector out of range
    z = np.full(2 * 8, 2 * 200, "<u2")  # +200 every time
    raw = z.view(np.uint8)[0::2].tobytes() + z.view(np.uint8)[1::2].tobytes()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    with pytest.raises(FormatError, match="longer than 64"):
        motion.unpack(c.compress(raw) + c.flush(), shapes, [motion.QUARTER] * 2, long=True)
