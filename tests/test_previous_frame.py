"""The video previous-frame predictor (armcodec.models.previous_frame_exact): its integers agree between
the encoder's pass and the decoder's steps, the quarter-pixel motion compensation is the stated
integer blend, the predictor's mixture with the model agrees between directions, the record's
mixture indices are written, used and validated, and clips round-trip."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch

from armcodec import container_video as cv
from armcodec.coding import motion
from armcodec.coding.planes import GroupJob, decode_groups
from armcodec.coding.scan import Schedule, tile_grid
from armcodec.container import CoderTools
from armcodec.encoder.group import encode_group
from armcodec.errors import FormatError
from armcodec.exact.tables import TableLUTs
from armcodec.encoder.mixture import choose
from armcodec.models.previous_frame_exact import (N_MIX, NEIGHBOUR_MAX, PredictorMixture, PreviousFramePredictor, ilog,
                                                  mix_offset, uses_neighbours)
from armcodec.container_video import MIX_CODES
from armcodec.training.export import export_net
from armcodec.video import VideoCodec
from conftest import TINY_TEMPORAL, make_tiny_temporal, subpixel_frames, y4m_bytes

CPU = torch.device("cpu")


def test_ilog_is_sixteen_log2_in_integers():
    n = np.arange(0, 1 << 17)
    m = n + 1
    e = np.array([int(v).bit_length() - 1 for v in m])
    assert np.array_equal(ilog(n), 16 * e + (16 * (m - (1 << e)) >> e))
    assert ilog(np.array([0, 1, 3, 7, 1020]))[:4].tolist() == [0, 16, 32, 48]


def test_quarter_pixel_compensation_is_the_integer_blend():
    rng = np.random.default_rng(0)
    prev = rng.integers(0, 256, (20, 24, 1), dtype=np.uint8)
    v = rng.integers(-3, 4, (2, 2, 2))
    # whole pixels in quarter units move exactly as the integer vectors do
    assert np.array_equal(motion.compensate(prev, v * 4, unit=motion.QUARTER), motion.compensate(prev, v))
    half = motion.compensate(prev, np.tile([0, 2], (2, 2, 1)), unit=motion.QUARTER)  # half a pixel right
    p = prev[:, :, 0].astype(int)
    want = (p + np.concatenate([p[:, 1:], p[:, -1:]], 1) + 1) // 2  # the last column repeats
    assert np.array_equal(half[:, :, 0], want)



def h264_sample(p: np.ndarray, y: int, x: int, fy: int, fx: int) -> int:
    """One sample by H.264's luma interpolation (ITU-T H.264 8.4.2.2.1), written out by its
    letters: the frame's edge samples repeat."""
    h, w = p.shape
    at = lambda yy, xx: int(p[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)])  # noqa: E731
    tap = (1, -5, 20, 20, -5, 1)
    clip = lambda v: min(max(v, 0), 255)  # noqa: E731
    b1 = lambda yy, xx: sum(t * at(yy, xx - 2 + k) for k, t in enumerate(tap))  # noqa: E731  half right of (yy, xx)
    h1 = lambda yy, xx: sum(t * at(yy - 2 + k, xx) for k, t in enumerate(tap))  # noqa: E731  half below
    b = lambda yy, xx: clip((b1(yy, xx) + 16) >> 5)  # noqa: E731
    hh = lambda yy, xx: clip((h1(yy, xx) + 16) >> 5)  # noqa: E731
    j = lambda yy, xx: clip((sum(t * b1(yy - 2 + k, xx) for k, t in enumerate(tap)) + 512) >> 10)  # noqa: E731
    G = at(y, x)
    table = {(0, 0): G, (0, 2): b(y, x), (2, 0): hh(y, x), (2, 2): j(y, x),
             (0, 1): (G + b(y, x) + 1) >> 1, (0, 3): (b(y, x) + at(y, x + 1) + 1) >> 1,
             (1, 0): (G + hh(y, x) + 1) >> 1, (3, 0): (hh(y, x) + at(y + 1, x) + 1) >> 1,
             (2, 1): (hh(y, x) + j(y, x) + 1) >> 1, (2, 3): (j(y, x) + hh(y, x + 1) + 1) >> 1,
             (1, 2): (b(y, x) + j(y, x) + 1) >> 1, (3, 2): (j(y, x) + b(y + 1, x) + 1) >> 1,
             (1, 1): (b(y, x) + hh(y, x) + 1) >> 1, (1, 3): (b(y, x) + hh(y, x + 1) + 1) >> 1,
             (3, 1): (hh(y, x) + b(y + 1, x) + 1) >> 1, (3, 3): (hh(y, x + 1) + b(y + 1, x) + 1) >> 1}
    return table[fy, fx]


