"""The pair source of the static mode for :func:`vidfilter.train.loop.train`: crop banks ->
training and validation streams of synthetic pairs (:mod:`vidfilter.static.synthesis`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidfilter.config import Config
from vidfilter.errors import ConfigError
from vidfilter.static.bank import CropBank, load_banks
from vidfilter.static.synthesis import PairSynthesizer

__all__ = ["StaticSamplerSet", "SynthSampler", "VAL_SEED", "make_static_samplers"]

#: Seed of the validation pairs (fixed, so every run of a config is scored on the same pairs).
VAL_SEED = 20_240_611


class SynthSampler:
    """A stream of synthetic pairs with the interface of :class:`vidfilter.sampling.pairs.PairSampler`
    that :func:`vidfilter.train.loop.train` uses: ``batch(n)``, ``get_state()``, ``set_state()``."""

    def __init__(self, synth: PairSynthesizer, seed: int) -> None:
        self.synth, self.seed, self.index = synth, int(seed), 0

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        out = self.synth.batch(self.index, n, self.seed)
        self.index += n
        return out

    def get_state(self) -> dict[str, Any]:
        """Where the stream is: plain data (``kind``, ``seed``, ``index``), storable as JSON."""
        return {"kind": "synth", "seed": int(self.seed), "index": int(self.index)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue the stream at :meth:`get_state`'s ``index`` (``ValueError`` if it is negative)."""
        index = int(state["index"])
        if index < 0:
            raise ValueError(f"synthetic pair index {index} is negative")
        self.index = index

    def close(self) -> None:
        pass


@dataclass
class StaticSamplerSet:
    """What :func:`vidfilter.train.loop.train` needs from a pair source, for the static mode."""

    train: SynthSampler
    val: SynthSampler | None
    bank: CropBank
    synth: PairSynthesizer
    sources: list[Any] = field(default_factory=list)
    statistics: dict[int, np.ndarray] = field(default_factory=dict)

    def close(self) -> None:
        pass

    def make_dataset(self, batch_size: int, start_step: int) -> Any:
        """DataLoader dataset continuing the training stream at ``start_step``."""
        from vidfilter.static.dataset import SynthDataset

        return SynthDataset(self.synth, batch_size, self.train.seed, start_step)

    def normalisation(self) -> dict[str, Any]:
        b = self.bank
        return {
            "mode": "static", "dtype": b.dtypes[0] if b.dtypes else "uint8", "scale": 1.0,
            "preprocess": b.preprocess.model_dump(mode="json"), "log_gain": b.log_gain, "polarity": "absolute",
            "temporal_channel": "none",
        }

    def describe_inputs(self) -> list[dict[str, Any]]:
        b = self.bank
        return [{
            "banks": b.paths, "targets": len(b.targets), "unwanted": len(b.unwanted), "backgrounds": len(b.backgrounds),
            "dtypes": b.dtypes, "role": "train",
        }]


def make_static_samplers(inputs: Sequence[Any], config: Config, *, seed: int | None = None) -> StaticSamplerSet:
    """Crop banks -> training and validation pair streams (errors before any training)."""
    if config.model.temporal_channel not in ("auto", "none"):
        raise ConfigError(
            f"static mode works on single images: set model.temporal_channel: none (got {config.model.temporal_channel!r})"
        )
    if config.model.in_channels != 1 or config.model.out_channels != 1:
        raise ConfigError("static mode trains grey models: set model.in_channels and model.out_channels to 1")
    bank = load_banks([os.fspath(p) for p in inputs])
    synth = PairSynthesizer(bank, config.static.synth, config.sampling.crop_size())
    train = SynthSampler(synth, config.train.seed if seed is None else seed)
    val = SynthSampler(synth, VAL_SEED) if config.train.val_pairs > 0 else None
    return StaticSamplerSet(train, val, bank, synth)
