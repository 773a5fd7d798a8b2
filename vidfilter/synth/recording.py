"""Synthetic behaviour recordings with exact ground truth (background, animal masks, labels).

A :class:`SyntheticRecording` is a deterministic function of ``(seed, t)``: ``rec.frame(t)``
renders frame ``t`` in any order without storing the recording, so memory stays flat in its
length (what is kept: the plate texture, one frame in size, and each animal's path, 16 bytes per
pixel it crawls). It reproduces the paper's key scenario and the real-world complications of
real plates and arenas:

- a textured plate (two scales of Gaussian-filtered noise), an optical vignette and an optional
  dark circular rim (the plate wall);
- worm-like animals: a smooth centre-line built from a random-walk heading with sinusoidal
  undulation, a tapered body with anti-aliased edges, darker (``polarity="dark"``) or lighter
  (``"bright"``) than the plate by 40-80 grey levels; moving animals crawl along their body (the
  body follows the path its head traced); ``n_still`` of them move at most 0.5 px over the whole
  recording, so a median projection keeps them as background;
- slow multiplicative illumination drift ``gain(t) = 1 + drift * sin(2 pi t / n_frames)``;
- Gaussian sensor noise;
- an optional camera shift of ``shift_px`` (dy, dx; may be fractional) from frame ``shift_at`` on:
  plate, rim, trails and animals move, the vignette (optics) does not;
- optional ``tracks``: moving animals leave faint trails in the plate, so the true background
  changes over time (trails accumulated up to ``t``; cached incrementally when frames are read
  in order, recomputed exactly otherwise).

Ground truth per frame: ``background`` (float32 grey levels, what the frame would be without the
animals and without noise), ``mask`` (bool: pixels the animals change by at least
``mask_threshold`` grey levels, the paper's ``|frame - background| > 10`` rule applied to the
noise-free frame), and ``labels(t)`` (uint16: 0 background, ``k`` animal ``k``; see
:attr:`SyntheticRecording.still_labels`).

:func:`write_video` streams a recording to an H.264 MP4 (or FFV1 MKV) through PyAV.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from vidfilter.errors import ConfigError

__all__ = ["RecordingParams", "SyntheticFrame", "SyntheticRecording", "make_recording", "write_long_video", "write_video"]

logger = logging.getLogger(__name__)

_SAMPLE = 0.5  # arc-length spacing of centre-line samples (px)


class SyntheticFrame(NamedTuple):
    """One frame and its ground truth."""

    frame: np.ndarray  # (H, W) uint8
    background: np.ndarray  # (H, W) float32, grey levels
    mask: np.ndarray  # (H, W) bool


@dataclass(frozen=True)
class _Animal:
    label: int
    still: bool
    path: np.ndarray  # (N, 2) world (y, x) at arc 0, 1, 2, ... px; arc `length` is the head at t=0
    length: float
    width: float
    contrast: float
    speed: float  # arc px per frame

    def head_arc(self, t: float) -> float:
        return self.length + self.speed * t


def _interp_path(path: np.ndarray, arcs: np.ndarray) -> np.ndarray:
    grid = np.arange(len(path), dtype=np.float64)
    return np.stack([np.interp(arcs, grid, path[:, 0]), np.interp(arcs, grid, path[:, 1])], axis=1)


def _render_tube(
    points: np.ndarray, radii: np.ndarray, shape: tuple[int, int]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Anti-aliased coverage of the union of discs (points, radii) inside an image of ``shape``.

    Returns the bounding-box slices and the coverage in [0, 1] there, or None when off-image.
    """
    rmax = float(radii.max())
    reach = rmax + 1.5
    y0 = max(int(math.floor(points[:, 0].min() - reach)), 0)
    y1 = min(int(math.ceil(points[:, 0].max() + reach)) + 1, shape[0])
    x0 = max(int(math.floor(points[:, 1].min() - reach)), 0)
    x1 = min(int(math.ceil(points[:, 1].max() + reach)) + 1, shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    pix = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    k = min(6, len(points))
    dist, idx = cKDTree(points).query(pix, k=k, distance_upper_bound=reach)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    r_ext = np.append(radii, 0.0)  # index len(points) = "no neighbour"
    signed = dist - r_ext[idx]  # inf where no neighbour
    alpha = np.clip(0.5 - signed.min(axis=1), 0.0, 1.0).astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), alpha.reshape(y1 - y0, x1 - x0)


