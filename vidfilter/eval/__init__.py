"""vidfilter.eval: the paper's scores, foreground masks and ground truth readers (baselines: :mod:`vidfilter.baselines`).

- ``metrics.py``: pooled pixel P/R/F1/IoU (:class:`PixelScore`), components -> boxes
  (:func:`mask_to_boxes`), Hungarian box matching on 1/IoU (:func:`match_boxes`, :class:`BoxScore`),
  point-in-object scoring (:class:`PointScore`), Z'-factor and Welch's t-test.
- ``masks.py``: foreground masks beside the fixed threshold of :mod:`vidfilter.polarity`: Otsu,
  and a threshold chosen from the residual noise level (:func:`noise_mask`).
- annotation readers (:mod:`vidfilter.io.annotations`): boxes from CSV / COCO JSON / YOLO txt / Pascal VOC XML, masks from
  PNG / TIFF / Zarr, points from a colour-coded PNG.
- ``evaluate.py``: ``vidfilter eval``: score an output store or a background against ground-truth
  masks, boxes or points (:func:`evaluate`, :class:`EvalReport`).
- ``score.py``: score a recording's backgrounds (real data with boxes, synthetic recordings with
  exact masks and still / moving animals).
- ``objects.py``: static mode: objects of a filtered image (Otsu, watershed), point-in-object
  counts, and the paper's BBBC026 / BBBC042 scores (:class:`StaticScore`).
"""

from __future__ import annotations

from vidfilter.eval.evaluate import EvalReport, evaluate
from vidfilter.eval.masks import noise_mask, noise_threshold, otsu_foreground_mask, otsu_mask
from vidfilter.eval.metrics import (BoxMatch, BoxScore, PixelScore, PointScore, Scores, box_iou, mask_to_boxes, match_boxes, prf,
                                    welch_t_test, z_prime)
from vidfilter.eval.score import estimator_backgrounds, score_backgrounds, score_recording
from vidfilter.io.annotations import (FrameBoxes, boxes_by_index, load_boxes, load_boxes_coco, load_boxes_csv, load_boxes_voc,
                                      load_boxes_yolo, load_mask, load_points_csv, load_points_png)
from vidfilter.polarity import clean_mask, foreground, residual_noise, threshold_mask

__all__ = ["BoxMatch", "BoxScore", "EvalReport", "FrameBoxes", "PixelScore", "PointScore", "Scores",
    "box_iou", "boxes_by_index", "clean_mask", "estimator_backgrounds", "evaluate", "foreground",
    "load_boxes", "load_boxes_coco", "load_boxes_csv", "load_boxes_voc", "load_boxes_yolo", "load_mask",
    "load_points_csv", "load_points_png", "mask_to_boxes", "match_boxes", "noise_mask", "noise_threshold",
    "otsu_foreground_mask", "otsu_mask", "prf", "residual_noise", "score_backgrounds", "score_recording",
    "threshold_mask", "welch_t_test", "z_prime"]
