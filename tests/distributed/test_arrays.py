"""Huge arrays on a real LocalCluster: one task per output block reading its own halo from the
input Zarr equals the tiled engine on the whole image (and the single-process block run)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from vidfilter.config import Config
from vidfilter.distributed.arrays import background_dask, process_array_distributed
from vidfilter.infer.blocks import process_array
from vidfilter.infer.engine import TiledEngine
from vidfilter.io.scaling import to_float
from vidfilter.models import load_model

pytestmark = pytest.mark.cluster


def _cfg() -> Config:
    return Config().override({"infer.device": "cpu"})


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 1500 x 1700 uint8 image in Zarr, chunked independently of the blocks (300 x 400)."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:1500, :1700]
    img = (96 + 60 * np.sin(yy / 37.0) * np.cos(xx / 53.0) + rng.normal(0, 12, (1500, 1700))).clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("big") / "slide.zarr"
    a = zarr.create_array(str(path), shape=img.shape, chunks=(300, 400), dtype=np.uint8)
    a[:] = img
    return path, img


def test_distributed_blocks_equal_whole_image_engine(tmp_path, client, big, tiny_bundle):
    """1500 x 1700 in 512-px blocks on 2 workers == engine(whole image) within 1e-4, == process_array."""
    path, img = big
    model = load_model(tiny_bundle).model
    expected = TiledEngine(model, tile=_cfg().infer.tile, device="cpu")(to_float(img))

    s = process_array_distributed(path, tmp_path / "out.zarr", tiny_bundle, _cfg(), client=client, block=512)

    out = zarr.open_array(str(tmp_path / "out.zarr" / "background" / "0"), mode="r")
    assert s.status == "done" and s.blocks == 3 * 4 and out.chunks == (512, 512)
    np.testing.assert_allclose(out[:], expected, atol=1e-4, rtol=0)
    process_array(str(path), tmp_path / "local.zarr", tiny_bundle, _cfg(), block=512)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "local.zarr/background/0"), mode="r")[:], out[:])


def test_lazy_dask_array_matches(client, big, tiny_bundle):
    """background_dask(...) (da.map_blocks over block coordinates) gives the same numbers lazily."""
    path, img = big
    lazy = background_dask(path, tiny_bundle, _cfg(), block=512)
    assert lazy.chunks == ((512, 512, 476), (512, 512, 512, 164))
    crop = lazy[900:1500, 1000:1700].compute()  # only the blocks touching the crop run
    model = load_model(tiny_bundle).model
    expected = TiledEngine(model, tile=_cfg().infer.tile, device="cpu")(to_float(img))
    np.testing.assert_allclose(crop, expected[900:1500, 1000:1700], atol=1e-4, rtol=0)


def test_movie_blocks_and_resume(tmp_path, client, tiny_bundle):
    """A (T, H, W) movie is processed per frame; a second call on a finished output is refused,
    and a partial output resumes only the missing blocks."""
    from vidfilter.errors import OutputExistsError
    from vidfilter.infer.blocks import BlockLayout, BlockStore

    rng = np.random.default_rng(6)
    movie = rng.integers(0, 256, (4, 200, 260), dtype=np.uint8)
    src = zarr.create_array(str(tmp_path / "m.zarr"), shape=movie.shape, chunks=(1, 200, 260), dtype=np.uint8)
    src[:] = movie
    process_array(str(tmp_path / "m.zarr"), tmp_path / "ref.zarr", tiny_bundle, _cfg(), block=128)

    b = load_model(tiny_bundle)
    lay = BlockLayout.for_model(movie.shape, b.model, 128)
    st = BlockStore(tmp_path / "out.zarr", lay, np.float32, key=b.sha256)
    st.abort()  # an interrupted run with nothing done yet, lock released
    s = process_array_distributed(tmp_path / "m.zarr", tmp_path / "out.zarr", tiny_bundle, _cfg(), client=client, block=128, blocks_per_task=3)

    assert s.blocks == 4 * 2 * 3 and s.blocks_this_run == s.blocks
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "out.zarr/background/0"), mode="r")[:],
        zarr.open_array(str(tmp_path / "ref.zarr/background/0"), mode="r")[:],
    )
    with pytest.raises(OutputExistsError):
        process_array_distributed(tmp_path / "m.zarr", tmp_path / "out.zarr", tiny_bundle, _cfg(), client=client, block=128)
