"""Shipped weights: a manifest, sha256-verified safetensors files, no pickle.

``weights/manifest.json`` lists each model: name, file, sha256, architecture, config
(the model is rebuilt from it, never from guessing tensor shapes), tile size, training
data and command, and measured Kodak figures.  The weight files hold only integer tensors
(the exported integer-exact network) and the two lookup tables of ``armcodec.tables``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from armcodec.ensemble import EnsembleConfig, IntEnsemble
from armcodec.errors import ModelError
from armcodec.models.pixelcnn import PixelCNNConfig
from armcodec.quant import IntPixelCNN
from armcodec.tables import MAX_MIXTURES, TableLUTs

ARCHITECTURE = "wavefront-pixelcnn"
ENSEMBLE_ARCHITECTURE = "wavefront-pixelcnn-ensemble"  # config {"members": [config, ...]}
ARCHITECTURES = (ARCHITECTURE, ENSEMBLE_ARCHITECTURE)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str
    config: dict
    tile_size: int
    meta: dict = field(default_factory=dict)

    @property
    def orient(self) -> bool:
        """Whether the encoder searches each tile's orientation by default (manifest ``"orient"``)."""
        return bool(self.meta.get("orient", False))

    @property
    def orient_proxy(self) -> str | None:
        """The (cheaper) model whose float copy picks the orientations (manifest ``"orient_proxy"``;
        None: the model itself)."""
        return self.meta.get("orient_proxy")


@dataclass
class LoadedModel:
    entry: ModelEntry
    net: IntPixelCNN
    luts: TableLUTs
    device: torch.device

    @property
    def sha256_prefix(self) -> bytes:
        return bytes.fromhex(self.entry.sha256)[:16]


def weights_dir() -> Path:
    """$ARMCODEC_WEIGHTS_DIR, else the weights installed with the package."""
    env = os.environ.get("ARMCODEC_WEIGHTS_DIR")
    return Path(env) if env else Path(str(resources.files("armcodec_weights")))


def read_manifest(directory: str | Path | None = None) -> dict[str, ModelEntry]:
    directory = Path(directory) if directory else weights_dir()
    path = directory / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no weights manifest at {path}") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"weights manifest {path} is unreadable: {e}") from None
    entries: dict[str, ModelEntry] = {}
    for m in raw.get("models", []):
        try:
            if m["architecture"] not in ARCHITECTURES:
                raise ModelError(f"model {m['name']}: unknown architecture {m['architecture']!r}")
            e = ModelEntry(m["name"], m["file"], m["sha256"], m["config"], int(m["tile_size"]),
                           {k: v for k, v in m.items() if k not in ("name", "file", "sha256", "config", "tile_size")})
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"weights manifest {path}: malformed entry ({err})") from None
        if e.name in entries:
            raise ModelError(f"weights manifest {path}: duplicate model name {e.name!r}")
        entries[e.name] = e
    return entries


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_weights(entry: ModelEntry, device: torch.device, directory: str | Path | None = None) -> LoadedModel:
    """Verify the sha256, then build the integer model from the stored config."""
    path = (Path(directory) if directory else weights_dir()) / entry.file
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"weights file of model {entry.name!r} is missing or unreadable: {path} ({e.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ModelError(f"weights file {path} is corrupted: sha256 {digest[:16]}... != manifest {entry.sha256[:16]}...")
    try:
        tensors = st_load(data)
        if entry.meta.get("architecture") == ENSEMBLE_ARCHITECTURE:
            cfg = EnsembleConfig.from_dict(entry.config)
            net = IntEnsemble.from_tensors(cfg, tensors)
        else:
            cfg = PixelCNNConfig.from_dict(entry.config)
            net = IntPixelCNN.from_tensors(cfg, tensors)
        if not 1 <= cfg.mixtures <= MAX_MIXTURES:
            raise ValueError(f"{cfg.mixtures} mixture components")
        luts = TableLUTs(tensors["lut.cdf"], tensors["lut.weight"])
        luts.validate()
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelError(f"weights of model {entry.name!r} do not match its config: {e}") from None
    return LoadedModel(entry, net.to(device), luts.to(device), device)


def export_weights(net: IntPixelCNN | IntEnsemble, luts: TableLUTs, path: Path) -> str:
    """Write the integer model and lookup tables as safetensors; returns the sha256."""
    tensors = {**net.tensors(), "lut.cdf": luts.cdf.contiguous(), "lut.weight": luts.weight.contiguous()}
    data = st_save({k: v.contiguous() for k, v in tensors.items()}, metadata={"config": json.dumps(net.cfg.to_dict())})
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
