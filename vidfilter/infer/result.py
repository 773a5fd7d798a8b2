"""What one run of one input produced: :class:`RunResult`, returned by every run path (video,
static, block-wise and Dask batch) and printed by the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["RunResult", "Status"]

Status = Literal["done", "salvaged", "skipped", "exported", "failed"]


@dataclass
class RunResult:
    """The outcome of one input.

    ``status`` is ``done`` (computed, complete), ``salvaged`` (complete up to input damage, which
    ``error`` describes), ``skipped`` (an identical finished output already existed), ``exported``
    (it existed; only missing export formats were written) or ``failed`` (``error`` says why; no
    output). Fields that do not apply to a path stay ``None``: frames for recordings, blocks for
    block-wise runs of arrays and images.
    """

    input: str
    output: str | None
    status: Status
    error: str | None = None
    seconds: float | None = None
    frames: int | None = None  # frames in the output
    frames_this_run: int | None = None  # computed by this call (a resume computes fewer)
    keyframes: int | None = None  # network frames in keyframe mode
    fps: float | None = None  # frames per second of this call
    registration: dict[str, Any] | None = None  # the camera's movement, when the background was registered
    shape: tuple[int, ...] | None = None  # block-wise runs: the output array's shape
    blocks: int | None = None
    blocks_this_run: int | None = None
    mpx_per_s: float | None = None
    worker_pid: int | None = None  # Dask batch: the worker process that ran it

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @classmethod
    def failure(cls, input: Any, error: BaseException | str) -> RunResult:
        """A failed input, its error folded to one line."""
        return cls(input=str(input), output=None, status="failed", error=" ".join(str(error).split()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for the command line: status, input, output and any note."""
        text = f"{self.status:>7}  {self.input} -> {self.output or '-'}"
        if self.error:
            text += f"  ({self.error})"
        if self.registration:
            text += f"  (camera moved up to {self.registration['largest_shift_px']} px: background registered)"
        return text

    @property
    def name(self) -> str:
        return Path(self.input).name
