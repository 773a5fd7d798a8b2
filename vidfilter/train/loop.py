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

import copy
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
from vidfilter.io.scaling import dtype_scale
from vidfilter.sampling.pairs import TEMPORAL_FRAMES, PairDataset, SamplerSet, make_samplers
from vidfilter.resolve import resolve
from vidfilter.train.result import TrainResult, predict
from vidfilter.train.checkpoint import TRAINING_KEYS, checkpoint_path, load_checkpoint, report_dir, save_checkpoint
from vidfilter.train.report import IDENTITY_THRESHOLD, write_report

logger = logging.getLogger(__name__)


__all__ = ["Trainer", "train", "pair_loss", "polarity_target", "identity_score", "IDENTITY_THRESHOLD"]


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


def _sides_touched(seen: torch.Tensor) -> torch.Tensor:
    """For each pixel of ``seen`` (boolean, ``(..., H, W)``), how many of the crop's four sides its
    8-connected component touches (0 for a component the crop holds whole, and off ``seen``)."""
    from scipy import ndimage

    shape = seen.shape
    crops = seen.detach().cpu().numpy().reshape(-1, *shape[-2:])
    out = np.zeros(crops.shape, np.float32)
    for i, crop in enumerate(crops):
        if not crop.any():
            continue
        labels, n = ndimage.label(crop, structure=np.ones((3, 3), bool))
        sides = np.zeros(n + 1, np.float32)
        for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            sides[np.unique(edge)] += 1
        sides[0] = 0
        out[i] = sides[labels]
    return torch.from_numpy(out).reshape(shape).to(seen.device)


#: a detection of the starting bundle that spans the training crop (its component touches two or
#: more of the crop's sides: a wall, a dark border) is taken where it lies farther than this share
#: of the crop side from the crop's edges, and nearer them the time-lag target stays
ANCHOR_EDGE = 0.25


def anchored_target(target: torch.Tensor, frame: torch.Tensor, reference: torch.Tensor, polarity: str,
                    threshold: float, edge: float = ANCHOR_EDGE) -> torch.Tensor:
    """``target`` with ``reference`` (the starting bundle's background of ``frame``) where that
    reference sees an animal in the frame (``train.anchor``).

    A detection is ``reference - frame > threshold`` for dark animals, ``frame - reference`` for
    bright ones, the absolute difference otherwise. One that the crop holds whole, or that enters
    it from one side (an animal cut by the crop), is taken everywhere. One that spans the crop
    (touching two or more of its sides) is taken only farther than ``edge`` of the crop side from
    its edges: there the bundle saw the crop without the context beyond it, unlike on the whole
    frame it was made for, and a dark wall along the edge of a crop read as an animal on the floor
    (mouse_tracktor frames 9490-9789) would teach removing the wall."""
    d = reference - frame
    seen = d > threshold if polarity == "dark" else (-d > threshold if polarity == "bright" else d.abs() > threshold)
    h, w = seen.shape[-2:]
    by, bx = int(edge * h), int(edge * w)
    trusted = _sides_touched(seen) < 2
    trusted[..., by : h - by, bx : w - bx] = True
    return torch.where(seen & trusted, reference, target)


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


