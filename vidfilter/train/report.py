"""The training report written next to the bundle (``model.report/``).

- ``loss.png``: training loss per step (raw and smoothed) and validation loss, log scale;
- ``samples.png``: a few validation crops, columns input | output | input − output | target;
- ``log.json``: per-step losses and pairs/s, validation metrics, the identity flag and a
  plain-English verdict (``"identity: the model removes nothing"`` or ``"weak: the model removes
  little"`` when flagged).

:func:`summary_line` reads ``log.json`` back into the one line ``vidfilter train`` prints.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidfilter.config import Config

if TYPE_CHECKING:
    from vidfilter.train.result import TrainResult

logger = logging.getLogger(__name__)

__all__ = ["summary_line", "verdict", "write_report"]

#: Validation crops shown in samples.png.
SAMPLE_ROWS = 4


#: an identity score above this many times the ideal one (50 % for time-lag pairs, 100 % for clean
#: targets) means the output also moves pixels that barely changed between the pair: a resting
#: animal removed whole (its outline shifted, its inside changed a little), or a changed plate; the
#: verdict says which to look for
HIGH_FACTOR = 2.0


#: A model whose output moves less than this share of what changes between held-out pairs is
#: flagged as (near) identity. A perfect background model scores about 0.5 (see
#: :func:`vidfilter.train.loop.identity_score`).
IDENTITY_THRESHOLD = 0.2
#: below this share the flagged model removes (almost) nothing; from it up to the threshold it removes
#: little, and the verdict says so: one validation of the same held-out pairs moves by several points
#: from the next as the weights change (0.13-0.29 over the demo's last 800 steps)
NOTHING_THRESHOLD = 0.1


def _flagged(pct: float, what: str, advice: str) -> str:
    """The verdict of a flagged model: "identity" when it removes (almost) nothing, else "weak"."""
    if pct < 100 * NOTHING_THRESHOLD:
        return f"identity: the model removes nothing (its output moves only {pct:.0f} % of {what}); {advice}"
    return (f"weak: the model removes little (its output moves {pct:.0f} % of {what}, below "
            f"{100 * IDENTITY_THRESHOLD:.0f} %); look at samples.png, or {advice}")

def verdict(state: TrainResult, supervised: bool = False, static: bool = False) -> str:
    """One plain-English line about the final validation. ``supervised``: the targets were clean
    backgrounds (a generated corpus), so the ideal output moves all of what differs, not half.
    ``static``: the pairs were synthesised from crop banks (static mode), and the line speaks of
    synthetic pairs, crops and backgrounds instead of frames and lags."""
    if static:
        return _static_verdict(state)
    if not state.val:
        return "not checked: no validation pairs (give more frames or recordings, or set train.val_fraction > 0)"
    last = state.val[-1]
    score = last.get("identity_score")
    if score is None:
        return "not checked: nothing changed between the validation frames (try a longer lag)"
    pct = 100 * score
    what = "what differs between held-out frames and their true backgrounds" if supervised else "what changes between held-out frames"
    if last.get("identity_suspected"):
        return _flagged(pct, what, "try sampling.mine_fraction 0.5, train.change_weight 6, model.residual true, longer lags or more steps")
    ideal = 1.0 if supervised else 0.5
    line = f"ok: the model's output moves {pct:.0f} % of {what} ({'100' if supervised else 'about 50'} % is ideal)"
    if score > HIGH_FACTOR * ideal:
        line += ("; this much means it also changes pixels that barely changed between the pair: a resting animal it "
                 "removes whole (good), or the plate itself (blur, a shift, a brightness change): look at samples.png")
    return line


def _static_verdict(state: TrainResult) -> str:
    """:func:`verdict` for static mode: input and target of a synthetic pair share the target
    objects and differ by independently drawn backgrounds and unwanted objects."""

    if not state.val:
        return "not checked: no validation pairs (set train.val_pairs > 0)"
    last = state.val[-1]
    score = last.get("identity_score")
    if score is None:
        return ("not checked: input and target of the synthetic validation pairs did not differ (check the bank has "
                "unwanted crops and more than one background, and static.synth.unwanted)")
    pct = 100 * score
    what = "what differs between input and target of held-out synthetic pairs (backgrounds and unwanted objects)"
    if last.get("identity_suspected"):
        return _flagged(pct, what, "try train.change_weight 6, more unwanted crops or backgrounds in the bank, or more steps")
    return f"ok: the model's output moves {pct:.0f} % of {what} (below {100 * IDENTITY_THRESHOLD:.0f} % it would remove nothing)"


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    if x.size < k or k < 2:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = (c[k:] - c[:-k]) / k
    return np.concatenate([np.full(k - 1, np.nan), out])


def write_report(folder: str | os.PathLike[str], state: TrainResult, model: torch.nn.Module,
                 pairs: tuple[torch.Tensor, torch.Tensor], config: Config, device: torch.device | str = "cpu",
                 registration: dict[str, dict[str, Any]] | None = None, init: dict[str, Any] | None = None,
                 supervised: bool = False) -> Path:
    """Write ``loss.png``, ``samples.png`` and ``log.json`` into ``folder`` (created if missing).
    ``registration``: ``{recording: Registration.summary()}`` for recordings whose camera moved;
    ``init``: the bundle the run fine-tuned (path, sha256, its steps, and ``check``, the
    :mod:`vidfilter.train.guard` record), None from random weights."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from vidfilter.io.sink import mark_folder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mark_folder(folder, "training-report")
    text = verdict(state, supervised, static=config.sampling.mode == "static")
    _write_log(folder / "log.json", state, config, text, registration, init)
    _plot_loss(plt, folder / "loss.png", state, text)
    _plot_samples(plt, folder / "samples.png", model, pairs, device, config.train.batch_size)
    logger.info("training report written to %s: %s", folder, text)
    return folder


