"""Synthetic recordings: determinism, ground truth consistency, the median-projection scenario, video IO."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vidfilter.errors import ConfigError
from vidfilter.synth import SyntheticRecording, make_recording, write_video


def test_frame_types_and_shapes() -> None:
    """frame(t) -> uint8 frame, float32 background, bool mask; labels agree with the mask."""
    rec = make_recording(5, 64, 80, n_animals=3, n_still=1, seed=1)
    assert rec.shape == (5, 64, 80) and len(rec) == 5 and rec.dtype == np.uint8
    frame, background, mask = rec.frame(2)
    assert frame.dtype == np.uint8 and frame.shape == (64, 80)
    assert background.dtype == np.float32 and background.shape == (64, 80)
    assert mask.dtype == bool and mask.any()
    labels = rec.labels(2)
    assert labels.dtype == np.uint16
    assert np.array_equal(labels > 0, mask)
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert rec.still_labels == {3} and rec.moving_labels == {1, 2}
    assert np.array_equal(rec[2], frame)
    assert len(list(rec.frames())) == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"tracks": True, "illumination_drift": 0.1, "shift_at": 4, "shift_px": (1.5, -2)},
        {"polarity": "bright", "rim": True, "n_still": 2},
    ],
)
def test_deterministic_in_any_order(kwargs: dict) -> None:
    """Same seed -> same frames and truth, whatever order the frames are asked for."""
    a = make_recording(8, 64, 64, seed=7, **kwargs)
    b = make_recording(8, 64, 64, seed=7, **kwargs)
    forward = [a.frame(t) for t in range(8)]
    order = [5, 2, 7, 0, 3, 6, 1, 4]
    for t in order:
        got = b.frame(t)
        for x, y in zip(got, forward[t]):
            assert np.array_equal(x, y)
        assert np.array_equal(b.labels(t), a.labels(t))
    other = make_recording(8, 64, 64, seed=8, **kwargs)
    assert not np.array_equal(other[0], a[0])


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_masks_cover_the_animals(polarity: str) -> None:
    """Every pixel clearly darker (lighter) than the true background is in the mask; mask pixels contrast."""
    rec = make_recording(6, 96, 96, polarity=polarity, n_animals=5, noise_sigma=2.0, seed=2)
    sign = -1 if polarity == "dark" else 1
    for t in (0, 3, 5):
        frame, background, mask = rec.frame(t)
        diff = sign * (frame.astype(np.float32) - background)
        clearly = diff > rec.params.mask_threshold + 5 * rec.params.noise_sigma
        assert clearly.any()
        assert not (clearly & ~mask).any()
        assert diff[mask].mean() > 20
        assert np.abs(diff[~mask]).mean() < 3  # outside animals: noise only
    plate = rec.frame(0).background
    if polarity == "dark":
        assert 140 < np.median(plate) < 230
    else:
        assert np.median(plate) < 90


def test_animals_are_worm_sized() -> None:
    """At 512^2 bodies are ~82 px long and 4-8 px thick (mask area / length)."""
    rec = make_recording(1, 512, 512, n_animals=4, seed=4)
    labels = rec.labels(0)
    lines = rec.centrelines(0)
    for k, line in enumerate(lines, start=1):
        length = np.hypot(*np.diff(line, axis=0).T).sum()
        assert 60 < length < 110
        thickness = (labels == k).sum() / length
        assert 3.0 < thickness < 8.0


def test_still_animals_barely_move_and_others_crawl() -> None:
    """Still animals move <= 1 px over the recording; moving ones crawl a few px per frame."""
    rec = make_recording(30, 128, 128, n_animals=5, n_still=2, seed=5)
    first, last = rec.centrelines(0), rec.centrelines(29)
    for k in rec.still_labels:
        assert np.abs(last[k - 1] - first[k - 1]).max() <= 1.0
        m0, m1 = rec.labels(0) == k, rec.labels(29) == k
        assert (m0 & m1).sum() / (m0 | m1).sum() > 0.8
    for k in rec.moving_labels:
        head_travel = np.hypot(*(last[k - 1][-1] - first[k - 1][-1]))
        assert head_travel > 15
    # consecutive frames: a moving head advances by about the speed (0.7-1.3 x 2 px)
    step = [np.hypot(*(rec.centrelines(11)[k - 1][-1] - rec.centrelines(10)[k - 1][-1])) for k in rec.moving_labels]
    assert all(1.0 < s < 3.0 for s in step)


def test_background_constant_without_drift_or_shift() -> None:
    rec = make_recording(10, 64, 64, seed=6)
    bg0 = rec.frame(0).background
    for t in (3, 9):
        assert np.array_equal(rec.frame(t).background, bg0)


def test_illumination_drift_scales_background() -> None:
    rec = make_recording(20, 64, 64, illumination_drift=0.1, seed=6)
    bg0 = rec.frame(0).background
    bg5 = rec.frame(5).background  # quarter period: gain 1.1
    assert rec.gain(5) == pytest.approx(1.1)
    np.testing.assert_allclose(bg5, bg0 * 1.1, rtol=1e-5)


def test_camera_shift_moves_background() -> None:
    """From shift_at on, the true background is the earlier one moved by shift_px."""
    dy, dx = 2, -3
    rec = make_recording(10, 64, 72, shift_at=5, shift_px=(dy, dx), vignette=0.0, seed=9)
    before, after = rec.frame(4).background, rec.frame(5).background
    assert np.array_equal(rec.frame(0).background, before)
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after[dy:, : dx or None], before[:-dy, -dx:])
    assert rec.offset(4) == (0.0, 0.0) and rec.offset(9) == (2.0, -3.0)
    # animals move with the scene: a still animal's mask moves by the shift too
    still = make_recording(10, 64, 72, n_animals=1, n_still=1, shift_at=5, shift_px=(dy, dx), seed=9)
    np.testing.assert_allclose((still.centrelines(5)[0] - still.centrelines(4)[0]).mean(axis=0), [dy, dx], atol=0.1)


def test_tracks_change_background_over_time() -> None:
    """Trails accumulate: the background only darkens, by at most trail_depth, where animals went."""
    rec = make_recording(30, 96, 96, tracks=True, n_animals=3, vignette=0.0, seed=10)
    bg0, bg_end = rec.frame(0).background, rec.frame(29).background
    change = bg0 - bg_end
    assert change.min() >= -1e-4
    assert change.max() <= rec.params.trail_depth + 1e-4
    assert (change > 1).sum() > 50
    plain = make_recording(30, 96, 96, tracks=False, n_animals=3, vignette=0.0, seed=10)
    assert np.array_equal(plain.frame(29).background, plain.frame(0).background)


def test_median_projection_keeps_still_animals_and_removes_moving_ones() -> None:
    """The paper's scenario: a median background keeps immobile animals, drops crawling ones."""
    rec = make_recording(48, 128, 128, n_animals=6, n_still=2, noise_sigma=2.0, seed=11)
    median = np.median(np.stack([f for f in rec.frames()]), axis=0)
    truth = rec.frame(0).background
    labels = rec.labels(0)
    still = np.isin(labels, list(rec.still_labels))
    moving = np.isin(labels, list(rec.moving_labels))
    assert still.sum() > 50 and moving.sum() > 100
    error = truth - median  # > 0 where the median still holds a dark animal
    assert error[still].mean() > 20  # still animals stay in the median background
    assert np.abs(error[moving]).mean() < 5  # moving animals are gone from it
    assert np.abs(error[labels == 0]).mean() < 2


