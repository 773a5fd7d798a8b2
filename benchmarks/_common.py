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
