"""Tests of the checkpoint format: tensors via torch, everything else as JSON, nothing unpickled.

The round trips are exact (bit for bit); the hostile files (planted pickles, damaged archives,
foreign JSON) each raise one :class:`BundleError` line and execute nothing.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vidfilter.config import Config
from vidfilter.errors import BundleError
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.sampling import make_samplers
from vidfilter.train import checkpoint_path, train
from vidfilter.train.checkpoint import (
    CHECKPOINT_VERSION,
    TRAINING_KEYS,
    decode_state,
    encode_state,
    load_checkpoint,
    save_checkpoint,
)

ADVICE = "delete it to start afresh"


class Planted:
    """Unpickling this creates the file ``marker`` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def frames(n: int = 24, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    plate = (170 + 20 * rng.random((size, size))).astype(np.float32)
    out = np.repeat(plate[None], n, axis=0)
    for t in range(n):
        out[t, (3 * t) % 26 : (3 * t) % 26 + 6, (5 * t) % 26 : (5 * t) % 26 + 6] -= 80
    return out.astype(np.uint8)


def tiny_config(steps: int = 4) -> Config:
    return Config().override({
        "model.preset": "fast", "model.width": 4, "model.depth": 2,
        "sampling.crop": 16, "sampling.lag": [1, 3], "sampling.lag_unit": "frames", "sampling.pool_frames": 12,
        "sampling.pool_refresh": 5, "train.batch_size": 2, "train.steps": steps, "train.val_every": 2,
        "train.val_pairs": 4, "train.checkpoint_every": 2, "train.val_fraction": 0.2, "train.lr": 1e-3,
    })


def training_state() -> dict:
    """A state shaped like the trainer's, holding every type the format stores."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    return {
        "config": Config().to_dict(),
        "model": model.state_dict(),
        "optimiser": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "step": 7,
        "supervised": False,
        "result": {"step": 7, "elapsed_s": 0.25, "train_loss": [0.5, 0.25], "best_val": math.inf, "val": []},
        "sampler": {"rng": np.random.default_rng(3).bit_generator.state, "runs": [(0, 1, 2, 3)]},
    }


def assert_same(a, b, where: str = "state") -> None:
    """Exact equality, types included (tuple vs list, numpy scalar vs float, dtype, -0.0, nan)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b)), where
    else:
        assert a == b, where


def write_payload(path: Path, payload: object) -> Path:
    torch.save(payload, path)
    return path


def assert_refused(path: Path, *needles: str, required=TRAINING_KEYS) -> str:
    with pytest.raises(BundleError) as err:
        load_checkpoint(path, required=required)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and ADVICE in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


# -- round trips ----------------------------------------------------------------------------------
def test_every_stored_type_round_trips_exactly(tmp_path: Path) -> None:
    state = {
        "tensors": [torch.arange(5), torch.randn(2, 3, dtype=torch.float64), torch.tensor(True), torch.empty(0, 4)],
        "arrays": [np.arange(6, dtype=">f8").reshape(2, 3), np.array([2**64 - 1], np.uint64), np.zeros((0, 3), np.float16),
                   np.array([1 + 2j], np.complex64), np.array(True), np.array([[True, False]])],
        "scalars": [np.float32(0.1), np.int64(-3), np.bool_(True), np.uint8(255)],
        "floats": [0.1, -0.0, math.inf, -math.inf, math.nan, 1e-310],
        "ints": [0, -1, 2**127 + 12345, True, False, None],
        "text": "é \u2603 $ \"quoted\"",
        "tuple": (1, (2.5, "x"), [3]),
        "int_keys": {0: "a", 1: {"b": 2}},
        "odd_keys": {"$": "not a tag", (1, 2): None, 3.5: "f", None: 1, True: 0},
        "nested": {"a": {"b": [{"c": ()}]}},
    }
    path = save_checkpoint(tmp_path / "m.ckpt", state)
    assert_same(load_checkpoint(path), state)


def test_file_is_three_entries_loadable_with_weights_only(tmp_path: Path) -> None:
    """The archive holds the version, the JSON text and a flat table of tensors, nothing else."""
    state = training_state()
    path = save_checkpoint(tmp_path / "m.ckpt", state)
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"checkpoint_version", "state_json", "tensors"}
    assert payload["checkpoint_version"] == CHECKPOINT_VERSION == 2
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload["tensors"].items())
    js = json.loads(payload["state_json"])
    assert js["step"] == 7 and js["config"] == Config().to_dict()
    assert js["torch_rng"] == {"$": "tensor", "ref": js["torch_rng"]["ref"]}
    assert js["optimiser"]["state"]["$"] == "dict"  # integer parameter ids
    assert_same(decode_state(payload["state_json"], payload["tensors"]), load_checkpoint(path))


