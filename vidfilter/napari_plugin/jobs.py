"""What the run and train widgets do, as plain functions and a thread: no napari, no Qt.

- :func:`run_store` is ``vidfilter.run`` on one recording into one store, with the method chosen
  as the run widget offers it (:func:`method_choices`) and a progress callback;
- :func:`train_bundle` is ``vidfilter.train`` with a time (and optionally step) budget, a progress
  callback, and the report's verdict and loss plot as its outcome (:class:`TrainOutcome`);
- :class:`Job` runs either in a thread; its :meth:`Job.report` is the progress callback, and after
  :meth:`Job.cancel` it raises :class:`Cancelled` in the working thread. A cancelled run stops
  like any failed run: the frames durably written stay in ``OUT.zarr.partial`` and the same run
  resumes from them. A cancelled training keeps its last checkpoint (``OUT.ckpt``), which
  ``resume`` continues.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BUNDLE_FILE", "Cancelled", "Job", "TrainOutcome", "default_output", "method_choices", "parse_method",
    "run_store", "train_bundle"]

#: The run widget's choice that takes the model from a ``.vfm`` file.
BUNDLE_FILE = "bundle file (.vfm)"
_SHIPPED = "bundle: "


class Cancelled(Exception):
    """Raised in a job's working thread once the job is cancelled (never a :class:`VidfilterError`,
    so that a run stops instead of reporting a failed input)."""


def method_choices() -> list[str]:
    """What the run widget offers: the shipped bundles (``"bundle: NAME"``), a bundle file and the baselines."""
    from vidfilter.baselines import BASELINES
    from vidfilter.models.shipped import shipped_names

    return [f"{_SHIPPED}{n}" for n in shipped_names()] + [BUNDLE_FILE, *BASELINES]


def parse_method(choice: str, bundle_file: str | os.PathLike[str] | None = None) -> tuple[str, Any]:
    """``(method, model)`` for ``vidfilter.run`` from a :func:`method_choices` entry.

    Raises
    ------
    ConfigError
        A bundle file is chosen but none is given.
    """
    from vidfilter.errors import ConfigError

    if choice.startswith(_SHIPPED):
        return "model", choice[len(_SHIPPED):]
    if choice == BUNDLE_FILE:
        if not bundle_file or not str(bundle_file).strip() or Path(bundle_file).is_dir():
            raise ConfigError("choose the bundle file (.vfm) to run, or pick a shipped bundle or a baseline")
        return "model", str(bundle_file)
    return choice, None


def default_output(source: str | os.PathLike[str], suffix: str = ".zarr") -> Path:
    """``<folder>/<name><suffix>`` beside ``source`` (a file's stem, a folder's or a store's name)."""
    p = Path(os.fspath(source).rstrip("/"))
    stem = p.name[: -len(p.suffix)] if p.suffix and p.name != p.suffix else p.name
    return p.parent / f"{stem}{suffix}"


def _config(config: Any, over: dict[str, Any]) -> Any:
    """A :class:`Config` from a config, a YAML path or ``None``, with ``over`` applied."""
    from vidfilter.config import Config

    if config is None or (isinstance(config, (str, os.PathLike)) and not str(config).strip()):
        config = Config()
    elif isinstance(config, (str, os.PathLike)):
        config = Config.from_yaml(config)
    return config.override(over)


def run_store(
    source: str | os.PathLike[str], out: str | os.PathLike[str], choice: str, *, bundle_file: Any = None,
    config: Any = None, mask: bool = False, overwrite: bool = False, tracks: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Run ``vidfilter.run`` on ``source`` into the store ``out``, as the run widget does; with
    ``tracks``, then ``vidfilter.track`` into the store's ``tracks`` group.

    Parameters
    ----------
    source : str or Path
        The recording.
    out : str or Path
        The output store ``OUT.zarr``.
    choice : str
        A :func:`method_choices` entry.
    bundle_file : str or Path, optional
        The bundle, with :data:`BUNDLE_FILE`.
    config : Config, str or Path, optional
        A configuration or its YAML file; ``mask`` and ``overwrite`` are set on it when true.
    progress : callable, optional
        ``progress(frames done, frames in all)`` after each stored frame; an exception it raises
        stops the run, leaving the resumable partial store.

    Returns
    -------
    RunResult
        As ``vidfilter.run`` returns it (status ``failed`` with its one-line error for a bad input).
    """
    from vidfilter.api import run

    method, model = parse_method(choice, bundle_file)
    cfg = _config(config, {"output.mask": True if mask else None, "output.overwrite": True if overwrite else None})
    result = run(os.fspath(source), os.fspath(out), model=model, method=method, config=cfg, progress=progress or False)
    if tracks and result.status != "failed":
        from vidfilter.track import track

        track(result.output or out, into_store=True)
    return result


@dataclass
class TrainOutcome:
    """What a training run produced: the bundle, its report, the verdict and the loss plot."""

    bundle: Path
    report: Path
    verdict: str  # the report's plain-English line
    steps: int | None = None

    @property
    def word(self) -> str:
        """The verdict's first word(s): ``"ok"``, ``"identity"`` or ``"not checked"``."""
        return self.verdict.split(":", 1)[0].strip()

    @property
    def loss_plot(self) -> Path:
        return self.report / "loss.png"


def train_bundle(
    inputs: Any, out: str | os.PathLike[str], *, minutes: float | None = None, steps: int | None = None,
    config: Any = None, resume: bool = False, progress: Callable[[float, float], None] | None = None,
) -> TrainOutcome:
    """Train a bundle on ``inputs`` for ``minutes`` (or ``steps``, whichever ends first) and read its report.

    Parameters
    ----------
    inputs : str, Path or list
        Recordings, as ``vidfilter.train`` takes them.
    out : str or Path
        The bundle file (``model.vfm``); the report goes to ``model.report/``.
    minutes, steps : float and int, optional
        The budget; ``minutes`` alone trains for that time (``train.minutes`` without ``train.steps``).
    config : Config, str or Path, optional
        A configuration or its YAML file; the budget is set on it.
    resume : bool
        Continue from the checkpoint beside ``out`` when there is one.
    progress : callable, optional
        ``progress(done, total)`` after each step, in steps or, with a time budget, seconds
        (whichever is nearer its end); an exception it raises stops the training.
    """
    from vidfilter.train.checkpoint import report_dir
    from vidfilter.train.loop import Trainer

    cfg = _config(config, {"train.minutes": minutes or None, "train.steps": steps or None})

    class _Reporting(Trainer):
        """The trainer with a progress call after each step."""

        def step(self, inp: Any, tgt: Any) -> float:
            loss = super().step(inp, tgt)
            if progress is not None:
                tc, done = self.tcfg, self.state.step + 1
                by_steps = (done / tc.steps) if tc.steps else 0.0
                by_time = (self.state.elapsed_s / (tc.minutes * 60)) if tc.minutes else 0.0
                if by_time > by_steps:
                    progress(self.state.elapsed_s, tc.minutes * 60)
                else:
                    progress(done, tc.steps or done)
            return loss

    bundle = Path(_Reporting(inputs, out, cfg, resume=resume, progress=False).fit())
    report = report_dir(bundle)
    try:
        log = json.loads((report / "log.json").read_text())
    except (OSError, ValueError):
        log = {}
    return TrainOutcome(bundle, report, str(log.get("verdict", "not checked: the training report is missing")),
                        log.get("steps"))


class Job:
    """A task in a thread, with progress, cancel and its outcome; nothing here needs Qt.

    Parameters
    ----------
    fn : callable
        ``fn(report)``: the work, given :meth:`report` as its progress callback; its return value
        becomes :attr:`result`.
    """

    def __init__(self, fn: Callable[[Callable[..., None]], Any]) -> None:
        self._fn = fn
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.done, self.total = 0.0, 0.0
        self.status = "waiting"  # running, done, cancelled, failed
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="vidfilter-napari-job", daemon=True)

    def start(self) -> Job:
        self.status = "running"
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            self.result = self._fn(self.report)
            self.status = "cancelled" if self._cancel.is_set() else "done"
        except Cancelled:
            self.status = "cancelled"
        except BaseException as exc:  # shown by the widget, not lost in the thread
            self.error, self.status = exc, "failed"

    def report(self, done: float, total: float) -> None:
        """Record progress; raise :class:`Cancelled` once :meth:`cancel` was called."""
        with self._lock:
            self.done, self.total = float(done), float(total)
        if self._cancel.is_set():
            raise Cancelled

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    @property
    def fraction(self) -> float:
        """Progress from 0 to 1."""
        with self._lock:
            return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the work to end; whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
