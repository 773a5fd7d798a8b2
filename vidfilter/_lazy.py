"""Lazy attributes of a package: names resolved by importing their module on first use; and
packages callable as the function they are named after (:func:`callable_package`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import sys
import types
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


def callable_package(package: str, func: Callable[..., Any]) -> None:
    """Make the imported package ``package`` callable as ``func``.

    ``vidfilter.train`` and ``vidfilter.track`` name both a subpackage and its main function. Once
    the subpackage is imported, Python binds the parent's attribute to the package, so
    ``vidfilter.train(...)`` would call a module; a callable package calls the function instead.
    """

    class CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    CallablePackage.__doc__ = f"The package {package}, callable as {func.__module__}.{func.__qualname__}."
    sys.modules[package].__class__ = CallablePackage