def test_optimiser_state_resumes_the_same_steps(tmp_path: Path) -> None:
    """Adam restored from a checkpoint takes exactly the steps the original takes."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(16, 4)

    def step(m: torch.nn.Module, o: torch.optim.Optimizer) -> None:
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()

    for _ in range(3):
        step(model, opt)
    path = save_checkpoint(tmp_path / "m.ckpt", {"model": model.state_dict(), "optimiser": opt.state_dict()})
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    ck = load_checkpoint(path)
    twin.load_state_dict(ck["model"])
    twin_opt.load_state_dict(ck["optimiser"])
    assert_same(twin_opt.state_dict(), opt.state_dict())
    for _ in range(3):
        step(model, opt)
        step(twin, twin_opt)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_sampler_states_are_plain_json() -> None:
    """The samplers' states need no tags: JSON text and back restores the same stream."""
    arr = frames(40)
    cfg = Config().override({"sampling.crop": 16, "sampling.lag": [1, 5], "sampling.lag_unit": "frames",
                             "sampling.pool_frames": 12, "sampling.pool_refresh": 9, "train.val_fraction": 0.0,
                             "train.val_pairs": 0, "output.polarity": "absolute"})
    s = make_samplers([ArrayFrameSource(arr)], cfg, seed=1).train
    s.batch(11)
    state = s.get_state()
    assert json.loads(json.dumps(state)) == state
    text, tensors = encode_state(state)
    assert not tensors and '"$"' not in text
    expected = s.batch(20)
    t = make_samplers([ArrayFrameSource(arr)], cfg, seed=99).train
    t.set_state(json.loads(json.dumps(state)))
    got = t.batch(20)
    assert np.array_equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])


def test_training_checkpoint_holds_no_pickled_objects(tmp_path: Path) -> None:
    """A real training checkpoint loads with weights_only and passes the training-key check."""
    out = train([ArrayFrameSource(frames())], tmp_path / "m.vfm", tiny_config(), progress=False)
    path = checkpoint_path(out)
    torch.load(path, weights_only=True)
    ck = load_checkpoint(path, required=TRAINING_KEYS)
    assert ck["step"] == 4 and ck["result"]["best_val"] < math.inf and len(ck["result"]["train_loss"]) == 4
    assert isinstance(ck["sampler"]["rng"]["state"]["state"], int)


def test_encode_refuses_objects() -> None:
    for bad in (object(), {1, 2}, np.array([object()], dtype=object), {"x": [Path("a")]}):
        with pytest.raises(TypeError):
            encode_state(bad)


# -- hostile files --------------------------------------------------------------------------------
def test_planted_pickle_in_a_torch_archive_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write_payload(tmp_path / "m.ckpt", {"checkpoint_version": 2, "state_json": "{}", "tensors": {}, "x": Planted(marker)})
    assert_refused(path, "Python objects")
    assert not marker.exists()


def test_planted_raw_pickle_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "m.ckpt"
    path.write_bytes(pickle.dumps(Planted(marker)))
    assert_refused(path, "not a PyTorch archive")
    assert not marker.exists()


def test_planted_pickle_in_a_hand_made_zip_is_not_executed(tmp_path: Path) -> None:
    """A zip laid out like torch's whose data.pkl is a bare planted pickle."""
    marker = tmp_path / "pwned"
    path = tmp_path / "m.ckpt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Planted(marker), protocol=2))
        z.writestr("archive/version", "3\n")
    assert_refused(path)
    assert not marker.exists()


def test_old_format_with_numpy_objects(tmp_path: Path) -> None:
    """A format-1 checkpoint pickled numpy objects; it is refused, not unpickled."""
    state = training_state()
    state["sampler"]["offsets"] = np.array([0.25, 0.5])
    state["step"] = np.int64(7)
    path = write_payload(tmp_path / "m.ckpt", {"checkpoint_version": 1, **state})
    assert_refused(path, "Python objects")


def test_old_format_of_plain_data(tmp_path: Path) -> None:
    path = write_payload(tmp_path / "m.ckpt", {"checkpoint_version": 1, **training_state()})
    assert_refused(path, "older vidfilter", "format 1")


def test_newer_format(tmp_path: Path) -> None:
    path = write_payload(tmp_path / "m.ckpt", {"checkpoint_version": 3, "state_json": "{}", "tensors": {}})
    assert_refused(path, "newer vidfilter", "upgrade vidfilter")


@pytest.mark.parametrize("version", ["2", 2.0, None, True])
def test_version_of_the_wrong_type(tmp_path: Path, version: object) -> None:
    path = write_payload(tmp_path / "m.ckpt", {"checkpoint_version": version, "state_json": "{}", "tensors": {}})
    assert_refused(path)


