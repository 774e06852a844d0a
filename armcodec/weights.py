"""Weights and presets: a manifest, sha256-verified safetensors files, no pickle.

``weights/manifest.json`` declares two things::

    "weights": [{name, file, sha256, architecture, config, aliases, ...training notes}]
    "presets": [{name, weights: sha256, tile_size, encoder: {orient, orient_proxy: sha256, ...}, kodak, ...}]

A *weights* entry is an identity: its name and sha256 are unique, and ``.arm`` files name the
weights they were written with (name and the first 16 bytes of the sha256).  ``aliases`` are other
names files carry for the same weights (the names earlier releases wrote: ``default``, ``fast``,
``max``), so every old file finds its weights.  A *preset* is what users choose with ``--model``:
weights (pinned by sha256, never by a name a later release may give to other weights) plus
encoder settings (tile size, orientation search and the weights that score it).  A model is rebuilt
from its stored config through the architecture registry (:mod:`armcodec.models.registry`), never
from guessing tensor shapes.

A manifest of the first layout (``"models": [...]``, one entry per name, written before 0.2) is
read as weights plus one preset per entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import armcodec.models  # noqa: F401  (registers the built-in architectures)
from armcodec.errors import ModelError
from armcodec.exact.tables import MAX_MIXTURES, TableLUTs
from armcodec.models.registry import architecture

DEFAULT_PRESET = "default"
SHA_PREFIX = 16  # bytes of the sha256 a file header carries


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    file: str
    sha256: str
    architecture: str
    config: dict
    aliases: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)

    @property
    def sha256_prefix(self) -> bytes:
        return bytes.fromhex(self.sha256)[:SHA_PREFIX]

    def answers_to(self, name: str) -> bool:
        return name == self.name or name in self.aliases


@dataclass(frozen=True)
class Preset:
    """A ``--model`` choice: weights (by sha256) and encoder settings."""

    name: str
    weights: WeightsEntry
    tile_size: int
    orient: bool = False
    orient_proxy: WeightsEntry | None = None  # the (cheaper) weights whose float copy picks orientations
    meta: dict = field(default_factory=dict)
    planes: WeightsEntry | None = None  # video: the weights for frames of grey planes (YUV planes, grey frames)

    # the fields `armcodec models` and list_models() have always shown
    @property
    def sha256(self) -> str:
        return self.weights.sha256

    @property
    def file(self) -> str:
        return self.weights.file

    @property
    def config(self) -> dict:
        return self.weights.config


@dataclass
class Manifest:
    directory: Path
    weights: dict[str, WeightsEntry]  # by sha256
    presets: dict[str, Preset]  # by name

    def by_prefix(self, prefix: bytes) -> WeightsEntry | None:
        return next((w for w in self.weights.values() if w.sha256_prefix == prefix), None)

    def by_name(self, name: str) -> WeightsEntry | None:
        return next((w for w in self.weights.values() if w.name == name), None) or \
            next((w for w in self.weights.values() if name in w.aliases), None)

    def preset(self, name: str) -> Preset:
        """A preset by name, or a weights name with no preset (its weights' own tile size, no search)."""
        if name in self.presets:
            return self.presets[name]
        w = next((w for w in self.weights.values() if w.name == name), None)
        if w is not None:
            return Preset(name, w, int(w.meta.get("tile_size", 128)))
        raise ModelError(f"unknown model {name!r}; available: {', '.join(self.presets) or 'none'}")


@dataclass
class LoadedWeights:
    entry: WeightsEntry
    net: object  # an armcodec.models.base.ExactModel
    luts: TableLUTs
    device: torch.device

    @property
    def sha256_prefix(self) -> bytes:
        return self.entry.sha256_prefix


def weights_dir() -> Path:
    """$ARMCODEC_WEIGHTS_DIR, else the weights installed with the package."""
    env = os.environ.get("ARMCODEC_WEIGHTS_DIR")
    return Path(env) if env else Path(str(resources.files("armcodec_weights")))


def read_manifest(directory: str | Path | None = None) -> Manifest:
    directory = Path(directory) if directory else weights_dir()
    path = directory / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no weights manifest at {path}") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"weights manifest {path} is unreadable: {e}") from None
    try:
        if "models" in raw and "weights" not in raw:
            raw = _from_first_layout(raw["models"])
        weights: dict[str, WeightsEntry] = {}
        for w in raw.get("weights", []):
            e = WeightsEntry(w["name"], w["file"], w["sha256"], w["architecture"], w["config"], tuple(w.get("aliases", ())),
                             {k: v for k, v in w.items() if k not in ("name", "file", "sha256", "architecture", "config", "aliases")})
            if e.sha256 in weights or any(e.answers_to(o.name) or o.answers_to(e.name) for o in weights.values()):
                raise ModelError(f"weights manifest {path}: weights {e.name!r} ({e.sha256[:16]}) are declared twice")
            if any(o.sha256_prefix == e.sha256_prefix for o in weights.values()):
                raise ModelError(f"weights manifest {path}: two weights share the sha256 prefix of {e.name!r}")
            weights[e.sha256] = e
        presets: dict[str, Preset] = {}
        for p in raw.get("presets", []):
            enc = p.get("encoder", {})
            proxy, planes = enc.get("orient_proxy"), enc.get("planes")
            if p["weights"] not in weights or any(w is not None and w not in weights for w in (proxy, planes)):
                raise ModelError(f"weights manifest {path}: preset {p['name']!r} names weights it does not declare")
            if p["name"] in presets:
                raise ModelError(f"weights manifest {path}: duplicate preset name {p['name']!r}")
            presets[p["name"]] = Preset(p["name"], weights[p["weights"]], int(p["tile_size"]), bool(enc.get("orient", False)),
                                        weights[proxy] if proxy else None,
                                        {k: v for k, v in p.items() if k not in ("name", "weights", "tile_size", "encoder")},
                                        weights[planes] if planes else None)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"weights manifest {path}: malformed entry ({err})") from None
    return Manifest(directory, weights, presets)


