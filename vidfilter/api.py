"""One entry for every run: :func:`run` picks the path an input needs and returns a :class:`RunResult`.

- a video-mode model or a baseline on recordings: :func:`vidfilter.infer.pipeline.run_many`
  (streaming, resumable OME-Zarr, one input after another);
- the same with ``scheduler``: :func:`vidfilter.distributed.batch.run_batch` (one Dask task per
  recording);
- a static-mode model on images, folders or slides: :func:`vidfilter.static.infer.run_static_many`
  (block by block).

The command line's ``vidfilter run`` is this function; so is ``vidfilter.run`` in Python.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

from vidfilter.config import Config
from vidfilter.errors import ConfigError
from vidfilter.infer.result import RunResult

__all__ = ["RunResult", "auto_model", "run"]

logger = logging.getLogger(__name__)


def _single(inputs: Any) -> bool:
    return not isinstance(inputs, (list, tuple))


@overload
def run(inputs: str | os.PathLike[str] | Any, out: str | os.PathLike[str] | None = None, **options: Any) -> RunResult: ...
@overload
def run(inputs: Sequence[Any], out: str | os.PathLike[str] | None = None, **options: Any) -> list[RunResult]: ...


def run(
    inputs: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    model: Any = None,
    method: str = "model",
    config: Config | None = None,
    scheduler: str | None = None,
    retries: int = 2,
    progress: bool | Callable[[int, int], None] = False,
) -> RunResult | list[RunResult]:
    """Separate background and foreground of ``inputs``.

    Parameters
    ----------
    inputs
        One input (a path, an open FrameSource, an array) or a list of them.
    out
        The output store of a single input (``OUT.zarr``).
    out_dir
        One output per input under this folder (named after the inputs).
    model
        A bundle path, a loaded bundle or a shipped setup name, with ``method="model"``; ``"auto"``:
        the shipped bundle that fits the inputs, or one trained on them (:func:`auto_model`).
    method
        ``model`` or a baseline (``median``, ``mog2``, ...).
    config
        The run configuration; ``config.output`` chooses the formats and the mask.
    scheduler
        ``local``, ``local:N`` or ``tcp://HOST:PORT``: one Dask task per recording (needs ``out_dir``).
    retries
        Dask retries of a task that failed for a reason other than its input.
    progress
        Show progress bars; or a callable, called as ``progress(frames done, frames in all)`` after
        each stored frame of a video-mode run (model or baseline, without ``scheduler``): an
        exception it raises stops the run, leaving the resumable ``OUT.zarr.partial``, and is
        raised to the caller.

    Returns
    -------
    RunResult or list of RunResult
        One result for one input; a list in input order for a list. A failed input has status
        ``failed`` and its one-line error; the other inputs still run.
    """
    config = config or Config()
    many = list(inputs) if not _single(inputs) else [inputs]
    if method != "model" and model is not None:
        raise ConfigError(f"--model is used only with --method model, not with the baseline {method!r}; drop one of them")
    if out is not None and len(many) > 1:
        raise ConfigError("--out names one output but several inputs were given; use --out-dir DIR")
    if method == "model" and model == "auto":
        model, config = auto_model(many, out, out_dir, config, say=logger.info)
    if method == "model" and isinstance(model, (str, os.PathLike)) and not scheduler:
        from vidfilter.models.bundle import load_model

        model = load_model(model)  # once: it decides the path and serves every input
    static = _static_bundle(model, method)
    if scheduler:
        results = _run_on_cluster(many, model, method, out_dir, config, scheduler, retries, static)
    elif static is not None:
        from vidfilter.static.infer import run_static_many

        results = run_static_many(many, model=static, out=out, out_dir=out_dir, config=config, progress=progress)
    else:
        from vidfilter.infer.pipeline import run_many

        results = run_many(many, model=model, method=method, out=out, out_dir=out_dir, config=config, progress=progress)
    return results[0] if _single(inputs) else results


def auto_model(inputs: Sequence[Any], out: Any, out_dir: Any, config: Config, *,
               say: Callable[[str], None] = logger.info, progress: Any = False) -> tuple[str | Path, Config]:
    """``--model auto``: the shipped bundle whose setup fits ``inputs`` (:mod:`vidfilter.models.auto`),
    or, when none does, a model trained on them with ``config`` beside the output (``OUT.model.vfm``,
    or ``auto-model.vfm`` in ``out_dir``; one already there is used again). Returns the model and the
    config to run it with (``infer.invert`` for bright animals and a bundle of dark ones). ``say``
    gets the one line that tells which and why."""
    from vidfilter.io.registry import open as vf_open
    from vidfilter.models.auto import choose, measure
    from vidfilter.models.shipped import shipped_names

    with contextlib.ExitStack() as stack:
        srcs = [stack.enter_context(vf_open(os.fspath(i))) if isinstance(i, (str, os.PathLike)) else i for i in inputs]
        choice = choose(measure(srcs), shipped_names())
    if choice.name is not None:
        say(f"--model auto: {choice.reason}")
        return choice.name, config.override({"infer.invert": choice.invert})
    if out is not None:
        where = Path(out).with_name(Path(out).name.removesuffix(".zarr") + ".model.vfm")
    elif out_dir is not None:
        where = Path(out_dir) / "auto-model.vfm"
    else:
        raise ConfigError("--model auto trains a model when no shipped bundle fits and needs --out or --out-dir to put it")
    if where.is_file():
        say(f"--model auto: {choice.reason}; using the model trained for it before, {where} (delete it to train anew)")
        return where, config
    budget = f"{config.train.minutes:g} min" if config.train.minutes else f"{config.train.steps} steps"
    say(f"--model auto: {choice.reason}; training one on the input{'s' if len(inputs) > 1 else ''} ({budget}) into {where}")
    from vidfilter.train.loop import train

    where.parent.mkdir(parents=True, exist_ok=True)
    model = train([os.fspath(i) if isinstance(i, (str, os.PathLike)) else i for i in inputs], where, config,
                  progress=progress if isinstance(progress, bool) else False)
    return model, config


def _static_bundle(model: Any, method: str) -> Any | None:
    """The loaded bundle when ``model`` is a static-mode model, else ``None``."""
    if method != "model" or model is None:
        return None
    from vidfilter.static.infer import load_static_model

    return load_static_model(model)


def _run_on_cluster(
    inputs: list[Any], model: Any, method: str, out_dir: Any, config: Config, scheduler: str, retries: int, static: Any
) -> list[RunResult]:
    if static is not None:
        raise ConfigError("--scheduler is not supported with static-mode models; run without it")
    if not out_dir:
        raise ConfigError("--scheduler writes one output per input: use --out-dir DIR")
    from vidfilter.distributed.batch import run_batch

    return run_batch([str(i) for i in inputs], model=model, method=method, out_dir=Path(out_dir), config=config,
                     scheduler=scheduler, retries=retries)
