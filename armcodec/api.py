"""The library API: image or path -> .arm bytes, and back.

Data flow::

    compress:   path/array --io--> uint8 (H, W, C) + ImageInfo --transforms (plane groups, grey plane,
                replication)--> encoder.group.encode_group (tiles, model, tables, ANS) --> container.write --> bytes
    decompress: bytes --container.parse (validated)--> weights by sha256 (name checked) --> coding.planes.decode_groups
                (the model's schedule, CRC per tile) --> transforms undone --> uint8 (H, W, C) + mode
"""
from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from armcodec import allocator, container, threads
from armcodec.coding.feedback import FEATURE_SETS as FEEDBACK_FEATURE_SETS
from armcodec.coding.feedback import LATEST as FEEDBACK_FEATURES
from armcodec.coding.feedback import usable as usable_feedback
from armcodec.coding import classic, tile_png
from armcodec.coding.scan import tile_grid
from armcodec.coding.planes import DEFAULT_BATCH_BYTES, CodedGroup, GroupJob, decode_groups
from armcodec.coding.workers import DecodeWorkers
from armcodec.coding.scan import check_crc, samples_crc
from armcodec.container import DEFAULT_MAX_PIXELS, ArmHeader, CoderTools
from armcodec.encoder.group import encode_group
from armcodec.exact import kernels
from armcodec.errors import ArmcodecError, LimitError, ModelError, UnsupportedInputError
from armcodec.io.files import write_atomic  # noqa: F401  (part of the API since 0.1)
from armcodec.io.image import ImageInfo, from_array, from_pil, read_image
from armcodec.transforms import (from_levels, from_planes, is_grey_rgb, plane_groups, replicate,  # noqa: F401
                                 replication_factors, sample_levels, to_levels, to_planes)
from armcodec.weights import DEFAULT_PRESET, LoadedWeights, Manifest, Preset, get_weights, read_manifest

DEFAULT_MODEL = DEFAULT_PRESET
CLASSIC_DEFAULT = True  # Codec(classic=None): also try the classic path (PNG's zlib stream, lossless WebP)


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


def list_models(weights_dir: Path | None = None) -> list[Preset]:
    """The presets ``--model`` / ``Codec(model=...)`` accept (default: the shipped weights)."""
    return list(read_manifest(weights_dir).presets.values())


@dataclass
class Encoded:
    """Result of :meth:`Codec.encode`: the .arm bytes and what the model says they should cost."""

    data: bytes
    model_bits: float  # -log2 likelihood under the exact integer tables (with adaptation: + its offsets)
    width: int
    height: int
    mode: str
    seconds: float
    coder: str = "model"  # or "png" / "png-adam7" / "webp": the classic file the encoder found smaller (then
    # model_bits is its size); "model+png": some tile streams are PNG zlib streams (coder tool 4)

    @property
    def channels(self) -> int:
        return len(self.mode)

    @property
    def bpsp(self) -> float:
        """Bits per subpixel of the whole file (container included)."""
        return len(self.data) * 8 / (self.width * self.height * self.channels)


@dataclass
class Evaluation:
    """Result of :meth:`Codec.evaluate`: the model's bits for an image, without a file."""

    model_bits: float
    width: int
    height: int
    mode: str
    seconds: float

    @property
    def channels(self) -> int:
        return len(self.mode)

    @property
    def bpsp(self) -> float:
        """The model's bits per subpixel (bits/dim)."""
        return self.model_bits / (self.width * self.height * self.channels)


@dataclass
class DecodedImage:
    """Result of :meth:`Codec.decode`: samples (H, W, C) at their native values (uint8, uint16 for
    16 bits), mode L/LA/RGB/RGBA/P/PA, bit depth, palette, ICC profile and the other metadata the
    file stores (EXIF, XMP, PNG text, transparency, PNG chunks)."""

    array: np.ndarray
    mode: str
    icc_profile: bytes
    model_bits: float
    seconds: float
    metadata: tuple = ()  # ((kind, key, value bytes), ...): the EXIF, XMP and text entries stored
    bits: int = 8
    palette: bytes = b""

    @property
    def info(self) -> ImageInfo:
        return ImageInfo(self.mode, self.icc_profile, self.metadata, self.bits, self.palette)


