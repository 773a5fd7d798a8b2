"""What a training run produced (:class:`TrainResult`) and the network's output on a batch of
crops (:func:`predict`): shared by the training loop, its checkpoints and its report."""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["TrainResult", "predict"]


@dataclass
class TrainResult:
    """What a run produced (also stored in the checkpoint and the report)."""

    step: int = 0
    elapsed_s: float = 0.0
    train_loss: list[float] = field(default_factory=list)  # per step
    step_time: list[float] = field(default_factory=list)  # seconds per step
    val: list[dict[str, Any]] = field(default_factory=list)  # {"step", "loss", "identity_score", "identity_suspected"}
    best_val: float = math.inf
    bad_vals: int = 0
    stopped: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    inp: torch.Tensor,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    batch_size: int = 8,
) -> torch.Tensor:
    """Run ``model`` on ``inp`` (N, C, h, w) in chunks; float32 output on CPU."""
    device = torch.device(device)
    outs = []
    for i in range(0, inp.shape[0], batch_size):
        x = inp[i : i + batch_size].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
        with ctx:
            y = model(x)
        outs.append(y.float().cpu())
    return torch.cat(outs)
