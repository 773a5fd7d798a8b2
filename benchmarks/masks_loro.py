"""Foreground-mask defaults chosen by leave-one-recording-out (LORO): the fixed threshold or the object mask?

Which mask should trackers be pointed to: the paper's threshold ``foreground > T`` (``output.mask_method:
fixed``, ``output.mask_threshold`` T = 10) or :func:`vidfilter.polarity.object_mask` (``object``)? And
does T = 10 carry over from the recordings it was set on? Each candidate is scored on every recording
below; then, for each held-out recording R and each family, the candidate with the best mean object F1
over the *other* recordings is picked and its score on R is reported beside the defaults' on R.

Candidates (the frame and the background as float32 in [0, 1], grey; polarity-signed: dark animals
``background - frame``, bright ones ``frame - background``):

- ``fixed T``: ``foreground * 255 > T`` (:func:`vidfilter.polarity.threshold_mask`), T in
  6, 8, 10, 12, 15, 20, 25, 30; ``fixed 10`` is the shipped default;
- ``object default``: ``object_mask(frame, background, polarity=...)`` with its defaults (the shipped
  ``mask_method: object``), and ``object k_low=..,closing=..,dilate=..,min_seed=..``: the grid of
  ``quality_real.object_grid()`` (81 settings), with the recording's polarity.

Recordings (the background of each scored frame from a shipped bundle, through
``vidfilter.infer.pipeline.ModelBackground(bundle, config)``: what the network gives, before ``vidfilter
run``'s exposure matching and clamp; ``--background run`` applies those two as a run does):

- ``worm-plate/S``, ``open-arena/S``: generated, exact truth. ``SyntheticRecording(40, H, W,
  SETUPS[setup].draw(default_rng(S)), polarity=dark, seed=S)`` for seeds 5001 and 5002 (the shipped
  corpora draw from generator seed 0), at the setup's own size (512², 480 x 640: its animals are sized
  for it, and at 256² the same 3-7 worms crowd a quarter of the area, so touching worms dominate;
  ``--gen-size`` changes it), the setup's own bundle. Truth: the animal mask; objects the animals with
  >= 40 mask px (their label boxes, so touching animals stay two); every 2nd frame scored;
- ``mouse``: ``mouse_tracktor/mouse_video.mp4``, the windows of ``quality_arena.choose_windows``
  (2 still, 1 moving, 300 frames each; the ``open-arena`` bundle sees only its window, dark polarity),
  every 5th frame. Truth: ``quality_arena.mouse_mask`` (largest component of reference - frame > 25
  against the 5-min median, holes filled) and its box; predicted components >= 100 px (quality_arena's
  MIN_AREA). This truth leaves out the mouse's soft shadow and blurred edge;
- ``flies``: ``flies_sleap/clip.mp4``, bright flies; the ``open-arena`` bundle with ``infer.invert`` and
  ``output.polarity: bright`` (quality_flies' inverted row) over the whole clip, every 25th frame of
  frames 0-999 and 1050-1499 (58 frames). Truth as ``quality_flies``: fly pixels exceed the other part's
  median by > 25; its 8-connected components of >= 200 px (holes filled) are the flies and their boxes;
  predicted components >= 100 px (as the mouse). The fly that never moves is in both references, so a
  mask that finds it counts a false object (the same for every candidate);
- ``worms``: ``worms_yolo_640`` (100 frames), the ``worm-plate`` bundle, dark; box labels only (no pixel
  score); components >= 40 px (quality_real's protocol).

Every model background is refined as ``vidfilter run`` refines it (``infer.refine``, the config's default
unless ``--refine`` says otherwise; the value is recorded in the results).

Scores per recording and candidate, pooled over its scored frames: object F1 (8-connected components
of the mask of at least the recording's min area -> boxes, Hungarian matching, a match when IoU > 0.5:
``vidfilter.eval.metrics.mask_to_boxes`` / ``BoxScore``) and pixel F1 where pixel truth exists. Each
recording's backgrounds are computed once, one frame at a time, and every candidate scores that frame.

LORO: per held-out recording and family (fixed, object), the candidate with the best mean object F1
over the other recordings (among equal scores the default, else the T nearest 10: a default changes
only for a strictly better score);
the table shows object F1 / pixel F1 on the held-out recording for fixed 10, the fixed pick, the
object defaults and the object pick, and the mean over recordings (pixel F1: over those with pixel
truth), over all recordings and over the real ones. Every recording weighs the same in a pick, so the
four generated ones are 4 of the 7 votes (3 of 6 when a generated one is held out).

A full run scores ~340 real frames with 90 candidates (~25 min on 2 busy cores); ``--only`` scores
some recordings now and ``--reuse`` takes the others from earlier runs (``--work``, only when
their settings match), so the run can be split (``--reuse --only none`` only gathers the earlier runs). ``--quick`` scores fewer frames.

Usage::

    python benchmarks/masks_loro.py [--data DIR] [--quick] [--only mouse,flies] [--reuse] [--background model|run]
        [--refine full|snap|off]
        [--work /tmp/vidfilter_masks_loro] [--out benchmarks/results/masks_loro.json]

The data folder is ``--data``, else ``$VIDFILTER_SHARED_DATA``, else ``<repo>/../shared/data``; a real
recording whose file is missing is skipped (with the reason printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, md_head  # noqa: E402
from quality_real import data_root, fmt, object_grid, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (6, 8, 10, 12, 15, 20, 25, 30)
GENERATED = (("worm-plate", 5001), ("worm-plate", 5002), ("open-arena", 5001), ("open-arena", 5002))
GEN_FRAMES, GEN_STEP, GEN_MIN_AREA = 40, 2, 40
MOUSE_STILL, MOUSE_MOVING, MOUSE_STEP = 2, 1, 5
FLY_STEP, FLY_GT_MIN_AREA, FLY_MIN_AREA = 25, 200, 100
WORM_MIN_AREA = 40
QUICK = {"gen_frames": 20, "gen_step": 2, "mouse_step": 15, "fly_step": 75, "worm_step": 3}
REAL = ("mouse", "flies", "worms")
ALL = ("worm-plate/5001", "worm-plate/5002", "open-arena/5001", "open-arena/5002", "mouse", "flies", "worms")

MaskFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: (frame float32 [0, 1], background float32 [0, 1], true boxes (N, 4), true mask or None)
Item = tuple[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"]


def default_threshold() -> float:
    from vidfilter.config import Config

    return float(Config().output.mask_threshold)


def candidates(polarity: str) -> dict[str, MaskFn]:
    """Every mask candidate with ``polarity``: the fixed thresholds, the object defaults, the object grid."""
    from vidfilter.polarity import object_mask, threshold_mask

    out: dict[str, MaskFn] = {f"fixed {t:g}": partial(threshold_mask, threshold=float(t), polarity=polarity) for t in THRESHOLDS}
    out["object default"] = partial(object_mask, polarity=polarity)
    out.update({f"object {name}": partial(fn, polarity=polarity) for name, fn in object_grid().items()})
    return out


def family(name: str) -> str:
    return name.split(" ", 1)[0]


@dataclass
class Recording:
    """A recording to score: ``items()`` yields one :data:`Item` per scored frame (its background computed
    there, once); ``min_area`` the smallest predicted component; ``info`` what the JSON keeps about it."""

    name: str
    polarity: str
    min_area: int
    pixel_truth: bool
    items: Callable[[], Iterator[Item]]
    info: dict[str, Any] = field(default_factory=dict)


def _bundle(setup: str) -> tuple[Any, Path]:
    from vidfilter.models import load_model
    from vidfilter.train.pretrain import resolve_init

    path = resolve_init(setup)
    return load_model(path), path


def _finish(frame: np.ndarray, bg: np.ndarray, polarity: str, mode: str) -> np.ndarray:
    """The background as scored: the network's (``model``) or with a run's exposure match and clamp (``run``)."""
    if mode == "model":
        return bg
    from vidfilter.infer.outputs import match_exposure
    from vidfilter.polarity import clamp_background

    return clamp_background(frame, match_exposure(frame, bg), polarity)


def model_config(bundle: Any, refine: str | None, extra: dict[str, Any] | None = None) -> Any:
    """The bundle's config with ``infer.refine`` set (``None``: the config's default) and ``extra`` overrides."""
    return bundle.config.override({**({"infer.refine": refine} if refine else {}), **(extra or {})})


def _model_frames(est: Any, src: Any, frames: list[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(t, raw frame, background)`` for ``frames``: ``est.prepare(src)`` then one network pass per frame
    (ModelBackground is not stateful, so this is what ``estimator_backgrounds`` does, reading each frame once)."""
    from vidfilter.io.scaling import to_float
    from vidfilter.io.source import to_gray

    est.prepare(src)
    for t in frames:
        raw = to_gray(np.asarray(src[t]))
        yield t, raw, est.background(t, to_float(raw))


