"""Annotation readers, for scoring and for static-mode training sets: boxes (CSV, COCO JSON, YOLO txt,
Pascal VOC XML, BBBC042 position files), masks (PNG/TIFF/Zarr) and points (a colour-coded PNG,
BBBC026 style, or a CSV ``frame,x,y[,class]``).

Boxes come back as ``dict key -> FrameBoxes``; ``FrameBoxes.boxes`` is ``(N, 4)`` float64
``x0, y0, x1, y1`` in the pixel-edge convention of :mod:`vidfilter.eval.metrics` (``x1, y1``
exclusive: pixel ``i`` covers ``[i, i + 1)``; :func:`boxes_by_index` puts them in frame order).
Each format is converted to it:

- CSV ``frame,x0,y0,x1,y1[,class]`` (the worms set): already edge coordinates; ``inclusive=True``
  for files that give the last pixel instead (adds 1 to ``x1, y1``). Keys: the ``frame`` column
  (an ``int`` when it is one).
- COCO JSON: ``bbox = [x, y, w, h]`` in edge coordinates -> ``[x, y, x + w, y + h]``. Keys: the
  image ``file_name``.
- YOLO txt (one file per image, ``class xc yc w h`` normalised to [0, 1]): multiplied by the image
  size. Keys: the file stem.
- Pascal VOC XML: 1-based inclusive pixel indices (``xmin = 1`` is the first pixel) ->
  ``x0 = xmin - 1``, ``x1 = xmax``. Keys: the ``<filename>`` stem (else the XML stem).

Malformed files raise :class:`~vidfilter.errors.UnreadableInputError`; missing ones
:class:`~vidfilter.errors.InputNotFoundError`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import ConfigError, InputNotFoundError, UnreadableInputError

__all__ = ["FrameBoxes", "boxes_by_index", "load_boxes", "load_boxes_coco", "load_boxes_csv",
    "load_boxes_positions", "load_boxes_voc", "load_boxes_yolo", "load_mask", "load_points_csv",
    "load_points_png"]

Key = Any  # int frame number or str image name


@dataclass
class FrameBoxes:
    """The boxes of one frame / image: ``boxes`` ``(N, 4)`` x0, y0, x1, y1 and one class name each."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.boxes)

    def of_class(self, name: str) -> np.ndarray:
        """Boxes of class ``name`` only."""
        sel = np.array([c == name for c in self.classes], dtype=bool)
        return self.boxes[sel] if len(sel) else self.boxes[:0]


def _exists(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"ground truth {p} does not exist; check the path")
    return p


def _collect(rows: Sequence[tuple[Key, Sequence[float], str]]) -> dict[Key, FrameBoxes]:
    tmp: dict[Key, tuple[list[Sequence[float]], list[str]]] = {}
    for key, box, cls in rows:
        b, c = tmp.setdefault(key, ([], []))
        b.append(box)
        c.append(cls)
    return {k: FrameBoxes(np.asarray(b, dtype=np.float64).reshape(-1, 4), c) for k, (b, c) in tmp.items()}


def _key(text: str) -> Key:
    try:
        return int(text)
    except ValueError:
        return text


