"""The public names of ``vidfilter``: ``train`` and ``track`` stay callable once their packages are imported."""

from __future__ import annotations

import subprocess
import sys


def test_train_and_track_stay_callable_after_their_packages_are_imported(tmp_path):
    """Importing ``vidfilter.train.loop`` binds ``vidfilter.train`` to the package: calling it still
    reaches the function (and its own input check), in a fresh interpreter."""
    code = f"""
import vidfilter
import vidfilter.train.loop, vidfilter.track.api
from vidfilter.config import Config
from vidfilter.errors import InputNotFoundError
for call in (lambda: vidfilter.train({str(tmp_path / 'gone.mp4')!r}, out={str(tmp_path / 'm.vfm')!r}, config=Config()),
             lambda: vidfilter.track({str(tmp_path / 'gone.zarr')!r}, out={str(tmp_path / 't.csv')!r})):
    try:
        call()
    except InputNotFoundError as e:
        print("refused:", e)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and "gone.mp4" in lines[0] and "gone.zarr" in lines[1], proc.stdout