def generated(setup: str, seed: int, n_frames: int, step: int, size: int | None, mode: str, refine: str | None = None) -> Recording:
    from vidfilter.eval.score import _label_boxes
    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.array_source import ArrayFrameSource
    from vidfilter.io.scaling import to_float
    from vidfilter.synth import SyntheticRecording
    from vidfilter.train.corpus import SETUPS

    polarity = SETUPS[setup].polarity
    params = SETUPS[setup].draw(np.random.default_rng(seed))
    native = SETUPS[setup].size
    h, w = (size, size) if size else (native, native) if isinstance(native, int) else native
    rec = SyntheticRecording(n_frames, h, w, params, polarity=polarity, seed=seed)
    bundle, path = _bundle(setup)
    frames = list(range(0, n_frames, step))

    def items() -> Iterator[Item]:
        src = ArrayFrameSource(rec, fps=rec.fps)
        for t, raw, bg in _model_frames(ModelBackground(bundle, model_config(bundle, refine)), src, frames):
            sf = rec.frame(t)
            f = to_float(raw)
            yield f, _finish(f, bg, polarity, mode), _label_boxes(rec.labels(t), GEN_MIN_AREA)[0], sf.mask

    info = {"source": f"SyntheticRecording({n_frames}, {h}, {w}, SETUPS[{setup!r}].draw(default_rng({seed})), "
                      f"polarity={polarity!r}, seed={seed})", "bundle": str(path), "frames": frames,
            "animals": len(rec.still_labels) + len(rec.moving_labels)}
    return Recording(f"{setup}/{seed}", polarity, GEN_MIN_AREA, True, items, info)