@dataclass(frozen=True)
class RecordingParams:
    """What a :class:`SyntheticRecording` shows, apart from its size (frames, height, width).

    Attributes
    ----------
    n_animals
        Number of animals (labels 1..n_animals).
    n_still
        How many of them barely move (at most 0.5 px over the recording); labels in
        :attr:`still_labels` (the last ``n_still`` labels).
    polarity
        ``"dark"``: dark animals on a light plate (~150-220 grey levels); ``"bright"``: light
        animals on a dark plate (~35-75).
    texture
        Amplitude (std, grey levels) of the plate texture: 75 % coarse blotches, 35 % fine grain.
    vignette
        Relative darkening in the image corners (optics; does not move with the camera).
    rim
        Draw the plate wall: a dark ring and dark outside a circle of radius 0.47 * min(H, W);
        animals stay inside it.
    wall, surround
        With ``rim``: ``wall > 0`` draws an open-field arena instead, a dark wall ``wall`` px wide
        (``wall_level`` times the floor level) around the floor and, beyond it, a surround at
        ``surround`` times the floor level with its own coarse folds (a bench or cloth; above 1 it is
        brighter than the floor). ``wall = 0`` (the default) keeps the plate look.
    wall_level, surround_edge, surround_folds
        The wall's level relative to the floor (default 0.3); the amplitude in px of a smooth random
        displacement of the wall/surround border (default 0: a circle; a draped cloth is ragged, so
        that pieces of the wall appear between bright patches); the relative std of the surround's
        folds (default 0.15).
    arena_radius, arena_offset
        Radius of the rim (floor edge) as a fraction of ``min(height, width)`` (default 0.47), and the
        offset of its centre from the image centre as fractions of (height, width) (default (0, 0)).
        A wide wall around a large arena runs off the image, as in most open-field recordings.
    edge_gap
        How close (px) an animal's centre line may come to the edge of the area it lives in (the
        rim, or the frame's border without one). ``None`` (the default): animals keep ``0.6 *
        length + width`` away from it, inside a 6 px margin. About half the body width lets them
        walk along the wall and rest against it, as rodents in an open field do: the path then
        slides along the edge instead of crossing it.
    edge_softness
        Scale in px of the logistic edges of the rim, wall and surround (default 1.5; real arena
        walls imaged in focus are sharper, ~0.5).
    level
        Mean floor (plate) level in grey levels; default 190 for ``dark`` and 55 for ``bright``.
    illumination_drift
        Gain amplitude: ``gain(t) = 1 + drift * sin(2 pi t / n_frames)``.
    noise_sigma
        Std of the Gaussian sensor noise (grey levels).
    shift_at, shift_px
        From frame ``shift_at`` on, the scene (plate, animals, trails) appears moved by
        ``shift_px = (dy, dx)`` pixels (fractional allowed).
    tracks
        Moving animals leave faint trails (``trail_depth`` grey levels) that stay in the plate.
    speed
        Mean crawling speed in px per frame (each animal 0.7-1.3 x).
    contrast
        Range of the animals' contrast to the plate in grey levels.
    animal_length, animal_width
        Body length and maximum thickness in px; default 0.16 and 0.012 x min(H, W) (82 px and
        6 px at 512^2), at least 8 and 3 px; each animal varies by +-15 %.
    mask_threshold
        Grey levels an animal must change the noise-free frame by to count in ``mask``.
    fps
        Frame rate stored in written videos.
    seed
        Everything is a function of ``seed`` (and ``t`` for the noise).
    """

    n_animals: int = 6
    n_still: int = 0
    polarity: str = "dark"
    texture: float = 12.0
    vignette: float = 0.12
    rim: bool = False
    wall: float = 0.0
    surround: float = 0.35
    wall_level: float = 0.3
    surround_edge: float = 0.0
    surround_folds: float = 0.15
    arena_radius: float = 0.47
    arena_offset: tuple[float, float] = (0.0, 0.0)
    level: float | None = None
    edge_softness: float = 1.5
    edge_gap: float | None = None
    illumination_drift: float = 0.0
    noise_sigma: float = 2.0
    shift_at: int | None = None
    shift_px: tuple[float, float] = (0.0, 0.0)
    tracks: bool = False
    trail_depth: float = 6.0
    speed: float = 2.0
    contrast: tuple[float, float] = (40.0, 80.0)
    animal_length: float | None = None
    animal_width: float | None = None
    mask_threshold: float = 10.0
    fps: float = 25.0
    seed: int = 0

    def __post_init__(self) -> None:
        polarity = str(getattr(self.polarity, "value", self.polarity))
        if polarity not in ("dark", "bright"):
            raise ConfigError(f"polarity must be 'dark' or 'bright', got {polarity!r}")
        if not 0 <= self.n_still <= self.n_animals:
            raise ConfigError(f"n_still must be between 0 and n_animals ({self.n_animals}), got {self.n_still}")
        if not 0.05 <= self.arena_radius <= 1.0:
            raise ConfigError(f"arena_radius is a fraction of the shorter side (0.05-1), got {self.arena_radius}")
        if self.edge_softness <= 0:
            raise ConfigError(f"edge_softness must be > 0 px, got {self.edge_softness}")
        if self.edge_gap is not None and self.edge_gap < 0:
            raise ConfigError(f"edge_gap must be >= 0 px (or None), got {self.edge_gap}")
        object.__setattr__(self, "polarity", polarity)
        object.__setattr__(self, "shift_px", (float(self.shift_px[0]), float(self.shift_px[1])))
        object.__setattr__(self, "arena_offset", (float(self.arena_offset[0]), float(self.arena_offset[1])))

    def sized(self, height: int, width: int) -> RecordingParams:
        """These parameters with the defaults that depend on the frame size (``level``,
        ``animal_length``, ``animal_width``) filled in for ``height`` x ``width`` frames."""
        side = min(height, width)
        return replace(
            self,
            level=float(self.level) if self.level is not None else (190.0 if self.polarity == "dark" else 55.0),
            animal_length=float(self.animal_length) if self.animal_length is not None else max(8.0, 0.16 * side),
            animal_width=float(self.animal_width) if self.animal_width is not None else max(3.0, 0.012 * side),
        )


