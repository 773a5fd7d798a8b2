"""Model bundles: one file holding a trained network with its config, normalisation and provenance.

A bundle is a ``torch.save`` archive of plain data (str/int/float/bool/None/list/dict and the
state-dict tensors), so it loads with ``torch.load(weights_only=True)`` and never executes code::

    {"format": "vidfilter-bundle", "bundle_version": 1, "vidfilter_version": "0.1.0",
     "config": Config.to_dict(), "model": ModelConfig dict, "normalisation": {...},
     "provenance": {...}, "state_dict": {...}, "weights_sha256": "..."}

``weights_sha256`` (see :func:`weights_digest`) lets :func:`load_model` detect flipped bytes inside
the tensors, which the zip container itself does not check.

It is written to a temporary file in the destination folder, flushed and fsync'ed, then renamed
over the destination, so a crash never leaves a half-written bundle under the final name.
The suggested suffix is ``.vfm``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidfilter.config import Config, ModelConfig
from vidfilter.errors import BundleError, ConfigError, InputNotFoundError
from vidfilter.io.sink import atomic_path
from vidfilter.models.shipped import resolve_bundle, shipped_names
from vidfilter.models.unet import UNet, build_model

__all__ = ["BUNDLE_FORMAT", "BUNDLE_SUFFIX", "BUNDLE_VERSION", "Bundle", "BundleNotFoundError",
    "DEFAULT_NORMALISATION", "load_model", "save_bundle", "weights_digest"]

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "vidfilter-bundle"
BUNDLE_VERSION = 1
BUNDLE_SUFFIX = ".vfm"
DEFAULT_NORMALISATION: dict[str, Any] = {"dtype": "uint8", "scale": 255.0, "polarity": "dark"}


class BundleNotFoundError(InputNotFoundError, BundleError):
    """The bundle path does not exist (both an :class:`InputNotFoundError` and a :class:`BundleError`)."""


@dataclass
class Bundle:
    """A loaded model bundle.

    Attributes
    ----------
    model
        The network, in eval mode, on the requested device.
    config
        The full run :class:`~vidfilter.config.Config` the model was trained with.
    normalisation
        How frames were scaled for the network (``dtype``, ``scale``, ``polarity``, ...).
    provenance
        Free-form facts about training (data, steps, time, host...).
    version
        ``vidfilter_version`` that wrote the bundle.
    bundle_version
        Bundle format version.
    sha256
        Hash of the bundle file's bytes (identifies the model in run metadata).
    path
        Where the bundle was loaded from.
    """

    model: UNet
    config: Config
    normalisation: dict[str, Any]
    provenance: dict[str, Any]
    version: str
    sha256: str
    path: Path
    bundle_version: int = BUNDLE_VERSION
    model_config: dict[str, Any] = field(default_factory=dict)


def _vidfilter_version() -> str:
    from vidfilter import __version__

    return str(__version__)


def _plain(value: Any, what: str) -> Any:
    """JSON round trip: keeps metadata loadable with ``weights_only=True`` (tuples -> lists, Paths -> str)."""
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as e:
        raise BundleError(f"bundle {what} must be plain data (str, numbers, lists, dicts): {e}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int, float)):  # enums
        return value.value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not plain data")


def save_bundle(
    path: str | os.PathLike[str],
    model: UNet,
    config: Config | dict[str, Any],
    *,
    normalisation: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its metadata to one bundle file, atomically.

    Parameters
    ----------
    path
        Destination file (``.vfm`` suggested); its folder is created if missing.
    model
        The trained network (any device; saved as contiguous CPU tensors).
    config
        The full run config (a :class:`Config` or its ``to_dict()``); its ``model`` section is
        replaced by ``model.config`` so the two can never disagree.
    normalisation
        Frame scaling used in training; defaults to ``{"dtype": "uint8", "scale": 255.0,
        "polarity": "dark"}`` merged with what is given.
    provenance
        Plain-data facts about training (stored as given after a JSON round trip).

    Returns
    -------
    Path
        The bundle's path.
    """
    path = Path(path)
    cfg_dict = config.to_dict() if isinstance(config, Config) else dict(config)
    model_cfg = _plain(getattr(model, "config", None) or {}, "model config")
    if not model_cfg:
        raise BundleError(f"cannot save {path}: the model has no .config; build it with vidfilter.models.build_model")
    cfg_dict["model"] = model_cfg
    state_dict = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "vidfilter_version": _vidfilter_version(),
        "config": _plain(cfg_dict, "config"),
        "model": model_cfg,
        "normalisation": _plain({**DEFAULT_NORMALISATION, **(normalisation or {})}, "normalisation"),
        "provenance": _plain(provenance or {}, "provenance"),
        "state_dict": state_dict,
        "weights_sha256": weights_digest(state_dict),
    }
    with atomic_path(path) as tmp:  # temp file + fsync + rename: never a half-written bundle
        torch.save(payload, tmp)
    logger.info("saved model bundle %s", path)
    return path


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the tensors (detects corrupted weights)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle written by :func:`save_bundle`.

    Parameters
    ----------
    path
        The bundle file, or the name of a bundle shipped with the package (``"worm-plate"``; see
        :mod:`vidfilter.models.shipped`).
    device
        Where to put the network.

    Returns
    -------
    Bundle
        The network in eval mode plus its config, normalisation, provenance, version and hash.

    Raises
    ------
    BundleNotFoundError
        The file does not exist (also an ``InputNotFoundError`` / ``FileNotFoundError``).
    BundleError
        The file is truncated or corrupt, is not a vidfilter bundle, or was written by a newer
        bundle format than this vidfilter reads.
    """
    path = resolve_bundle(path)
    payload, sha256 = _read_payload(path)
    version, bundle_version = _check_payload(path, payload)
    model_cfg, config, model = _build(path, payload)
    model.to(device).eval()
    return Bundle(model=model, config=config, normalisation=dict(payload.get("normalisation") or {}),
                  provenance=dict(payload.get("provenance") or {}), version=version, sha256=sha256, path=path,
                  bundle_version=bundle_version, model_config=model_cfg.model_dump(mode="json"))


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _read_payload(path: Path) -> tuple[dict[str, Any], str]:
    """The bundle's payload (plain data, read with ``weights_only=True``) and the SHA-256 of its bytes."""
    if not path.is_file():
        names = ", ".join(shipped_names()) or "none installed"
        raise BundleNotFoundError(f"model bundle {path} not found; pass the .vfm file written by `vidfilter train` "
                                  f"or a shipped bundle's name ({names})")
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if not data.startswith(b"PK\x03\x04"):
        raise BundleError(f"{path} is not a vidfilter model bundle (not a PyTorch archive); pass the .vfm file written by `vidfilter train`")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad CRC, unpickling refused...
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise BundleError(
                f"{path} is not a vidfilter model bundle (it holds Python objects, not plain data); "
                "pass a .vfm file written by `vidfilter train`"
            ) from None
        raise BundleError(
            f"{path} is truncated or corrupt ({_first_line(e)[:120]}); copy it again or re-run `vidfilter train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{path} is a PyTorch file but not a vidfilter model bundle; pass a .vfm file written by `vidfilter train`"
        )
    return payload, sha256


