"""The one registry of models: names from the weights manifest, loaded once per device."""
from __future__ import annotations

import threading
from pathlib import Path

import torch

from armcodec.errors import ModelError
from armcodec.weights import LoadedModel, ModelEntry, load_weights, read_manifest

DEFAULT_MODEL = "default"
_cache: dict[tuple, LoadedModel] = {}
_lock = threading.Lock()


def list_models(weights_dir: Path | None = None) -> list[ModelEntry]:
    """Models of ``weights_dir`` (default: the shipped weights)."""
    return list(read_manifest(weights_dir).values())


def get_entry(name: str, weights_dir: Path | None = None) -> ModelEntry:
    entries = read_manifest(weights_dir)
    if name not in entries:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(entries) or 'none'}")
    return entries[name]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ModelError(f"unknown device {device!r}: use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("CUDA was requested but is not available")
    return torch.device(device)


def get_model(name: str = DEFAULT_MODEL, device: str | torch.device = "auto", weights_dir: Path | None = None) -> LoadedModel:
    """The named model on ``device``, loaded (sha256 verified) once and cached."""
    entry = get_entry(name, weights_dir)
    dev = resolve_device(device)
    key = (str(weights_dir), name, entry.sha256, str(dev))
    with _lock:
        if key not in _cache:
            _cache[key] = load_weights(entry, dev, weights_dir)
        return _cache[key]
