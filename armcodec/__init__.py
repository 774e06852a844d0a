"""armcodec: lossless image compression with an integer-exact autoregressive model and ANS.

Public API::

    data = armcodec.compress(array_or_path)     # -> bytes (.arm)
    array = armcodec.decompress(data)           # -> uint8 (H, W) or (H, W, C)
    codec = armcodec.Codec(model="default", device="auto")   # a preset; keeps its model loaded
    armcodec.list_models(), armcodec.read_info(data)
    vc = armcodec.VideoCodec()                    # videos: frames -> a video .arm and back (armcodec.video)

Data flow: image -> transforms -> model (integer-exact) -> integer tables -> ANS -> container, and
back.  Decoder-exact code lives in ``exact/``, ``models/`` (``*_exact``), ``coding/`` and
``container``; encoder-only searches in ``encoder/``; training in ``training/``.

Every error raised on bad input derives from :class:`ArmcodecError`.
"""
from armcodec.api import Codec, DecodedImage, Encoded, compress, decompress, list_models, read_info
from armcodec.errors import (
    ArmcodecError,
    ChecksumError,
    FormatError,
    LimitError,
    ModelError,
    OutputExistsError,
    UnsupportedInputError,
)

from armcodec import plugins  # noqa: F401,E402  (Pillow and imageio learn the .arm format)
from armcodec.video import VideoCodec  # noqa: E402

__version__ = "0.18.0"

__all__ = [
    "ArmcodecError", "ChecksumError", "Codec", "DecodedImage", "Encoded", "FormatError", "LimitError",
    "ModelError", "OutputExistsError", "UnsupportedInputError", "compress", "decompress", "list_models",
    "read_info", "VideoCodec", "__version__",
]
