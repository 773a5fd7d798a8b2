"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


class _SharedData(type(Path())):  # type: ignore[misc]
    """A path into the shared example data whose ``/`` skips the test when what it names is
    missing, so one absent dataset folder skips its tests instead of failing them."""

    def __truediv__(self, key: str | os.PathLike[str]) -> Path:
        p = super().__truediv__(key)
        if not p.exists():
            pytest.skip(f"shared example data {p} not found")
        return p


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches (the replayed corpora of fine-tuning) go to a folder of the test session, not the
    user's home; subprocesses inherit it."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def _private_setup_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test has its own setup cache (an input generated alike by two tests is set up by each)."""
    monkeypatch.setenv("VIDFILTER_SETUP_CACHE_DIR", str(tmp_path_factory.mktemp("setup-cache")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared example recordings (``$VIDFILTER_SHARED_DATA`` or ``<repo>/../shared/data``); skip when absent."""
    env = os.environ.get("VIDFILTER_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    if not root.is_dir():
        pytest.skip(f"shared example data not found at {root} (set VIDFILTER_SHARED_DATA)")
    return _SharedData(root.resolve())


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-4, depth-3 U-Net bundle (margin 40, multiple 8), untrained and not residual, so it is
    far from the identity; no temporal channel. Its quality is irrelevant to the tests using it."""
    import torch

    from vidfilter.config import Config
    from vidfilter.models import build_model, save_bundle

    torch.manual_seed(0)
    cfg = Config().override({"model.width": 4, "model.depth": 3, "model.residual": False, "model.temporal_channel": "none"})
    return save_bundle(tmp_path_factory.mktemp("model") / "tiny.vfm", build_model(cfg.model), cfg)
