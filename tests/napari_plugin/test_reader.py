"""The napari reader: which layers an output store, a recording and a tracks table give, and that
every image is lazy, equal frame for frame to ``vidfilter.open``, with contrast limits from a few frames."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

import dask.array as da  # noqa: E402

import vidfilter  # noqa: E402
from vidfilter.io.source import FrameSource  # noqa: E402
from vidfilter.napari_plugin import layers as L  # noqa: E402
from vidfilter.napari_plugin.reader import get_reader, get_tracks_reader  # noqa: E402
from vidfilter.napari_plugin.widgets import add_layers  # noqa: E402

FRAMES = (0, 7, 13, 39)


def _expected_limits(src: FrameSource) -> list[float]:
    picks = sorted({int(round(t)) for t in np.linspace(0, len(src) - 1, num=min(L.SAMPLE_FRAMES, len(src)))})
    frames = np.stack([src[t] for t in picks])
    return [float(frames.min()), float(frames.max())]


def _track_table(n_tracks: int = 3, n_frames: int = 5) -> dict[str, np.ndarray]:
    """Rows in frame order (not track order), as a tracker writes them."""
    rows = [(t, k, 10.0 + k + t, 20.0 + 2 * k - t, 30 + k, 1, 2, 3, 4, 0.5 * k) for t in range(n_frames) for k in range(1, n_tracks + 1)]
    cols = np.array(rows, dtype=np.float64).T
    return {name: (cols[i].astype(np.int64) if name not in ("y", "x", "mean_intensity") else cols[i])
            for i, name in enumerate(L.TRACK_COLUMNS)}


def _write_csv(path: Path, cols: dict[str, np.ndarray]) -> Path:
    names = list(cols)
    lines = [",".join(names)] + [",".join(str(cols[n][i]) for n in names) for i in range(len(cols["frame"]))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_store_layers_in_order_lazy_and_equal_to_vidfilter_open(store, clip, viewer):
    reader = get_reader(str(store))
    assert reader is not None
    items = reader(str(store))
    assert [(k["name"], kind) for _, k, kind in items] == [
        ("clip input", "image"), ("clip background", "image"), ("clip foreground", "image"), ("clip mask", "labels")]
    sources = [vidfilter.open(str(clip))] + [vidfilter.open(str(store / g), color="keep") for g in L.IMAGE_GROUPS]
    assert type(sources[1]).__name__ == "KeyframeBackgroundSource"  # rebuilt frame by frame, not stored per frame
    for (data, kwargs, kind), src in zip(items, sources):
        assert isinstance(data, da.Array) and data.shape == src.shape and data.dtype == src.dtype
        for t in FRAMES:
            np.testing.assert_array_equal(np.asarray(data[t]), src[t])
        role = kwargs["metadata"]["vidfilter"]["role"]
        assert kwargs["metadata"]["vidfilter"]["store"] == str(store)
        assert kwargs["metadata"]["vidfilter"]["run"]["method"] == "median"
        if kind == "image":
            assert kwargs["contrast_limits"] == _expected_limits(src), role
            assert kwargs["rgb"] is False
    assert items[0][1]["metadata"]["vidfilter"]["path"] == str(clip.resolve())
    mask = np.asarray(items[3][0][:])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    layers = add_layers(viewer, items)
    assert [type(x).__name__ for x in viewer.layers] == ["Image", "Image", "Image", "Labels"]
    assert [x.name for x in viewer.layers] == [k["name"] for _, k, _ in items]
    assert list(layers[2].contrast_limits) == items[2][1]["contrast_limits"]
    assert layers[3].dtype == np.uint8 and isinstance(layers[3].data, da.Array)


def test_foreground_contrast_is_not_the_dtype_range(store):
    """A foreground is mostly 0: limits from its frames, not 0..255, or the animals would be near black."""
    fg = [k for _, k, _ in L.store_layers(store) if k["name"].endswith("foreground")][0]
    lo, hi = fg["contrast_limits"]
    assert lo == 0 and 0 < hi < 255


def test_missing_input_gives_the_outputs_only(store, tmp_path):
    copy = tmp_path / "moved.zarr"
    shutil.copytree(store, copy)
    meta = json.loads((copy / "zarr.json").read_text())
    meta["attributes"]["input"]["path"] = str(tmp_path / "gone.mp4")
    (copy / "zarr.json").write_text(json.dumps(meta))
    names = [k["name"] for _, k, _ in get_reader(str(copy))(str(copy))]
    assert names == ["moved background", "moved foreground", "moved mask"]


def test_opening_reads_only_the_sampled_frames(store, tmp_path, monkeypatch):
    """Opening a store or a 20,000-frame recording reads at most SAMPLE_FRAMES frames per layer."""
    import zarr

    reads: list[int] = []
    original = FrameSource.__getitem__

    def counting(self, t):
        reads.append(t)
        return original(self, t)

    monkeypatch.setattr(FrameSource, "__getitem__", counting)
    monkeypatch.setattr(FrameSource, "iter", lambda *a, **k: pytest.fail("a whole pass over the frames"))
    items = L.layer_data(store)
    images = [x for x in items if x[2] == "image"]
    assert 0 < len(reads) <= L.SAMPLE_FRAMES * len(images)
    long_path = tmp_path / "long.zarr"
    arr = zarr.create_array(str(long_path), shape=(20_000, 8, 8), chunks=(1000, 8, 8), dtype="uint8")
    arr[:] = np.arange(20_000, dtype=np.int64).reshape(-1, 1, 1).repeat(8, 1).repeat(8, 2) % 251
    reads.clear()
    t0 = time.perf_counter()
    (data, kwargs, kind), = get_reader(str(long_path))(str(long_path))
    assert time.perf_counter() - t0 < 5
    assert len(reads) == L.SAMPLE_FRAMES and kind == "image" and data.shape == (20_000, 8, 8)
    picked = [round(t) % 251 for t in np.linspace(0, 19_999, L.SAMPLE_FRAMES)]  # frame t holds t % 251
    assert sorted(set(reads)) == sorted({round(t) for t in np.linspace(0, 19_999, L.SAMPLE_FRAMES)})
    assert kwargs["contrast_limits"] == [float(min(picked)), float(max(picked))]
    assert int(data[19_999, 0, 0].compute()) == 19_999 % 251


def _write_recordings(clip: Path, d: Path) -> dict[str, str]:
    """The clip's first 12 frames as an image folder, a TIFF stack, a Zarr array and an HDF5 dataset."""
    import cv2
    import h5py
    import tifffile
    import zarr

    frames = np.stack([vidfilter.open(str(clip))[t] for t in range(12)])
    (d / "frames").mkdir()
    for t, f in enumerate(frames):
        cv2.imwrite(str(d / "frames" / f"f{t:03d}.png"), f)
    tifffile.imwrite(d / "stack.tif", frames)
    z = zarr.create_array(str(d / "arr.zarr"), shape=frames.shape, chunks=(4, 64, 96), dtype="uint8")
    z[:] = frames
    with h5py.File(d / "rec.h5", "w") as h:
        h["frames"] = frames
    return {"video": str(clip), "folder": str(d / "frames"), "tiff": str(d / "stack.tif"), "zarr": str(d / "arr.zarr"),
            "hdf5": str(d / "rec.h5") + "/frames"}