def _write_log(path: Path, state: TrainResult, config: Config, text: str,
               registration: dict[str, dict[str, Any]] | None, init: dict[str, Any] | None) -> None:
    """``log.json``, written atomically (a partial file renamed into place)."""
    bs = config.train.batch_size
    times = np.asarray(state.step_time, dtype=np.float64)
    last = state.val[-1] if state.val else {}
    log = {
        "verdict": text, "identity_suspected": bool(last.get("identity_suspected", False)),
        "identity_score": last.get("identity_score"),
        "steps": state.step, "elapsed_s": state.elapsed_s, "stopped": state.stopped, "batch_size": bs,
        "train_loss": state.train_loss, "pairs_per_s": (bs / np.maximum(times, 1e-9)).tolist(),
        "mean_pairs_per_s": float(bs * len(times) / times.sum()) if times.size else None,
        "val": state.val, "config": config.to_dict(), "registration": registration or {}, "init": init,
    }
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(log, indent=1, default=float))
    os.replace(tmp, path)


def _plot_loss(plt: Any, path: Path, state: TrainResult, text: str) -> None:
    """``loss.png``: training loss per step, its running mean and the validation loss."""
    losses = np.asarray(state.train_loss, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 4))
    if losses.size:
        steps = np.arange(1, losses.size + 1)
        ax.plot(steps, losses, color="0.75", lw=0.8, label="train (per step)")
        k = max(2, losses.size // 50)
        ax.plot(steps, _smooth(losses, k), color="C0", lw=1.5, label=f"train (mean of {k})")
    if state.val:
        ax.plot([v["step"] for v in state.val], [v["loss"] for v in state.val], "o-", color="C1", label="validation")
    if losses.size and (losses > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(text if len(text) < 70 else text[:67] + "...", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_samples(plt: Any, path: Path, model: torch.nn.Module, pairs: tuple[torch.Tensor, torch.Tensor],
                  device: torch.device | str, batch_size: int) -> None:
    """``samples.png``: up to :data:`SAMPLE_ROWS` validation crops, columns input | output | input − output | target."""
    from vidfilter.train.result import predict

    inp, tgt = pairs
    n = min(SAMPLE_ROWS, inp.shape[0])
    if not n:
        return
    was_training = model.training
    out = predict(model.eval(), inp[:n], device, batch_size=batch_size)
    model.train(was_training)
    frame = inp[:n, 0].numpy()
    background = out[:n, 0].numpy()
    columns = [("input", frame), ("output", background), ("input − output", frame - background), ("target", tgt[:n, 0].numpy())]
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for r in range(n):
        for c, (title, data) in enumerate(columns):
            a = axes[r][c]
            if title == "input − output":
                lim = max(float(np.abs(data[r]).max()), 1e-3)
                a.imshow(data[r], cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                a.imshow(data[r], cmap="gray", vmin=0, vmax=1)
            a.set(xticks=[], yticks=[])
            if r == 0:
                a.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def summary_line(report_dir: str | os.PathLike[str]) -> str:
    """One line on the run whose report is in ``report_dir``: steps, minutes, polarity, network, verdict
    (all from ``log.json``, which holds the resolved config); "" when that cannot be read."""
    try:
        log = json.loads((Path(report_dir) / "log.json").read_text())
        cfg = log["config"]
        pol, preset, crop = cfg["output"]["polarity"], cfg["model"]["preset"], cfg["sampling"]["crop"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    moved = log.get("registration") or {}
    init = log.get("init")
    start = f"fine-tuned from {Path(init['path']).name}: " if init else ""
    check = (init or {}).get("check") or {}
    if check.get("kept_start"):
        start = f"fine-tuned from {Path(init['path']).name}, not kept ({check.get('reason')}; the bundle holds the starting network): "
    steps = f"{start}{log.get('steps')} steps in {log.get('elapsed_s', 0) / 60:.1f} min"
    if (cfg.get("sampling") or {}).get("mode") == "static":
        return f"{steps}; static mode, {preset} network on {crop} px synthetic pairs (crops pasted on backgrounds); {log.get('verdict')}"
    reg = f"camera moved (up to {max(r['largest_shift_px'] for r in moved.values())} px): pairs registered; " if moved else ""
    return f"{steps}; polarity {pol}, {preset} network on {crop} px crops; {reg}{log.get('verdict')}"