def _open_video(video: Path) -> Any:
    """The opened recording at ``video``, or why it is skipped."""
    from vidfilter.io.registry import open as open_source

    return open_source(video) if video.is_file() else f"{video} not found"


def mouse(root: Path, step: int, mode: str, refine: str | None = None) -> Recording | str:
    from quality_arena import MIN_AREA, VIDEO, WINDOW, box_of, choose_windows, mouse_mask, reference

    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.array_source import ArrayFrameSource
    from vidfilter.io.scaling import to_float

    src = _open_video(root / VIDEO)
    if isinstance(src, str):
        return src
    video = src.path
    ref = reference(src)
    windows = choose_windows(src, ref, MOUSE_STILL, MOUSE_MOVING)
    bundle, path = _bundle("open-arena")
    frames = list(range(0, WINDOW, step))

    def items() -> Iterator[Item]:
        for w in windows:
            window = ArrayFrameSource(np.stack(list(src.iter(w["start"], w["start"] + WINDOW))), fps=src.fps)  # 92 MB
            for _, raw, bg in _model_frames(ModelBackground(bundle, model_config(bundle, refine)), window, frames):
                gt = mouse_mask(raw, ref)
                f = to_float(raw)
                yield f, _finish(f, bg, "dark", mode), box_of(gt), gt
            del window

    info = {"source": str(video), "bundle": str(path), "windows": windows, "frames_per_window": frames,
            "truth": "quality_arena.mouse_mask against its reference (median of frames 450::20)"}
    return Recording("mouse", "dark", MIN_AREA, True, items, info)