@pytest.mark.parametrize("cut", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated(tmp_path: Path, cut: float) -> None:
    path = save_checkpoint(tmp_path / "m.ckpt", training_state())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    assert_refused(path)


@pytest.mark.parametrize("prefix", [b"", b"PK\x03\x04"])
def test_random_bytes(tmp_path: Path, prefix: bytes) -> None:
    path = tmp_path / "m.ckpt"
    path.write_bytes(prefix + np.random.default_rng(0).bytes(4096))
    assert_refused(path)


def test_flipped_bytes_inside_the_archive(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.ckpt", training_state())
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_refused(path)


def test_a_folder_or_a_dangling_link(tmp_path: Path) -> None:
    (tmp_path / "d.ckpt").mkdir()
    assert_refused(tmp_path / "d.ckpt", "not a regular file")
    (tmp_path / "l.ckpt").symlink_to(tmp_path / "nowhere")
    assert_refused(tmp_path / "l.ckpt", "not a regular file")


def _state_with(tmp_path: Path, **change: object) -> Path:
    text, tensors = encode_state(training_state())
    js = json.loads(text)
    for key, value in change.items():
        if value is None:
            del js[key]
        else:
            js[key] = value
    return write_payload(tmp_path / "m.ckpt", {"checkpoint_version": 2, "state_json": json.dumps(js), "tensors": tensors})


@pytest.mark.parametrize("key", sorted(TRAINING_KEYS))
def test_json_lacking_a_key(tmp_path: Path, key: str) -> None:
    assert_refused(_state_with(tmp_path, **{key: None}), f"lacks {key!r}")


@pytest.mark.parametrize("key,value", [("step", "7"), ("step", True), ("config", []), ("supervised", 1),
                                       ("torch_rng", [1, 2]), ("result", "x")])
def test_json_value_of_the_wrong_type(tmp_path: Path, key: str, value: object) -> None:
    assert_refused(_state_with(tmp_path, **{key: value}), repr(key))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"step": {"$": "tensor", "ref": "99"}}',
        '{"step": {"$": "pickle", "data": "gASV"}}',
        '{"x": {"$": "ndarray", "dtype": "|O", "shape": [1], "ref": "0"}}',
        '{"x": {"$": "ndarray", "dtype": "<f8", "shape": [1000], "ref": "0"}}',
        '{"x": {"$": "ndarray", "dtype": "no such dtype", "shape": [1], "ref": "0"}}',
        '{"x": {"$": "ndarray", "dtype": "i4,f4", "shape": [1], "ref": "0"}}',
        '{"x": {"$": "ndarray", "dtype": "<u1", "shape": [-4], "ref": "0"}}',
        '{"x": {"$": "dict", "items": [[[1], 2]]}}',
        '{"x": {"$": "dict", "items": [1]}}',
        '{"x": {"$": "tuple"}}',
        "[" * 100000 + "]" * 100000,
    ],
)
def test_json_that_is_not_a_state(tmp_path: Path, text: str) -> None:
    path = write_payload(tmp_path / "m.ckpt", {"checkpoint_version": 2, "state_json": text, "tensors": {"0": torch.zeros(4, dtype=torch.uint8)}})
    assert_refused(path, required=None)


@pytest.mark.parametrize(
    "payload",
    [
        {"checkpoint_version": 2, "state_json": b"{}", "tensors": {}},
        {"checkpoint_version": 2, "state_json": "{}", "tensors": [torch.zeros(1)]},
        {"checkpoint_version": 2, "state_json": "{}", "tensors": {"0": "not a tensor"}},
        {"checkpoint_version": 2, "state_json": "{}", "tensors": {}, "extra": 1},
        {"checkpoint_version": 2, "state_json": "{}"},
        {"step": 3},
        [1, 2, 3],
    ],
)
def test_archive_of_the_wrong_layout(tmp_path: Path, payload: object) -> None:
    assert_refused(write_payload(tmp_path / "m.ckpt", payload), required=None)


def test_a_bundle_is_not_a_checkpoint(tmp_path: Path) -> None:
    from vidfilter.models import build_model, save_bundle

    cfg = Config().override({"model.width": 4, "model.depth": 2})
    bundle = save_bundle(tmp_path / "m.vfm", build_model(cfg.model), cfg)
    os.replace(bundle, tmp_path / "m.ckpt")
    assert_refused(tmp_path / "m.ckpt", "not a vidfilter checkpoint")


def test_nothing_is_executed_however_the_payload_is_wrapped(tmp_path: Path) -> None:
    """Planted objects nested at several depths, under every entry of the layout."""
    marker = tmp_path / "pwned"
    for payload in (
        {"checkpoint_version": Planted(marker), "state_json": "{}", "tensors": {}},
        {"checkpoint_version": 2, "state_json": Planted(marker), "tensors": {}},
        {"checkpoint_version": 2, "state_json": "{}", "tensors": {"0": Planted(marker)}},
        {"checkpoint_version": 2, "state_json": "{}", "tensors": {"0": [torch.zeros(1), {"k": (Planted(marker),)}]}},
    ):
        buf = io.BytesIO()
        torch.save(payload, buf)
        (tmp_path / "m.ckpt").write_bytes(buf.getvalue())
        assert_refused(tmp_path / "m.ckpt", "Python objects", required=None)
        assert not marker.exists()
