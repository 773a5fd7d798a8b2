"""Hostile files next to the inputs and outputs: planted pickles, damaged checkpoints and bundles,
forged frame-index caches.

No file vidfilter reads may execute code: checkpoints and bundles are loaded with
``torch.load(weights_only=True)`` and the rest of their state is JSON; the frame-index cache is JSON
checked against the video. Every attack here either ends in one line on stderr with exit code 2
(and the payload's side-effect file never appears), or, for the index cache, is ignored: the index
is rebuilt and the video reads as it should. The inputs are unchanged after each attack.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from faults_helpers import assert_no_output, assert_one_line_error, read_group, vf

from vidfilter.errors import BundleError
from vidfilter.io.video_source import VideoFrameSource, _cache_file
from vidfilter.models import load_model
from vidfilter.train.checkpoint import CHECKPOINT_VERSION, encode_state, load_checkpoint, save_checkpoint

#: What the one line may advise for a checkpoint that cannot be resumed: delete it / train anew
#: (BundleError), or move it away (a file training will not replace, ForeignOutputError).
CKPT_ADVICE = ("delete it to start afresh", "train without --resume", "move it away")
TRAIN = ("--steps", "5", "--crop", "16", "--width", "4", "--threads", "1")


class Planted:
    """Unpickling this creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def _zip_with_pickle(path: Path, obj: object) -> Path:
    """A zip laid out like a torch archive whose ``data.pkl`` is a bare pickle of ``obj``."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        z.writestr("archive/version", "3\n")
    return path


# -- training checkpoints through `vidfilter train --resume` ---------------------------------------
@pytest.fixture(scope="module")
def genuine_ckpt(media, tmp_path_factory) -> Path:
    """A checkpoint of a real 2-step run with the settings the attacks resume with."""
    d = tmp_path_factory.mktemp("genuine")
    proc = vf("train", str(media["mkv"]), "--out", str(d / "model.vfm"), *TRAIN[:1], "2", *TRAIN[2:])
    assert proc.returncode == 0, proc.stderr
    return d / "model.ckpt"


def _edited(genuine: Path, dst: Path, edit) -> Path:
    state = load_checkpoint(genuine)
    edit(state)
    return save_checkpoint(dst, state)


def _wrong_model_shape(state: dict) -> None:
    k = next(iter(state["model"]))
    state["model"][k] = torch.zeros(3, 3)


def _payload(obj: object):
    return lambda g, p, m: torch.save(obj(m) if callable(obj) else obj, p)


CKPT_ATTACKS = {
    "pickle payload in a torch archive": _payload(lambda m: {"checkpoint_version": 2, "state_json": "{}", "tensors": {}, "x": Planted(m)}),
    "pickle payload as the version": _payload(lambda m: {"checkpoint_version": Planted(m)}),
    "raw pickle": lambda g, p, m: p.write_bytes(pickle.dumps(Planted(m))),
    "pickle in a hand-made zip": lambda g, p, m: _zip_with_pickle(p, Planted(m)),
    "truncated checkpoint": lambda g, p, m: p.write_bytes(g.read_bytes()[: g.stat().st_size // 2]),
    "random bytes": lambda g, p, m: p.write_bytes(np.random.default_rng(1).bytes(5000)),
    "zip header then random bytes": lambda g, p, m: p.write_bytes(b"PK\x03\x04" + np.random.default_rng(2).bytes(5000)),
    "zero bytes": lambda g, p, m: p.write_bytes(b""),
    "old format with numpy objects": _payload({"checkpoint_version": 1, "step": np.int64(2), "config": {},
                                               "sampler": {"offsets": np.zeros(2)}, "torch_rng": torch.get_rng_state()}),
    "old format of plain data": _payload({"checkpoint_version": 1, "step": 2, "config": {}, "torch_rng": torch.get_rng_state()}),
    "newer format": _payload({"checkpoint_version": CHECKPOINT_VERSION + 1, "state_json": "{}", "tensors": {}}),
    "JSON that is not JSON": _payload({"checkpoint_version": 2, "state_json": "{'step': 2", "tensors": {}}),
    "JSON lacking the training keys": lambda g, p, m: save_checkpoint(p, {"step": 2}),
    "JSON lacking config": lambda g, p, m: _edited(g, p, lambda s: s.pop("config")),
    "JSON step of the wrong type": lambda g, p, m: _edited(g, p, lambda s: s.update(step="2")),
    "model weights of the wrong shape": lambda g, p, m: _edited(g, p, _wrong_model_shape),
    "sampler run outside the recording": lambda g, p, m: _edited(g, p, lambda s: s["sampler"]["runs"].insert(0, [0, 10_000, 1, 1])),
    "sampler RNG of another kind": lambda g, p, m: _edited(g, p, lambda s: s["sampler"]["rng"].update(bit_generator="MT19937")),
    "loss history of the wrong type": lambda g, p, m: _edited(g, p, lambda s: s["result"].update(train_loss="low")),
    "torch RNG state of the wrong dtype": lambda g, p, m: _edited(g, p, lambda s: s.update(torch_rng=torch.zeros(4))),
}


@pytest.mark.parametrize("attack", list(CKPT_ATTACKS))
def test_planted_checkpoint_is_refused_in_one_line(attack, media, genuine_ckpt, tmp_path):
    """``train IN --out model.vfm --resume`` next to a planted or damaged ``model.ckpt``: exit 2,
    one line naming the checkpoint and what to do, no payload executed, nothing written."""
    src = media["mkv"]
    before = fingerprint(src)
    out, ckpt, marker = tmp_path / "model.vfm", tmp_path / "model.ckpt", tmp_path / "pwned"
    CKPT_ATTACKS[attack](genuine_ckpt, ckpt, marker)
    planted = ckpt.read_bytes()
    proc = vf("train", str(src), "--out", str(out), *TRAIN, "--resume")
    line = assert_one_line_error(proc, str(ckpt))
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert any(a in line for a in CKPT_ADVICE), line
    assert not marker.exists(), "the planted payload ran"
    assert fingerprint(src) == before
    assert ckpt.read_bytes() == planted  # refused, not replaced
    assert not out.exists()


def test_genuine_checkpoint_still_resumes(media, genuine_ckpt, tmp_path):
    """The control of the attacks above: the untouched checkpoint resumes to the end."""
    out = tmp_path / "model.vfm"
    shutil.copy2(genuine_ckpt, tmp_path / "model.ckpt")
    proc = vf("train", str(media["mkv"]), "--out", str(out), *TRAIN, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(tmp_path / "model.ckpt")["step"] == 5 and load_model(out).provenance["steps"] == 5


@pytest.mark.parametrize("attack", ["pickle payload in a torch archive", "pickle in a hand-made zip", "old format with numpy objects"])
def test_planted_checkpoint_is_a_bundle_error_in_process(attack, genuine_ckpt, tmp_path):
    """Read directly, the same files give a one-line BundleError without running the payload."""
    ckpt, marker = tmp_path / "model.ckpt", tmp_path / "pwned"
    CKPT_ATTACKS[attack](genuine_ckpt, ckpt, marker)
    with pytest.raises(BundleError) as err:
        load_checkpoint(ckpt)
    assert "\n" not in str(err.value) and "delete it to start afresh" in str(err.value)
    assert not marker.exists()


# -- model bundles through `vidfilter run --model` -------------------------------------------------
def _bundle_payload(tiny: Path) -> dict:
    return torch.load(tiny, weights_only=True)


BUNDLE_ATTACKS = {
    "pickle payload in a bundle": lambda t, p, m: torch.save({**_bundle_payload(t), "provenance": {"x": Planted(m)}}, p),
    "pickle payload as the whole bundle": lambda t, p, m: torch.save(Planted(m), p),
    "raw pickle": lambda t, p, m: p.write_bytes(pickle.dumps(Planted(m))),
    "pickle in a hand-made zip": lambda t, p, m: _zip_with_pickle(p, {"format": "vidfilter-bundle", "x": Planted(m)}),
    "truncated bundle": lambda t, p, m: p.write_bytes(t.read_bytes()[: t.stat().st_size // 3]),
    "zero bytes": lambda t, p, m: p.write_bytes(b""),
    "random bytes": lambda t, p, m: p.write_bytes(np.random.default_rng(3).bytes(5000)),
    "zip header then random bytes": lambda t, p, m: p.write_bytes(b"PK\x03\x04" + np.random.default_rng(4).bytes(5000)),
}


@pytest.mark.parametrize("attack", list(BUNDLE_ATTACKS))
def test_planted_bundle_is_refused_in_one_line(attack, media, tiny_bundle, tmp_path):
    src = media["mkv"]
    before = fingerprint(src)
    bad, marker, out = tmp_path / "bad model.vfm", tmp_path / "pwned", tmp_path / "out.zarr"
    BUNDLE_ATTACKS[attack](tiny_bundle, bad, marker)
    planted = fingerprint(bad)
    proc = vf("run", str(src), "--model", str(bad), "--out", str(out))
    line = assert_one_line_error(proc, "bad model.vfm")
    assert "internal error" not in proc.stderr
    assert "vidfilter train" in line, line  # what to do: pass a bundle written by `vidfilter train`
    assert not marker.exists(), "the planted payload ran"
    assert fingerprint(src) == before and fingerprint(bad) == planted
    assert_no_output(out)
    with pytest.raises(BundleError) as err:  # and the same in process
        load_model(bad)
    assert "\n" not in str(err.value)
    assert not marker.exists()


# -- the frame-index cache -------------------------------------------------------------------------
def _index(path: Path) -> dict:
    with VideoFrameSource(path) as src:
        return json.loads(Path(src.index_path).read_text())


def _with(**change):
    def edit(index: dict) -> object:
        return {**index, **change}
    return edit


CACHE_ATTACKS = {
    "random bytes": b"\x00\xff" + np.random.default_rng(5).bytes(3000),
    "zero bytes": b"",
    "invalid UTF-8": b'{"pts": [\xff\xfe]}',
    "JSON nested too deep": b"[" * 200_000 + b"]" * 200_000,
    "a JSON list": lambda i: [i],
    "a JSON string": lambda i: "pts",
    "a dict without pts": lambda i: {k: v for k, v in i.items() if k != "pts"},
    "pts that are strings": lambda i: {**i, "pts": [str(v) for v in i["pts"]]},
    "pts not increasing": lambda i: {**i, "pts": i["pts"][::-1]},
    "empty pts": _with(pts=[], keyframes=[]),
    "half the frames": lambda i: {**i, "pts": i["pts"][:30], "keyframes": [k for k in i["keyframes"] if k < 30]},
    "last frame missing": lambda i: {**i, "pts": i["pts"][:-1], "keyframes": [k for k in i["keyframes"] if k < 59]},
    "every other frame": lambda i: {**i, "pts": i["pts"][::2], "keyframes": [0]},
    "twice the frames": lambda i: {**i, "pts": i["pts"] + [i["pts"][-1] + (i["pts"][1] - i["pts"][0]) * (k + 1) for k in range(60)]},
    "keyframe past the end": lambda i: {**i, "keyframes": i["keyframes"] + [500]},
    "keyframes of the wrong type": _with(keyframes="all"),
    "claims to be truncated": _with(truncated=True),
    "by_order with pts": _with(by_order=True),
    "another version": lambda i: {**i, "version": i["version"] + 1},
    "another file's size": lambda i: {**i, "size": i["size"] + 1},
}


#: Wrong frame counts are checked against the header of both kinds of container: MP4 declares its
#: frame count, Matroska only its duration and frame rate.
COUNT_ATTACKS = ["half the frames", "last frame missing", "every other frame", "twice the frames"]


@pytest.mark.parametrize(
    "kind,attack", [("mkv", a) for a in CACHE_ATTACKS] + [("mp4", a) for a in COUNT_ATTACKS],
)
def test_forged_index_cache_is_rebuilt(kind, attack, media, tmp_path):
    """A damaged or forged cache file is not used: the index is rebuilt, rewritten, and every
    frame reads as without any cache."""
    video = tmp_path / f"rec.{kind}"
    shutil.copy2(media[kind], video)
    before = fingerprint(video)
    with VideoFrameSource(video, use_cache=False) as ref:
        expected = np.stack([ref[t] for t in range(len(ref))])
    good = _index(video)
    cache = _cache_file(video.resolve(), video.stat())
    assert cache.is_file()
    forged = CACHE_ATTACKS[attack]
    cache.write_bytes(forged if isinstance(forged, bytes) else json.dumps(forged(good)).encode())
    with VideoFrameSource(video) as src:
        assert not src.index_cached
        assert len(src) == len(expected) == 60
        assert np.array_equal(np.stack([src[t] for t in range(len(src))]), expected)
        assert np.array_equal(src[59], expected[59]) and np.array_equal(src[7], expected[7])
    assert json.loads(cache.read_text()) == good  # rewritten with the true index
    with VideoFrameSource(video) as again:
        assert again.index_cached
    assert fingerprint(video) == before


def test_a_folder_in_place_of_the_cache_file(media, tmp_path):
    video = tmp_path / "rec.mkv"
    shutil.copy2(media["mkv"], video)
    cache = _cache_file(video.resolve(), video.stat())
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.mkdir()
    with VideoFrameSource(video) as src:
        assert not src.index_cached and len(src) == 60
    assert cache.is_dir()


def test_forged_index_cache_through_the_cli(media, tmp_path):
    """``vidfilter run`` on a video whose cached index lists half its frames processes all 60."""
    video = tmp_path / "rec.mkv"
    shutil.copy2(media["mkv"], video)
    good = _index(video)
    cache = _cache_file(video.resolve(), video.stat())
    cache.write_text(json.dumps(CACHE_ATTACKS["half the frames"](good)))
    before = fingerprint(video)
    out = tmp_path / "out.zarr"
    proc = vf("run", str(video), "--method", "median", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert read_group(out, "background").shape[0] == 60
    assert fingerprint(video) == before
    assert json.loads(cache.read_text()) == good


# -- the package itself ----------------------------------------------------------------------------
def _unsafe_loads(tree) -> list[str]:
    """Calls and imports in ``tree`` that can unpickle: torch.load without weights_only=True,
    np.load with allow_pickle=True, yaml.load/unsafe_load/full_load, pickle-like modules."""
    import ast

    def is_true(call, name: str) -> bool:
        return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            owner, attr = node.func.value.id, node.func.attr
            if owner == "torch" and attr == "load" and not is_true(node, "weights_only"):
                found.append(f"line {node.lineno}: torch.load without weights_only=True")
            if owner in ("np", "numpy") and attr == "load" and is_true(node, "allow_pickle"):
                found.append(f"line {node.lineno}: np.load(allow_pickle=True)")
            if owner == "yaml" and attr in ("load", "unsafe_load", "full_load", "load_all", "unsafe_load_all"):
                found.append(f"line {node.lineno}: yaml.{attr}")
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            if name.split(".")[0] in ("pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal"):
                found.append(f"line {node.lineno}: import {name}")
    return found


def test_the_scan_finds_unsafe_loads():
    import ast

    src = "import pickle\nimport torch, yaml, numpy as np\ntorch.load(f)\ntorch.load(f, weights_only=False)\n" \
          "np.load(f, allow_pickle=True)\nyaml.load(s)\ntorch.load(io.BytesIO(d), weights_only=True)\nyaml.safe_load(s)\n"
    assert len(_unsafe_loads(ast.parse(src))) == 5


def test_no_module_unpickles():
    """No vidfilter module can unpickle: torch.load only with weights_only=True, no pickle, joblib
    or dill, no np.load with allow_pickle=True, no unsafe yaml loader."""
    import ast

    import vidfilter

    root = Path(vidfilter.__file__).parent
    bad = {}
    for py in sorted(root.rglob("*.py")):
        found = _unsafe_loads(ast.parse(py.read_text(encoding="utf-8")))
        if found:
            bad[str(py.relative_to(root))] = found
    assert not bad, bad
