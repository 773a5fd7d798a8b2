"""score_recording's per-group scores (still vs moving animals) on a hand-built recording."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.eval.score import score_recording
from vidfilter.synth import SyntheticFrame


class _Rec:
    """Two 30x40 frames, plate 200; animal 1 (moving) a 6x10 block at 100, animal 2 (still) a 6x10
    block at 100 in the same place in both frames."""

    still_labels = frozenset({2})
    moving_labels = frozenset({1})
    fps = 25.0

    def __init__(self) -> None:
        self.lab = []
        for t in range(2):
            lab = np.zeros((30, 40), np.uint16)
            lab[2:8, 3 + 20 * t : 13 + 20 * t] = 1
            lab[20:26, 5:15] = 2
            self.lab.append(lab)
        self.shape = (2, 30, 40)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return 2

    def labels(self, t: int) -> np.ndarray:
        return self.lab[t]

    def frame(self, t: int) -> SyntheticFrame:
        f = np.where(self.lab[t] > 0, 100, 200).astype(np.uint8)
        return SyntheticFrame(f, np.full(f.shape, 200, np.float32), self.lab[t] > 0)

    def __getitem__(self, t: int) -> np.ndarray:
        return self.frame(t).frame


def test_still_and_moving_scores_hand_computed():
    """A background that keeps the still animal (a median would): the moving animal is found in
    both frames, the still one in neither. Box: TP 2, FN 2 (the still ones); still box recall 0,
    moving 1; pixel recall 120 / 240."""
    rec = _Rec()
    keeps_still = np.full((30, 40), 200 / 255, np.float32)
    keeps_still[20:26, 5:15] = 100 / 255
    r = score_recording(rec, [keeps_still, keeps_still], polarity="dark", min_area=20)
    assert (r.box.tp, r.box.fp, r.box.fn) == (2, 0, 2)
    assert r.still_box_recall == 0.0 and r.moving_box_recall == 1.0
    assert r.still_recall == 0.0 and r.moving_recall == 1.0
    assert (r.pixel.tp, r.pixel.fn) == (120, 120) and r.still_pixels == 0.0
    plate = np.full((30, 40), 200 / 255, np.float32)
    r2 = score_recording(rec, [plate, plate], polarity="dark", min_area=20)
    assert r2.still_box_recall == 1.0 and r2.box.f1 == 1.0 and r2.pixel.iou == pytest.approx(1.0)


def test_named_mask_functions_score_each_background_once():
    """A mapping of mask functions gives one result per name from one pass over the backgrounds."""
    rec = _Rec()
    plate = np.full((30, 40), 200 / 255, np.float32)
    seen = []

    def backgrounds():
        for t in range(2):
            seen.append(t)
            yield plate

    out = score_recording(rec, backgrounds(), polarity="dark", min_area=20,
                          mask_fn={"all": lambda f, b: np.ones(f.shape, bool), "none": lambda f, b: np.zeros(f.shape, bool)})
    assert seen == [0, 1]
    assert out["all"].pixel.recall == 1.0 and out["all"].pixel.precision == pytest.approx(240 / 2400)
    assert out["none"].pixel.recall == 0.0 and out["none"].box.f1 == 0.0 and out["none"].still_recall == 0.0
