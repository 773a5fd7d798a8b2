"""Silent damage to a finished output: flipped bytes, a chunk copied over another, emptied or cut
chunk files, a lost checksum table. ``verify`` (full and ``--quick``) names the group, frame and
chunk of each, exits 1, and a resumed run's checksums are as good as an uninterrupted run's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from faults_helpers import vf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidfilter.io.integrity import CHUNK_DIGEST_FILE, verify
from vidfilter.io.zarr_sink import OmeZarrWriter

GROUPS = ("background", "foreground")
N_FRAMES, PER_CHUNK = 40, 16


def _write(out: Path, frames: np.ndarray, *, stop_at: int | None = None, resume: bool = False) -> None:
    """Write ``frames`` into groups background/foreground; ``stop_at`` aborts there (a kill)."""
    w = OmeZarrWriter(out, attrs={"method": "test"}, resume=resume, checkpoint_every=4)
    sinks = {g: w.image(g, frames.shape[1:], frames.dtype, fps=10.0, n_frames=len(frames)) for g in GROUPS}
    start = min(s.frames_written for s in sinks.values())
    for t in range(start, len(frames)):
        if stop_at is not None and t == stop_at:
            w.abort()
            return
        for i, (g, s) in enumerate(sinks.items()):
            s.write(t, frames[t] if i == 0 else 255 - frames[t])
    w.finalise()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A finished two-group store of 40 frames of 2500x40: chunks of 16 frames (16, 16, 8) by 3 x 1
    spatial chunks of 1024 rows."""
    out = tmp_path_factory.mktemp("made") / "out.zarr"
    frames = np.random.default_rng(3).integers(0, 255, (N_FRAMES, 2500, 40), dtype=np.uint8)
    _write(out, frames)
    return out


def _chunks(store: Path, group: str) -> list[Path]:
    return sorted(p for p in (store / group / "0" / "c").rglob("*") if p.is_file())


def _key(store: Path, group: str, chunk: Path) -> str:
    return "/".join(chunk.relative_to(store / group / "0").parts)


def _named(report, group: str, key: str) -> bool:
    lo = int(key.split("/")[1]) * PER_CHUNK
    frames = f"frames {lo}-{min(lo + PER_CHUNK, N_FRAMES) - 1}"
    return any(p.startswith(f"{group}: chunk {key} ({frames})") for p in report.problems)


def test_a_finished_store_verifies_with_its_checksums(store):
    for quick in (False, True):
        report = verify(store, quick=quick)
        assert report.complete, report.problems
        assert all(v["checksums"] == "match" for v in report.facts["images"].values())
    assert (store / "background" / CHUNK_DIGEST_FILE).stat().st_size == 16 * 3 * 3  # 3 runs of frames x 3 blocks


def _damage(tmp_path: Path, store: Path) -> Path:
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    return copy


def test_ten_flipped_bytes_are_named_by_group_frame_and_chunk(store, tmp_path):
    s = _damage(tmp_path, store)
    chunk = _chunks(s, "background")[5]
    b = bytearray(chunk.read_bytes())
    for i in range(10):
        b[len(b) // 2 + i] ^= 0x5A
    chunk.write_bytes(bytes(b))
    for quick in (False, True):
        report = verify(s, quick=quick)
        assert not report.complete and _named(report, "background", _key(s, "background", chunk)), report.problems


def test_a_chunk_copied_over_another_is_found(store, tmp_path):
    s = _damage(tmp_path, store)
    a, b = _chunks(s, "foreground")[0], _chunks(s, "foreground")[7]
    shutil.copyfile(a, b)  # a valid, decodable chunk in the wrong place
    report = verify(s)
    assert not report.complete and _named(report, "foreground", _key(s, "foreground", b)), report.problems
    assert len(report.problems) == 1


@pytest.mark.parametrize("how", ["emptied", "cut in half"])
def test_quick_verify_finds_an_emptied_or_cut_chunk(store, tmp_path, how):
    s = _damage(tmp_path, store)
    chunk = _chunks(s, "background")[3]
    data = chunk.read_bytes()
    chunk.write_bytes(b"" if how == "emptied" else data[: len(data) // 2])
    report = verify(s, quick=True)
    assert not report.complete and _named(report, "background", _key(s, "background", chunk)), report.problems


def test_a_lost_or_cut_checksum_table_is_reported(store, tmp_path):
    s = _damage(tmp_path, store)
    (s / "background" / CHUNK_DIGEST_FILE).unlink()
    table = s / "foreground" / CHUNK_DIGEST_FILE
    table.write_bytes(table.read_bytes()[:-16])
    report = verify(s, quick=True)
    assert not report.complete
    assert any("background" in p and "missing" in p for p in report.problems), report.problems
    assert any("foreground" in p and "truncated" in p for p in report.problems), report.problems


def test_verify_cli_exit_code_and_line(store, tmp_path):
    s = _damage(tmp_path, store)
    chunk = _chunks(s, "foreground")[2]
    chunk.write_bytes(chunk.read_bytes()[::-1])
    proc = vf("verify", str(s))
    assert proc.returncode == 1, proc.stdout
    assert f"foreground: chunk {_key(s, 'foreground', chunk)}" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_resumed_store_has_the_checksums_of_an_uninterrupted_one(tmp_path):
    frames = np.random.default_rng(5).integers(0, 255, (13, 24, 32), dtype=np.uint8)
    whole, resumed = tmp_path / "whole.zarr", tmp_path / "resumed.zarr"
    _write(whole, frames)
    _write(resumed, frames, stop_at=9)
    assert not resumed.exists()
    _write(resumed, frames, resume=True)
    assert verify(resumed).complete
    for g in GROUPS:
        assert (resumed / g / CHUNK_DIGEST_FILE).read_bytes() == (whole / g / CHUNK_DIGEST_FILE).read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_verify_catches_every_random_byte_flip(store, tmp_path_factory, data):
    """Flip 1-16 random bytes (each XORed with a non-zero value) in a random chunk of a random
    group: verify --quick catches it every time and names exactly that chunk."""
    s = _damage(tmp_path_factory.mktemp("flip"), store)
    group = data.draw(st.sampled_from(GROUPS))
    chunk = data.draw(st.sampled_from(_chunks(s, group)))
    b = bytearray(chunk.read_bytes())
    offsets = data.draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=16, unique=True))
    for o in offsets:
        b[o] ^= data.draw(st.integers(1, 255))
    chunk.write_bytes(bytes(b))
    report = verify(s, quick=True)
    assert not report.complete
    assert _named(report, group, _key(s, group, chunk)), report.problems
    assert len(report.problems) == 1