def test_write_h264_and_read_back(tmp_path: Path) -> None:
    """An H.264 MP4 has every frame, and frames are close to the originals (mean abs error < 3)."""
    rec = make_recording(12, 64, 96, n_animals=3, seed=12)
    path = write_video(tmp_path / "rec.mp4", rec, codec="libx264", crf=18)
    assert path.exists() and not list(tmp_path.glob(".*partial"))
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
        rate = container.streams.video[0].average_rate
    assert len(decoded) == 12
    assert rate == 25
    for t, got in enumerate(decoded):
        assert got.shape == (64, 96)
        assert np.abs(got.astype(np.float32) - rec[t]).mean() < 3


def test_write_ffv1_is_lossless(tmp_path: Path) -> None:
    rec = make_recording(4, 33, 47, n_animals=2, seed=13)
    path = write_video(tmp_path / "rec.mkv", rec, codec="ffv1")
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(decoded) == 4
    for t, got in enumerate(decoded):
        assert np.array_equal(got, rec[t])


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="polarity"):
        make_recording(2, 32, 32, polarity="grey")
    with pytest.raises(ConfigError, match="n_still"):
        make_recording(2, 32, 32, n_animals=2, n_still=3)
    with pytest.raises(ConfigError, match="even"):
        write_video(tmp_path / "odd.mp4", make_recording(2, 33, 32), codec="libx264")
    with pytest.raises(ConfigError, match="mp4"):
        write_video(tmp_path / "x.gif", make_recording(2, 32, 32))
    with pytest.raises(IndexError):
        make_recording(2, 32, 32).frame(2)
    assert isinstance(make_recording(2, 32, 32), SyntheticRecording)


