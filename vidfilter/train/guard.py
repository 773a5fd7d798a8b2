"""The check that ends a fine-tuning (``vidfilter train --init B``): is the tuned network at least as
good as ``B`` on the recording it was tuned on?

A short clip's time-lag pairs can teach a bundle the wrong thing: an animal that rests through the
clip becomes plate, a dark wall beside a resting animal becomes animal (docs/benchmarks.md). No
labels exist, so the check judges the two networks' backgrounds of frames spread over the
recording (refined as a run refines them) by what the recording itself shows, with the bundle as
the referee where the recording cannot tell:

- **kept**: where ``B`` sees an animal (an object of the noise-scaled object mask of its
  background against the frame, :func:`_objects`), the share of the contrast ``B`` removes that the
  tuned background gives back. An animal that never moves looks like plate to every statistic of
  the clip; only the bundle's prior tells it apart, so the tuned network must not undo it.
- **extra**: pixels the tuned network sees as an animal where ``B`` sees plate and the frame holds
  no object against the recording's median (nothing moved there), per pixel ``B`` sees
  as an animal. Plate texture or a wall read as animals shows here; so would a still animal that
  only the tuned network removes, which the check cannot tell from texture and so does not credit.
- **moving**: of the pixels where the frame departs from the recording's median in the animal's
  direction (an animal is there now and not most of the time), the share each network sees as an
  animal. Fine-tuning may gain here; it must not lose.

The tuned network is kept when kept <= :data:`KEPT_MAX`, extra <= :data:`EXTRA_MAX` and its
moving share is at least ``B``'s less :data:`MOVING_SLACK`; otherwise the bundle written is ``B``
itself, with the check's figures in its provenance. The thresholds were set on the fine-tunings
measured in docs/benchmarks.md ("Fine-tuning that never hurts").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vidfilter.config import Config
from vidfilter.io.source import FrameSource, to_gray

#: the largest share of the bundle's removed contrast the tuned background may give back
KEPT_MAX = 0.10
#: the most static pixels the tuned network may see as animals beyond the bundle, per bundle animal pixel
EXTRA_MAX = 0.10
#: how much of the moving pixels' share the tuned network may lose against the bundle
MOVING_SLACK = 0.01
#: frames judged, spread over the recordings (fewer when they are large: :data:`PIXELS`)
FRAMES = 8
#: at most this many pixels judged in all (each through both networks)
PIXELS = 16 * 2**20


@dataclass
class FineTuneCheck:
    """The check's figures and verdict (see the module)."""

    frames: int
    kept: float
    extra: float
    moving_start: float | None
    moving_tuned: float | None
    accepted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frames(sources: Sequence[FrameSource]) -> list[tuple[int, int]]:
    """(source index, frame index) pairs: :data:`FRAMES` at most, spread over each recording in turn."""
    sizes = [int(np.prod(s.shape[1:3])) for s in sources]
    budget = max(len(sources), min(FRAMES, PIXELS // max(max(sizes), 1)))
    per = [max(1, budget // len(sources))] * len(sources)
    return [(i, int(t)) for i, (s, k) in enumerate(zip(sources, per))
            for t in np.unique(np.linspace(0, len(s) - 1, min(k, len(s))).round().astype(int))]


def _contrast(background: np.ndarray, frame: np.ndarray, polarity: str) -> np.ndarray:
    """How far the background departs from the frame in the animal's direction (grey, [0, 1])."""
    d = to_gray(background) - to_gray(frame)
    return d if polarity == "dark" else (-d if polarity == "bright" else np.abs(d))


def _objects(frame: np.ndarray, background: np.ndarray, polarity: str) -> np.ndarray:
    """Where ``background`` sees an animal in ``frame``: the object mask's seeds grown by
    hysteresis from the residual's noise level (:func:`vidfilter.polarity.object_mask`), neither
    closed nor dilated, so that sensor noise and specks of texture are not objects."""
    from vidfilter.polarity import object_mask

    return object_mask(to_gray(frame), to_gray(background), polarity=polarity, closing=0, dilate=0) > 0


def check_fine_tuning(start: Any, tuned: Any, sources: Sequence[FrameSource], config: Config) -> FineTuneCheck:
    """Judge bundle ``tuned`` against the bundle it was tuned from, ``start``, on ``sources`` (the
    training recordings) with ``config``'s run settings (see the module)."""
    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.scaling import to_float
    from vidfilter.temporal import temporal_statistics

    kept_num = kept_den = 0.0
    extra_px = seen_px = 0
    moving = [0, 0, 0]  # pixels, seen by start, seen by tuned
    picks = _frames(sources)
    for i, src in enumerate(sources):
        mine = [t for j, t in picks if j == i]
        if not mine:
            continue
        models = [ModelBackground(start, config), ModelBackground(tuned, config)]
        models[0].prepare(src)
        # a tuned network keeps its bundle's temporal channel: the same setup, read once
        shared = models[0].setup_state() if models[0].setup_params() == models[1].setup_params() else None
        if shared is not None:
            models[1].restore_setup(shared)
        else:
            models[1].prepare(src)
        polarity = models[0].polarity
        refined = models[0]._refinement  # its prepare read the same frames' median; not there when unrefined
        median = refined.median if refined is not None else temporal_statistics(
            src, ["median"], models[0].temporal_frames)["median"]
        for t in mine:
            frame = to_float(src[t])
            b_start, b_tuned = (m.background(t, frame) for m in models)
            seen, found = _objects(frame, b_start, polarity), _objects(frame, b_tuned, polarity)
            now = _objects(frame, median, polarity)  # against the recording's median: an animal here now, not most of the time
            c_start, c_tuned = _contrast(b_start, frame, polarity), _contrast(b_tuned, frame, polarity)
            kept_num += float(np.clip(c_start - np.clip(c_tuned, 0, None), 0, None)[seen].sum())
            kept_den += float(np.clip(c_start, 0, None)[seen].sum())
            extra_px += int(np.count_nonzero(found & ~seen & ~now))
            seen_px += int(seen.sum())
            moving[0] += int(now.sum())
            moving[1] += int((now & seen).sum())
            moving[2] += int((now & found).sum())
    kept = kept_num / kept_den if kept_den > 0 else 0.0
    extra = extra_px / max(seen_px, 1)
    m_start = moving[1] / moving[0] if moving[0] else None
    m_tuned = moving[2] / moving[0] if moving[0] else None
    reasons = []
    if kept > KEPT_MAX:
        reasons.append(f"it gives back {kept:.0%} of what the bundle removes (most {KEPT_MAX:.0%})")
    if extra > EXTRA_MAX:
        reasons.append(f"it sees {extra:.0%} more of the still plate as animals (most {EXTRA_MAX:.0%})")
    if m_start is not None and m_tuned is not None and m_tuned < m_start - MOVING_SLACK:
        reasons.append(f"it finds {m_tuned:.0%} of the moving animals' pixels against the bundle's {m_start:.0%}")
    return FineTuneCheck(frames=len(picks), kept=kept, extra=extra, moving_start=m_start, moving_tuned=m_tuned,
                         accepted=not reasons, reason="; ".join(reasons) or "no worse than the bundle on this recording")
