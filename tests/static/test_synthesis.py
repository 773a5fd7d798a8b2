"""The crop-pasting pair synthesiser: the additive model, augmentation, placement rules, background
fill, determinism (in-process = DataLoader workers), and the errors for unusable banks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidfilter.config import Config
from vidfilter.errors import ConfigError, InputNotFoundError, TrainingInputError, UnreadableInputError
from vidfilter.static.bank import load_banks, write_bank
from vidfilter.static.config import PreprocessConfig, SynthConfig
from vidfilter.static.dataset import SynthDataset
from vidfilter.static.preprocess import encode
from vidfilter.static.samplers import SynthSampler
from vidfilter.static.synthesis import PairSynthesizer, SynthPair, augment_crop, preview_grid


def disc(r: int, value: float) -> np.ndarray:
    """A disc peaking at ``value`` in its centre, 0.6 ``value`` at the rim (a base quantile leaves it visible)."""
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    d = np.sqrt(yy * yy + xx * xx) / r
    return np.where(d <= 1, value * (1 - 0.4 * d), 0.0).astype(np.float32)


def bar(h: int, w: int, value: float) -> np.ndarray:
    return np.full((h, w), value, np.float32)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """Targets: bright discs; unwanted: dim bars; backgrounds: a ramp with a zeroed hole."""
    root = tmp_path_factory.mktemp("bank")
    rng = np.random.default_rng(0)
    bgs = []
    for k in range(3):
        bg = np.tile(np.linspace(0.2, 0.6, 96, dtype=np.float32), (96, 1)) + 0.01 * k
        bg[33:63, 33:63] = 0.0  # centred: rotations and flips keep it in place
        bgs.append(bg)
    targets = [disc(int(rng.integers(4, 7)), 0.5) for _ in range(5)]
    unwanted = [bar(4, int(rng.integers(12, 20)), 0.2) for _ in range(5)]
    write_bank(root / "b", targets, unwanted, bgs, PreprocessConfig(), 255.0)
    return root / "b"


def synth(bank, patch: int = 64, **over: object) -> PairSynthesizer:
    return PairSynthesizer(load_banks([bank]), SynthConfig(**over), patch)


def test_input_and_target_share_the_targets_and_nothing_else(bank):
    """input = clip(bg1 + Ou1 + Ot), target = clip(bg2 + Ou2 + Ot), layers returned exactly."""
    s = synth(bank, targets=(2, 4), unwanted=(2, 4))
    for i in range(5):
        p = s.pair(i, seed=3, layers=True)
        assert isinstance(p, SynthPair) and p.input.shape == (1, 64, 64) and p.input.dtype == np.float32
        np.testing.assert_allclose(p.input[0], np.clip(p.background1 + p.unwanted1 + p.targets, 0, 1), atol=1e-6)
        np.testing.assert_allclose(p.target[0], np.clip(p.background2 + p.unwanted2 + p.targets, 0, 1), atol=1e-6)
        assert 2 <= len(p.target_boxes) <= 4 and p.targets.max() > 0
        assert not np.array_equal(p.background1, p.background2) and not np.array_equal(p.unwanted1, p.unwanted2)


def test_log_transform_is_applied_after_composition(tmp_path, bank):
    """Intensities add in linear units; the network sees log1p(g x) / log1p(g) of the sum."""
    b = load_banks([bank])
    b.preprocess = PreprocessConfig(log=True)
    s = PairSynthesizer(b, SynthConfig(targets=(2, 2), unwanted=(1, 1)), 64)
    p = s.pair(0, layers=True)
    lin = np.clip(p.background1 + p.unwanted1 + p.targets, 0, 1)
    np.testing.assert_allclose(p.input[0], encode(lin, b.preprocess, 255.0), atol=1e-6)


def test_augmentation_rotates_on_an_enlarged_canvas_and_scales_intensity():
    """A 6 x 20 bar rotated by 90 degrees becomes 20 x 6; factor 2 doubles it; zoom 2 doubles its sides;
    the base quantile is subtracted from the object pixels."""
    rng = np.random.default_rng(0)
    b = bar(6, 20, 0.25)
    out = augment_crop(b, SynthConfig(rotation=(90, 90), zoom=(1, 1), flips=False, base_quantile=(0, 0), intensity=(2, 2)), rng)
    assert out.shape == (20, 6) and np.allclose(out, 0.5, atol=1e-5)
    out = augment_crop(b, SynthConfig(rotation=(0, 0), zoom=(2, 2), flips=False, base_quantile=(0, 0), intensity=(1, 1)), rng)
    assert abs(out.shape[0] - 12) <= 2 and abs(out.shape[1] - 40) <= 2
    ramp = np.tile(np.linspace(0.1, 0.5, 11, dtype=np.float32), (3, 1))
    out = augment_crop(ramp, SynthConfig(rotation=(0, 0), zoom=(1, 1), flips=False, base_quantile=(0.5, 0.5), intensity=(1, 1)), rng)
    np.testing.assert_allclose(out.max(), 0.5 - 0.3, atol=1e-5)  # minus the median
    out = augment_crop(b, SynthConfig(rotation=(45, 45), zoom=(1, 1), flips=False, base_quantile=(0, 0), intensity=(1, 1)), rng)
    assert min(out.shape) > 6  # the canvas grew to hold the rotated bar


def test_counts_and_overlap_limit(bank):
    """Counts stay in range; with max_overlap 0 no two objects share a pixel (the layer never sums two).

    base_quantile 0 subtracts each disc's minimum (0.3 at the rim), so one disc peaks at 0.2."""
    s = synth(bank, targets=(3, 6), unwanted=(0, 0), max_overlap=0.0, intensity=(1, 1), base_quantile=(0, 0), zoom=(1, 1))
    for i in range(10):
        p = s.pair(i, layers=True)
        assert 1 <= len(p.target_boxes) <= 6
        assert p.targets.max() <= 0.2 + 1e-5
    s = synth(bank, patch=48, targets=(30, 30), unwanted=(0, 0), max_overlap=1.0, attempts=1, intensity=(1, 1), base_quantile=(0, 0))
    assert s.pair(0, layers=True).targets.max() > 0.2 + 1e-3  # overlaps allowed: intensities add


