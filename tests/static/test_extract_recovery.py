"""The points recipe with the shipped ``bbbc026_hepatocytes`` config on images with uneven
illumination (:mod:`vidfilter.synth.cells`): the share of annotated objects of each class that
become a crop of their class, the share of each background that is zeroed, touching objects of
the two classes, and a missing ``--annotations`` path."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage.measure import regionprops

from vidfilter.cli import main
from vidfilter.config import Config
from vidfilter.errors import InputNotFoundError
from vidfilter.static.extract import extract_crops
from vidfilter.static.recipes import extract_points
from vidfilter.synth.cells import make_two_class_set
from vidfilter.synth.lookalike import write_coculture

ROLES = {"target": 1, "unwanted": 2}


def hulls(instances: np.ndarray) -> np.ndarray:
    """Each object's convex hull labelled with its id: the object's extent even where its truth
    pixels are fragmentary (speckled objects)."""
    out = np.zeros(instances.shape, np.int32)
    for r in regionprops(instances):
        out[r.slice][r.image_convex] = r.label
    return out


def owners(man: dict, bank, shape: tuple[int, int], n: int) -> list[np.ndarray]:
    """Per image: the index + 1 of the crop covering each pixel (0: none)."""
    out = [np.zeros(shape, np.int32) for _ in range(n)]
    for j, rec in enumerate(man["crops"]):
        x0, y0, x1, y1 = rec["bbox"]
        mask = tifffile.imread(bank / rec["file"]) > 0
        out[rec["source"]][y0:y1, x0:x1][mask] = j + 1
    return out


def recovery(data, man: dict, bank) -> dict[str, float]:
    """Per class: the share of annotated points whose own object became a crop of that class
    (the crop covers the point, and most of the crop lies on the point's object). Checks on the
    way that no crop pixel lies more than 3 px off the objects (crops carry no halo)."""
    found = {role: [] for role in ROLES}
    for i, own in enumerate(owners(man, bank, data.images[0].shape, len(data.images))):
        hull = hulls(data.instances[i])
        assert ndimage.distance_transform_edt(hull == 0)[own > 0].max() <= 3
        for role in ROLES:
            for y, x in data.points[i][role]:
                j = own[y, x]
                ok = j > 0 and man["crops"][j - 1]["role"] == role and np.mean(hull[own == j] == hull[y, x]) > 0.5
                found[role].append(bool(ok))
    return {role: float(np.mean(v)) for role, v in found.items()}


@pytest.mark.parametrize("case", ["shape", "texture"])
@pytest.mark.parametrize("unevenness", [1, 3])
def test_points_recover_objects_on_uneven_backgrounds(tmp_path, case, unevenness):
    """At least 90 % of the annotated objects of each class become a crop of their class; each
    background is zeroed over about its objects' share of the image, never over large areas."""
    data = write_coculture(make_two_class_set(2, 512, case=case, unevenness=unevenness, seed=5), tmp_path / "d")
    cfg = Config.from_yaml("bbbc026_hepatocytes")
    s = extract_crops([tmp_path / "d" / "images"], tmp_path / "bank", cfg, annotations=tmp_path / "d" / "points")
    man = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    got = recovery(data, man, tmp_path / "bank")
    assert got["target"] >= 0.9 and got["unwanted"] >= 0.9, got
    for i, src in enumerate(man["sources"]):
        true = float(np.mean(hulls(data.instances[i]) > 0))
        assert true <= src["zeroed_share"] <= 1.5 * true + 0.01, (src["zeroed_share"], true)
        assert src["zeroed_share"] == s["zeroed_share"][i]
        bg = tifffile.imread(tmp_path / "bank" / "backgrounds" / f"{i:06d}.tif")
        assert np.mean(bg[data.labels[i] > 0] == 0) > 0.95  # the objects are gone from the background


def test_touching_objects_of_two_classes_are_split():
    """A round target touching an elongated unwanted object of the same brightness: one crop
    each, on its own object, instead of one mixed object that is discarded."""
    yy, xx = np.mgrid[0:96, 0:112]
    disc = (yy - 48) ** 2 + (xx - 40) ** 2 <= 8**2
    rod = ((yy - 48) / 4.0) ** 2 + ((xx - 62) / 14.0) ** 2 <= 1
    assert (disc & np.roll(rod, -1, axis=1)).any()  # they touch
    lin = np.where(disc | rod, 0.5, 0.1).astype(np.float32)
    cfg = Config.from_yaml("bbbc026_hepatocytes").static.extract
    out = extract_points(lin, {"target": [(48, 40)], "unwanted": [(48, 62)]}, cfg, 255.0)
    assert sorted(c.role for c in out.crops) == ["target", "unwanted"] and out.discarded == 0
    for c in out.crops:
        own, other = (disc, rod) if c.role == "target" else (rod, disc)
        x0, y0, x1, y1 = c.bbox
        on = np.zeros(lin.shape, bool)
        on[y0:y1, x0:x1] = c.image > 0
        assert (on & own).sum() >= 0.9 * own.sum() and (on & other).sum() <= 0.05 * own.sum()


def test_zeroed_share_is_logged(tmp_path, caplog):
    data = write_coculture(make_two_class_set(1, 256, per_class=(6, 8), seed=2), tmp_path / "d")
    with caplog.at_level(logging.INFO, logger="vidfilter.static.extract"):
        extract_crops([tmp_path / "d" / "images"], tmp_path / "bank", Config.from_yaml("bbbc026_hepatocytes"),
                      annotations=tmp_path / "d" / "points")
    assert any("of the background zeroed" in r.getMessage() and data.names[0] in r.getMessage() for r in caplog.records)


@pytest.fixture
def small_set(tmp_path):
    write_coculture(make_two_class_set(1, 128, per_class=(3, 4), seed=1), tmp_path)
    return tmp_path


def test_missing_annotations_are_named_before_the_output_is_checked(small_set):
    """The bank beside a missing annotations folder: the error names the annotations, not the output."""
    missing = small_set / "no_points"
    with pytest.raises(InputNotFoundError, match="annotations .*no_points: no such file or folder"):
        extract_crops([small_set / "images"], small_set / "bank", Config.from_yaml("bbbc026_hepatocytes"), annotations=missing)
    assert not (small_set / "bank").exists()


def test_missing_annotations_on_the_command_line(small_set, capsys):
    missing = small_set / "no_points"
    rc = main(["extract-crops", str(small_set / "images"), "--annotations", str(missing), "--config", "bbbc026_hepatocytes",
               "--out", str(small_set / "bank")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert str(missing) in err and "--annotations" in err and "input store" not in err