def _from_first_layout(models: list[dict]) -> dict:
    """The first manifest layout (one entry per name, weights and encoder settings together) as
    weights (one per sha256; later names become aliases) and presets."""
    weights: dict[str, dict] = {}
    presets = []
    for m in models:
        if m["sha256"] not in weights:
            meta = {k: v for k, v in m.items() if k not in ("name", "tile_size", "orient", "orient_proxy")}
            weights[m["sha256"]] = {**meta, "name": m["name"], "aliases": [], "tile_size": m["tile_size"]}
        else:
            weights[m["sha256"]]["aliases"].append(m["name"])
    by_name = {m["name"]: m["sha256"] for m in models}
    for m in models:
        encoder = {"orient": bool(m.get("orient", False))}
        if m.get("orient_proxy"):
            encoder["orient_proxy"] = by_name[m["orient_proxy"]]
        presets.append({"name": m["name"], "weights": m["sha256"], "tile_size": m["tile_size"], "encoder": encoder})
    return {"weights": list(weights.values()), "presets": presets}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_weights(entry: WeightsEntry, device: torch.device, directory: str | Path | None = None) -> LoadedWeights:
    """Verify the sha256, then build the integer model from the stored config through the registry."""
    path = (Path(directory) if directory else weights_dir()) / entry.file
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"weights file of {entry.name!r} is missing or unreadable: {path} ({e.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ModelError(f"weights file {path} is corrupted: sha256 {digest[:16]}... != manifest {entry.sha256[:16]}...")
    cls = architecture(entry.architecture)
    try:
        tensors = st_load(data)
        cfg = cls.config_class.from_dict(entry.config)
        net = cls.from_tensors(cfg, tensors)
        if not 1 <= cfg.mixtures <= MAX_MIXTURES:
            raise ValueError(f"{cfg.mixtures} mixture components")
        luts = TableLUTs(tensors["lut.cdf"], tensors["lut.weight"])
        luts.validate()
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelError(f"weights {entry.name!r} do not match their config: {e}") from None
    return LoadedWeights(entry, net.to(device), luts.to(device), device)


_cache: dict[tuple, LoadedWeights] = {}
_lock = threading.Lock()


def get_weights(entry: WeightsEntry, device: torch.device, directory: str | Path | None = None) -> LoadedWeights:
    """``entry``'s model on ``device``, loaded (sha256 verified) once per process and cached."""
    key = (str(directory), entry.sha256, str(device))
    with _lock:
        if key not in _cache:
            _cache[key] = load_weights(entry, device, directory)
        return _cache[key]


def export_weights(net, luts: TableLUTs, path: Path) -> str:
    """Write an integer model and its lookup tables as safetensors; returns the sha256."""
    tensors = {**net.tensors(), "lut.cdf": luts.cdf.contiguous(), "lut.weight": luts.weight.contiguous()}
    data = st_save({k: v.contiguous() for k, v in tensors.items()}, metadata={"config": json.dumps(net.cfg.to_dict())})
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
