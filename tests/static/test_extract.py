"""Crop extraction (``vidfilter.static.extract``): every recipe against the generated ground truth,
the bank's layout, and the one-line errors for bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from vidfilter.config import Config
from vidfilter.errors import InputNotFoundError, OutputExistsError, TrainingInputError, UnsupportedInputError
from vidfilter.static.extract import extract_crops
from vidfilter.static.preprocess import linearise
from vidfilter.synth.lookalike import make_coculture, make_focus_set, make_histology, write_coculture, write_histology


def points_cfg(**over: object) -> Config:
    return Config().override({"static.extract.recipe": "points", "static.extract.min_area": 30, "static.extract.smooth": 1.0, **over})


def boxes_cfg(**over: object) -> Config:
    return Config().override({
        "static.preprocess.invert": True, "static.extract.recipe": "boxes", "static.extract.min_area": 20,
        "static.extract.smooth": 1.0, "static.extract.threshold_on_log": False, "static.extract.square_size": [24, 48],
        "static.extract.threshold": "local", "static.extract.local_block": 31, "static.extract.local_offset": 0.05, **over,
    })


def manifest(bank: Path) -> dict:
    return json.loads((bank / "manifest.json").read_text())


def crop_labels(man: dict, labels: list[np.ndarray], bank: Path, role: str) -> list[np.ndarray]:
    """Ground-truth labels under the object pixels of every crop of ``role``."""
    out = []
    for rec in man["crops"]:
        if rec["role"] != role:
            continue
        x0, y0, x1, y1 = rec["bbox"]
        crop = tifffile.imread(bank / rec["file"])
        out.append(labels[rec["source"]][y0:y1, x0:x1][crop > 0])
    return out


@pytest.fixture(scope="module")
def coculture(tmp_path_factory):
    root = tmp_path_factory.mktemp("coculture")
    return write_coculture(make_coculture(3, 160, debris=2, seed=3), root), root


def test_points_recipe_classes_crops_by_the_points_inside(coculture, tmp_path):
    """Ot crops lie on hepatocytes, Ou crops on fibroblasts, never on debris; crops are lossless
    linear values with zeros outside the object; manifest and contact sheet are written."""
    data, root = coculture
    s = extract_crops([root / "images"], tmp_path / "bank", points_cfg(), annotations=root / "points")
    man = manifest(tmp_path / "bank")
    assert s["targets"] >= 10 and s["unwanted"] >= 10 and s["backgrounds"] == 3
    for role, want in (("target", 1), ("unwanted", 2)):
        for labs in crop_labels(man, data.labels, tmp_path / "bank", role):
            cell = labs[labs > 0]
            assert np.mean(cell == want) > 0.9 and not np.any(labs == 3)
    rec = man["crops"][0]
    x0, y0, x1, y1 = rec["bbox"]
    crop = tifffile.imread(tmp_path / "bank" / rec["file"])
    lin = linearise(data.images[rec["source"]], Config().static.preprocess)
    assert crop.dtype == np.float32
    np.testing.assert_array_equal(crop[crop > 0], lin[y0:y1, x0:x1][crop > 0])
    assert (tmp_path / "bank" / "contact_sheet.png").is_file()
    bg = tifffile.imread(tmp_path / "bank" / "backgrounds" / "000000.tif")
    assert np.all(bg[data.labels[0] > 0] == 0)  # every cell zeroed: "fill me"
    assert man["counts"]["target"] == s["targets"] and man["sources"][0]["annotation"].endswith(".png")


def test_marks_drawn_on_the_image_give_the_same_bank(coculture, tmp_path):
    """BBBC026 ground-truth layout: marks on an RGB copy of the image, read without --annotations."""
    data, root = coculture
    write_coculture(data, tmp_path / "embedded", embedded=True)
    a = extract_crops([root / "images"], tmp_path / "a", points_cfg(), annotations=root / "points")
    b = extract_crops([tmp_path / "embedded" / "images"], tmp_path / "b", points_cfg())
    assert (a["targets"], a["unwanted"]) == (b["targets"], b["unwanted"])


def test_labels_recipe(tmp_path):
    """Components of target / unwanted label ids, border objects dropped."""
    img = np.full((64, 64), 20, np.uint8)
    lab = np.zeros((64, 64), np.uint8)
    lab[5:15, 5:15] = 1
    lab[30:40, 30:45] = 1
    lab[50:58, 10:20] = 2
    lab[0:6, 50:60] = 2  # touches the border
    img[lab > 0] = 200
    cv2.imwrite(str(tmp_path / "a.png"), img)
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "labels" / "a.png"), lab)
    cfg = Config().override({"static.extract.recipe": "labels", "static.extract.min_area": 10})
    s = extract_crops([tmp_path / "a.png"], tmp_path / "bank", cfg, annotations=tmp_path / "labels")
    assert (s["targets"], s["unwanted"], s["discarded"]) == (2, 1, 1)


@pytest.fixture(scope="module")
def histology(tmp_path_factory):
    root = tmp_path_factory.mktemp("histology")
    data = make_histology(2, 160, seed=4)
    for fmt in ("positions", "csv", "voc"):
        write_histology(data, root, box_format=fmt)
    return data, root


def test_boxes_recipe_formats_agree_and_squares_avoid_boxes(histology, tmp_path):
    """positions .txt (BBBC042), per-image CSV and VOC XML give the same crops; Ot crops lie inside
    their boxes on astrocyte pixels; Ou squares never touch a box."""
    data, root = histology
    runs = {fmt: extract_crops([root / "images"], tmp_path / fmt, boxes_cfg(), annotations=root / sub)
            for fmt, sub in (("positions", "positions"), ("csv", "boxes"), ("voc", "voc"))}
    assert len({(r["targets"], r["unwanted"]) for r in runs.values()}) == 1
    man = manifest(tmp_path / "positions")
    assert runs["positions"]["targets"] == sum(len(b) for b in data.boxes)
    for rec in man["crops"]:
        x0, y0, x1, y1 = rec["bbox"]
        boxes = data.boxes[rec["source"]]
        inside = (boxes[:, 0] <= x0) & (boxes[:, 1] <= y0) & (boxes[:, 2] >= x1) & (boxes[:, 3] >= y1)
        overlap = (boxes[:, 0] < x1) & (boxes[:, 2] > x0) & (boxes[:, 1] < y1) & (boxes[:, 3] > y0)
        assert inside.any() if rec["role"] == "target" else not overlap.any()
    for labs in crop_labels(man, data.labels, tmp_path / "positions", "target"):
        assert np.mean(labs == 1) > 0.6


def test_rgb_input_is_converted_to_the_complement_of_luma(histology, tmp_path):
    """Documented conversion: RGB -> BT.601 luma / 255 -> 1 - x (invert), kept exactly in the crops."""
    data, root = histology
    extract_crops([root / "images"], tmp_path / "bank", boxes_cfg(), annotations=root / "positions")
    rec = manifest(tmp_path / "bank")["crops"][0]
    x0, y0, x1, y1 = rec["bbox"]
    crop = tifffile.imread(tmp_path / "bank" / rec["file"])
    rgb = data.images[rec["source"]][y0:y1, x0:x1].astype(np.float64)
    expected = 1 - (rgb @ [0.299, 0.587, 0.114]) / 255
    np.testing.assert_allclose(crop[crop > 0], expected[crop > 0], atol=1e-5)


def test_focus_recipe_splits_sharp_from_blurred(tmp_path):
    """Unannotated 16-bit images: in-focus (sharp) cells become Ot, blurred ones Ou."""
    data = make_focus_set(2, 160, seed=5)
    for img, name in zip(data.images, data.names):
        tifffile.imwrite(tmp_path / f"{name}.tif", img)
    cfg = Config().override({
        "static.preprocess.log": True, "static.extract.recipe": "focus", "static.extract.threshold": "local",
        "static.extract.local_block": 61, "static.extract.local_offset": 0.02, "static.extract.min_area": 40,
        "static.extract.focus_thresholds": [0.4, 0.6],
    })
    s = extract_crops(sorted(tmp_path.glob("*.tif")), tmp_path / "bank", cfg)
    man = manifest(tmp_path / "bank")
    assert s["targets"] >= 3 and s["unwanted"] >= 3 and man["dtypes"] == ["uint16"]
    for role, want in (("target", 1), ("unwanted", 2)):
        for labs in crop_labels(man, data.labels, tmp_path / "bank", role):
            assert np.mean(labs[labs > 0] == want) > 0.9
    scores = {r["role"]: [] for r in man["crops"]}
    for r in man["crops"]:
        scores[r["role"]].append(r["focus"])
    assert min(scores["target"]) > max(scores["unwanted"])


def test_16_bit_images_scale_by_65535(tmp_path):
    """uint16 inputs: crop values are the stored counts / 65535 (documented conversion)."""
    data = write_coculture(make_coculture(2, 128, dtype=np.uint16, seed=6), tmp_path / "d")
    extract_crops([tmp_path / "d" / "images"], tmp_path / "bank", points_cfg(), annotations=tmp_path / "d" / "points")
    man = manifest(tmp_path / "bank")
    rec = man["crops"][0]
    x0, y0, x1, y1 = rec["bbox"]
    crop = tifffile.imread(tmp_path / "bank" / rec["file"])
    raw = data.images[rec["source"]][y0:y1, x0:x1]
    np.testing.assert_allclose(crop[crop > 0], raw[crop > 0] / 65535.0, rtol=1e-6)
    assert man["dtypes"] == ["uint16"] and man["log_gain"] == 65535.0


# -- bad input: one clear error each -----------------------------------------------------------


def test_annotation_naming_a_missing_image(histology, tmp_path):
    """A box file naming an image that is not among the inputs."""
    data, root = histology
    ann = tmp_path / "all.csv"
    ann.write_text("image,x0,y0,x1,y1\n1000.tif,1,1,20,20\n9999.tif,5,5,30,30\n")
    with pytest.raises(InputNotFoundError, match="9999.*not among the inputs"):
        extract_crops([root / "images" / "1000.tif"], tmp_path / "bank", boxes_cfg(), annotations=ann)
    with pytest.raises(InputNotFoundError, match="no such file"):
        extract_crops([tmp_path / "missing.png"], tmp_path / "bank", points_cfg(), annotations=root)
    assert not (tmp_path / "bank").exists()


def test_image_without_annotation(coculture, tmp_path):
    data, root = coculture
    (tmp_path / "points").mkdir()
    for f in sorted((root / "points").iterdir())[:-1]:
        (tmp_path / "points" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(InputNotFoundError, match="no annotation"):
        extract_crops([root / "images"], tmp_path / "bank", points_cfg(), annotations=tmp_path / "points")


def test_a_class_with_zero_crops(coculture, tmp_path):
    """No object holds only 'unwanted' points (colour never used) -> the error names the setting."""
    data, root = coculture
    cfg = points_cfg(**{"static.extract.unwanted_colors": [[7, 7, 250]]})
    with pytest.raises(TrainingInputError, match="no unwanted .*unwanted_colors"):
        extract_crops([root / "images"], tmp_path / "bank", cfg, annotations=root / "points")
    assert not (tmp_path / "bank").exists() and not (tmp_path / "bank.partial").exists()


def test_mixed_dtypes_and_existing_output(coculture, tmp_path):
    data, root = coculture
    img16 = (data.images[0].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "z16.png"), img16)
    (tmp_path / "pts").mkdir()
    for f in (root / "points").iterdir():
        (tmp_path / "pts" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "pts" / "z16.png").write_bytes((root / "points" / f"{data.names[0]}.png").read_bytes())
    with pytest.raises(UnsupportedInputError, match="one dtype"):
        extract_crops([root / "images", tmp_path / "z16.png"], tmp_path / "bank", points_cfg(), annotations=tmp_path / "pts")
    extract_crops([root / "images"], tmp_path / "bank", points_cfg(), annotations=root / "points")
    with pytest.raises(OutputExistsError):
        extract_crops([root / "images"], tmp_path / "bank", points_cfg(), annotations=root / "points")
    extract_crops([root / "images"], tmp_path / "bank", points_cfg(), annotations=root / "points", overwrite=True)
