"""SIGKILL at random points of every long command; the same command then resumes (or redoes) its
work to an output identical to an uninterrupted run.

Commands: ``convert`` to OME-Zarr, FFV1, HDF5, a PNG folder and a TIFF folder; ``extract-crops``;
``synth --preview``; ``run`` on several inputs with ``--out-dir`` (killed during the second
input); ``run --method median --format zarr hdf5 ffv1 preview`` (killed during the exports).
``run`` and ``train`` on one input are in ``test_kills.py``.

Each attack:

1. runs the command once uninterrupted (the reference), watching its work-in-progress path to
   measure the *write window*: from the moment that path first holds data to the moment the final
   output appears;
2. starts the command again and, once the same path holds data written by *this* process, waits a
   seeded random fraction of the window and sends SIGKILL. A kill that lands after the final output
   appeared (a loaded machine) is retried from scratch with a shorter wait, so every attack ends with
   a kill in the middle of the writing; nothing here depends on a test hook that slows the writer;
3. after every kill: each final output is absent, or complete and equal to the reference (for a Zarr
   store its root attribute ``vidfilter.complete``; files appear only by an atomic rename);
4. reruns the same command: exit 0, outputs equal to the reference (arrays, decoded frames, or bytes
   where the format is deterministic; for a crop bank its manifest and every crop), no temporary
   file or ``*.partial`` left, and the inputs unchanged (SHA-256 and mtime).

The default tier kills once per command, plus the exact kill points that fail today; ``slow``
variants kill several times in a row (each kill lands on the partial state the previous one left)
and at the other exact points.

A second family kills at exact points instead of moments: the command runs in a child process
that SIGKILLs itself before the K-th call of a writer's function (``FFV1Sink.append``,
``_write_tiff`` of the crop bank, ``os.fsync``) or right before the rename onto a given path (the
final output, or a work-in-progress folder). Each state a kill can leave is then reached on every
run, however loaded the machine, and the same checks follow.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr
from faults_helpers import vf, vf_popen
from kill_points import after_unlink_point, call_point, rename_point, vf_at

from vidfilter.config import Config
from vidfilter.infer.pipeline import run
from vidfilter.models import load_model
from vidfilter.static.extract import extract_crops
from vidfilter.synth.lookalike import make_coculture, write_coculture

POLL_S = 0.001

# ---------------------------------------------------------------------------------------------
# file-system observations


def _fingerprint(paths: Sequence[Path]) -> dict[str, tuple[str, int]]:
    """SHA-256 and mtime (ns) of every file under ``paths`` (files or folder trees)."""
    out: dict[str, tuple[str, int]] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
    assert out, f"no input files under {paths}"
    return out


def _tree_state(paths: Sequence[Path]) -> tuple:
    """What is on disk under ``paths`` (name, size, mtime of every file); ``None`` for a missing path."""
    state = []
    for p in paths:
        try:
            if p.is_dir():
                entries = []
                for dirpath, _dirs, files in os.walk(p):
                    for name in files:
                        try:
                            st = os.stat(os.path.join(dirpath, name))
                        except OSError:  # removed while walking
                            continue
                        entries.append((os.path.relpath(os.path.join(dirpath, name), p), st.st_size, st.st_mtime_ns))
                state.append((str(p), tuple(sorted(entries))))
            else:
                st = os.stat(p)
                state.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            state.append((str(p), None))
    return tuple(state)


def _holds_data(paths: Sequence[Path]) -> bool:
    """A non-empty file, or a folder holding a non-hidden file (a frame, a chunk, a crop)."""
    for p in paths:
        try:
            if p.is_file() and p.stat().st_size > 0:
                return True
            if p.is_dir():
                for _dirpath, _dirs, files in os.walk(p):
                    if any(not n.startswith(".") for n in files):
                        return True
        except OSError:
            continue
    return False


def _strays(root: Path) -> list[str]:
    """Temporary files, work-in-progress paths and leftover locks anywhere under ``root``."""
    bad = []
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if (
                ".tmp" in name or ".old-" in name or name.endswith(".partial") or name.startswith(".vidfilter-write-test")
                or name in (".lock", ".vidfilter_progress.json")
            ):
                bad.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(bad)


# ---------------------------------------------------------------------------------------------
# output comparison


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _zarr_complete(store: Path) -> bool:
    attrs = dict(zarr.open_group(str(store), mode="r").attrs)
    return bool((attrs.get("vidfilter") or {}).get("complete"))


def _same_zarr(ref: Path, out: Path) -> None:
    assert _zarr_complete(out), f"{out}: root attribute vidfilter.complete is not true"
    assert _files(out) == _files(ref), f"{out}: files differ from the uninterrupted run's"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vidfilter's digest files are not Zarr nodes
        a = {p: n[:] for p, n in zarr.open_group(str(ref), mode="r").members(max_depth=None) if isinstance(n, zarr.Array)}
        b = {p: n[:] for p, n in zarr.open_group(str(out), mode="r").members(max_depth=None) if isinstance(n, zarr.Array)}
    assert a.keys() == b.keys() and a, (sorted(a), sorted(b))
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), f"{out}/{k}"
    for name in _files(ref):  # chunks and digests; zarr.json holds the finalisation time
        if Path(name).name != "zarr.json":
            assert (ref / name).read_bytes() == (out / name).read_bytes(), f"{out}/{name}"


def _same_hdf5(ref: Path, out: Path) -> None:
    import h5py

    def datasets(path: Path) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return found

    a, b = datasets(ref), datasets(out)
    assert a.keys() == b.keys() and a, (sorted(a), sorted(b))
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{out}/{k}"


def _decoded(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray() for f in c.decode(video=0)])


def _same_manifest(ref: Path, out: Path) -> None:
    a, b = (json.loads(p.read_text()) for p in (ref, out))
    a.pop("created_unix", None)
    b.pop("created_unix", None)
    assert a == b, f"{out}: manifest differs from the uninterrupted run's"


def _same(ref: Path, out: Path) -> None:
    """``out`` equals the reference output ``ref``: the comparison its format allows."""
    assert out.exists(), f"{out} is missing"
    if ref.is_dir() and (ref / "zarr.json").exists():
        _same_zarr(ref, out)
    elif ref.is_dir():  # image sequence or crop bank
        assert _files(out) == _files(ref), f"{out}: files differ from the uninterrupted run's"
        for name in _files(ref):
            if name == "manifest.json":
                _same_manifest(ref / name, out / name)
            else:
                assert (ref / name).read_bytes() == (out / name).read_bytes(), f"{out}/{name}"
    elif ref.suffix in (".h5", ".hdf5"):
        _same_hdf5(ref, out)
    elif ref.suffix in (".mkv", ".mp4"):  # FFV1/Matroska bytes hold a random segment id: compare frames
        a, b = _decoded(ref), _decoded(out)
        assert a.shape == b.shape and np.array_equal(a, b), out
    else:
        assert ref.read_bytes() == out.read_bytes(), out


# ---------------------------------------------------------------------------------------------
# running and killing


@dataclass
class Attack:
    """One command under attack.

    ``args(root)``: the command line writing under ``root``; ``finals``: the names of its outputs
    under ``root``; ``watch(root)``: the work-in-progress paths whose first data starts the write
    window (``need_data=False``: their mere appearance does); ``done``: the output whose appearance
    ends the window (a kill after it is late); ``inputs``: paths that must stay unchanged;
    ``reference(root)``, where given, writes the reference outputs in this process instead of the
    command and returns the write window it measured.
    """

    args: Callable[[Path], list[str]]
    finals: list[str]
    watch: Callable[[Path], list[Path]]
    done: str
    inputs: list[Path]
    need_data: bool = True
    poll_s: float = POLL_S
    reference: Callable[[Path], float] | None = None


def _triggered(attack: Attack, root: Path, before: tuple) -> bool:
    paths = attack.watch(root)
    now = _tree_state(paths)
    if now == before:
        return False
    return _holds_data(paths) if attack.need_data else any(p.exists() for p in paths)


def _measure(attack: Attack, root: Path) -> float:
    """Run uninterrupted into ``root`` (the reference); return the write window in seconds."""
    root.mkdir(parents=True, exist_ok=True)
    before = _tree_state(attack.watch(root))
    proc = vf_popen(*attack.args(root))
    t_start, t_trigger, t_done = time.perf_counter(), None, None
    while proc.poll() is None and time.perf_counter() - t_start < 300:
        now = time.perf_counter()
        if t_trigger is None and _triggered(attack, root, before):
            t_trigger = now
        if t_done is None and (root / attack.done).exists():
            t_done = now
        time.sleep(attack.poll_s)
    if proc.poll() is None:
        proc.kill()
    _out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    end = t_done or time.perf_counter()
    return max(end - (t_trigger or end), 0.0)


def _kill_once(attack: Attack, root: Path, delay: float) -> bool:
    """Start the command, SIGKILL it ``delay`` s after its work-in-progress path first holds data
    that this process wrote; False if the process had ended by then."""
    before = _tree_state(attack.watch(root))
    proc = vf_popen(*attack.args(root))
    deadline = time.perf_counter() + 300
    while proc.poll() is None and time.perf_counter() < deadline and not _triggered(attack, root, before):
        time.sleep(attack.poll_s)
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    _out, err = proc.communicate()
    if not alive:
        assert proc.returncode == 0, f"the command failed before the kill: {err.decode()}"
    return alive


def _check_after_kill(attack: Attack, root: Path, ref: Path) -> None:
    """Each final output is absent, or complete and equal to the uninterrupted run's."""
    for name in attack.finals:
        if (root / name).exists():
            _same(ref / name, root / name)