class Codec:
    """Keeps a model loaded for many images.

    ``model`` names a preset of the weights manifest (``weights_dir``, default the shipped weights):
    weights plus encoder settings, see ``armcodec models``; ``tile_size`` overrides the preset's;
    ``max_pixels`` bounds what decode accepts; ``batch_bytes`` (default 2560 MiB) bounds the memory
    of one batch of tiles coded together (activation maps and per-pixel state: the part that is not
    the image itself; docs/DESIGN.md has measured peaks).  Neither the batch nor the thread count
    changes a single output bit.

    Coder tools (each smaller files for a slower encode; decoding costs about the same):
    ``adaptive`` (default on) picks a scale offset per 32x32 block and channel and sends it;
    ``orient`` (with ``adaptive``; default: the preset's setting, on for ``default`` and ``max``)
    picks per tile whether it is coded mirrored, scored by the float copy of the preset's
    orientation weights (``fast``'s for ``default``, the model's own for ``max``);
    ``orient_proxy`` names other weights for that search.
    ``feedback`` (with ``adaptive``; default on) fits and sends per tile a linear prediction of the
    model's residual from the residuals around it (feature set 3; sets 1 and 2 are only decoded);
    a model whose schedule codes those neighbours later (the multi-scale ``pyramid``) codes without it.
    ``classic`` (default on) also codes the image as a PNG's zlib stream and as lossless WebP and
    keeps the smallest file (small, flat or synthetic images; :mod:`armcodec.coding.classic`).
    Decoding reads the tools from the file, and every file any release wrote.
    ``kernel`` (``auto``, ``float``, ``int8``; default ``ARMCODEC_KERNEL`` or ``auto``) picks the
    model's integer products (:mod:`armcodec.exact.kernels`): ``auto`` takes int8 products on CUDA
    and on CPUs with VNNI/AMX once they passed an exactness check; every kernel gives the same bytes.
    ``strip`` (default off: every chunk is kept) leaves out EXIF, XMP, text and the PNG chunks
    that do not change how the pixels look (:func:`strip_metadata`); pixels, palette, transparency
    and the ICC profile stay exact.
    ``binned`` (default on; coder tool 5, since 0.11) codes each sample the model predicts as two
    symbols, its bin of 16 values and its place in the bin, whose tables take about 8x less work
    than one table of 256 (the same size within a few bytes); off writes what 0.10 and earlier
    wrote, byte for byte.

    >>> codec = Codec()                                  # default preset, CUDA if available
    >>> data = codec.compress(np.zeros((8, 8, 3), np.uint8))
    >>> codec.decompress(data).shape
    (8, 8, 3)
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str | torch.device = "auto",
                 tile_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, weights_dir: Path | None = None,
                 batch_bytes: int | None = None, adaptive: bool = True, orient: bool | None = None,
                 feedback: bool = True, feedback_features: int = FEEDBACK_FEATURES, orient_proxy: str | None = None,
                 classic: bool | None = None, kernel: str | None = None, strip: bool = False, binned: bool = True):
        self.device = resolve_device(device)
        self.strip = strip
        try:
            self.kernel = kernels.check_name(kernel) if kernel is not None else kernels.requested()
        except ValueError as e:
            raise ArmcodecError(str(e)) from None
        self.classic = CLASSIC_DEFAULT if classic is None else classic
        self.weights_dir = weights_dir
        self.manifest: Manifest = read_manifest(weights_dir)
        self.preset: Preset = self.manifest.preset(model)
        self.model: LoadedWeights = get_weights(self.preset.weights, self.device, self.manifest.directory)
        self.tile_size = tile_size or self.preset.tile_size
        if not container.MIN_TILE <= self.tile_size <= container.MAX_TILE:
            raise ArmcodecError(f"tile size {self.tile_size} outside [{container.MIN_TILE}, {container.MAX_TILE}]")
        self.max_pixels = max_pixels
        self.batch_bytes = batch_bytes or DEFAULT_BATCH_BYTES
        if feedback_features != FEEDBACK_FEATURES:
            raise ArmcodecError(f"feedback feature set {feedback_features} is only decoded; new files use set "
                                f"{FEEDBACK_FEATURES} (known: {FEEDBACK_FEATURE_SETS})")
        orient = adaptive and (self.preset.orient if orient is None else orient)
        feedback = feedback and usable_feedback(self.model.net.precedes)  # not with a multi-scale model
        self.tools = CoderTools(adaptive, orient, FEEDBACK_FEATURES if adaptive and feedback else 0, binned=binned)
        self.orient_weights = self.preset.orient_proxy  # None: the model's own float copy
        if orient_proxy is not None and orient:  # only the search uses them
            self.orient_weights = self.manifest.by_name(orient_proxy)
            if self.orient_weights is None:
                raise ModelError(f"unknown model {orient_proxy!r} (orientation search weights)")

    @contextmanager
    def _coding(self):
        """Around one encode or decode: the thread budget, the allocator, the kernel (and full
        float32 products, whatever precision the calling program set: :func:`kernels.exact_settings`),
        and torch's inference mode (no gradient is ever wanted here; each of the decoder's
        thousands of small operations costs less: a pyramid decode 4% faster)."""
        with threads.managed(self.device), allocator.coding(), kernels.using(self.kernel), torch.inference_mode():
            try:
                yield
            except kernels.KernelError as e:
                raise ArmcodecError(str(e)) from None

    @property
    def kernel_in_use(self) -> str:
        """``float`` or ``int8``: what this codec's products run with on its device."""
        with kernels.using(self.kernel):
            return kernels.kernel_for(self.device)

    @property
    def adaptive(self) -> bool:
        return self.tools.adaptation

    @property
    def orient(self) -> bool:
        return self.tools.orientation

    @property
    def feedback(self) -> bool:
        return bool(self.tools.feedback)

    @property
    def orient_proxy(self) -> str | None:
        """The name of the weights whose float copy picks orientations (None: the model's own)."""
        return self.orient_weights.name if self.orient_weights and self.tools.orientation else None

    @property
    def profile(self) -> int | None:
        """The version-1 coder profile number with this codec's tools (informative)."""
        return container.legacy_profile(self.tools)

    def encode(self, image, progress=None) -> Encoded:
        """image: uint8 or uint16 array (H, W) or (H, W, 1..4), a path of an image file (or its
        bytes: any PNG, 16-bit TIFF, what Pillow reads exactly), or a Pillow image (modes L, LA,
        RGB, RGBA, P, PA, 1, I;16; its ICC profile and metadata are kept)."""
        with self._coding():
            return self._encode(image, progress)

    def evaluate(self, image, progress=None) -> Evaluation:
        """The model's bits for an image without ANS or a file (``armcodec eval``): the encoder's
        tables, summed.  With this codec's coder tools off (``adaptive=False``) that is the model
        alone, one parallel pass: the ``model_bits`` :meth:`encode` reports for the same codec; with
        them on it includes the encoder's searches and their side information."""
        with self._coding():
            enc = self._encode(image, progress, count_only=True)
        return Evaluation(enc.model_bits, enc.width, enc.height, enc.mode, enc.seconds)

    def _encode(self, image, progress=None, count_only: bool = False) -> Encoded:
        t0 = time.perf_counter()
        if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
            arr, info = read_image(image)  # a path, or an image file's bytes
        elif isinstance(image, Image.Image):
            arr, info = from_pil(image)
        else:
            arr, info = from_array(image)
        h, w, _ = arr.shape
        if h * w > self.max_pixels:
            raise LimitError(f"image of {w}x{h} pixels exceeds the limit of {self.max_pixels} pixels")
        if self.strip:
            info.metadata = strip_metadata(info.metadata)
        transparency = _palette_alpha(info.mode, info.metadata)
        levels = sample_levels(arr, info.bits)  # 16-bit samples of at most 256 values per channel: their indices
        planes = to_planes(arr, info.mode, info.bits, info.palette, transparency, levels)  # what the model codes
        header = ArmHeader(info.mode, w, h, self.tile_size, self.model.entry.name, self.model.sha256_prefix, bits=info.bits,
                           icc_profile=info.icc_profile, metadata=info.metadata, palette=info.palette, levels=levels)
        files = []  # (bytes, coder, model bits), in order of preference on equal size
        if planes is None and (not self.classic or count_only):
            raise UnsupportedInputError("palette image whose pixels use entries that repeat an earlier entry's colour: "
                                        "the model cannot code it; the classic path can (classic=True, the default)")
        with ThreadPoolExecutor(1) as pool:
            # the PNG and WebP candidates (zlib and libwebp release the GIL) on a thread of their
            # own while the model codes (their own headers: the model's thread fills in ``header``);
            # above 64K pixels WebP at its quick setting there, at full effort (1-3 s of a core for a
            # Kodak image, and the model's threads wait at their barriers meanwhile) only after the
            # model, beside the trial of its tiles as PNG streams, and only where the quick file came
            # near the smallest of the model's and the PNG's (graphics, not photographs)
            classic_args = (arr, info, None if levels else planes, levels, transparency)
            classic_files = pool.submit(self._classic_files, *classic_args, "quick") if self.classic and not count_only else None
            model, quick, full, tiles = [], [], None, []
            if planes is not None:
                model, coded = self._model_file(planes, header, progress, count_only)
                if count_only:
                    return Encoded(b"", model[0][2], w, h, info.mode, time.perf_counter() - t0)
            if classic_files is not None:
                quick = classic_files.result()
                others = [len(f[0]) for f in model + quick if f[1] != "webp"]
                webp = [len(f[0]) for f in quick if f[1] == "webp"]
                if h * w > classic.WEBP_SLOW_PIXELS and classic.webp_worth_full(webp, min(others, default=1 << 62)):
                    full = pool.submit(self._classic_files, *classic_args, "full")
            if model and self.classic:
                tiles = self._tile_png_file(coded, header, model[0][2])
            files = model + tiles + quick + (full.result() if full is not None else [])  # (ties: the first)
        if not files:
            raise UnsupportedInputError(f"no coding of this {info.mode} image decodes to it exactly (palette entries repeat a colour)")
        data, coder, bits = min(files, key=lambda f: len(f[0]))  # the first of equal sizes
        return Encoded(data, bits, w, h, info.mode, time.perf_counter() - t0, coder)

    def _model_file(self, planes: np.ndarray, header: ArmHeader, progress, count_only: bool) -> tuple[list[tuple], tuple]:
        """The model's file of an image's planes ([(bytes, "model", model bits)]; bytes empty
        with ``count_only``) and what :meth:`_tile_png_file` needs of it (the coded planes, their
        groups, the streams)."""
        m = self.model
        proxy = self._proxy_net()
        streams, crcs, bits = [], [], 0.0
        header.grey = is_grey_rgb(planes, header.mode, header.coded_bits)
        header.replication = replication_factors(planes)
        fy, fx = header.replication
        coded = planes[::fy, ::fx]  # the blocks' pixels
        groups = plane_groups(header.mode, header.grey, header.coded_bits, header.transparent)
        for sl, _ in groups:
            g = encode_group(coded[:, :, sl], m.net, m.luts, self.tile_size, self.device, self.tools,
                             first_stream=len(streams), max_batch_bytes=self.batch_bytes, progress=progress,
                             orient_proxy=proxy, count_only=count_only)
            streams += g.streams
            crcs += g.crcs
            bits += g.model_bits
        if count_only:
            return [(b"", "model", bits)], ()
        header.stream_crcs, header.tools = crcs, self.tools
        return [(container.write(header, streams), "model", bits)], (coded, groups, streams)

    def _tile_png_file(self, coded_planes: tuple, header: ArmHeader, bits: float) -> list[tuple]:
        """The model's file with the tile streams that zlib codes smaller kept as PNG streams
        (coder tool 4; [] if none is): each tile of each plane group tried as a PNG zlib stream.
        ``bits``: the model file's model bits."""
        coded, groups, streams = coded_planes
        tiles = tile_grid(coded.shape[0], coded.shape[1], self.tile_size)
        parts = [coded[t.y : t.y + t.h, t.x : t.x + t.w, sl] for sl, _ in groups for t in tiles]
        with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:  # zlib and numpy release the GIL
            alts = list(pool.map(tile_png.encode, parts))
        flags = [len(alt) < len(s) for alt, s in zip(alts, streams)]
        if not any(flags):
            return []
        mixed = [alt if f else s for alt, s, f in zip(alts, streams, flags)]
        kept = sum(len(s) for s, f in zip(streams, flags) if not f) / max(1, sum(len(s) for s in streams))
        return [(container.write(dataclasses.replace(header, tools=dataclasses.replace(
            self.tools, classic_tiles=True), classic_streams=flags), mixed), "model+png",
            bits * kept + sum(8.0 * len(s) for s, f in zip(mixed, flags) if f))]  # model bits: by stream bytes

    def _classic_files(self, arr: np.ndarray, info: ImageInfo, planes, levels: tuple,
                       transparency: bytes | None, webp: str = "all") -> list[tuple]:
        """Classic files of the image (:mod:`armcodec.coding.classic`): of its samples, and of its
        levels' indices where it has levels (``webp``: which WebP settings, :func:`classic.candidates`)."""
        found = [(name, payload, ()) for name, payload in classic.candidates(
            arr, info.mode, info.bits, planes, info.source_stream, info.palette, transparency, webp)]
        if levels:
            idx = to_levels(arr, levels)
            found += [(name, payload, levels) for name, payload in classic.candidates(idx, info.mode, 8, idx, webp=webp)]
        crc = samples_crc(_sample_bytes(arr), 0)
        return [(container.write(ArmHeader(info.mode, arr.shape[1], arr.shape[0], self.tile_size, "", bytes(16), bits=info.bits,
                                           icc_profile=info.icc_profile, metadata=info.metadata, palette=info.palette,
                                           stream_crcs=[crc], classic=name, levels=lv), [payload]),
                 name, 8.0 * len(payload)) for name, payload, lv in found]

    def _proxy_net(self):
        """The float network that picks each tile's orientation: the preset's orientation weights
        (a cheaper network: the choice only steers the encoder), else the model's own."""
        if not self.tools.orientation:
            return None
        if self.orient_weights is None:
            return self.model.net.float_proxy()
        proxy = get_weights(self.orient_weights, self.device, self.manifest.directory).net
        if proxy.cfg.image_channels != self.model.net.cfg.image_channels:
            raise ModelError(f"orientation weights {self.orient_weights.name!r} see {proxy.cfg.image_channels} "
                             f"channels, the model {self.model.net.cfg.image_channels}")
        return proxy.float_proxy()

    def sample(self, width: int, height: int, seed=0, progress=None) -> np.ndarray:
        """An image drawn from the preset's model (:mod:`armcodec.sampling`): uint8 (height, width,
        channels), the same for a seed on any machine."""
        from armcodec.sampling import sample_image

        if not (1 <= width <= 4096 and 1 <= height <= 4096):
            raise LimitError(f"sample size {width}x{height} outside 1..4096")
        m = self.model
        with kernels.using(self.kernel):
            return sample_image(m.net, m.luts, height, width, self.tile_size, seed, self.device, progress)[0]

    def decode(self, data: bytes, progress=None) -> DecodedImage:
        return self.decode_parsed(*container.parse(data, self.max_pixels), progress=progress)

    def decode_many(self, files: list[bytes], progress=None) -> list[DecodedImage]:
        """Decode several .arm files at once: the tiles of all of them that share weights, tile size,
        coder tools and plane channels go through the model in common batches, so every wavefront
        step serves all of them (larger products, the same number of steps: on 2 cores about twice
        the images per second of one at a time).  The same images as :meth:`decode` of each; the
        first bad file raises its error (decode the others one by one to tell them apart).  Each
        result's ``seconds`` is the whole call's."""
        return self.decode_parsed_many([container.parse(d, self.max_pixels) for d in files], progress)

    def decode_parsed(self, header: ArmHeader, streams: list[bytes], progress=None) -> DecodedImage:
        """Decode what :func:`armcodec.container.parse` returned (its validation already done)."""
        return self.decode_parsed_many([(header, streams)], progress)[0]

    def decode_parsed_many(self, parsed: list[tuple[ArmHeader, list[bytes]]], progress=None) -> list[DecodedImage]:
        """:meth:`decode_many` of what :func:`armcodec.container.parse` returned."""
        with self._coding():
            return self._decode_parsed(parsed, progress)

    def _decode_parsed(self, parsed: list[tuple[ArmHeader, list[bytes]]], progress=None) -> list[DecodedImage]:
        t0 = time.perf_counter()
        planes: dict[int, np.ndarray] = {}  # image -> its coded planes, filled group by group
        bits = [0.0] * len(parsed)
        done: dict[int, np.ndarray] = {}  # classic files: the image
        # plane groups that can share batches: same weights, tile size, tools and channels
        jobs: dict[tuple, tuple[LoadedWeights, list]] = {}
        for i, (header, streams) in enumerate(parsed):
            if header.classic:  # one PNG stream or WebP file (the encoder found it smaller than the model's streams)
                out = classic.decode(header.classic, streams[0], header.mode, header.width, header.height, header.coded_bits,
                                     header.palette, _palette_alpha(header.mode, header.metadata))
                out = from_levels(out, header.levels) if header.levels else out
                check_crc(_sample_bytes(out), 0, header.stream_crcs[0], f"classic {header.classic} image")
                done[i], bits[i] = out, 8.0 * len(streams[0])
                continue
            m = self._weights_for(header)
            ch, cw = header.coded_size
            planes[i] = np.empty((ch, cw, sum(header.group_sizes)), dtype=np.uint8)
            n_tiles, k = header.n_tiles(), 0
            tools = dataclasses.replace(header.tools, classic_tiles=False)  # tile-wise: each group says which
            for sl, fill in plane_groups(header.mode, header.grey, header.coded_bits, header.transparent):
                group = CodedGroup(streams[k : k + n_tiles], header.stream_crcs[k : k + n_tiles], 0.0,
                                   header.classic_streams[k : k + n_tiles] or None)
                key = (m.entry.sha256, header.tile, tools, sl.stop - sl.start)
                jobs.setdefault(key, (m, []))[1].append((i, fill, GroupJob(group, ch, cw, sl.stop - sl.start, k)))
                k += n_tiles
        for (_, tile, tools, _), (m, items) in jobs.items():
            group_jobs = [job for _, _, job in items]
            sizes = [(job.height, job.width, job.channels) for job in group_jobs]
            with DecodeWorkers.for_decode(sizes, tile, m.net, m.luts, self.device) as workers:
                got = decode_groups(group_jobs, m.net, m.luts, tile, self.device, tools,
                                    max_batch_bytes=self.batch_bytes, progress=progress, workers=workers)
            for (i, fill, _), (out, b) in zip(items, got):
                planes[i][:, :, fill] = out  # a grey plane fills R, G and B
                bits[i] += b
        seconds = time.perf_counter() - t0
        results = []
        for i, (header, _) in enumerate(parsed):
            if i in done:
                out = done[i]
            else:
                coded = replicate(planes.pop(i), header.replication)  # the blocks' pixels, repeated
                out = from_planes(coded, header.mode, header.bits, header.palette, _palette_alpha(header.mode, header.metadata),
                                  levels=header.levels)
            results.append(DecodedImage(out, header.mode, header.icc_profile, bits[i], seconds, header.metadata,
                                        header.bits, header.palette))
        return results

    def compress(self, image) -> bytes:
        return self.encode(image).data

    def decompress(self, data: bytes) -> np.ndarray:
        """-> (H, W) for L and P, else (H, W, C): C = 2 LA and PA, 3 RGB, 4 RGBA; uint8, uint16 for
        16 bits per sample (:meth:`decode` gives the mode, bit depth and palette)."""
        a = self.decode(data).array
        return a[:, :, 0] if a.shape[2] == 1 else a

    def _weights_for(self, header: ArmHeader) -> LoadedWeights:
        """The weights a file was written with: found by its sha256 prefix, answering to its name."""
        if self.model.sha256_prefix == header.weights_sha256 and self.model.entry.answers_to(header.model):
            return self.model
        entry = self.manifest.by_prefix(header.weights_sha256)
        if entry is None or not entry.answers_to(header.model):
            named = self.manifest.by_name(header.model)
            installed = f"the installed {named.name!r} weights are {named.sha256_prefix.hex()}" if named else \
                "no installed weights have that sha256"
            raise ModelError(f"file was written with model {header.model!r} weights {header.weights_sha256.hex()}, "
                             f"but {installed}: install the matching weights")
        return get_weights(entry, self.device, self.manifest.directory)


