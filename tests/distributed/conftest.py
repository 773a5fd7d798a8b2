"""One real LocalCluster (2 worker processes, 1 thread each) shared by the distributed tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def client():
    """A ``Client`` on ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)``."""
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    c = distributed.Client(cluster)
    c.wait_for_workers(2, timeout=60)
    yield c
    c.close()
    cluster.close()