def fly_truth(frame: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Fly pixels (frame - reference > 25, quality_flies' rule): 8-connected components of >= 200 px, holes filled."""
    from scipy import ndimage

    from quality_flies import FLY_LEVEL
    from vidfilter.polarity import clean_mask

    fly = clean_mask((frame.astype(np.float32) - ref) > FLY_LEVEL, min_area=FLY_GT_MIN_AREA, connectivity=8)
    return ndimage.binary_fill_holes(fly)


def flies(root: Path, step: int, mode: str, refine: str | None = None) -> Recording | str:
    from quality_flies import RESTING, VIDEO, WALKING, references

    from vidfilter.eval.metrics import mask_to_boxes
    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.scaling import to_float

    src = _open_video(root / VIDEO)
    if isinstance(src, str):
        return src
    video = src.path
    refs = references(src)
    bundle, path = _bundle("open-arena")
    cfg = model_config(bundle, refine, {"infer.invert": True, "output.polarity": "bright"})
    frames = [*range(*RESTING, step), *range(*WALKING, step)]

    def items() -> Iterator[Item]:
        for t, raw, bg in _model_frames(ModelBackground(bundle, cfg), src, frames):
            gt = fly_truth(raw, refs["resting" if t < RESTING[1] else "walking"])
            f = to_float(raw)
            yield f, _finish(f, bg, "bright", mode), mask_to_boxes(gt, min_area=1, connectivity=8), gt

    info = {"source": str(video), "bundle": str(path), "config": "bundle config + infer.invert, output.polarity bright",
            "frames": frames, "truth": f"quality_flies.references: frame - other part's median > 25, components >= "
                                       f"{FLY_GT_MIN_AREA} px, holes filled"}
    return Recording("flies", "bright", FLY_MIN_AREA, True, items, info)


def worms(root: Path, step: int, mode: str, refine: str | None = None) -> Recording | str:
    from quality_real import load_worms

    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.scaling import to_float

    folder = root / "worms_yolo_640"
    if not (folder / "frames").is_dir() or not (folder / "boxes.csv").is_file():
        return f"{folder}/frames or boxes.csv not found"
    src, gt_by_t = load_worms(folder)
    bundle, path = _bundle("worm-plate")
    frames = list(range(0, len(src), step))

    def items() -> Iterator[Item]:
        for t, raw, bg in _model_frames(ModelBackground(bundle, model_config(bundle, refine)), src, frames):
            f = to_float(raw)
            yield f, _finish(f, bg, "dark", mode), np.asarray(gt_by_t.get(t, np.zeros((0, 4))), np.float64).reshape(-1, 4), None

    info = {"source": str(folder), "bundle": str(path), "frames": frames, "truth": "boxes.csv (box labels only)"}
    return Recording("worms", "dark", WORM_MIN_AREA, False, items, info)


def score(rec: Recording, progress: bool = True) -> dict[str, Any]:
    """Every candidate on every scored frame of ``rec``: pooled object and pixel scores, and the seconds spent."""
    from vidfilter.eval.metrics import BoxScore, PixelScore, mask_to_boxes
    from vidfilter.polarity import residual_noise

    cands = candidates(rec.polarity)
    boxes = {n: BoxScore(0.5) for n in cands}
    pixels = {n: PixelScore() for n in cands} if rec.pixel_truth else {}
    secs = {"background": 0.0, "fixed": 0.0, "object": 0.0}
    offsets, sigmas = [], []
    n = 0
    t0 = time.perf_counter()
    it = rec.items()
    while True:
        tb = time.perf_counter()
        try:
            frame, bg, gt_boxes, gt_mask = next(it)
        except StopIteration:
            break
        secs["background"] += time.perf_counter() - tb
        noise = residual_noise(frame, bg)
        offsets.append(noise.offset)
        sigmas.append(noise.sigma)
        for name, fn in cands.items():
            tm = time.perf_counter()
            m = np.asarray(fn(frame, bg), dtype=bool)
            boxes[name].update(mask_to_boxes(m, min_area=rec.min_area, connectivity=8), gt_boxes)
            if rec.pixel_truth:
                pixels[name].update(m, gt_mask)
            secs[family(name)] += time.perf_counter() - tm
        n += 1
        if progress and n % 20 == 0:
            print(f"  {rec.name}: {n} frames, {time.perf_counter() - t0:.0f} s", flush=True)
    scores = {name: {"box": boxes[name].result().as_dict(),
                     "pixel": pixels[name].result().as_dict() if rec.pixel_truth else None} for name in cands}
    return {"n_frames": n, "min_area": rec.min_area, "polarity": rec.polarity, "pixel_truth": rec.pixel_truth,
            "seconds": {k: round(v, 1) for k, v in secs.items()},
            "residual": {"median_offset": float(np.median(offsets)) if offsets else None,
                         "median_sigma": float(np.median(sigmas)) if sigmas else None},
            "info": rec.info, "scores": scores}


def pick(mean: dict[str, float], t_default: float) -> str:
    """The candidate with the best mean object F1; among equals (within 1e-9) the default (``fixed 10``,
    ``object default``), else the threshold nearest the default (the lower of two as near), else the
    first in candidate order: the default changes only for a strictly better score."""
    top = max(mean.values())
    tied = [c for c, v in mean.items() if v >= top - 1e-9]
    for c in (f"fixed {t_default:g}", "object default"):
        if c in tied:
            return c
    if all(c.startswith("fixed ") for c in tied):
        return min(tied, key=lambda c: (abs(float(c.split()[1]) - t_default), float(c.split()[1])))
    return tied[0]


def loro(results: dict[str, dict[str, Any]], t_default: float) -> list[dict[str, Any]]:
    """Per held-out recording and family: the candidate with the best mean object F1 on the others (:func:`pick`)."""
    names = list(results)
    cand = list(next(iter(results.values()))["scores"])
    folds = []
    for held in names:
        others = [r for r in names if r != held]
        fold: dict[str, Any] = {"held_out": held, "trained_on": others}
        for fam in ("fixed", "object"):
            mean = {c: float(np.mean([results[r]["scores"][c]["box"]["f1"] for r in others])) for c in cand if family(c) == fam}
            best = pick(mean, t_default)
            s = results[held]["scores"][best]
            fold[fam] = {"chosen": best, "mean_f1_others": mean[best], "box_f1": s["box"]["f1"],
                         "pixel_f1": s["pixel"]["f1"] if s["pixel"] else None}
        folds.append(fold)
    return folds


def _short(name: str) -> str:
    """``object k_low=3,closing=2,dilate=4,min_seed=160`` -> ``k3 c2 d4 s160``; ``fixed 12`` -> ``T=12``."""
    if name.startswith("fixed "):
        return "T=" + name.split()[1]
    if name == "object default":
        return "default"
    parts = dict(p.split("=") for p in name.split(" ", 1)[1].split(","))
    return f"k{parts['k_low']} c{parts['closing']} d{parts['dilate']} s{parts['min_seed']}"


def _cell(s: dict[str, Any], extra: str = "") -> str:
    pix = fmt(s["pixel"]["f1"]) if s.get("pixel") else "-"
    return f"{fmt(s['box']['f1'])} / {pix}{extra}"


def table(results: dict[str, dict[str, Any]], folds: list[dict[str, Any]], t_default: float) -> tuple[str, dict[str, Any]]:
    """The Markdown table of held-out object F1 / pixel F1 and the means; and the same numbers for the JSON."""
    fixed_default = f"fixed {t_default:g}"
    cols: dict[str, list[tuple[str, float, float | None]]] = {"fixed-10": [], "fixed-LORO": [], "object-default": [],
                                                              "object-LORO": []}
    lines = md_head("| recording | fixed-10 | fixed-LORO (T chosen) | object-default | object-LORO (chosen) |")
    for fold in folds:
        r = results[fold["held_out"]]["scores"]
        chosen = {"fixed-10": fixed_default, "fixed-LORO": fold["fixed"]["chosen"], "object-default": "object default",
                  "object-LORO": fold["object"]["chosen"]}
        cells = []
        for col, c in chosen.items():
            s = r[c]
            cols[col].append((fold["held_out"], s["box"]["f1"], s["pixel"]["f1"] if s["pixel"] else None))
            cells.append(_cell(s, f" ({_short(c)})" if col.endswith("LORO") else ""))
        lines.append(f"| {fold['held_out']} | " + " | ".join(cells) + " |")
    means: dict[str, Any] = {}
    for label, keep in (("mean", lambda n: True), ("mean, real recordings", lambda n: n in REAL)):
        row = {}
        for col, v in cols.items():
            box = [b for n, b, _ in v if keep(n)]
            pix = [p for n, _, p in v if keep(n) and p is not None]
            row[col] = {"box_f1": float(np.mean(box)) if box else None, "pixel_f1": float(np.mean(pix)) if pix else None,
                        "recordings": len(box), "pixel_recordings": len(pix)}
        if row["fixed-10"]["recordings"]:
            means[label] = row
            lines.append(f"| **{label}** | " + " | ".join(f"**{fmt(m['box_f1'])} / {fmt(m['pixel_f1'])}**" for m in row.values()) + " |")
    return "\n".join(lines), means


def threshold_table(results: dict[str, dict[str, Any]]) -> str:
    """Object F1 of each fixed threshold and of the object defaults per recording (all frames, no held-out choice)."""
    head = "| recording | " + " | ".join(f"T={t}" for t in THRESHOLDS) + " | object default | best object (grid) |"
    lines = md_head(head)
    for name, r in results.items():
        s = r["scores"]
        grid = max((c for c in s if c.startswith("object ")), key=lambda c: s[c]["box"]["f1"])
        lines.append(f"| {name} | " + " | ".join(fmt(s[f"fixed {t}"]["box"]["f1"]) for t in THRESHOLDS)
                     + f" | {fmt(s['object default']['box']['f1'])} | {fmt(s[grid]['box']['f1'])} ({_short(grid)}) |")
    return "\n".join(lines)


def in_sample(results: dict[str, dict[str, Any]], t_default: float) -> dict[str, Any]:
    """The candidate of each family with the best mean object F1 over *all* recordings (not a held-out figure)."""
    cand = list(next(iter(results.values()))["scores"])
    out = {}
    for fam in ("fixed", "object"):
        mean = {c: float(np.mean([r["scores"][c]["box"]["f1"] for r in results.values()])) for c in cand if family(c) == fam}
        best = pick(mean, t_default)
        out[fam] = {"chosen": best, "mean_box_f1": mean[best]}
    return out


def settings_of(name: str, args: argparse.Namespace, steps: dict[str, int]) -> dict[str, Any]:
    """What a cached recording's scores depend on (``--reuse`` takes them only when these match)."""
    return {"recording": name, "quick": args.quick, "background": args.background, "steps": steps,
            "refine": resolved_refine(args.refine), "thresholds": list(THRESHOLDS), "object_grid": list(object_grid()),
            "version": 1}


def resolved_refine(refine: str | None) -> str:
    """The refinement the model backgrounds get: ``--refine``, else the config's default."""
    from vidfilter.config import Config

    return refine or str(Config().infer.refine)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="shared data folder (mouse_tracktor/, flies_sleap/, worms_yolo_640/)")
    ap.add_argument("--quick", action="store_true",
                    help=f"fewer frames: {QUICK['gen_frames']} generated, every {QUICK['mouse_step']}th mouse frame, "
                         f"every {QUICK['fly_step']}th fly frame, every {QUICK['worm_step']}rd worm frame")
    ap.add_argument("--only", help=f"comma list of recordings to score in this run (of {', '.join(ALL)}); "
                                   "the others come from --reuse or are left out; 'none': only --reuse, score nothing")
    ap.add_argument("--reuse", action="store_true", help="take recordings not scored now from earlier runs in --work "
                                                        "(only when their settings match)")
    ap.add_argument("--gen-size", type=int, help="generated recordings as N x N frames (default: the setup's own size)")
    ap.add_argument("--background", choices=("model", "run"), default="model",
                    help="model: ModelBackground's output as is; run: then vidfilter run's exposure match and clamp")
    ap.add_argument("--refine", choices=("full", "snap", "off"),
                    help="the model backgrounds' infer.refine (default: the config's, recorded in the results)")
    ap.add_argument("--work", default="/tmp/vidfilter_masks_loro", help="per-recording scores, for --reuse")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "masks_loro.json"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # shared 2-core machine; also makes the timings comparable
    t_start = time.perf_counter()
    t_default = default_threshold()
    if t_default not in THRESHOLDS:
        ap.error(f"the shipped output.mask_threshold {t_default:g} is not among the thresholds {THRESHOLDS}")
    root = data_root(args.data).resolve()
    q = args.quick
    steps = {"gen_frames": QUICK["gen_frames"] if q else GEN_FRAMES, "gen_step": GEN_STEP, "gen_size": args.gen_size,
             "mouse_step": QUICK["mouse_step"] if q else MOUSE_STEP,
             "fly_step": QUICK["fly_step"] if q else FLY_STEP, "worm_step": QUICK["worm_step"] if q else 1}
    wanted = [] if args.only == "none" else [n.strip() for n in args.only.split(",")] if args.only else list(ALL)
    unknown = [n for n in wanted if n not in ALL]
    if unknown:
        ap.error(f"unknown recordings {unknown}; valid: {', '.join(ALL)}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    makers: dict[str, Callable[[], Recording | str]] = {
        f"{s}/{seed}": partial(generated, s, seed, steps["gen_frames"], steps["gen_step"], args.gen_size, args.background, args.refine)
        for s, seed in GENERATED}
    makers["mouse"] = partial(mouse, root, steps["mouse_step"], args.background, args.refine)
    makers["flies"] = partial(flies, root, steps["fly_step"], args.background, args.refine)
    makers["worms"] = partial(worms, root, steps["worm_step"], args.background, args.refine)

    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name in ALL:
        cache = work / (name.replace("/", "_") + ".json")
        settings = settings_of(name, args, steps)
        if name not in wanted:
            if args.reuse and cache.is_file():
                cached = json.loads(cache.read_text())
                if cached.get("settings") == settings:
                    results[name] = {**cached["result"], "from_cache": str(cache)}
                    print(f"{name}: reused from {cache} ({cached['result']['n_frames']} frames)", flush=True)
                    continue
                print(f"{name}: not reused, {cache} has other settings", flush=True)
            skipped[name] = "not in --only" + (" and no matching cache" if args.reuse else "")
            continue
        t0 = time.perf_counter()
        rec = makers[name]()
        if isinstance(rec, str):
            skipped[name] = rec
            print(f"{name}: skipped, {rec}", flush=True)
            continue
        res = score(rec)
        res["seconds"]["total"] = round(time.perf_counter() - t0, 1)
        results[name] = res
        write_result(cache, {"settings": settings, "result": res})
        s = res["scores"]
        print(f"{name}: {res['n_frames']} frames in {res['seconds']['total']:.0f} s; object F1 fixed {t_default:g} "
              f"{fmt(s[f'fixed {t_default:g}']['box']['f1'])}, object default {fmt(s['object default']['box']['f1'])}; "
              f"residual offset {res['residual']['median_offset']:+.2f}, sigma {res['residual']['median_sigma']:.2f}",
              flush=True)

    if len(results) < 3:
        print(f"only {len(results)} recordings scored ({', '.join(results) or 'none'}); LORO needs 3 or more. "
              f"Skipped: {skipped}")
        return 0
    folds = loro(results, t_default)
    text, means = table(results, folds, t_default)
    picked_all = in_sample(results, t_default)
    runtime = time.perf_counter() - t_start
    real = [n for n in results if n in REAL]

    result = {
        "benchmark": "masks_loro",
        "machine": machine(),
        "protocol": {
            "text": __doc__,
            "candidates": {"fixed": [f"fixed {t}" for t in THRESHOLDS], "object": ["object default", *[f"object {g}" for g in object_grid()]]},
            "default": {"fixed": f"fixed {t_default:g} (output.mask_threshold)", "object": "object_mask defaults"},
            "background": args.background, "refine": resolved_refine(args.refine), "quick": args.quick, "steps": steps,
            "object_score": "8-connected components >= min_area -> boxes, Hungarian matching, match when IoU > 0.5, pooled over frames",
            "selection": "per held-out recording and family: best mean object F1 over the other recordings; among equals "
                         "the default, else the T nearest the default, else the first in candidate order",
        },
        "data": str(root),
        "recordings": {n: {k: v for k, v in r.items() if k != "scores"} for n, r in results.items()},
        "skipped": skipped,
        "scores": {n: r["scores"] for n, r in results.items()},
        "folds": folds,
        "held_out_mean": means,
        "picked_on_all_recordings": picked_all,
        "real_recordings": real,
        "runtime_s": round(runtime, 1),
        "scoring_s_all_recordings": round(sum(r["seconds"]["total"] for r in results.values()), 1),
    }
    out = write_result(args.out, result)

    print(f"\nheld-out object F1 / pixel F1 (LORO over {len(results)} recordings; components >= the recording's min area, "
          f"IoU > 0.5; backgrounds: {args.background})\n")
    print(text)
    print("\nfolds (held out: fixed pick, object pick, mean object F1 of each on the other recordings):")
    for f in folds:
        print(f"  {f['held_out']:<16} {f['fixed']['chosen']:<9} ({f['fixed']['mean_f1_others']:.3f})   "
              f"{f['object']['chosen']} ({f['object']['mean_f1_others']:.3f})")
    print("\nobject F1 per recording of each threshold, the object defaults and the best of the object grid (in-sample):\n")
    print(threshold_table(results))
    print(f"\npicked on all recordings (in-sample): {picked_all['fixed']['chosen']} ({picked_all['fixed']['mean_box_f1']:.3f}), "
          f"{picked_all['object']['chosen']} ({picked_all['object']['mean_box_f1']:.3f})")
    if skipped:
        print("skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    print(f"\n{runtime:.0f} s (scoring all {len(results)} recordings, this run or earlier: "
          f"{result['scoring_s_all_recordings']:.0f} s); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
