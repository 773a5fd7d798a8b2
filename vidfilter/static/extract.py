"""Crop extraction for the static mode: annotated images -> a crop bank (``vidfilter extract-crops``).

Each image is read, made linear (:mod:`vidfilter.static.preprocess`), and cut into target (Ot) and
unwanted (Ou) crops and a background by the configured recipe (:mod:`vidfilter.static.recipes`);
the result is written as a crop bank (:mod:`vidfilter.static.bank`).

Annotations and images are paired by file stem (``a.png`` <-> ``ANN/a.png|.csv|.xml|.txt``).
With a folder of per-image annotations, files without an image among the inputs are ignored;
an annotation file that names images (CSV ``image``/``frame`` column, COCO, VOC ``filename``)
must find each of them among the inputs, and every input image needs an annotation.

Points come from a colour-coded PNG per image, or from marks drawn on the image itself (the
BBBC026 ground-truth layout; marked pixels are replaced by the median of their neighbourhood
before anything else). Boxes come from CSV ``x0,y0,x1,y1[,class]`` (per image, or one file with
an ``image``/``frame`` column), Pascal VOC XML, COCO JSON, or BBBC042 ``positions/<id>.txt``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from vidfilter.config import Config
from vidfilter.errors import ConfigError, InputNotFoundError, TrainingInputError, UnreadableInputError, UnsupportedInputError
from vidfilter.static.bank import CLASS_DIRS, Crop, write_bank
from vidfilter.static.config import ExtractConfig, PreprocessConfig
from vidfilter.static.preprocess import linearise, resolve_gain
from vidfilter.static.recipes import Extracted, extract_boxes, extract_labels, extract_points, focus_candidates, split_by_focus

__all__ = ["AnnotatedImage", "extract_crops", "list_inputs", "pair_annotations", "read_points", "strip_marks"]

log = logging.getLogger(__name__)

#: a background with more than this share zeroed gets a warning
_ZEROED_WARN = 0.5

_ANN_SUFFIXES = {
    "points": (".png", ".tif", ".tiff"),
    "labels": (".png", ".tif", ".tiff"),
    "boxes": (".csv", ".xml", ".txt", ".json"),
}


def list_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files of ``inputs`` (files, folders, glob patterns), in natural order, no duplicates."""
    from vidfilter.io.images_source import list_images

    out: list[Path] = []
    for item in inputs:
        spec = os.fspath(item)
        if not Path(spec).exists() and not any(c in spec for c in "*?["):
            raise InputNotFoundError(f"{spec}: no such file or folder; check the path")
        files = list_images(spec)
        if not files:
            raise UnreadableInputError(f"{spec}: holds no PNG/TIFF/JPEG images")
        out.extend(f for f in files if f not in out)
    return out


def read_points(path: str | os.PathLike[str], cfg: ExtractConfig) -> dict[str, list[tuple[int, int]]]:
    """Points of a colour-coded PNG by the configured colours: ``{"target", "unwanted", "discard"}``."""
    from vidfilter.io.annotations import load_points_png

    colors: dict[str, tuple[int, int, int]] = {}
    for role, cols in (("target", cfg.target_colors), ("unwanted", cfg.unwanted_colors), ("discard", cfg.discard_colors)):
        for i, c in enumerate(cols):
            colors[f"{role}:{i}"] = tuple(int(v) for v in c)  # type: ignore[assignment]
    found = load_points_png(path, colors)
    out: dict[str, list[tuple[int, int]]] = {"target": [], "unwanted": [], "discard": []}
    for name, pts in found.items():
        out[name.split(":")[0]].extend(pts)
    return out


def strip_marks(image: np.ndarray, cfg: ExtractConfig) -> np.ndarray:
    """Replace pixels painted in an annotation colour by the median of their 5x5 neighbourhood."""
    if image.ndim != 3 or image.shape[-1] < 3 or image.dtype != np.uint8:
        raise UnsupportedInputError(
            "points drawn on the image itself need an 8-bit RGB image; pass the colour-coded point PNGs with --annotations"
        )
    rgb = image[..., :3]
    marks = np.zeros(rgb.shape[:2], bool)
    for c in list(cfg.target_colors) + list(cfg.unwanted_colors) + list(cfg.discard_colors):
        marks |= np.all(rgb == np.asarray(c, np.uint8), axis=-1)
    grey = image.copy()
    if marks.any():
        med = ndimage.median_filter(rgb, size=(5, 5, 1))
        grey[..., :3][marks] = med[marks]
    return grey


