"""Settings of the static-image mode (``Config.static``): a leaf module, no torch imports.

Static mode has no video: training pairs are synthesised by pasting crops of target
objects (Ot) and unwanted objects (Ou) on background patches. Four groups of settings:

- ``preprocess``: how an image becomes the grey ``[0, 1]`` *linear* image crops are cut from and
  pairs are synthesised in (RGB -> grey, complement), and the optional log transform applied to
  what the network sees (input and target of every pair, and every image at inference);
- ``extract``: the crop-extraction recipe (labels, colour-coded points, boxes, or the unannotated
  focus split of the microglia recipe);
- ``synth``: the pair synthesiser (counts per class, per-crop augmentation, placement, background);
- ``score``: the paper's post-processing and scoring of a filtered image (Otsu (+ watershed),
  components above a size, box matching or point-in-object counting).

``configs/microglia.yaml``, ``bbbc026_*.yaml`` and ``bbbc042.yaml`` hold the paper's values.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ExtractConfig", "PreprocessConfig", "ScoreConfig", "StaticConfig", "SynthConfig"]

RGB = tuple[int, int, int]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _ordered(name: str, v: tuple[float, float], lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    a, b = v
    if b < a:
        raise ValueError(f"{name} must be [min, max] with min <= max, got {list(v)}")
    if lo is not None and a < lo:
        raise ValueError(f"{name} must be >= {lo}, got {list(v)}")
    if hi is not None and b > hi:
        raise ValueError(f"{name} must be <= {hi}, got {list(v)}")
    return v


class PreprocessConfig(_Section):
    """Image -> linear grey ``[0, 1]`` -> (optionally) log, the same in extraction, synthesis and inference.

    Documented conversions: integers are divided by their dtype's maximum (uint8 / 255,
    uint16 / 65535), floats are taken as already in ``[0, 1]``; RGB(A) becomes grey by ``grey``
    (alpha dropped); ``invert`` takes the complement ``1 - x`` (dark objects on a light slide
    become bright on dark); ``log`` maps ``x`` to ``log1p(g x) / log1p(g)`` (still ``[0, 1]``).
    """

    grey: Literal["luma", "mean", "red", "green", "blue"] = Field(
        "luma", description="RGB -> grey: BT.601 luma, channel mean, or one channel"
    )
    invert: bool = Field(False, description="complement 1 - x: dark objects on a light background become bright")
    log: bool = Field(False, description="the network sees log1p(g x) / log1p(g) of the linear image x")
    log_gain: float | None = Field(
        None, gt=0, description="g of the log transform; None = the input dtype's maximum (255, 65535; 1000 for floats)"
    )


class ExtractConfig(_Section):
    """How ``vidfilter extract-crops`` cuts target / unwanted crops and backgrounds from annotated images."""

    recipe: Literal["labels", "points", "boxes", "focus"] = Field(
        "points",
        description="labels: a label image per image; points: colour-coded point PNG (BBBC026); boxes: CSV / "
        "VOC / positions files (BBBC042); focus: no annotation, in-focus vs out-of-focus split (microglia)",
    )
    # -- foreground segmentation (points, focus, background masks) ----------------------------
    threshold: Literal["otsu", "local"] = Field("otsu", description="foreground threshold: global Otsu or local (adaptive)")
    threshold_on_log: bool = Field(True, description="threshold the log of the linear image (BBBC026: Otsu on the log image)")
    smooth: float = Field(2.0, ge=0, description="Gaussian sigma (px) before thresholding")
    flatten: int = Field(
        0, ge=0, description="foreground: subtract a background estimate (grey opening of this radius (px), box-smoothed) "
        "before thresholding, for uneven illumination; above the largest object's radius; 0 = off",
    )
    local_block: int = Field(101, ge=3, description="window side (px, odd) of the local threshold")
    local_offset: float = Field(0.0, description="local threshold: pixels > local mean + offset (log/linear units) are foreground")
    opening: int = Field(1, ge=0, description="radius (px) of a binary opening of the foreground mask")
    min_area: int = Field(50, ge=1, description="components smaller than this (px) are not objects (microglia: 10 000)")
    max_size: int | None = Field(None, ge=8, description="objects with a bounding-box side above this (px) are skipped")
    keep_border: bool = Field(False, description="keep objects that touch the image border (cut objects by default are dropped)")
    background_dilate: int = Field(3, ge=0, description="foreground grown by this many px before it is zeroed in backgrounds")
    # -- labels ----------------------------------------------------------------------------------
    target_labels: list[int] = Field([1], description="label-image values that are target objects")
    unwanted_labels: list[int] = Field([2], description="label-image values that are unwanted objects")
    # -- points ----------------------------------------------------------------------------------
    point_rescue: float = Field(
        0.5, ge=0, lt=1, description="points: an annotated point off the foreground grows its object over the image above "
        "this fraction of the way from the image's median to the threshold (dim objects); 0 = such points are discarded",
    )
    point_compactness: float = Field(
        0.05, ge=0, description="points: compactness of the seeded watershed that grows each point's object (per px, the "
        "image scaled to the objects' contrast): 0 follows the dimmest line between touching objects, higher splits them "
        "nearer the midline between their points",
    )
    target_colors: list[RGB] = Field([(255, 0, 0)], description="point colours of the target class (BBBC026: hepatocytes red)")
    unwanted_colors: list[RGB] = Field([(0, 255, 0)], description="point colours of the unwanted class (BBBC026: fibroblasts green)")
    discard_colors: list[RGB] = Field([(0, 0, 255)], description="point colours whose objects are discarded (BBBC026: debris blue)")
    # -- boxes -----------------------------------------------------------------------------------
    box_format: Literal["auto", "csv", "voc", "coco", "positions"] = Field(
        "auto", description="auto: by suffix (.csv, .xml, .json; .txt = BBBC042 positions)"
    )
    box_columns: tuple[int, int, int, int] = Field(
        (4, 5, 6, 7), description="positions .txt: the columns holding x0 y0 x1 y1 (BBBC042: 4-7)"
    )
    target_class: str | None = Field(None, description="only boxes of this class are targets (None = every box)")
    squares_per_image: int = Field(10, ge=0, description="unwanted crops: random squares drawn outside the boxes, per image")
    square_size: tuple[int, int] = Field((64, 192), description="side range (px) of those squares")
    # -- focus (microglia) -----------------------------------------------------------------------
    focus_sigma: float = Field(2.0, gt=0, description="sigma (px) of the Laplacian of Gaussian of the focus score")
    focus_thresholds: tuple[float, float] = Field(
        (0.33, 0.67), description="score below the first: out of focus (Ou); above the second: in focus (Ot); between: discarded"
    )
    focus_units: Literal["quantile", "value"] = Field(
        "quantile", description="focus_thresholds as quantiles of all crops' scores, or as raw mean |LoG| values"
    )
    # -- output ----------------------------------------------------------------------------------
    max_crops: int | None = Field(None, ge=1, description="at most this many crops per class (a seeded random subset)")
    contact_sheet: int = Field(48, ge=0, description="crops per class shown in contact_sheet.png")
    seed: int = 0

    @field_validator("square_size")
    @classmethod
    def _square(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 4 or v[1] < v[0]:
            raise ValueError(f"square_size must be [min, max] with 4 <= min <= max, got {list(v)}")
        return v

    @field_validator("local_block")
    @classmethod
    def _odd(cls, v: int) -> int:
        return v if v % 2 else v + 1

    @model_validator(mode="after")
    def _focus(self) -> ExtractConfig:
        lo, hi = self.focus_thresholds
        if hi < lo:
            raise ValueError(f"focus_thresholds must be [low, high] with low <= high, got {list(self.focus_thresholds)}")
        if self.focus_units == "quantile" and not (0 <= lo and hi <= 1):
            raise ValueError(f"focus_thresholds given as quantiles must lie in [0, 1], got {list(self.focus_thresholds)}")
        return self


class SynthConfig(_Section):
    """The crop-pasting pair synthesiser: ``input = clip(bg1 + Ou1 + Ot)``, ``target = clip(bg2 + Ou2 + Ot)``."""

    targets: tuple[int, int] = Field((3, 8), description="target objects per pair [min, max] (shared by input and target)")
    unwanted: tuple[int, int] = Field((3, 8), description="unwanted objects per image [min, max] (drawn independently for each)")
    base_quantile: tuple[float, float] = Field(
        (0.0, 0.1), description="subtract this quantile (drawn in the range) of a crop's object pixels"
    )
    intensity: tuple[float, float] = Field((0.5, 1.25), description="multiply each crop by a factor drawn in this range")
    intensity_log_uniform: bool = Field(False, description="draw the factor log-uniformly (intensities spanning decades)")
    rotation: tuple[float, float] = Field((0.0, 360.0), description="rotation angle range (degrees); the canvas grows to fit")
    flips: bool = True
    zoom: tuple[float, float] = Field((0.75, 1.3), description="scale factor range")
    attempts: int = Field(3, ge=1, description="placement attempts per object before it is left out")
    max_overlap: float = Field(
        0.9, ge=0, le=1, description="largest share of an object (new or already placed) another object may cover"
    )
    overhang: float = Field(0.5, ge=0, le=1, description="share of an object's side that may hang over the patch border")
    background_fill: tuple[float, float] = Field(
        (0.25, 0.75), description="zeros of a background patch get one constant drawn between these quantiles of its other pixels"
    )
    background_intensity: tuple[float, float] = Field((1.0, 1.0), description="multiply each background patch by a factor in this range")
    noise: tuple[float, float] = Field((0.0, 0.0), description="Gaussian noise sigma range (linear [0, 1] units), independent per image")
    gain: tuple[float, float] = Field(
        (1.0, 1.0), description="illumination shared by both images of a pair: one factor, drawn log-uniformly in this range"
    )
    gradient: float = Field(
        0.0, ge=0, lt=2, description="illumination shared by both images: a linear ramp across the patch, peak to peak (0.4 = x0.8-1.2)"
    )
    offset: tuple[float, float] = Field(
        (0.0, 0.0), description="a level added to both images of a pair (linear units; drawn in this range)"
    )
    oversize: Literal["error", "skip", "shrink"] = Field(
        "error", description="crops larger than the patch: refuse, leave out, or shrink to fit"
    )

    @field_validator("targets", "unwanted")
    @classmethod
    def _counts(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 0 or v[1] < v[0]:
            raise ValueError(f"counts must be [min, max] with 0 <= min <= max, got {list(v)}")
        return v

    @field_validator("base_quantile", "background_fill")
    @classmethod
    def _quantiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _ordered("a quantile range", v, 0.0, 1.0)

    @field_validator("intensity", "zoom", "background_intensity", "gain")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] <= 0:
            raise ValueError(f"factors must be > 0, got {list(v)}")
        return _ordered("a factor range", v)

    @field_validator("rotation", "noise", "offset")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _ordered("a range", v)


class ScoreConfig(_Section):
    """The paper's post-processing and scoring of a filtered image (the paper's section 3)."""

    objects: Literal["otsu", "otsu_watershed"] = Field(
        "otsu", description="objects = components above Otsu's threshold, optionally split by a watershed"
    )
    smooth: float = Field(0.0, ge=0, description="Gaussian sigma (px) before Otsu")
    min_area: int = Field(300, ge=1, description="components smaller than this (px) are dropped (BBBC042: 300)")
    watershed_distance: int = Field(7, ge=1, description="watershed: smallest distance (px) between two object centres")
    match: Literal["boxes", "points"] = Field("boxes", description="boxes: IoU matching (BBBC042); points: point in object (BBBC026)")
    iou: float = Field(0.5, gt=0, lt=1, description="box IoU for a match")
    iou_inclusive: bool = Field(True, description="a match needs IoU >= iou (BBBC042 rule) instead of > iou")


class StaticConfig(_Section):
    """Everything the static-image mode adds to :class:`~vidfilter.config.Config`."""

    preprocess: PreprocessConfig = PreprocessConfig()
    extract: ExtractConfig = ExtractConfig()
    synth: SynthConfig = SynthConfig()
    score: ScoreConfig = ScoreConfig()
    block: Annotated[int, Field(ge=64)] | Literal["auto"] = Field(
        "auto", description="inference: images are processed in blocks of this side (out of core); auto = the largest "
        "block (and, on the CPU, tile and batch) whose estimated working memory fits memory_gb"
    )
    memory_gb: float = Field(
        0.8, gt=0, description="inference with block auto: working memory of a run in GiB (blocks, tiles and the network's "
        "activations), on top of the ~0.3 GiB that Python, torch and the readers take"
    )

    @field_validator("block", mode="before")
    @classmethod
    def _block(cls, v: object) -> object:
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 64):
            return v
        raise ValueError("block must be 'auto' or a side of at least 64 px")
