"""`vidfilter eval` (vidfilter/eval/evaluate.py) against hand-computed scores.

The scene: three 20x30 frames of a plate at 150 grey levels, each with one dark 5x8 block (40 px)
at 60 grey levels in a different place; the true background is the plain plate. Every count
below is worked out by hand from that layout.
"""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage
import pytest
from PIL import Image

from vidfilter.cli import main
from vidfilter.errors import ConfigError
from vidfilter.eval.evaluate import evaluate, parse_frames

H, W = 20, 30
BLOCKS = [(2, 3), (10, 15), (4, 20)]  # (row, col) of each frame's 5x8 block


def _block(r: int, c: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r : r + 5, c : c + 8] = True
    return m


@pytest.fixture()
def scene(tmp_path):
    """Frames as PNGs named by frame number 5, 6, 7; the plate as a background PNG; exact masks."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, (r, c) in enumerate(BLOCKS):
        f = np.full((H, W), 150, np.uint8)
        f[_block(r, c)] = 60
        Image.fromarray(f).save(frames / f"{5 + i:06d}.png")
    Image.fromarray(np.full((H, W), 150, np.uint8)).save(tmp_path / "plate.png")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, (r, c) in enumerate(BLOCKS):
        m = _block(r, c)
        if i == 2:
            m[0, 0:4] = True  # 4 labelled pixels the prediction cannot find: FN 4
        Image.fromarray(m.astype(np.uint8) * 255).save(masks / f"{5 + i:06d}.png")
    # one true box per frame (exact), plus a second one in frame 6 nothing covers
    (tmp_path / "boxes.csv").write_text(
        "frame,x0,y0,x1,y1\n5,3,2,11,7\n6,15,10,23,15\n6,0,0,2,2\n7,20,4,28,9\n"
    )
    # one point inside each block, and one on the empty plate of frame 7
    (tmp_path / "points.csv").write_text("frame,x,y,class\n5,5,4,a\n6,16,11,a\n7,21,5,a\n7,1,18,b\n")
    return tmp_path


def test_background_against_masks_boxes_points(scene):
    """Pixel: TP 120, FP 0, FN 4 -> P 1, R 120/124, IoU 120/124. Boxes: TP 3, FN 1 -> R 3/4.
    Points: all three objects hold a point (P 1), 3 of 4 points covered (R 3/4)."""
    r = evaluate(scene / "plate.png", input=scene / "frames", masks=scene / "masks", boxes=scene / "boxes.csv",
                 points=scene / "points.csv", min_area=10)
    assert (r.pixel.tp, r.pixel.fp, r.pixel.fn) == (120, 0, 4)
    assert r.pixel.precision == 1.0 and r.pixel.iou == pytest.approx(120 / 124)
    assert (r.box.tp, r.box.fp, r.box.fn) == (3, 0, 1)
    assert r.box.recall == pytest.approx(0.75) and r.box.f1 == pytest.approx(6 / 7)
    assert r.point.precision == 1.0 and r.point.recall == pytest.approx(0.75)
    assert r.n_frames == 3 and r.flagged == pytest.approx(40 / (H * W))
    # only class "a": every point covered
    ra = evaluate(scene / "plate.png", input=scene / "frames", points=scene / "points.csv", point_class="a", min_area=10)
    assert ra.point.recall == 1.0


def test_polarity_and_threshold(scene):
    """The blocks are 90 levels darker: 'bright' finds nothing (P = R = 0 against the boxes), a
    threshold of 90 finds nothing (exactly 90 is not > 90), 89 finds them all."""
    bright = evaluate(scene / "plate.png", input=scene / "frames", boxes=scene / "boxes.csv", polarity="bright", min_area=10)
    assert (bright.box.tp, bright.box.fn) == (0, 4) and bright.box.f1 == 0.0
    assert evaluate(scene / "plate.png", input=scene / "frames", masks=scene / "masks", threshold=90).pixel.tp == 0
    assert evaluate(scene / "plate.png", input=scene / "frames", masks=scene / "masks", threshold=89).pixel.tp == 120


def test_otsu_mask_method(scene):
    """The foreground is 0 or 90: Otsu (no smoothing) separates them exactly."""
    r = evaluate(scene / "plate.png", input=scene / "frames", masks=scene / "masks", mask_method="otsu", sigma=0)
    assert (r.pixel.tp, r.pixel.fp) == (120, 0)


def test_frame_subset_and_keys_by_index(scene, tmp_path):
    """--frames 1:3 scores frames 6 and 7 only; a CSV keyed 0..2 matches by index when no file name matches."""
    r = evaluate(scene / "plate.png", input=scene / "frames", boxes=scene / "boxes.csv", frames="1:3", min_area=10)
    assert (r.box.tp, r.box.fn) == (2, 1) and r.frames_scored == {"box": 2}
    by_index = tmp_path / "idx.csv"
    by_index.write_text("frame,x0,y0,x1,y1\n0,3,2,11,7\n2,20,4,28,9\n")
    r2 = evaluate(scene / "plate.png", input=scene / "frames", boxes=by_index, min_area=10)
    # frame 1 has no row: no objects there, so its block is a false positive
    assert (r2.box.tp, r2.box.fp, r2.box.fn) == (2, 1, 0)
    assert parse_frames("2", 5) == [2] and parse_frames("::2", 5) == [0, 2, 4] and parse_frames(None, 2) == [0, 1]


def test_empty_prediction_and_empty_truth(scene, tmp_path):
    """Frames equal to the background: nothing flagged. Against empty masks and no boxes: P = R = F1 = 1;
    against the real masks: P = R = 0."""
    empty, nomask = tmp_path / "empty", tmp_path / "nomask"
    empty.mkdir()
    nomask.mkdir()
    plate = np.full((H, W), 150, np.uint8)
    for i in range(3):
        Image.fromarray(plate).save(empty / f"{i:06d}.png")
        Image.fromarray(np.zeros((H, W), np.uint8)).save(nomask / f"{i:06d}.png")
    (tmp_path / "nobox.csv").write_text("frame,x0,y0,x1,y1\n")
    both = evaluate(scene / "plate.png", input=empty, masks=nomask, boxes=tmp_path / "nobox.csv")
    assert both.pixel.f1 == 1.0 and both.pixel.iou == 1.0 and both.box.f1 == 1.0 and both.flagged == 0.0
    miss = evaluate(scene / "plate.png", input=empty, masks=scene / "masks")
    assert (miss.pixel.precision, miss.pixel.recall, miss.pixel.f1) == (0.0, 0.0, 0.0)


def test_output_store_fixed_and_stored_mask(scene, tmp_path):
    """A median run (3 frames, blocks never overlap: the median is the plate) scored from its
    stored foreground and from its stored mask gives the hand-computed pixel counts."""
    from vidfilter.config import Config
    from vidfilter.infer.pipeline import run

    cfg = Config().override({"output.polarity": "dark", "output.mask": True})
    run(str(scene / "frames"), tmp_path / "out.zarr", method="median", config=cfg)
    for method in ("fixed", "stored", "noise"):
        r = evaluate(tmp_path / "out.zarr", masks=scene / "masks", boxes=scene / "boxes.csv", mask_method=method, min_area=10)
        assert (r.pixel.tp, r.pixel.fp, r.pixel.fn) == (120, 0, 4), method
        assert r.box.tp == 3 and r.input is not None
    # the object mask finds the same object pixels; its closing and 2-px dilation (sized for worms at
    # 640², far larger than this scene's blocks) add a margin around them, and nothing elsewhere
    obj = evaluate(tmp_path / "out.zarr", masks=scene / "masks", mask_method="object")
    assert (obj.pixel.tp, obj.pixel.fn) == (120, 4) and obj.pixel.fp > 0, obj
    from vidfilter.polarity import object_mask
    from vidfilter.io.registry import open as vf_open

    frames, bg = vf_open(str(scene / "frames")), vf_open(f"{tmp_path / 'out.zarr'}/background")
    truth = np.asarray(Image.open(sorted((scene / "masks").iterdir())[0])) > 0
    near = ndimage.binary_dilation(truth, iterations=8)
    assert not (object_mask(frames[0], bg[0], polarity="dark") & ~near).any()
    # "bright" differs from the run's polarity: recomputed from the recorded input frames
    assert evaluate(tmp_path / "out.zarr", masks=scene / "masks", polarity="bright").pixel.tp == 0


def test_cli_table_json_and_one_line_errors(scene, tmp_path, capsys):
    out = tmp_path / "scores.json"
    rc = main(["eval", str(scene / "plate.png"), "--input", str(scene / "frames"), "--masks", str(scene / "masks"),
               "--boxes", str(scene / "boxes.csv"), "--min-area", "10", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| pixel | 1.000 | 0.968 |" in text and "| objects (boxes) | 1.000 | 0.750 |" in text
    d = json.loads(out.read_text())
    assert d["pixel"]["tp"] == 120 and d["box"]["fn"] == 1 and d["point"] is None

    bad = [
        (["eval", str(scene / "plate.png"), "--masks", str(scene / "masks")], "--input"),
        (["eval", str(scene / "plate.png"), "--input", str(scene / "frames")], "nothing to score"),
        (["eval", str(tmp_path / "nope.zarr"), "--masks", str(scene / "masks")], "no such file"),
        (["eval", str(scene / "plate.png"), "--input", str(scene / "frames"), "--masks", str(scene / "plate.png")], "1 ground-truth masks for 3 frames"),
        (["eval", str(scene / "plate.png"), "--input", str(scene / "frames"), "--points", str(scene / "frames" / "000005.png")], "point PNG"),
        (["eval", str(scene / "plate.png"), "--input", str(scene / "frames"), "--boxes", str(scene / "boxes.csv"), "--box-class", "cat"], "no boxes of class"),
    ]
    for argv, words in bad:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err


def test_name_keys_not_matching_is_an_error(scene, tmp_path):
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "other.png"}], "annotations": [], "categories": []}))
    with pytest.raises(ConfigError, match="no box key matches a frame"):
        evaluate(scene / "plate.png", input=scene / "frames", boxes=coco)
