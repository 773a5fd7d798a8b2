"""Typed, validated, versioned configuration (a leaf module: no torch or PyAV imports).

One :class:`Config` holds every setting of a run, in sections that mirror the package:
``model``, ``sampling``, ``train``, ``infer``, ``output``. YAML files in ``configs/`` load into it,
every CLI flag overrides one field, and the same dump is stored inside every model bundle and
every output's run metadata.
"""

from __future__ import annotations

import difflib
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vidfilter.static.config import StaticConfig
from vidfilter.errors import ConfigError

SCHEMA_VERSION = 1
#: Foreground values below this many grey levels (8-bit scale) are stored as 0 outside the mask;
#: chosen on real recordings in docs/performance.md ("Output size").
FOREGROUND_FLOOR = 8.0


class Polarity(str, Enum):
    """How foreground is computed from frame and background."""

    bright = "bright"  # frame - background: animals lighter than the plate
    dark = "dark"  # background - frame: dark animals on a light plate
    absolute = "absolute"  # |frame - background|
    auto = "auto"  # found from the recording: training detects it, a run takes the model's (detect_polarity)


class Preset(str, Enum):
    paper = "paper"  # the Noise2Noise U-Net of the paper: width 48, ~0.99 M parameters
    fast = "fast"  # lighter network for CPU use
    auto = "auto"  # paper on a GPU, fast on a CPU (vidfilter.resolve; measured in docs/benchmarks.md)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


class ModelConfig(_Section):
    preset: Preset = Preset.auto
    width: int | None = Field(None, ge=4, le=256, description="channels per stage; None = from preset")
    depth: int = Field(5, ge=1, le=7, description="number of 2x down-samplings")
    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1)
    residual: bool = Field(True, description="output = input + correction (last layer zero-initialised)")
    gate: bool = Field(
        True,
        description="with a temporal channel: output = stat + sigmoid(net) * (frame - stat), so the "
        "network only decides per pixel whether it sees the plate or an animal",
    )
    temporal_channel: Literal["auto", "none", "max", "min", "median"] = Field(
        "auto",
        description="extra input channel: a temporal statistic of the recording; auto = max for dark "
        "animals, min for bright ones, none for absolute polarity",
    )

    def resolved_width(self) -> int:
        if self.width is not None:
            return self.width
        return 16 if self.preset == Preset.fast else 48  # auto unresolved (no device known): the paper's


class SamplingConfig(_Section):
    mode: Literal["video", "static"] = Field(
        "video", description="video: time-lag pairs of recordings; static: pairs synthesised from a crop bank (config.static)"
    )
    crop: int | None = Field(
        None, ge=16,
        description="square crop side in pixels (static mode: the synthetic patch side); None = 256 with the "
        "paper network, 128 with the fast one (vidfilter.resolve)",
    )
    lag: tuple[float, float] = Field(
        (0.05, 0.5), description="lag range [min, max] in lag_unit (default: 5-50 % of the recording's length)"
    )
    lag_unit: Literal["frames", "seconds", "fraction"] = Field(
        "fraction", description="frames, seconds (via fps) or fraction of the usable recording length"
    )
    trim_start: int = Field(0, ge=0, description="frames skipped at the start of each recording")
    trim_end: int = Field(0, ge=0, description="frames skipped at the end of each recording")
    swap: float = Field(0.5, ge=0, le=1, description="probability of swapping input and target")
    flips: bool = True
    rot90: bool = True
    pool_frames: int = Field(64, ge=2, description="frames held in the decoded frame pool")
    pool_run: int = Field(8, ge=1, description="consecutive frames decoded per pool refresh run")
    pool_refresh: int = Field(200, ge=1, description="pairs drawn between pool refresh runs")
    mine_fraction: float = Field(0.5, ge=0, le=1, description="share of crops centred where the pair differs")
    mine_threshold: float = Field(0.04, ge=0, description="|difference| (in [0,1]) that counts as change")
    stat_dropout: float = Field(
        0.5, ge=0, le=1,
        description="share of training pairs whose temporal-statistic crop also shows the input's animals "
        "(as for animals that never move), so the model learns to remove them by their look",
    )
    registration: Literal["auto", "on", "off"] = Field(
        "auto",
        description="camera-shift registration (vidfilter.temporal.register): align training pairs and the "
        "temporal statistic to frame 0; auto = on for a recording whose surveyed frames moved by 1 px or more",
    )
    registration_max_shift: int = Field(32, ge=1, description="larger estimated shifts count as failures (frame treated as unshifted)")

    def crop_size(self) -> int:
        """The crop side: ``crop``, or 256 where it is still unresolved."""
        return self.crop if self.crop is not None else 256

    @field_validator("lag", mode="before")
    @classmethod
    def _lag_pair(cls, v: Any) -> Any:
        if isinstance(v, (int, float)):
            return (v, v)
        return v

    @model_validator(mode="after")
    def _lag_order(self) -> SamplingConfig:
        lo, hi = self.lag
        if lo <= 0 or hi < lo:
            raise ValueError(f"lag must be positive with min <= max, got {list(self.lag)}")
        if self.lag_unit == "fraction" and hi >= 1:
            raise ValueError(f"a lag given as a fraction of the recording must be < 1, got {list(self.lag)}; "
                             "set sampling.lag_unit: frames for a lag in frames")
        return self


