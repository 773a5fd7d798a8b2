"""Atomic training checkpoints: everything needed to continue a run bit for bit.

A checkpoint is one file next to the bundle (``model.vfm`` -> ``model.ckpt``) holding the model
and optimiser state, the learning-rate schedule state, the pair sampler's state (its RNG and the
list of decoded runs, not the frames), the torch RNG state, the step, the loss history and the
elapsed time. It is written to a temporary file in the same folder, fsynced, then renamed over the
previous one (``os.replace``), so a crash never leaves a half-written checkpoint.

File format (``checkpoint_version`` 2)
--------------------------------------
A ``torch.save`` zip archive of exactly three entries::

    {"checkpoint_version": 2,
     "state_json": "<JSON text of the state>",
     "tensors": {"0": tensor, "1": tensor, ...}}

so the pickle inside holds nothing but a dict, a str, an int and tensors, and the file is read
with ``torch.load(weights_only=True)``: a checkpoint can never execute code, whoever wrote it.
Every non-tensor value of the state is in ``state_json``, encoded by :func:`encode_state`:

- ``str``, ``int``, ``float`` (``inf`` and ``nan`` as JSON ``Infinity`` / ``NaN``), ``bool``,
  ``None`` and lists are themselves; a dict whose keys are all strings, none of them ``"$"``, is a
  JSON object.
- Everything else is a JSON object tagged by its ``"$"`` key:

  ``{"$": "tensor", "ref": "3"}``
      ``tensors["3"]`` (model and optimiser weights, the torch RNG state...).
  ``{"$": "ndarray", "dtype": "<u8", "shape": [2, 3], "ref": "4"}``
      a numpy array (or, with ``shape`` ``[]`` and ``"scalar": true``, a numpy scalar) whose raw
      bytes are the ``uint8`` tensor ``tensors["4"]``; only boolean and numeric dtypes.
  ``{"$": "tuple", "items": [...]}``
      a tuple.
  ``{"$": "dict", "items": [[key, value], ...]}``
      a dict with a non-string key (the optimiser's per-parameter state) or a ``"$"`` key.

Floats are written with ``repr`` precision and numpy arrays byte for byte, so a state read back
equals the state written exactly; that is what makes resume bit for bit.

Reading (:func:`load_checkpoint`) trusts nothing: a file that is not such an archive, holds other
objects, is cut short, has another ``checkpoint_version``, or whose JSON lacks what a training run
needs raises a one-line :class:`~vidfilter.errors.BundleError` saying what is wrong and to delete
the checkpoint (or, for a vidfilter checkpoint that cannot be resumed, to train without
``--resume``, which replaces it).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfilter.errors import BundleError
from vidfilter.io.sink import atomic_path

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2

#: What the state of a training checkpoint holds, with the accepted types: ``train --resume``
#: passes it to :func:`load_checkpoint` as ``required``.
TRAINING_KEYS: dict[str, type | tuple[type, ...]] = {
    "config": dict,
    "model": dict,
    "optimiser": dict,
    "torch_rng": torch.Tensor,
    "step": int,
    "supervised": bool,
    "result": dict,
}

#: What to do about a file that is not a checkpoint at all (training does not replace such a file).
_ADVICE = "delete it to start afresh"
#: What to do about a vidfilter checkpoint that cannot be resumed (training without ``--resume``
#: replaces it).
_ADVICE_OURS = "delete it to start afresh, or train without --resume"
_ZIP_MAGIC = b"PK\x03\x04"
_TAG = "$"
#: numpy dtype kinds an array in a checkpoint may have: bool, signed, unsigned, float, complex.
_ARRAY_KINDS = frozenset("biufc")

__all__ = ["CHECKPOINT_VERSION", "TRAINING_KEYS", "checkpoint_path", "decode_state", "encode_state",
    "load_checkpoint", "report_dir", "save_checkpoint"]


def checkpoint_path(out: str | os.PathLike[str]) -> Path:
    """Where the checkpoint of bundle ``out`` lives: ``model.vfm`` -> ``model.ckpt``."""
    out = Path(out)
    return out.with_suffix(".ckpt") if out.suffix else out.with_name(out.name + ".ckpt")


def report_dir(out: str | os.PathLike[str]) -> Path:
    """Where the training report of bundle ``out`` goes: ``model.vfm`` -> ``model.report/``."""
    out = Path(out)
    return out.with_suffix(".report") if out.suffix else out.with_name(out.name + ".report")


# -- state <-> JSON + tensors -------------------------------------------------------------------
def encode_state(state: Any) -> tuple[str, dict[str, torch.Tensor]]:
    """Split ``state`` into JSON text and the tensors it refers to (the scheme of the module docstring).

    Parameters
    ----------
    state
        Nested dicts, lists and tuples of str, int, float, bool, None, tensors, numpy arrays and
        numpy scalars.

    Returns
    -------
    text : str
        The JSON text.
    tensors : dict of str to Tensor
        The tensors and the raw bytes of the numpy arrays, keyed by the ``ref`` of their JSON node.

    Raises
    ------
    TypeError
        ``state`` holds a value of another type (an object, a set, an object-dtype array...).
    """
    tensors: dict[str, torch.Tensor] = {}

    def add(t: torch.Tensor) -> str:
        ref = str(len(tensors))
        tensors[ref] = t
        return ref

    def enc(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, float, str)) and not isinstance(x, np.generic):
            return x
        if isinstance(x, torch.Tensor):
            return {_TAG: "tensor", "ref": add(x.detach())}
        if isinstance(x, (np.ndarray, np.generic)):
            a = np.asarray(x)
            if a.dtype.kind not in _ARRAY_KINDS:
                raise TypeError(f"cannot store a numpy array of dtype {a.dtype} in a checkpoint")
            raw = torch.from_numpy(np.ascontiguousarray(a).reshape(-1).view(np.uint8).copy())
            node = {_TAG: "ndarray", "dtype": a.dtype.str, "shape": list(a.shape), "ref": add(raw)}
            if isinstance(x, np.generic):
                node["scalar"] = True
            return node
        if isinstance(x, tuple):
            return {_TAG: "tuple", "items": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, Mapping):
            if all(isinstance(k, str) for k in x) and _TAG not in x:
                return {k: enc(v) for k, v in x.items()}
            return {_TAG: "dict", "items": [[enc(k), enc(v)] for k, v in x.items()]}
        raise TypeError(f"cannot store a {type(x).__name__} in a checkpoint")

    return json.dumps(enc(state), allow_nan=True, separators=(",", ":")), tensors


def decode_state(text: str, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`.

    Raises
    ------
    ValueError
        The JSON is malformed, has an unknown tag, refers to a missing tensor, or describes an
        array its bytes do not fill.
    """
    def tensor(node: dict[str, Any]) -> torch.Tensor:
        ref = node.get("ref")
        if not isinstance(ref, str) or ref not in tensors:
            raise ValueError(f"refers to a tensor {ref!r} the file does not hold")
        return tensors[ref]

    def dec(x: Any) -> Any:
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            return x
        if _TAG not in x:
            return {k: dec(v) for k, v in x.items()}
        tag = x[_TAG]
        if tag == "tensor":
            return tensor(x)
        if tag == "ndarray":
            dtype = np.dtype(str(x.get("dtype")))
            shape = x.get("shape")
            if dtype.kind not in _ARRAY_KINDS or dtype.hasobject:
                raise ValueError(f"array of dtype {dtype} is not allowed")
            if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
                raise ValueError(f"array shape {shape!r} is not a list of sizes")
            raw = tensor(x)
            if raw.dtype != torch.uint8 or raw.dim() != 1 or raw.numel() != math.prod(shape) * dtype.itemsize:
                raise ValueError(f"array bytes do not match dtype {dtype} and shape {shape}")
            a = raw.numpy().copy().view(dtype).reshape(shape)
            return a[()] if x.get("scalar") is True else a
        if tag == "tuple" and isinstance(x.get("items"), list):
            return tuple(dec(v) for v in x["items"])
        if tag == "dict" and isinstance(x.get("items"), list):
            out = {}
            for item in x["items"]:
                if not (isinstance(item, list) and len(item) == 2):
                    raise ValueError("dict item is not a [key, value] pair")
                out[dec(item[0])] = dec(item[1])
            return out
        raise ValueError(f"unknown or malformed node {str(tag)[:40]!r}")

    return dec(json.loads(text))