def _check_payload(path: Path, payload: dict[str, Any]) -> tuple[str, int]:
    """The payload's ``vidfilter_version`` and ``bundle_version``, once its format is readable and its weights match."""
    version = str(payload.get("vidfilter_version", "unknown"))
    bundle_version = payload.get("bundle_version")
    if not isinstance(bundle_version, int):
        raise BundleError(f"{path} has no valid bundle_version; it is corrupt: copy it again or re-run `vidfilter train`")
    if bundle_version > BUNDLE_VERSION:
        raise BundleError(
            f"{path} was made by vidfilter {version} (bundle format {bundle_version}); "
            f"this vidfilter {_vidfilter_version()} reads up to format {BUNDLE_VERSION}: upgrade vidfilter"
        )
    expected = payload.get("weights_sha256")
    state_dict = payload.get("state_dict")
    if expected is not None and isinstance(state_dict, dict) and weights_digest(state_dict) != expected:
        raise BundleError(f"{path} is corrupt (weights checksum mismatch); copy it again or re-run `vidfilter train`")
    return version, bundle_version


def _build(path: Path, payload: dict[str, Any]) -> tuple[ModelConfig, Config, UNet]:
    """The payload's model config, run config and network (its weights loaded, on the CPU)."""
    try:
        model_cfg = ModelConfig.model_validate(payload["model"])
        cfg_dict = dict(payload.get("config") or {})
        cfg_dict["model"] = model_cfg.model_dump(mode="json")
        config = Config.from_dict(cfg_dict, source=str(path))
        model = build_model(model_cfg)
        model.load_state_dict(payload["state_dict"])
    except ConfigError as e:
        raise BundleError(f"{path}: its config does not validate ({e}); re-run `vidfilter train` with this vidfilter") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise BundleError(f"{path} is corrupt ({_first_line(e)[:160]}); copy it again or re-run `vidfilter train`") from None
    return model_cfg, config, model
