"""Static mode against classical code on two cell classes that share one brightness range.

Images: :func:`vidfilter.synth.cells.make_two_class_set` (an independent generator; the static
mode's own synthesiser never sees its truth). Class A (the target) and class B share one range of
peak contrast and differ in shape (round vs elongated) or texture (smooth vs speckled); the
illumination is uneven. Training images have unevenness 1; test images 1, 2 and 3, every test
image with its own seed.

Per object, the contrast (:func:`vidfilter.synth.cells.object_contrasts`: object mean minus the
median of a ring around it) is measured on each method's output and on the raw image. A counts as
*kept* when its output contrast is above 50 % of the raw contrast; B counts as *suppressed* when
below 25 %. A method's score is the smaller of the two shares.

Methods (the classical ones output the image where their mask is on, 0 elsewhere):

- ``raw + otsu``: Otsu's threshold on the raw image;
- ``tophat + otsu``: white top-hat (disc of radius 15) then Otsu;
- ``best global threshold``: the threshold on the raw image that maximises the score on the
  training images (chosen with the truth, so an upper bound for any global threshold);
- ``LoG blobs``: scikit-image ``blob_log`` over the scale range of A, its threshold chosen on the
  training images like the one above; each blob keeps a disc of radius sigma * sqrt(2);
- ``vidfilter``: ``extract-crops`` (points) -> ``train`` (a time budget) -> ``run``, the network's
  ``target`` output, with the shipped ``bbbc026_hepatocytes_cpu`` config (the CPU recipe of
  ``docs/static.md``).

    .venv/bin/python benchmarks/static.py --light         # both cases, 1 / 2 / 5 min of training (~40 min)
    .venv/bin/python benchmarks/static.py --quick         # 1 case, 1 min, fewer images

JSON goes to ``benchmarks/results/static.json``; the table is printed (Markdown) for docs/static.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import machine  # noqa: E402
from vidfilter.synth.cells import CASES, make_two_class_set, object_contrasts  # noqa: E402
from vidfilter.synth.lookalike import write_coculture  # noqa: E402

KEEP, SUPPRESS = 0.5, 0.25

#: the synthesiser's shared illumination (docs/static.md), measured as a direction
LIGHT = {"static.synth.gain": [0.4, 2.5], "static.synth.gradient": 0.5, "static.synth.offset": [0.0, 0.15]}
LEVELS = (1.0, 2.0, 3.0)

#: the shipped config the vidfilter rows train with (the CPU recipe of docs/static.md)
CONFIG = "bbbc026_hepatocytes_cpu"


# ---------------------------------------------------------------------------------------------
# scoring


def ratios(output: np.ndarray, raw: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Per object: output contrast over raw contrast (NaN where the raw contrast is not measurable)."""
    c_raw = object_contrasts(raw, instances)
    c_out = object_contrasts(output, instances)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c_raw > 1e-3, c_out / c_raw, np.nan)


def score(outputs: list[np.ndarray], data) -> dict[str, float]:
    """A kept and B suppressed over every object of ``data`` (see the module docstring)."""
    kept, supp = [], []
    for out, img, inst, cls in zip(outputs, data.images, data.instances, data.classes):
        r = ratios(out, img.astype(np.float32) / 255.0, inst)
        ok = ~np.isnan(r)
        kept.extend((r[ok & (cls == 1)] > KEEP).tolist())
        supp.extend((r[ok & (cls == 2)] < SUPPRESS).tolist())
    a, b = float(np.mean(kept)), float(np.mean(supp))
    return {"a_kept": a, "b_suppressed": b, "score": min(a, b), "objects": len(kept) + len(supp)}


# ---------------------------------------------------------------------------------------------
# classical methods