# PNG chunks that change how the pixels look: kept by ``strip`` (with the ICC profile and the transparency)
RENDERING_CHUNKS = ("gAMA", "cHRM", "sRGB", "sBIT", "cICP", "mDCv", "cLLi")


def strip_metadata(metadata: tuple) -> tuple:
    """What ``Codec(strip=True)`` keeps of an image's metadata: the transparency and the PNG chunks
    that change how its pixels look (:data:`RENDERING_CHUNKS`); EXIF, XMP, text and the other
    chunks (time, physical size, suggested palettes, ...) are left out, as ``oxipng --strip safe``
    and ``cwebp -metadata none`` do.  The ICC profile is kept (it is not in ``metadata``)."""
    return tuple(m for m in metadata if m[0] == "transparency" or (m[0] == "chunk" and m[1] in RENDERING_CHUNKS))


def _palette_alpha(mode: str, metadata: tuple) -> bytes | None:
    """A palette image's tRNS alpha bytes (None for other modes, or without one)."""
    return next((v for kind, _, v in metadata if kind == "transparency"), None) if mode == "P" else None


def _sample_bytes(arr: np.ndarray) -> np.ndarray:
    """Samples as the bytes a classic file's CRC covers (16-bit samples little-endian)."""
    return arr if arr.dtype == np.uint8 else np.ascontiguousarray(arr.astype("<u2")).view(np.uint8)