class SyntheticRecording:
    """A deterministic synthetic recording of worm-like animals on a textured plate: ``n_frames`` of
    ``height`` x ``width``, showing ``params`` (default :class:`RecordingParams`) with ``overrides``
    of its fields (``SyntheticRecording(24, 96, 96, n_animals=2, seed=5)``). :attr:`params` holds
    the parameters in effect, the size-dependent defaults filled in."""

    def __init__(self, n_frames: int, height: int, width: int, params: RecordingParams | None = None, **overrides: Any) -> None:
        p = replace(params or RecordingParams(), **overrides)
        if n_frames < 1 or height < 8 or width < 8:
            raise ConfigError(f"a synthetic recording needs n_frames >= 1 and sides >= 8, got {n_frames}x{height}x{width}")
        self.n_frames, self.height, self.width = int(n_frames), int(height), int(width)
        self.params = p = p.sized(self.height, self.width)
        self.fps = float(p.fps)
        self._sign = -1.0 if p.polarity == "dark" else 1.0
        rng = np.random.default_rng([p.seed, 0x5EED])
        shifted = p.shift_at is not None and p.shift_at < self.n_frames and p.shift_px != (0.0, 0.0)
        self._margin = int(math.ceil(max(abs(p.shift_px[0]), abs(p.shift_px[1])))) + 2 if shifted else 0
        m = self._margin
        self._canvas_shape = (self.height + 2 * m, self.width + 2 * m)
        self._plate_world = self._make_plate(rng, p.texture)
        self._vignette = self._make_vignette(p.vignette)
        self._animals = self._make_animals(rng, p.n_animals, p.n_still, p.speed, p.contrast)
        self.still_labels = frozenset(a.label for a in self._animals if a.still)
        self.moving_labels = frozenset(a.label for a in self._animals if not a.still)
        self._plate_cache: dict[tuple[float, float], np.ndarray] = {}
        self._trail: np.ndarray | None = None  # world canvas, coverage in [0, 1]
        self._trail_k: list[int] = []  # per animal: last arc-sample index rendered
        self._trail_t = -1
        self._last: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None

    # -- construction ------------------------------------------------------------------------
    def _world_centre_and_radius(self) -> tuple[np.ndarray, float]:
        centre = np.array([(self.height - 1) / 2 + self.params.arena_offset[0] * self.height,
                           (self.width - 1) / 2 + self.params.arena_offset[1] * self.width])
        return centre, self.params.arena_radius * min(self.height, self.width)

    def _make_plate(self, rng: np.random.Generator, texture: float) -> np.ndarray:
        h, w = self._canvas_shape
        side = min(self.height, self.width)
        coarse = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=max(2.0, side / 24), mode="wrap")
        fine = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=1.2, mode="wrap")
        coarse /= coarse.std() + 1e-12
        fine /= fine.std() + 1e-12
        level = self.params.level
        plate = level + texture * (0.75 * coarse + 0.35 * fine)
        if self.params.rim:
            centre, radius = self._world_centre_and_radius()
            yy, xx = np.mgrid[0:h, 0:w]
            r = np.hypot(yy - self._margin - centre[0], xx - self._margin - centre[1])
            inside = 1.0 / (1.0 + np.exp(-(radius - r) / self.params.edge_softness))
            if self.params.wall > 0:  # open-field arena: floor | dark wall | surround with its own folds
                edge = r - radius - self.params.wall
                if self.params.surround_edge > 0:  # own stream: the default arena's draws stay as they were
                    erng = np.random.default_rng([self.params.seed, 0xED6E])
                    rag = ndimage.gaussian_filter(erng.standard_normal((h, w)), sigma=max(2.0, side / 14), mode="wrap")
                    edge = edge + self.params.surround_edge * rag / (np.abs(rag).max() + 1e-12)
                beyond = 1.0 / (1.0 + np.exp(-edge / self.params.edge_softness))
                folds = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=max(2.0, side / 16), mode="wrap")
                folds /= folds.std() + 1e-12
                outer = level * self.params.surround * (1.0 + self.params.surround_folds * folds)
                plate = plate * inside + (1.0 - inside) * ((1.0 - beyond) * self.params.wall_level * level + beyond * outer)
            else:
                plate = plate * (0.35 + 0.65 * inside) - 0.25 * level * np.exp(-(((r - radius) / 3.0) ** 2))
        return plate.astype(np.float32)

    def _make_vignette(self, amount: float) -> np.ndarray:
        yy, xx = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        cy, cx = (self.height - 1) / 2, (self.width - 1) / 2
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (cy**2 + cx**2 + 1e-12)
        return (1.0 - amount * r2).astype(np.float32)

    def _inside_distance(self, p: np.ndarray) -> float:
        """Distance of world point ``p`` to the edge of the area animals may use (negative outside)."""
        if self.params.rim:
            centre, radius = self._world_centre_and_radius()
            return float(radius - (6.0 if self.params.edge_gap is None else 0.0) - np.hypot(*(p - centre)))
        return float(min(p[0], self.height - 1 - p[0], p[1], self.width - 1 - p[1]))

    def _clamp_inside(self, p: np.ndarray, gap: float) -> np.ndarray:
        """``p`` moved back to ``gap`` px inside the edge if it went further out (the path slides along it)."""
        if self.params.rim:
            centre, radius = self._world_centre_and_radius()
            d = p - centre
            r = float(np.hypot(*d))
            lim = max(radius - gap, 0.0)
            return centre + d * (lim / r) if r > lim else p
        return np.array([min(max(p[0], gap), self.height - 1 - gap), min(max(p[1], gap), self.width - 1 - gap)])

    def _make_animals(
        self, rng: np.random.Generator, n: int, n_still: int, speed: float, contrast: tuple[float, float]
    ) -> list[_Animal]:
        animals: list[_Animal] = []
        centre, _ = self._world_centre_and_radius()
        starts: list[np.ndarray] = []
        for k in range(n):
            still = k >= n - n_still
            length = self.params.animal_length * rng.uniform(0.85, 1.15)
            width = self.params.animal_width * rng.uniform(0.85, 1.15)
            v = 0.5 / max(self.n_frames - 1, 1) if still else speed * rng.uniform(0.7, 1.3)
            keep_out = (min(length * 0.6 + width, 0.35 * min(self.height, self.width)) if self.params.edge_gap is None
                        else self.params.edge_gap)
            start = centre.copy()
            # with an edge gap, half the animals start against the edge (more draws only then)
            at_edge = self.params.edge_gap is not None and rng.random() < 0.5
            for _attempt in range(50):  # a start inside, away from the other animals
                cand = np.array([rng.uniform(0, self.height - 1), rng.uniform(0, self.width - 1)])
                if at_edge:
                    cand = self._clamp_inside(centre + (cand - centre) * 10.0, keep_out + 0.5)
                if self._inside_distance(cand) < keep_out:
                    continue
                start = cand
                if all(np.hypot(*(cand - s)) > length for s in starts):
                    break
            starts.append(start)
            n_steps = int(math.ceil(length + v * (self.n_frames - 1))) + 3
            path = self._walk(rng, start, n_steps, length, keep_out)
            animals.append(
                _Animal(
                    label=k + 1,
                    still=still,
                    path=path,
                    length=length,
                    width=width,
                    contrast=float(rng.uniform(*contrast)),
                    speed=float(v),
                )
            )
        return animals

    def _walk(self, rng: np.random.Generator, start: np.ndarray, n_steps: int, length: float, keep_out: float) -> np.ndarray:
        """Path at 1 px arc steps: random-walk heading, steering away from walls, sinusoidal undulation."""
        centre, _ = self._world_centre_and_radius()
        wavelength = 0.6 * length
        amplitude = 0.5
        phase = rng.uniform(0, 2 * np.pi)
        turns = rng.normal(0.0, 0.04, size=n_steps)
        base = rng.uniform(-np.pi, np.pi)
        path = np.empty((n_steps, 2))
        p = start.astype(np.float64).copy()
        for i in range(n_steps):
            path[i] = p
            if self._inside_distance(p) < keep_out:
                toward = math.atan2(centre[0] - p[0], centre[1] - p[1])
                base += 0.15 * math.remainder(toward - base, 2 * math.pi)
            base += turns[i]
            heading = base + amplitude * math.sin(2 * math.pi * i / wavelength + phase)
            p = p + (math.sin(heading), math.cos(heading))
            if self.params.edge_gap is not None:
                p = self._clamp_inside(p, keep_out)
        return path

    # -- sizes ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_frames

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W)."""
        return (self.n_frames, self.height, self.width)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def __repr__(self) -> str:
        return (
            f"SyntheticRecording({self.n_frames}x{self.height}x{self.width}, animals={len(self._animals)}, "
            f"still={len(self.still_labels)}, polarity={self.params.polarity!r}, seed={self.params.seed})"
        )

    # -- per-frame quantities ------------------------------------------------------------------
    def _check_t(self, t: int) -> int:
        t = int(t)
        if t < 0:
            t += self.n_frames
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range for a recording of {self.n_frames} frames")
        return t

    def gain(self, t: int) -> float:
        """Illumination gain of frame ``t``."""
        return 1.0 + self.params.illumination_drift * math.sin(2 * math.pi * t / self.n_frames)

    def offset(self, t: int) -> tuple[float, float]:
        """Camera shift (dy, dx) of frame ``t``: where world content appears in the image."""
        if self.params.shift_at is not None and t >= self.params.shift_at:
            return self.params.shift_px
        return (0.0, 0.0)

    def _view(self, canvas: np.ndarray, offset: tuple[float, float], order: int) -> np.ndarray:
        m = self._margin
        if m == 0:
            return canvas
        dy, dx = offset
        if float(dy).is_integer() and float(dx).is_integer():
            y0, x0 = m - int(dy), m - int(dx)
            return canvas[y0 : y0 + self.height, x0 : x0 + self.width]
        moved = ndimage.shift(canvas, (dy, dx), order=order, mode="nearest")
        return moved[m : m + self.height, m : m + self.width]

    def _plate(self, offset: tuple[float, float]) -> np.ndarray:
        if offset not in self._plate_cache:
            self._plate_cache[offset] = np.ascontiguousarray(self._view(self._plate_world, offset, order=3))
        return self._plate_cache[offset]

    def centrelines(self, t: int) -> list[np.ndarray]:
        """Centre-line of every animal at frame ``t`` in image (y, x) coordinates, tail to head."""
        t = self._check_t(t)
        off = np.array(self.offset(t))
        return [self._centreline(a, t) + off for a in self._animals]

    @staticmethod
    def _centreline(a: _Animal, t: int) -> np.ndarray:
        head = a.head_arc(t)
        n = max(8, int(math.ceil(a.length / _SAMPLE)) + 1)
        return _interp_path(a.path, np.linspace(head - a.length, head, n))

    def _trails(self, t: int) -> np.ndarray:
        """Trail coverage in world canvas coordinates, accumulated up to frame ``t``."""
        movers = [a for a in self._animals if not a.still]
        if self._trail is None or t < self._trail_t:
            self._trail = np.zeros(self._canvas_shape, np.float32)
            self._trail_k = [-1] * len(movers)
        for i, a in enumerate(movers):
            # fixed arc grid k * _SAMPLE, k up to ceil(head / _SAMPLE): incremental == from scratch
            k_end = min(int(math.ceil(a.head_arc(t) / _SAMPLE)), int((len(a.path) - 1) / _SAMPLE))
            k_start = max(self._trail_k[i], 0)
            if k_end <= self._trail_k[i]:
                continue
            ks = np.arange(k_start, k_end + 1)
            points = _interp_path(a.path, ks * _SAMPLE) + self._margin
            radii = np.full(len(points), 0.3 * a.width)
            res = _render_tube(points, radii, self._canvas_shape)
            if res is not None:
                sl, alpha = res
                np.maximum(self._trail[sl], alpha, out=self._trail[sl])
            self._trail_k[i] = k_end
        self._trail_t = t
        return self._trail

    def _render(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        t = self._check_t(t)
        if self._last is not None and self._last[0] == t:
            return self._last[1]
        h, w = self.height, self.width
        offset = self.offset(t)
        plate = self._plate(offset)
        if self.params.tracks:
            trail = self._view(self._trails(t), offset, order=1)
            plate = plate + np.float32(self._sign * self.params.trail_depth) * trail
        scale = self._vignette * np.float32(self.gain(t))
        background = (plate * scale).astype(np.float32)
        layer = np.zeros((h, w), np.float32)  # animal contrast (grey levels, before gain)
        labels = np.zeros((h, w), np.uint16)
        off = np.array(offset)
        for a in self._animals:
            pts = self._centreline(a, t) + off
            u = np.linspace(0.0, 1.0, len(pts))
            radii = 0.5 * a.width * (0.35 + 0.65 * np.sqrt(np.sin(np.pi * u)))
            res = _render_tube(pts, radii, (h, w))
            if res is None:
                continue
            sl, alpha = res
            contrib = np.float32(a.contrast) * alpha
            win = contrib > layer[sl]
            layer[sl] = np.where(win, contrib, layer[sl])
            labels[sl] = np.where(win & (contrib > 0), np.uint16(a.label), labels[sl])
        change = layer * scale
        mask = change >= self.params.mask_threshold
        labels[~mask] = 0
        clean = background + np.float32(self._sign) * change
        rng = np.random.default_rng([self.params.seed, t, 0xF4A3E])
        noisy = clean + rng.standard_normal((h, w), dtype=np.float32) * np.float32(self.params.noise_sigma)
        frame = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        out = (frame, background, mask, labels)
        self._last = (t, out)
        return out

    def frame(self, t: int) -> SyntheticFrame:
        """Frame ``t`` (uint8) with its true background (float32 grey levels) and animal mask (bool)."""
        frame, background, mask, _ = self._render(t)
        return SyntheticFrame(frame.copy(), background.copy(), mask.copy())

    def labels(self, t: int) -> np.ndarray:
        """Label image of frame ``t``: 0 background, ``k`` animal ``k`` (uint16); nonzero == mask."""
        return self._render(t)[3].copy()

    def __getitem__(self, t: int) -> np.ndarray:
        return self._render(t)[0].copy()

    def frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """Yield uint8 frames one at a time."""
        for t in range(start, self.n_frames if stop is None else min(stop, self.n_frames), step):
            yield self[t]

    def __iter__(self) -> Iterator[SyntheticFrame]:
        for t in range(self.n_frames):
            yield self.frame(t)


def make_recording(n_frames: int, height: int, width: int, **kwargs: Any) -> SyntheticRecording:
    """Build a :class:`SyntheticRecording`; keyword arguments are fields of :class:`RecordingParams`."""
    return SyntheticRecording(n_frames, height, width, **kwargs)


_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi"}


def _encode(path: Path, container: str, rec: Any, *, codec: str, crf: int, rate: Fraction, pix_fmt: str) -> None:
    """Encode every frame of ``rec`` into ``path`` (``container`` format)."""
    import av

    n, h, w = len(rec), *rec[0].shape[:2]
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec in ("libx264", "h264"):
            stream.options = {"crf": str(crf)}
        for t in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rec[t]), format="gray")
            if pix_fmt != "gray":
                frame = frame.reformat(format=pix_fmt)
            frame.pts = t
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_video(
    path: str | os.PathLike[str],
    rec: SyntheticRecording,
    *,
    codec: str = "libx264",
    crf: int = 18,
    fps: float | None = None,
    pix_fmt: str | None = None,
) -> Path:
    """Stream ``rec`` to a video file, one frame at a time (written to a temp name, then renamed).

    Parameters
    ----------
    path
        ``.mp4`` / ``.mkv`` / ``.mov`` / ``.avi``.
    rec
        The recording (anything with ``len()``, ``[t] -> uint8 (H, W)`` and ``fps``).
    codec
        ``"libx264"`` (H.264, lossy, ``crf``) or ``"ffv1"`` (lossless; use ``.mkv``).
    crf
        H.264 constant rate factor (0 = lossless, 18 = visually lossless).
    fps
        Frame rate; defaults to ``rec.fps``.
    pix_fmt
        Encoder pixel format; default ``"gray"`` for FFV1, ``"yuv420p"`` for H.264 (which needs
        even sides).
    """
    path = Path(path)
    container = _CONTAINERS.get(path.suffix.lower())
    if container is None:
        raise ConfigError(f"cannot write {path}: use one of {', '.join(_CONTAINERS)}")
    n, h, w = len(rec), *rec[0].shape[:2]
    pix_fmt = pix_fmt or ("gray" if codec == "ffv1" else "yuv420p")
    if pix_fmt.startswith("yuv420") and (h % 2 or w % 2):
        raise ConfigError(f"{codec} with {pix_fmt} needs even frame sides, got {h}x{w}; use codec='ffv1' or even sizes")
    rate = Fraction(fps if fps is not None else getattr(rec, "fps", 25.0)).limit_denominator(1001)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        _encode(tmp, container, rec, codec=codec, crf=crf, rate=rate, pix_fmt=pix_fmt)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("wrote %d synthetic frames to %s", n, path)
    return path


def write_long_video(path: str | os.PathLike[str], n: int, *, size: int = 64, square: int = 6) -> Path:
    """``n`` FFV1 frames of a textured plate with a moving dark square: cheap to make at any length
    (20,000 frames in seconds), for soak and memory tests where the content does not matter."""
    import av

    rng = np.random.default_rng(0)
    plate = (150 + 30 * rng.random((size, size))).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=Fraction(25))
        s.width = s.height = size
        s.pix_fmt = "gray"
        for t in range(n):
            img = plate.copy()
            y, x = (3 * t) % (size - square), (5 * t) % (size - square)
            img[y : y + square, x : x + square] = 40
            img[0, 0] = t % 256  # every frame differs
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return Path(path)
