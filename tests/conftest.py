"""Shared fixtures: the real test images and a tiny seeded model in a temporary weights dir."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from armcodec.models.pixelcnn import PixelCNN, PixelCNNConfig
from armcodec.models.temporal import TemporalConfig, TemporalPixelCNN
from armcodec.training.export import export_model

DATA = Path(__file__).parent / "data"
TINY_CFG = PixelCNNConfig(width=8, blocks=2, head_width=8, mixtures=2)


def make_tiny_model(seed: int = 0, cfg: PixelCNNConfig = TINY_CFG) -> PixelCNN:
    """A small random model whose distributions are far from uniform (sharp, off-centre)."""
    torch.manual_seed(seed)
    m = PixelCNN(cfg)
    with torch.no_grad():
        m.head_out.weight.mul_(20.0)
        k, c = cfg.mixtures, cfg.image_channels
        m.head_out.bias[2 * k * c : 3 * k * c] = 1.0
        if m.skip is not None:  # exercise the linear skip path too
            m.skip.weight.normal_(0, 0.05)
    return m


def export_tiny(directory: Path) -> Path:
    """Write the tiny model as "tiny" (tile 16) into a weights directory."""
    export_model(make_tiny_model(), directory, "tiny", tile_size=16)
    return directory


@pytest.fixture(autouse=True)
def model_path(request, monkeypatch):
    """Codecs made without ``classic=`` take the model's path unless a test is marked ``classic``:
    the random tiny model loses to PNG on the small test images, so the classic path would
    otherwise carry nearly every test past the model, tables and ANS they are about."""
    if request.node.get_closest_marker("classic") is None:
        import armcodec.api

        monkeypatch.setattr(armcodec.api, "CLASSIC_DEFAULT", False)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def tiny_codec(tiny_dir):
    from armcodec import Codec

    return Codec("tiny", device="cpu", weights_dir=tiny_dir, classic=False)  # the model's path (see model_path)


def load(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATA / name))


def relabel_profile(data: bytes, profile: int) -> bytes:
    """The same .arm file claiming another coder profile, with a valid header CRC."""
    import zlib

    out = bytearray(data)
    hlen = int.from_bytes(out[6:10], "little")
    out[5] = profile
    out[10 + hlen : 14 + hlen] = (zlib.crc32(bytes(out[: 10 + hlen])) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out)


# the 8-bit L, LA, RGB and RGBA images (test_every_png.py covers the other PngSuite layouts)
REAL_IMAGES = sorted(p.name for p in DATA.glob("*.png")
                     if Image.open(p).mode in ("L", "LA", "RGB", "RGBA") and p.read_bytes()[24] == 8)


def retool(data: bytes, tools) -> bytes:
    """The same streams in a file whose header names other coder tools (valid CRC)."""
    from armcodec import container

    header, streams = container.parse(data)
    header.tools = tools
    return container.write(header, streams)


def write_with_metadata(a: np.ndarray, path: Path) -> None:
    """A PNG carrying an EXIF block, an XMP packet and three text chunks (tEXt, zTXt, iTXt)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "a test")
    info.add_text("Author", "armcodec", zip=True)
    info.add_itxt("Comment", "non-latin: \u00e9\u4e2d")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta xmlns:x='adobe:ns:meta/'>test</x:xmpmeta>")
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    exif[0x0110] = "Model"
    Image.fromarray(a).save(path, pnginfo=info, exif=exif.tobytes())


def training_folder(tmp_path: Path) -> Path:
    """Two photographs in a folder, as training reads them (the first by name is the validation split)."""
    import shutil

    data = tmp_path / "photos"
    data.mkdir()
    for name in ("kodim05_rgb_130x70.png", "kodim23_rgb_64x48.png"):
        shutil.copy(DATA / name, data / name)
    return data


# --- video: a tiny temporal model and small clips ---------------------------------------------------
TINY_TEMPORAL = TemporalConfig(width=8, blocks=2, head_width=8, mixtures=2, context_reach=1)


def make_tiny_temporal(seed: int = 0, grids: dict | None = None) -> TemporalPixelCNN:
    """A small random temporal model whose context terms matter: its means are the context's pixel
    (the previous frame moved by the motion vectors), its scales random; ``grids``: other integer
    grids (config fields such as ``head_steps``)."""
    torch.manual_seed(seed)
    m = TemporalPixelCNN(TemporalConfig.from_dict({**TINY_TEMPORAL.to_dict(), **(grids or {})}))
    k, c = TINY_TEMPORAL.mixtures, TINY_TEMPORAL.image_channels
    means = slice(k * c, 2 * k * c)
    with torch.no_grad():
        m.head_out.weight.mul_(20.0)
        m.skip.weight.normal_(0, 0.05)
        m.context_first.weight.normal_(0, 0.2)
        m.head_out.weight[means] = 0
        m.head_out.bias[means] = 0
        m.skip.weight[means] = 0
        r = TINY_TEMPORAL.context_reach
        for ch in range(c):
            m.context_skip.weight[k * c + ch * k : k * c + (ch + 1) * k, ch, r, r] = 1.0
    return m


@pytest.fixture(scope="session")
def temporal_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("temporal")
    export_model(make_tiny_temporal(), d, "tiny-temporal", tile_size=16)
    return d


@pytest.fixture(scope="session")
def vcodec(temporal_dir):
    from armcodec.video import VideoCodec

    # the model's streams only: next to this random model a lossless WebP of a group (coder tool 8) is
    # often smaller, and the tests of the model's records need them (tests/test_classic_groups.py: the WebP)
    return VideoCodec("tiny-temporal", "cpu", key_interval=3, weights_dir=temporal_dir, classic_groups=False)


def moving_frames(n: int = 5, h: int = 21, w: int = 30, seed: int = 0) -> list[np.ndarray]:
    """A textured scene panning one pixel a frame, with noise: consecutive frames are alike."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (h, w + n), dtype=np.int64)
    scene = (scene + np.roll(scene, 1, 1) + np.roll(scene, 1, 0)) // 3
    return [np.clip(scene[:, k : k + w] + rng.integers(-2, 3, (h, w)), 0, 255).astype(np.uint8) for k in range(n)]


def subpixel_frames(n: int = 4, h: int = 21, w: int = 30, seed: int = 5) -> list[np.ndarray]:
    """A smooth scene panning half a pixel a frame to the right and a quarter down, with a little
    noise: the previous frame moved by a fraction of a pixel predicts each frame (the video
    previous-frame predictor's case)."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (4 * h + 4 * n + 8, 4 * w + 4 * n + 8)).astype(np.float64)
    for _ in range(6):  # smooth it: edges that move by fractions of a pixel
        big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1) + np.roll(big, (1, 1), (0, 1))) / 4
    out = []
    for k in range(n):
        crop = big[k : k + 4 * h, 2 * k : 2 * k + 4 * w].reshape(h, 4, w, 4).mean((1, 3))
        out.append(np.clip(np.rint(crop) + rng.integers(-1, 2, (h, w)), 0, 255).astype(np.uint8))
    return out


def y4m_bytes(frames: list[np.ndarray], params: list[bytes] | None = None, line: bytes | None = None) -> bytes:
    h, w = frames[0].shape
    ch, cw = -(-h // 2), -(-w // 2)
    out = [line or f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL".encode()]
    out[0] += b"\n"
    for k, f in enumerate(frames):
        u = f[::2, ::2][:ch, :cw] // 2 + 60
        out += [b"FRAME" + (params[k] if params else b"") + b"\n", f.tobytes(), u.tobytes(), (255 - u).tobytes()]
    return b"".join(out)
