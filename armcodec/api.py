"""The library API: image or path -> .arm bytes, and back.

Data flow::

    compress:   path/array --io--> uint8 (H, W, C) + ImageInfo --plane groups--> encode_group (tiles, model,
                tables, ANS) --> container.write --> bytes
    decompress: bytes --container.parse (validated)--> model by name, weights hash checked --> decode_group
                (wavefront, CRC per tile) --> uint8 (H, W, C) + mode
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from armcodec import container
from armcodec.coding.feedback import FEATURE_SETS as FEEDBACK_FEATURE_SETS
from armcodec.coding.feedback import LATEST as FEEDBACK_FEATURES
from armcodec.coding.planes import DEFAULT_BATCH_BYTES, CodedGroup, decode_group, encode_group
from armcodec.container import DEFAULT_MAX_PIXELS, ArmHeader, plane_groups
from armcodec.errors import ArmcodecError, LimitError, ModelError
from armcodec.io.image import ImageInfo, from_array, read_image
from armcodec.models.registry import DEFAULT_MODEL, get_entry, get_model, resolve_device
from armcodec.weights import LoadedModel



@dataclass
class Encoded:
    """Result of :meth:`Codec.encode`: the .arm bytes and what the model says they should cost."""

    data: bytes
    model_bits: float  # -log2 likelihood under the exact integer tables (with adaptation: + its offsets)
    width: int
    height: int
    mode: str
    seconds: float

    @property
    def channels(self) -> int:
        return len(self.mode)

    @property
    def bpsp(self) -> float:
        """Bits per subpixel of the whole file (container included)."""
        return len(self.data) * 8 / (self.width * self.height * self.channels)


@dataclass
class DecodedImage:
    """Result of :meth:`Codec.decode`: array uint8 (H, W, C), mode L/LA/RGB/RGBA, ICC profile."""

    array: np.ndarray
    mode: str
    icc_profile: bytes
    model_bits: float
    seconds: float

    @property
    def info(self) -> ImageInfo:
        return ImageInfo(self.mode, self.icc_profile)


def is_grey_rgb(arr: np.ndarray, mode: str) -> bool:
    """Whether an RGB(A) image's R, G and B planes are equal (then it is coded as one plane)."""
    return mode in ("RGB", "RGBA") and bool((arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all())


def replication_factors(arr: np.ndarray) -> tuple[int, int]:
    """(fy, fx), the largest factors (at most 255, dividing the height and the width) such that
    the image is made of fy x fx blocks of equal pixels, a nearest-neighbour upscale; (1, 1) for
    most images.  Such an image is coded as its blocks' pixels (container kind 1)."""
    return _replication(arr, 0), _replication(arr, 1)


def _replication(arr: np.ndarray, axis: int) -> int:
    n = arr.shape[axis]
    line = lambda i: np.take(arr, i, axis=axis)  # noqa: E731
    if n < 2 or not np.array_equal(line(0), line(1)):
        return 1  # most images stop here, after one comparison
    repeats = np.array([np.array_equal(line(i), line(i - 1)) for i in range(1, n)])  # line i repeats line i - 1
    inside_block = np.arange(1, n)
    for f in range(min(n, container.MAX_REPLICATION), 1, -1):
        if n % f == 0 and repeats[inside_block % f != 0].all():
            return f
    return 1


def _set_exact_math(device: torch.device) -> None:
    if device.type == "cuda":  # TF32 would round the integer-valued matmuls
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


class Codec:
    """Keeps a model loaded for many images.

    ``model`` names an entry of the weights manifest (``weights_dir``, default the shipped
    weights); ``tile_size`` overrides the model's; ``max_pixels`` bounds what decode accepts;
    ``batch_bytes`` (default 2560 MiB) bounds the memory of one batch of tiles coded together
    (activation maps and per-pixel state: the part that is not the image itself; see the README
    for measured peaks).  Neither the batch nor
    the thread count changes a single output bit.  ``adaptive`` (default on) lets the encoder
    pick a scale offset per 32x32 block and channel and send it (coder profile 2, about 1%
    smaller files for a slower encode; decoding costs the same); off writes coder profile 1.
    ``orient`` (with ``adaptive``; default: the model entry's setting, on for ``default`` and
    ``max``) also picks per tile whether it is coded mirrored (profiles 3, 5, 7 and 9, about 0.2%
    smaller files), from four float passes of the network named by ``orient_proxy`` (default:
    the entry's ``orient_proxy``, ``fast`` for ``default``; else the model itself, for an encode
    about 2.5x as long).  ``feedback`` (with
    ``adaptive``; default on) fits and sends per tile and channel a linear prediction of the
    model's residual from the residuals around it, with the feature set ``feedback_features``
    (3, the default: profiles 8 and 9, set 2's features with the coefficients per tile, per
    quarter or per sixteenth of it, whichever the encoder finds cheapest, coded with a
    distribution; 2: profiles 6 and 7; 1, the first set: profiles 4 and 5; see
    :mod:`armcodec.coding.feedback`).  Decode reads all nine profiles.

    >>> codec = Codec()                                  # default model, CUDA if available
    >>> data = codec.compress(np.zeros((8, 8, 3), np.uint8))
    >>> codec.decompress(data).shape
    (8, 8, 3)
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str | torch.device = "auto",
                 tile_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, weights_dir: Path | None = None,
                 batch_bytes: int | None = None, adaptive: bool = True, orient: bool | None = None,
                 feedback: bool = True, orient_proxy: str | None = None,
                 feedback_features: int = FEEDBACK_FEATURES):
        self.device = resolve_device(device)
        self.weights_dir = weights_dir
        self.model = get_model(model, self.device, weights_dir)
        self.tile_size = tile_size or self.model.entry.tile_size
        if not container.MIN_TILE <= self.tile_size <= container.MAX_TILE:
            raise ArmcodecError(f"tile size {self.tile_size} outside [{container.MIN_TILE}, {container.MAX_TILE}]")
        self.max_pixels = max_pixels
        self.batch_bytes = batch_bytes or DEFAULT_BATCH_BYTES
        self.adaptive = adaptive
        self.orient = adaptive and (self.model.entry.orient if orient is None else orient)
        self.orient_proxy = (orient_proxy or self.model.entry.orient_proxy) if self.orient else None
        if self.orient_proxy:
            get_entry(self.orient_proxy, weights_dir)  # an unknown name fails here, not at the first encode
        self.feedback = adaptive and feedback
        if feedback_features not in FEEDBACK_FEATURE_SETS:
            raise ArmcodecError(f"unknown feedback feature set {feedback_features} (known: {FEEDBACK_FEATURE_SETS})")
        self.feedback_features = feedback_features
        _set_exact_math(self.device)

    def encode(self, image, progress=None) -> Encoded:
        """image: uint8 array (H, W) or (H, W, 1..4), or a path Pillow reads exactly."""
        t0 = time.perf_counter()
        if isinstance(image, (str, os.PathLike)):
            arr, info = read_image(image)
        else:
            arr, info = from_array(image)
        h, w, _ = arr.shape
        if h * w > self.max_pixels:
            raise LimitError(f"image of {w}x{h} pixels exceeds the limit of {self.max_pixels} pixels")
        m = self.model
        proxy = self._proxy_net()
        streams, crcs, bits = [], [], 0.0
        grey = is_grey_rgb(arr, info.mode)
        fy, fx = replication_factors(arr)
        coded = arr[::fy, ::fx]  # the blocks' pixels
        for sl, _ in plane_groups(info.mode, grey):
            g = encode_group(coded[:, :, sl], m.net, m.luts, self.tile_size, self.device, first_stream=len(streams),
                             max_batch_bytes=self.batch_bytes, progress=progress, adaptive=self.adaptive,
                             oriented=self.orient, fed_back=self._feedback_set, orient_proxy=proxy)
            streams += g.streams
            crcs += g.crcs
            bits += g.model_bits
        header = ArmHeader(info.mode, w, h, self.tile_size, m.entry.name, m.sha256_prefix,
                           icc_profile=info.icc_profile, stream_crcs=crcs,
                           profile=self.profile, grey=grey, replication=(fy, fx))
        data = container.write(header, streams)
        return Encoded(data, bits, w, h, info.mode, time.perf_counter() - t0)

    def _proxy_net(self):
        """The float network that picks each tile's orientation: the model named by
        ``orient_proxy`` (a cheaper one: the choice only steers the encoder), else the model's own."""
        if not self.orient_proxy:
            return None
        proxy = get_model(self.orient_proxy, self.device, self.weights_dir).net
        if proxy.cfg.image_channels != self.model.net.cfg.image_channels:
            raise ModelError(f"orientation proxy {self.orient_proxy!r} sees {proxy.cfg.image_channels} channels, "
                             f"the model {self.model.net.cfg.image_channels}")
        return proxy.float_proxy()

    @property
    def _feedback_set(self) -> int:
        return self.feedback_features if self.feedback else 0

    @property
    def profile(self) -> int:
        """The coder profile this codec writes."""
        return container.profile_for(self.adaptive, self.orient, self._feedback_set)

    def decode(self, data: bytes, progress=None) -> DecodedImage:
        return self.decode_parsed(*container.parse(data, self.max_pixels), progress=progress)

    def decode_parsed(self, header: ArmHeader, streams: list[bytes], progress=None) -> DecodedImage:
        """Decode what :func:`armcodec.container.parse` returned (its validation already done)."""
        t0 = time.perf_counter()
        m = self._model_for(header)
        ch, cw = header.coded_size
        out = np.empty((ch, cw, header.channels), dtype=np.uint8)
        n_tiles, bits, k = header.n_tiles(), 0.0, 0
        adaptive, oriented, fed_back = container.PROFILE_TOOLS[header.profile]
        for sl, fill in plane_groups(header.mode, header.grey):
            group = CodedGroup(streams[k : k + n_tiles], header.stream_crcs[k : k + n_tiles], 0.0)
            planes, b = decode_group(group, ch, cw, sl.stop - sl.start, m.net, m.luts,
                                     header.tile, self.device, first_stream=k, max_batch_bytes=self.batch_bytes,
                                     progress=progress, adaptive=adaptive, oriented=oriented, fed_back=fed_back)
            out[:, :, fill] = planes  # a grey plane fills R, G and B
            bits += b
            k += n_tiles
        fy, fx = header.replication
        if (fy, fx) != (1, 1):  # the blocks' pixels, repeated
            out = np.repeat(np.repeat(out, fy, axis=0), fx, axis=1)
        return DecodedImage(out, header.mode, header.icc_profile, bits, time.perf_counter() - t0)

    def compress(self, image) -> bytes:
        return self.encode(image).data

    def decompress(self, data: bytes) -> np.ndarray:
        """-> uint8 (H, W) for L, else (H, W, C): C = 2 LA, 3 RGB, 4 RGBA."""
        a = self.decode(data).array
        return a[:, :, 0] if a.shape[2] == 1 else a

    def _model_for(self, header: ArmHeader) -> LoadedModel:
        m = self.model if header.model == self.model.entry.name else get_model(header.model, self.device, self.weights_dir)
        if m.sha256_prefix != header.weights_sha256:
            raise ModelError(
                f"file was written with model {header.model!r} weights {header.weights_sha256.hex()}, "
                f"but the installed {m.entry.name!r} weights are {m.sha256_prefix.hex()}: install the matching weights"
            )
        return m


_codecs: dict[tuple, Codec] = {}


def _codec(model: str, device) -> Codec:
    key = (model, str(device))
    if key not in _codecs:
        _codecs[key] = Codec(model, device)
    return _codecs[key]


def compress(image, model: str = DEFAULT_MODEL, device: str = "auto") -> bytes:
    """uint8 array (H, W) / (H, W, 1..4) or image path -> .arm bytes."""
    return _codec(model, device).compress(image)


def decompress(data: bytes, device: str = "auto") -> np.ndarray:
    """.arm bytes -> uint8 array: (H, W) for L, (H, W, C) for LA, RGB, RGBA (C = 2, 3, 4).

    The mode follows from the shape; :func:`read_info` or :meth:`Codec.decode` give it
    explicitly, with the ICC profile."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArmcodecError(f"decompress expects bytes, got {type(data).__name__}")
    header, streams = container.parse(bytes(data))
    a = _codec(header.model, device).decode_parsed(header, streams).array
    return a[:, :, 0] if a.shape[2] == 1 else a


def read_info(data: bytes) -> dict:
    """Validated header fields of an .arm file (mode, size, tiles, model, ...), without decoding."""
    header, _ = container.parse(bytes(data))
    return header.describe()


def write_atomic(path: Path, data: bytes | None = None, writer=None, force: bool = False) -> None:
    """Write to a temporary file in the target directory, then rename: nothing appears at
    ``path`` unless complete.  ``writer(tmp_path)`` writes formats that need a file name."""
    from armcodec.errors import OutputExistsError

    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists (use --force to overwrite)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        if writer is not None:
            writer(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if path.exists() and not force:
            raise OutputExistsError(f"{path} exists (use --force to overwrite)")
        os.replace(tmp, path)
    except OSError as e:
        raise ArmcodecError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
