"""Every error armcodec raises on bad input derives from :class:`ArmcodecError`."""


class ArmcodecError(Exception):
    """Base class of all armcodec errors on bad input, files, models or limits."""

    exit_code = 1


class FormatError(ArmcodecError):
    """The data is not a valid .arm file (bad magic, version, lengths or fields)."""

    exit_code = 3


class ChecksumError(FormatError):
    """A CRC32 does not match: the file is corrupted."""

    exit_code = 4


class UnsupportedInputError(ArmcodecError):
    """The input image cannot be coded exactly (mode, bit depth, frames) or cannot be read."""

    exit_code = 5


class ModelError(ArmcodecError):
    """Unknown model, or weights that are missing, corrupted or differ from the file's."""

    exit_code = 6


class LimitError(ArmcodecError):
    """A declared size exceeds the configured limits."""

    exit_code = 7


class OutputExistsError(ArmcodecError):
    """The output path exists and overwriting was not requested."""

    exit_code = 8
