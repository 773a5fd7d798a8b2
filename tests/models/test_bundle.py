"""Model bundles: round trip, atomic write, and one-line errors for every broken file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from vidfilter.config import Config, ModelConfig
from vidfilter.errors import BundleError, InputNotFoundError, VidfilterError
from vidfilter.models import build_model, load_model, save_bundle
from vidfilter.models.bundle import BUNDLE_VERSION


def tiny_config() -> Config:
    return Config(application="test", model=ModelConfig(width=4, depth=3, residual=False, temporal_channel="none"))


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module, Config]:
    torch.manual_seed(0)
    cfg = tiny_config()
    model = build_model(cfg.model)
    path = save_bundle(
        tmp_path / "model.vfm",
        model,
        cfg.to_dict(),
        normalisation={"polarity": "dark"},
        provenance={"recordings": [Path("/data/a.mp4")], "steps": 3, "lag": (1, 2)},
    )
    return path, model, cfg


def test_round_trip(saved: tuple[Path, torch.nn.Module, Config]) -> None:
    """Weights, config, normalisation, provenance, version and hash come back."""
    path, model, cfg = saved
    bundle = load_model(path)
    assert not bundle.model.training
    x = torch.rand(1, 1, 24, 40)
    with torch.no_grad():
        assert torch.equal(bundle.model(x), model.eval()(x))
    assert bundle.config == cfg
    assert bundle.config.application == "test"
    assert bundle.normalisation == {"dtype": "uint8", "scale": 255.0, "polarity": "dark"}
    assert bundle.provenance == {"recordings": ["/data/a.mp4"], "steps": 3, "lag": [1, 2]}
    import vidfilter

    assert bundle.version == vidfilter.__version__
    assert bundle.bundle_version == BUNDLE_VERSION
    assert bundle.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert bundle.path == path


def test_file_content_is_plain(saved: tuple[Path, torch.nn.Module, Config]) -> None:
    """One file, loadable with weights_only=True, with the documented keys."""
    path, _, _ = saved
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "vidfilter-bundle"
    assert payload["bundle_version"] == 1
    assert set(payload) == {
        "format", "bundle_version", "vidfilter_version", "config", "model", "normalisation", "provenance",
        "state_dict", "weights_sha256",
    }
    assert payload["model"] == payload["config"]["model"]
    assert [p.name for p in path.parent.iterdir()] == ["model.vfm"]  # no temp file left


def test_model_section_follows_the_model(tmp_path: Path) -> None:
    """The bundle's model section is the network's own config, whatever the run config said."""
    model = build_model(ModelConfig(width=8, depth=2, temporal_channel="median"))
    path = save_bundle(tmp_path / "m.vfm", model, Config())  # Config() says paper/width None
    bundle = load_model(path)
    assert bundle.config.model.width == 8 and bundle.config.model.temporal_channel == "median"
    assert bundle.model.in_channels == 2


def test_overwrite_is_atomic(saved: tuple[Path, torch.nn.Module, Config]) -> None:
    """Saving over an existing bundle replaces it; the new content loads."""
    path, _, cfg = saved
    other = build_model(ModelConfig(width=6, depth=2))
    save_bundle(path, other, cfg)
    assert load_model(path).model.width == 6


def test_device_argument(saved: tuple[Path, torch.nn.Module, Config]) -> None:
    path, _, _ = saved
    bundle = load_model(path, device="cpu")
    assert next(bundle.model.parameters()).device.type == "cpu"


def test_missing_file(tmp_path: Path) -> None:
    """A missing bundle is an InputNotFoundError (and a BundleError), naming the path."""
    with pytest.raises(InputNotFoundError, match="nope.vfm") as info:
        load_model(tmp_path / "nope.vfm")
    assert isinstance(info.value, BundleError) and isinstance(info.value, FileNotFoundError)


def test_truncated_file(saved: tuple[Path, torch.nn.Module, Config], tmp_path: Path) -> None:
    """A bundle cut to half its size raises one actionable line."""
    path, _, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.vfm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="cut.vfm is truncated or corrupt") as info:
        load_model(cut)
    assert "\n" not in str(info.value)


def test_corrupted_bytes(saved: tuple[Path, torch.nn.Module, Config], tmp_path: Path) -> None:
    """Zeroed bytes inside the tensor data are caught by the weights checksum."""
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    bad = tmp_path / "bad.vfm"
    bad.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="bad.vfm is (truncated or )?corrupt"):
        load_model(bad)


def test_not_a_pytorch_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.vfm"
    path.write_text("hello")
    with pytest.raises(BundleError, match="not a vidfilter model bundle"):
        load_model(path)


def test_pytorch_file_but_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(BundleError, match="weights.pt is a PyTorch file but not a vidfilter model bundle"):
        load_model(path)


def test_newer_bundle_format(saved: tuple[Path, torch.nn.Module, Config], tmp_path: Path) -> None:
    """A bundle from a newer format says which version made it and to upgrade."""
    path, _, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["bundle_version"] = BUNDLE_VERSION + 1
    payload["vidfilter_version"] = "9.0.0"
    future = tmp_path / "future.vfm"
    torch.save(payload, future)
    with pytest.raises(BundleError) as info:
        load_model(future)
    msg = str(info.value)
    assert "made by vidfilter 9.0.0 (bundle format 2)" in msg
    assert f"reads up to format {BUNDLE_VERSION}: upgrade vidfilter" in msg
    assert isinstance(info.value, VidfilterError) and isinstance(info.value, ValueError)


def test_mismatched_weights(saved: tuple[Path, torch.nn.Module, Config], tmp_path: Path) -> None:
    """Weights that do not fit the stored architecture are reported as corrupt, not a traceback."""
    path, _, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["model"]["width"] = 8
    wrong = tmp_path / "wrong.vfm"
    torch.save(payload, wrong)
    with pytest.raises(BundleError, match="wrong.vfm is corrupt"):
        load_model(wrong)


def test_metadata_must_be_plain(tmp_path: Path) -> None:
    model = build_model(ModelConfig(width=4, depth=2))
    with pytest.raises(BundleError, match="provenance"):
        save_bundle(tmp_path / "m.vfm", model, Config(), provenance={"x": object()})
    assert not list(tmp_path.iterdir())


def test_shipped_bundle_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shipped bundle's name loads it wherever a path would; a file of that name in the working
    folder wins; an unknown name is a missing bundle whose message lists the shipped names."""
    from vidfilter.models.shipped import shipped_names, shipped_path

    assert "worm-plate" in shipped_names()
    by_name = load_model("worm-plate")
    assert by_name.sha256 == hashlib.sha256(shipped_path("worm-plate").read_bytes()).hexdigest()
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    cfg = tiny_config()
    save_bundle(tmp_path / "worm-plate", build_model(cfg.model), cfg.to_dict())
    assert load_model("worm-plate").sha256 == hashlib.sha256((tmp_path / "worm-plate").read_bytes()).hexdigest()
    with pytest.raises(InputNotFoundError, match="shipped bundle's name.*worm-plate"):
        load_model("worm-plat")
