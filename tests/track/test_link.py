"""Linking: the generated scene's identities are recovered; the table's columns and numbering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import track_scene
from vidfilter.errors import ConfigError
from vidfilter.track.link import link, track_masks
from vidfilter.track.objects import COLUMNS


@pytest.fixture(scope="module")
def scene():
    """The scene without the crossing pair (its identities are a motion model's guess, not a linker's)."""
    centres = track_scene.paths()[:, 2:]
    masks, imgs = zip(*track_scene.frames(centres))
    return centres, masks, imgs


def test_every_true_trajectory_is_one_track(scene):
    centres, masks, imgs = scene
    df = track_masks(iter(masks), iter(imgs))
    ids = track_scene.match(df, centres)
    cover, switches = track_scene.identity_scores(ids, centres)
    assert df["track_id"].nunique() == centres.shape[1]  # touching pair, pause, still, leave
    assert switches == 0
    assert cover.min() >= 0.95, cover
    # each disc's majority track is its own: no two discs share one
    majority = [np.bincount(ids[ids[:, k] >= 0, k]).argmax() for k in range(centres.shape[1])]
    assert len(set(majority)) == len(majority)


def test_a_short_memory_loses_the_touching_pair(scene):
    """The test above can fail: with a memory shorter than the contact the pair is not re-linked."""
    centres, masks, imgs = scene
    df = track_masks(masks, imgs, max_gap=2)
    cover, _ = track_scene.identity_scores(track_scene.match(df, centres), centres)
    assert df["track_id"].nunique() > centres.shape[1]
    assert cover[:2].min() < 0.95


def test_columns_numbering_and_intensity(scene):
    centres, masks, imgs = scene
    df = track_masks(masks, imgs)
    assert tuple(df.columns) == COLUMNS
    assert df["track_id"].min() == 1
    firsts = df.groupby("track_id")["frame"].min()
    assert firsts.is_monotonic_increasing  # numbered in order of first appearance
    still = df[df["track_id"] == df.loc[(df["y"] - 140).abs().lt(1) & (df["x"] - 30).abs().lt(1), "track_id"].iloc[0]]
    assert len(still) == len(masks)
    assert still["mean_intensity"].eq(60 + 20 * 3).all()  # disc 3 of the scene without the crossing pair
    assert still["area"].nunique() == 1
    no_img = track_masks(masks)
    assert no_img["mean_intensity"].isna().all()
    assert no_img["track_id"].tolist() == df["track_id"].tolist()


def test_empty_and_single_frame():
    empty = track_masks([np.zeros((8, 8), bool)] * 3)
    assert tuple(empty.columns) == COLUMNS and len(empty) == 0
    one = np.zeros((30, 30), bool)
    one[10:20, 10:20] = True
    df = track_masks([one], min_area=10)
    assert df["track_id"].tolist() == [1] and df["area"].tolist() == [100]


def test_max_distance_splits_a_jump():
    a = np.zeros((40, 100), bool)
    b = np.zeros((40, 100), bool)
    a[10:20, 10:20] = True
    b[10:20, 60:70] = True  # 50 px away
    assert track_masks([a, b], min_area=10, max_distance=60)["track_id"].nunique() == 1
    assert track_masks([a, b], min_area=10, max_distance=30)["track_id"].nunique() == 2


def test_bad_settings():
    with pytest.raises(ConfigError, match="max_distance"):
        track_masks([np.zeros((4, 4))], max_distance=0)
    with pytest.raises(ConfigError, match="max_gap"):
        track_masks([np.zeros((4, 4))], max_gap=-1)
    with pytest.raises(ConfigError, match="min_area"):
        track_masks([np.zeros((4, 4))], min_area=0)
    with pytest.raises(ConfigError, match="max_distance"):
        link(pd.DataFrame({"frame": [0], "y": [1.0], "x": [1.0]}), max_distance=-1)


def test_linking_is_repeatable(scene):
    """The same objects give the same tracks on every call (trackpy's sets otherwise follow memory addresses)."""
    _, masks, imgs = scene
    ids = [track_masks(masks, imgs)["track_id"].tolist() for _ in range(6)]
    assert all(i == ids[0] for i in ids[1:])
    assert track_masks(masks)["track_id"].tolist() == ids[0]
