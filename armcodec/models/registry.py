"""Architectures by name: each exact model class registers itself once with :func:`register`;
:mod:`armcodec.weights` builds a stored model through :func:`architecture`.  The built-in architectures register when
:mod:`armcodec.models` is imported."""
from __future__ import annotations

from armcodec.errors import ModelError

_ARCHITECTURES: dict[str, type] = {}


def register(name: str):
    """Class decorator: make an :class:`~armcodec.models.base.ExactModel` known as ``name``."""

    def add(cls: type) -> type:
        if name in _ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is already registered")
        cls.architecture = name
        _ARCHITECTURES[name] = cls
        return cls

    return add


def architecture(name: str) -> type:
    """The registered class of architecture ``name``; ModelError if none is."""
    if name not in _ARCHITECTURES:
        raise ModelError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHITECTURES))}")
    return _ARCHITECTURES[name]


def architectures() -> list[str]:
    return sorted(_ARCHITECTURES)