def _batches(sset: SamplerSet, inputs: Sequence[Any], config: Config, start_step: int,
             replay: tuple[SamplerSet, int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches; ``replay = (samplers, n)``: the last ``n`` pairs of each batch come from
    those samplers (a shipped setup's corpus with clean targets, :func:`_replay_samplers`)."""
    bs = config.train.batch_size
    if config.train.num_workers == 0:
        while True:
            if replay is None:
                inp, tgt = sset.train.batch(bs)
            else:
                (a, at), (b, bt) = sset.train.batch(bs - replay[1]), replay[0].train.batch(replay[1])
                inp, tgt = np.concatenate([a, b]), np.concatenate([at, bt])
            yield torch.from_numpy(inp), torch.from_numpy(tgt)
    if hasattr(sset, "make_dataset"):  # static mode: the synthesiser's own (order-preserving) dataset
        dataset = sset.make_dataset(bs, start_step)
    else:
        dataset = PairDataset(inputs, config, batch_size=bs, seed=config.train.seed + 7919 * start_step, statistics=sset.statistics,
                              targets=_target_paths(sset))
    # workers are started fresh ("spawn"), not forked: a fork copies this process with its decoder,
    # writer and OpenMP threads, and a lock one of them held at that moment stays locked in the child
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=config.train.num_workers, pin_memory=torch.cuda.is_available(),
        persistent_workers=False, multiprocessing_context="spawn",
    )
    yield from loader


def _replay_samplers(init_bundle: Path | None, config: Config) -> tuple[SamplerSet, int] | None:
    """Fine-tuning a shipped bundle with ``train.replay``: samplers of clean-target pairs of its
    setup's corpus (:func:`vidfilter.train.corpus.replay_corpus`) and how many pairs of each batch
    they give (that share of the batch, at least one)."""
    from vidfilter.models.shipped import setup_of

    share = config.train.replay
    if share <= 0 or config.sampling.mode == "static":
        return None
    setup = setup_of(init_bundle)
    if setup is None:
        raise ConfigError(f"train.replay {share} replays a shipped setup's corpus; --init {init_bundle} is not a shipped "
                          "bundle (use --init SETUP, or set train.replay 0)")
    if config.train.num_workers > 0:
        logger.warning("train.replay is used with train.num_workers 0 only; fine-tuning without replay")
        return None
    from vidfilter.train.corpus import replay_corpus

    paths, backgrounds = replay_corpus(setup)
    n = min(config.train.batch_size - 1, max(1, round(share * config.train.batch_size)))
    if n < 1:
        logger.warning("train.batch_size %d leaves no room for replayed pairs; fine-tuning without replay",
                       config.train.batch_size)
        return None
    logger.info("replaying %d of %d pairs of each batch from %d recordings of the %s corpus (clean targets)",
                n, config.train.batch_size, len(paths), setup)
    return make_samplers([str(p) for p in paths], config, validation=False, targets=[str(b) for b in backgrounds]), n


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


class Trainer:
    """One training run: time-lag pairs of ``inputs`` -> a bundle at ``out``.

    Construction checks every input and output and settles the config
    (:func:`vidfilter.resolve.resolve`), so every error comes before the first step; :meth:`fit`
    trains and saves the bundle, its checkpoint (``OUT.ckpt``) and its report (``OUT.report/``):
    :meth:`prepare` (network, optimiser, weight average), :meth:`restore` (the checkpoint, with
    ``resume``), :meth:`step` per batch with :meth:`validate` and :meth:`checkpoint` at their
    intervals, then :meth:`finish` (bundle and report).

    Parameters
    ----------
    inputs
        Recordings: paths, glob patterns, ``.txt`` lists of paths, open FrameSources or arrays.
        Static mode (``sampling.mode: static``): crop banks.
    out
        The bundle file to write (e.g. ``model.vfm``).
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
    """

    def __init__(
        self,
        inputs: str | Path | Sequence[Any],
        out: str | Path,
        config: Config,
        *,
        resume: bool = False,
        progress: bool = True,
        init_bundle: str | Path | None = None,
        targets: Sequence[Any] | None = None,
    ) -> None:
        from vidfilter.infer.device import autocast_dtype, resolve_device
        from vidfilter.models import load_model
        from vidfilter.models.shipped import resolve_init

        self.out, self.resume, self.progress = Path(out), resume, progress
        _check_outputs(self.out, inputs, resume)
        self.init_bundle = resolve_init(init_bundle)  # a setup name (shipped bundle) or a path
        self.start = load_model(self.init_bundle) if self.init_bundle is not None else None
        self.init_info = None if self.start is None else {
            "path": str(self.init_bundle), "sha256": self.start.sha256, "steps": self.start.provenance.get("steps")}
        self.device = resolve_device(config.train.device)
        config = resolve(config, device=self.device, bundle=self.start)
        self.inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if config.train.threads is not None:
            torch.set_num_threads(config.train.threads)
        self.amp_dtype = autocast_dtype(config.train.precision, self.device)
        self.channels_last = self.device.type == "cuda"
        # every input error is raised here, before any training
        if config.sampling.mode == "static":  # pairs synthesised from crop banks
            from vidfilter.static.samplers import make_static_samplers

            self.sset = make_static_samplers(self.inputs, config)
        else:
            self.sset = make_samplers(self.inputs, config, targets=targets)
            config = self.sset.config or config  # polarity detected, temporal channel settled
        self.config, self.tcfg = config, config.train
        try:
            self.replay = _replay_samplers(self.init_bundle, config)
        except BaseException:
            self.sset.close()
            raise
        self.supervised = bool(getattr(self.sset, "targets", None))  # clean backgrounds as targets
        self.ckpt_path = checkpoint_path(self.out)
        self.state = TrainResult()
        self.val_batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def fit(self) -> Path:
        """Train until the steps, the minutes or the early stop say so; save; return the bundle's path."""
        try:
            if self.sset.val is not None:
                vi, vt = self.sset.val.batch(self.tcfg.val_pairs)
                self.val_batch = (torch.from_numpy(vi), torch.from_numpy(vt))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.tcfg.seed)
                self.prepare()
                if self.resume:
                    self.restore()
                self._loop()
                if self.val_batch is not None and (not self.state.val or self.state.val[-1]["step"] != self.state.step):
                    self.validate()
                self.checkpoint()
                logger.info("training stopped after %d steps (%s), %.1f min",
                            self.state.step, self.state.stopped, self.state.elapsed_s / 60)
                self.finish()
        finally:
            self.sset.close()
            if self.replay is not None:
                self.replay[0].close()
        return self.out

    def prepare(self) -> None:
        """The network (random, or the start bundle's weights), Adam, the weight average and the scaler."""
        from vidfilter.models import build_model

        model = build_model(self.config.model)
        if self.start is not None:
            if self.start.model.config != model.config:
                raise ConfigError(
                    f"{self.init_bundle}: its model settings ({self.start.model.config}) differ from this config's "
                    f"({model.config}); set the model section to match the bundle"
                )
            model.load_state_dict(self.start.model.state_dict())
            logger.info("starting from the weights of %s", self.init_bundle)
        model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.anchor = None  # the starting bundle, frozen: its backgrounds anchor the targets (train.anchor)
        if self.start is not None and self.tcfg.anchor is not False and self.config.sampling.mode != "static":
            self.anchor = copy.deepcopy(model).eval().requires_grad_(False)
            logger.info("anchoring the targets to %s where it sees an animal", self.init_bundle)
        self.base_lr = self.tcfg.resolved_lr()
        self.optimiser = torch.optim.Adam(model.parameters(), lr=self.base_lr)
        self.ema = None  # exponential moving average of the weights: what is validated and saved
        if self.tcfg.ema is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.tcfg.ema), use_buffers=True)
        use_scaler = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def restore(self) -> None:
        """Continue from the checkpoint next to the bundle, exactly where it stopped."""
        path = self.ckpt_path
        if not (path.exists() or path.is_symlink()):
            logger.info("no checkpoint at %s; starting a new run", path)
            return
        ck = load_checkpoint(path, required=TRAINING_KEYS)
        _check_resume_config(ck["config"], self.config, path)
        if ck["supervised"] != self.supervised:
            raise ConfigError(f"{path} was written {'with' if ck['supervised'] else 'without'} clean "
                              f"targets; resume it the same way or start anew (delete it)")
        try:
            self.model.load_state_dict(ck["model"])
            self.optimiser.load_state_dict(ck["optimiser"])
            if self.ema is not None and ck.get("ema") is not None:
                self.ema.load_state_dict(ck["ema"])
            if self.scaler is not None and ck.get("scaler"):
                self.scaler.load_state_dict(ck["scaler"])
            if ck.get("sampler") is not None and self.tcfg.num_workers == 0:
                self.sset.train.set_state(ck["sampler"])
            if (ck.get("replay_sampler") is None) != (self.replay is None):
                raise ConfigError(f"{path} was written {'with' if ck.get('replay_sampler') is not None else 'without'} "
                                  "replayed corpus pairs; resume it with the same train.replay or start anew (delete it)")
            if self.replay is not None:
                self.replay[0].train.set_state(ck["replay_sampler"])
            torch.set_rng_state(ck["torch_rng"])
            if self.device.type == "cuda" and ck.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ck["cuda_rng"], self.device)
            self.state = _restore_result(ck["result"], ck["step"])
        except VidfilterError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            reason = " ".join(str(e).split())[:160] or type(e).__name__
            raise BundleError(f"{path}: does not fit this training run or is corrupt ({reason}); "
                              "delete it to start afresh, or train without --resume") from None
        logger.info("resuming %s at step %d (%.1f min trained)", self.out, self.state.step, self.state.elapsed_s / 60)

    def checkpoint(self) -> None:
        """Write everything an exact resume needs, atomically, next to the bundle."""
        dev = self.device
        save_checkpoint(self.ckpt_path, {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scheduler": {"kind": self.tcfg.lr_schedule, "base_lr": self.base_lr, "lr": self.optimiser.param_groups[0]["lr"]},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "sampler": self.sset.train.get_state() if self.tcfg.num_workers == 0 else None,
            "replay_sampler": self.replay[0].train.get_state() if self.replay is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
            "step": self.state.step,
            "supervised": self.supervised,
            "result": self.state.to_dict(),
        })

    def _final_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def validate(self) -> None:
        """Loss and identity score on the held-out pairs, recorded; counts towards the early stop."""
        if self.val_batch is None:
            return
        state = self.state
        metrics = _evaluate(self._final_model(), self.val_batch, self.config, self.device, self.amp_dtype, self.channels_last)
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

    def _done(self) -> bool:
        tcfg, state = self.tcfg, self.state
        if tcfg.steps is not None and state.step >= tcfg.steps:
            state.stopped = "steps"
        elif tcfg.minutes is not None and state.elapsed_s >= tcfg.minutes * 60:
            state.stopped = "minutes"
        elif tcfg.early_stop_patience is not None and state.bad_vals >= tcfg.early_stop_patience:
            state.stopped = "early stop"
        return bool(state.stopped)

    def step(self, inp: torch.Tensor, tgt: torch.Tensor) -> float:
        """One optimiser step on a batch; the loss."""
        inp = inp.to(self.device, non_blocking=True)
        tgt = tgt.to(self.device, non_blocking=True)
        if self.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
            tgt = tgt.contiguous(memory_format=torch.channels_last)
        lr = self.base_lr * _lr_factor(self.tcfg, self.state.step, self.state.elapsed_s)
        for group in self.optimiser.param_groups:
            group["lr"] = lr
        ctx = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()
        if self.anchor is not None:
            with torch.no_grad(), ctx:
                reference = self.anchor(inp).float()
            tgt = anchored_target(tgt, inp[:, :1], reference, self.config.output.polarity.value, self.tcfg.change_threshold)
        with ctx:
            output = self.model(inp)
        loss = pair_loss(output, tgt, inp[:, :1], self.tcfg, self.config.output.polarity.value)
        self.optimiser.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimiser)
            self.scaler.update()
        else:
            loss.backward()
            self.optimiser.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss became {loss_value} at step {self.state.step + 1}; lower the learning rate")
        return loss_value

    def _loop(self) -> None:
        tcfg, state = self.tcfg, self.state
        bar = _progress_bar(tcfg.steps, state.step, self.progress)
        self.model.train()
        batches = _batches(self.sset, self.inputs, self.config, state.step, self.replay)
        try:
            while not self._done():
                t0 = time.perf_counter()
                loss_value = self.step(*next(batches))
                dt = time.perf_counter() - t0
                state.step += 1
                state.elapsed_s += dt
                state.train_loss.append(loss_value)
                state.step_time.append(dt)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.4f}", pairs_s=f"{tcfg.batch_size / dt:.1f}")
                if state.step % tcfg.val_every == 0:
                    self.validate()
                    self.model.train()
                if state.step % tcfg.checkpoint_every == 0:
                    self.checkpoint()
        finally:
            if bar is not None:
                bar.close()
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    def _check_fine_tuning(self, tuned: Path) -> dict[str, Any]:
        """Judge the tuned bundle at ``tuned`` against the starting one (:mod:`vidfilter.train.guard`) and
        say so in one line. Returns the check's record; ``kept_start`` is true when ``train.guard``
        and a verdict against the tuned network mean the starting network is to be written instead."""
        from vidfilter.models.bundle import load_model
        from vidfilter.train.guard import check_fine_tuning

        check = check_fine_tuning(self.start, load_model(tuned, device=self.device), self.sset.sources, self.config)
        record = {**check.to_dict(), "kept_start": bool(not check.accepted and self.tcfg.guard)}
        start = Path(self.init_bundle).name
        if check.accepted:
            logger.info("fine-tuning check: %s (gives back %.3f of what %s removes; still plate seen as animals %.3f)",
                        check.reason, check.kept, start, check.extra)
        elif record["kept_start"]:
            logger.warning("fine-tuning did not beat %s on this recording: %s; %s holds the starting bundle's network "
                           "(`train: {guard: false}` in a --config file keeps the tuned one)", start, check.reason, self.out.name)
        else:
            logger.warning("fine-tuning is worse than %s on this recording: %s (kept, as train.guard is false)",
                           start, check.reason)
        return record

    def finish(self) -> None:
        """The bundle (the averaged weights when there are any), then the report."""
        from vidfilter.models import save_bundle

        sset, config, state = self.sset, self.config, self.state
        model = self._final_model()
        model.eval()
        identity = bool((state.val[-1] if state.val else {}).get("identity_suspected", False))
        normalisation = sset.normalisation() if hasattr(sset, "normalisation") else {
            "dtype": str(sset.sources[0].dtype),
            "scale": dtype_scale(sset.sources[0].dtype),
            "polarity": config.output.polarity.value,
            "temporal_channel": config.model.temporal_channel,
            "temporal_frames": TEMPORAL_FRAMES,
        }
        provenance = _provenance(sset, config, state, self.device, identity)
        provenance["init"] = self.init_info  # the bundle fine-tuned (None: random weights)
        provenance["anchor"] = self.anchor is not None  # targets anchored to that bundle where it saw animals
        if self.replay is not None:  # pairs of each batch replayed from the bundle's own corpus
            provenance["replay"] = {"pairs_per_batch": self.replay[1], "recordings": [s.path for s in self.replay[0].sources]}
        # what the network was taught to output: a later frame (time-lag pairs) or the true background
        provenance["targets"] = "clean backgrounds" if self.supervised else "time-lag pairs"
        check = None
        if self.start is not None and config.sampling.mode != "static":  # judged before the bundle is written
            tuned = self.out.parent / f".{self.out.name}.tuned"
            try:
                save_bundle(tuned, model.to(memory_format=torch.contiguous_format), config,
                            normalisation=normalisation, provenance=provenance)
                provenance["fine_tuning_check"] = check = self._check_fine_tuning(tuned)
            finally:
                tuned.unlink(missing_ok=True)
            if check["kept_start"]:
                model = self.start.model
        save_bundle(self.out, model.to(memory_format=torch.contiguous_format), config,
                    normalisation=normalisation, provenance=provenance)
        try:

            moved = {sset.sources[i].path: r.summary() for i, r in getattr(sset, "registrations", {}).items()}
            pairs = self.val_batch if self.val_batch is not None else _some_pairs(sset)
            write_report(report_dir(self.out), state, model, pairs, config, self.device,
                         registration=moved, supervised=self.supervised,
                         init=None if self.init_info is None else {**self.init_info, "check": check})
        except Exception:  # the bundle is saved; a report failure must not lose the run
            logger.exception("could not write the training report for %s", self.out)


def train(inputs: str | Path | Sequence[Any], out: str | Path, config: Config, **options: Any) -> Path:
    """Train a background model and save it as a bundle at ``out``: ``Trainer(...).fit()``.

    ``options`` are :class:`Trainer`'s: ``resume``, ``progress``, ``init_bundle``, ``targets``.
    Crop banks (``vidfilter extract-crops``) train in static mode when the config chose no mode.
    Returns the bundle's path."""
    from vidfilter.static.bank import static_for_banks

    config, note = static_for_banks(inputs, config)
    if note:
        logger.info(note)
    return Trainer(inputs, out, config, **options).fit()


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