@dataclass
class AnnotatedImage:
    """An input image, its annotation and where that came from (a path, ``"embedded"`` or ``None``)."""

    image: Path
    annotation: Any = None  # path, boxes (FrameBoxes) or None (embedded / no annotation)
    source: str | None = None


def _stem_key(key: Any) -> str:
    return Path(str(key)).stem


def pair_annotations(
    images: list[Path], annotations: str | os.PathLike[str] | None, recipe: str, cfg: ExtractConfig
) -> list[AnnotatedImage]:
    """Pair each image with its annotation (see the module docstring for the rules)."""
    if recipe == "focus":
        if annotations is not None:
            log.warning("the focus recipe uses no annotation; ignoring %s", annotations)
        return [AnnotatedImage(p) for p in images]
    if annotations is None:
        if recipe == "points":  # marks drawn on the images themselves (BBBC026 ground-truth layout)
            return [AnnotatedImage(p, None, "embedded") for p in images]
        raise ConfigError(f"the {recipe} recipe needs --annotations (a file or a folder of per-image files)")
    ann = Path(annotations)
    if not ann.exists():
        raise InputNotFoundError(f"annotations {ann}: no such file or folder; check the --annotations path")
    by_stem: dict[str, Path] = {}
    for p in images:
        if p.stem in by_stem:
            raise ConfigError(f"two input images share the name {p.stem!r} ({by_stem[p.stem]}, {p}); annotations are matched by name")
        by_stem[p.stem] = p
    if recipe == "boxes":
        return _pair_boxes(images, by_stem, ann, cfg)
    if ann.is_dir():
        files = {f.stem: f for f in sorted(ann.iterdir()) if f.suffix.lower() in _ANN_SUFFIXES[recipe]}
        items = []
        for p in images:
            if p.stem not in files:
                raise InputNotFoundError(
                    f"{p}: no annotation in {ann} (looked for {p.stem} with suffix {', '.join(_ANN_SUFFIXES[recipe])})"
                )
            items.append(AnnotatedImage(p, files[p.stem], str(files[p.stem])))
        return items
    if len(images) != 1:
        raise ConfigError(f"one annotation file {ann} for {len(images)} images; pass a folder of per-image annotations")
    if ann.resolve() == images[0].resolve() and recipe == "points":
        return [AnnotatedImage(images[0], None, "embedded")]
    return [AnnotatedImage(images[0], ann, str(ann))]


def _load_box_file(f: Path, cfg: ExtractConfig) -> dict[Any, Any]:
    from vidfilter.io import annotations as gt

    fmt = cfg.box_format
    if fmt == "auto":
        fmt = {".csv": "csv", ".xml": "voc", ".json": "coco", ".txt": "positions"}.get(f.suffix.lower(), "")
        if not fmt:
            raise UnsupportedInputError(f"{f}: unknown box file type; use .csv, .xml (VOC), .json (COCO) or .txt (positions)")
    if fmt == "csv":
        return gt.load_boxes_csv(f)
    if fmt == "voc":
        return gt.load_boxes_voc(f)
    if fmt == "coco":
        return gt.load_boxes_coco(f)
    return gt.load_boxes_positions(f, columns=cfg.box_columns)