def load_boxes_csv(path: str | os.PathLike[str], *, inclusive: bool = False, default_class: str = "object") -> dict[Key, FrameBoxes]:
    """Boxes from a CSV with header ``frame,x0,y0,x1,y1`` and an optional ``class`` column.

    Instead of ``frame`` an ``image`` column (keys: the image name's stem) may name the image of
    each row; with neither, the file describes one image and its key is the file's stem.
    ``inclusive=True``: ``x1, y1`` are the last pixel's indices, converted by adding 1.
    """
    p = _exists(path)
    rows = []
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"x0", "y0", "x1", "y1"}
        fields = {f.strip() for f in (reader.fieldnames or [])}
        if not need <= fields:
            raise UnreadableInputError(
                f"{p}: a box CSV needs the columns frame,x0,y0,x1,y1 (frame optional for a per-image file, or an image "
                f"column instead; optional class); found {sorted(fields)}"
            )
        key_col = "frame" if "frame" in fields else "image" if "image" in fields else None
        for i, row in enumerate(reader, start=2):
            row = {k.strip(): v for k, v in row.items() if k is not None}
            try:
                x0, y0, x1, y1 = (float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            except (TypeError, ValueError):
                raise UnreadableInputError(f"{p}, line {i}: box coordinates are not numbers: {row}") from None
            if inclusive:
                x1, y1 = x1 + 1, y1 + 1
            cls = (row.get("class") or default_class).strip()
            if key_col == "frame":
                key = _key(row["frame"].strip())
            elif key_col == "image":
                key = _key(Path(row["image"].strip()).stem)
            else:
                key = _key(p.stem)
            rows.append((key, (x0, y0, x1, y1), cls))
    if not rows and key_col is None:
        return {_key(p.stem): FrameBoxes()}
    return _collect(rows)


def load_boxes_coco(path: str | os.PathLike[str]) -> dict[Key, FrameBoxes]:
    """Boxes from a COCO JSON file, keyed by image ``file_name``; classes are category names.

    Images without annotations get an empty :class:`FrameBoxes` (a frame with no objects).
    """
    p = _exists(path)
    try:
        doc = json.loads(p.read_text())
        images = {im["id"]: im["file_name"] for im in doc["images"]}
        cats = {c["id"]: c.get("name", str(c["id"])) for c in doc.get("categories", [])}
        rows = []
        for a in doc.get("annotations", []):
            x, y, w, h = (float(v) for v in a["bbox"])
            rows.append((images[a["image_id"]], (x, y, x + w, y + h), cats.get(a.get("category_id"), str(a.get("category_id")))))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UnreadableInputError(f"{p}: not a COCO detection file ({type(exc).__name__}: {exc})") from None
    out = _collect(rows)
    for name in images.values():
        out.setdefault(name, FrameBoxes())
    return out


def load_boxes_yolo(
    folder: str | os.PathLike[str],
    image_size: tuple[int, int] | Mapping[str, tuple[int, int]],
    *,
    class_names: Sequence[str] | None = None,
) -> dict[Key, FrameBoxes]:
    """Boxes from a folder of YOLO ``.txt`` files (``class xc yc w h`` normalised), keyed by file stem.

    Parameters
    ----------
    image_size : (width, height) or mapping stem -> (width, height)
        The size of the image each file describes (YOLO files do not store it).
    class_names : sequence of str, optional
        Name of class index ``i``; default the index as a string.
    """
    root = _exists(folder)
    files = sorted(root.glob("*.txt")) if root.is_dir() else [root]
    rows: list[tuple[Key, Sequence[float], str]] = []
    out: dict[Key, FrameBoxes] = {}
    for f in files:
        if f.name == "classes.txt":
            continue
        size = image_size[f.stem] if isinstance(image_size, Mapping) else image_size
        w_img, h_img = (float(s) for s in size)
        out[f.stem] = FrameBoxes()
        for i, line in enumerate(f.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) < 5:
                    raise ValueError("too few values")
                cls_i = int(float(parts[0]))
                xc, yc, w, h = (float(v) for v in parts[1:5])
            except ValueError:
                raise UnreadableInputError(f"{f}, line {i}: expected 'class xc yc w h', got {line!r}") from None
            name = class_names[cls_i] if class_names is not None else str(cls_i)
            box = ((xc - w / 2) * w_img, (yc - h / 2) * h_img, (xc + w / 2) * w_img, (yc + h / 2) * h_img)
            rows.append((f.stem, box, name))
    out.update(_collect(rows))
    return out


def load_boxes_voc(path: str | os.PathLike[str]) -> dict[Key, FrameBoxes]:
    """Boxes from a Pascal VOC XML file or a folder of them (1-based inclusive -> edge coordinates)."""
    import xml.etree.ElementTree as ET

    root = _exists(path)
    files = sorted(root.glob("*.xml")) if root.is_dir() else [root]
    out: dict[Key, FrameBoxes] = {}
    for f in files:
        try:
            ann = ET.parse(f).getroot()
            fname = ann.findtext("filename")
            key = Path(fname).stem if fname else f.stem
            rows = []
            for obj in ann.iter("object"):
                bb = obj.find("bndbox")
                if bb is None:
                    continue
                xmin, ymin, xmax, ymax = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[arg-type]
                rows.append((key, (xmin - 1, ymin - 1, xmax, ymax), (obj.findtext("name") or "object").strip()))
        except (ET.ParseError, TypeError, ValueError) as exc:
            raise UnreadableInputError(f"{f}: not a Pascal VOC annotation ({type(exc).__name__}: {exc})") from None
        out[key] = _collect(rows).get(key, FrameBoxes())
    return out


def load_boxes(path: str | os.PathLike[str], **kw: Any) -> dict[Key, FrameBoxes]:
    """Dispatch on the path: ``.csv``, ``.json`` (COCO), ``.xml`` or a folder of XML (VOC), a
    folder of ``.txt`` (YOLO, needs ``image_size=``)."""
    p = _exists(path)
    if p.is_dir():
        if any(p.glob("*.xml")):
            return load_boxes_voc(p)
        if any(p.glob("*.txt")):
            if "image_size" not in kw:
                raise ConfigError(f"{p}: YOLO labels need image_size=(width, height)")
            return load_boxes_yolo(p, **kw)
        raise UnreadableInputError(f"{p}: no .xml (VOC) or .txt (YOLO) label files in this folder")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return load_boxes_csv(p, **kw)
    if suffix == ".json":
        return load_boxes_coco(p)
    if suffix == ".xml":
        return load_boxes_voc(p)
    if suffix == ".txt":
        return load_boxes_yolo(p, **kw)
    raise UnreadableInputError(f"{p}: unknown box format {suffix!r}; use .csv, .json (COCO), .xml (VOC) or YOLO .txt")


def boxes_by_index(gt: Mapping[Key, FrameBoxes], keys: Sequence[Key]) -> list[np.ndarray]:
    """Boxes per frame index: ``keys[t]`` is frame ``t``'s key (e.g. its file stem or number).
    A frame without an entry has no objects."""
    return [gt[k].boxes if k in gt else np.zeros((0, 4)) for k in keys]


# ---------------------------------------------------------------------------------------------
# masks and points


def load_mask(path: str | os.PathLike[str], *, binary: bool = True) -> np.ndarray:
    """A mask or label image from PNG/TIFF (2-D or a stack) or Zarr (``store.zarr`` or
    ``store.zarr/array``). ``binary=True`` gives ``bool`` (non-zero), else the stored labels."""
    spec = os.fspath(path)
    p = Path(spec)
    zarr_root = next((c for c in [p, *p.parents] if c.suffix.lower() == ".zarr"), None)
    if zarr_root is not None:
        import zarr

        if not zarr_root.exists():
            raise InputNotFoundError(f"ground truth {zarr_root} does not exist; check the path")
        node = zarr.open(str(zarr_root), mode="r")
        inner = p.relative_to(zarr_root).as_posix()
        if inner not in ("", "."):
            node = node[inner]
        if not hasattr(node, "shape"):
            arrays = list(node.array_keys())
            if len(arrays) != 1:
                raise ConfigError(f"{p}: a Zarr group with arrays {arrays}; name one as {p}/ARRAY")
            node = node[arrays[0]]
        arr = np.asarray(node[...])
    else:
        _exists(p)
        suffix = p.suffix.lower()
        if suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(p)
        else:
            from PIL import Image

            try:
                with Image.open(p) as im:
                    arr = np.asarray(im)
            except OSError as exc:
                raise UnreadableInputError(f"{p}: not a readable image ({exc})") from None
        if arr.ndim == 3 and arr.shape[-1] in (3, 4) and suffix not in (".tif", ".tiff"):
            arr = arr[..., :3].max(axis=-1)  # a colour-saved mask: any non-black pixel
    return arr != 0 if binary else arr


def load_points_png(
    path: str | os.PathLike[str],
    colors: Mapping[str, Sequence[int]] | None = None,
    *,
    merge: bool = False,
) -> dict[str, list[tuple[int, int]]]:
    """Points from a colour-coded PNG: one marked pixel per object, one colour per class.

    Parameters
    ----------
    colors : mapping class -> (r, g, b), optional
        The colour of each class; only these are read. Without it every *non-grey* colour
        (``r, g, b`` not all equal) is a class named ``"#rrggbb"``, so marks drawn over a grey
        image or on black are found.
    merge : bool
        Take each 8-connected blob of one colour as a single point (its rounded centroid),
        for annotations drawn as dots larger than a pixel.

    Returns
    -------
    dict class -> list of (y, x)
        In raster order; classes from ``colors`` with no mark map to an empty list.
    """
    from PIL import Image

    p = _exists(path)
    try:
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise UnreadableInputError(f"{p}: not a readable image ({exc})") from None
    if colors is None:
        coloured = ~((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2]))
        found = np.unique(rgb[coloured].reshape(-1, 3), axis=0)
        colors = {"#{:02x}{:02x}{:02x}".format(*c): tuple(int(v) for v in c) for c in found}
    out: dict[str, list[tuple[int, int]]] = {}
    for name, col in colors.items():
        c = np.asarray(col, dtype=rgb.dtype)[:3]
        sel = np.all(rgb == c, axis=-1)
        if merge:
            from scipy import ndimage

            lab, n = ndimage.label(sel, structure=np.ones((3, 3), bool))
            cents = ndimage.center_of_mass(sel, lab, range(1, n + 1)) if n else []
            out[name] = [(int(round(y)), int(round(x))) for y, x in cents]
        else:
            ys, xs = np.nonzero(sel)
            out[name] = list(zip(ys.tolist(), xs.tolist()))
    return out


