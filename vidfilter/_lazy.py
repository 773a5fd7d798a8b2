"""Lazy attributes of a package: names resolved by importing their module on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str | tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps an attribute to the module that
    defines it under the same name, or to ``(module, name there)``."""

    def __getattr__(name: str) -> Any:
        if name in names:
            where = names[name]
            module, attr = (where, name) if isinstance(where, str) else where
            return getattr(import_module(module), attr)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
