"""Synthetic static-mode pairs as a ``torch`` dataset for DataLoader workers.

Kept apart from :mod:`vidfilter.static.synthesis` so that extraction and previews never import torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["SynthDataset"]


class SynthDataset(torch.utils.data.IterableDataset):
    """Endless batches ``(input (B, 1, P, P), target (B, 1, P, P))`` of a
    :class:`~vidfilter.static.synthesis.PairSynthesizer`, for ``DataLoader(ds, batch_size=None, num_workers=k)``.

    Worker ``w`` of ``k`` makes batches ``start + w, start + w + k, ...``; the loader takes them in
    turn, so it yields batches ``start, start + 1, ...``: the in-process stream, whatever ``k``.
    Workers use one torch thread each. (The synthesiser calls no OpenCV: after a fork, OpenCV's thread
    pool deadlocks.)
    """

    def __init__(self, synth: Any, batch_size: int, seed: int, start_batch: int = 0) -> None:
        super().__init__()
        self.synth, self.batch_size, self.seed, self.start_batch = synth, int(batch_size), int(seed), int(start_batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            torch.set_num_threads(1)
        b = self.start_batch + wid
        while True:
            inp, tgt = self.synth.batch(b * self.batch_size, self.batch_size, self.seed)
            yield torch.from_numpy(inp), torch.from_numpy(tgt)
            b += nw
