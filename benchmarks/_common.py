"""Helpers the benchmark scripts share: the text tables they print."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def md_head(header: str) -> list[str]:
    """The header line ``"| a | b |"`` of a Markdown table and its ``|---|---|`` separator."""
    return [header, "|" + "---|" * (header.count("|") - 1)]


def text_table(head: list[str], rows: Iterable[Any], row: Callable[[Any], str]) -> str:
    """The ``head`` lines, then ``row(r)`` for each of ``rows``, one per line."""
    return "\n".join([*head, *map(row, rows)])
