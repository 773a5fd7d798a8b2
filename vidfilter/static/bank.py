"""The crop bank of the static mode: its folder layout, writing it, and reading it back.

A **crop bank** is a folder::

    BANK/
      targets/000000.tif ...      target objects (Ot): float32 linear crops, zero outside the object
      unwanted/000000.tif ...     unwanted objects (Ou), same format
      backgrounds/000000.tif ...  one per image: the linear image with every object set to zero
                                  ("fill me"); uncompressed, so training memory-maps it
      manifest.json               provenance (inputs, annotations, settings, vidfilter version) and,
                                  per crop, its source image, box and statistics
      contact_sheet.png           crops of each class and background thumbnails, to inspect

Crops are lossless (float32 TIFF, zlib) in the *linear* units of
:mod:`vidfilter.static.preprocess` (grey, complemented when ``preprocess.invert``), so intensities
add up when pairs are synthesised. The bank is written to ``BANK.partial`` and renamed when done;
the folder carries vidfilter's marker file (:data:`vidfilter.io.ownership.MARKER_NAME`) from the
moment it appears under that name, so a rerun after a kill may clear it and ``--overwrite`` may
replace a finished bank, while a folder vidfilter did not write is never deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import ConfigError, InputNotFoundError, TrainingInputError, UnreadableInputError
from vidfilter.static.config import PreprocessConfig

__all__ = ["BANK_FORMAT", "BANK_KIND", "BANK_VERSION", "CLASS_DIRS", "Crop", "CropBank", "contact_sheet", "is_crop_bank",
           "static_for_banks",
    "load_banks", "write_bank"]

BANK_FORMAT = "vidfilter-crops"
BANK_VERSION = 1
#: ``kind`` recorded in the marker file of a crop bank.
BANK_KIND = "crop-bank"
#: Folder of each crop class inside a bank.
CLASS_DIRS = {"target": "targets", "unwanted": "unwanted"}
_REBUILD = "build one with `vidfilter extract-crops`"


@dataclass
class Crop:
    """One object crop: ``image`` float32 linear, zero outside the object; ``bbox`` ``(x0, y0, x1, y1)``
    in the source image (pixel edges); ``focus`` the mean |LoG| score when it was computed."""

    role: str
    image: np.ndarray
    source: int = -1
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    focus: float | None = None

    def stats(self) -> dict[str, Any]:
        v = self.image[self.image > 0]
        d: dict[str, Any] = {
            "role": self.role, "source": self.source, "bbox": list(self.bbox),
            "shape": list(self.image.shape), "area": int(v.size),
            "mean": float(v.mean()) if v.size else 0.0, "max": float(v.max()) if v.size else 0.0,
            "p10": float(np.quantile(v, 0.1)) if v.size else 0.0, "p90": float(np.quantile(v, 0.9)) if v.size else 0.0,
        }
        if self.focus is not None:
            d["focus"] = float(self.focus)
        return d


def _thumb(img: np.ndarray, cell: int) -> np.ndarray:
    import cv2

    h, w = img.shape
    s = cell / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    hi = float(np.quantile(small, 0.995)) if small.size else 0.0
    small = np.clip(small / hi, 0, 1) if hi > 0 else small
    out = np.zeros((cell, cell), np.float32)
    y0, x0 = (cell - small.shape[0]) // 2, (cell - small.shape[1]) // 2
    out[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return out


def contact_sheet(groups: dict[str, list[np.ndarray]], *, cell: int = 64, columns: int = 12) -> np.ndarray:
    """uint8 grid: one titled section per group, each image scaled to fit a ``cell`` and to its own
    99.5th percentile."""
    import cv2

    pad = 2
    width = columns * (cell + pad) + pad
    sections = []
    for name, imgs in groups.items():
        header = np.full((20, width), 40, np.uint8)
        cv2.putText(header, f"{name} ({len(imgs)} shown)", (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
        rows = max(1, -(-len(imgs) // columns))
        grid = np.full((rows * (cell + pad) + pad, width), 40, np.uint8)
        for i, img in enumerate(imgs):
            r, c = divmod(i, columns)
            y, x = pad + r * (cell + pad), pad + c * (cell + pad)
            grid[y : y + cell, x : x + cell] = np.rint(_thumb(img, cell) * 255).astype(np.uint8)
        sections += [header, grid]
    return np.vstack(sections)


def _write_tiff(path: Path, data: np.ndarray, *, compress: bool) -> None:
    import tifffile

    tifffile.imwrite(path, np.ascontiguousarray(data, np.float32), compression="zlib" if compress else None)


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` before any work: without ``overwrite``, or not written by vidfilter."""
    from vidfilter.errors import OutputExistsError
    from vidfilter.io.ownership import check_replaceable

    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{out} exists; pass --overwrite to replace it or choose another --out")
        check_replaceable(out)


