"""Add golden files to tests/data/golden (only on purpose: when the .arm format gains something).
Files that exist are never rewritten: they are what earlier releases wrote, and must keep decoding.

armcodec 0.4 (the multi-scale family): ``pyramid/<stem>.<tools>.arm`` with the frozen tiny
polyphase pyramid ``golden-pyramid`` (its own weights directory, exported when missing).

Version 3 (armcodec 0.3, every PNG): ``v3-*.arm``, one per new layout (palette, 1-bit, 16-bit
bytes and levels, PNG chunks, classic palette/interlaced/16-bit, classic tiles); armcodec 0.12.10:
``v3-chunks-filtered.arm`` (a suggested palette stored as differences, metadata kind 9).

The frozen model golden-tiny is exported only when it is missing (it predates the linear
skip and must stay as it is, so that the old weights format keeps being exercised).  The
version-1 files (``<stem>.arm``, ``.p2``, ``.p4``, ``.p6``, ``.p8``, ``.p8-levels``, ``.p4-ls``) were
written by armcodec 0.1 and cannot be written any more.

armcodec 0.7: ``video/shipped-*.arm``, two golden video sources written by the shipped ``video``
preset (grey planes by its temporal-planes-s weights, RGBA frames by temporal-s); armcodec 0.8:
``video/shipped-0.8-clip420.y4m.arm`` (grey planes by temporal-planes-s2) and
``pyramid/shipped-pyramid-s*.arm`` (a photograph by the pyramid weights of 0.6-0.7 and 0.8);
armcodec 0.9: ``video/shipped-0.9-clip420.y4m.arm`` (grey planes by temporal-planes-s3); armcodec 0.10:
``pyramid/shipped-pyramid-s3.arm`` (the photograph by pyramid-s3); armcodec 0.11 (binned symbols,
coder tool 5): ``<stem>.v11-<tools>.arm``, ``pyramid/<stem>.binned.arm``,
``pyramid/shipped-0.11-pyramid-s3.arm``, ``video/clip420-binned.y4m.arm``,
``video/clip420-blocks-binned.y4m.arm`` and ``video/shipped-0.11-*.arm``; armcodec 0.12:
``pyramid/shipped-pyramid-s4.arm`` (the photograph by pyramid-s4); armcodec 0.12.11:
``video/shipped-0.12.11-clip420.y4m.arm`` (grey planes by temporal-planes-s4); armcodec 0.13 (the
previous-frame predictor): ``video/clip420-predictor.y4m.arm`` (a noisy clip panning by fractions of
a pixel, ``clip420-subpixel.y4m``) and ``video/shipped-0.13-*.arm``; armcodec 0.14:
``video/clip420-mobile.y4m.arm`` and ``video/shipped-0.14-*.arm``; armcodec 0.15:
``video/screen-frames.arm`` (R, G, B frames of a scrolling text window, ``screen-frames/``),
``video/rgb-subpixel.arm`` (R, G, B frames panning by fractions of a pixel, ``rgb-subpixel/``) and
``video/shipped-0.15-*.arm``; armcodec 0.16 (the encoder's block search): ``video/shipped-0.16-mobile.y4m.arm``;
armcodec 0.17 (long vectors, coder tool 9): ``video/clip420-shake.y4m.arm`` (96x64 crops of
mobile_calendar's first frame, each 20 rows down and 24 columns left of the one before,
``clip420-shake.y4m``) and ``video/shipped-0.17-*.arm``; armcodec 0.18:
``pyramid/shipped-pyramid-s5.arm`` (the photograph by pyramid-s5).

    python tests/make_golden.py
"""
from pathlib import Path

import numpy as np
from PIL import Image

import armcodec
from conftest import DATA, make_tiny_model, subpixel_frames
from armcodec.training.export import export_model
from test_golden import (PYRAMID, PYRAMID_TOOLS, SHIPPED_PYRAMID, SHIPPED_VIDEO, V2, V3, V11, VIDEO, classic_tiles_file, encode_video,
                         golden_video_sources,
                         pyramid_files, shipped_pyramid_codec, shipped_video_codec, video_codec)
from test_pyramid import make_tiny_pyramid

GOLDEN = DATA / "golden"
SOURCES = ["kodim05_rgb_37x29.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png", "usc_sipi_6.1_la_28x21.png"]


def shake_clip(path: Path) -> None:
    """A 4:2:0 clip of three 96x64 crops of mobile_calendar's first frame (../shared), each moved by
    (20, -24) luma samples from the one before: beyond the 16 pixels of the vectors before 0.17."""
    from armcodec.io.frames import y4m_source

    src = y4m_source(open(Path(__file__).resolve().parents[2] / "shared/data/video/y4m/mobile_calendar_cif_30f.y4m", "rb"))
    y, u, v = (g[:, :, 0] for g in next(iter(src.frames)).groups)
    out = [b"YUV4MPEG2 W96 H64 F30:1 Ip A1:1 C420jpeg\n"]
    for k in range(3):
        oy, ox = 100 + 20 * k, 200 - 24 * k
        out += [b"FRAME\n", y[oy : oy + 64, ox : ox + 96].tobytes(), u[oy // 2 : oy // 2 + 32, ox // 2 : ox // 2 + 48].tobytes(),
                v[oy // 2 : oy // 2 + 32, ox // 2 : ox // 2 + 48].tobytes()]
    path.write_bytes(b"".join(out))


def screen_frames(folder: Path) -> None:
    """Three 64x48 R, G, B frames of a text window scrolling 2 rows a frame under a title bar."""
    from PIL import ImageDraw

    folder.mkdir()
    page = Image.new("RGB", (60, 120), (255, 255, 255))
    d = ImageDraw.Draw(page)
    for k in range(12):
        d.text((2, 10 * k), ["open file", "save as", "edit view"][k % 3], fill=(20, 20, 20) if k % 4 else (30, 60, 160))
    for t in range(3):
        im = Image.new("RGB", (64, 48), (58, 110, 165))
        ImageDraw.Draw(im).rectangle((0, 0, 63, 9), fill=(45, 85, 150))
        im.paste(page.crop((0, 2 * t, 60, 2 * t + 36)), (2, 11))
        im.save(folder / f"screen{t}.png")

if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    if not (GOLDEN / "golden-tiny.safetensors").exists():
        export_model(make_tiny_model(), GOLDEN, "golden-tiny", tile_size=16)
    for name, (options, _) in V2.items():
        codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, **options)
        for src in SOURCES:
            out = GOLDEN / f"{Path(src).stem}.v2-{name}.arm"
            if not out.exists():
                out.write_bytes(codec.compress(DATA / src))
                print("wrote", out.name)
    for name, options in V11.items():  # armcodec 0.11: binned symbols
        codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, classic=False, **options)
        for src in SOURCES:
            out = GOLDEN / f"{Path(src).stem}.v11-{name}.arm"
            if not out.exists():
                out.write_bytes(codec.compress(DATA / src))
                print("wrote", out.name)
    for name, (src, options, _) in V3.items():  # armcodec 0.3: every PNG layout
        if not (GOLDEN / name).exists():
            codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, **options)
            (GOLDEN / name).write_bytes(codec.compress(DATA / src))
            print("wrote", name)
    if not (GOLDEN / "v3-classic-tiles.arm").exists():
        codec = armcodec.Codec("golden-tiny", device="cpu", weights_dir=GOLDEN, classic=False, binned=False)
        (GOLDEN / "v3-classic-tiles.arm").write_bytes(classic_tiles_file(codec))
        print("wrote v3-classic-tiles.arm")
    if not (PYRAMID / "golden-pyramid.safetensors").exists():
        export_model(make_tiny_pyramid(), PYRAMID, "golden-pyramid", tile_size=16)
    for stem, name in pyramid_files():
        out = PYRAMID / f"{stem}.{name}.arm"
        if not out.exists():
            codec = armcodec.Codec("golden-pyramid", device="cpu", weights_dir=PYRAMID, classic=False, **PYRAMID_TOOLS[name])
            out.write_bytes(codec.compress(DATA / f"{stem}.png"))
            print("wrote", out.name)
    for stem, name, weights, binned in SHIPPED_PYRAMID:  # the shipped pyramid weights' files (only the new ones are written)
        if not (PYRAMID / name).exists():
            (PYRAMID / name).write_bytes(shipped_pyramid_codec(weights, binned).compress(DATA / f"{stem}.png"))
            print("wrote", name)
    if not (VIDEO / "golden-temporal.safetensors").exists():  # armcodec 0.4: video files
        from conftest import make_tiny_temporal, moving_frames, y4m_bytes

        VIDEO.mkdir(exist_ok=True)
        export_model(make_tiny_temporal(), VIDEO, "golden-temporal", tile_size=16)
        (VIDEO / "clip420.y4m").write_bytes(y4m_bytes(moving_frames(5, 19, 26), [b"", b" Ib", b"", b" XA=1", b""]))
        (VIDEO / "rgba-frames").mkdir(exist_ok=True)
        rgba = np.stack([moving_frames(4, 12, 14, seed=s) for s in range(4)], -1)  # (frames, h, w, 4)
        for k in range(4):
            Image.fromarray(rgba[k], "RGBA").save(VIDEO / "rgba-frames" / f"f{k * 5}.png")
    if not (VIDEO / "clip420-repeat.y4m").exists():  # armcodec 0.5: the compact stream table, a copy map
        from conftest import moving_frames, y4m_bytes

        fr = moving_frames(3, 19, 26, seed=3)
        (VIDEO / "clip420-repeat.y4m").write_bytes(y4m_bytes([fr[0], fr[1], fr[1], fr[2]]))
    if not (VIDEO / "clip420-blocks.y4m").exists():  # armcodec 0.6: block maps
        from conftest import moving_frames, y4m_bytes

        fr = moving_frames(2, 19, 26, seed=4)
        changed = fr[0].copy()
        changed[3:7, 2:9] ^= 5  # a few blocks of the first luma tile
        changed[17:, 20:] ^= 1  # and of the last
        (VIDEO / "clip420-blocks.y4m").write_bytes(y4m_bytes([fr[0], changed, fr[1]]))
    if not (VIDEO / "clip420-subpixel.y4m").exists():  # armcodec 0.13: the previous-frame predictor
        from conftest import subpixel_frames, y4m_bytes

        (VIDEO / "clip420-subpixel.y4m").write_bytes(y4m_bytes(subpixel_frames(4, 38, 52)))
    if not (VIDEO / "screen-frames").exists():  # armcodec 0.15: R, G, B groups by the mixture, classic groups
        screen_frames(VIDEO / "screen-frames")
    if not (VIDEO / "rgb-subpixel").exists():  # armcodec 0.15: R, G, B frames panning by fractions of a pixel
        (VIDEO / "rgb-subpixel").mkdir()
        for k, f in enumerate(subpixel_frames(3, 38, 52)):
            Image.fromarray(np.stack([f, np.roll(f, 1, 1) // 2 + 60, 255 - f], 2)).save(VIDEO / "rgb-subpixel" / f"f{k}.png")
    if not (VIDEO / "clip420-shake.y4m").exists():  # armcodec 0.17: long vectors (coder tool 9)
        shake_clip(VIDEO / "clip420-shake.y4m")
    for name, source, feedback, copy_blocks, binned, predictor in golden_video_sources():
        if not (VIDEO / name).exists():
            (VIDEO / name).write_bytes(encode_video(video_codec(feedback, copy_blocks, binned, predictor), source()))
            print("wrote", name)
    sources = {n: s for n, s, *_ in golden_video_sources()}
    for of, name, weights, binned, predictor in SHIPPED_VIDEO:  # the shipped video preset's files (only the new ones are written)
        if not (VIDEO / name).exists():
            (VIDEO / name).write_bytes(encode_video(shipped_video_codec(weights, binned, predictor), sources[of]()))
            print("wrote", name)

