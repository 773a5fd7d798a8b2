"""The crop-pasting pair synthesiser of the static mode (the paper's section 2.2).

A training pair shares the target objects and nothing else::

    input  = clip(bg1 + Ou1 + Ot, 0, 1)        target = clip(bg2 + Ou2 + Ot, 0, 1)

in linear units (:mod:`vidfilter.static.preprocess`), then both are encoded for the network (the
log transform when ``preprocess.log``). ``bg1, bg2`` are independent background patches, ``Ou1,
Ou2`` independent draws of unwanted objects, ``Ot`` one draw of target objects. Trained to map one
to the other, the network keeps what the two share (the targets) and replaces the rest by its
expectation.

Per object (``config.static.synth``): a random crop of its class; minus a base value (a quantile
of its object pixels, drawn in ``base_quantile``; not for a flat object, which would vanish),
clipped at 0; times a factor (``intensity``,
log-uniform on request); rotated (canvas enlarged to fit), flipped, zoomed, in one affine warp;
placed with up to ``attempts`` tries at positions that let it hang over the border by
``overhang`` of its side, refused when more than ``max_overlap`` of it, or of an object already
placed, would be covered. Per background: a random ``crop``-sized patch of a random background,
rotated by a multiple of 90 degrees and flipped, its zeros filled with one constant drawn between
the ``background_fill`` quantiles of its other pixels, times ``background_intensity``. Both images
of a pair share one illumination: a gain (``gain``), a linear ramp (``gradient``) and an added level
(``offset``), so the network learns to carry the light of its input through and to tell objects
apart by what light does not change (shape, size, texture)::

    input = clip(light * (bg1 + Ou1 + Ot) + level)      (and the same light and level for the target)

Determinism: pair ``i`` of a stream seeded ``s`` depends only on ``(s, i)``; a batch ``b`` holds
pairs ``b*B .. b*B + B - 1``. So the stream is the same in-process and with any number of
DataLoader workers (:class:`~vidfilter.static.dataset.SynthDataset` hands batch ``b`` to worker
``b mod k``, and the loader returns them in order), and a resumed run continues exactly.

:func:`preview_grid` draws example pairs side by side; :func:`write_preview` writes that grid as
the PNG of ``vidfilter synth --preview``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vidfilter.errors import TrainingInputError
from vidfilter.static.bank import CropBank, load_banks
from vidfilter.static.config import SynthConfig
from vidfilter.static.preprocess import encode

if TYPE_CHECKING:
    from vidfilter.config import Config

__all__ = ["PairSynthesizer", "SynthPair", "augment_crop", "preview_grid", "write_preview"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# augmentation and placement


def _uniform(rng: np.random.Generator, lo_hi: Sequence[float], log_uniform: bool = False) -> float:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if hi <= lo:
        return lo
    if log_uniform:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def _count(rng: np.random.Generator, lo_hi: Sequence[int]) -> int:
    return int(rng.integers(int(lo_hi[0]), int(lo_hi[1]) + 1))


def augment_crop(crop: np.ndarray, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Base subtraction, intensity factor, flips, rotation (canvas enlarged) and zoom of one crop;
    returns the warped crop trimmed to its non-zero pixels (zero outside the object).

    The warp is :func:`scipy.ndimage.affine_transform` (bilinear): unlike OpenCV it keeps no thread
    pool, so it is safe in forked DataLoader workers.
    """
    from scipy.ndimage import affine_transform

    mask = crop > 0
    values = crop[mask]
    base = float(np.quantile(values, _uniform(rng, cfg.base_quantile))) if values.size else 0.0
    if values.size and base >= float(values.max()):  # a flat object would vanish: keep it as it is
        base = 0.0
    img = np.where(mask, np.maximum(crop - np.float32(base), 0.0), 0.0).astype(np.float32)
    img *= np.float32(_uniform(rng, cfg.intensity, cfg.intensity_log_uniform))
    if cfg.flips:
        if rng.random() < 0.5:
            img = img[::-1]
        if rng.random() < 0.5:
            img = img[:, ::-1]
    angle = math.radians(_uniform(rng, cfg.rotation))
    zoom = _uniform(rng, cfg.zoom)
    h, w = img.shape
    if angle % (2 * math.pi) == 0 and zoom == 1.0:
        out = np.ascontiguousarray(img)
    else:
        c, s = math.cos(angle) * zoom, math.sin(angle) * zoom
        # forward map (row, col) -> (c row - s col, s row + c col) about the centre; the canvas holds
        # every corner of the rotated, zoomed crop
        hy, hx = (h - 1) / 2.0, (w - 1) / 2.0
        ys = [c * dy - s * dx for dy in (-hy, hy) for dx in (-hx, hx)]
        xs = [s * dy + c * dx for dy in (-hy, hy) for dx in (-hx, hx)]
        oh = int(math.ceil(max(ys) - min(ys) - 1e-6)) + 3  # 1e-6: cos(90 deg) is 6e-17, not 0
        ow = int(math.ceil(max(xs) - min(xs) - 1e-6)) + 3
        inv = np.array([[c, s], [-s, c]]) / (zoom * zoom)  # inverse of [[c, -s], [s, c]]
        centre_out = np.array([(oh - 1) / 2.0, (ow - 1) / 2.0])
        offset = np.array([hy - inv[0, 0] * centre_out[0] - inv[0, 1] * centre_out[1],
                           hx - inv[1, 0] * centre_out[0] - inv[1, 1] * centre_out[1]])
        out = affine_transform(np.ascontiguousarray(img), inv, offset=offset, output_shape=(oh, ow), order=1, mode="grid-constant", cval=0.0)
        out[out < 1e-6] = 0.0
    nz = np.nonzero(out > 0)
    if nz[0].size == 0:
        return np.zeros((1, 1), np.float32)
    return np.ascontiguousarray(out[nz[0].min() : nz[0].max() + 1, nz[1].min() : nz[1].max() + 1], dtype=np.float32)