class TrainConfig(_Section):
    steps: int | None = Field(2000, ge=1)
    minutes: float | None = Field(None, gt=0, description="time budget; stops at whichever of steps/minutes comes first "
                                   "(minutes without steps: the time alone, vidfilter.resolve)")
    batch_size: int = Field(8, ge=1)
    lr: float | None = Field(
        None, gt=0,
        description="None = 1.25e-4 x batch size (1e-3 at batch 8, measured for minutes of CPU training); "
        "the paper's rule 1e-5 x batch size is in configs/worms_video.yaml",
    )
    loss: Literal["smooth_l1", "l1", "l2"] = "smooth_l1"
    beta: float = Field(1.0, gt=0, description="SmoothL1 beta")
    change_weight: float = Field(6.0, ge=1, description="loss weight on pixels that changed between the pair")
    change_threshold: float = Field(0.04, ge=0)
    polarity_target: bool = Field(
        True,
        description="dark animals only darken the plate: where the target frame is darker than the input by "
        "more than change_threshold (an animal in the target), the input is the target (bright: lighter); "
        "without it the loss pulls the background towards the animals that cross the plate",
    )
    lr_schedule: Literal["constant", "cosine"] = "constant"
    ema: float | None = Field(
        None, ge=0, lt=1,
        description="decay of an exponential moving average of the weights; the average is validated and saved (None = the last weights)",
    )
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    checkpoint_every: int = Field(200, ge=1)
    val_every: int = Field(200, ge=1)
    val_pairs: int = Field(16, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of frames held out for validation")
    early_stop_patience: int | None = Field(None, ge=1, description="validations without improvement")
    num_workers: int = Field(0, ge=0)
    anchor: bool | None = Field(
        None,
        description="fine-tuning (--init): where the starting bundle sees an animal in the input frame (its background "
        "differs from the frame by more than change_threshold, in the polarity's direction), the target is that "
        "bundle's own background, so fine-tuning adapts the plate without learning to keep the animals the bundle "
        "removes (still ones above all); near the training crop's edges a detection that spans the crop (a wall) "
        "keeps the time-lag target (the bundle made it without the context beyond the crop); None = on when fine-tuning",
    )
    guard: bool = Field(
        True,
        description="fine-tuning (--init): after training, judge the tuned network against the starting bundle on frames "
        "of the recording (vidfilter.train.guard) and write the starting bundle instead when the tuned one gives back "
        "animals it removed, sees still plate as animals or finds fewer moving animals; false = always write the tuned "
        "network (the check is still reported)",
    )
    replay: float = Field(
        0.0, ge=0, lt=1,
        description="fine-tuning a shipped bundle (--init SETUP): share of each batch drawn from clean-target pairs of "
        "the setup's own generated corpus (with train.num_workers 0); off by default: alone it did not keep still "
        "animals, and with train.anchor it added nothing measurable (docs/benchmarks.md)",
    )
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None = all cores")

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else 1.25e-4 * self.batch_size


class InferConfig(_Section):
    tile: int = Field(2048, ge=32, description="tile side in pixels (including overlap); frames up to this size run whole")
    overlap: int | None = Field(None, ge=0, description="None = the model's receptive margin")
    batch_size: int = Field(4, ge=1, description="tiles per forward pass")
    border: int | None = Field(
        None, ge=0,
        description="reflect padding around each frame before the network, cropped off after (frame edges get "
        "image-like context); None = the model's alignment (32 px for depth 5), 0 = off",
    )
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 on a GPU that has it and on a CPU that computes it natively (AVX-512 BF16, "
        "AMX), float32 elsewhere; fp32 = the same output on every CPU")
    compile: bool = False
    # keyframe defaults from the study in docs/performance.md: K = 500 with the adaptive check at
    # 0.005 kept the mask F1 against per-frame inference >= 0.99 under drift and a camera shift,
    # with 0.4-1 % of the frames through the network
    every: int = Field(500, ge=1, description="keyframe mode: run the network at least every K frames (1 = every frame)")
    adaptive: bool = Field(True, description="add keyframes when the residual outside objects drifts")
    adaptive_bound: float = Field(0.005, gt=0, description="rise of the median |frame - background| above its level at the last keyframe (0.005 = 1.3 grey levels of 255)")
    queue_size: int = Field(8, ge=1)
    threads: int | None = Field(None, ge=1)
    invert: bool = Field(
        False, description="run a model of dark animals on bright ones (or the reverse): the network sees the inverted "
        "frame (1 - x) and its background is inverted back; the run's polarity is the opposite of the model's"
    )
    refine: Literal["full", "snap", "off"] = Field(
        "snap", description="a model's background refined by the projections of the setup's sampled frames "
        "(vidfilter.temporal.refine): snap: the recording's median where they agree; full: also bounded by the min "
        "(bright animals) or max (dark) projection, so no more of an animal stays than in that projection (removes "
        "resting animals that leave later, but raised the real open field's background where the floor changes, "
        "3x the false pixels of the 10-level mask: docs/benchmarks.md); off: the network's background as it is",
    )
    setup_cache: bool = Field(
        True, description="keep each input file's setup (detected polarity, median or temporal statistic) by its "
        "content, so that another run on the same file reads no setup frames (vidfilter.infer.setup_cache)",
    )
    salvage: bool = Field(
        False, description="damaged input: process the frames before the damage and record it, instead of refusing"
    )
    missing_chunks: Literal["error", "fill"] = Field(
        "error", description="a Zarr input missing a chunk file: refuse it, or read the chunk as the fill value"
    )


class OutputConfig(_Section):
    polarity: Polarity = Field(
        Polarity.auto,
        description="auto: training detects dark or bright animals from the recording (detect_polarity) and "
        "a run takes the model's polarity (a baseline run detects it from the input)",
    )
    foreground_dtype: Literal["input", "float16"] = "input"
    background: Literal["keyframes", "full"] = Field(
        "keyframes",
        description="keyframes: in keyframe mode store the keyframe backgrounds, each frame's blend weights "
        "and exposure offset, and rebuild each frame's background on reading (vidfilter.open(OUT.zarr/background)); "
        "full: store every frame's background (an NGFF image any OME-Zarr reader shows)",
    )
    foreground_floor: float = Field(
        FOREGROUND_FLOOR, ge=0,
        description="grey levels on the 8-bit scale: foreground values below it are stored as 0 outside the mask "
        "(sensor noise; most of the bytes); 0 stores every value exactly",
    )
    clamp: bool = Field(
        True, description="dark animals: background never darker than the frame (bright: never brighter)"
    )
    match_exposure: Literal["auto", "on", "off"] = Field(
        "auto",
        description="shift each frame's background by the frame's median offset against it (exposure changes "
        "between keyframes, a model's brightness bias); auto = on for a model, off for the baselines",
    )
    mask: bool = False
    mask_threshold: float = Field(10.0, ge=0, description="grey levels on the 8-bit scale")
    mask_method: Literal["fixed", "object"] = Field(
        "fixed",
        description="fixed: foreground > mask_threshold (the paper's rule); object: whole objects, pixels above "
        "mask_threshold grown by hysteresis to the noise level and closed (vidfilter.polarity.object_mask)",
    )
    formats: list[Literal["zarr", "ffv1", "png", "tiff", "hdf5", "preview"]] = ["zarr"]
    overwrite: bool = False
    color: Literal["gray", "keep"] = "gray"


class Config(_Section):
    """Everything a run needs. Load with :meth:`Config.from_yaml` or build in Python."""

    version: int = SCHEMA_VERSION
    application: str = "custom"
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    train: TrainConfig = TrainConfig()
    infer: InferConfig = InferConfig()
    output: OutputConfig = OutputConfig()
    static: StaticConfig = StaticConfig()

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.version > SCHEMA_VERSION:
            raise ValueError(
                f"config schema version {self.version} is newer than this vidfilter ({SCHEMA_VERSION}); upgrade vidfilter"
            )
        return self

    # -- YAML ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> Config:
        try:
            return cls.model_validate(data or {})
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, source, cls)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        path = Path(path)
        if not path.exists():
            named = Path(__file__).parent / "configs" / f"{path.stem}.yaml"
            if named.exists() and path.parent == Path("."):
                path = named
            else:
                raise ConfigError(f"config file {path} not found; pass a YAML path or one of: {', '.join(preset_names())}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def override(self, dotted: dict[str, Any]) -> Config:
        """Return a copy with ``{"train.steps": 100, ...}`` applied (None values are skipped).

        The copy remembers which settings were given, here or before (``model_fields_set`` of each
        section), so :func:`vidfilter.resolve.resolve` can tell a default from a choice."""
        data = self.model_dump(mode="json", exclude_unset=True)
        for key, value in dotted.items():
            if value is None:
                continue
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value.value if isinstance(value, Enum) else value
        return Config.from_dict(data, source="command line")


def preset_names() -> list[str]:
    """Names of the configs shipped with the package (``configs/*.yaml``)."""
    return sorted(p.stem for p in (Path(__file__).parent / "configs").glob("*.yaml"))


def format_validation_error(e: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line per bad field, naming the key, the problem and the nearest valid key for typos."""
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            node: Any = model
            for part in err["loc"][:-1]:
                field = node.model_fields.get(str(part)) if hasattr(node, "model_fields") else None
                node = field.annotation if field is not None else None
            valid = list(node.model_fields) if node is not None and hasattr(node, "model_fields") else []
            close = difflib.get_close_matches(str(err["loc"][-1]), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else (f" (valid: {', '.join(valid)})" if valid else "")
            parts.append(f"unknown key {loc!r}{hint}")
        else:
            parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return f"{source}: " + "; ".join(parts)
