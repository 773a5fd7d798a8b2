"""Helpers the benchmark scripts share: the text tables they print and the machine they ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from collections.abc import Callable, Iterable
from typing import Any


def md_head(header: str) -> list[str]:
    """The header line ``"| a | b |"`` of a Markdown table and its ``|---|---|`` separator."""
    return [header, "|" + "---|" * (header.count("|") - 1)]


def text_table(head: list[str], rows: Iterable[Any], row: Callable[[Any], str]) -> str:
    """The ``head`` lines, then ``row(r)`` for each of ``rows``, one per line."""
    return "\n".join([*head, *map(row, rows)])


def machine() -> dict[str, Any]:
    """The CPU model, cores, torch and Python versions, and the load average at the start."""
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
    }


def bundle_methods(polarity: str, unrefined: bool = True) -> dict[str, tuple[Any, str, Any]]:
    """A row per shipped bundle for a recording of ``polarity`` animals: ``label -> (model, method,
    config)``; a bundle of the other polarity runs on inverted frames (``infer.invert``). With
    ``unrefined``, each also runs with ``--refine full`` (bounded by the projections) and ``--refine off``
    (the network's background as it is)."""
    from vidfilter.config import Config
    from vidfilter.models.shipped import shipped_names
    from vidfilter.train.corpus import SETUPS

    rows: dict[str, tuple[Any, str, Any]] = {}
    for name in shipped_names():
        label, cfg = name, Config()
        if SETUPS[name].polarity != polarity:
            label, cfg = f"{name}, inverted", cfg.override({"infer.invert": True})
        rows[label] = (name, "model", cfg)
        if unrefined:
            for mode in ("full", "off"):
                rows[f"{label}, --refine {mode}"] = (name, "model", cfg.override({"infer.refine": mode}))
    return rows


def training_methods(inputs: list[str], work: Path, auto: Any, auto_cfg: Any, *, init_minutes: float = 0.0,
                     train_minutes: float = 0.0) -> dict[str, tuple[Any, str, Any]]:
    """The rows of models trained on ``inputs`` with the defaults: ``vidfilter train --init AUTO`` for
    ``init_minutes`` (the bundle ``--model auto`` picked; not when it runs on inverted frames, since
    training sees the frames as they are) and ``vidfilter train`` for ``train_minutes``."""
    import json

    from vidfilter.config import Config
    from vidfilter.models.bundle import load_model
    from vidfilter.models.shipped import resolve_bundle
    from vidfilter.train.loop import train

    rows: dict[str, tuple[Any, str, Any]] = {}
    if init_minutes and auto and not auto_cfg.infer.invert:
        # trained once with train.guard false: the tuned network's rows, and the check's verdict picks
        # what `vidfilter train --init` (guard on) writes: that network, or the starting bundle's
        cfg = Config().override({"train.minutes": init_minutes, "train.steps": 10**9, "train.guard": False})
        model = train(inputs, work / "init.vfm", cfg, progress=False, init_bundle=resolve_bundle(auto))
        check = load_model(model).provenance.get("fine_tuning_check") or {}
        print(f"fine-tuning check of {auto}: {json.dumps(check)}", flush=True)
        tag = f"vidfilter train --init {auto}, {init_minutes:g} min"
        rows[f"{tag}, the tuned network (train.guard false)"] = (model, "model", auto_cfg)
        rows[f"{tag}, the tuned network, --refine off"] = (model, "model", auto_cfg.override({"infer.refine": "off"}))
        kept = "tuned network" if check.get("accepted") else f"starting bundle ({check.get('reason')})"
        rows[f"{tag}, defaults (the check keeps the {kept})"] = (
            model if check.get("accepted") else resolve_bundle(auto), "model", auto_cfg)
    if train_minutes:
        cfg = Config().override({"train.minutes": train_minutes, "train.steps": 10**9})
        model = train(inputs, work / "trained.vfm", cfg, progress=False)
        rows[f"vidfilter train, {train_minutes:g} min"] = (model, "model", Config())
        rows[f"vidfilter train, {train_minutes:g} min, --refine off"] = (model, "model", Config().override({"infer.refine": "off"}))
    return rows