def test_sharp_quarter_pixels_are_h264s_interpolation():
    """Coder tool 6 (0.14): random vectors up to the longest, then each of the 16 quarter phases
    in turn, near and beyond the frame's edges too, against the standard's formulas sample by
    sample; whole pixels move as the integer vectors."""
    rng = np.random.default_rng(3)
    prev = rng.integers(0, 256, (21, 26, 1), dtype=np.uint8)
    v = rng.integers(-4 * motion.MAX_VECTOR, 4 * motion.MAX_VECTOR + 1, (2, 2, 2))
    v[0, 0] = (-4 * motion.MAX_VECTOR, 4 * motion.MAX_VECTOR)  # the longest vectors, off the frame
    moved = motion.compensate(prev, v, unit=motion.QUARTER, sharp=True)
    for y, x in [(y, x) for y in range(21) for x in range(26)][::3]:
        dy, dx = v[y // 16, x // 16]
        want = h264_sample(prev[:, :, 0], y + (dy >> 2), x + (dx >> 2), dy & 3, dx & 3)
        assert moved[y, x, 0] == want, (y, x, dy, dx)
    for q in range(16):  # every quarter phase, each with a whole-pixel part that reaches past the edges
        v = np.tile([4 * 3 + q // 4, -4 * 2 + q % 4], (2, 2, 1))
        moved = motion.compensate(prev, v, unit=motion.QUARTER, sharp=True)
        for y, x in [(y, x) for y in range(21) for x in range(26)][q % 5 :: 5]:
            assert moved[y, x, 0] == h264_sample(prev[:, :, 0], y + 3, x - 2, q // 4, q % 4), (q, y, x)
    w = rng.integers(-3, 4, (2, 2, 2))
    assert np.array_equal(motion.compensate(prev, w * 4, unit=motion.QUARTER, sharp=True), motion.compensate(prev, w))
    phases = motion.sixtap_phases(prev)
    assert np.array_equal(motion.compensate(prev, v, unit=motion.QUARTER, sharp=True, phases=phases),
                          motion.compensate(prev, v, unit=motion.QUARTER, sharp=True))


def both_directions(model, ctx: np.ndarray, cur: np.ndarray, **extra):
    """``model``'s head integers over a grey plane (or an R, G, B group) in 16x16 tiles (the last
    ones cut at the frame's edges), the encoder's pass against the decoder's steps (which see the
    samples step by step) -> (the encoder's integers in schedule order, rows, columns), once they
    agree at every step."""
    tiles = tile_grid(*cur.shape[:2], 16)
    sched = Schedule(tiles, model, 16)
    ys = np.array([tiles[n].y for n in sched.n]) + sched.i
    xs = np.array([tiles[n].x for n in sched.n]) + sched.j
    values = torch.from_numpy(cur[ys, xs].astype(np.int64))
    enc = model.encoder_pass(tiles, sched, 16, CPU, values, context=(ctx, ys, xs), **extra)
    dec = model.decoder_steps(tiles, sched, 16, CPU, cur.shape[2], context=([ctx], ys, xs, np.zeros(len(ys), np.int64)),
                              **extra)
    for t in range(sched.n_steps):
        a, b = int(sched.starts[t]), int(sched.starts[t + 1])
        assert torch.equal(dec(a, b), enc(a, b)), t
        dec.observe(a, b, values[a:b])
    return enc(0, len(ys)), ys, xs, sched


def test_encoder_pass_and_decoder_steps_give_the_same_integers():
    rng = np.random.default_rng(1)
    ctx = rng.integers(0, 256, (37, 45, 1), dtype=np.uint8)
    cur = np.clip(ctx.astype(int) + rng.integers(-9, 10, ctx.shape), 0, 255).astype(np.uint8)
    p, ys, xs, _ = both_directions(PreviousFramePredictor(TINY_TEMPORAL), ctx, cur)
    # the mean is the previous sample and the scale follows the coded neighbours' residuals
    k, c = TINY_TEMPORAL.mixtures, TINY_TEMPORAL.image_channels
    assert torch.equal(p[:, c * k], torch.from_numpy((ctx[ys, xs, 0].astype(np.int64) - 128) * 16))
    assert len(set(p[:, 2 * c * k].tolist())) > 3


def off_centre_temporal():
    """The tiny temporal model with its components' means a few levels off the previous sample
    (conftest's are exactly on it): the model and the predictor then miss by different amounts."""
    m = make_tiny_temporal()
    k, c = TINY_TEMPORAL.mixtures, TINY_TEMPORAL.image_channels
    with torch.no_grad():
        m.head_out.bias[k * c : 2 * k * c] = torch.linspace(-0.03, 0.03, k * c)
    return export_net(m)


@pytest.mark.parametrize("top", [N_MIX, MIX_CODES])
def test_the_mixture_agrees_between_directions(top):
    """The mixture's integers: the encoder's pass (indices given) and the decoder's steps agree
    at every step, and its first K components are the model's, the last the predictor's; with
    the neighbour term (indices from N_MIX, 0.14) on some tiles, their predictor logits move with
    the gaps of the coded neighbours, the others' do not."""
    net = off_centre_temporal()
    prev, cur = (f[:, :, None] for f in subpixel_frames(2, 37, 45))
    mix = np.random.default_rng(2).integers(0, top, len(tile_grid(37, 45, 16)))
    if top > N_MIX:
        mix[:2] = (3, N_MIX + 3)  # both kinds present
    p, ys, xs, sched = both_directions(PredictorMixture(net), prev, cur, mix=mix)
    k = net.cfg.mixtures
    moved = p[:, k] - p[:, :k].amax(1) - torch.from_numpy(mix_offset(mix)[sched.n])
    near = torch.from_numpy(uses_neighbours(mix)[sched.n])
    assert not moved[~near].any() and (top == N_MIX or moved[near].abs().sum() > 0)
    assert moved.abs().max() <= NEIGHBOUR_MAX
    assert torch.equal(p[:, 3 * (k + 1) + k], torch.from_numpy((prev[ys, xs, 0].astype(np.int64) - 128) * 16))


def test_the_colour_mixture_agrees_between_directions():
    """Coder tool 7 (0.15): R, G, B frames by the mixture.  Both directions agree at every step;
    each channel has the predictor as its last component, R's mean the moved previous sample, G's
    and B's relative to the residual of the channel before (coupling 1), the model's couplings
    kept; and the neighbour term is each channel's own."""
    net = off_centre_temporal()
    prev, cur = (np.stack([f, np.roll(f, 1, 1) // 2 + 60, 255 - f], 2) for f in subpixel_frames(2, 37, 45))
    mix = np.random.default_rng(3).integers(0, MIX_CODES, len(tile_grid(37, 45, 16)))
    mix[:2] = (5, N_MIX + 12)
    p, ys, xs, sched = both_directions(PredictorMixture(net), prev, cur, mix=mix)
    k, k2, c = net.cfg.mixtures, net.cfg.mixtures + 1, 3
    c_prev = prev[ys, xs].astype(np.int64)
    assert torch.equal(p[:, c * k2 + k], torch.from_numpy((c_prev[:, 0] - 128) * 16))
    for ch in (1, 2):
        assert torch.equal(p[:, (c + ch) * k2 + k], torch.from_numpy((c_prev[:, ch] - c_prev[:, ch - 1]) * 16))
    # pairs (1, 0), (2, 0), (2, 1): the predictor coupled to the channel before only
    assert p[:, 3 * c * k2 + k].eq(net.cfg.coef_steps).all() and p[:, 3 * c * k2 + 2 * k2 + k].eq(net.cfg.coef_steps).all()
    assert not p[:, 3 * c * k2 + k2 + k].any()
    terms = [p[:, ch * k2 + k] - p[:, ch * k2 : ch * k2 + k].amax(1) for ch in range(c)]
    assert not torch.equal(terms[0], terms[1]) and not torch.equal(terms[1], terms[2])


def test_the_neighbour_term_follows_the_gaps():
    """The neighbour term by its definition, sample by sample: the ten coded neighbours' gaps
    (ilog of the model's miss minus ilog of the predictor's, 0 outside the tile) >> 3, clamped."""
    from armcodec.models.previous_frame_exact import Predictions, PreviousFramePredictor, likeliest_mean
    from armcodec.coding.planes import image_coords

    net = off_centre_temporal()
    prev, cur = (f[:, :, None] for f in subpixel_frames(2, 37, 45))
    tiles = tile_grid(37, 45, 16)
    sched = Schedule(tiles, net, 16)
    ys, xs = image_coords(tiles, sched, None)
    values = torch.from_numpy(cur[ys, xs].astype(np.int64))
    model = net.encoder_pass(tiles, sched, 16, CPU, values, context=(prev, ys, xs)).params.long()
    pred = Predictions(PreviousFramePredictor(net.cfg), tiles, sched, 16, CPU, (prev, ys, xs))
    pred.observe(0, len(ys), values)
    m = likeliest_mean(model, net.cfg, values)
    pred.observe_gaps(0, len(ys), m)
    m, term = m[:, 0], pred.neighbour_term(0, len(ys))[:, 0]
    x = values[:, 0].numpy()
    gap = {(n, y, xx): int(ilog(min(abs(16 * (v - 128) - mm) >> 4, 1020)) - ilog(abs(v - int(c))))
           for n, y, xx, v, mm, c in zip(sched.n, ys, xs, x, m, prev[ys, xs, 0])}
    for r in np.random.default_rng(0).choice(len(ys), 300, replace=False):
        near = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, -2), (-1, 2), (-2, -1), (-2, 1))
        total = sum(gap.get((sched.n[r], ys[r] + di, xs[r] + dj), 0) for di, dj in near if dj + net.cfg.slope * di < 0)
        assert term[r] == np.clip(total >> 3, -NEIGHBOUR_MAX, NEIGHBOUR_MAX)
    assert (term != 0).mean() > 0.5


@pytest.mark.parametrize("tools,channels", [(CoderTools(True), 1), (CoderTools(True, feedback=3, binned=True), 1),
                                            (CoderTools(True, feedback=3, binned=True, colour_mixture=True), 3)])
def test_groups_round_trip_with_the_mixture(tools, channels):
    """A plane (or an R, G, B group) coded by the mixture (the encoder picking each tile's index)
    decodes exactly with those indices and costs what the mixture says."""
    net = export_net(make_tiny_temporal())
    luts = TableLUTs.compute().to("cpu")
    prev, cur = (np.stack([f, np.roll(f, 2, 0), f // 2 + 40][:channels], 2) for f in subpixel_frames(2, 40, 50))
    mixture = PredictorMixture(net, lambda *a: choose(*a, cfg=net.cfg, luts=luts))
    g = encode_group(cur, mixture, luts, 16, CPU, tools, context=prev)
    mix = [mixture.choices[(t.y, t.x)] for t in tile_grid(40, 50, 16)]
    from dataclasses import replace

    g = replace(g, mix=mix)
    (out, bits), = decode_groups([GroupJob(g, *cur.shape, 0, prev)], net, luts, 16, CPU, tools)
    assert np.array_equal(out, cur) and bits == pytest.approx(g.model_bits, rel=1e-9)
    assert sum(map(len, g.streams)) * 8 <= g.model_bits * 1.005 + 64 * len(g.streams)


def encode_clip(codec: VideoCodec, data: bytes) -> bytes:
    from armcodec.io.frames import y4m_source

    out = io.BytesIO()
    codec.encode(y4m_source(io.BytesIO(data)), out)
    return out.getvalue()


def records(codec: VideoCodec, data: bytes):
    """The file's header and frame records."""
    from test_golden import video_records

    return codec.open(io.BytesIO(data)), video_records(data, codec)


def test_clip_round_trips_and_the_predictor_pays(temporal_dir):
    """A noisy clip panning by fractions of a pixel: the encoder codes its planes by the mixture
    with the predictor (quarter-pixel vectors, the tiles' mixture indices in the record), the
    decoder gives the frames back exactly, from the start and from a middle frame, and the file is
    smaller than without the predictor."""
    clip = y4m_bytes(subpixel_frames(4, 38, 52))
    codec = VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir, classic_groups=False)
    data = encode_clip(codec, clip)
    header, recs = records(codec, data)
    assert all(r.quarter and r.mix for r in recs[1:]) and len({v for r in recs for v in r.mix}) > 1
    from test_video import decode_bytes

    assert decode_bytes(codec, data) == clip
    assert decode_bytes(codec, data, frames=slice(2, 4)) == y4m_bytes(subpixel_frames(4, 38, 52)[2:])
    without = encode_clip(VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir, predictor=False, classic_groups=False), clip)
    assert len(data) < len(without)


def rgb_clip(folder, n: int = 4):
    """PNG frames of an R, G, B scene panning by fractions of a pixel (the channels alike)."""
    from PIL import Image

    folder.mkdir()
    frames = [np.stack([f, np.roll(f, 1, 1) // 2 + 60, 255 - f], 2) for f in subpixel_frames(n, 38, 52)]
    for k, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{k}.png")
    return frames


def test_rgb_clip_round_trips_with_the_colour_mixture(temporal_dir, tmp_path):
    """Coder tool 7 (0.15): R, G, B frames are coded with the previous frame by the mixture (the
    tool in the header, a mixture index per tile stream), decode exactly from the start and from
    a middle frame, and are smaller than without the tool, whose files (0.14's) do not list it."""
    from armcodec.io.frames import frames_source

    frames = rgb_clip(tmp_path / "rgb")

    def encode(codec):
        out = io.BytesIO()
        codec.encode(frames_source([tmp_path / "rgb"]), out)
        return out.getvalue()

    codec = VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir, classic_groups=False)
    data = encode(codec)
    header, recs = records(codec, data)
    assert header.tools.colour_mixture and header.planes == [(52, 38, 3)]
    assert all(r.quarter and len(r.mix) == len(r.streams) - sum(r.copied) for r in recs[1:])
    for start in (0, 2):
        f = io.BytesIO(data)
        got = [fr.groups[0] for _, fr, _ in codec.decode(f, codec.open(f), slice(start, None), seekable=True)]
        assert len(got) == 4 - start and all(np.array_equal(a, b) for a, b in zip(got, frames[start:]))
    plain = VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir, colour=False, classic_groups=False)
    without = encode(plain)
    header, recs = records(plain, without)
    assert not header.tools.colour_mixture and not any(r.mix for r in recs)
    assert len(data) < len(without)
    # a file of grey planes does not list the tool (armcodec 0.14 reads it)
    assert not records(codec, encode_clip(codec, y4m_bytes(subpixel_frames(3, 38, 52))))[0].tools.colour_mixture


def with_mix(raw: bytes, at: int, old: bytes, new: bytes) -> bytes:
    """A record's bytes with the mixture indices ``old`` at ``at`` (of the record header) replaced
    by ``new`` (their varint length included), the header's length and CRC fixed."""
    (rlen,) = struct.unpack_from("<I", raw)
    assert raw[at : at + len(old)] == old
    body = raw[4:at] + new + raw[at + len(old) : 4 + rlen]
    head = struct.pack("<I", len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + raw[8 + rlen :]


def test_the_mixture_indices_are_validated(temporal_dir):
    clip = y4m_bytes(subpixel_frames(4, 38, 52))
    codec = VideoCodec("tiny-temporal", "cpu", key_interval=8, weights_dir=temporal_dir, copy_blocks=False, classic_groups=False)
    header, recs = records(codec, encode_clip(codec, clip))
    rec = recs[1]
    assert rec.quarter and not recs[0].quarter and len(rec.mix) == len(rec.streams) and not any(rec.copied)
    raw = cv.write_record(cv.FrameRecord(rec.temporal, rec.number, b"", rec.streams, rec.crcs, rec.motion,
                                         rec.frame_crc, quarter=True, mix=rec.mix))
    at = 4 + 1 + 1 + 1 + len(cv.varint(len(rec.motion))) + len(rec.motion)  # rlen, flags, number, extra, motion
    old = cv.varint(len(rec.mix)) + bytes(rec.mix)
    assert cv.read_record(io.BytesIO(raw), header, 0).mix == rec.mix
    n = len(rec.mix)
    for bad in (cv.varint(n - 1) + bytes(rec.mix[:-1]), cv.varint(n + 1) + bytes(rec.mix) + b"\x00",
                cv.varint(n) + bytes([MIX_CODES]) + bytes(rec.mix[1:])):  # too few, too many, out of range
        with pytest.raises(FormatError, match="mixture indices"):
            cv.read_record(io.BytesIO(with_mix(raw, at, old, bad)), header, 0)
    # a key frame's record: no group is coded with the previous frame, so no index
    key = cv.write_record(cv.FrameRecord((False,) * 3, 0, b"", rec.streams, [], b"", rec.frame_crc, quarter=True))
    assert cv.read_record(io.BytesIO(key), header, 0).mix == ()
    with pytest.raises(FormatError, match="mixture indices"):
        cv.read_record(io.BytesIO(with_mix(key, 8, b"\x00", b"\x01\x00")), header, 0)
    with pytest.raises(ValueError, match="predictor flag"):
        cv.write_record(cv.FrameRecord(rec.temporal, 1, b"", rec.streams, [], rec.motion, rec.frame_crc, mix=rec.mix))
    with pytest.raises(ValueError, match="mixture indices"):
        cv.write_record(cv.FrameRecord(rec.temporal, 1, b"", rec.streams, [], rec.motion, rec.frame_crc, quarter=True,
                                       mix=(MIX_CODES,) * n))


def test_vector_lengths_are_checked_per_unit():
    shapes = [(2, 2), (2, 2)]
    ok = [np.full((2, 2, 2), 16), np.full((2, 2, 2), 64)]
    data = motion.pack(ok)
    assert [f.max() for f in motion.unpack(data, shapes, [1, motion.QUARTER])[0]] == [16, 64]
    with pytest.raises(FormatError, match="longer"):
        motion.unpack(data, shapes)  # 64 whole pixels: too long
    with pytest.raises(FormatError, match="longer"):
        motion.unpack(motion.pack([np.full((2, 2, 2), 17), ok[1]]), shapes, [1, motion.QUARTER])


def test_the_interpolation_bytes_follow_each_groups_vectors():
    """Coder tool 6: each group's vectors then its interpolation byte (1: H.264's), validated."""
    shapes = [(2, 2), (1, 3)]
    fields = [np.full((2, 2, 2), 5), np.arange(6).reshape(1, 3, 2)]
    data = motion.pack(fields, [False, True])
    got, sharp = motion.unpack(data, shapes, [motion.QUARTER] * 2, sharp=True)
    assert sharp == [False, True] and all((a == b).all() for a, b in zip(got, fields))
    assert motion.unpack(b"", shapes, sharp=True)[1] == [False, False]
    with pytest.raises(FormatError, match="fit"):
        motion.unpack(data, shapes, [motion.QUARTER] * 2)  # read without the bytes: too long
    raw = zlib.decompress(data, -15)
    bad = zlib.compressobj(9, zlib.DEFLATED, -15)
    bad = bad.compress(raw[:-1] + b"\x02") + bad.flush()
    with pytest.raises(FormatError, match="interpolation"):
        motion.unpack(bad, shapes, [motion.QUARTER] * 2, sharp=True)
