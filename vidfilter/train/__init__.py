"""vidfilter.train: the training loop, atomic checkpoints and the training report.

- :class:`Trainer` / :func:`train` (``loop.py``): time-lag pairs -> U-Net -> bundle; resumable bit for bit.
- :func:`save_checkpoint` / :func:`load_checkpoint` (``checkpoint.py``).
- :func:`write_report` (``report.py``): loss curves, sample panels, JSON log with identity verdict.

``vidfilter.train`` names both this package and the function :func:`train`; calling the package
calls the function, so ``vidfilter.train(...)`` works whichever of the two the name holds.
"""

from __future__ import annotations

from vidfilter._lazy import callable_package
from vidfilter.train.checkpoint import checkpoint_path, load_checkpoint, report_dir, save_checkpoint
from vidfilter.train.loop import IDENTITY_THRESHOLD, Trainer, TrainResult, identity_score, pair_loss, train
from vidfilter.train.report import verdict, write_report

__all__ = ["IDENTITY_THRESHOLD", "TrainResult", "Trainer", "checkpoint_path", "identity_score",
    "load_checkpoint", "pair_loss", "report_dir", "save_checkpoint", "train", "verdict", "write_report"]

callable_package(__name__, train)
