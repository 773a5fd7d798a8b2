"""Atomic training checkpoints: everything needed to continue a run bit for bit.

A checkpoint is one file next to the bundle (``model.vfm`` -> ``model.ckpt``) holding the model
and optimiser state, the learning-rate schedule state, the pair sampler's state (its RNG and the
list of decoded runs, not the frames), the torch/numpy RNG states, the step, the loss history
and the elapsed time. It is written to a temporary file in the same folder, fsynced, then
renamed over the previous one (``os.replace``), so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from vidfilter.errors import BundleError
from vidfilter.io.sink import atomic_path

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1

__all__ = ["checkpoint_path", "report_dir", "save_checkpoint", "load_checkpoint", "CHECKPOINT_VERSION"]


def checkpoint_path(out: str | os.PathLike[str]) -> Path:
    """Where the checkpoint of bundle ``out`` lives: ``model.vfm`` -> ``model.ckpt``."""
    out = Path(out)
    return out.with_suffix(".ckpt") if out.suffix else out.with_name(out.name + ".ckpt")


def report_dir(out: str | os.PathLike[str]) -> Path:
    """Where the training report of bundle ``out`` goes: ``model.vfm`` -> ``model.report/``."""
    out = Path(out)
    return out.with_suffix(".report") if out.suffix else out.with_name(out.name + ".report")


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"checkpoint_version": CHECKPOINT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    logger.debug("checkpoint written: %s (step %s)", path, state.get("step"))
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (a trusted file of this library)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or foreign file
        raise BundleError(f"{path}: not a readable vidfilter checkpoint ({e}); delete it to start afresh") from None
    if not isinstance(state, dict) or "checkpoint_version" not in state:
        raise BundleError(f"{path}: not a vidfilter checkpoint; delete it to start afresh")
    if state["checkpoint_version"] > CHECKPOINT_VERSION:
        raise BundleError(f"{path}: checkpoint from a newer vidfilter (format {state['checkpoint_version']}); upgrade vidfilter")
    return state