def _linear(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def raw_otsu(img: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu

    x = _linear(img)
    return np.where(x > threshold_otsu(x), x, 0.0)


def tophat_otsu(img: np.ndarray, radius: int = 15) -> np.ndarray:
    from skimage.filters import threshold_otsu
    from skimage.morphology import disk, white_tophat

    x = white_tophat(_linear(img), disk(radius))
    return np.where(x > threshold_otsu(x), x, 0.0)


def global_threshold(img: np.ndarray, t: float) -> np.ndarray:
    x = _linear(img)
    return np.where(x > t, x, 0.0)


def log_blobs(img: np.ndarray, threshold: float) -> np.ndarray:
    from skimage.draw import disk
    from skimage.feature import blob_log

    x = _linear(img)
    mask = np.zeros(x.shape, bool)
    for y, xx, s in blob_log(x, min_sigma=3.0, max_sigma=5.5, num_sigma=6, threshold=threshold):
        rr, cc = disk((y, xx), s * np.sqrt(2), shape=x.shape)
        mask[rr, cc] = True
    return np.where(mask, x, 0.0)


def choose(train, method, grid) -> tuple[float, dict]:
    """The parameter of ``grid`` with the best score on the training set."""
    best = None
    for p in grid:
        s = score([method(img, p) for img in train.images], train)
        if best is None or s["score"] > best[1]["score"]:
            best = (float(p), s)
    assert best is not None
    return best


# ---------------------------------------------------------------------------------------------
# vidfilter


def vidfilter_model(train_dir: Path, work: Path, minutes: float, seed: int, overrides: dict) -> tuple[object, dict]:
    from vidfilter.config import Config
    from vidfilter.static.extract import extract_crops
    from vidfilter.train.loop import train

    cfg = Config.from_yaml(CONFIG).override({"train.minutes": minutes, "train.seed": seed, **overrides})
    t0 = time.perf_counter()
    summary = extract_crops([train_dir / "images"], work / "bank", cfg, annotations=train_dir / "points")
    t1 = time.perf_counter()
    model = train([work / "bank"], work / "m.vfm", cfg, progress=False)
    t2 = time.perf_counter()
    log = json.loads((work / "m.report" / "log.json").read_text())
    info = {"extract_s": round(t1 - t0, 1), "train_s": round(t2 - t1, 1), "steps": log.get("steps"),
            "targets": summary.get("targets"), "unwanted": summary.get("unwanted"),
            "zeroed_share": summary.get("zeroed_share")}
    return (model, cfg), info


def vidfilter_outputs(model_cfg, test_dir: Path, work: Path, name: str) -> list[np.ndarray]:
    import zarr

    from vidfilter.static.infer import run_static

    model, cfg = model_cfg
    out = work / f"{name}.zarr"
    run_static(test_dir / "images", out, model=model, config=cfg)
    arr = zarr.open_array(str(out / "target" / "0"), mode="r")[:]
    return list(arr) if arr.ndim == 3 else [arr]


# ---------------------------------------------------------------------------------------------


def run_case(case: str, args, work: Path) -> dict:
    n_train, n_test = (4, 2) if args.quick else (8, 3)
    train = make_two_class_set(n_train, args.size, case=case, unevenness=1.0, seed=1)
    write_coculture(train, work / "train")
    tests = {}
    for u in LEVELS:
        sets = [make_two_class_set(1, args.size, case=case, unevenness=u, seed=1000 + int(u) * 100 + k) for k in range(n_test)]
        data = sets[0]
        for extra in sets[1:]:
            for key in ("images", "labels", "names", "points", "instances", "classes"):
                getattr(data, key).extend(getattr(extra, key))
        data.names = [f"test{k:02d}" for k in range(len(data.images))]
        write_coculture(data, work / f"test_u{int(u)}")
        tests[u] = data

    t_global, _ = choose(train, global_threshold, np.linspace(0.1, 0.6, 51))
    t_log, _ = choose(train, log_blobs, [0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3])
    methods = {
        "raw + Otsu": raw_otsu,
        "top-hat (r 15) + Otsu": tophat_otsu,
        f"best global threshold ({t_global:.3f}, chosen on training)": lambda im: global_threshold(im, t_global),
        f"LoG blobs (threshold {t_log:.2f}, chosen on training)": lambda im: log_blobs(im, t_log),
    }
    rows: dict[str, dict] = {}
    for name, fn in methods.items():
        rows[name] = {f"u{int(u)}": score([fn(im) for im in d.images], d) for u, d in tests.items()}
    for label, minutes, overrides in args.variants:
        model_cfg, info = vidfilter_model(work / "train", work / label.replace(" ", "_"), minutes, args.seed, overrides)
        row = {f"u{int(u)}": score(vidfilter_outputs(model_cfg, work / f"test_u{int(u)}", work, f"{label}_{int(u)}".replace(" ", "_")), d)
               for u, d in tests.items()}
        rows[f"vidfilter, {label}"] = {**row, **info, "minutes": minutes, "overrides": overrides}
        print(f"  {case} / {label}: " + ", ".join(f"u{int(u)} {row[f'u{int(u)}']['a_kept']:.2f}/{row[f'u{int(u)}']['b_suppressed']:.2f}" for u in LEVELS), flush=True)
    return rows


def table(results: dict) -> str:
    lines = []
    for case, rows in results["cases"].items():
        lines.append(f"\n**{case}** (A kept / B suppressed, by unevenness; score = the smaller)\n")
        lines.append("| method | 1x | 2x | 3x | worst score |")
        lines.append("|---|---|---|---|---|")
        for name, r in rows.items():
            cells = [f"{r[f'u{int(u)}']['a_kept']:.2f} / {r[f'u{int(u)}']['b_suppressed']:.2f}" for u in LEVELS]
            worst = min(r[f"u{int(u)}"]["score"] for u in LEVELS)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {worst:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", nargs="+", default=None, choices=CASES)
    ap.add_argument("--minutes", type=float, nargs="+", default=None, help="training budgets, one row each")
    ap.add_argument("--light", action="store_true",
                    help="add a row trained with the synthesiser's shared illumination (LIGHT) at the longest budget")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the vidfilter row (repeatable), e.g. static.synth.noise=[0,0.01]")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "static.json"))
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    import yaml

    args.cases = args.cases or (["shape"] if args.quick else list(CASES))
    args.minutes = args.minutes or ([1.0] if args.quick else [1.0, 2.0, 5.0])
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    args.variants = [(f"{m:g} min", m, overrides) for m in args.minutes]
    if not args.quick:
        args.variants.insert(0, ("200 steps", 60.0, {**overrides, "train.steps": 200}))
    if args.light:
        args.variants.append((f"shared illumination, {max(args.minutes):g} min", max(args.minutes), {**overrides, **LIGHT}))
    work_root = Path(args.workdir or tempfile.mkdtemp(prefix="vidfilter-static-"))
    results = {"machine": machine(),
               "settings": {"quick": args.quick, "minutes": args.minutes, "size": args.size, "overrides": overrides,
                            "keep": KEEP, "suppress": SUPPRESS}, "cases": {}}
    t0 = time.perf_counter()
    for case in args.cases:
        results["cases"][case] = run_case(case, args, work_root / case)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))
    print(f"\nwrote {args.out} ({results['seconds']} s)")


if __name__ == "__main__":
    main()