def _pair_boxes(images: list[Path], by_stem: dict[str, Path], ann: Path, cfg: ExtractConfig) -> list[AnnotatedImage]:
    suffixes = _ANN_SUFFIXES["boxes"]
    if ann.is_dir():
        files = sorted(f for f in ann.iterdir() if f.suffix.lower() in suffixes)
        table: dict[str, tuple[Any, Path]] = {}
        for f in files:
            for key, boxes in _load_box_file(f, cfg).items():
                stem = _stem_key(key)
                if stem in by_stem:  # a folder may hold annotations of images not used here
                    table[stem] = (boxes, f)
    else:
        loaded = _load_box_file(ann, cfg)
        single = len(loaded) == 1 and len(images) == 1 and _stem_key(next(iter(loaded))) == ann.stem
        table = {}
        for key, boxes in loaded.items():
            stem = images[0].stem if single else _stem_key(key)
            if stem not in by_stem:
                raise InputNotFoundError(
                    f"{ann} annotates image {key!r}, which is not among the inputs; add the image or remove its annotation"
                )
            table[stem] = (boxes, ann)
    items = []
    for p in images:
        if p.stem not in table:
            raise InputNotFoundError(f"{p}: no boxes for this image in {ann}; annotate it or leave it out")
        boxes, f = table[p.stem]
        items.append(AnnotatedImage(p, boxes, str(f)))
    return items


@dataclass
class _Harvest:
    """What the images gave so far: crops, backgrounds, per-image records, and the log gain they share."""

    crops: list[Crop] = field(default_factory=list)
    backgrounds: list[np.ndarray] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    discarded: int = 0
    dtypes: set[str] = field(default_factory=set)
    gain: float | None = None

    def add(self, item: AnnotatedImage, raw: np.ndarray, got: Extracted) -> None:
        self.crops.extend(got.crops)
        self.discarded += got.discarded
        assert got.background is not None
        self.backgrounds.append(got.background)
        self.sources.append({
            "image": str(item.image), "annotation": item.source, "shape": list(raw.shape), "dtype": str(raw.dtype),
            "crops": len(got.crops), "discarded": got.discarded, "zeroed_share": round(got.zeroed_share, 6),
        })
        log.info("%s: %d crops, %d objects discarded, %.1f %% of the background zeroed", item.image, len(got.crops),
                 got.discarded, 100 * got.zeroed_share)
        if got.zeroed_share > _ZEROED_WARN:
            log.warning("%s: %.0f %% of its background is zeroed as foreground; the threshold takes background for "
                        "objects: set static.extract.flatten (a radius above the largest object's) or check the threshold",
                        item.image, 100 * got.zeroed_share)


def _shared_gain(item: AnnotatedImage, raw: np.ndarray, pre: PreprocessConfig, harvest: _Harvest) -> float:
    """The log gain of ``raw``, which must equal that of the images before it."""
    harvest.dtypes.add(str(raw.dtype))
    g = resolve_gain(pre, raw.dtype)
    if harvest.gain is None:
        harvest.gain = g
    elif g != harvest.gain:
        raise UnsupportedInputError(
            f"{item.image} is {raw.dtype} but earlier images were {sorted(harvest.dtypes)[0]}: the log transform would differ; "
            "convert the images to one dtype or set static.preprocess.log_gain"
        )
    return g


def _apply_recipe(item: AnnotatedImage, lin: np.ndarray, cfg: ExtractConfig, gain: float, rng: np.random.Generator, i: int) -> Extracted:
    if cfg.recipe == "labels":
        from vidfilter.io.annotations import load_mask

        return extract_labels(lin, load_mask(item.annotation, binary=False), cfg, source=i)
    if cfg.recipe == "points":
        pts = read_points(item.image if item.source == "embedded" else item.annotation, cfg)
        return extract_points(lin, pts, cfg, gain, source=i)
    if cfg.recipe == "boxes":
        fb = item.annotation
        tboxes = fb.of_class(cfg.target_class) if cfg.target_class is not None else fb.boxes
        return extract_boxes(lin, tboxes, fb.boxes, cfg, gain, rng, source=i)
    return focus_candidates(lin, cfg, gain, source=i)


def _harvest(items: list[AnnotatedImage], pre: PreprocessConfig, cfg: ExtractConfig, rng: np.random.Generator, progress: bool) -> _Harvest:
    from tqdm.auto import tqdm

    from vidfilter.io.images_source import read_image

    harvest = _Harvest()
    for i, item in enumerate(tqdm(items, desc="extract", unit="image", disable=not progress)):
        raw = read_image(item.image)
        if item.source == "embedded":
            raw = strip_marks(raw, cfg)
        gain = _shared_gain(item, raw, pre, harvest)
        harvest.add(item, raw, _apply_recipe(item, linearise(raw, pre), cfg, gain, rng, i))
    return harvest