def test_background_zeros_get_one_constant_between_the_quartiles(bank):
    """Zeros of a patch ('fill me') take one value between the 25th and 75th percentile of the rest."""
    s = synth(bank, patch=96, targets=(0, 0), unwanted=(0, 0), rotation=(0, 0))
    rng = np.random.default_rng(5)
    for _ in range(5):
        patch = s.background_patch(rng)
        raw = load_banks([bank]).backgrounds[0]
        hole = np.rot90(raw == 0, 0)  # the hole is centred, so any rotation/flip keeps it in place
        filled = patch[hole]
        rest = patch[~hole]
        assert np.ptp(filled) == 0
        lo, hi = np.quantile(rest, [0.25, 0.75])
        assert lo - 1e-6 <= filled[0] <= hi + 1e-6


def test_deterministic_and_the_same_with_dataloader_workers(bank):
    """Pair i of seed s is a pure function of (s, i); a resumed sampler continues the stream; two
    DataLoader workers yield exactly the in-process batches, in order."""
    s = synth(bank, targets=(1, 3), unwanted=(1, 3))
    a, b = s.pair(7, seed=1), s.pair(7, seed=1)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], s.pair(7, seed=2)[0])
    sampler = SynthSampler(s, seed=4)
    first = [sampler.batch(4) for _ in range(3)]
    resumed = SynthSampler(s, seed=4)
    resumed.set_state({"index": 4})
    assert np.array_equal(resumed.batch(4)[0], first[1][0])
    loader = torch.utils.data.DataLoader(SynthDataset(s, 4, seed=4), batch_size=None, num_workers=2,
                                         multiprocessing_context="spawn")  # as training starts them
    it = iter(loader)
    for k in range(3):
        inp, tgt = next(it)
        assert np.array_equal(inp.numpy(), first[k][0]) and np.array_equal(tgt.numpy(), first[k][1])
    del it