def _write_crops(folder: Path, roles: dict[str, list[Crop]]) -> list[dict[str, Any]]:
    records = []
    for role, lst in roles.items():
        (folder / CLASS_DIRS[role]).mkdir()
        for j, c in enumerate(lst):
            c.role = role
            name = f"{CLASS_DIRS[role]}/{j:06d}.tif"
            _write_tiff(folder / name, c.image, compress=True)
            records.append({"file": name, **c.stats()})
    return records


def _write_backgrounds(folder: Path, backgrounds: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    (folder / "backgrounds").mkdir()
    records = []
    for j, bg in enumerate(backgrounds):
        name = f"backgrounds/{j:06d}.tif"
        _write_tiff(folder / name, bg, compress=False)
        nz = bg[bg > 0]
        fill = [float(v) for v in np.quantile(nz, [0.25, 0.75])] if nz.size else [0.0, 0.0]
        records.append({"file": name, "source": j, "shape": list(bg.shape), "zero_fraction": float(1 - nz.size / bg.size), "fill": fill})
    return records


def _write_contact_sheet(folder: Path, roles: dict[str, list[Crop]], backgrounds: Sequence[np.ndarray], contact: int) -> None:
    import cv2

    sheet = contact_sheet({
        "targets (Ot)": [c.image for c in roles["target"][:contact]],
        "unwanted (Ou)": [c.image for c in roles["unwanted"][:contact]],
        "backgrounds (zeros = fill me)": list(backgrounds[: min(contact, 12)]),
    })
    cv2.imwrite(str(folder / "contact_sheet.png"), sheet)


def _write_contents(folder: Path, roles: dict[str, list[Crop]], backgrounds: Sequence[np.ndarray], preprocess: PreprocessConfig,
                    log_gain: float, contact: int, meta: dict[str, Any]) -> None:
    from vidfilter import __version__
    from vidfilter.io.sink import atomic_write_bytes

    records, bg_records = _write_crops(folder, roles), _write_backgrounds(folder, backgrounds)
    manifest = {
        "format": BANK_FORMAT, "version": BANK_VERSION, "vidfilter_version": __version__, "created_unix": time.time(),
        "preprocess": preprocess.model_dump(mode="json"), "log_gain": float(log_gain), "dtypes": meta.pop("dtypes", []),
        "counts": {"target": len(roles["target"]), "unwanted": len(roles["unwanted"]), "backgrounds": len(backgrounds),
                   "discarded": meta.pop("discarded", 0)},
        **meta, "crops": records, "backgrounds": bg_records,
    }
    atomic_write_bytes(folder / "manifest.json", json.dumps(manifest, indent=1).encode())
    if contact:
        _write_contact_sheet(folder, roles, backgrounds, contact)


def write_bank(
    out: str | os.PathLike[str],
    targets: Sequence[Crop | np.ndarray],
    unwanted: Sequence[Crop | np.ndarray],
    backgrounds: Sequence[np.ndarray],
    preprocess: PreprocessConfig,
    log_gain: float,
    *,
    overwrite: bool = False,
    contact: int = 48,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a crop bank (layout in the module docstring) from crops and backgrounds in linear units.

    Crops may be :class:`Crop` objects or float arrays (zero outside the object). Written to
    ``OUT.partial`` (marked as vidfilter's from its creation) and renamed when complete; a
    leftover ``OUT.partial`` of a killed run is cleared first. ``meta`` is merged into the manifest.

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is false.
    ForeignOutputError
        ``out`` (with ``overwrite``) or ``OUT.partial`` exists but vidfilter did not write it.
    """
    from vidfilter.io.sink import commit_path, discard_partial, make_partial_folder, partial_path, remove_aside

    out = Path(out)
    _check_replaceable(out, overwrite)
    roles = {
        role: [c if isinstance(c, Crop) else Crop(role, np.asarray(c, np.float32)) for c in crops]
        for role, crops in (("target", targets), ("unwanted", unwanted))
    }
    partial = partial_path(out)
    discard_partial(partial)  # a leftover of vidfilter's (anything else is refused)
    make_partial_folder(partial, BANK_KIND)
    try:
        _write_contents(partial, roles, backgrounds, preprocess, log_gain, contact, dict(meta or {}))
        commit_path(partial, out, overwrite=overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_aside(partial)
        raise
    return out


def _read_manifest(root: Path) -> dict[str, Any]:
    if not root.exists():
        raise InputNotFoundError(f"crop bank {root} does not exist; {_REBUILD}")
    man_path = root / "manifest.json"
    if not man_path.is_file():
        raise UnreadableInputError(f"{root} is not a crop bank (no manifest.json); {_REBUILD}")
    try:
        man = json.loads(man_path.read_text())
    except ValueError as e:
        raise UnreadableInputError(f"{man_path} is not valid JSON ({e}); re-run `vidfilter extract-crops`") from None
    if man.get("format") != BANK_FORMAT:
        raise UnreadableInputError(f"{root} is not a vidfilter crop bank; {_REBUILD}")
    if int(man.get("version", 0)) > BANK_VERSION:
        raise UnreadableInputError(f"{root} was written by a newer vidfilter (bank version {man['version']}); upgrade vidfilter")
    return man


def _read_background(f: Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.memmap(f, mode="r")
    except Exception:
        return tifffile.imread(f)


@dataclass
class CropBank:
    """Crops (in memory) and backgrounds (memory-mapped) of one or more banks.

    ``targets`` / ``unwanted``: float32 linear crops, zero outside the object; ``backgrounds``:
    2-D float32 arrays (``numpy.memmap``); ``fills``: per background the 25th/75th percentiles of
    its non-zero pixels (used when a patch has no non-zero pixel); ``log_gain`` and ``preprocess``
    as recorded at extraction.
    """

    targets: list[np.ndarray]
    unwanted: list[np.ndarray]
    backgrounds: list[np.ndarray]
    fills: list[tuple[float, float]]
    preprocess: PreprocessConfig
    log_gain: float
    paths: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CropBank:
        """Read a bank folder written by :func:`write_bank` (:func:`vidfilter.static.extract.extract_crops`)."""
        import tifffile

        root = Path(path)
        man = _read_manifest(root)
        crops: dict[str, list[np.ndarray]] = {role: [] for role in CLASS_DIRS}
        for rec in man.get("crops", []):
            f = root / rec["file"]
            try:
                img = tifffile.imread(f)
            except Exception as e:  # missing or damaged crop file
                raise UnreadableInputError(f"{f}: cannot read this crop ({type(e).__name__}); re-run `vidfilter extract-crops`") from None
            crops[rec["role"]].append(np.ascontiguousarray(img, np.float32))
        backgrounds = [_read_background(root / rec["file"]) for rec in man.get("backgrounds", [])]
        fills = [tuple(rec.get("fill", (0.0, 0.0))) for rec in man.get("backgrounds", [])]
        return cls(
            crops["target"], crops["unwanted"], backgrounds, fills,  # type: ignore[arg-type]
            PreprocessConfig.model_validate(man.get("preprocess", {})), float(man.get("log_gain") or 255.0),
            [str(root)], list(man.get("dtypes", [])),
        )

    def merge(self, other: CropBank) -> CropBank:
        if other.preprocess != self.preprocess or other.log_gain != self.log_gain:
            raise ConfigError(
                f"crop banks {self.paths[0]} and {other.paths[0]} were extracted with different preprocessing "
                "(grey/invert/log or dtype); extract them with one config"
            )
        return CropBank(
            self.targets + other.targets, self.unwanted + other.unwanted, self.backgrounds + other.backgrounds,
            self.fills + other.fills, self.preprocess, self.log_gain, self.paths + other.paths, sorted(set(self.dtypes + other.dtypes)),
        )


def load_banks(paths: Sequence[str | os.PathLike[str]]) -> CropBank:
    """One :class:`CropBank` from one or more bank folders (same preprocessing)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise TrainingInputError("no crop bank given; pass the folder written by `vidfilter extract-crops`")
    bank = CropBank.load(paths[0])
    for p in paths[1:]:
        bank = bank.merge(CropBank.load(p))
    return bank


def is_crop_bank(path: Any) -> bool:
    """Whether ``path`` is a folder written by ``vidfilter extract-crops`` (its manifest names the bank format)."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    try:
        return json.loads((Path(path) / "manifest.json").read_text()).get("format") == BANK_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def static_for_banks(inputs: Any, config: Any) -> tuple[Any, str | None]:
    """``config`` in static mode when every input is a crop bank and no mode was chosen, with the
    one line that says so (``None`` when nothing changed).

    Raises
    ------
    TrainingInputError
        A crop bank among recordings, or in a run whose config chose the video mode.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    banks = [p for p in items if is_crop_bank(p)]
    if not banks or config.sampling.mode == "static":
        return config, None
    if "mode" in config.sampling.model_fields_set or len(banks) < len(items):
        raise TrainingInputError(f"{banks[0]} is a crop bank, which trains in static mode (synthetic pairs, no lags); "
                                 "pass only crop banks, with --mode static or --config NAME of a static config")
    note = (f"{banks[0]}{' ...' if len(banks) > 1 else ''} is a crop bank: training in static mode with the "
            "static defaults (--config NAME for an application's settings)")
    return config.override({"sampling.mode": "static"}), note