class _Canvas:
    """One synthetic image's objects: summed intensities and who covers which pixel (for overlaps)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.layer = np.zeros((size, size), np.float32)
        self.owner = np.zeros((size, size), np.int32)
        self.areas: list[int] = [0]
        self.boxes: list[tuple[int, int, int, int]] = []

    def copy(self) -> _Canvas:
        c = _Canvas.__new__(_Canvas)
        c.size, c.layer, c.owner, c.areas, c.boxes = self.size, self.layer.copy(), self.owner.copy(), list(self.areas), list(self.boxes)
        return c

    def try_place(self, obj: np.ndarray, y: int, x: int, max_overlap: float) -> bool:
        h, w = obj.shape
        y0, x0 = max(0, y), max(0, x)
        y1, x1 = min(self.size, y + h), min(self.size, x + w)
        if y1 <= y0 or x1 <= x0:
            return False
        part = obj[y0 - y : y1 - y, x0 - x : x1 - x]
        foot = part > 0
        area = int(foot.sum())
        if area == 0:
            return False
        if max_overlap < 1.0:
            under = self.owner[y0:y1, x0:x1][foot]
            if np.count_nonzero(under) > max_overlap * area:
                return False
            if under.size:
                ids, counts = np.unique(under[under > 0], return_counts=True)
                for i, c in zip(ids.tolist(), counts.tolist()):
                    if c > max_overlap * self.areas[i]:
                        return False
        self.layer[y0:y1, x0:x1] += part
        self.areas.append(area)
        self.owner[y0:y1, x0:x1][foot] = len(self.areas) - 1
        self.boxes.append((x0, y0, x1, y1))
        return True


def _place(canvas: _Canvas, crops: list[np.ndarray], n: int, cfg: SynthConfig, rng: np.random.Generator) -> int:
    placed = 0
    p = canvas.size
    for _ in range(n):
        obj = augment_crop(crops[int(rng.integers(len(crops)))], cfg, rng)
        h, w = obj.shape
        oy, ox = int(cfg.overhang * h), int(cfg.overhang * w)
        for _attempt in range(cfg.attempts):
            ylo, yhi = -oy, p - h + oy
            xlo, xhi = -ox, p - w + ox
            y = int(rng.integers(ylo, yhi + 1)) if yhi >= ylo else (p - h) // 2
            x = int(rng.integers(xlo, xhi + 1)) if xhi >= xlo else (p - w) // 2
            if canvas.try_place(obj, y, x, cfg.max_overlap):
                placed += 1
                break
    return placed


# ---------------------------------------------------------------------------------------------
# the synthesiser


@dataclass
class SynthPair:
    """One pair and its layers (linear units): ``input``/``target`` as the network sees them
    (``(1, P, P)`` float32), ``targets`` (Ot), ``unwanted1``/``unwanted2``, ``background1``/``background2``
    and the boxes ``(x0, y0, x1, y1)`` of the placed targets."""

    input: np.ndarray
    target: np.ndarray
    targets: np.ndarray
    unwanted1: np.ndarray
    unwanted2: np.ndarray
    background1: np.ndarray
    background2: np.ndarray
    target_boxes: list[tuple[int, int, int, int]]


class PairSynthesizer:
    """Synthetic pairs from a :class:`CropBank` (see the module docstring).

    Parameters
    ----------
    bank
        The crops and backgrounds.
    cfg
        ``config.static.synth``.
    patch
        Side of the square pairs (``config.sampling.crop``).

    Raises
    ------
    TrainingInputError
        A class the counts ask for has no crop, no background is as large as the patch, or crops
        are larger than the patch with ``oversize: error``.
    """

    def __init__(self, bank: CropBank, cfg: SynthConfig, patch: int) -> None:
        self.bank, self.cfg, self.patch = bank, cfg, int(patch)
        where = ", ".join(bank.paths) or "the crop bank"
        for role, crops, counts in (("target", bank.targets, cfg.targets), ("unwanted", bank.unwanted, cfg.unwanted)):
            if not crops and counts[1] > 0:
                raise TrainingInputError(
                    f"{where} has no {role} crops but static.synth.{'targets' if role == 'target' else 'unwanted'} asks for "
                    f"{counts[0]}-{counts[1]} per pair; extract some (see its contact_sheet.png) or set the count to [0, 0]"
                )
        self.targets = self._fit(bank.targets, "target", where)
        self.unwanted = self._fit(bank.unwanted, "unwanted", where)
        ok = [i for i, bg in enumerate(bank.backgrounds) if min(bg.shape[:2]) >= self.patch]
        if not ok:
            sizes = sorted({tuple(bg.shape[:2]) for bg in bank.backgrounds})
            raise TrainingInputError(
                f"no background in {where} is as large as the {self.patch}-px patch (sizes {sizes[:3]}); lower sampling.crop"
                if sizes else f"{where} has no background images; re-run `vidfilter extract-crops`"
            )
        if len(ok) < len(bank.backgrounds):
            log.warning("%d background(s) smaller than the %d-px patch are not used", len(bank.backgrounds) - len(ok), self.patch)
        self.background_ids = ok

    def _fit(self, crops: list[np.ndarray], role: str, where: str) -> list[np.ndarray]:
        big = [c for c in crops if max(c.shape) > self.patch]
        if not big:
            return crops
        largest = max(max(c.shape) for c in big)
        mode = self.cfg.oversize
        if mode == "error":
            raise TrainingInputError(
                f"{len(big)} of {len(crops)} {role} crops in {where} are larger than the {self.patch}-px patch (largest "
                f"{largest} px); raise sampling.crop to >= {largest}, set static.synth.oversize: shrink or skip, or "
                "re-extract with static.extract.max_size"
            )
        if mode == "skip":
            kept = [c for c in crops if max(c.shape) <= self.patch]
            if not kept:
                raise TrainingInputError(f"every {role} crop in {where} is larger than the {self.patch}-px patch; raise sampling.crop")
            log.info("leaving out %d %s crops larger than the %d-px patch", len(big), role, self.patch)
            return kept
        from scipy.ndimage import zoom

        out = []
        for c in crops:
            if max(c.shape) > self.patch:
                c = np.clip(zoom(c, (self.patch - 1) / max(c.shape), order=1), 0.0, None).astype(np.float32)
            out.append(c)
        log.info("shrinking %d %s crops larger than the %d-px patch", len(big), role, self.patch)
        return out

    # -- pieces ---------------------------------------------------------------------------------
    def background_patch(self, rng: np.random.Generator) -> np.ndarray:
        p = self.patch
        b = self.background_ids[int(rng.integers(len(self.background_ids)))]
        bg = self.bank.backgrounds[b]
        h, w = bg.shape[:2]
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        patch = np.array(bg[y : y + p, x : x + p], dtype=np.float32)
        patch = np.rot90(patch, int(rng.integers(4)))
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.ascontiguousarray(patch)
        zeros = patch <= 0
        if zeros.any():
            nz = patch[~zeros]
            if nz.size >= 16:
                lo, hi = np.quantile(nz[:: max(1, nz.size // 4096)], self.cfg.background_fill)
            else:
                lo, hi = self.bank.fills[b]
            patch[zeros] = np.float32(_uniform(rng, (float(lo), float(hi))))
        patch *= np.float32(_uniform(rng, self.cfg.background_intensity))
        return patch

    def _noise(self, rng: np.random.Generator) -> np.ndarray | float:
        sigma = _uniform(rng, self.cfg.noise)
        if sigma <= 0:
            return 0.0
        return rng.normal(0.0, sigma, (self.patch, self.patch)).astype(np.float32)

    def _illumination(self, rng: np.random.Generator) -> tuple[np.ndarray | np.float32, np.float32]:
        """The illumination both images of a pair share: a gain (``gain``, log-uniform) times a linear
        ramp of ``gradient`` peak to peak in a random direction, and an added level (``offset``)."""
        cfg = self.cfg
        gain = np.float32(_uniform(rng, cfg.gain, log_uniform=True))
        level = np.float32(_uniform(rng, cfg.offset))
        if cfg.gradient <= 0:
            return gain, level
        theta = rng.uniform(0.0, 2 * math.pi)
        axis = (np.arange(self.patch, dtype=np.float32) - (self.patch - 1) / 2.0) / max(self.patch - 1, 1)
        ramp = np.float32(math.sin(theta)) * axis[:, None] + np.float32(math.cos(theta)) * axis[None, :]
        ramp *= np.float32(cfg.gradient / max(float(np.ptp(ramp)), 1e-6))
        return gain * (1.0 + ramp), level

    # -- pairs ----------------------------------------------------------------------------------
    def pair(self, index: int, seed: int = 0, *, layers: bool = False) -> tuple[np.ndarray, np.ndarray] | SynthPair:
        """Pair ``index`` of the stream seeded ``seed``: ``(input, target)`` ``(1, P, P)`` float32 as the
        network sees them, or with ``layers=True`` a :class:`SynthPair` with every layer."""
        rng = np.random.default_rng([int(seed), int(index)])
        cfg = self.cfg
        base = _Canvas(self.patch)
        if self.targets:
            _place(base, self.targets, _count(rng, cfg.targets), cfg, rng)
        c1, c2 = base.copy(), base.copy()
        if self.unwanted:
            _place(c1, self.unwanted, _count(rng, cfg.unwanted), cfg, rng)
            _place(c2, self.unwanted, _count(rng, cfg.unwanted), cfg, rng)
        bg1, bg2 = self.background_patch(rng), self.background_patch(rng)
        light, level = self._illumination(rng)
        x1 = np.clip(light * (bg1 + c1.layer) + level + self._noise(rng), 0.0, 1.0)
        x2 = np.clip(light * (bg2 + c2.layer) + level + self._noise(rng), 0.0, 1.0)
        pre, g = self.bank.preprocess, self.bank.log_gain
        inp, tgt = encode(x1, pre, g)[None], encode(x2, pre, g)[None]
        if not layers:
            return inp, tgt
        return SynthPair(inp, tgt, base.layer, c1.layer - base.layer, c2.layer - base.layer, bg1, bg2, list(base.boxes))

    def batch(self, start: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Pairs ``start .. start + n - 1`` stacked: ``(n, 1, P, P)`` input and target."""
        pairs = [self.pair(start + k, seed) for k in range(n)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# preview


def preview_grid(synth: PairSynthesizer, n: int = 8, seed: int = 0, *, cell: int | None = None) -> np.ndarray:
    """uint8 image of ``n`` example pairs: one row per pair, columns input | target | targets only.

    Each row shares one display range (0 to the 99.8th percentile of its input and target)."""
    import cv2

    p = synth.patch
    cell = cell or min(p, 192)
    rows = []
    for i in range(n):
        sp = synth.pair(i, seed, layers=True)
        assert isinstance(sp, SynthPair)
        pre, g = synth.bank.preprocess, synth.bank.log_gain
        ot = encode(np.clip(sp.targets, 0, 1), pre, g)
        panels = [sp.input[0], sp.target[0], ot]
        hi = float(np.quantile(np.concatenate([sp.input.ravel(), sp.target.ravel()]), 0.998)) or 1.0
        row = [cv2.resize(np.clip(q / hi, 0, 1), (cell, cell), interpolation=cv2.INTER_AREA) for q in panels]
        sep = np.full((cell, 3), 0.5, np.float32)
        rows.append(np.hstack([row[0], sep, row[1], sep, row[2]]))
        rows.append(np.full((3, rows[-1].shape[1]), 0.5, np.float32))
    grid = np.vstack(rows[:-1])
    header = np.zeros((18, grid.shape[1]), np.float32)
    img = np.rint(np.vstack([header, grid]) * 255).astype(np.uint8)
    for k, title in enumerate(("input", "target", "Ot (shared)")):
        cv2.putText(img, title, (4 + k * (cell + 3), 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, 255, 1, cv2.LINE_AA)
    return img


def write_preview(banks: Sequence[str | os.PathLike[str]], path: str | os.PathLike[str], config: Config, n: int = 8,
                  seed: int = 0, *, overwrite: bool = False) -> None:
    """Write the :func:`preview_grid` of ``n`` pairs synthesised from the crop ``banks``
    (``config.static.synth``, patches of ``config.sampling.crop``) as a PNG file at ``path``."""
    from vidfilter.io.ownership import signed_png
    from vidfilter.io.sink import atomic_write_bytes, check_output_path

    check_output_path(path, inputs=banks, overwrite=overwrite)
    synth = PairSynthesizer(load_banks(banks), config.static.synth, config.sampling.crop_size())
    atomic_write_bytes(path, signed_png(preview_grid(synth, n, seed)))
