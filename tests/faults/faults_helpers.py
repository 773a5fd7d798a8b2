"""Helpers of the fault-injection suite: the CLI in a subprocess, output checks, tmpfs, damage.

Every CLI test here runs the real ``vidfilter`` entry point (``python -m vidfilter``) in a child
process, because what is under test is the contract a user meets: exit code, exactly one line on
stderr, no traceback, and no output left behind that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from stores import read_group


def vf(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``vidfilter -q ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "vidfilter", "-q", *args], capture_output=True, text=True,
        env=dict(os.environ, **(env or {})), timeout=timeout,
    )


def vf_popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vidfilter", "-q", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, **(env or {})),
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """Exit ``code``, exactly one line on stderr holding every needle, no traceback; returns the line."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def assert_no_output(out: Path) -> None:
    """Nothing that looks like a finished output; not even a partial one for an input error."""
    assert not out.exists(), f"{out} exists"
    assert not Path(str(out) + ".partial").exists(), f"{out}.partial left behind"


def assert_same_output(a: Path, b: Path, groups: tuple[str, ...] = ("background", "foreground")) -> None:
    for g in groups:
        x, y = read_group(a, g), read_group(b, g)
        assert x.shape == y.shape and np.array_equal(x, y), g


def root_attrs(store: Path) -> dict:
    return dict(zarr.open_group(str(store), mode="r").attrs)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a small tmpfs at ``path`` (skip the test where mounting is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); the simulated variant still runs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def damaged_copy(src: Path, dst: Path, *, cut: float | None = None, flip_at: float | None = None, n: int = 16) -> Path:
    """Copy ``src`` cut to a fraction of its length, or with ``n`` bytes inverted at a fraction of it."""
    data = bytearray(src.read_bytes())
    if cut is not None:
        data = data[: int(len(data) * cut)]
    if flip_at is not None:
        i = int(len(data) * flip_at)
        for k in range(n):
            data[i + k] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst
