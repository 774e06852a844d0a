"""Row 65: how the video preset does on kinds of clips none of the shared ones is (the hidden set's
screen content and animation), made here with no footage: a desktop whose text scrolls under a
moving pointer, and flat-coloured cartoon shapes moving over a gradient.  Each as PNG frames (RGB,
as a screen recorder writing PNG/qtrle keeps them) and as Y4M 4:2:0 (ffmpeg's BT.601 conversion,
as an H.264 screen recording holds them).

    python -m benchmarks.experiments.row65_synthetic_clips --out /tmp/synthetic --frames 20
    python benchmarks/video_bench.py /tmp/synthetic/* --frames 20 --name synthetic
    python -m benchmarks.experiments.row65_synthetic_clips --study webp /tmp/synthetic/*_420.y4m

The ``webp`` study: per plane of the first frames after the first, the bytes of lossless WebP
variants of a plane group (the coder's tool 8 and encoder-only alternatives): of its samples at
method 4 and 6, of its residual to the previous frame moved by the refined quarter-pixel vectors
(the coder's) and by the integer ones, and the two chroma planes of a 4:2:0 frame as one WebP.

Deterministic (a fixed seed); fonts: DejaVu (the system's), Pillow's default where it is missing.
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = ("armcodec lossless frame model table coder stream pixel tile motion vector record header "
         "decode encode mixture predictor quarter sample entropy bits file window button menu edit "
         "view help open save close print search replace select copy paste undo redo").split()


def _font(size: int, mono: bool = False):
    name = "DejaVuSansMono.ttf" if mono else "DejaVuSans.ttf"
    for d in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu"):
        try:
            return ImageFont.truetype(f"{d}/{name}", size)
        except OSError:
            pass
    return ImageFont.load_default()


def screen_frames(n: int, w: int = 640, h: int = 360, seed: int = 0) -> list[Image.Image]:
    """A desktop: a window with a title bar and a menu, a text pane scrolling 3 rows a frame, a
    second window dragged 5 pixels right and 2 down a frame, and an arrow pointer moving."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, rng.integers(4, 11))) for _ in range(200)]
    font, mono = _font(13), _font(12, mono=True)
    page = Image.new("RGB", (w - 80, 18 * len(lines)), (255, 255, 255))  # the scrolling document
    d = ImageDraw.Draw(page)
    for k, line in enumerate(lines):
        d.text((8, 18 * k + 2), line, fill=(20, 20, 20) if k % 7 else (30, 60, 160), font=font if k % 5 else mono)
    frames = []
    for t in range(n):
        im = Image.new("RGB", (w, h), (58, 110, 165))
        d = ImageDraw.Draw(im)
        d.rectangle((30, 20, w - 30, h - 20), fill=(236, 236, 236), outline=(90, 90, 90))
        d.rectangle((31, 21, w - 31, 44), fill=(45, 85, 150))
        d.text((40, 25), "notes.txt - Editor", fill=(255, 255, 255), font=font)
        for k, label in enumerate(("File", "Edit", "View", "Help")):
            d.text((40 + 50 * k, 48), label, fill=(0, 0, 0), font=font)
        view = page.crop((0, 3 * t, w - 80, 3 * t + h - 90))
        im.paste(view, (40, 68))
        x0, y0 = 300 + 5 * t, 150 + 2 * t  # the dragged dialog
        d.rectangle((x0, y0, x0 + 220, y0 + 110), fill=(245, 245, 245), outline=(60, 60, 60))
        d.rectangle((x0 + 1, y0 + 1, x0 + 219, y0 + 22), fill=(200, 60, 60))
        d.text((x0 + 8, y0 + 4), "Save changes?", fill=(255, 255, 255), font=font)
        for k, label in enumerate(("Yes", "No", "Cancel")):
            d.rectangle((x0 + 12 + 70 * k, y0 + 70, x0 + 72 + 70 * k, y0 + 98), fill=(225, 225, 225), outline=(120, 120, 120))
            d.text((x0 + 22 + 70 * k, y0 + 76), label, fill=(0, 0, 0), font=font)
        px, py = 100 + 9 * t, 300 - 6 * t  # the pointer
        d.polygon([(px, py), (px, py + 17), (px + 4, py + 13), (px + 8, py + 20), (px + 10, py + 19), (px + 7, py + 12),
                   (px + 12, py + 12)], fill=(255, 255, 255), outline=(0, 0, 0))
        frames.append(im)
    return frames


