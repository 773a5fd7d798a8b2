"""Hostile inputs for every reader, through the real ``vidfilter`` command.

Readers: video files through PyAV (``.mp4`` H.264, ``.mkv`` FFV1, ``.avi`` MJPEG), a folder of
PNG files, a folder of TIFF files, a multi-page TIFF, Zarr v2 and v3 arrays, an HDF5 dataset and
a ``.npy`` file. Each (reader, attack) pair is one case, driven through ``vidfilter run`` (and
``info`` / ``convert`` where they read the input), with these checks:

- an input that cannot be used: exit 2, exactly one line on stderr naming the input and the
  problem, no traceback, no "internal error", and no output (not even a partial one);
- an input that is valid and documented as supported (16-bit, odd or tiny frames, colour): exit 0
  and an output that is complete and equals an independent computation (the per-pixel median in
  numpy of the frames as written, or as decoded by PyAV directly for a lossy codec);
- in every case the input is left exactly as it was (SHA-256 and mtime of every file and folder).

Attacks already covered elsewhere are not repeated here (``tests/faults/test_bad_inputs.py``:
Matroska cut at 10/50/97 %, MP4 cut at 60 %, bytes flipped in MKV and MP4, a 0-byte ``.mp4``, a
Zarr v3 store missing a chunk, NaN in a multi-page TIFF, Inf in a ``.npy``, 1x1 / 7x13 / 16-bit /
one-frame and RGB(A) PNG folders; ``tests/e2e/test_cli.py``: a text file named ``.mp4`` and an
empty folder with ``vidfilter info``).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import zarr
from faults_helpers import assert_no_output, assert_one_line_error, read_group, root_attrs, vf

from vidfilter.infer.pipeline import run
from vidfilter.io.images_source import natural_key
from vidfilter.io.integrity import verify

h5py = pytest.importorskip("h5py")

#: frames, height, width of the inputs (an odd frame count: the median is one of the values)
T, H, W = 9, 32, 48
MEDIAN = ("--method", "median")
_LUMA = np.array([0.299, 0.587, 0.114])


# ---------------------------------------------------------------------------------------------
# writers: one per reader; each writes ``frames`` (T, H, W[, C]) under ``d`` and returns the path


def _video(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, **options: str) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=10, options=options)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        s.codec_context.time_base = Fraction(1, 10)
        c.start_encoding()  # headers even when no frame follows
        for f in frames:
            if f.ndim == 3:
                vf_ = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[..., :3]), format="rgb24")
            elif f.dtype == np.uint16:
                vf_ = av.VideoFrame.from_ndarray(f, format="gray16le")
            else:
                vf_ = av.VideoFrame.from_ndarray(f, format="gray")
            for pk in s.encode(vf_.reformat(format=pix_fmt)):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def w_mp4(d: Path, a: np.ndarray) -> Path:
    return _video(d / "rec h264.mp4", a, "libx264", "yuv420p", crf="0")


def w_mkv(d: Path, a: np.ndarray) -> Path:
    fmt = "bgr0" if a.ndim == 4 else "gray16le" if a.dtype == np.uint16 else "gray"
    return _video(d / "rec ffv1.mkv", a, "ffv1", fmt)


def w_avi(d: Path, a: np.ndarray) -> Path:
    return _video(d / "rec mjpeg.avi", a, "mjpeg", "yuvj444p", q="2")


def w_png(d: Path, a: np.ndarray) -> Path:
    folder = d / "png frames"
    folder.mkdir()
    for i, f in enumerate(a):
        bgr = f if f.ndim == 2 else f[..., [2, 1, 0, 3]] if f.shape[-1] == 4 else f[..., ::-1]
        assert cv2.imwrite(str(folder / f"f{i}.png"), bgr)
    return folder


def w_tiffs(d: Path, a: np.ndarray) -> Path:
    folder = d / "tiff frames"
    folder.mkdir()
    for i, f in enumerate(a):
        tifffile.imwrite(folder / f"f{i}.tif", f, photometric="rgb" if f.ndim == 3 else "minisblack")
    return folder


def w_mtiff(d: Path, a: np.ndarray, **kw) -> Path:
    tifffile.imwrite(d / "stack.tif", a, photometric="rgb" if a.ndim == 4 else "minisblack", **kw)
    return d / "stack.tif"


def _zarr(path: Path, a: np.ndarray, fmt: int) -> Path:
    z = zarr.create_array(str(path), shape=a.shape, chunks=(1, *a.shape[1:]), dtype=a.dtype, zarr_format=fmt)
    if len(a):
        z[:] = a
    return path


def w_zarr2(d: Path, a: np.ndarray) -> Path:
    return _zarr(d / "stack v2.zarr", a, 2)


def w_zarr3(d: Path, a: np.ndarray) -> Path:
    return _zarr(d / "stack v3.zarr", a, 3)


def w_h5(d: Path, a: np.ndarray, **kw) -> Path:
    with h5py.File(d / "rec.h5", "w") as f:
        f.create_dataset("frames", data=a, chunks=(1, *a.shape[1:]) if len(a) else None, **kw)
    return d / "rec.h5"


def w_npy(d: Path, a: np.ndarray) -> Path:
    np.save(d / "stack.npy", a)
    return d / "stack.npy"


WRITERS: dict[str, Callable[[Path, np.ndarray], Path]] = {
    "mp4": w_mp4, "mkv": w_mkv, "avi": w_avi, "png": w_png, "tiffs": w_tiffs, "mtiff": w_mtiff,
    "zarr2": w_zarr2, "zarr3": w_zarr3, "h5": w_h5, "npy": w_npy,
}
#: readers whose stored frames are exactly the frames written
LOSSLESS = {"mkv", "png", "tiffs", "mtiff", "zarr2", "zarr3", "h5", "npy"}


def frames(shape: tuple[int, ...] = (T, H, W), dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


# ---------------------------------------------------------------------------------------------
# damage: the file that is damaged is the input itself, or the middle frame's file of a folder,
# or the middle frame's chunk file of a Zarr store


def _victim(inp: Path) -> Path:
    if inp.is_file():
        return inp
    if inp.suffix == ".zarr":
        chunks = sorted((p for p in inp.rglob("*") if p.is_file() and not p.name.startswith((".z", "zarr."))),
                        key=lambda p: natural_key(str(p.relative_to(inp))))
        return chunks[len(chunks) // 2]
    files = sorted((p for p in inp.iterdir() if p.is_file()), key=lambda p: natural_key(p.name))
    return files[len(files) // 2]


def cut(inp: Path, frac: float) -> Path:
    v = _victim(inp)
    data = v.read_bytes()
    v.write_bytes(data[: int(len(data) * frac)])
    return inp


def flip(inp: Path, at: float = 0.5, n: int = 16) -> Path:
    v = _victim(inp)
    data = bytearray(v.read_bytes())
    i = min(int(len(data) * at), len(data) - n)
    for k in range(n):
        data[i + k] ^= 0xFF
    v.write_bytes(bytes(data))
    return inp


def zero_byte(d: Path, name: str) -> Path:
    (d / name).write_bytes(b"")
    return d / name


def text_file(d: Path, name: str) -> Path:
    (d / name).write_text("frame 1: a mouse\nframe 2: the same mouse\n")
    return d / name


def folder_named(d: Path, name: str) -> Path:
    (d / name).mkdir()
    (d / name / "notes.txt").write_text("not a recording")
    return d / name


def zero_frame_video(d: Path, name: str, codec: str, pix_fmt: str) -> Path:
    return _video(d / name, np.zeros((0, H, W), np.uint8), codec, pix_fmt)


def mixed_sizes(kind: str, d: Path) -> Path:
    inp = WRITERS[kind](d, frames())
    v = _victim(inp)
    small = frames((1, H - 2, W + 2), seed=5)[0]
    if kind == "png":
        cv2.imwrite(str(v), small)
    else:
        tifffile.imwrite(v, small)
    return inp


def missing_chunk(kind: str, d: Path) -> Path:
    inp = WRITERS[kind](d, frames())
    _victim(inp).unlink()
    return inp


def with_value(kind: str, d: Path, value: float, dtype: type = np.float32) -> Path:
    a = frames(dtype=dtype)
    a[T // 2, 3, 5] = value
    return WRITERS[kind](d, a)


# ---------------------------------------------------------------------------------------------
# the input's fingerprint: every file's SHA-256 and mtime, every folder's mtime


def snapshot(p: Path) -> dict[str, tuple]:
    if not p.exists():
        return {}
    paths = [p, *sorted(p.rglob("*"))] if p.is_dir() else [p]
    snap = {}
    for q in paths:
        st = q.stat()
        digest = hashlib.sha256(q.read_bytes()).hexdigest() if q.is_file() else "dir"
        snap[str(q.relative_to(p))] = (digest, st.st_size if q.is_file() else None, st.st_mtime_ns)
    return snap


# ---------------------------------------------------------------------------------------------
# refused inputs: one line, exit 2, no output, input untouched


@dataclass
class Refused:
    make: Callable[[Path], Path]
    #: words the error line of ``vidfilter run`` holds (besides the input's name)
    words: tuple[str, ...] = ()
    #: exit code of ``vidfilter info`` (None: not run); info reads the header and frame 0 only,
    #: so damage further in is reported by the run, not by info
    info: int | None = 2
    #: exit code of ``vidfilter convert`` to a Zarr store (None: not run)
    convert: int | None = 2
    needs_model: bool = False


def _smooth(shape: tuple[int, ...] = (T, H, W), dtype: type = np.uint8) -> np.ndarray:
    """Frames that compress well (random frames are stored raw by most compressors)."""
    a = frames(shape, dtype)
    return cv2.GaussianBlur(a.reshape(shape[0] * shape[1], *shape[2:]), (0, 0), 3).reshape(shape)


def _zarr_checked(d: Path, fmt: int) -> Path:
    """A Zarr store whose chunks carry a checksum: crc32c (v3) or Zstandard's content checksum (v2)."""
    path, a = d / f"checked v{fmt}.zarr", _smooth()
    if fmt == 3:
        from zarr.codecs import BytesCodec, Crc32cCodec

        kw: dict = {"serializer": BytesCodec(), "compressors": [Crc32cCodec()]}
    else:
        from numcodecs import Zstd

        kw = {"compressors": Zstd(checksum=True)}
    z = zarr.create_array(str(path), shape=a.shape, chunks=(1, H, W), dtype=a.dtype, zarr_format=fmt, **kw)
    z[:] = a
    return path