def decoding_model(header: ArmHeader, manifest: Manifest | None = None) -> str:
    """The name to build a :class:`Codec` with that decodes a file: its weights' name when they are
    installed (found by sha256 prefix in ``manifest``, default the shipped one), else the name the
    file carries (which then fails clearly)."""
    manifest = manifest or _shipped_manifest()
    if header.classic:  # no weights needed: any installed preset's codec decodes it
        return DEFAULT_PRESET if DEFAULT_PRESET in manifest.presets else next(iter(manifest.presets))
    entry = manifest.by_prefix(header.weights_sha256)
    return entry.name if entry is not None else header.model


_manifests: dict[str, Manifest] = {}


def _shipped_manifest() -> Manifest:
    """The installed manifest, read once per weights folder (like the codecs below, kept per process)."""
    from armcodec.weights import weights_dir

    key = str(weights_dir())
    if key not in _manifests:
        _manifests[key] = read_manifest()
    return _manifests[key]


_codecs: dict[tuple, Codec] = {}


def _codec(model: str, device) -> Codec:
    """A codec per preset, device and weights folder, kept for the process (the module functions
    and the Pillow and imageio plugins share them)."""
    from armcodec.weights import weights_dir

    key = (model, str(device), str(weights_dir()))
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
    a = _codec(decoding_model(header), device).decode_parsed(header, streams).array
    return a[:, :, 0] if a.shape[2] == 1 else a


def read_info(data: bytes) -> dict:
    """Validated header fields of an .arm file (mode, size, tiles, model, ...), without decoding."""
    header, _ = container.parse(bytes(data))
    return header.describe()
