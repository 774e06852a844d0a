"""Training data: photographs from a folder, a fixed validation split, random crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def split_train_val(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Every tenth image (by sorted name) is the validation split."""
    return [p for i, p in enumerate(paths) if i % 10], [p for i, p in enumerate(paths) if i % 10 == 0]


def load_rgb(paths: list[Path]) -> list[np.ndarray]:
    """uint8 (3, H, W) arrays; training only ever reads RGB photographs."""
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.ascontiguousarray(np.asarray(im.convert("RGB")).transpose(2, 0, 1)))
    return out


def random_crops(images: list[np.ndarray], n: int, size: int, rng: np.random.Generator,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """(n, 3, size, size) float crops on ``device`` with random horizontal flips, images weighted by area."""
    areas = np.array([im.shape[1] * im.shape[2] for im in images], dtype=np.float64)
    idx = rng.choice(len(images), size=n, p=areas / areas.sum())
    batch = np.empty((n, 3, size, size), dtype=np.uint8)
    for b, k in enumerate(idx):
        im = images[k]
        i = rng.integers(0, im.shape[1] - size + 1)
        j = rng.integers(0, im.shape[2] - size + 1)
        crop = im[:, i : i + size, j : j + size]
        batch[b] = crop[:, :, ::-1] if rng.random() < 0.5 else crop
    return torch.from_numpy(batch).to(device).float()


def fixed_val_crops(images: list[np.ndarray], size: int = 128, per_image: int = 2) -> torch.Tensor:
    rng = np.random.default_rng(12345)
    crops = []
    for im in images:
        for _ in range(per_image):
            i = rng.integers(0, im.shape[1] - size + 1)
            j = rng.integers(0, im.shape[2] - size + 1)
            crops.append(im[:, i : i + size, j : j + size])
    if not crops:
        return torch.empty((0, 3, size, size))
    return torch.from_numpy(np.stack(crops)).float()
