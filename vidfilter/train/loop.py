"""The training loop: time-lag pairs -> U-Net -> bundle, resumable bit for bit.

``train(inputs, out, config)`` checks the inputs (every error before the first step), builds the
network (or starts from ``init_bundle``), trains with Adam on a SmoothL1 loss (the paper's
defaults), optionally weighted towards pixels that changed between the two frames of a pair,
validates on fixed held-out pairs with an *identity check* (a model whose output is its input
removes nothing), writes atomic checkpoints, then saves the bundle and a report.

Exact resume: with ``num_workers = 0`` the pair sampler runs in this process and its state is in
every checkpoint, so training 2N steps equals N steps + resume + N steps bit for bit on CPU.
With DataLoader workers a resumed run reseeds the workers from the step (deterministic, but a
different stream from an uninterrupted run).
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidfilter.config import Config, TrainConfig
from vidfilter.errors import BundleError, ConfigError, VidfilterError
from vidfilter.io.convert import dtype_scale
from vidfilter.sampling.pairs import TEMPORAL_FRAMES, PairDataset, SamplerSet, make_samplers
from vidfilter.train.result import TrainResult, predict
from vidfilter.train.checkpoint import TRAINING_KEYS, checkpoint_path, load_checkpoint, report_dir, save_checkpoint

logger = logging.getLogger(__name__)

#: A model whose output moves less than this share of what changes between held-out pairs is
#: flagged as (near) identity. A perfect background model scores about 0.5 (see identity_score).
IDENTITY_THRESHOLD = 0.2

#: The recipe measured to escape the identity trap in minutes on a CPU (figures in benchmarks/results/recipes_real.json and the training notes). These are the defaults
#: of :class:`Config`; the dict documents them and :func:`with_recipe` re-applies them to a config
#: that changed them. Gated output on a temporal statistic channel (max for dark animals, min for
#: bright ones), loss x6 on pixels that changed, half the crops centred where the pair differs, lags
#: of 5-50 % of the recording (crawling animals re-cover their own track at short lags).
RECIPE: dict[str, Any] = {
    "model.gate": True,
    "model.residual": True,
    "model.temporal_channel": "auto",
    "train.change_weight": 6.0,
    "sampling.mine_fraction": 0.5,
    "sampling.lag": [0.05, 0.5],
    "sampling.lag_unit": "fraction",
}

__all__ = ["train", "pair_loss", "polarity_target", "identity_score", "with_recipe", "RECIPE", "IDENTITY_THRESHOLD", "TrainResult"]


def with_recipe(config: Config) -> Config:
    """``config`` with :data:`RECIPE` applied and the temporal channel resolved from
    ``config.output.polarity`` (:func:`vidfilter.config.resolve_temporal`)."""
    from vidfilter.config import resolve_temporal

    return resolve_temporal(config.override(RECIPE))


# -- loss and metrics --------------------------------------------------------------------------
def polarity_target(target: torch.Tensor, frame: torch.Tensor, polarity: str, threshold: float) -> torch.Tensor:
    """The target with the animals it shows and the input does not replaced by the input.

    Dark animals only darken the plate, so where the target is darker than the input frame by more
    than ``threshold`` the target shows an animal and the input shows the plate: the input is the
    better target there (bright animals: lighter). Pixels within ``threshold`` keep the target, so
    the noise stays unbiased. ``absolute`` polarity: the target unchanged.
    """
    if polarity == "dark":
        return torch.where(target < frame - threshold, frame, target)
    if polarity == "bright":
        return torch.where(target > frame + threshold, frame, target)
    return target


def pair_loss(
    output: torch.Tensor, target: torch.Tensor, frame: torch.Tensor, cfg: TrainConfig, polarity: str = "absolute"
) -> torch.Tensor:
    """Loss between ``output`` and ``target``, weighted ``change_weight`` where ``|frame - target|``
    exceeds ``change_threshold`` (1 elsewhere) and normalised by the weight sum. With
    ``cfg.polarity_target`` and a dark or bright ``polarity`` the target first goes through
    :func:`polarity_target`, so only the pixels where the *input* shows an animal are weighted."""
    output = output.float()
    if cfg.polarity_target:
        target = polarity_target(target, frame, polarity, cfg.change_threshold)
    if cfg.loss == "smooth_l1":
        per_px = F.smooth_l1_loss(output, target, reduction="none", beta=cfg.beta)
    elif cfg.loss == "l1":
        per_px = (output - target).abs()
    else:
        per_px = (output - target) ** 2
    if cfg.change_weight == 1.0:
        return per_px.mean()
    changed = (frame - target).abs() > cfg.change_threshold
    weight = 1.0 + (cfg.change_weight - 1.0) * changed.float()
    return (per_px * weight).sum() / weight.sum()


def identity_score(output: torch.Tensor, frame: torch.Tensor, target: torch.Tensor, threshold: float) -> float | None:
    """``mean |output - frame| / mean |target - frame|`` over pixels where frame and target differ.

    0 means the output is its input (nothing removed). A perfect background model scores about
    0.5: where the input shows an animal it outputs the plate (≈ the target), where the target
    shows one it keeps the input. ``None`` when no pixel changed by more than ``threshold``.
    """
    changed = (target - frame).abs() > threshold
    if not bool(changed.any()):
        return None
    num = (output.float() - frame).abs()[changed].mean()
    den = (target - frame).abs()[changed].mean()
    return float(num / den)


def _lr_factor(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    if cfg.lr_schedule == "constant":
        return 1.0
    fractions = []
    if cfg.steps:
        fractions.append(step / cfg.steps)
    if cfg.minutes:
        fractions.append(elapsed_s / (cfg.minutes * 60.0))
    p = min(1.0, max(fractions) if fractions else 0.0)
    return 0.5 * (1.0 + math.cos(math.pi * p))


def _batches(sset: SamplerSet, inputs: Sequence[Any], config: Config, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    bs = config.train.batch_size
    if config.train.num_workers == 0:
        while True:
            inp, tgt = sset.train.batch(bs)
            yield torch.from_numpy(inp), torch.from_numpy(tgt)
    if hasattr(sset, "make_dataset"):  # static mode: the synthesiser's own (order-preserving) dataset
        dataset = sset.make_dataset(bs, start_step)
    else:
        dataset = PairDataset(inputs, config, batch_size=bs, seed=config.train.seed + 7919 * start_step, statistics=sset.statistics,
                              targets=_target_paths(sset))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=config.train.num_workers, pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
    yield from loader


def _target_paths(sset: SamplerSet) -> list[str] | None:
    """The clean backgrounds as paths, for DataLoader workers to reopen (None: time-lag pairs)."""
    targets = getattr(sset, "targets", None)
    return [targets[i].path for i in sorted(targets)] if targets else None


def _restore_result(saved: dict[str, Any], step: int) -> TrainResult:
    """The :class:`TrainResult` of a checkpoint, its fields checked (``ValueError``/``TypeError`` if wrong)."""
    result = TrainResult(**saved)
    number = (int, float)
    if not (isinstance(result.step, int) and not isinstance(result.step, bool) and result.step == step >= 0):
        raise ValueError(f"step {result.step!r} is not the checkpoint's step {step}")
    if not isinstance(result.elapsed_s, number) or not isinstance(result.best_val, number):
        raise ValueError("elapsed time or best validation loss is not a number")
    if not isinstance(result.bad_vals, int) or not isinstance(result.stopped, str):
        raise ValueError("validation counter or stop reason has the wrong type")
    for name in ("train_loss", "step_time"):
        values = getattr(result, name)
        if not isinstance(values, list) or not all(isinstance(v, number) for v in values):
            raise ValueError(f"{name} is not a list of numbers")
    if not isinstance(result.val, list) or not all(isinstance(v, dict) for v in result.val):
        raise ValueError("the validation history is not a list of records")
    result.stopped = ""
    return result


def _check_resume_config(saved: dict[str, Any], config: Config, path: Path) -> None:
    now = config.to_dict()
    if saved.get("model") != now["model"]:
        raise ConfigError(f"{path}: the checkpoint's model settings differ from this config; use the same model config or delete the checkpoint")
    for section in ("sampling",):
        if saved.get(section) != now[section]:
            logger.warning("resuming %s with different %s settings; the run will not match an uninterrupted one", path, section)


def _progress_bar(total: int | None, initial: int, enabled: bool) -> Any:
    if not (enabled and sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, initial=initial, unit="step", desc="train", dynamic_ncols=True)


# -- the loop ----------------------------------------------------------------------------------
def _check_outputs(out: Path, inputs: Any, resume: bool) -> None:
    """Before any work: the bundle, its checkpoint and its report may replace only what vidfilter
    wrote (a bundle is retrained in place), never an input or a user's file. A checkpoint to
    resume from is judged by its loader, which says what is wrong with it."""
    from vidfilter.io.ownership import check_replaceable
    from vidfilter.io.sink import check_output_path

    paths = [inputs] if isinstance(inputs, (str, Path)) else [i for i in inputs if isinstance(i, (str, Path))]
    # a missing input (or a glob) is the samplers' to report, in their words
    check_output_path(out, inputs=[p for p in paths if Path(p).exists()], overwrite=True)
    check_replaceable(out, why="training")
    if not resume:
        check_replaceable(checkpoint_path(out), why="training")
    check_replaceable(report_dir(out), why="training")


def train(
    inputs: str | Path | Sequence[Any],
    out: str | Path,
    config: Config,
    *,
    resume: bool = False,
    progress: bool = True,
    init_bundle: str | Path | None = None,
    targets: Sequence[Any] | None = None,
) -> Path:
    """Train a background model on time-lag pairs of ``inputs`` and save it as a bundle at ``out``.

    Parameters
    ----------
    inputs
        Recordings: paths, glob patterns, ``.txt`` lists of paths, open FrameSources or arrays.
    out
        The bundle file to write (e.g. ``model.vfm``); the checkpoint goes to ``model.ckpt`` and
        the report to ``model.report/``.
    config
        The run configuration (sections ``model``, ``sampling``, ``train``, ``output`` are used).
    resume
        Continue from the checkpoint next to ``out`` when there is one.
    progress
        Show a tqdm bar (only when stderr is a terminal).
    init_bundle
        Start from this bundle's weights (fine-tuning): a path, or a setup name of
        :mod:`vidfilter.train.pretrain` (``"worm-plate"``: the shipped bundle); its model settings must match.
    targets
        The clean background of each recording, frame for frame (paths or sources, in the order
        of ``inputs``): the pairs become ``(frame t, background t)``, supervised. For generated
        corpora (:mod:`vidfilter.train.pretrain`), whose true background is known.

    Returns
    -------
    Path
        The bundle's path.
    """
    from vidfilter.infer.device import autocast_dtype, resolve_device
    from vidfilter.models import build_model, load_model, save_bundle

    from vidfilter.config import Polarity, Preset, resolve_device_defaults, resolve_temporal
    from vidfilter.models.shipped import resolve_init

    out = Path(out)
    _check_outputs(out, inputs, resume)
    init_bundle = resolve_init(init_bundle)  # a setup name (shipped bundle) or a path; checked before training
    start = load_model(init_bundle) if init_bundle is not None else None
    init_info = None if start is None else {"path": str(init_bundle), "sha256": start.sha256, "steps": start.provenance.get("steps")}
    if start is not None:  # fine-tuning: what is left to auto comes from the bundle (it was made for its setup)
        mc = start.model.config
        adopt: dict[str, Any] = {}
        if config.model.preset == Preset.auto:  # the bundle's network, on any device
            adopt.update({f"model.{k}": mc[k] for k in ("preset", "width", "depth", "residual", "gate") if k in mc})
        if config.output.polarity == Polarity.auto:  # not what this recording's first frames suggest
            adopt["output.polarity"] = start.config.output.polarity.value
        if config.model.temporal_channel == "auto" and "temporal_channel" in mc:
            adopt["model.temporal_channel"] = mc["temporal_channel"]
        config = config.override(adopt)
    device = resolve_device(config.train.device)
    config = resolve_device_defaults(config, device.type)
    if config.sampling.mode == "static":
        config = resolve_temporal(config)
    tcfg = config.train
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    inputs = list(inputs)
    if tcfg.threads is not None:
        torch.set_num_threads(tcfg.threads)
    amp_dtype = autocast_dtype(tcfg.precision, device) if device.type != "cpu" else None
    if device.type == "cpu" and tcfg.precision in ("bf16", "fp16"):
        amp_dtype = autocast_dtype(tcfg.precision, device)
    channels_last = device.type == "cuda"

    # every input error is raised here, before any training
    if config.sampling.mode == "static":  # pairs synthesised from crop banks (vidfilter.synth.paste)
        from vidfilter.synth.paste import make_static_samplers

        sset = make_static_samplers(inputs, config)
    else:
        sset = make_samplers(inputs, config, targets=targets)
        config = sset.config or config  # polarity detected, temporal channel resolved
    supervised = bool(getattr(sset, "targets", None))  # clean backgrounds as targets (generated corpora)
    ckpt_path = checkpoint_path(out)
    try:
        val_batch = None
        if sset.val is not None:
            vi, vt = sset.val.batch(tcfg.val_pairs)
            val_batch = (torch.from_numpy(vi), torch.from_numpy(vt))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tcfg.seed)
            model = build_model(config.model)
            if start is not None:
                if start.model.config != model.config:
                    raise ConfigError(
                        f"{init_bundle}: its model settings ({start.model.config}) differ from this config's "
                        f"({model.config}); set the model section to match the bundle"
                    )
                model.load_state_dict(start.model.state_dict())
                logger.info("starting from the weights of %s", init_bundle)
            model.to(device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            base_lr = tcfg.resolved_lr()
            optimiser = torch.optim.Adam(model.parameters(), lr=base_lr)
            ema = None  # exponential moving average of the weights: what is validated and saved
            if tcfg.ema is not None:
                from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

                ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tcfg.ema), use_buffers=True)
            scaler = torch.amp.GradScaler("cuda") if (amp_dtype == torch.float16 and device.type == "cuda") else None
            state = TrainResult()

            if resume and (ckpt_path.exists() or ckpt_path.is_symlink()):
                ck = load_checkpoint(ckpt_path, required=TRAINING_KEYS)
                _check_resume_config(ck["config"], config, ckpt_path)
                if ck["supervised"] != supervised:
                    raise ConfigError(f"{ckpt_path} was written {'with' if ck['supervised'] else 'without'} clean "
                                      f"targets; resume it the same way or start anew (delete it)")
                try:
                    model.load_state_dict(ck["model"])
                    optimiser.load_state_dict(ck["optimiser"])
                    if ema is not None and ck.get("ema") is not None:
                        ema.load_state_dict(ck["ema"])
                    if scaler is not None and ck.get("scaler"):
                        scaler.load_state_dict(ck["scaler"])
                    if ck.get("sampler") is not None and tcfg.num_workers == 0:
                        sset.train.set_state(ck["sampler"])
                    torch.set_rng_state(ck["torch_rng"])
                    if device.type == "cuda" and ck.get("cuda_rng") is not None:
                        torch.cuda.set_rng_state(ck["cuda_rng"], device)
                    state = _restore_result(ck["result"], ck["step"])
                except VidfilterError:
                    raise
                except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
                    reason = " ".join(str(e).split())[:160] or type(e).__name__
                    raise BundleError(f"{ckpt_path}: does not fit this training run or is corrupt ({reason}); "
                                      "delete it to start afresh, or train without --resume") from None
                logger.info("resuming %s at step %d (%.1f min trained)", out, state.step, state.elapsed_s / 60)
            elif resume:
                logger.info("no checkpoint at %s; starting a new run", ckpt_path)

            def write_checkpoint() -> None:
                save_checkpoint(
                    ckpt_path,
                    {
                        "config": config.to_dict(),
                        "model": model.state_dict(),
                        "optimiser": optimiser.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None,
                        "scheduler": {"kind": tcfg.lr_schedule, "base_lr": base_lr, "lr": optimiser.param_groups[0]["lr"]},
                        "scaler": scaler.state_dict() if scaler is not None else None,
                        "sampler": sset.train.get_state() if tcfg.num_workers == 0 else None,
                        "torch_rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                        "step": state.step,
                        "supervised": supervised,
                        "result": state.to_dict(),
                    },
                )

            def final_model() -> torch.nn.Module:
                return ema.module if ema is not None else model

            def validate() -> None:
                if val_batch is None:
                    return
                metrics = _evaluate(final_model(), val_batch, config, device, amp_dtype, channels_last)
                metrics["step"] = state.step
                state.val.append(metrics)
                logger.info(
                    "step %d: val loss %.5f, identity score %s%s", state.step, metrics["loss"],
                    "n/a" if metrics["identity_score"] is None else f"{metrics['identity_score']:.3f}",
                    " (IDENTITY SUSPECTED)" if metrics["identity_suspected"] else "",
                )
                if metrics["loss"] < state.best_val:
                    state.best_val, state.bad_vals = metrics["loss"], 0
                else:
                    state.bad_vals += 1

            def done() -> bool:
                if tcfg.steps is not None and state.step >= tcfg.steps:
                    state.stopped = "steps"
                elif tcfg.minutes is not None and state.elapsed_s >= tcfg.minutes * 60:
                    state.stopped = "minutes"
                elif tcfg.early_stop_patience is not None and state.bad_vals >= tcfg.early_stop_patience:
                    state.stopped = "early stop"
                return bool(state.stopped)

            bar = _progress_bar(tcfg.steps, state.step, progress)
            model.train()
            batches = _batches(sset, inputs, config, state.step)
            try:
                while not done():
                    t0 = time.perf_counter()
                    inp, tgt = next(batches)
                    inp = inp.to(device, non_blocking=True)
                    tgt = tgt.to(device, non_blocking=True)
                    if channels_last:
                        inp = inp.contiguous(memory_format=torch.channels_last)
                        tgt = tgt.contiguous(memory_format=torch.channels_last)
                    lr = base_lr * _lr_factor(tcfg, state.step, state.elapsed_s)
                    for group in optimiser.param_groups:
                        group["lr"] = lr
                    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
                    with ctx:
                        output = model(inp)
                    loss = pair_loss(output, tgt, inp[:, :1], tcfg, config.output.polarity.value)
                    optimiser.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimiser)
                        scaler.update()
                    else:
                        loss.backward()
                        optimiser.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(f"training loss became {loss_value} at step {state.step + 1}; lower the learning rate")
                    dt = time.perf_counter() - t0
                    state.step += 1
                    state.elapsed_s += dt
                    state.train_loss.append(loss_value)
                    state.step_time.append(dt)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss_value:.4f}", pairs_s=f"{tcfg.batch_size / dt:.1f}")
                    if state.step % tcfg.val_every == 0:
                        validate()
                        model.train()
                    if state.step % tcfg.checkpoint_every == 0:
                        write_checkpoint()
            finally:
                if bar is not None:
                    bar.close()
                close = getattr(batches, "close", None)
                if close is not None:
                    close()
            if val_batch is not None and (not state.val or state.val[-1]["step"] != state.step):
                validate()
            write_checkpoint()
            logger.info("training stopped after %d steps (%s), %.1f min", state.step, state.stopped, state.elapsed_s / 60)

            model = final_model()
            model.eval()
            last = state.val[-1] if state.val else {}
            identity = bool(last.get("identity_suspected", False))
            normalisation = sset.normalisation() if hasattr(sset, "normalisation") else {
                "dtype": str(sset.sources[0].dtype),
                "scale": dtype_scale(sset.sources[0].dtype),
                "polarity": config.output.polarity.value,
                "temporal_channel": config.model.temporal_channel,
                "temporal_frames": TEMPORAL_FRAMES,
            }
            provenance = _provenance(sset, config, state, device, identity)
            provenance["init"] = init_info  # the bundle fine-tuned (None: random weights)
            # what the network was taught to output: a later frame (time-lag pairs) or the true background
            provenance["targets"] = "clean backgrounds" if supervised else "time-lag pairs"
            save_bundle(out, model.to(memory_format=torch.contiguous_format), config, normalisation=normalisation, provenance=provenance)
            try:
                from vidfilter.train.report import write_report

                moved = {sset.sources[i].path: r.summary() for i, r in getattr(sset, "registrations", {}).items()}
                write_report(report_dir(out), state, model, val_batch if val_batch is not None else _some_pairs(sset), config, device,
                             registration=moved, init=init_info, supervised=supervised)
            except Exception:  # the bundle is saved; a report failure must not lose the run
                logger.exception("could not write the training report for %s", out)
    finally:
        sset.close()
    return out


def _some_pairs(sset: SamplerSet, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    state = sset.train.get_state()
    inp, tgt = sset.train.batch(n)
    sset.train.set_state(state)
    return torch.from_numpy(inp), torch.from_numpy(tgt)


@torch.no_grad()
def _evaluate(
    model: torch.nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    config: Config,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
) -> dict[str, Any]:
    """Validation loss and identity score on fixed pairs, in chunks of the batch size."""
    model.eval()
    outputs = predict(model, batch[0], device, amp_dtype, channels_last, config.train.batch_size)
    inp, tgt = batch
    loss = float(pair_loss(outputs, tgt, inp[:, :1], config.train, config.output.polarity.value))
    score = identity_score(outputs, inp[:, :1], tgt, config.train.change_threshold)
    return {
        "loss": loss,
        "identity_score": score,
        "identity_suspected": bool(score is not None and score < IDENTITY_THRESHOLD),
    }


def _provenance(sset: SamplerSet, config: Config, state: TrainResult, device: torch.device, identity: bool) -> dict[str, Any]:
    from vidfilter import __version__

    inputs = sset.describe_inputs() if hasattr(sset, "describe_inputs") else []  # static mode: crop banks
    for i, src in enumerate(sset.sources):
        size = None
        try:
            p = Path(src.path)
            if p.is_file():
                size = p.stat().st_size
            elif p.is_dir():
                size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        except OSError:
            pass
        role = "train" if any(s.source == i for s in sset.plan.train) else "validation"
        inputs.append({
            "path": src.path, "frames": len(src), "shape": list(src.shape), "dtype": str(src.dtype),
            "fps": src.fps, "bytes": size, "role": role, "lag_frames": list(sset.plan.lag_ranges[i]),
        })
        reg = getattr(sset, "registrations", {}).get(i)
        if reg is not None:  # the camera moved: pairs and statistic were registered to frame 0
            inputs[-1]["registration"] = reg.summary()
    tail = state.train_loss[-20:]
    last = state.val[-1] if state.val else {}
    return {
        "inputs": inputs,
        "lag": list(config.sampling.lag),
        "lag_unit": config.sampling.lag_unit,
        "steps": state.step,
        "minutes": round(state.elapsed_s / 60, 3),
        "stopped": state.stopped,
        "final_train_loss": float(np.mean(tail)) if tail else None,
        "final_val_loss": last.get("loss"),
        "identity_score": last.get("identity_score"),
        "identity_suspected": identity,
        "seed": config.train.seed,
        "device": str(device),
        "host": platform.node(),
        "vidfilter_version": __version__,
        "torch_version": torch.__version__,
    }
