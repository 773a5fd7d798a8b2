"""Bundles shipped inside the package, addressed by name (``--model worm-plate``, ``--init worm-plate``).

A shipped bundle is a file ``vidfilter/models/pretrained/<name with underscores>.vfm``; its name is the
setup it was trained for (``vidfilter.train.pretrain`` writes them). Every place that loads a bundle
goes through :func:`resolve_bundle`, so a name works wherever a path does: the command line, the
Python API (``vidfilter.run(..., model="worm-plate")``) and dask workers.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SETUP_NAMES", "SHIPPED_DIR", "resolve_bundle", "resolve_init", "setup_of", "shipped_names", "shipped_path"]

SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The setups :mod:`vidfilter.train.pretrain` builds a bundle for.
SETUP_NAMES = ("worm-plate", "open-arena", "bright-arena")


def shipped_path(name: str) -> Path:
    """Where the shipped bundle ``name`` lives (whether or not it is installed)."""
    return SHIPPED_DIR / f"{name.replace('-', '_')}.vfm"


def shipped_names() -> list[str]:
    """The names of the bundles installed with the package."""
    return sorted(p.stem.replace("_", "-") for p in SHIPPED_DIR.glob("*.vfm"))


def resolve_bundle(ref: str | os.PathLike[str]) -> Path:
    """A bundle path for ``ref``: an existing file, else a shipped bundle's name; else ``ref`` as a path
    (that :func:`~vidfilter.models.load_model` then reports as missing)."""
    path = Path(ref)
    if path.is_file():
        return path
    if isinstance(ref, str) and ref in shipped_names():
        return shipped_path(ref)
    return path


def resolve_init(init: str | os.PathLike[str] | None) -> Path | None:
    """``--init``: a setup name (the shipped bundle) or a bundle path, resolved as
    :func:`resolve_bundle` does for ``--model``; checked before training."""
    from vidfilter.errors import ConfigError

    if init is None:
        return None
    path = resolve_bundle(str(init) if str(init) in SETUP_NAMES else init)
    if path.is_file():
        return path
    if str(init) in SETUP_NAMES:
        raise ConfigError(f"the pretrained bundle of {init!r} is not installed ({shipped_path(str(init))}); "
                          f"rebuild it with `python -m vidfilter.train.pretrain {init}`")
    raise ConfigError(f"--init {init}: no such bundle file, and not a setup name ({', '.join(SETUP_NAMES)})")


def setup_of(path: str | os.PathLike[str] | None) -> str | None:
    """The setup whose shipped bundle ``path`` is (``None`` for any other file)."""
    if path is None:
        return None
    here = Path(path).resolve()
    return next((name for name in SETUP_NAMES if shipped_path(name).resolve() == here), None)