def _kill_mid_write(attack: Attack, root: Path, ref: Path, window: float, rng: random.Random, tries: int = 4) -> None:
    """One SIGKILL at a seeded random point of the write window, before the last output appears.

    A kill that lands later (the last output is there: the process was exiting) is checked,
    its outputs removed, and the attack repeated with a quarter of the wait; the last try kills as
    soon as the write starts.
    """
    frac = rng.uniform(0.0, 0.9)
    for attempt in range(tries):
        delay = 0.0 if attempt == tries - 1 else frac * window
        killed = _kill_once(attack, root, delay)
        _check_after_kill(attack, root, ref)
        if killed and not (root / attack.done).exists():
            return
        shutil.rmtree(root)
        root.mkdir()
        frac /= 4
    pytest.fail(f"{attack.args(root)[0]}: every kill landed after {attack.done} appeared")


def _attack(attack: Attack, tmp_path: Path, *, seed: int, kills: int) -> None:
    inputs_before = _fingerprint(attack.inputs)
    ref = tmp_path / "ref"
    if attack.reference is not None:
        ref.mkdir()
        window = attack.reference(ref)
    else:
        window = _measure(attack, ref)
    root = tmp_path / "out"
    root.mkdir()
    rng = random.Random(seed)
    for _ in range(kills):
        _kill_mid_write(attack, root, ref, window, rng)
    _rerun_matches(attack, root, ref, "after the kill")
    assert _fingerprint(attack.inputs) == inputs_before, "an input changed"


