"""Track tables: CSV / Parquet round trips, atomic writes, the table group inside a store."""

from __future__ import annotations

import builtins
import os

import numpy as np
import pandas as pd
import pytest

from vidfilter.errors import ConfigError, InputNotFoundError, OutputExistsError, OutputNotWritableError
from vidfilter.track.link import track_masks
from vidfilter.track.objects import COLUMNS
from vidfilter.track.tables import check_table_path, read_table, write_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    masks = []
    for t in range(12):
        m = np.zeros((40, 60), bool)
        m[5 + t : 15 + t, 5:15] = True
        m[25:32, 40 + t // 3 : 47 + t // 3] = True
        masks.append(m)
    imgs = [rng.integers(0, 255, (40, 60)).astype(np.uint8) for _ in masks]
    return track_masks(masks, imgs, min_area=10)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, table, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = write_table(table, tmp_path / f"sub dir/t{suffix}")
    back = read_table(path)
    assert tuple(back.columns) == COLUMNS
    pd.testing.assert_frame_equal(back, table, check_dtype=suffix == ".parquet")
    assert not [n for n in os.listdir(path.parent) if n.endswith(".tmp" + suffix)]  # no temporary left


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, table, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ConfigError, match="pip install pyarrow"):
        check_table_path(tmp_path / "t.parquet")
    with pytest.raises(ConfigError, match="pip install pyarrow"):
        write_table(table, tmp_path / "t.parquet")
    assert not list(tmp_path.iterdir())


def test_a_failed_write_keeps_the_old_file(tmp_path, table, monkeypatch):
    path = write_table(table, tmp_path / "t.csv")
    before = path.read_bytes()

    def boom(self, *a, **k):
        open(a[0], "w").write("half")  # noqa: SIM115 - a partial temporary, then a failure
        raise OSError("disk went away")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError):
        write_table(table, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["t.csv"]


def test_path_checks(tmp_path):
    with pytest.raises(ConfigError, match=".csv or .parquet"):
        check_table_path(tmp_path / "t.txt")
    (tmp_path / "t.csv").write_text("x")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        check_table_path(tmp_path / "t.csv")
    assert check_table_path(tmp_path / "t.csv", overwrite=True)
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(OutputNotWritableError, match="folder"):
        check_table_path(tmp_path / "d.csv", overwrite=True)
    (tmp_path / "plain").write_text("a file, not a folder")
    with pytest.raises(OutputNotWritableError, match="not a writable folder"):
        check_table_path(tmp_path / "plain" / "t.csv")
    with pytest.raises(InputNotFoundError):
        read_table(tmp_path / "missing.csv")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(OutputNotWritableError, match="writable"):
            check_table_path(locked / "t.csv")
    finally:
        locked.chmod(0o700)