def _jpeg_folder(d: Path) -> Path:
    folder = d / "jpeg frames"
    folder.mkdir()
    for i, f in enumerate(_smooth()):
        assert cv2.imwrite(str(folder / f"f{i}.jpg"), f)
    return folder


def _zero_page_tiff(d: Path) -> Path:
    with warnings.catch_warnings():  # tifffile: "writing zero-size array to nonconformant TIFF"
        warnings.simplefilter("ignore", UserWarning)
        return w_mtiff(d, np.zeros((0, H, W), np.uint8))


CUT = lambda kind, frac: lambda d: cut(WRITERS[kind](d, frames()), frac)  # noqa: E731
FLIP = lambda kind, **kw: lambda d: flip(WRITERS[kind](d, frames()), **kw)  # noqa: E731
ZERO = lambda kind: lambda d: WRITERS[kind](d, np.zeros((0, H, W), np.uint8))  # noqa: E731
NAN_WORDS = ("frame 4 holds NaN or Inf",)

REFUSED: dict[str, Refused] = {
    # truncated files (Matroska cut at 10/50/97 % and MP4 at 60 %: test_bad_inputs.py)
    "mp4 / cut at 50%": Refused(CUT("mp4", 0.5), ("not a readable video", "cut short")),
    "mp4 / cut at 10%": Refused(CUT("mp4", 0.1), ("not a readable video", "cut short")),
    "avi / cut at 50%": Refused(CUT("avi", 0.5), ("cut short", "--salvage"), info=0),
    "avi / cut at 10%": Refused(CUT("avi", 0.1), ("not a readable video", "cut short")),
    "mtiff / cut at 50%": Refused(CUT("mtiff", 0.5), ("cut short", "--salvage"), info=0),
    "mtiff / cut at 10%": Refused(CUT("mtiff", 0.1), ("cut short", "--salvage"), info=0),
    "mtiff / cut at 95% (page chain cut, pixels whole)": Refused(CUT("mtiff", 0.95), ("TIFF structure is damaged",), info=0, convert=0),
    "h5 / cut at 50%": Refused(CUT("h5", 0.5), ("cut short",)),
    "h5 / cut at 10%": Refused(CUT("h5", 0.1), ("cut short",)),
    "npy / cut at 50%": Refused(CUT("npy", 0.5), ("cut short", "bytes its header declares")),
    "npy / cut at 10%": Refused(CUT("npy", 0.1), ("cut short", "bytes its header declares")),
    "png / one file cut at 50%": Refused(CUT("png", 0.5), ("f4.png", "cut short"), info=0),
    "png / one file cut at 10%": Refused(CUT("png", 0.1), ("f4.png", "cut short"), info=0),
    "jpeg / one file cut at 50%": Refused(lambda d: cut(_jpeg_folder(d), 0.5), ("f4.jpg", "cut short"), info=0),
    "tiffs / one file cut at 50%": Refused(CUT("tiffs", 0.5), ("f4.tif",), info=0),
    "zarr2 / a chunk cut at 50%": Refused(CUT("zarr2", 0.5), ("frame 4 cannot be read",), info=0),
    "zarr3 / a chunk cut at 50%": Refused(CUT("zarr3", 0.5), ("frame 4 cannot be read",), info=0),
    # corrupt bytes in the middle (MKV and MP4: test_bad_inputs.py; formats without a checksum:
    # test_flipped_bytes_where_the_format_has_no_checksum)
    "avi / bytes flipped mid-stream (MJPEG)": Refused(FLIP("avi"), ("frame 1 could not be decoded",), info=0),
    "png / bytes flipped in one file": Refused(FLIP("png"), ("f4.png", "CRC mismatch"), info=0),
    "zarr2 / bytes flipped in a checksummed chunk": Refused(lambda d: flip(_zarr_checked(d, 2)), ("frame 4 cannot be read",), info=0),
    "zarr3 / bytes flipped in a checksummed chunk": Refused(lambda d: flip(_zarr_checked(d, 3)), ("frame 4 cannot be read",), info=0),
    "h5 / bytes flipped in checksummed data": Refused(
        lambda d: flip(w_h5(d, frames(), fletcher32=True), at=0.6), ("cannot be read",), info=0),
    "mtiff / bytes flipped in compressed data": Refused(
        lambda d: flip(w_mtiff(d, frames(), compression="zlib"), at=0.5), ("frame 4 cannot be read",), info=0),
    # empty: a 0-byte file, an empty folder (a 0-byte .mp4: test_bad_inputs.py)
    "mkv / 0-byte file": Refused(lambda d: zero_byte(d, "empty.mkv"), ("empty: 0 bytes",)),
    "avi / 0-byte file": Refused(lambda d: zero_byte(d, "empty.avi"), ("empty: 0 bytes",)),
    "mtiff / 0-byte file": Refused(lambda d: zero_byte(d, "empty.tif"), ("empty: 0 bytes",)),
    "h5 / 0-byte file": Refused(lambda d: zero_byte(d, "empty.h5"), ("empty: 0 bytes",)),
    "npy / 0-byte file": Refused(lambda d: zero_byte(d, "empty.npy"), ("empty (0 bytes)",)),
    "png / 0-byte file in the folder": Refused(lambda d: (zero_byte(w_png(d, frames()), "f4.png").parent), ("f4.png", "empty"), info=0),
    "png / empty folder": Refused(lambda d: folder_named(d, "no frames"), ("holds no image files",)),
    "zarr3 / empty store folder": Refused(lambda d: (d / "empty.zarr").mkdir() or d / "empty.zarr", ("not a readable Zarr store",)),
    # zero frames
    "npy / zero frames": Refused(ZERO("npy"), ("holds no frames", "(0, 32, 48)")),
    "zarr2 / zero frames": Refused(ZERO("zarr2"), ("holds no frames",)),
    "zarr3 / zero frames": Refused(ZERO("zarr3"), ("holds no frames",)),
    "h5 / zero frames": Refused(ZERO("h5"), ("holds no frames",)),
    "mtiff / zero frames": Refused(lambda d: _zero_page_tiff(d), ("holds no frames",)),
    "mkv / zero frames": Refused(lambda d: zero_frame_video(d, "none.mkv", "ffv1", "gray"), ("not a readable video",)),
    "mp4 / zero frames": Refused(lambda d: zero_frame_video(d, "none.mp4", "libx264", "yuv420p"), ("no video stream",)),
    "avi / zero frames": Refused(lambda d: zero_frame_video(d, "none.avi", "mjpeg", "yuvj444p"), ("no video frames",)),
    "npy / zero frames, with a model": Refused(ZERO("npy"), ("holds no frames",), info=None, convert=None, needs_model=True),
    # a wrong path
    **{f"{k} / wrong path": Refused(lambda d, n=n: d / n, ("no such file",))
       for k, n in [("mp4", "nowhere.mp4"), ("mkv", "nowhere.mkv"), ("mtiff", "nowhere.tif"), ("zarr3", "nowhere.zarr"),
                    ("h5", "nowhere.h5"), ("npy", "nowhere.npy"), ("png", "no folder")]},
    "zarr3 / wrong array inside the store": Refused(lambda d: w_zarr3(d, frames()) / "nothing", ("no such file",)),
    "h5 / wrong dataset inside the file": Refused(lambda d: w_h5(d, frames()) / "nothing", ("has no dataset 'nothing'",)),
    # a folder where a file is expected
    **{f"{k} / a folder instead of a file": Refused(lambda d, n=n: folder_named(d, n), ("is a folder, not a",))
       for k, n in [("mp4", "folder.mp4"), ("mkv", "folder.mkv"), ("mtiff", "folder.tif"), ("h5", "folder.h5"),
                    ("npy", "folder.npy")]},
    # text in a file with a media suffix (a text .mp4 with info: tests/e2e/test_cli.py)
    "mkv / a text file": Refused(lambda d: text_file(d, "notes.mkv"), ("not a Matroska file",)),
    "avi / a text file": Refused(lambda d: text_file(d, "notes.avi"), ("not an AVI file",)),
    "mp4 / a text file": Refused(lambda d: text_file(d, "notes.mp4"), ("not an MP4/MOV file",)),
    "mtiff / a text file": Refused(lambda d: text_file(d, "notes.tif"), ("not a readable TIFF",)),
    "h5 / a text file": Refused(lambda d: text_file(d, "notes.h5"), ("not an HDF5 file",)),
    "npy / a text file": Refused(lambda d: text_file(d, "notes.npy"), ("not a .npy file",)),
    "png / a text file": Refused(lambda d: text_file(d, "notes.png"), ("cannot be read as an image",)),
    # frames of different sizes (PNG read in-process: tests/io/test_images_source.py)
    "png / frames of different sizes": Refused(lambda d: mixed_sizes("png", d), ("f4.png", "all frames must share"), info=0),
    "tiffs / frames of different sizes": Refused(lambda d: mixed_sizes("tiffs", d), ("f4.tif", "all frames must share"), info=0),
    # a missing chunk (Zarr v3: test_bad_inputs.py)
    "zarr2 / a chunk file missing": Refused(lambda d: missing_chunk("zarr2", d), ("frame 4 is missing",), info=0),
    # NaN / Inf (NaN in a multi-page TIFF, Inf in .npy: test_bad_inputs.py); convert copies them as they are
    "npy / float with NaN": Refused(lambda d: with_value("npy", d, np.nan), NAN_WORDS, info=0, convert=None),
    "zarr3 / float with NaN": Refused(lambda d: with_value("zarr3", d, np.nan), NAN_WORDS, info=0, convert=None),
    "h5 / float64 with NaN": Refused(lambda d: with_value("h5", d, np.nan, np.float64), NAN_WORDS, info=0, convert=None),
    "tiffs / float with NaN": Refused(lambda d: with_value("tiffs", d, np.nan), ("f4.tif", *NAN_WORDS), info=0, convert=None),
    "mtiff / float with Inf": Refused(lambda d: with_value("mtiff", d, np.inf), NAN_WORDS, info=0, convert=None),
    "zarr2 / float with -Inf": Refused(lambda d: with_value("zarr2", d, -np.inf), NAN_WORDS, info=0, convert=None),
    "h5 / float16 with Inf": Refused(lambda d: with_value("h5", d, np.inf, np.float16), NAN_WORDS, info=0, convert=None),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_input(case, tmp_path, tiny_bundle):
    """One line naming the input and the problem, exit 2, no output of any kind, input untouched;
    the same for ``info`` and ``convert`` where they read as far as the problem."""
    c = REFUSED[case]
    d = tmp_path / "in ü"
    d.mkdir()
    inp = c.make(d)
    before = snapshot(inp)
    how = ("--model", str(tiny_bundle)) if c.needs_model else MEDIAN
    out = tmp_path / "out.zarr"
    proc = vf("run", str(inp), *how, "--out", str(out))
    line = assert_one_line_error(proc, *c.words)
    assert inp.name in line and "internal error" not in line, line
    assert_no_output(out)
    if c.info is not None:
        proc = vf("info", str(inp))
        if c.info:
            line = assert_one_line_error(proc, code=c.info)
            assert inp.name in line and "internal error" not in line, line
        else:
            assert proc.returncode == 0 and "frames" in proc.stdout and not proc.stderr, proc.stderr
    if c.convert is not None:
        conv = tmp_path / "conv.zarr"
        proc = vf("convert", str(inp), str(conv))
        if c.convert:
            line = assert_one_line_error(proc, code=c.convert)
            assert inp.name in line and "internal error" not in line, line
            assert not conv.exists()  # nothing that looks complete (see test_convert_leaves_no_partial)
        else:
            assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert snapshot(inp) == before


#: damaged input -> frames ``--salvage`` keeps (None: a lossy codec, only 0 < k < T is checked)
SALVAGE = {
    "png / one file cut at 50%": 4,
    "mtiff / cut at 50%": 4,
    "mtiff / cut at 95% (page chain cut, pixels whole)": T,
    "mtiff / bytes flipped in compressed data": 4,
    "h5 / bytes flipped in checksummed data": 4,
    "zarr3 / a chunk cut at 50%": 4,
    "avi / cut at 50%": None,
    "avi / bytes flipped mid-stream (MJPEG)": None,
}


@pytest.mark.parametrize("case", list(SALVAGE))
def test_salvage_keeps_exactly_the_frames_before_the_damage(case, tmp_path):
    """Damage each reader now reports at a frame (or for the file) is salvageable: exit 0, the
    frames before it and no other, their content hash equal to that of the frames written."""
    from vidfilter.io.integrity import _combine, frame_digest

    want = SALVAGE[case]
    inp = REFUSED[case].make(tmp_path)
    out = tmp_path / "out.zarr"
    proc = vf("run", str(inp), *MEDIAN, "--out", str(out), "--salvage")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "salvaged" in proc.stdout, proc.stderr
    rec = root_attrs(out)["input"]
    k = rec["frames_read"]
    assert rec["damage"] and read_group(out, "background").shape[0] == k
    if want is None:
        assert 0 < k < T
    else:
        assert k == want and rec["frames_xxh3"] == _combine(b"".join(frame_digest(f) for f in frames()[:k]))
    assert verify(out).complete


@pytest.mark.parametrize("kind", ["npy", "zarr3", "h5"])
def test_zero_frames_refused_by_train(kind, tmp_path):
    """``vidfilter train`` refuses a recording with no frames in one line, and writes no bundle."""
    inp = WRITERS[kind](tmp_path, np.zeros((0, H, W), np.uint8))
    before = snapshot(inp)
    bundle = tmp_path / "model.vfm"
    line = assert_one_line_error(vf("train", str(inp), "--out", str(bundle), "--steps", "2"), "holds no frames")
    assert inp.name in line
    assert not any(p.name.startswith("model") for p in tmp_path.iterdir()), list(tmp_path.iterdir())
    assert snapshot(inp) == before


def test_zero_frames_refused_from_python(tmp_path):
    """The Python API: an empty array, and a FrameSource of no frames handed to ``run`` directly
    (past :func:`vidfilter.open`), are refused before any output is made."""
    import vidfilter
    from vidfilter.errors import UnreadableInputError
    from vidfilter.io.source import FrameSource

    class NoFrames(FrameSource):
        path, shape, dtype = "no frames", (0, H, W), np.dtype(np.uint8)

        def _read(self, t: int) -> np.ndarray:
            raise AssertionError("a frame read from a source of no frames")

    with pytest.raises(UnreadableInputError, match="holds no frames"):
        vidfilter.open(np.zeros((0, H, W), np.uint8))
    for src, method in [(NoFrames(), "median"), (NoFrames(), "max"), (np.zeros((0, H, W), np.uint8), "median")]:
        out = tmp_path / "out.zarr"
        with pytest.raises(UnreadableInputError, match="holds no frames"):
            run(src, out, method=method)
        assert_no_output(out)


def test_convert_of_a_damaged_input_leaves_no_partial(tmp_path):
    inp = cut(w_png(tmp_path, frames()), 0.5)
    conv = tmp_path / "conv.zarr"
    assert_one_line_error(vf("convert", str(inp), str(conv)), "f4.png")
    assert_no_output(conv)


# ---------------------------------------------------------------------------------------------
# flipped bytes where the format has no checksum: nothing can tell, the frames are used as stored


def _stored(kind: str, inp: Path) -> np.ndarray:
    """The frames as the file now holds them, read without vidfilter."""
    if kind == "npy":
        return np.load(inp)
    if kind == "mtiff":
        return tifffile.imread(inp)
    if kind == "h5":
        with h5py.File(inp, "r") as f:
            return f["frames"][:]
    return zarr.open_array(str(inp), mode="r")[:]


@pytest.mark.parametrize("kind", ["npy", "mtiff", "h5", "zarr3"])
def test_flipped_bytes_where_the_format_has_no_checksum(kind, tmp_path):
    """Raw ``.npy``, uncompressed TIFF and HDF5, and a Zarr chunk compressed without a checksum
    hold no check of their pixels: 16 inverted bytes are 16 different pixel values, which no
    reader can detect. The run succeeds and its background is exactly the median of the stored
    values (not of the values first written): a known limit, written down by this test."""
    a = frames(seed=7)
    inp = flip(WRITERS[kind](tmp_path, a), at=0.6)
    stored = _stored(kind, inp)
    assert not np.array_equal(stored, a)
    before = snapshot(inp)
    out = tmp_path / "out.zarr"
    proc = vf("run", str(inp), *MEDIAN, "--out", str(out))
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert np.array_equal(read_group(out, "background"), np.broadcast_to(np.median(stored, axis=0).astype(np.uint8), a.shape))
    assert snapshot(inp) == before


# ---------------------------------------------------------------------------------------------
# valid inputs: processed, completely and correctly


def _pyav_gray(path: Path) -> np.ndarray:
    """The frames as PyAV decodes them to grey itself (the oracle for lossy codecs)."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="gray16le" if f.format.name.startswith("gray16") else "gray")
                         for f in c.decode(video=0)])


def _luma(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3:
        return a
    info = np.iinfo(a.dtype)
    return np.clip(np.rint(a[..., :3].astype(np.float64) @ _LUMA), info.min, info.max).astype(a.dtype)


@dataclass
class Valid:
    kind: str
    shape: tuple[int, ...] = (T, H, W)
    dtype: type = np.uint8
    #: mean grey levels the frames decoded by PyAV may differ from BT.601 luma of the frames
    #: written (a lossy codec, its colour conversion)
    luma_tol: float = 0


VALID: dict[str, Valid] = {
    **{f"{k} / 1x1 frames": Valid(k, (T, 1, 1)) for k in ("mkv", "tiffs", "mtiff", "zarr2", "zarr3", "h5", "npy")},
    **{f"{k} / odd size 31x47": Valid(k, (T, 31, 47)) for k in ("mkv", "png", "tiffs", "mtiff", "zarr3", "h5", "npy")},
    **{f"{k} / 16-bit": Valid(k, dtype=np.uint16) for k in ("mkv", "tiffs", "mtiff", "zarr2", "zarr3", "h5", "npy")},
    **{f"{k} / RGB": Valid(k, (T, H, W, 3)) for k in ("tiffs", "mtiff", "zarr3", "h5", "npy")},
    **{f"{k} / RGBA": Valid(k, (T, H, W, 4)) for k in ("zarr2", "h5", "npy")},
    "avi / odd size 31x47": Valid("avi", (T, 31, 47), luma_tol=2.5),
    "mkv / RGB": Valid("mkv", (T, H, W, 3)),
    "mp4 / RGB": Valid("mp4", (T, H, W, 3), luma_tol=2.5),
    "avi / RGB": Valid("avi", (T, H, W, 3), luma_tol=2.5),
}


@pytest.mark.parametrize("case", list(VALID))
def test_valid_input(case, tmp_path):
    """Exit 0; background and foreground of the input's grey shape and dtype, the background equal
    to the per-pixel median computed here; colour is BT.601 luma (README, "Inputs and outputs")."""
    c = VALID[case]
    d = tmp_path / "in ü"
    d.mkdir()
    a = frames(c.shape, c.dtype, seed=len(case))
    if c.kind not in LOSSLESS:  # smooth frames: a lossy codec keeps them close to what was written
        a = cv2.GaussianBlur(a.reshape(T * c.shape[1], *c.shape[2:]), (0, 0), 3).reshape(a.shape)
    inp = WRITERS[c.kind](d, a)
    before = snapshot(inp)
    out = tmp_path / "out.zarr"
    proc = vf("run", str(inp), *MEDIAN, "--out", str(out))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    grey = _luma(a)
    want = grey if c.kind in LOSSLESS else _pyav_gray(inp)  # a lossy codec: the frames as PyAV decodes them
    assert np.abs(want.astype(float) - grey).mean() <= c.luma_tol
    bg, fg = read_group(out, "background"), read_group(out, "foreground")
    assert bg.shape == fg.shape == want.shape and bg.dtype == fg.dtype == want.dtype
    assert np.array_equal(bg, np.broadcast_to(np.median(want, axis=0).astype(want.dtype), want.shape))
    report = verify(out, input=inp)
    assert report.complete and report.facts["input_check"] == "match", report.problems
    info = vf("info", "--color", "gray", str(inp))
    assert info.returncode == 0 and f"[{', '.join(map(str, want.shape))}]" in info.stdout, info.stdout
    assert snapshot(inp) == before


# ---------------------------------------------------------------------------------------------
# a model on frames smaller than a tile (infer.tile: 2048 px)


@pytest.mark.parametrize("kind, size", [("npy", (1, 1)), ("png", (7, 13)), ("mkv", (31, 47)), ("zarr3", (5, 3))])
def test_model_on_frames_smaller_than_a_tile(kind, size, tmp_path, tiny_bundle):
    """The network sees frames far smaller than a tile (and than its 2**depth down-sampling):
    the output has the input's shape and dtype, is finite, and does not depend on the reader."""
    d = tmp_path / "in"
    d.mkdir()
    a = frames((T, *size), seed=3)
    inp = WRITERS[kind](d, a)
    before = snapshot(inp)
    out = tmp_path / "out.zarr"
    proc = vf("run", str(inp), "--model", str(tiny_bundle), "--out", str(out))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    bg = read_group(out, "background")
    assert bg.shape == a.shape and bg.dtype == a.dtype
    assert verify(out, input=inp).complete
    ref = tmp_path / "ref.zarr"  # the same frames from memory, in this process: no reader involved
    run(a, ref, model=str(tiny_bundle))
    assert np.array_equal(bg, read_group(ref, "background"))
    assert snapshot(inp) == before
