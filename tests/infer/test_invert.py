"""``infer.invert``: a model of dark animals run on bright ones sees the inverted frames, and its
background is inverted back: exactly what it gives on the dark recording, mirrored."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.config import Config
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.scaling import to_float
from vidfilter.models import load_model
from vidfilter.models.shipped import shipped_path
from vidfilter.synth import SyntheticRecording

pytestmark = pytest.mark.skipif(not shipped_path("worm-plate").is_file(), reason="worm-plate bundle not built")


def _dark_and_bright() -> tuple[np.ndarray, np.ndarray]:
    rec = SyntheticRecording(20, 96, 96, n_animals=3, seed=4)
    dark = np.stack([rec.frame(t).frame for t in range(20)])
    return dark, 255 - dark


def _frames(path) -> np.ndarray:
    import vidfilter

    with vidfilter.open(str(path)) as src:
        return np.stack(list(src.iter(0, len(src))))


def test_inverted_run_mirrors_the_dark_run():
    """background_invert(255 - D) == 1 - background(D), the statistic channel included."""
    from vidfilter.infer.pipeline import ModelBackground

    dark, bright = _dark_and_bright()
    bundle = load_model("worm-plate")
    plain = ModelBackground(bundle, Config())
    inverted = ModelBackground(bundle, Config().override({"infer.invert": True}))
    plain.prepare(ArrayFrameSource(dark))
    inverted.prepare(ArrayFrameSource(bright))
    np.testing.assert_allclose(inverted._stat, plain._stat, atol=1e-6)  # max of the inverted = 1 - min of the bright
    for t in (0, 7, 19):
        a = plain.background(t, to_float(dark[t]))
        b = inverted.background(t, to_float(bright[t]))
        np.testing.assert_allclose(b, 1.0 - a, atol=1e-5)


def test_a_run_with_invert_takes_the_opposite_polarity(tmp_path):
    """The stored foreground of the bright animals (frame above background) equals the dark run's
    (background above frame) within a grey level of rounding."""
    import vidfilter

    dark, bright = _dark_and_bright()
    cfg = Config().override({"infer.every": 1})
    inv = vidfilter.run(ArrayFrameSource(bright), tmp_path / "inv.zarr", model="worm-plate",
                        config=cfg.override({"infer.invert": True}))
    ref = vidfilter.run(ArrayFrameSource(dark), tmp_path / "dark.zarr", model="worm-plate", config=cfg)
    assert inv.ok and ref.ok
    fg_inv, fg_dark = _frames(tmp_path / "inv.zarr" / "foreground"), _frames(tmp_path / "dark.zarr" / "foreground")
    # the same foreground, one grey level of rounding apart
    assert np.abs(fg_inv.astype(int) - fg_dark.astype(int)).max() <= 1
    assert fg_dark.max() > 40
