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

from PIL import Image, ImageFile, UnidentifiedImageError

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
        self._mode = header.mode
        self._size = (header.width, header.height)
        if header.icc_profile:
            self.info["icc_profile"] = header.icc_profile
        for kind, key, value in header.metadata:  # as Pillow's PNG and WebP readers give them
            if kind == "text":
                self.info[key] = value.decode("utf-8")
            else:
                self.info[kind] = value
        self.info["armcodec"] = header.describe()
        self.tile = [ImageFile._Tile(FORMAT, (0, 0) + self.size, 0, None)]


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
        a = image.array
        self.set_as_raw(a[:, :, 0].tobytes() if a.shape[2] == 1 else a.tobytes(), image.mode)
        return -1, 0


def _save(im: Image.Image, fp, filename) -> None:
    from armcodec.api import _codec

    params = im.encoderinfo
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        raise OSError(f"cannot write mode {im.mode} as {FORMAT} (armcodec codes L, LA, RGB and RGBA exactly; "
                      "convert first if that is what you want to store)")
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
