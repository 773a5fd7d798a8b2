"""The ``vidfilter`` command: parses arguments, builds a :class:`~vidfilter.config.Config`, calls the API.

Contract: exit 0 on success, 2 for a user mistake (bad usage, bad input, bad config) with exactly
one line on stderr that says what is wrong and what to do, 1 for an internal error. ``--debug``
shows the traceback. Every flag that tunes a run overrides one config field.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from vidfilter.config import Config
from vidfilter.errors import VidfilterError

log = logging.getLogger("vidfilter")


# ---------------------------------------------------------------------------------------------
# helpers


def _load_config(args: argparse.Namespace, overrides: dict[str, Any]) -> Config:
    cfg = Config.from_yaml(args.config) if getattr(args, "config", None) else Config()
    return cfg.override(overrides)


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _versions() -> str:
    import importlib.metadata as md

    import vidfilter

    parts = [f"vidfilter {vidfilter.__version__}"]
    for pkg in ("torch", "av", "zarr", "dask", "numpy"):
        try:
            parts.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            parts.append(f"{pkg} missing")
    try:
        import av

        parts.append(f"FFmpeg {av.ffmpeg_version_info}")
    except Exception:  # pragma: no cover - av missing
        pass
    try:
        import torch

        parts.append("device " + ("cuda (" + torch.cuda.get_device_name(0) + ")" if torch.cuda.is_available() else "cpu"))
    except Exception:  # pragma: no cover
        pass
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# subcommands


def cmd_info(args: argparse.Namespace) -> int:
    from vidfilter.io.registry import open as vf_open

    for path in args.inputs:
        p = Path(path)
        if p.suffix == ".zarr" and p.is_dir() and ((p / "background").exists() or (p / "target").exists()):
            from vidfilter.io.zarr_sink import read_ome_zarr_info

            info = read_ome_zarr_info(p)
            attrs = info.get("attrs", {})
            facts = {
                "path": info["path"], "complete": info["complete"],
                "input": attrs.get("input", {}).get("path"), "method": attrs.get("method"),
                "model": (attrs.get("model") or {}).get("path"),
            }
            for name, g in info["groups"].items():
                facts[name] = f"{tuple(g['shape'])} {g['dtype']} chunks={tuple(g['chunks'])} fps={g['fps']} written={g['frames_written']}/{g['n_frames']}"
        else:
            with vf_open(path, color=args.color) as src:
                facts = src.describe()
        if args.json:
            print(json.dumps(facts, default=str))
        else:
            width = max(len(k) for k in facts)
            for k, v in facts.items():
                print(f"{k:<{width}}  {v}")
            if len(args.inputs) > 1:
                print()
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from vidfilter.convert import convert

    convert(args.input, args.output, color=args.color, overwrite=args.overwrite, progress=_progress(args),
            start=args.start, stop=args.stop, step=args.step)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from vidfilter.train.loop import train

    cfg = _load_config(
        args,
        {
            "model.preset": args.preset,
            "model.width": args.width,
            "sampling.mode": args.mode,
            "sampling.lag": args.lag,
            "sampling.lag_unit": args.lag_unit or ("frames" if args.lag else None),
            "sampling.crop": args.crop,
            "train.steps": args.steps,
            "train.minutes": args.minutes,
            "train.batch_size": args.batch_size,
            "train.lr": args.lr,
            "train.seed": args.seed,
            "train.device": args.device,
            "train.threads": args.threads,
            "output.polarity": args.polarity,
            "sampling.registration": getattr(args, "registration", None),
        },
    )
    out = train(args.inputs, args.out, cfg, resume=args.resume, progress=_progress(args), init_bundle=args.init)
    print(out)
    _train_summary(out, quiet=args.quiet)
    return 0


def _train_summary(bundle_path: Any, quiet: bool) -> None:
    """One line on stderr: steps, minutes, the polarity and network used, and the report's verdict
    (all from the report's log.json, which holds the resolved config)."""
    import json

    from vidfilter.train.checkpoint import report_dir

    if quiet:
        return
    try:
        log = json.loads((report_dir(bundle_path) / "log.json").read_text())
        cfg = log["config"]
        pol, preset, crop = cfg["output"]["polarity"], cfg["model"]["preset"], cfg["sampling"]["crop"]
    except (OSError, ValueError, KeyError, TypeError):  # the bundle is written; a summary is a courtesy
        return
    moved = log.get("registration") or {}
    init = log.get("init")
    start = f"fine-tuned from {Path(init['path']).name}: " if init else ""
    reg = f"camera moved (up to {max(r['largest_shift_px'] for r in moved.values())} px): pairs registered; " if moved else ""
    print(
        f"{start}{log.get('steps')} steps in {log.get('elapsed_s', 0) / 60:.1f} min; polarity {pol}, "
        f"{preset} network on {crop} px crops; {reg}{log.get('verdict')}",
        file=sys.stderr,
    )


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load_config(
        args,
        {
            "infer.tile": args.tile,
            "infer.overlap": args.overlap,
            "infer.batch_size": args.batch_size,
            "infer.device": args.device,
            "infer.precision": args.precision,
            "infer.every": args.every,
            "infer.adaptive": args.adaptive,
            "infer.adaptive_bound": args.adaptive_bound,
            "infer.threads": args.threads,
            "infer.salvage": True if args.salvage else None,
            "infer.missing_chunks": args.missing_chunks,
            "output.polarity": args.polarity,
            "output.mask": True if args.mask else None,
            "output.mask_threshold": args.mask_threshold,
            "output.mask_method": args.mask_method,
            "output.formats": args.format,
            "output.overwrite": True if args.overwrite else None,
            "output.foreground_dtype": args.foreground_dtype,
        },
    )
    from vidfilter.api import run

    results = run(args.inputs, args.out, out_dir=args.out_dir, model=args.model, method=args.method, config=cfg,
                  scheduler=args.scheduler, retries=args.retries, progress=_progress(args))
    failed = [r for r in results if not r.ok]
    if args.scheduler:
        from vidfilter.distributed.batch import format_table

        print(format_table(results))
        return 2 if failed else 0
    if failed and len(results) == 1:
        raise VidfilterError(failed[0].error or "failed")
    for r in results:
        print(r.line(), file=sys.stderr if not r.ok else sys.stdout)
    return 2 if failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from vidfilter.io.integrity import verify

    report = verify(args.output, input=args.input, quick=args.quick, missing_chunks=args.missing_chunks)
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        print(report.summary())
        for line in report.problems:
            print(f"  problem: {line}")
        for name, facts in report.facts.get("images", {}).items():
            print(f"  {name}: {facts.get('frames')} frames, {facts.get('chunks', '?')} chunks")
        rec = report.facts.get("input") or {}
        if rec:
            print(f"  input: {rec.get('path')} ({rec.get('frames_read')} frames read, content hash {rec.get('frames_blake2b')})")
            if rec.get("damage"):
                print(f"  input damage recorded (salvaged run): {rec['damage']}")
        if "input_check" in report.facts:
            print(f"  input check: {report.facts['input_check']}")
    return 0 if report.complete else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from vidfilter.eval.evaluate import evaluate

    report = evaluate(
        args.prediction, input=args.input, masks=args.masks, boxes=args.boxes, points=args.points,
        mask_method=args.mask_method, threshold=args.threshold, polarity=args.polarity, sigma=args.sigma,
        min_area=args.min_area, connectivity=args.connectivity, iou_threshold=args.iou, frames=args.frames,
        box_class=args.box_class, point_class=args.point_class, box_inclusive=args.box_inclusive,
    )
    print(report.table())
    if args.json:
        report.write_json(args.json)
    return 0


def cmd_extract_crops(args: argparse.Namespace) -> int:
    from vidfilter.static.extract import extract_crops

    cfg = _load_config(args, {"static.extract.recipe": args.recipe, "static.extract.seed": args.seed})
    summary = extract_crops(args.inputs, args.out, cfg, annotations=args.annotations, overwrite=args.overwrite,
                            progress=_progress(args))
    print(f"{summary['output']}: {summary['targets']} target and {summary['unwanted']} unwanted crops, "
          f"{summary['backgrounds']} backgrounds from {summary['images']} images ({summary['discarded']} objects discarded)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from vidfilter.io.ownership import signed_png
    from vidfilter.io.sink import atomic_write_bytes, check_output_path
    from vidfilter.static.bank import load_banks
    from vidfilter.static.synthesis import PairSynthesizer, preview_grid

    if Path(args.preview).suffix.lower() != ".png":
        raise VidfilterError(f"cannot write {args.preview}; give a .png path")
    cfg = _load_config(args, {"sampling.crop": args.crop})
    check_output_path(args.preview, inputs=args.banks, overwrite=args.overwrite)
    synth = PairSynthesizer(load_banks(args.banks), cfg.static.synth, cfg.sampling.crop_size())
    grid = preview_grid(synth, args.pairs, args.seed)
    atomic_write_bytes(args.preview, signed_png(grid))
    print(args.preview)
    return 0


# ---------------------------------------------------------------------------------------------
# parser


class _Parser(argparse.ArgumentParser):
    """argparse with the house style for usage mistakes: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("vidfilter").strip()
        self.exit(2, f"vidfilter: error: {where + ': ' if where else ''}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vidfilter",
        description="Separate what moves from what stays in microscopy and behaviour recordings.",
    )
    parser.add_argument("--version", action="store_true", help="print library versions and the device, then exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="describe inputs: shape, dtype, fps, duration, codec, chunking, size")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument("--color", choices=["gray", "keep"], default="keep")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="copy any readable input into any writable format")
    p.add_argument("input")
    p.add_argument("output", help="OUT.zarr, OUT.mkv (FFV1 lossless), OUT.mp4 (preview), a folder/ of PNG or TIFF, OUT.h5")
    p.add_argument("--color", choices=["gray", "keep"], default="keep")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--stop", type=int, default=None)
    p.add_argument("--step", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("train", help="learn the background of recordings from time-lagged frame pairs")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="recordings, globs, or a .txt file of paths")
    p.add_argument("--out", required=True, help="model bundle to write, e.g. model.vfm")
    p.add_argument("--config", help="YAML config (e.g. configs/worms_video.yaml)")
    p.add_argument("--preset", choices=["auto", "paper", "fast"], help="network: auto (default) = paper on a GPU, fast on a CPU")
    p.add_argument("--width", type=int)
    p.add_argument("--lag", type=float, nargs="+", metavar="LAG", help="lag, or MIN MAX range (unit: --lag-unit)")
    p.add_argument("--lag-unit", choices=["frames", "seconds", "fraction"],
                   help="unit of --lag (default from the config: fraction of the recording's length)")
    p.add_argument("--crop", type=int, help="crop side in px (default: 256 with the paper network, 128 with the fast one)")
    p.add_argument("--steps", type=int)
    p.add_argument("--minutes", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--threads", type=int)
    p.add_argument("--polarity", choices=["auto", "bright", "dark", "absolute"])
    p.add_argument("--registration", choices=["auto", "on", "off"],
                   help="camera-shift registration of pairs and temporal channel (auto, the default: on where the camera moved)")
    p.add_argument("--init", help="fine-tune from this bundle instead of random weights: a .vfm path, or a setup "
                   "whose bundle ships with vidfilter (worm-plate, open-arena)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint next to --out")
    p.add_argument("--mode", choices=["video", "static"],
                   help="video: time-lag pairs of recordings; static: INPUTs are crop banks (`vidfilter extract-crops`)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("run", help="write background and foreground of recordings (static-mode models: target and residual)")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--model", help="model bundle from `vidfilter train` (needed for --method model), or the name of a "
                   "shipped one (worm-plate, open-arena: trained on generated recordings of that setup, no training needed)")
    p.add_argument("--method", default="model", help="model (default) or a baseline: median, running-median, max, min, mog2, knn, median-registered, max-registered, min-registered")
    p.add_argument("--out", help="output store for a single input (OUT.zarr)")
    p.add_argument("--out-dir", help="folder for one output per input")
    p.add_argument("--config")
    p.add_argument("--tile", type=int)
    p.add_argument("--overlap", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--every", type=int, help="keyframe mode: run the network every K frames")
    p.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=None,
                   help="add keyframes when the residual drifts (default: on)")
    p.add_argument("--adaptive-bound", type=float, default=None,
                   help="rise of the median residual (0-1 scale) that makes a frame a keyframe (default 0.005)")
    p.add_argument("--threads", type=int)
    p.add_argument("--polarity", choices=["auto", "bright", "dark", "absolute"])
    p.add_argument("--mask", action="store_true", help="also write a binary mask group")
    p.add_argument("--mask-threshold", type=float)
    p.add_argument("--mask-method", choices=["fixed", "object"], help="with --mask: fixed = foreground > --mask-threshold; object = whole objects (hysteresis from the noise level, closing; an object needs 40 px above the seed threshold)")
    p.add_argument("--format", nargs="+", choices=["zarr", "ffv1", "png", "tiff", "hdf5", "preview"])
    p.add_argument("--foreground-dtype", choices=["input", "float16"])
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--scheduler", help="run on Dask: local, local:N (N worker processes) or tcp://HOST:PORT (needs --out-dir)")
    p.add_argument("--retries", type=int, default=2, help="with --scheduler: extra attempts for a failed recording")
    p.add_argument("--salvage", action="store_true",
                   help="damaged input (truncated, corrupt frame, missing chunk): process the frames before the damage and record it")
    p.add_argument("--missing-chunks", choices=["error", "fill"],
                   help="a Zarr input missing a chunk file: refuse it (default) or read it as the fill value")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("extract-crops", help="static mode: cut target / unwanted crops and backgrounds from annotated images")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="images, folders or globs (PNG/TIFF/JPEG, 8/16-bit, grey or RGB)")
    p.add_argument("--out", required=True, help="crop bank folder to write")
    p.add_argument("--config", help="YAML config with a static section (e.g. configs/bbbc042.yaml)")
    p.add_argument("--annotations", help="annotation file or folder of per-image files (points PNG, label images, boxes)")
    p.add_argument("--recipe", choices=["labels", "points", "boxes", "focus"], help="override static.extract.recipe")
    p.add_argument("--seed", type=int)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_extract_crops)

    p = sub.add_parser("synth", help="static mode: write a grid of example synthetic training pairs")
    p.add_argument("banks", nargs="+", metavar="BANK", help="crop banks from `vidfilter extract-crops`")
    p.add_argument("--preview", required=True, help="PNG to write: one row per pair (input | target | shared targets)")
    p.add_argument("--config", help="YAML config with a static section (synthesis parameters)")
    p.add_argument("--crop", type=int, help="patch side (sampling.crop)")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("verify", help="check an output store is complete (every frame, every chunk) and matches its input")
    p.add_argument("output", help="OUT.zarr written by `vidfilter run`")
    p.add_argument("--input", help="re-read this input and compare its frames' content hash with the one recorded")
    p.add_argument("--quick", action="store_true", help="check every chunk file against its checksum without decompressing it")
    p.add_argument("--missing-chunks", choices=["error", "fill"], help="policy for a Zarr --input (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("eval", help="score an output store or a background against ground-truth masks, boxes or points")
    p.add_argument("prediction", help="OUT.zarr from `vidfilter run`, or a background image/stack (then --input)")
    p.add_argument("--input", help="the frames (default for OUT.zarr: the input it recorded)")
    p.add_argument("--masks", help="ground-truth masks: folder of PNG/TIFF, TIFF stack, Zarr array, or one image")
    p.add_argument("--boxes", help="ground-truth boxes: CSV frame,x0,y0,x1,y1 | COCO .json | YOLO .txt folder | VOC .xml")
    p.add_argument("--points", help="ground-truth points: CSV frame,x,y[,class] or a colour-coded PNG")
    p.add_argument("--mask-method", choices=["fixed", "otsu", "noise", "object", "stored"], default="fixed",
                   help="fixed: foreground > --threshold; noise: threshold from the residual noise; object: whole objects "
                   "(hysteresis from the noise level, closing; vidfilter.eval.masks.object_mask); stored: the run's mask")
    p.add_argument("--threshold", type=float, default=10.0, help="fixed mask: grey levels on the 8-bit scale (default 10)")
    p.add_argument("--polarity", choices=["bright", "dark", "absolute"], help="default: the run's, or absolute for a background")
    p.add_argument("--sigma", type=float, default=1.0, help="otsu mask: Gaussian smoothing in px")
    p.add_argument("--min-area", type=int, default=250, help="smallest object in px (default 250)")
    p.add_argument("--connectivity", type=int, choices=[4, 8], default=8)
    p.add_argument("--iou", type=float, default=0.5, help="a box matches when IoU > this (default 0.5)")
    p.add_argument("--frames", help="frames scored: START:STOP[:STEP] (default all)")
    p.add_argument("--box-class", help="only ground-truth boxes of this class")
    p.add_argument("--point-class", help="only ground-truth points of this class")
    p.add_argument("--box-inclusive", action="store_true", help="box CSV gives the last pixel as x1, y1")
    p.add_argument("--json", metavar="OUT.json", help="also write the scores as JSON")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
        format="vidfilter: %(levelname)s: %(message)s",
    )
    if args.version:
        print(_versions())
        return 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is handled below
        return rc
    except BrokenPipeError:  # the reader of our output went away (`... | head`): stop quietly
        _silence_stdout()
        return 141
    except VidfilterError as e:
        if args.debug:
            raise
        print(f"vidfilter: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vidfilter: interrupted; partial outputs are kept and resume with the same command", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: still one line unless --debug
        if args.debug:
            raise
        print(f"vidfilter: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail on the closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
