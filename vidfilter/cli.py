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
from typing import Any

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
        if p.suffix == ".zarr" and p.is_dir() and (p / "background").exists():
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
        },
    )
    if args.minutes is not None and args.steps is None:
        cfg = cfg.override({"train.steps": 10**9})
    out = train(args.inputs, args.out, cfg, resume=args.resume, progress=_progress(args), init_bundle=args.init)
    print(out)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from vidfilter.infer.pipeline import run_many

    cfg = _load_config(
        args,
        {
            "infer.tile": args.tile,
            "infer.overlap": args.overlap,
            "infer.batch_size": args.batch_size,
            "infer.device": args.device,
            "infer.precision": args.precision,
            "infer.every": args.every,
            "infer.adaptive": True if args.adaptive else None,
            "infer.threads": args.threads,
            "output.polarity": args.polarity,
            "output.mask": True if args.mask else None,
            "output.mask_threshold": args.mask_threshold,
            "output.formats": args.format,
            "output.overwrite": True if args.overwrite else None,
            "output.foreground_dtype": args.foreground_dtype,
        },
    )
    if args.out and len(args.inputs) > 1:
        raise VidfilterError("--out names one output but several inputs were given; use --out-dir DIR")
    if args.scheduler:
        if not args.out_dir:
            raise VidfilterError("--scheduler writes one output per input: use --out-dir DIR")
        from vidfilter.distributed.batch import format_table, run_batch

        results = run_batch(args.inputs, model=args.model, method=args.method, out_dir=args.out_dir,
                            config=cfg, scheduler=args.scheduler, retries=args.retries)
        print(format_table(results))
        failed = [r for r in results if r["status"] == "failed"]
        return 2 if failed else 0
    results = run_many(
        args.inputs,
        model=args.model,
        method=args.method,
        out=args.out,
        out_dir=args.out_dir,
        config=cfg,
        progress=_progress(args),
    )
    failed = [r for r in results if r["status"] == "failed"]
    for r in results:
        line = f"{r['status']:>7}  {r['input']} -> {r.get('output') or '-'}"
        if r.get("error"):
            line += f"  ({r['error']})"
        print(line)
    if failed and len(results) == 1:
        raise VidfilterError(failed[0]["error"])
    return 2 if failed else 0


# ---------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    p.add_argument("--preset", choices=["paper", "fast"])
    p.add_argument("--width", type=int)
    p.add_argument("--lag", type=float, nargs="+", metavar="LAG", help="lag, or MIN MAX range (unit: --lag-unit)")
    p.add_argument("--lag-unit", choices=["frames", "seconds", "fraction"],
                   help="unit of --lag (default from the config: fraction of the recording's length)")
    p.add_argument("--crop", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--minutes", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--threads", type=int)
    p.add_argument("--polarity", choices=["bright", "dark", "absolute"])
    p.add_argument("--init", help="fine-tune from this bundle instead of random weights")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint next to --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("run", help="write background and foreground of recordings")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--model", help="model bundle from `vidfilter train` (needed for --method model)")
    p.add_argument("--method", default="model", help="model (default) or a baseline: median, running-median, max, min, mog2, knn")
    p.add_argument("--out", help="output store for a single input (OUT.zarr)")
    p.add_argument("--out-dir", help="folder for one output per input")
    p.add_argument("--config")
    p.add_argument("--tile", type=int)
    p.add_argument("--overlap", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--every", type=int, help="keyframe mode: run the network every K frames")
    p.add_argument("--adaptive", action="store_true", help="add keyframes when the residual drifts")
    p.add_argument("--threads", type=int)
    p.add_argument("--polarity", choices=["bright", "dark", "absolute"])
    p.add_argument("--mask", action="store_true", help="also write a binary mask group")
    p.add_argument("--mask-threshold", type=float)
    p.add_argument("--format", nargs="+", choices=["zarr", "ffv1", "png", "tiff", "hdf5", "preview"])
    p.add_argument("--foreground-dtype", choices=["input", "float16"])
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--scheduler", help="run on Dask: local, local:N (N worker processes) or tcp://HOST:PORT (needs --out-dir)")
    p.add_argument("--retries", type=int, default=2, help="with --scheduler: extra attempts for a failed recording")
    p.set_defaults(func=cmd_run)
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
        return int(args.func(args) or 0)
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


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
