"""Pillow plugin: ``PIL.Image.open("x.arm")`` and ``im.save("y.arm")`` after ``import armcodec``.

Registered the way Pillow's own plugins are (``register_open`` with a magic check,
``register_save``, ``register_extension``, ``register_mime``).  Opening reads and validates the
header only (size, mode, ICC profile in ``info``); the pixels are decoded when Pillow loads them,
by the weights the file names.  Saving takes ``model=`` (a preset name, as ``--model``) and
``device=``; the ICC profile comes from ``icc_profile=`` or the image's ``info``.  A damaged header
raises :class:`PIL.UnidentifiedImageError` and damaged data :class:`OSError`, each with
armcodec's message.
"""
from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageFile, ImagePalette, UnidentifiedImageError

from armcodec import container
from armcodec.errors import ArmcodecError

FORMAT = "ARM"
MIME = "image/x-armcodec"
EXTENSION = ".arm"


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


class ArmImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "armcodec lossless image"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            header, _ = container.parse(data)
        except ArmcodecError as e:  # the magic matched: say what is wrong instead of "cannot identify"
            raise UnidentifiedImageError(f"cannot identify image file as {FORMAT}: armcodec: {e}") from None
        if header.frames != 1:
            raise UnidentifiedImageError(f"armcodec: {header.frames} frames; the Pillow plugin reads single images")
        self._mode = pillow_mode(header.mode, header.bits)
        self._size = (header.width, header.height)
        if header.icc_profile:
            self.info["icc_profile"] = header.icc_profile
        if header.palette:
            self.palette = ImagePalette.raw("RGB", header.palette)
        for kind, key, value in header.metadata:  # as Pillow's PNG and WebP readers give them
            if kind == "text":
                self.info[key] = value.decode("utf-8")
            elif kind == "transparency":
                self.info[kind] = _transparency(header.mode, value)
            elif kind == "chunk":
                self.info.setdefault("png_chunks", []).append((key, value))
            else:
                self.info[kind] = value
        self.info["armcodec"] = header.describe()
        self.tile = [ImageFile._Tile(FORMAT, (0, 0) + self.size, 0, None)]


def pillow_mode(mode: str, bits: int) -> str:
    """The Pillow mode an image is opened as: Pillow's PNG reader's (1-bit grey is "1", 16-bit grey
    "I;16", 2/4-bit grey "L" scaled to 0..255, 16-bit RGB/RGBA their 8-bit mode and LA RGBA, high bytes:
    ``armcodec.Codec().decode`` or imageio give those samples exactly)."""
    if mode == "L":
        return {1: "1", 16: "I;16"}.get(bits, "L")
    return "RGBA" if (mode, bits) == ("LA", 16) else mode


def _transparency(mode: str, value: bytes):
    if mode == "P":  # as PngImagePlugin: one fully transparent entry is its index
        return value.find(b"\0") if re.fullmatch(b"\xff*\x00\xff*", value) else value
    values = [int.from_bytes(value[k : k + 2], "little") for k in range(0, len(value), 2)]
    return values[0] if len(values) == 1 else tuple(values)


class ArmDecoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer):
        from armcodec.api import _codec, decoding_model

        self.fd.seek(0)
        data = self.fd.read()
        try:
            header, streams = container.parse(data)
            image = _codec(decoding_model(header), "auto").decode_parsed(header, streams)
        except ArmcodecError as e:
            raise OSError(f"armcodec: {e}") from None
        a, mode = image.array, pillow_mode(image.mode, image.bits)
        if image.bits == 16 and mode != "I;16":
            a = (a >> 8).astype(np.uint8)
        elif image.bits < 8 and mode == "L":
            a = a * (255 // ((1 << image.bits) - 1))
        if image.mode == "LA" and mode == "RGBA":
            a = a[:, :, [0, 0, 0, 1]]
        raw = {"1": "1;8", "I;16": "I;16"}.get(mode, mode)
        a = a.astype("<u2") if mode == "I;16" else a.astype(np.uint8)
        self.set_as_raw(np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a).tobytes(), raw)
        return -1, 0


def _save(im: Image.Image, fp, filename) -> None:
    from armcodec.api import _codec

    params = im.encoderinfo
    if im.mode not in ("1", "L", "LA", "RGB", "RGBA", "P", "PA", "I;16", "I;16B", "I;16L"):
        raise OSError(f"cannot write mode {im.mode} as {FORMAT} (armcodec codes 1, L, LA, RGB, RGBA, P, PA and "
                      "I;16 exactly; convert first if that is what you want to store)")
    icc = params.get("icc_profile", im.info.get("icc_profile"))
    if icc != im.info.get("icc_profile"):
        im = im.copy()
        if icc:
            im.info["icc_profile"] = icc
        else:
            im.info.pop("icc_profile", None)
    try:
        data = _codec(params.get("model", "default"), params.get("device", "auto")).compress(im)
    except ArmcodecError as e:
        raise OSError(f"armcodec: {e}") from None
    fp.write(data)


Image.register_open(FORMAT, ArmImageFile, _accept)
Image.register_decoder(FORMAT, ArmDecoder)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, EXTENSION)
Image.register_mime(FORMAT, MIME)
