"""Exact points at which a process under test stops: it SIGKILLs itself, or waits for the test.

A kill at a moment (sleep, then SIGKILL) lands wherever a loaded machine happens to be; a kill point
lands on the same state on every run. The process patches the point into vidfilter before it does
any work:

- :func:`call_point`: SIGKILL before call number ``after`` (0-based) of a function or method;
- :func:`after_unlink_point`: SIGKILL at the first deletion after that of a file with a given name;
- :func:`rename_point`: SIGKILL right before the rename onto a given path;
- :func:`hold_point`: before call number ``after`` of a function, the first process to get there
  writes its pid into a claim file and waits until a release file exists (the test does what it
  needs while the process holds its state, then releases it or kills it); every other call, and
  every other process, goes on.

:func:`vf_at` and :func:`vf_at_popen` run ``vidfilter ARGS`` in a child that installs a point first;
:func:`install` installs one in the calling process (for example in dask workers through
``Client.run``).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: Child process: install the point from ``argv[2]`` (this file's :func:`install`), then run the command line.
_CHILD = r"""
import json, runpy, sys

runpy.run_path(sys.argv[1])["install"](json.loads(sys.argv[2]))
from vidfilter.cli import main

sys.exit(main(["-q", *sys.argv[3:]]))
"""

#: How long a held process waits for its release before it goes on by itself.
HOLD_TIMEOUT_S = 300.0


def call_point(module: str, attr: str, after: int) -> dict:
    """Kill before call number ``after`` (0-based) of ``module.attr`` (``attr`` may be ``Class.method``)."""
    return {"kind": "call", "module": module, "attr": attr, "after": after}


def after_unlink_point(name: str) -> dict:
    """Kill at the first deletion that follows the deletion of a file called ``name``."""
    return {"kind": "after_unlink", "name": name}


def rename_point(name: str) -> dict:
    """Kill right before the rename onto ``name`` (relative to the output folder: the caller turns
    it into ``path``, the absolute destination, before installing the point)."""
    return {"kind": "rename", "name": name}


def hold_point(module: str, attr: str, after: int, claim: Path, release: Path) -> dict:
    """Hold before call number ``after`` of ``module.attr``: the first process there creates
    ``claim`` holding its pid and waits until ``release`` exists."""
    return {"kind": "hold", "module": module, "attr": attr, "after": after, "claim": str(claim), "release": str(release)}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hold(spec: dict) -> None:
    """Claim the hold (one process only) and wait for the release; nothing when already claimed."""
    try:
        os.close(os.open(spec["claim"] + ".taken", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    tmp = f"{spec['claim']}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.rename(tmp, spec["claim"])  # the claim appears with the pid in it
    deadline = time.monotonic() + HOLD_TIMEOUT_S
    while not os.path.exists(spec["release"]) and time.monotonic() < deadline:
        time.sleep(0.01)


def _patch_call(spec: dict) -> None:
    owner_name, _, name = spec["attr"].rpartition(".")
    owner: Any = importlib.import_module(spec["module"])
    for part in filter(None, owner_name.split(".")):
        owner = getattr(owner, part)
    real, calls, lock = getattr(owner, name), [0], threading.Lock()
    hold = spec["kind"] == "hold"

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with lock:
            n = calls[0]
            calls[0] += 1
            if n >= spec["after"]:
                if not hold:
                    _die()
                _hold(spec)
        return real(*args, **kwargs)

    setattr(owner, name, wrapped)


def _patch_unlink(spec: dict) -> None:
    armed = [False]
    for fn in ("unlink", "remove", "rmdir"):
        real_fn = getattr(os, fn)

        def patched(path: Any, *args: Any, _real: Any = real_fn, **kwargs: Any) -> Any:
            if armed[0]:
                _die()
            result = _real(path, *args, **kwargs)
            armed[0] = armed[0] or os.path.basename(os.fspath(path)) == spec["name"]
            return result

        setattr(os, fn, patched)


def _patch_rename(spec: dict) -> None:
    target = os.path.realpath(spec["path"])
    for fn in ("replace", "rename"):
        real_fn = getattr(os, fn)

        def patched(src: Any, dst: Any, *args: Any, _real: Any = real_fn, **kwargs: Any) -> Any:
            if os.path.realpath(os.fspath(dst)) == target:
                _die()
            return _real(src, dst, *args, **kwargs)

        setattr(os, fn, patched)


def install(spec: dict) -> None:
    """Patch the point ``spec`` (from one of the ``*_point`` functions) into this process."""
    if spec["kind"] in ("call", "hold"):
        _patch_call(spec)
    elif spec["kind"] == "after_unlink":
        _patch_unlink(spec)
    else:
        _patch_rename(spec)


def _child(point: dict, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-c", _CHILD, __file__, json.dumps(point), *args]


def vf_at(point: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``vidfilter -q ARGS`` in a child with ``point`` installed; assert that it killed itself there."""
    proc = subprocess.run(_child(point, args), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == -signal.SIGKILL, (
        f"the kill point {point} was not reached: exit {proc.returncode}: {proc.stderr.strip()}"
    )
    return proc


def vf_at_popen(point: dict, *args: str) -> subprocess.Popen:
    """Start ``vidfilter -q ARGS`` in a child with ``point`` installed."""
    return subprocess.Popen(_child(point, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_hold(claim: Path, proc: subprocess.Popen | None = None, timeout: float = 120) -> int:
    """Wait until a process holds at a :func:`hold_point` (``proc``, where given, must not end
    first); returns the pid the claim holds."""
    deadline = time.monotonic() + timeout
    while not claim.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before the hold point: exit {proc.returncode}: {proc.stderr.read().decode()}")
        assert time.monotonic() < deadline, f"no process reached the hold point within {timeout} s"
        time.sleep(0.01)
    return int(claim.read_text())
