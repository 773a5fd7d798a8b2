"""Every ``"auto"`` setting settled in one place: :func:`resolve`.

Some settings are decided only when a run starts: the network and the crop side follow the device,
the polarity is the bundle's or is detected from the recordings, the temporal channel follows the
polarity, and a time budget given without a step count runs until the time is up. The concrete
config :func:`resolve` returns is the one recorded in the bundle, the training report and a run's
metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vidfilter.config import Config, Polarity, Preset

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vidfilter.io.source import FrameSource
    from vidfilter.models.bundle import Bundle

logger = logging.getLogger(__name__)

__all__ = ["UNBOUNDED_STEPS", "polarity_frames", "resolve", "run_polarity"]

#: ``train.steps`` of a run given ``train.minutes`` and no step count: it stops when the time is up.
UNBOUNDED_STEPS = 10**9
#: The temporal statistic that shows the plate, not the animals, for each polarity.
_TEMPORAL = {"dark": "max", "bright": "min", "absolute": "none"}
#: the polarity of a recording whose frames are inverted
_OPPOSITE = {"dark": "bright", "bright": "dark"}


def resolve(config: Config, sources: FrameSource | Sequence[FrameSource] | None = None, device: torch.device | None = None,
            bundle: Bundle | None = None, *, run: bool = False) -> Config:
    """``config`` with every ``"auto"`` that the arguments decide made concrete.

    Parameters
    ----------
    config
        The run configuration; settings that are not ``"auto"`` are kept.
    sources
        The training recordings, or the input of a run: ``output.polarity: auto`` is detected from
        them (:func:`vidfilter.polarity.polarity_evidence`). None leaves it to a later call.
    device
        The training device: ``model.preset`` (the paper network on a GPU, the fast one elsewhere)
        and ``sampling.crop`` (256 px for the paper network, 128 px for the fast one;
        docs/benchmarks.md). None leaves them.
    bundle
        Training: the bundle fine-tuned, whose network, polarity and temporal channel fill what is
        auto. A run: the model run, whose polarity (the one it was trained with) is taken.
    run
        Settle only what a run of ``bundle`` needs: the polarity.

    Returns
    -------
    Config
        The resolved config; resolving it again changes nothing.
    """
    if run:
        return _polarity(config, sources, bundle, run=True)
    config = _adopt_network(config, bundle)
    if device is not None:
        config = _device_defaults(config, device)
    return _budget(_temporal(_polarity(config, sources, bundle)))


def _adopt_network(config: Config, bundle: Bundle | None) -> Config:
    """Fine-tuning: the bundle's network where the model section is auto (it was made for its setup)."""
    if bundle is None:
        return config
    mc = bundle.model.config
    adopt: dict[str, Any] = {}
    if config.model.preset == Preset.auto:
        adopt.update({f"model.{k}": mc[k] for k in ("preset", "width", "depth", "residual", "gate") if k in mc})
    if config.model.temporal_channel == "auto" and "temporal_channel" in mc:
        adopt["model.temporal_channel"] = mc["temporal_channel"]
    return config.override(adopt)


def _device_defaults(config: Config, device: torch.device) -> Config:
    """The network for ``device`` (the paper network on a GPU, the fast one elsewhere) and the crop
    side for that network (256 px for the paper network, 128 px for the fast one)."""
    over: dict[str, Any] = {}
    preset = config.model.preset
    if preset == Preset.auto:
        preset = Preset.paper if device.type == "cuda" else Preset.fast
        over["model.preset"] = preset.value
    if config.sampling.crop is None:
        over["sampling.crop"] = 256 if preset == Preset.paper else 128
    return config.override(over) if over else config


def run_polarity(config: Config, bundle: Bundle | None) -> str:
    """The polarity a run of ``bundle`` takes before looking at its frames: ``output.polarity`` when
    given, else the bundle's (the opposite with ``infer.invert``), else ``"auto"``."""
    if config.output.polarity != Polarity.auto:
        return config.output.polarity.value
    found = bundle.config.output.polarity.value if bundle is not None else "auto"
    return _OPPOSITE.get(found, found) if config.infer.invert else found


def _polarity(
    config: Config, sources: FrameSource | Sequence[FrameSource] | None, bundle: Bundle | None, run: bool = False
) -> Config:
    """``output.polarity: auto``: the bundle's, else detected from ``sources`` (logged)."""
    if config.output.polarity != Polarity.auto:
        return config
    found = run_polarity(config, bundle) if run else (bundle.config.output.polarity.value if bundle is not None else "auto")
    if found != "auto":
        if run and config.infer.invert:
            logger.info("polarity: %s (the model's, inverted with the frames; set --polarity to override)", found)
        elif run:
            logger.info("polarity: %s (the model's; set --polarity to override)", found)
        return config.override({"output.polarity": found})
    if sources is None:
        return config
    from vidfilter.polarity import polarity_evidence

    ev = polarity_evidence(sources)
    if run:
        logger.info("polarity: %s (detected from the input: %s; set --polarity to override)", ev.polarity, ev.describe())
    else:
        logger.info("polarity: %s (detected from the recordings; set output.polarity to override)", ev.describe())
    return config.override({"output.polarity": ev.polarity})


def polarity_frames(config: Config, n_frames: int, bundle: Bundle | None = None) -> np.ndarray:
    """The frames ``resolve(config, src, bundle=bundle, run=True)`` reads from an input of ``n_frames``
    to detect the polarity (:func:`vidfilter.polarity.polarity_evidence`): none where it is given."""
    from vidfilter.polarity import polarity_frames as read_by_evidence

    given = config.output.polarity != Polarity.auto or (bundle is not None and bundle.config.output.polarity != Polarity.auto)
    idx = read_by_evidence(n_frames)
    return idx[:0] if given else idx


def _temporal(config: Config) -> Config:
    """``model.temporal_channel: auto``: none for single images (static mode), else the statistic
    of :data:`_TEMPORAL` once the polarity is known."""
    if config.model.temporal_channel != "auto":
        return config
    if config.sampling.mode == "static":
        return config.override({"model.temporal_channel": "none"})
    if config.output.polarity == Polarity.auto:
        return config
    return config.override({"model.temporal_channel": _TEMPORAL[config.output.polarity.value]})


def _budget(config: Config) -> Config:
    """``train.minutes`` given and ``train.steps`` not: :data:`UNBOUNDED_STEPS`, so the time decides."""
    tc = config.train
    if tc.minutes is not None and "steps" not in tc.model_fields_set:
        return config.override({"train.steps": UNBOUNDED_STEPS})
    return config
