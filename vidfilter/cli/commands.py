"""One function per subcommand, ``cmd_<name>(args) -> exit code``: each builds the config from
``--config`` and the flags, calls the library and prints the result."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from vidfilter.config import Config
from vidfilter.errors import ConfigError, VidfilterError

#: The config fields set by the flags of ``train`` and ``run``: ``section.name`` takes ``--name`` or a value derived from it.
TRAIN_FIELDS = ("model.preset model.width sampling.mode sampling.lag sampling.lag_unit sampling.crop train.steps train.minutes "
                "train.batch_size train.lr train.seed train.device train.threads output.polarity sampling.registration")
RUN_FIELDS = ("infer.tile infer.overlap infer.batch_size infer.device infer.precision infer.every infer.adaptive infer.adaptive_bound "
              "infer.threads infer.refine infer.setup_cache infer.invert infer.salvage infer.missing_chunks output.polarity output.mask output.mask_threshold output.mask_method "
              "output.formats output.overwrite output.foreground_dtype output.background output.foreground_floor")


def _config(args: argparse.Namespace, fields: str, **values: Any) -> Config:
    """The config of ``--config`` (the defaults without it) with each of ``fields`` (``"section.name ..."``)
    set to ``values[name]`` where given, else to the flag ``args.name``; None leaves a field as it is."""
    cfg = Config.from_yaml(args.config) if getattr(args, "config", None) else Config()
    names = {field: field.rpartition(".")[2] for field in fields.split()}
    return cfg.override({field: values[n] if n in values else getattr(args, n, None) for field, n in names.items()})


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def versions() -> str:
    """The versions of vidfilter and the libraries it runs on, and the device it would use."""
    import importlib.metadata as md

    import vidfilter

    parts = [f"vidfilter {vidfilter.__version__}"]
    for pkg in ("torch", "av", "zarr", "dask", "numpy"):
        try:
            parts.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            parts.append(f"{pkg} missing")
    with contextlib.suppress(Exception):  # pragma: no cover - av missing
        import av

        parts.append(f"FFmpeg {av.ffmpeg_version_info}")
    with contextlib.suppress(Exception):  # pragma: no cover
        import torch

        parts.append("device " + ("cuda (" + torch.cuda.get_device_name(0) + ")" if torch.cuda.is_available() else "cpu"))
    return ", ".join(parts)


def cmd_info(args: argparse.Namespace) -> int:
    from vidfilter.errors import UnsupportedInputError
    from vidfilter.io.registry import describe
    from vidfilter.io.zarr_info import describe_static_image

    for path in args.inputs:
        try:
            facts = describe(path, color=args.color)
        except UnsupportedInputError:  # not a recording; a Zarr image without a time axis is a static image
            static = describe_static_image(path)
            if static is None:
                raise
            facts = static
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
    from vidfilter.io.export import convert

    convert(args.input, args.output, color=args.color, overwrite=args.overwrite, progress=_progress(args),
            start=args.start, stop=args.stop, step=args.step)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from vidfilter.train.checkpoint import report_dir
    from vidfilter.train.loop import train
    from vidfilter.train.report import summary_line

    cfg = _static_for_banks(args, _config(args, TRAIN_FIELDS, lag_unit=args.lag_unit or ("frames" if args.lag else None)))
    out = train(args.inputs, args.out, cfg, resume=args.resume, progress=_progress(args), init_bundle=args.init)
    print(out)
    summary = "" if args.quiet else summary_line(report_dir(out))
    if summary:
        print(summary, file=sys.stderr)
    return 0


def _static_for_banks(args: argparse.Namespace, cfg: Config) -> Config:
    """``cfg`` in static mode when every INPUT is a crop bank and no mode was chosen (said in one
    line on stderr; :func:`vidfilter.static.bank.static_for_banks`)."""
    from vidfilter.static.bank import static_for_banks

    cfg, note = static_for_banks(args.inputs, cfg)
    if note and not args.quiet:
        print(f"vidfilter: {note}", file=sys.stderr)
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    lossless = {"background": "full", "foreground_floor": 0.0} if args.lossless else {}
    cfg = _config(args, RUN_FIELDS, salvage=args.salvage or None, mask=args.mask or None, formats=args.format,
                  overwrite=args.overwrite or None, **lossless)
    from vidfilter.api import auto_model, run

    model = args.model
    if model == "auto" and args.method == "model":
        def say(line: str) -> None:
            print(f"vidfilter: {line}", file=sys.stderr)

        model, cfg = auto_model(args.inputs, args.out, args.out_dir, cfg, say=say, progress=_progress(args))
    results = run(args.inputs, args.out, out_dir=args.out_dir, model=model, method=args.method, config=cfg,
                  scheduler=args.scheduler, retries=args.retries, progress=_progress(args))
    failed = [r for r in results if not r.ok]
    if args.scheduler:
        from vidfilter.distributed.batch import format_table

        print(format_table(results))
    elif failed and len(results) == 1:
        raise VidfilterError(failed[0].error or "failed")
    else:
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
            print(f"  input: {rec.get('path')} ({rec.get('frames_read')} frames read, content hash {rec.get('frames_xxh3')})")
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


def cmd_track(args: argparse.Namespace) -> int:
    from vidfilter.track.api import summary, track

    if not args.out and not args.into_store:
        raise ConfigError("nothing to write: give --out tracks.csv (or .parquet), or --into-store")
    limits = {k: v for k, v in (("min_area", args.min_area), ("max_distance", args.max_distance), ("max_gap", args.max_gap))
              if v is not None}
    df = track(args.store, args.out, source=args.source, threshold=args.threshold, into_store=args.into_store,
               overwrite=args.overwrite, **limits)
    where = [str(args.out)] if args.out else []
    if args.into_store:
        where.append(f"{args.store}/tracks")
    print(summary(df, " and ".join(where)))
    return 0


def cmd_extract_crops(args: argparse.Namespace) -> int:
    from vidfilter.static.extract import extract_crops

    cfg = _config(args, "static.extract.recipe static.extract.seed")
    summary = extract_crops(args.inputs, args.out, cfg, annotations=args.annotations, overwrite=args.overwrite,
                            progress=_progress(args))
    print(f"{summary['output']}: {summary['targets']} target and {summary['unwanted']} unwanted crops, "
          f"{summary['backgrounds']} backgrounds from {summary['images']} images ({summary['discarded']} objects discarded)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from vidfilter.static.synthesis import write_preview

    if Path(args.preview).suffix.lower() != ".png":
        raise VidfilterError(f"cannot write {args.preview}; give a .png path")
    cfg = _config(args, "sampling.crop")
    write_preview(args.banks, args.preview, cfg, args.pairs, args.seed, overwrite=args.overwrite)
    print(args.preview)
    return 0