def test_open_field_arena_wall_and_surround() -> None:
    """``wall`` draws floor | dark wall | surround (here brighter than the floor); the animals stay on
    the floor; ``wall=0`` keeps the plate look (everything outside the rim dark)."""
    n, side = 4, 256
    rec = SyntheticRecording(n, side, side, n_animals=2, rim=True, wall=40, surround=1.3, vignette=0.0,
                             texture=2.0, noise_sigma=0.0, seed=3)
    bg = rec.frame(0).background
    yy, xx = np.mgrid[0:side, 0:side]
    r = np.hypot(yy - (side - 1) / 2, xx - (side - 1) / 2)
    radius = 0.47 * side
    floor, wall, outside = bg[r < radius - 8], bg[(r > radius + 8) & (r < radius + 32)], bg[r > radius + 48]
    assert 180 < np.median(floor) < 200
    assert np.median(wall) < 0.4 * np.median(floor)
    assert np.median(outside) > 1.15 * np.median(floor) and outside.std() > 5  # folds
    for t in range(n):
        assert not rec.frame(t).mask[r > radius].any()
    plate = SyntheticRecording(1, side, side, n_animals=1, rim=True, vignette=0.0, noise_sigma=0.0, seed=3)
    assert np.median(plate.frame(0).background[r > radius + 48]) < 0.4 * np.median(floor)


