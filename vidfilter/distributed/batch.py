"""Many recordings on a Dask cluster: one task per recording, retried, resumable, summarised.

``run_batch(inputs, model=BUNDLE, out_dir=DIR, config=..., scheduler="local:2")`` submits one
:func:`vidfilter.infer.pipeline.run` per input with ``client.submit(..., pure=False,
retries=retries)``. Each worker process loads the bundle once and keeps it in a small cache keyed
by the bundle's sha256 (:func:`cached_bundle`): only the path and the hash travel with a task.
Outputs are written by the workers straight to ``out_dir/<stem>.zarr`` (a shared file system or
any path zarr supports), each by exactly one task; a task that dies with its worker is rerun by
the scheduler and resumes the ``.partial`` store (the dead writer's lock is taken over), so the
result is identical to an uninterrupted run.

Errors: a bad input (unreadable, unsupported, missing) fails the same way every time, so it is
reported at once (status ``failed``); anything else (a worker lost, a full disk, a bug) is
retried by Dask up to ``retries`` times, then reported. The batch never stops for one input.
Finished outputs are skipped (status ``skipped``) unless ``config.output.overwrite``.
At the end ``out_dir/batch_summary.json`` holds the per-input results and a table is logged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vidfilter.config import Config
from vidfilter.errors import (BundleError, ConfigError, InputNotFoundError, OutputExistsError,
    UnreadableInputError, UnsupportedInputError, VidfilterError)
from vidfilter.infer.result import RunResult

__all__ = ["cached_bundle", "connected_client", "format_table", "get_client", "gpu_resources", "run_batch"]

log = logging.getLogger(__name__)

SUMMARY_NAME = "batch_summary.json"
#: Errors that would recur on every attempt: reported at once, not retried.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    UnreadableInputError, UnsupportedInputError, InputNotFoundError, ConfigError, BundleError,
)

# ---------------------------------------------------------------------------------------------
# per-process bundle cache

_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2
_LOADS = 0  # bundles loaded by this process (cache misses)


def cached_bundle(path: str | os.PathLike[str] | None, sha256: str, data: bytes | None = None) -> Any:
    """The bundle with hash ``sha256``, loaded at most once per process.

    ``path``: the bundle file as the worker sees it; or ``data``: its bytes (e.g. scattered to
    every worker once with ``client.scatter(data, broadcast=True)``). Raises
    :class:`BundleError` when the file's hash is not ``sha256`` (the bundle changed under the batch).
    """
    with _CACHE_LOCK:
        b = _CACHE.get(sha256)
        if b is not None:
            return b
        from vidfilter.models.bundle import load_model

        if data is not None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="vidfilter-bundle-") as d:
                p = Path(d) / f"{sha256[:16]}.vfm"
                p.write_bytes(data)
                b = load_model(p)
        else:
            b = load_model(path)  # type: ignore[arg-type]
        if b.sha256 != sha256:
            raise BundleError(f"model bundle {path} changed during the batch (sha256 {b.sha256[:12]}, expected {sha256[:12]}); re-run the batch")
        global _LOADS
        _LOADS += 1
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[sha256] = b
        log.info("loaded model bundle %s (sha256 %s) in pid %d", path, sha256[:12], os.getpid())
        return b


def cache_info() -> dict[str, Any]:
    """What this process has cached (for tests and diagnostics): ``{pid, sha256s, loads}``."""
    return {"pid": os.getpid(), "sha256s": list(_CACHE), "loads": _LOADS}


# ---------------------------------------------------------------------------------------------
# client


def get_client(scheduler: str | None = None, *, n_workers: int | None = None, gpu: bool = False) -> tuple[Any, Any]:
    """``(client, cluster_or_None)`` for ``"local"``, ``"local:N"`` or ``"tcp://HOST:PORT"``.

    ``local[:N]`` starts a ``LocalCluster`` of N worker processes with one thread each (default:
    one per core; with ``gpu`` one per visible GPU, each advertising the resource ``GPU=1``).
    The caller closes both (the cluster may be None).
    """
    from dask.distributed import Client, LocalCluster

    spec = (scheduler or "local").strip()
    if spec == "local" or spec.startswith("local:"):
        n = n_workers
        if spec.startswith("local:"):
            try:
                n = int(spec.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"--scheduler {spec!r}: the worker count after 'local:' must be an integer, e.g. local:4") from None
        if n is None:
            if gpu:
                import torch

                n = max(1, torch.cuda.device_count())
            else:
                n = max(1, os.cpu_count() or 1)
        if n < 1:
            raise ConfigError(f"--scheduler {spec!r}: need at least one worker")
        kw: dict[str, Any] = {"resources": {"GPU": 1}} if gpu else {}
        cluster = LocalCluster(n_workers=n, processes=True, threads_per_worker=1, dashboard_address=None, **kw)
        return Client(cluster), cluster
    if "://" in spec or ":" in spec:
        try:
            return Client(spec if "://" in spec else f"tcp://{spec}", timeout="30s"), None
        except OSError as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {spec} ({e}); start one with `dask scheduler` or use --scheduler local") from None
    raise ConfigError(f"--scheduler {spec!r}: use local, local:N or tcp://HOST:PORT")


@contextmanager
def connected_client(client: Any, scheduler: str | None, config: Config) -> Iterator[Any]:
    """``client`` when given, else a new one for ``scheduler`` (:func:`get_client`), closed with its
    cluster on exit."""
    if client is not None:
        yield client
        return
    client, cluster = get_client(scheduler, gpu=config.infer.device.lower().startswith("cuda"))
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def gpu_resources(client: Any, device: str) -> dict[str, float] | None:
    """``{"GPU": 1}`` when tasks must hold a GPU: device ``cuda*``, or ``auto`` with GPU workers present."""
    d = (device or "auto").lower()
    if d.startswith("cuda"):
        return {"GPU": 1}
    if d == "auto":
        workers = client.scheduler_info().get("workers", {})
        if any((w.get("resources") or {}).get("GPU") for w in workers.values()):
            return {"GPU": 1}
    return None


# ---------------------------------------------------------------------------------------------
# the task


def _run_one(
    input: str, out: str, model_path: str | None, sha256: str | None, method: str, config_dict: dict[str, Any],
    bundle_data: bytes | None = None,
) -> RunResult:
    """Worker side: one recording. Permanent errors return a ``failed`` result; others raise (retried)."""
    from vidfilter.infer.pipeline import run

    config = Config.from_dict(config_dict)
    try:
        model = cached_bundle(model_path, sha256, bundle_data) if sha256 else None
        result = run(input, out, model=model, method=method, config=config)
    except OutputExistsError:
        return _skipped(input, Path(out))
    except PERMANENT_ERRORS as e:
        result = RunResult.failure(input, e)
    result.worker_pid = os.getpid()
    return result


def _skipped(input: str, out: Path) -> RunResult:
    frames = None
    try:
        from vidfilter.io.zarr_info import read_ome_zarr_info

        info = read_ome_zarr_info(out)
        g = info["groups"].get("background") or next(iter(info["groups"].values()), {})
        frames = (g.get("shape") or [None])[0]
    except Exception:  # noqa: BLE001 - the count is informative only
        pass
    return RunResult(input=str(input), output=str(out), status="skipped", frames=frames)


def is_complete(out: Path) -> bool:
    """True when ``out`` is a finished vidfilter OME-Zarr store."""
    if not out.exists():
        return False
    try:
        from vidfilter.io.zarr_info import read_ome_zarr_info

        return bool(read_ome_zarr_info(out)["complete"])
    except VidfilterError:
        return False


# ---------------------------------------------------------------------------------------------
# the batch


def run_batch(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    model: str | os.PathLike[str] | None = None,
    method: str = "model",
    out_dir: str | os.PathLike[str],
    config: Config | None = None,
    client: Any = None,
    scheduler: str | None = None,
    retries: int = 2,
    ship_bundle: bool = False,
    summary_name: str | None = SUMMARY_NAME,
) -> list[RunResult]:
    """Process ``inputs`` on a Dask cluster, one task per recording; returns one result per input.

    Parameters
    ----------
    inputs
        Recordings (any input :func:`vidfilter.open` reads), as paths the workers can see.
    model
        Bundle path (``method="model"``); workers load it once each (cache keyed by sha256).
    method
        ``"model"`` or a baseline (``"median"``...).
    out_dir
        Where ``<stem>.zarr`` outputs and ``batch_summary.json`` go (visible to the workers).
    config
        Run configuration; ``config.infer.device`` ``cuda*`` makes each task hold ``GPU=1``.
    client, scheduler
        An existing ``dask.distributed.Client``, or ``"local"``, ``"local:N"``,
        ``"tcp://HOST:PORT"`` (default ``"local"``: one single-threaded worker process per core).
    retries
        Extra attempts for a task that failed for a transient reason (a lost worker is
        rescheduled by Dask on top of these, up to ``distributed.scheduler.allowed-failures``).
    ship_bundle
        Send the bundle's bytes to every worker once (``client.scatter(..., broadcast=True)``)
        instead of its path, for workers that do not see the client's file system.

    Returns
    -------
    list of RunResult
        In input order: status ``done``, ``skipped`` or ``failed``, with frames, fps, error and
        the rest of :func:`vidfilter.infer.pipeline.run`'s result.
    """
    from vidfilter.infer.pipeline import output_paths_for

    config = config or Config()
    out_dir = Path(out_dir)
    model_path, sha = _model_ref(model, method)
    out_dir.mkdir(parents=True, exist_ok=True)
    outs = output_paths_for(inputs, out_dir)
    with connected_client(client, scheduler, config) as client:
        t0 = time.perf_counter()
        bundle_data = None
        if ship_bundle and model_path:
            bundle_data = client.scatter(Path(model_path).read_bytes(), broadcast=True, hash=False)
        task = (model_path, sha, method, config.to_dict(), bundle_data)
        results = _gather(client, inputs, outs, task, config, retries)
    wall = time.perf_counter() - t0
    if summary_name:
        _write_summary(out_dir / summary_name, results, wall)
    log.info("batch summary (%.1f s):\n%s", wall, format_table(results))
    return results


def _model_ref(model: str | os.PathLike[str] | None, method: str) -> tuple[str | None, str | None]:
    """``(bundle path, sha256)`` the tasks load the model from (``None`` for a baseline), checked
    before anything is submitted."""
    from vidfilter.baselines import make_baseline

    if method != "model":
        make_baseline(method)
        return None, None
    if model is None:
        raise ConfigError("--method model needs --model BUNDLE (train one with `vidfilter train`), or pick a baseline with --method median")
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError("run_batch takes the model as a bundle path (workers load it themselves); save it with save_bundle first")
    from vidfilter.models.bundle import load_model

    model_path = str(Path(model).resolve())
    return model_path, load_model(model_path).sha256  # fails early on a bad bundle


def _gather(
    client: Any, inputs: Sequence[Any], outs: list[Path], task: tuple[Any, ...], config: Config, retries: int
) -> list[RunResult]:
    """Submit one task per input whose output is not finished, and collect the results in input order."""
    from dask.distributed import as_completed

    resources = gpu_resources(client, config.infer.device)
    results: list[RunResult | None] = [None] * len(inputs)
    futures = {}
    for i, (inp, out) in enumerate(zip(inputs, outs)):
        if not config.output.overwrite and is_complete(out):
            results[i] = _skipped(str(inp), out)
            continue
        fut = client.submit(
            _run_one, str(inp), str(out), *task,
            pure=False, retries=retries, resources=resources, key=f"vidfilter-run-{i}-{Path(str(inp)).name}-{os.urandom(4).hex()}",
        )
        futures[fut] = i
    for fut in as_completed(list(futures)):
        i = futures[fut]
        try:
            results[i] = fut.result()
        except Exception as e:  # noqa: BLE001 - reported per input, the batch goes on
            results[i] = RunResult.failure(inputs[i], f"{type(e).__name__}: {e} (after {retries} retries)")
        log.info("%s: %s", inputs[i], results[i].status)  # type: ignore[union-attr]
    return [r for r in results if r is not None]


def _write_summary(path: Path, results: list[RunResult], wall: float) -> None:
    """``batch_summary.json``: wall time, counts per status and every input's result."""
    from vidfilter.io.sink import atomic_write_bytes

    payload = {
        "wall_seconds": round(wall, 3),
        "inputs": len(results),
        **{status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")},
        "results": [r.to_dict() for r in results],
    }
    atomic_write_bytes(path, json.dumps(payload, indent=2, default=str).encode())


def format_table(results: Sequence[RunResult]) -> str:
    """A plain-text table: input, status, frames, fps, error."""
    rows = [("input", "status", "frames", "fps", "error")]
    for r in results:
        rows.append((
            r.name, r.status, "" if r.frames is None else str(r.frames),
            "" if r.fps is None else f"{r.fps:.1f}", (r.error or "")[:80],
        ))
    widths = [max(len(row[k]) for row in rows) for k in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
