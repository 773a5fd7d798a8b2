"""One real LocalCluster (2 worker processes, 1 thread each) shared by the distributed tests."""

from __future__ import annotations

import pytest
import torch

from vidfilter.config import Config
from vidfilter.models import build_model, save_bundle


@pytest.fixture(scope="session")
def client():
    """A ``Client`` on ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)``."""
    distributed = pytest.importorskip("dask.distributed")
    # every worker process (also one the nanny restarts) writes slowly enough for a test to kill it mid-run
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
        env={"VIDFILTER_TEST_SLOW_WRITE": "0.05"},
    )
    c = distributed.Client(cluster)
    c.wait_for_workers(2, timeout=60)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A width-4, depth-3 U-Net bundle (margin 40, multiple 8); not residual, so it is far from the identity."""
    torch.manual_seed(0)
    cfg = Config().override({"model.width": 4, "model.depth": 3, "model.residual": False})
    return save_bundle(tmp_path_factory.mktemp("model") / "tiny.vfm", build_model(cfg.model), cfg)