def cartoon_frames(n: int, w: int = 640, h: int = 360, seed: int = 1) -> list[Image.Image]:
    """Flat-coloured shapes with dark outlines (anti-aliased at 2x, then halved) moving and
    turning over a vertical gradient sky and a green hill."""
    rng = np.random.default_rng(seed)
    shapes = [(rng.integers(0, w), rng.integers(0, h), rng.integers(20, 60), tuple(int(v) for v in rng.integers(40, 255, 3)),
               rng.integers(-6, 7), rng.integers(-3, 4), rng.integers(3, 7)) for _ in range(9)]
    sky = np.linspace([120, 170, 235], [200, 225, 250], h)[:, None, :].repeat(w, 1).round().astype(np.uint8)
    frames = []
    for t in range(n):
        im = Image.fromarray(np.repeat(np.repeat(sky, 2, 0), 2, 1))
        d = ImageDraw.Draw(im)
        d.ellipse((-200, 2 * h - 160, 2 * w + 200, 2 * h + 400), fill=(90, 170, 70), outline=(30, 60, 25), width=6)
        for x, y, r, col, vx, vy, sides in shapes:
            cx, cy = 2 * (x + vx * t), 2 * (y + vy * t)
            ang = 0.05 * t * vx + np.arange(sides) * 2 * np.pi / sides
            pts = [(float(cx + 2 * r * np.cos(a)), float(cy + 2 * r * np.sin(a))) for a in ang]
            d.polygon(pts, fill=col, outline=(20, 20, 20), width=5)
        frames.append(im.resize((w, h), Image.Resampling.BOX))
    return frames


def write(frames: list[Image.Image], out: Path, name: str) -> None:
    from armcodec.io.frames import ffmpeg_exe

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for k, im in enumerate(frames):
        im.save(folder / f"f{k:03d}.png")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-framerate", "25", "-i", str(folder / "f%03d.png"),
                    "-pix_fmt", "yuv420p", "-strict", "-1", str(out / f"{name}_420.y4m")], check=True)


def webp_bytes(a: np.ndarray, method: int = 4) -> int:
    import io

    a = np.repeat(a, 3, 2) if a.shape[2] == 1 else a
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="WEBP", lossless=True, method=method, quality=100, exact=True)
    return len(buf.getvalue())


def webp_study(clips: list[Path], frames: int) -> None:
    import itertools
    import json

    from armcodec.coding import classic, motion
    from armcodec.encoder import motion as search
    from armcodec.io.frames import y4m_source

    for clip in clips:
        src = y4m_source(open(clip, "rb"), str(clip))
        fr = list(itertools.islice(src.frames, frames))
        for k in range(1, len(fr)):
            row = {}
            for g, (cur, prev) in enumerate(zip(fr[k].groups, fr[k - 1].groups)):
                field = search.search(cur, prev)
                quarter = motion.compensate(prev, search.refine(cur, prev, field), unit=motion.QUARTER)
                whole = motion.compensate(prev, field)
                row[g] = {"samples m4": webp_bytes(cur), "samples m6": webp_bytes(cur, 6),
                          "residual quarter": webp_bytes(classic.group_residual(cur, quarter)),
                          "residual whole": webp_bytes(classic.group_residual(cur, whole))}
            u, v = fr[k].groups[1], fr[k].groups[2]
            row["u+v"] = {"samples m4": webp_bytes(np.concatenate([u, v, v], 2))}
            print(json.dumps({"clip": clip.name, "frame": k, **{str(g): r for g, r in row.items()}}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--study", choices=("clips", "webp"), default="clips")
    a = ap.parse_args()
    if a.study == "webp":
        webp_study(a.clips, min(a.frames, 4))
        return
    write(screen_frames(a.frames), a.out, "screen")
    write(cartoon_frames(a.frames), a.out, "cartoon")
    print(sorted(p.name for p in a.out.iterdir()))


if __name__ == "__main__":
    main()