# -- files --------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + fsync + ``os.replace``).

    Parameters
    ----------
    path
        The checkpoint file.
    state
        What to store; see :func:`encode_state` for the types it may hold.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text, tensors = encode_state(dict(state))
    payload = {"checkpoint_version": CHECKPOINT_VERSION, "state_json": text, "tensors": tensors}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    logger.debug("checkpoint written: %s (step %s)", path, state.get("step"))
    return path


def load_checkpoint(
    path: str | os.PathLike[str], required: Mapping[str, type | tuple[type, ...]] | None = None,
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, executing nothing it holds.

    Parameters
    ----------
    path
        The checkpoint file.
    required
        Keys the state must hold, with their accepted types (:data:`TRAINING_KEYS` for a training
        run); ``None`` checks only the file's structure.

    Returns
    -------
    dict
        The state as given to :func:`save_checkpoint`, tensors on the CPU.

    Raises
    ------
    BundleError
        One line: the file is not a regular file, not a PyTorch archive, holds Python objects
        other than tensors and plain data, is truncated or corrupt, has another format version,
        or lacks a required key.
    """
    path = Path(path)

    def fail(what: str, advice: str = _ADVICE_OURS) -> BundleError:
        return BundleError(f"{path}: {what}; {advice}")

    if not path.is_file():
        raise fail("not a regular file, so not a vidfilter checkpoint", _ADVICE)
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_ZIP_MAGIC))
    except OSError as e:
        raise fail(f"cannot be read ({e.strerror or e})", _ADVICE) from None
    if head != _ZIP_MAGIC:
        if not head:
            raise fail("empty file, not a vidfilter checkpoint")
        raise fail("not a vidfilter checkpoint (not a PyTorch archive)", _ADVICE)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad CRC, a pickle that asks for Python objects...
        text = str(e)
        if "weights_only" in text or "Unsupported global" in text or "Unsupported operand" in text:
            raise fail("holds Python objects other than tensors and plain data (an older vidfilter's checkpoint, "
                       "or a planted file), so it was not loaded", _ADVICE) from None
        first = " ".join((text.splitlines() or [""])[0].split()).split(". ")[0].rstrip(".")
        raise fail(f"truncated or corrupt ({first[:120] or type(e).__name__})", _ADVICE) from None
    if not isinstance(payload, dict) or "checkpoint_version" not in payload:
        raise fail("a PyTorch file but not a vidfilter checkpoint", _ADVICE)
    version = payload["checkpoint_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise fail("its checkpoint_version is not a number; it is corrupt")
    if version > CHECKPOINT_VERSION:
        raise BundleError(f"{path}: checkpoint from a newer vidfilter (format {version}, this one reads {CHECKPOINT_VERSION}); "
                          f"upgrade vidfilter, or {_ADVICE_OURS}")
    if version < CHECKPOINT_VERSION:
        raise fail(f"checkpoint from an older vidfilter (format {version}, this one reads {CHECKPOINT_VERSION})")
    text, tensors = payload.get("state_json"), payload.get("tensors")
    if not isinstance(text, str) or not isinstance(tensors, dict) or set(payload) != {"checkpoint_version", "state_json", "tensors"}:
        raise fail("its layout is not that of a vidfilter checkpoint; it is corrupt")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise fail("its tensor table holds something other than tensors; it is corrupt")
    try:
        state = decode_state(text, tensors)
    except (ValueError, TypeError, RecursionError) as e:
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise fail(f"its state is corrupt ({reason})") from None
    if not isinstance(state, dict):
        raise fail("its state is not a mapping; it is corrupt")
    for key, kind in (required or {}).items():
        if key not in state:
            raise fail(f"its state lacks {key!r}; it is corrupt or not from a training run")
        value = state[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise fail(f"its {key!r} is a {type(value).__name__}, not what a training run writes; it is corrupt")
    return state