def _rerun_matches(attack: Attack, root: Path, ref: Path, after: str) -> None:
    """Rerun the command on what the kills left in ``root``: it finishes, its outputs equal the
    reference's and nothing else is left; ``after`` names the kills in the failure messages."""
    proc = vf(*attack.args(root))
    assert proc.returncode == 0, f"rerun {after}: exit {proc.returncode}: {proc.stderr.strip()}"
    for name in attack.finals:
        _same(ref / name, root / name)
    assert not _strays(root), f"left behind {after}: {_strays(root)}"


# ---------------------------------------------------------------------------------------------
# kills at exact points (tests/kill_points.py)


def _kill_at(attack: Attack, root: Path, point: dict) -> None:
    """Run the command in a child that SIGKILLs itself at ``point``; the point must be reached."""
    spec = dict(point)
    if spec["kind"] == "rename":
        spec["path"] = str(root / spec.pop("name"))
    vf_at(spec, *attack.args(root))


def _attack_at(attack: Attack, tmp_path: Path, series: Sequence[Sequence[dict]]) -> None:
    """For each series of kill points: kill at each in turn (each on what the previous left),
    check, rerun, compare; then start the next series from an empty folder."""
    inputs_before = _fingerprint(attack.inputs)
    ref = tmp_path / "ref"
    ref.mkdir()
    proc = vf(*attack.args(ref))
    assert proc.returncode == 0, proc.stderr
    for points in series:
        root = tmp_path / "out"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir()
        for point in points:
            _kill_at(attack, root, point)
            _check_after_kill(attack, root, ref)
        _rerun_matches(attack, root, ref, f"after kills at {list(points)}")
    assert _fingerprint(attack.inputs) == inputs_before, "an input changed"


