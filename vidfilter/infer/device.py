"""Compute device, autocast precision and CPU thread settings for inference."""

from __future__ import annotations

import logging

import torch

from vidfilter.errors import ConfigError

__all__ = ["autocast_dtype", "cpu_has_native_bf16", "resolve_device", "set_threads"]

log = logging.getLogger(__name__)

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` -> :class:`torch.device`.

    Raises :class:`ConfigError` when the requested accelerator is absent.
    """
    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = str(device).strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} requested but CUDA is not available (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda or 'none'}); use device 'cpu' or 'auto', or install a CUDA build of torch"
            )
        index = 0 if dev.index is None else dev.index
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"device {device!r} requested but only {count} CUDA device(s) exist (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not _mps_available():
            raise ConfigError(f"device {device!r} requested but Apple MPS is not available here; use 'cpu' or 'auto'")
        return dev
    if dev.type == "cpu":
        return dev
    raise ConfigError(f"unsupported device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def cpu_has_native_bf16() -> bool:
    """Does this CPU compute bf16 products in hardware (AVX-512 BF16 or AMX tiles)? Elsewhere
    oneDNN emulates bf16 and autocast makes a network slower, not faster."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return bool(torch.backends.mkldnn.is_available()) and any(bool(getattr(cpu, c, lambda: False)()) for c in checks)
    except (RuntimeError, AttributeError):
        return False


def autocast_dtype(precision: str, device: torch.device, *, inference: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for plain float32.

    ``auto``: bf16 on CUDA devices that support it (fp16 on older ones); for ``inference``, bf16
    also on a CPU that computes it natively (:func:`cpu_has_native_bf16`: the network's time falls
    to about 0.6x, its background moves by a few hundredths of a grey level on average,
    docs/performance.md); float32 elsewhere, and for training on every CPU. ``fp32`` gives the
    same output on every CPU. ``bf16``/``fp16`` are honoured on CUDA and CPU (CPU autocast is slow
    for fp16 but correct).
    """
    if precision not in _PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(_PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cpu" and inference and cpu_has_native_bf16():
            return torch.bfloat16
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "mps" and dtype == torch.bfloat16:
        log.warning("bf16 autocast is not supported on MPS; using fp16")
        return torch.float16
    return dtype


def set_threads(n: int | None) -> int:
    """Use ``n`` torch CPU threads (``None`` leaves the default); returns the previous count."""
    previous = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise ConfigError(f"threads must be >= 1, got {n}")
        torch.set_num_threads(int(n))
    return previous
