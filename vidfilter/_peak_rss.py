"""Peak memory of one ``vidfilter`` command in a fresh process (for the memory tests and benchmarks).

``python -m vidfilter._peak_rss ARGS...`` imports the heavy libraries first, resets the process's
high-water mark (Linux ``/proc/self/clear_refs``), runs ``vidfilter ARGS...`` and prints one line
``PEAK_RSS {json}`` with ``rc``, ``kb`` (the run's own peak when the reset worked, else the whole
process's), ``process_kb``, ``run_kb`` (None without the reset), ``seconds`` and ``reset``.
:func:`peak_rss_run` runs it and returns that dict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_TAG = "PEAK_RSS "


def peak_rss_run(args: list[str], *, timeout: float | None = None, cwd: Any = None) -> dict[str, Any]:
    """Run ``vidfilter ARGS`` in a child process and return its peak-memory record."""
    r = subprocess.run([sys.executable, "-m", "vidfilter._peak_rss", *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, cwd=cwd)
    for line in r.stdout.splitlines():
        if line.startswith(_TAG):
            return json.loads(line[len(_TAG):])
    raise RuntimeError(f"vidfilter {' '.join(map(str, args))} printed no memory record:\n{r.stdout}\n{r.stderr}")


def _main(argv: list[str]) -> None:
    import resource
    import time

    import av  # noqa: F401  -- the heavy imports first, so their peak is not the run's
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import vidfilter.cli
    import vidfilter.infer.engine  # noqa: F401
    import vidfilter.infer.pipeline  # noqa: F401

    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = True
    except OSError:
        reset = False
    t0 = time.perf_counter()
    rc = vidfilter.cli.main(argv)
    seconds = time.perf_counter() - t0
    process_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run_kb = None
    if reset:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                run_kb = int(line.split()[1])
    print(_TAG + json.dumps({"rc": rc, "kb": run_kb if run_kb is not None else process_kb, "process_kb": process_kb,
                             "run_kb": run_kb, "seconds": seconds, "reset": reset}), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
