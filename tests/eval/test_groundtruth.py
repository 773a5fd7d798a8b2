"""Ground truth readers: each format written in tmp_path and parsed back to edge-coordinate boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidfilter.errors import InputNotFoundError, UnreadableInputError
from vidfilter.io.annotations import (
    boxes_by_index,
    load_boxes,
    load_boxes_coco,
    load_boxes_csv,
    load_boxes_voc,
    load_boxes_yolo,
    load_mask,
    load_points_png,
)


def test_csv_worms_layout(tmp_path):
    """frame,x0,y0,x1,y1 (edge coordinates, unchanged); int frame keys; optional class column."""
    p = tmp_path / "boxes.csv"
    p.write_text("frame,x0,y0,x1,y1\n3,315.75,337.25,361.25,444.75\n3,1,2,3,4\n5,0,0,10,10\n")
    gt = load_boxes_csv(p)
    assert sorted(gt) == [3, 5]
    np.testing.assert_allclose(gt[3].boxes, [[315.75, 337.25, 361.25, 444.75], [1, 2, 3, 4]])
    assert gt[3].classes == ["object", "object"]
    inc = load_boxes_csv(p, inclusive=True)
    np.testing.assert_allclose(inc[5].boxes, [[0, 0, 11, 11]])
    q = tmp_path / "cls.csv"
    q.write_text("frame,x0,y0,x1,y1,class\na.png,0,0,1,1,hep\na.png,2,2,3,3,fib\n")
    g2 = load_boxes(q)
    assert g2["a.png"].of_class("fib").tolist() == [[2, 2, 3, 3]]
    assert boxes_by_index(gt, [3, 4])[1].shape == (0, 4)


def test_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("f,a,b\n1,2,3\n")
    with pytest.raises(UnreadableInputError, match="frame,x0,y0,x1,y1"):
        load_boxes_csv(bad)
    nan = tmp_path / "nan.csv"
    nan.write_text("frame,x0,y0,x1,y1\n1,a,2,3,4\n")
    with pytest.raises(UnreadableInputError, match="line 2"):
        load_boxes_csv(nan)
    with pytest.raises(InputNotFoundError):
        load_boxes_csv(tmp_path / "missing.csv")


def test_coco_json(tmp_path):
    """bbox [x, y, w, h] -> [x, y, x + w, y + h]; images without annotations are empty."""
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 7, "name": "worm"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 8]}],
    }
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(doc))
    gt = load_boxes_coco(p)
    assert gt["a.png"].boxes.tolist() == [[10, 5, 30, 13]]
    assert gt["a.png"].classes == ["worm"]
    assert len(gt["b.png"]) == 0
    p.write_text("{}")
    with pytest.raises(UnreadableInputError, match="COCO"):
        load_boxes_coco(p)


def test_yolo_folder(tmp_path):
    """class xc yc w h normalised, times the image size (width, height)."""
    d = tmp_path / "labels"
    d.mkdir()
    (d / "000003.txt").write_text("0 0.5 0.25 0.2 0.1\n1 0.1 0.1 0.2 0.2\n")
    (d / "000004.txt").write_text("")
    gt = load_boxes_yolo(d, (640, 480), class_names=["worm", "egg"])
    np.testing.assert_allclose(gt["000003"].boxes, [[256, 96, 384, 144], [0, 0, 128, 96]])
    assert gt["000003"].classes == ["worm", "egg"]
    assert len(gt["000004"]) == 0
    (d / "000005.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(UnreadableInputError, match="line 1"):
        load_boxes(d, image_size=(640, 480))


def test_voc_xml(tmp_path):
    """1-based inclusive pixels: xmin 1..xmax 10 covers pixels 0-9 -> [0, 10)."""
    xml = """<annotation><filename>img7.jpg</filename>
      <object><name>astrocyte</name><bndbox><xmin>1</xmin><ymin>3</ymin><xmax>10</xmax><ymax>5</ymax></bndbox></object>
      <object><name>astrocyte</name><bndbox><xmin>20</xmin><ymin>20</ymin><xmax>29</xmax><ymax>39</ymax></bndbox></object>
    </annotation>"""
    p = tmp_path / "img7.xml"
    p.write_text(xml)
    gt = load_boxes_voc(p)
    assert gt["img7"].boxes.tolist() == [[0, 2, 10, 5], [19, 19, 29, 39]]
    assert load_boxes(tmp_path)["img7"].classes == ["astrocyte", "astrocyte"]
    (tmp_path / "bad.xml").write_text("<annotation><object><bndbox><xmin>x</xmin></bndbox></object>")
    with pytest.raises(UnreadableInputError):
        load_boxes_voc(tmp_path / "bad.xml")


def test_masks_png_tiff_zarr(tmp_path):
    from PIL import Image
    import tifffile
    import zarr

    lab = np.zeros((6, 8), np.uint16)
    lab[1:3, 2:5] = 1
    lab[4:6, 6:8] = 2
    Image.fromarray((lab > 0).astype(np.uint8) * 255).save(tmp_path / "m.png")
    tifffile.imwrite(tmp_path / "m.tif", lab)
    z = zarr.open_array(str(tmp_path / "m.zarr"), mode="w", shape=lab.shape, dtype=lab.dtype)
    z[...] = lab
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), lab > 0)
    np.testing.assert_array_equal(load_mask(tmp_path / "m.tif", binary=False), lab)
    np.testing.assert_array_equal(load_mask(tmp_path / "m.zarr", binary=False), lab)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    a = g.create_array("labels", shape=lab.shape, dtype=lab.dtype)
    a[...] = lab
    np.testing.assert_array_equal(load_mask(tmp_path / "g.zarr"), lab > 0)
    np.testing.assert_array_equal(load_mask(tmp_path / "g.zarr" / "labels"), lab > 0)
    with pytest.raises(InputNotFoundError):
        load_mask(tmp_path / "nope.png")


def test_points_colour_png(tmp_path):
    """One marked pixel per object over a grey image; colours are classes."""
    from PIL import Image

    img = np.zeros((10, 12, 3), np.uint8)
    img[...] = np.arange(12, dtype=np.uint8)[None, :, None] * 10  # grey ramp, not a mark
    img[2, 3] = (255, 0, 0)
    img[7, 1] = (255, 0, 0)
    img[5, 9] = (0, 255, 0)
    Image.fromarray(img).save(tmp_path / "pts.png")
    pts = load_points_png(tmp_path / "pts.png", {"hepatocyte": (255, 0, 0), "fibroblast": (0, 255, 0), "none": (0, 0, 255)})
    assert pts == {"hepatocyte": [(2, 3), (7, 1)], "fibroblast": [(5, 9)], "none": []}
    auto = load_points_png(tmp_path / "pts.png")
    assert auto == {"#00ff00": [(5, 9)], "#ff0000": [(2, 3), (7, 1)]}
    img[2, 4] = (255, 0, 0)  # a 2-pixel dot
    Image.fromarray(img).save(tmp_path / "dots.png")
    merged = load_points_png(tmp_path / "dots.png", {"h": (255, 0, 0)}, merge=True)
    assert merged == {"h": [(2, 4), (7, 1)]}  # centroid (2, 3.5) rounds to even -> 4


def test_points_csv(tmp_path):
    """frame,x,y[,class] -> frame -> class -> [(y, x)]; bad rows and columns are one-line errors."""
    from vidfilter.io.annotations import load_points_csv

    (tmp_path / "p.csv").write_text("frame,x,y,class\n0,3,2,hep\n0,5.5,1,fib\n4,1,7,hep\n")
    assert load_points_csv(tmp_path / "p.csv") == {0: {"hep": [(2.0, 3.0)], "fib": [(1.0, 5.5)]}, 4: {"hep": [(7.0, 1.0)]}}
    (tmp_path / "q.csv").write_text("frame,x,y\n0,1,1\n")
    assert load_points_csv(tmp_path / "q.csv") == {0: {"object": [(1.0, 1.0)]}}
    (tmp_path / "bad.csv").write_text("frame,x,y\n0,a,1\n")
    with pytest.raises(UnreadableInputError, match="line 2"):
        load_points_csv(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("frame,col,row\n0,1,1\n")
    with pytest.raises(UnreadableInputError, match="frame,x,y"):
        load_points_csv(tmp_path / "cols.csv")
