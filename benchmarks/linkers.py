"""Linker benchmark on the generated scene (:mod:`track_scene`): identity switches, coverage and time
of laptrack and trackpy on the same object table, the measurement behind the choice of trackpy
(``vidfilter/track/link.py``). Needs ``pip install laptrack`` (not a dependency of vidfilter).
Run: ``.venv/bin/python benchmarks/linkers.py``."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "track"))
import track_scene  # noqa: E402

from vidfilter.track.objects import measure_frames  # noqa: E402


def laptrack_link(df: pd.DataFrame, max_distance: float, max_gap: int) -> pd.DataFrame:
    from laptrack import LapTrack

    lt = LapTrack(cutoff=max_distance**2, gap_closing_cutoff=max_distance**2, gap_closing_max_frame_count=max_gap)
    out, _, _ = lt.predict_dataframe(df, ["y", "x"], frame_col="frame", only_coordinate_cols=False)
    return out


def trackpy_link(df: pd.DataFrame, max_distance: float, max_gap: int, predict: bool = False) -> pd.DataFrame:
    import trackpy

    trackpy.quiet()
    if predict:
        pred = trackpy.predict.NearestVelocityPredict()
        out = pred.link_df(df, search_range=max_distance, memory=max_gap, pos_columns=["y", "x"])
    else:
        out = trackpy.link(df, search_range=max_distance, memory=max_gap, pos_columns=["y", "x"])
    return out.rename(columns={"particle": "track_id"})


MAX_DISTANCE, MAX_GAP = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0, int(sys.argv[2]) if len(sys.argv) > 2 else 30


def main(repeats: int = 3) -> None:
    centres = track_scene.paths()
    table = measure_frames(*zip(*track_scene.frames(centres)), min_area=20)
    df = pd.DataFrame(table.columns())
    big = pd.concat([df.assign(frame=df["frame"] + k * 200) for k in range(25)], ignore_index=True)  # 5000 frames
    for name, fn in (("laptrack", laptrack_link), ("trackpy", trackpy_link),
                     ("trackpy+velocity", lambda d, m, g: trackpy_link(d, m, g, predict=True))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best, best_big = np.inf, np.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = fn(df.copy(), MAX_DISTANCE, MAX_GAP)
                best = min(best, time.perf_counter() - t0)
            t0 = time.perf_counter()
            fn(big.copy(), MAX_DISTANCE, MAX_GAP)
            best_big = time.perf_counter() - t0
        cover, switches = track_scene.identity_scores(track_scene.match(out, centres), centres)
        print(f"{name:18s} tracks {out['track_id'].nunique():3d}  switches {switches:2d}  "
              f"min cover {cover.min():.3f}  cover {np.round(cover, 3).tolist()}  "
              f"{len(df)} rows {best * 1e3:.0f} ms, {len(big)} rows {best_big:.2f} s")


if __name__ == "__main__":
    main()
