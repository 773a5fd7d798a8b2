"""The two-class cell generator: truth consistent with the image, classes that share one brightness
range, unevenness that scales the light, and the per-object contrast measure."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.synth.cells import make_two_class_set, object_contrasts


@pytest.mark.parametrize("case", ["shape", "texture"])
def test_truth_matches_the_image_and_is_deterministic(case):
    a = make_two_class_set(2, 256, case=case, per_class=(8, 10), seed=3)
    b = make_two_class_set(2, 256, case=case, per_class=(8, 10), seed=3)
    for img, img2, lab, inst, cls, pts in zip(a.images, b.images, a.labels, a.instances, a.classes, a.points):
        np.testing.assert_array_equal(img, img2)
        assert img.dtype == np.uint8 and img.shape == (256, 256)
        assert int(inst.max()) == len(cls) == len(pts["target"]) + len(pts["unwanted"])
        np.testing.assert_array_equal(lab, np.where(inst > 0, np.concatenate([[0], cls])[inst], 0))
        for role, code in (("target", 1), ("unwanted", 2)):
            for y, x in pts[role]:  # every point lies on its own class
                assert lab[y, x] == code
        on, off = img[inst > 0].astype(float).mean(), img[inst == 0].astype(float).mean()
        assert on > off + 20  # objects stand out from the plate on average


def test_the_classes_share_one_brightness_range():
    """Neither class is brighter: their contrasts overlap over most of their range."""
    d = make_two_class_set(4, 384, case="shape", seed=0)
    c = np.concatenate([object_contrasts(i.astype(float) / 255, n) for i, n in zip(d.images, d.instances)])
    cls = np.concatenate(d.classes)
    qa, qb = np.nanquantile(c[cls == 1], [0.1, 0.9]), np.nanquantile(c[cls == 2], [0.1, 0.9])
    overlap = min(qa[1], qb[1]) - max(qa[0], qb[0])
    assert overlap > 0.6 * min(qa[1] - qa[0], qb[1] - qb[0])


def test_unevenness_scales_the_plate_spread():
    spread = []
    for u in (1.0, 2.0, 3.0):
        d = make_two_class_set(2, 384, unevenness=u, seed=5)
        plate = np.concatenate([i[n == 0].astype(float) for i, n in zip(d.images, d.instances)])
        spread.append(np.quantile(plate, 0.95) - np.quantile(plate, 0.05))
    assert spread[0] < spread[1] < spread[2] and spread[2] > 2.0 * spread[0]


def test_object_contrast_against_a_direct_computation():
    """A flat disc on a flat plate with a neighbour: mean inside minus the plate, the neighbour's
    pixels left out of the ring."""
    img = np.full((64, 64), 0.2)
    inst = np.zeros((64, 64), np.int32)
    yy, xx = np.mgrid[:64, :64]
    inst[(yy - 32) ** 2 + (xx - 32) ** 2 <= 25] = 1
    inst[(yy - 32) ** 2 + (xx - 44) ** 2 <= 9] = 2
    img[inst == 1] = 0.5
    img[inst == 2] = 0.9
    np.testing.assert_allclose(object_contrasts(img, inst), [0.3, 0.7])
    np.testing.assert_allclose(object_contrasts(img * 0, inst), [0.0, 0.0])