def load_points_csv(path: str | os.PathLike[str], *, default_class: str = "object") -> dict[Key, dict[str, list[tuple[float, float]]]]:
    """Points from a CSV with header ``frame,x,y`` and an optional ``class`` column.

    ``x`` is the column and ``y`` the row of the pixel (its centre; fractions allowed, rounded when
    scored). Returns ``frame key -> class -> [(y, x), ...]`` in file order (the ``(y, x)`` order
    of :func:`load_points_png` and :class:`~vidfilter.eval.metrics.PointScore`).
    """
    p = _exists(path)
    out: dict[Key, dict[str, list[tuple[float, float]]]] = {}
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {f.strip() for f in (reader.fieldnames or [])}
        if not {"frame", "x", "y"} <= fields:
            raise UnreadableInputError(f"{p}: a point CSV needs the columns frame,x,y (optional class); found {sorted(fields)}")
        for i, row in enumerate(reader, start=2):
            row = {k.strip(): v for k, v in row.items() if k is not None}
            try:
                x, y = float(row["x"]), float(row["y"])
            except (TypeError, ValueError):
                raise UnreadableInputError(f"{p}, line {i}: point coordinates are not numbers: {row}") from None
            cls = (row.get("class") or default_class).strip()
            out.setdefault(_key(row["frame"].strip()), {}).setdefault(cls, []).append((y, x))
    return out


def load_boxes_positions(
    path: str | os.PathLike[str], *, columns: Sequence[int] = (4, 5, 6, 7), default_class: str = "object"
) -> dict[Key, FrameBoxes]:
    """Boxes from whitespace-separated text files, one box per line, keyed by file stem: the BBBC042
    ``positions/<id>.txt`` layout, where columns 4-7 (0-based) hold ``x0 y0 x1 y1`` (taken as edge
    coordinates). ``path`` is one file or a folder of ``.txt`` files. An empty file is an image
    without objects.
    """
    root = _exists(path)
    files = sorted(root.glob("*.txt")) if root.is_dir() else [root]
    out: dict[Key, FrameBoxes] = {}
    cols = [int(c) for c in columns]
    for f in files:
        boxes = []
        for i, line in enumerate(f.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                boxes.append(tuple(float(parts[c]) for c in cols))
            except (IndexError, ValueError):
                raise UnreadableInputError(
                    f"{f}, line {i}: expected numbers x0 y0 x1 y1 in columns {cols}, got {line!r}"
                ) from None
        out[_key(f.stem)] = FrameBoxes(np.asarray(boxes, np.float64).reshape(-1, 4), [default_class] * len(boxes))
    return out