def test_preview_grid(bank):
    img = preview_grid(synth(bank, targets=(1, 2), unwanted=(1, 2)), n=3)
    assert img.dtype == np.uint8 and img.shape[0] > 3 * 64 and img.shape[1] >= 3 * 64


# -- unusable banks ----------------------------------------------------------------------------


def test_crops_larger_than_the_patch(bank):
    """Refused with a message naming the remedies (raise sampling.crop / shrink / skip); shrink and skip work."""
    with pytest.raises(TrainingInputError, match=r"larger than the 16-px patch.*sampling.crop"):
        synth(bank, patch=16)
    with pytest.raises(TrainingInputError, match="as large as the 128-px patch"):
        synth(bank, patch=128)  # backgrounds are 96 px
    s = synth(bank, patch=16, oversize="shrink")
    assert max(max(c.shape) for c in s.targets + s.unwanted) <= 16
    s = synth(bank, patch=12, oversize="skip", unwanted=(0, 0))
    assert all(max(c.shape) <= 12 for c in s.targets) and len(s.targets) >= 1


def test_a_class_without_crops(tmp_path):
    write_bank(tmp_path / "b", [disc(4, 0.5)], [], [np.full((64, 64), 0.2, np.float32)], PreprocessConfig(), 255.0)
    with pytest.raises(TrainingInputError, match="no unwanted crops.*static.synth.unwanted"):
        synth(tmp_path / "b")
    s = synth(tmp_path / "b", unwanted=(0, 0))  # asking for none is fine
    assert s.pair(0)[0].shape == (1, 64, 64)


def test_missing_foreign_and_mismatched_banks(tmp_path, bank):
    with pytest.raises(InputNotFoundError, match="extract-crops"):
        load_banks([tmp_path / "nope"])
    (tmp_path / "x").mkdir()
    with pytest.raises(UnreadableInputError, match="not a crop bank"):
        load_banks([tmp_path / "x"])
    write_bank(tmp_path / "log", [disc(4, 0.5)], [bar(3, 9, 0.2)], [np.full((64, 64), 0.2, np.float32)], PreprocessConfig(log=True), 255.0)
    with pytest.raises(ConfigError, match="different preprocessing"):
        load_banks([bank, tmp_path / "log"])
    cfg = Config().override({"sampling.mode": "static", "model.temporal_channel": "max"})
    from vidfilter.static.samplers import make_static_samplers

    with pytest.raises(ConfigError, match="temporal_channel: none"):
        make_static_samplers([bank], cfg)


def test_both_images_of_a_pair_share_one_illumination(bank):
    """gain, offset and gradient act on input and target alike: a fixed gain and level scale and shift
    both composites exactly; a ramp divides out to one plane of the configured peak to peak."""
    fixed = synth(bank, targets=(2, 3), unwanted=(2, 3), gain=(1.5, 1.5), offset=(0.05, 0.05))
    plain = synth(bank, targets=(2, 3), unwanted=(2, 3))
    for i in range(3):
        p, q = fixed.pair(i, seed=1, layers=True), plain.pair(i, seed=1, layers=True)
        np.testing.assert_allclose(p.targets, q.targets)  # the same objects: the light draws nothing
        np.testing.assert_allclose(p.input[0], np.clip(1.5 * (p.background1 + p.unwanted1 + p.targets) + 0.05, 0, 1), atol=1e-6)
        np.testing.assert_allclose(p.target[0], np.clip(1.5 * (p.background2 + p.unwanted2 + p.targets) + 0.05, 0, 1), atol=1e-6)
    ramped = synth(bank, targets=(0, 0), unwanted=(0, 0), gradient=0.4)
    for i in range(3):
        p = ramped.pair(i, seed=2, layers=True)
        light_in = p.input[0] / p.background1
        light_out = p.target[0] / p.background2
        np.testing.assert_allclose(light_in, light_out, atol=1e-5)
        assert np.ptp(light_in) == pytest.approx(0.4, abs=1e-4) and light_in.mean() == pytest.approx(1.0, abs=1e-4)
        gy, gx = np.gradient(light_in)
        assert np.ptp(gy) < 1e-5 and np.ptp(gx) < 1e-5  # a plane