# ---------------------------------------------------------------------------------------------
# convert


def _convert(src: Path, name: str) -> Attack:
    return Attack(
        args=lambda root: ["convert", str(src), str(root / name)],
        finals=[name],
        watch=lambda root: [root / f"{name}.partial"],
        done=name,
        inputs=[src],
    )


CONVERT_CASES = [
    pytest.param("out.zarr", id="zarr"),
    pytest.param("out.mkv", id="ffv1"),
    pytest.param("out.h5", id="hdf5"),
    pytest.param("frames", id="png-folder"),
    pytest.param("frames.tif", id="tif-folder"),
]
#: The ``append`` each output's writer gets its frames through.
WRITER_APPEND = {
    "out.zarr": ("vidfilter.io.zarr_sink", "ZarrImageSink.append"),
    "out.mkv": ("vidfilter.io.video_sink", "FFV1Sink.append"),
    "out.h5": ("vidfilter.io.hdf5_sink", "Hdf5Sink.append"),
    "frames": ("vidfilter.io.images_sink", "ImageSequenceSink.append"),
    "frames.tif": ("vidfilter.io.images_sink", "ImageSequenceSink.append"),
}
#: In the default tier the header-only FFV1 partial (a writer killed after its first frame); the others are ``slow``.
CONVERT_POINT_CASES = [
    pytest.param("out.zarr", id="zarr", marks=pytest.mark.slow),
    pytest.param("out.mkv", id="ffv1"),
    pytest.param("out.h5", id="hdf5", marks=pytest.mark.slow),
    pytest.param("frames", id="png-folder", marks=pytest.mark.slow),
    pytest.param("frames.tif", id="tif-folder", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name", CONVERT_CASES)
def test_sigkill_convert(media, tmp_path, name):
    """``vidfilter convert``: one kill while the output is written, then the same command."""
    _attack(_convert(media["long_mkv"], name), tmp_path, seed=11, kills=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", CONVERT_CASES)
def test_sigkill_convert_soak(media, tmp_path, name, seed):
    """Soak: three kills in a row at seeded random points, then the same command."""
    _attack(_convert(media["long_mkv"], name), tmp_path, seed=200 + seed, kills=3)


@pytest.mark.parametrize("name", CONVERT_POINT_CASES)
def test_sigkill_convert_at_points(media, tmp_path, name):
    """``vidfilter convert`` killed after its first frame (a partial holding little more than its
    header) and right before the final rename (a partial holding everything): each rerun finishes
    to the reference output."""
    module, attr = WRITER_APPEND[name]
    _attack_at(_convert(media["long_mkv"], name), tmp_path, [[call_point(module, attr, 1)], [rename_point(name)]])


@pytest.mark.parametrize(("name", "marker"), [
    pytest.param("out.zarr", "zarr.json", id="zarr", marks=pytest.mark.slow),
    pytest.param("frames", ".vidfilter.json", id="png-folder"),
    pytest.param("frames.tif", ".vidfilter.json", id="tif-folder"),
])
def test_sigkill_convert_while_clearing_the_partial(media, tmp_path, name, marker):
    """Killed half-way, then the rerun killed just after it deleted the partial's mark (or, for a
    resumed store, its first metadata file): the next rerun still finishes to the reference."""
    module, attr = WRITER_APPEND[name]
    _attack_at(_convert(media["long_mkv"], name), tmp_path, [[call_point(module, attr, 60), after_unlink_point(marker)]])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(WRITER_APPEND))
def test_sigkill_convert_at_points_soak(media, tmp_path, name, seed):
    """Three kills in a row, each after a seeded random number of frames of its own run (for
    FFV1 these seeds never end on the header-only partial of ``test_sigkill_convert_at_points``)."""
    module, attr = WRITER_APPEND[name]
    rng = random.Random(700 + seed)
    points = [call_point(module, attr, rng.randint(0, 100)) for _ in range(3)]
    _attack_at(_convert(media["long_mkv"], name), tmp_path, [points])


# ---------------------------------------------------------------------------------------------
# extract-crops and synth (static mode)

STATIC_YAML = """\
static:
  extract: {recipe: points, min_area: 30, smooth: 1.0}
  synth: {targets: [2, 5], unwanted: [2, 5]}
"""


@pytest.fixture(scope="module")
def coculture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight 256 px co-culture look-alikes with point annotations, and a static config."""
    root = tmp_path_factory.mktemp("coculture")
    write_coculture(make_coculture(8, 256, seed=3), root)
    (root / "static.yaml").write_text(STATIC_YAML)
    return root


@pytest.fixture(scope="module")
def bank(coculture: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank") / "bank"
    extract_crops([coculture / "images"], out, Config.from_yaml(coculture / "static.yaml"), annotations=coculture / "points")
    return out


def _extract(coculture: Path) -> Attack:
    return Attack(
        args=lambda root: ["extract-crops", str(coculture / "images"), "--annotations", str(coculture / "points"),
                           "--config", str(coculture / "static.yaml"), "--out", str(root / "bank")],
        finals=["bank"],
        watch=lambda root: [root / "bank.partial"],
        done="bank",
        inputs=[coculture],
    )


def _synth(coculture: Path, bank: Path) -> Attack:
    """``synth --preview``: the PNG goes to a hidden temporary file, then is renamed; the window is
    the temporary file's life, and the kill leaves it behind for the rerun to remove."""
    return Attack(
        args=lambda root: ["synth", str(bank), "--config", str(coculture / "static.yaml"),
                           "--preview", str(root / "pairs.png"), "--pairs", "8"],
        finals=["pairs.png"],
        watch=lambda root: sorted(root.glob(".pairs.*.tmp.png")),
        done="pairs.png",
        inputs=[bank, coculture / "static.yaml"],
        need_data=False,
        poll_s=0.0002,
    )


def test_sigkill_extract_crops(coculture, tmp_path):
    """``vidfilter extract-crops``: killed while the bank is written, the rerun clears the partial
    bank (it carries vidfilter's marker) and writes the same manifest and crops."""
    _attack(_extract(coculture), tmp_path, seed=21, kills=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_extract_crops_soak(coculture, tmp_path, seed):
    _attack(_extract(coculture), tmp_path, seed=300 + seed, kills=3)


@pytest.mark.slow
def test_sigkill_extract_crops_at_points(coculture, tmp_path):
    """``extract-crops`` killed before its work-in-progress folder gets its name (a marked staging
    folder is left), after a few crops, and right before the final rename: each rerun clears what
    the kill left and writes the reference bank."""
    _attack_at(_extract(coculture), tmp_path, [
        [rename_point("bank.partial")],
        [call_point("vidfilter.static.bank", "_write_tiff", 5)],
        [rename_point("bank")],
    ])


def test_sigkill_extract_crops_while_clearing_the_partial(coculture, tmp_path):
    """A kill leaves a partial bank; the rerun is killed while deleting it, just after the marker
    file went and before the crops did; the next rerun still clears everything and writes the bank."""
    _attack_at(_extract(coculture), tmp_path, [[
        call_point("vidfilter.static.bank", "_write_tiff", 60),
        after_unlink_point(".vidfilter.json"),
    ]])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_sigkill_extract_crops_at_points_soak(coculture, tmp_path, seed):
    """Three kills in a row at seeded random crops (one before the folder is named), then the rerun."""
    rng = random.Random(800 + seed)
    points = [rename_point("bank.partial"), *(call_point("vidfilter.static.bank", "_write_tiff", rng.randint(0, 120)) for _ in range(2))]
    rng.shuffle(points)
    _attack_at(_extract(coculture), tmp_path, [points])


def test_sigkill_synth_preview(coculture, bank, tmp_path):
    """``vidfilter synth --preview``: killed while the PNG is written, the rerun removes the
    temporary file and writes the same bytes."""
    _attack(_synth(coculture, bank), tmp_path, seed=31, kills=1)


@pytest.mark.slow
def test_sigkill_synth_preview_at_points(coculture, bank, tmp_path):
    """``synth --preview`` killed after the PNG's bytes went to its temporary file but before the
    ``fsync``, and right before the rename; once, then twice in a row (two temporary files of dead
    processes): the rerun removes them and writes the same bytes."""
    _attack_at(_synth(coculture, bank), tmp_path, [
        [call_point("os", "fsync", 0)],
        [rename_point("pairs.png")],
        [call_point("os", "fsync", 0), rename_point("pairs.png")],
    ])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_sigkill_synth_preview_soak(coculture, bank, tmp_path, seed):
    _attack(_synth(coculture, bank), tmp_path, seed=400 + seed, kills=3)


# ---------------------------------------------------------------------------------------------
# run: a batch, and the exports


def _batch(media: dict[str, Path], bundle: Path) -> Attack:
    """Three inputs into ``--out-dir``; the window is the second input's. The reference is written
    in this process (the same :func:`~vidfilter.infer.pipeline.run` per input as the command's)."""
    inputs = [media["long_mkv"], media["mkv"], media["mp4"]]
    names = [f"{p.stem}.zarr" for p in inputs]

    def reference(root: Path) -> float:
        cfg = Config().override({"infer.every": 8, "infer.adaptive": False, "infer.threads": 1, "infer.device": "cpu"})
        model = load_model(bundle)
        window = 0.0
        for i, (src, name) in enumerate(zip(inputs, names)):
            t0 = time.perf_counter()
            run(src, root / name, model=model, config=cfg)
            if i == 1:
                window = time.perf_counter() - t0
        return window

    return Attack(
        args=lambda root: ["run", *map(str, inputs), "--model", str(bundle), "--out-dir", str(root), "--every", "8",
                           "--no-adaptive", "--threads", "1", "--device", "cpu"],
        finals=names,
        watch=lambda root: [root / f"{names[1]}.partial"],
        done=names[1],
        inputs=[*inputs, bundle],
        reference=reference,
    )


def test_sigkill_run_batch_during_second_input(media, tiny_bundle, tmp_path):
    """``vidfilter run A B C --out-dir D``: killed while B is written; A stays complete, B and C do
    not exist; the rerun resumes B and writes C, all three equal an uninterrupted batch."""
    _attack(_batch(media, tiny_bundle), tmp_path, seed=41, kills=1)


@pytest.mark.slow
def test_sigkill_run_batch_at_points(media, tiny_bundle, tmp_path):
    """The batch killed right before the second input's store is renamed (it holds every frame),
    and right before the third's: the rerun finishes, every store equals the reference."""
    names = [f"{p.stem}.zarr" for p in (media["long_mkv"], media["mkv"], media["mp4"])]
    _attack_at(_batch(media, tiny_bundle), tmp_path, [[rename_point(names[1])], [rename_point(names[2])]])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_sigkill_run_batch_soak(media, tiny_bundle, tmp_path, seed):
    _attack(_batch(media, tiny_bundle), tmp_path, seed=500 + seed, kills=3)


EXPORTS = ["med.zarr", "med.h5", "med.background.mkv", "med.foreground.mkv", "med.preview.png", "med.preview.mp4"]


def _exports(media: dict[str, Path]) -> Attack:
    """``run --method median --format zarr hdf5 ffv1 preview``: the window runs from the first
    export's appearance (the store is finished) to the last export's."""
    src = media["mkv"]
    exports = [n for n in EXPORTS if n != "med.zarr"]
    return Attack(
        args=lambda root: ["run", str(src), "--method", "median", "--out", str(root / "med.zarr"),
                           "--format", "zarr", "hdf5", "ffv1", "preview"],
        finals=EXPORTS,
        watch=lambda root: [root / n for n in exports] + [root / f"{n}.partial" for n in exports],
        done="med.preview.mp4",
        inputs=[src],
        need_data=False,
    )


def test_sigkill_run_during_exports(media, tmp_path):
    """Killed while the finished store is exported: every export is absent or complete; the rerun
    writes the missing exports, all equal to an uninterrupted run's."""
    _attack(_exports(media), tmp_path, seed=51, kills=1)


@pytest.mark.parametrize("point", [
    pytest.param(rename_point("med.h5"), id="before-h5-rename", marks=pytest.mark.slow),
    pytest.param(call_point("vidfilter.io.video_sink", "FFV1Sink.append", 1), id="ffv1-first-frame"),
    pytest.param(rename_point("med.foreground.mkv"), id="before-ffv1-rename", marks=pytest.mark.slow),
    pytest.param(rename_point("med.preview.mp4"), id="before-preview-rename", marks=pytest.mark.slow),
])
def test_sigkill_run_exports_at_points(media, tmp_path, point):
    """Killed at exact points of the exports: the rerun writes what is missing, equal to the reference."""
    _attack_at(_exports(media), tmp_path, [[point]])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_sigkill_run_during_exports_soak(media, tmp_path, seed):
    _attack(_exports(media), tmp_path, seed=600 + seed, kills=3)
