"""armcodec: lossless image compression with an integer-exact autoregressive model and ANS.

Public API::

    data = armcodec.compress(array_or_path)     # -> bytes (.arm)
    array = armcodec.decompress(data)           # -> uint8 (H, W) or (H, W, C)
    codec = armcodec.Codec(model="default", device="auto")   # keeps a model loaded
    armcodec.list_models(), armcodec.read_info(data)

Every error raised on bad input derives from :class:`ArmcodecError`.
"""
from armcodec.api import Codec, DecodedImage, Encoded, compress, decompress, read_info
from armcodec.errors import (
    ArmcodecError,
    ChecksumError,
    FormatError,
    LimitError,
    ModelError,
    OutputExistsError,
    UnsupportedInputError,
)
from armcodec.models.registry import list_models

__version__ = "0.1.0"

__all__ = [
    "ArmcodecError", "ChecksumError", "Codec", "DecodedImage", "Encoded", "FormatError", "LimitError",
    "ModelError", "OutputExistsError", "UnsupportedInputError", "compress", "decompress", "list_models",
    "read_info", "__version__",
]