def test_arena_geometry_levels_and_ragged_surround() -> None:
    """``arena_radius`` / ``arena_offset`` move the rim (and the animals stay inside it), ``level`` and
    ``wall_level`` set the floor and wall, and ``surround_edge`` makes the wall/surround border ragged
    (its radius varies around the arena) without touching the floor; the defaults draw the same arena."""
    n, h, w = 6, 240, 320
    kw = dict(n_animals=2, rim=True, wall=50, surround=1.3, vignette=0.0, texture=2.0, noise_sigma=0.0, seed=5)
    rec = SyntheticRecording(n, h, w, arena_radius=0.3, arena_offset=(0.05, -0.1), level=150, wall_level=0.2,
                             surround_edge=30, **kw)
    cy, cx = (h - 1) / 2 + 0.05 * h, (w - 1) / 2 - 0.1 * w
    radius = 0.3 * h
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - cy, xx - cx)
    bg = rec.frame(0).background
    assert 145 < np.median(bg[r < radius - 6]) < 155
    assert 25 < np.median(bg[(r > radius + 6) & (r < radius + 14)]) < 35  # 0.2 x 150
    for t in range(n):
        m = rec.frame(t).mask
        assert m.any() and not m[r > radius].any()
    # ragged border: along the ray of each angle, where the surround (> floor level) starts varies
    starts = []
    for a in np.linspace(0, 2 * np.pi, 48, endpoint=False):
        d = np.arange(radius + 2, radius + 110)
        y, x = np.rint(cy + d * np.sin(a)).astype(int), np.rint(cx + d * np.cos(a)).astype(int)
        ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        hit = np.nonzero(bg[y[ok], x[ok]] > 150)[0]
        if hit.size:
            starts.append(d[ok][hit[0]] - radius)
    assert len(starts) > 10 and np.ptp(starts) > 20, starts
    smooth = SyntheticRecording(1, h, w, arena_radius=0.3, arena_offset=(0.05, -0.1), level=150, wall_level=0.2, **kw)
    assert np.allclose(smooth.frame(0).background[r < radius - 10], bg[r < radius - 10], atol=0.01)
    default = SyntheticRecording(1, h, w, **kw).frame(0).background
    same = SyntheticRecording(1, h, w, arena_radius=0.47, level=190.0, wall_level=0.3, surround_edge=0, **kw)
    assert np.array_equal(same.frame(0).background, default)
    with pytest.raises(ConfigError, match="arena_radius"):
        SyntheticRecording(1, h, w, arena_radius=2.0)


def test_edge_softness_sets_the_width_of_the_wall_edge() -> None:
    """The 10-90 % rise of the floor/wall edge is ~4.4 x ``edge_softness`` px (a logistic); real walls
    imaged in focus are sharper than the default 1.5."""
    side = 300
    kw = dict(n_animals=1, rim=True, arena_radius=0.3, wall=40, surround=1.3, vignette=0.0, texture=0.0, noise_sigma=0.0, seed=2)
    widths = []
    for soft in (0.4, 2.0):
        bg = SyntheticRecording(1, side, side, edge_softness=soft, **kw).frame(0).background
        row = bg[side // 2, side // 2:].astype(np.float64)  # centre -> right: floor, then the wall edge
        near = row[int(0.3 * side) - 15:int(0.3 * side) + 16]  # the floor/wall edge only, not wall/surround
        frac = (near - near[-1]) / (near[0] - near[-1])
        widths.append(np.sum((frac > 0.1) & (frac < 0.9)))
    assert widths[0] <= 3 and 7 <= widths[1] <= 11, widths
    with pytest.raises(ConfigError, match="edge_softness"):
        SyntheticRecording(1, 32, 32, edge_softness=0)


def test_edge_gap_lets_animals_walk_along_the_wall_without_crossing_it():
    """``edge_gap`` about half a body width: animals reach the floor's edge and slide along it (a
    rodent resting against the wall), never into the wall; by default they keep well clear."""
    from vidfilter.synth import SyntheticRecording

    kw = dict(n_animals=3, rim=True, wall=30.0, arena_radius=0.45, animal_length=40.0, animal_width=14.0, speed=3.0,
              noise_sigma=0.0, seed=4)
    radius, centre = 0.45 * 160, np.array([79.5, 79.5])
    yy, xx = np.mgrid[0:160, 0:160]
    dist = np.hypot(yy - centre[0], xx - centre[1])

    def reach(rec: SyntheticRecording) -> float:
        return max(float(dist[rec.frame(t).mask].max()) for t in range(0, 40, 3))

    hugging = reach(SyntheticRecording(40, 160, 160, edge_gap=7.0, **kw))
    clear = reach(SyntheticRecording(40, 160, 160, **kw))
    assert radius - 3 <= hugging <= radius + 1, hugging  # touches the edge, does not enter the wall
    assert clear < radius - 10, clear
    with pytest.raises(ConfigError, match="edge_gap"):
        SyntheticRecording(4, 32, 32, edge_gap=-1.0)