def test_recordings_give_one_lazy_image_layer(clip, tmp_path, viewer):
    for kind, path in _write_recordings(clip, tmp_path).items():
        reader = get_reader(path)
        assert reader is not None, kind
        (data, kwargs, layer_type), = reader(path)
        src = vidfilter.open(path, color="keep")
        assert layer_type == "image" and isinstance(data, da.Array), kind
        assert data.shape == src.shape and data.dtype == src.dtype, kind
        for t in (0, len(src) - 1):
            np.testing.assert_array_equal(np.asarray(data[t]), src[t])
        assert kwargs["contrast_limits"] == _expected_limits(src), kind
        assert kwargs["rgb"] == (src.ndim == 4), kind
        assert kwargs["metadata"]["vidfilter"] == {"role": "recording", "path": path, "store": None}
        add_layers(viewer, [(data, kwargs, layer_type)])
    assert [x.name for x in viewer.layers] == ["clip", "frames", "stack", "arr", "rec frames"]
    assert get_reader(str(tmp_path / "stack.tif")) is not None
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "missing.mp4")) is None
    assert get_reader([str(clip), str(clip)]) is None


def test_store_tracks_group_and_csv(store, tmp_path, viewer):
    import zarr

    cols = _track_table()
    copy = tmp_path / "tracked.zarr"
    shutil.copytree(store, copy)
    group = zarr.open_group(str(copy / "tracks"), mode="w")
    for name, values in cols.items():
        group.create_array(name, data=values)
    items = L.store_layers(copy)
    assert [kind for *_, kind in items] == ["image", "image", "image", "labels", "tracks"]
    data, kwargs, _ = items[-1]
    order = np.lexsort((cols["frame"], cols["track_id"]))
    want = np.stack([cols["track_id"], cols["frame"], cols["y"], cols["x"]], axis=1)[order].astype(float)
    np.testing.assert_array_equal(data, want)
    np.testing.assert_array_equal(kwargs["features"]["area"], cols["area"][order])
    assert list(kwargs["features"]) == [c for c in L.TRACK_COLUMNS if c not in ("frame", "track_id", "y", "x")]
    assert kwargs["name"] == "tracked tracks"
    layer = add_layers(viewer, [items[-1]])[0]
    assert type(layer).__name__ == "Tracks" and sorted(set(layer.data[:, 0])) == [1, 2, 3]
    np.testing.assert_array_equal(layer.features["area"].to_numpy(), cols["area"][order])
    # a csv beside the store, and a csv on its own
    plain = tmp_path / "plain.zarr"
    shutil.copytree(store, plain)
    _write_csv(tmp_path / "plain.tracks.csv", cols)
    assert L.find_tracks(plain) == tmp_path / "plain.tracks.csv"
    np.testing.assert_array_equal(L.store_layers(plain)[-1][0], want)
    csv_path = _write_csv(tmp_path / "t.csv", cols)
    reader = get_tracks_reader(str(csv_path))
    (cdata, ckw, ckind), = reader(str(csv_path))
    assert ckind == "tracks" and ckw["name"] == "t"
    np.testing.assert_array_equal(cdata, want)
    np.testing.assert_allclose(ckw["features"]["mean_intensity"], cols["mean_intensity"][order])
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert get_tracks_reader(str(tmp_path / "other.csv")) is None
    assert get_reader(str(csv_path)) is None


def test_manifest_is_installed_and_its_commands_import():
    import importlib

    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("vidfilter")
    assert manifest.name == "vidfilter"
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.id
    patterns = {p for r in manifest.contributions.readers for p in r.filename_patterns}
    assert {"*.zarr", "*.mp4", "*.tif", "*.h5", "*.csv"} <= patterns
    assert [w.display_name for w in manifest.contributions.widgets] == ["Run (background / foreground)", "Train a model"]


def test_viewer_open_with_the_plugin(store, clip, viewer):
    """napari's own open, through the installed manifest: ``viewer.open(path, plugin="vidfilter")``."""
    npe2 = pytest.importorskip("npe2")
    npe2.PluginManager.instance().discover()
    viewer.open(str(store), plugin="vidfilter")
    assert [(x.name, type(x).__name__) for x in viewer.layers] == [
        ("clip input", "Image"), ("clip background", "Image"), ("clip foreground", "Image"), ("clip mask", "Labels")]
    assert {x.source.reader_plugin for x in viewer.layers} == {"vidfilter"}
    viewer.open(str(clip), plugin="vidfilter")
    assert viewer.layers[-1].name == "clip" and viewer.layers[-1].data.shape[:3] == (40, 64, 96)