def _by_role(crops: list[Crop], cfg: ExtractConfig, rng: np.random.Generator, n_images: int) -> dict[str, list[Crop]]:
    """Crops per class, at most ``cfg.max_crops`` each (a random subset, in order)."""
    by_role = {role: [c for c in crops if c.role == role] for role in CLASS_DIRS}
    for role, lst in by_role.items():
        if not lst:
            raise TrainingInputError(_no_crops_hint(role, cfg, n_images))
        if cfg.max_crops is not None and len(lst) > cfg.max_crops:
            keep = np.sort(rng.choice(len(lst), cfg.max_crops, replace=False))
            by_role[role] = [lst[int(j)] for j in keep]
    return by_role


def extract_crops(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: Config,
    *,
    annotations: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Build a crop bank at ``out`` from annotated images (``config.static.extract`` recipe).

    Parameters
    ----------
    inputs
        Image files, folders or glob patterns (PNG/TIFF/JPEG; 8/16-bit or float; grey or RGB).
    out
        The bank folder to write (layout: :mod:`vidfilter.static.bank`).
    config
        ``config.static.preprocess`` and ``config.static.extract`` are used.
    annotations
        A file or a folder of per-image files (points PNG, label images, box files); ``None`` for
        the focus recipe and for points drawn on the images themselves.

    Returns
    -------
    dict
        ``output, images, targets, unwanted, backgrounds, discarded, zeroed_share`` (per background,
        the share of its image zeroed; also in the manifest's ``sources``), ``seconds``.

    Raises
    ------
    TrainingInputError
        A class got no crop at all (the message says which setting to look at).
    """
    from vidfilter.io.sink import check_output_path

    t0 = time.perf_counter()
    pre, cfg = config.static.preprocess, config.static.extract
    images = list_inputs(inputs)
    out = Path(out)
    items = pair_annotations(images, annotations, cfg.recipe, cfg)
    check_output_path(out, inputs=[*images, *([annotations] if annotations else [])], overwrite=overwrite)
    rng = np.random.default_rng(cfg.seed)
    got = _harvest(items, pre, cfg, rng, progress)
    crops, focus_bounds = got.crops, None
    if cfg.recipe == "focus":
        crops, dropped, focus_bounds = split_by_focus(crops, cfg)
        got.discarded += dropped
    by_role = _by_role(crops, cfg, rng, len(items))
    write_bank(
        out, by_role["target"], by_role["unwanted"], got.backgrounds, pre, got.gain or 255.0, overwrite=overwrite,
        contact=cfg.contact_sheet,
        meta={
            "application": config.application, "extract": cfg.model_dump(mode="json"), "dtypes": sorted(got.dtypes),
            "discarded": got.discarded, "focus_bounds": focus_bounds, "sources": got.sources,
        },
    )
    summary = {
        "output": str(out), "images": len(items), "targets": len(by_role["target"]), "unwanted": len(by_role["unwanted"]),
        "backgrounds": len(got.backgrounds), "discarded": got.discarded,
        "zeroed_share": [src["zeroed_share"] for src in got.sources], "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("crop bank %s: %d target, %d unwanted crops, %d backgrounds (%d objects discarded)", out,
             summary["targets"], summary["unwanted"], summary["backgrounds"], got.discarded)
    return summary


def _no_crops_hint(role: str, cfg: ExtractConfig, n_images: int) -> str:
    what = "target (Ot)" if role == "target" else "unwanted (Ou)"
    hints = {
        "labels": f"no pixel of the labels {cfg.target_labels if role == 'target' else cfg.unwanted_labels} formed an object of "
        f">= {cfg.min_area} px; check static.extract.{role}_labels",
        "points": f"no object held only {role} points; check static.extract.{role}_colors against the annotation colours, "
        "or lower static.extract.min_area",
        "boxes": "no box gave an object; check static.extract.target_class and min_area" if role == "target"
        else "no random square outside the boxes gave an object; raise static.extract.squares_per_image or lower square_size",
        "focus": "no object scored " + ("above the high" if role == "target" else "below the low")
        + " focus threshold; check static.extract.focus_thresholds and min_area",
    }
    return f"no {what} crops from {n_images} image(s): {hints[cfg.recipe]}"
