"""imageio v3 plugin: ``imageio.v3.imread("x.arm")`` and ``imwrite("y.arm", array)`` after
``import armcodec``, registered in imageio's plugin and extension tables (``plugin="armcodec"``
selects it explicitly).  Arrays are uint8 (H, W) or (H, W, 1..4), as :func:`armcodec.compress`
takes them; ``imwrite`` accepts ``model=`` and ``device=``.
"""
from __future__ import annotations

import numpy as np
from imageio.config import known_extensions, known_plugins
from imageio.config.extensions import FileExtension
from imageio.config.plugins import PluginConfig
from imageio.core.request import URI_BYTES, InitializationError, IOMode, Request
from imageio.core.v3_plugin_api import ImageProperties, PluginV3

from armcodec import container
from armcodec.errors import ArmcodecError

NAME = "armcodec"
EXTENSION = ".arm"


class ArmPlugin(PluginV3):
    """One .arm file: one image, read or written whole."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self._header = self._streams = None
        if request.mode.io_mode == IOMode.read:
            data = request.get_file().read()
            if data[:4] != container.MAGIC:
                raise InitializationError(f"{request.raw_uri!r} is not an armcodec file")
            try:
                self._header, self._streams = container.parse(data)
            except ArmcodecError as e:
                raise OSError(f"armcodec: {e}") from None
        elif request.extension not in (EXTENSION, None) and request.format_hint != EXTENSION:
            raise InitializationError(f"armcodec writes {EXTENSION} files, not {request.extension}")

    def read(self, *, index: int | None = 0) -> np.ndarray:
        from armcodec.api import _codec, decoding_model

        if index not in (0, None, Ellipsis):
            raise IndexError(f"an armcodec image file holds one image; index {index} does not exist")
        try:
            a = _codec(decoding_model(self._header), "auto").decode_parsed(self._header, self._streams).array
        except ArmcodecError as e:
            raise OSError(f"armcodec: {e}") from None
        return a[:, :, 0] if a.shape[2] == 1 else a

    def iter(self):
        yield self.read()

    def write(self, ndimage, *, model: str = "default", device: str = "auto", is_batch: bool = False):
        from armcodec.api import _codec

        if is_batch or (isinstance(ndimage, list) and len(ndimage) != 1):
            raise ValueError("an armcodec image file holds one image")
        image = np.asarray(ndimage[0] if isinstance(ndimage, list) else ndimage)
        try:
            data = _codec(model, device).compress(image)
        except ArmcodecError as e:
            raise OSError(f"armcodec: {e}") from None
        self.request.get_file().write(data)
        return data if self.request._uri_type == URI_BYTES else None  # imwrite("<bytes>", ...) returns them

    def properties(self, index: int | None = 0) -> ImageProperties:
        h = self._header
        shape = (h.height, h.width) if h.channels == 1 else (h.height, h.width, h.channels)
        return ImageProperties(shape=shape, dtype=np.dtype(np.uint8), n_images=None, is_batch=False)

    def metadata(self, index: int | None = 0, exclude_applied: bool = True) -> dict:
        meta = dict(self._header.describe())
        if self._header.icc_profile:
            meta["icc_profile"] = self._header.icc_profile
        for kind, key, value in self._header.metadata:
            meta[key if kind == "text" else kind] = value.decode("utf-8") if kind == "text" else value
        return meta


known_plugins[NAME] = PluginConfig(name=NAME, class_name="ArmPlugin", module_name="armcodec.plugins.imageio_arm")
known_extensions.setdefault(EXTENSION, []).insert(0, FileExtension(
    extension=EXTENSION, priority=[NAME], name="armcodec", description="armcodec lossless image (learned model + ANS)"))
