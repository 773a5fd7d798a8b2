"""Fixtures of the fault-injection suite: small recordings (the tiny model is ``tests/conftest.py``'s; helpers: ``faults_helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfilter.synth import SyntheticRecording, write_video


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The default tier runs each attack once: the first case of every parametrized test of this
    folder; its other cases (other readers, writers, seeds of the same attack) are ``slow`` and run
    in ``make test-slow``. Most cases start the real command in a child process (2-4 s each)."""
    here = Path(__file__).parent
    seen: set[tuple[str, str]] = set()
    for item in items:
        if here not in Path(str(item.path)).parents or not hasattr(item, "callspec"):
            continue
        key = (str(item.path), item.originalname)
        if key in seen:
            item.add_marker(pytest.mark.slow)
        seen.add(key)


@pytest.fixture(autouse=True)
def _index_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frame-index caches go to a temp folder (inherited by the child processes)."""
    monkeypatch.setenv("VIDFILTER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "index-cache"))


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small recordings shared by the suite (paths hold spaces and non-ASCII on purpose)."""
    d = tmp_path_factory.mktemp("media ü")
    rec = SyntheticRecording(60, 64, 96, n_animals=2, seed=1)
    return {
        "mkv": write_video(d / "rec ffv1 é.mkv", rec, codec="ffv1"),
        "mp4": write_video(d / "rec h264 é.mp4", rec),
        "long_mkv": write_video(d / "long.mkv", SyntheticRecording(120, 48, 64, n_animals=2, seed=5), codec="ffv1"),
    }
