"""Training data of the temporal model: pairs of consecutive frames from real clips.

Clips are decoded by the ffmpeg that imageio-ffmpeg ships (``-f rawvideo``), once as 4:2:0 planes
(Y, U, V: what a Y4M file codes, each a grey plane) and once as RGB (what a video file of RGB frames
codes); image folders of a sequence (PNG frames, natural order) count as one clip.  The last tenth
of every clip's frames is the validation split.  A sample is a crop of frame t and the same crop of
frame t - 1 with a margin of ``reach`` pixels (the context window's), flipped together; a tenth of
the samples have no previous frame (the key frames, coded with the context terms left out).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from armcodec.io.frames import ffmpeg_exe, natural_key, probe
from armcodec.models.temporal import context_input

KEY_FRACTION = 0.1


def decode_clip(path: Path, pix_fmt: str, first: int = 0, count: int = 10**9) -> list:
    """Frames ``first .. first + count`` of a clip: pix_fmt ``rgb24`` -> uint8 (H, W, 3) each,
    ``yuv420p`` -> (Y (H, W), U, V (H/2, W/2 rounded up)) each."""
    p = probe(path)
    w, h = p.width, p.height
    cw, ch = -(-w // 2), -(-h // 2)
    size = w * h * 3 if pix_fmt == "rgb24" else w * h + 2 * cw * ch
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    n = len(raw) // size
    out = []
    for k in range(first, min(n, first + count)):
        b = np.frombuffer(raw, np.uint8, size, k * size)
        if pix_fmt == "rgb24":
            out.append(b.reshape(h, w, 3))
        else:
            out.append((b[: w * h].reshape(h, w), b[w * h : w * h + cw * ch].reshape(ch, cw),
                        b[w * h + cw * ch :].reshape(ch, cw)))
    return out


@dataclass
class Clip:
    """One clip's frames as stacks: ``rgb`` (n, 3, H, W) or None, ``planes``: Y, U, V (n, H, W) each
    (a grey sequence: its one plane)."""

    name: str
    rgb: np.ndarray | None
    planes: list[np.ndarray]

    def split(self, fraction: float = 0.1) -> tuple["Clip", "Clip"]:
        """(training, validation): the validation split is the last ``fraction`` of the frames."""
        n = len(self.planes[0])
        cut = n - max(2, int(round(n * fraction)))
        part = lambda a, s: None if a is None else a[s]  # noqa: E731
        return (Clip(self.name, part(self.rgb, slice(0, cut)), [p[:cut] for p in self.planes]),
                Clip(self.name, part(self.rgb, slice(cut, n)), [p[cut:] for p in self.planes]))


def load_clip(path: Path, first: int = 0, count: int = 10**9) -> Clip:
    """A video file (both decodings) or a folder of grey or RGB frames (natural name order)."""
    path = Path(path)
    if path.is_dir():
        from PIL import Image

        files = sorted((p for p in path.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff", ".bmp")),
                       key=lambda p: natural_key(p.name))[first : first + count]
        frames = [np.asarray(Image.open(p)) for p in files]
        if frames[0].ndim == 2:
            return Clip(path.name, None, [np.stack(frames)])
        rgb = np.stack([f[:, :, :3] for f in frames])
        return Clip(path.name, rgb.transpose(0, 3, 1, 2).copy(), [])
    yuv = decode_clip(path, "yuv420p", first, count)
    rgb = np.stack(decode_clip(path, "rgb24", first, count)).transpose(0, 3, 1, 2).copy()
    return Clip(path.name, rgb, [np.stack([f[k] for f in yuv]) for k in range(3)])


def frame_stacks(clips: list[Clip], rgb: bool, crop: int) -> list[np.ndarray]:
    """The frame stacks (n, C, H, W) a batch draws from: RGB, or every grey plane."""
    if rgb:
        out = [c.rgb for c in clips if c.rgb is not None]
    else:
        out = [p[:, None] for c in clips for p in c.planes]
    return [s for s in out if len(s) >= 2 and min(s.shape[2:]) >= crop]


def moved_previous(stack: np.ndarray) -> np.ndarray:
    """(n, C, H, W) frames -> the same shape: at t >= 1 frame t - 1 moved as the video encoder moves
    it for frame t (:func:`armcodec.encoder.motion.moved_previous` with today's tools: long vectors,
    quarter pixels, H.264's or the blend's samples), what the coder's model sees; at 0 zeros (never
    read)."""
    from armcodec.coding.motion import MAX_LONG_VECTOR
    from armcodec.encoder.motion import moved_previous as moved

    out = np.zeros_like(stack)
    for t in range(1, len(stack)):
        cur, prev = stack[t].transpose(1, 2, 0), stack[t - 1].transpose(1, 2, 0)
        ctx, _, _ = moved(np.ascontiguousarray(cur), np.ascontiguousarray(prev), reach=MAX_LONG_VECTOR)
        out[t] = ctx.transpose(2, 0, 1)
    return out


def sample_pairs(stacks: list[np.ndarray], n: int, crop: int, reach: int, rng: np.random.Generator,
                 key_fraction: float = KEY_FRACTION, previous: list[np.ndarray] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples -> (x float (n, 3, crop, crop) pixel values, context input (n, 4, crop + 2r,
    crop + 2r)); a grey plane is replicated into the three channels, as the coder feeds one.
    ``previous``: per stack, the previous frame of each frame as the model sees it
    (:func:`moved_previous`), else the frame before it as it is."""
    areas = np.array([s.shape[0] * s.shape[2] * s.shape[3] for s in stacks], np.float64)
    pick = rng.choice(len(stacks), size=n, p=areas / areas.sum())
    xs, cs, inside = [], [], []
    m = crop + 2 * reach
    for k in pick:
        s = stacks[k]
        t = int(rng.integers(1, s.shape[0]))
        i = int(rng.integers(0, s.shape[2] - crop + 1))
        j = int(rng.integers(0, s.shape[3] - crop + 1))
        cur = s[t, :, i : i + crop, j : j + crop]
        prev = np.zeros((s.shape[1], m, m), np.uint8)  # the window's margin: real pixels, zero outside the frame
        ins = np.zeros((1, m, m), np.float32)
        y0, x0 = i - reach, j - reach
        ya, yb, xa, xb = max(0, y0), min(s.shape[2], y0 + m), max(0, x0), min(s.shape[3], x0 + m)
        before = previous[k][t] if previous is not None else s[t - 1]
        prev[:, ya - y0 : yb - y0, xa - x0 : xb - x0] = before[:, ya:yb, xa:xb]
        ins[:, ya - y0 : yb - y0, xa - x0 : xb - x0] = 1
        if rng.random() < key_fraction:
            ins[:] = 0
        if rng.random() < 0.5:
            cur, prev, ins = cur[:, :, ::-1], prev[:, :, ::-1], ins[:, :, ::-1]
        xs.append(cur)
        cs.append(prev)
        inside.append(ins)
    x = torch.from_numpy(np.stack(xs).astype(np.float32))
    c = torch.from_numpy(np.stack(cs).astype(np.float32))
    if x.shape[1] == 1:
        x, c = x.expand(-1, 3, -1, -1), c.expand(-1, 3, -1, -1)
    return x.contiguous(), context_input(c, torch.from_numpy(np.stack(inside)))


def fixed_pairs(clips: list[Clip], rgb: bool, crop: int, reach: int, n: int, motion: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation pairs (the same on every run), without key frames; ``motion``: the previous
    frames moved as the coder moves them."""
    stacks = frame_stacks(clips, rgb, crop)
    previous = [moved_previous(s) for s in stacks] if motion else None
    return sample_pairs(stacks, n, crop, reach, np.random.default_rng(12345), key_fraction=0.0, previous=previous)
