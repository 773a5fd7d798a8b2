"""Integrity: every output records its input (path, size, SHA-256, a content hash of the frames read)
and the model bundle's hash; ``vidfilter verify`` finds missing, unreadable and unwritten frames,
interrupted runs and changed inputs; a partial output is never resumed with another input.
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from faults_helpers import assert_one_line_error, assert_same_output, read_group, root_attrs, vf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidfilter.config import Config
from vidfilter.errors import DiskFullError
from vidfilter.infer.pipeline import run
from vidfilter.io import zarr_sink
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.integrity import DIGEST_FILE, content_hash, frame_digest, verify
from vidfilter.io.registry import open as vf_open
from vidfilter.io.zarr_sink import OmeZarrWriter, frames_per_chunk


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def made(media, tiny_bundle, tmp_path_factory) -> Path:
    """One finished output of the tiny model in keyframe mode."""
    out = tmp_path_factory.mktemp("made") / "out.zarr"
    cfg = Config().override({"infer.every": 8, "infer.threads": 1, "infer.device": "cpu"})
    run(media["mkv"], out, model=tiny_bundle, config=cfg)
    return out


def test_output_records_input_and_model(made, media, tiny_bundle):
    """Oracles: the file's size and SHA-256, the frames re-read and hashed here, the bundle's bytes."""
    attrs = root_attrs(made)
    rec = attrs["input"]
    src = media["mkv"]
    assert rec["path"] == str(src.resolve()) and rec["size"] == src.stat().st_size and rec["sha256"] == _sha256(src)
    with vf_open(src) as s:
        want, digests = content_hash(s)
        first = s[0]
    assert rec["frames_read"] == 60 and rec["frames_xxh3"] == want and rec["damage"] is None
    assert digests[0] == frame_digest(first)
    assert (made / DIGEST_FILE).read_bytes() == b"".join(digests)
    assert attrs["model"]["sha256"] == _sha256(tiny_bundle)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _verify_main(capsys, *args: str) -> tuple[int, str]:
    """``vidfilter verify`` in this process (exit codes and report; the subprocess contract is
    checked once below)."""
    from vidfilter.cli import main

    rc = main(["verify", *args])
    return rc, capsys.readouterr().out


def test_verify_cli_complete_and_damaged_stores(made, media, tmp_path, capsys):
    """Exit 0 and a 'complete' summary; exit 1 naming the missing chunk, the unreadable frame, the
    changed input; exit 2 (one line) for something that is not an output store."""
    ok = vf("verify", str(made), "--input", str(media["mkv"]))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("complete: ") and "input matches" in ok.stdout.splitlines()[0]

    k = zarr.open_array(str(made / "foreground" / "0"), mode="r").chunks[0]  # frames per chunk
    assert 1 < k < 60
    lost = _copy(made, tmp_path / "lost.zarr")
    (lost / "foreground" / "0" / "c" / "1" / "0" / "0").unlink()
    rc, text = _verify_main(capsys, str(lost))
    assert rc == 1 and text.startswith("INCOMPLETE: ")
    assert f"foreground: chunk c/1/0/0 (frames {k}-{2 * k - 1}) is missing" in text

    garbled = _copy(made, tmp_path / "garbled.zarr")
    (garbled / "foreground" / "0" / "c" / "1" / "0" / "0").write_bytes(b"\x00garbage" * 10)
    rc, text = _verify_main(capsys, str(garbled))
    assert rc == 1 and f"foreground: frame {k} cannot be read" in text

    rc, text = _verify_main(capsys, str(made), "--input", str(media["mp4"]))  # same scene, lossy: other frames
    assert rc == 1 and "frames differ" in text and "first differing frame: 0" in text

    assert_one_line_error(vf("verify", str(media["mkv"])), "not a readable Zarr store")
    assert_one_line_error(vf("verify", str(tmp_path / "nothing.zarr")), "no such output store")


def test_verify_counts_frames_against_the_metadata(made, tmp_path):
    """A store whose arrays hold fewer frames than it declares is incomplete."""
    short = _copy(made, tmp_path / "short.zarr")
    root = zarr.open_group(str(short), mode="r+")
    vf_attrs = dict(root.attrs)["vidfilter"]
    vf_attrs["images"]["foreground"]["frames"] = 61
    vf_attrs["images"]["background"]["frames"] = 61
    root.attrs["vidfilter"] = vf_attrs
    report = verify(short, quick=True)
    assert not report.complete
    assert any("foreground: array holds 60 frames, the store declares 61" in p for p in report.problems)
    assert any("background: 60 of 61 frames recorded as written" in p for p in report.problems)  # stored at keyframes


def _fail_writes_from(monkeypatch, first_bad: int):
    real = zarr_sink.ZarrImageSink._append_at

    def failing(self, t, frame):
        if t >= first_bad:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, t, frame)

    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", failing)
    return real


def test_verify_reports_an_interrupted_run(tmp_path, monkeypatch):
    frames = np.random.default_rng(1).integers(0, 255, (40, 8, 8), dtype=np.uint8)
    out = tmp_path / "cut.zarr"
    _fail_writes_from(monkeypatch, 20)
    with pytest.raises(DiskFullError):
        run(ArrayFrameSource(frames), out, method="median")
    rep = verify(out)
    assert not rep.complete and "interrupted run" in rep.problems[0] and "rerun the same command" in rep.problems[0]


@pytest.mark.parametrize("kind", ["file", "array"])
def test_partial_output_of_another_input_is_not_resumed(tmp_path, monkeypatch, kind):
    """Interrupted on input A, rerun on input B with the same --out: B's output, no frame of A.
    A file is told apart by its recorded size/SHA-256, an in-memory array (no file hash) by the
    digests of the frames already processed."""
    rng = np.random.default_rng(2)
    a = rng.integers(0, 255, (40, 8, 8), dtype=np.uint8)
    b = rng.integers(0, 255, (40, 8, 8), dtype=np.uint8)
    if kind == "file":  # the same file name, new content
        np.save(tmp_path / "in.npy", a)
        first = second = tmp_path / "in.npy"
    else:
        first, second = ArrayFrameSource(a), ArrayFrameSource(b)
    out = tmp_path / "o.zarr"
    cfg = Config().override({"infer.every": 1})  # per frame: a resume would start at frame 30
    real = _fail_writes_from(monkeypatch, 30)
    with pytest.raises(DiskFullError):
        run(first, out, method="median", config=cfg)
    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", real)
    if kind == "file":
        np.save(tmp_path / "in.npy", b)
    summary = run(second, out, method="median", config=cfg)
    assert summary.frames_this_run == 40  # started afresh
    run(ArrayFrameSource(b), tmp_path / "ref.zarr", method="median", config=cfg)
    assert_same_output(out, tmp_path / "ref.zarr")


def test_partial_output_of_the_same_input_is_resumed(tmp_path, monkeypatch):
    """The check above does not over-trigger: the same input resumes after the durable frames."""
    frames = np.random.default_rng(3).integers(0, 255, (40, 8, 8), dtype=np.uint8)
    cfg = Config().override({"infer.every": 1})
    real = _fail_writes_from(monkeypatch, 30)
    with pytest.raises(DiskFullError):
        run(ArrayFrameSource(frames), tmp_path / "o.zarr", method="median", config=cfg)
    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", real)
    # the failed run recorded the 16 frames of its whole chunks when it stopped (16 frames a chunk;
    # the frames of the chunk being filled are lost): the rerun does the other 24
    assert frames_per_chunk(8 * 8, 40) == 16
    assert run(ArrayFrameSource(frames), tmp_path / "o.zarr", method="median", config=cfg).frames_this_run == 24


def test_resumed_run_stores_all_zero_frames(tmp_path, monkeypatch):
    """All-zero foreground frames written after a resume still get chunk files (verify: complete)."""
    frames = np.full((40, 8, 8), 90, np.uint8)  # a static scene: foreground == 0 everywhere
    out = tmp_path / "static.zarr"
    real = _fail_writes_from(monkeypatch, 20)
    with pytest.raises(DiskFullError):
        run(ArrayFrameSource(frames), out, method="median")
    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", real)
    run(ArrayFrameSource(frames), out, method="median")
    assert not read_group(out, "foreground").any()
    report = verify(out)
    assert report.complete, report.problems


_dtypes = st.sampled_from(["uint8", "uint16", "float16", "float32"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t=st.integers(1, 5), h=st.integers(1, 40), w=st.integers(1, 40), c=st.sampled_from([None, 3]), dtype=_dtypes,
    data=st.data(),
)
def test_property_writer_round_trip_and_verify_finds_any_lost_chunk(tmp_path_factory, t, h, w, c, dtype, data):
    """Any frame shape/dtype: the finished store verifies complete; delete any one chunk file and
    verify names it; the digests of the frames read back equal those of the frames written."""
    d = tmp_path_factory.mktemp("w")
    shape = (h, w) if c is None else (h, w, c)
    rng = np.random.default_rng(h * 100 + w)
    frames = (rng.random((t, *shape)) * (250 if dtype == "uint8" else 1)).astype(dtype)
    if dtype == "uint16":
        frames = (rng.random((t, *shape)) * 65535).astype(dtype)
    out = d / "w.zarr"
    with OmeZarrWriter(out, attrs={"method": "test"}) as w_:
        sink = w_.image("img", shape, dtype, fps=10.0, n_frames=t)
        for f in frames:
            sink.append(f)
    report = verify(out)
    assert report.complete, report.problems
    back = zarr.open_array(str(out / "img" / "0"), mode="r")
    for k in range(t):
        got = back[k] if c is None else np.moveaxis(back[k], 0, -1)
        assert frame_digest(got) == frame_digest(frames[k])
    files = sorted(p for p in (out / "img" / "0" / "c").rglob("*") if p.is_file())
    k = back.chunks[0]
    assert len(files) == -(-t // k)  # one chunk per run of frames, all-zero frames included
    lost = data.draw(st.sampled_from(files))
    lost.unlink()
    key = "/".join(lost.relative_to(out / "img" / "0").parts)
    lo = int(lost.relative_to(out / "img" / "0" / "c").parts[0]) * k
    frames_of = f"frame {lo}" if min(lo + k, t) - 1 == lo else f"frames {lo}-{min(lo + k, t) - 1}"
    report = verify(out, quick=True)
    assert not report.complete
    assert any(f"chunk {key} ({frames_of}) is missing" in p for p in report.problems), report.problems


def test_verify_json(made, capsys):
    rc, text = _verify_main(capsys, "--json", str(made))
    assert rc == 0
    rep = json.loads(text)
    assert rep["complete"] and rep["facts"]["images"]["background"]["frames"] == 60


@pytest.mark.parametrize("changed", [10, 0, 29])
def test_resume_over_a_zarr_input_changed_in_place_starts_afresh(tmp_path, monkeypatch, changed):
    """Killed at frame 30, one frame of the Zarr input before it changed in place, rerun: the run
    starts afresh, so the output and its input record describe the input as it is now, and
    verify --input agrees; verify against the original frames reports the changed frame."""
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 255, (40, 8, 8), dtype=np.uint8)
    store = tmp_path / "in.zarr"
    z = zarr.create_array(str(store), shape=frames.shape, chunks=(1, 8, 8), dtype="uint8")
    z[:] = frames
    out = tmp_path / "o.zarr"
    cfg = Config().override({"infer.every": 1})
    real = _fail_writes_from(monkeypatch, 30)
    with pytest.raises(DiskFullError):
        run(store, out, method="median", config=cfg)
    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", real)
    z[changed] = 255 - frames[changed]
    summary = run(store, out, method="median", config=cfg)
    assert summary.frames_this_run == 40  # not resumed on frames computed from the old input
    now = np.asarray(z[:])
    run(ArrayFrameSource(now), tmp_path / "ref.zarr", method="median", config=cfg)
    assert_same_output(out, tmp_path / "ref.zarr")
    assert root_attrs(out)["input"]["frames_xxh3"] == content_hash(ArrayFrameSource(now))[0]
    rep = verify(out, input=store)
    assert rep.complete and rep.facts["input_check"] == "match", rep.problems
    rep = verify(out, input=ArrayFrameSource(frames))
    assert not rep.complete and f"first differing frame: {changed}" in rep.problems[-1]


@pytest.mark.parametrize("changed", [20, 36])
def test_a_changed_frame_past_the_written_ones_is_caught_when_the_background_used_it(tmp_path, monkeypatch, changed):
    """Killed with 16 frames durable, then a later frame of the Zarr input changed in place: the
    median of the interrupted run was computed from every frame (its setup), so its 16 stored
    frames depend on the changed one. The rerun starts afresh and equals a clean run on the input
    as it is now (frame 20 was also streamed before the kill; frame 36 only read by the setup)."""
    frames = np.random.default_rng(6).integers(0, 255, (40, 8, 8), dtype=np.uint8)
    store = tmp_path / "in.zarr"
    z = zarr.create_array(str(store), shape=frames.shape, chunks=(1, 8, 8), dtype="uint8")
    z[:] = frames
    out = tmp_path / "o.zarr"
    cfg = Config().override({"infer.every": 1, "infer.queue_size": 1})
    real = _fail_writes_from(monkeypatch, 30)
    with pytest.raises(DiskFullError):
        run(store, out, method="median", config=cfg)
    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", real)
    z[changed] = 255 - frames[changed]
    assert run(store, out, method="median", config=cfg).frames_this_run == 40
    run(ArrayFrameSource(np.asarray(z[:])), tmp_path / "ref.zarr", method="median", config=cfg)
    assert_same_output(out, tmp_path / "ref.zarr")
