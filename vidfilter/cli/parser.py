"""The argparse definitions of the ``vidfilter`` command: one function per subcommand."""

from __future__ import annotations

import argparse
from typing import NoReturn

from vidfilter.cli import commands


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
    for name, func, add_arguments, text in (
        ("info", commands.cmd_info, _info_args, "describe inputs: shape, dtype, fps, duration, codec, chunking, size"),
        ("convert", commands.cmd_convert, _convert_args, "copy any readable input into any writable format"),
        ("train", commands.cmd_train, _train_args, "learn the background of recordings from time-lagged frame pairs"),
        ("run", commands.cmd_run, _run_args, "write background and foreground of recordings (static-mode models: target and residual)"),
        ("extract-crops", commands.cmd_extract_crops, _extract_crops_args, "static mode: cut target / unwanted crops and backgrounds from annotated images"),
        ("synth", commands.cmd_synth, _synth_args, "static mode: write a grid of example synthetic training pairs"),
        ("verify", commands.cmd_verify, _verify_args, "check an output store is complete (every frame, every chunk) and matches its input"),
        ("eval", commands.cmd_eval, _eval_args, "score an output store or a background against ground-truth masks, boxes or points"),
        ("track", commands.cmd_track, _track_args, "link the objects of an output store's mask (or foreground) into tracks: CSV, Parquet or the store"),
    ):
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=func)
        add_arguments(p)
    return parser


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument("--color", choices=["gray", "keep"], default="keep")


def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input")
    p.add_argument("output", help="OUT.zarr, OUT.mkv (FFV1 lossless), OUT.mp4 (preview), a folder/ of PNG or TIFF, OUT.h5")
    p.add_argument("--color", choices=["gray", "keep"], default="keep")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--stop", type=int, default=None)
    p.add_argument("--step", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")


def _train_args(p: argparse.ArgumentParser) -> None:
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


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--model", help="model bundle from `vidfilter train` (needed for --method model), or the name of a "
                   "shipped one (worm-plate, open-arena: trained on generated recordings of that setup, no training needed), "
                   "or auto: the shipped one that fits the input (polarity, animal size, arena), else one trained on it")
    p.add_argument("--method", default="model", help="model (default) or a baseline: median, running-median, max, min, mog2, knn, median-registered, max-registered, min-registered")
    p.add_argument("--out", help="output store for a single input (OUT.zarr)")
    p.add_argument("--out-dir", help="folder for one output per input")
    p.add_argument("--config")
    p.add_argument("--tile", type=int)
    p.add_argument("--overlap", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="the network's arithmetic (default auto: bf16 where the GPU or CPU computes it natively, "
                        "else float32; fp32 gives the same output on every CPU)")
    p.add_argument("--every", type=int, help="keyframe mode: run the network every K frames")
    p.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=None,
                   help="add keyframes when the residual drifts (default: on)")
    p.add_argument("--adaptive-bound", type=float, default=None,
                   help="rise of the median residual (0-1 scale) that makes a frame a keyframe (default 0.005)")
    p.add_argument("--threads", type=int)
    p.add_argument("--refine", choices=["full", "snap", "off"],
                   help="a model's background: snap (default) = take the recording's median where they agree within "
                   "the noise; full = also keep no more of an animal than the min (bright animals) or max (dark) "
                   "projection of the setup's frames (for animals that rest, then leave, on a steady floor); "
                   "off = the network's background as it is")
    p.add_argument("--setup-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="keep each input file's setup (detected polarity, median or temporal statistic) by its content "
                   "in ~/.cache/vidfilter/setup, so that a second run on the same file skips it (default: on)")
    p.add_argument("--polarity", choices=["auto", "bright", "dark", "absolute"])
    p.add_argument("--mask", action="store_true", help="also write a binary mask group")
    p.add_argument("--mask-threshold", type=float)
    p.add_argument("--mask-method", choices=["fixed", "object"], help="with --mask: fixed = foreground > --mask-threshold; object = whole objects (hysteresis from the noise level, closing; an object needs 40 px above the seed threshold)")
    p.add_argument("--format", nargs="+", choices=["zarr", "ffv1", "png", "tiff", "hdf5", "preview"])
    p.add_argument("--foreground-dtype", choices=["input", "float16"])
    p.add_argument("--background", choices=["keyframes", "full"],
                   help="keyframe mode stores the keyframe backgrounds and rebuilds each frame on reading (default: "
                   "keyframes); full stores every frame's background, an NGFF image any OME-Zarr viewer shows")
    p.add_argument("--foreground-floor", type=float, metavar="LEVELS",
                   help="foreground values below LEVELS grey levels (8-bit scale) are stored as 0 outside the mask "
                   "(default 8: sensor noise, most of the bytes); 0 stores every value exactly")
    p.add_argument("--lossless", action="store_true",
                   help="store every frame's background and the exact foreground (--background full --foreground-floor 0)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--invert", action="store_true", default=None,
                   help="run a model of dark animals on bright ones (or the reverse): the network sees the inverted frames")
    p.add_argument("--scheduler", help="run on Dask: local, local:N (N worker processes) or tcp://HOST:PORT (needs --out-dir)")
    p.add_argument("--retries", type=int, default=2, help="with --scheduler: extra attempts for a failed recording")
    p.add_argument("--salvage", action="store_true",
                   help="damaged input (truncated, corrupt frame, missing chunk): process the frames before the damage and record it")
    p.add_argument("--missing-chunks", choices=["error", "fill"],
                   help="a Zarr input missing a chunk file: refuse it (default) or read it as the fill value")


def _extract_crops_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="images, folders or globs (PNG/TIFF/JPEG, 8/16-bit, grey or RGB)")
    p.add_argument("--out", required=True, help="crop bank folder to write")
    p.add_argument("--config", help="YAML config with a static section (e.g. configs/bbbc042.yaml)")
    p.add_argument("--annotations", help="annotation file or folder of per-image files (points PNG, label images, boxes)")
    p.add_argument("--recipe", choices=["labels", "points", "boxes", "focus"], help="override static.extract.recipe")
    p.add_argument("--seed", type=int)
    p.add_argument("--overwrite", action="store_true")


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("banks", nargs="+", metavar="BANK", help="crop banks from `vidfilter extract-crops`")
    p.add_argument("--preview", required=True, help="PNG to write: one row per pair (input | target | shared targets)")
    p.add_argument("--config", help="YAML config with a static section (synthesis parameters)")
    p.add_argument("--crop", type=int, help="patch side (sampling.crop)")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="OUT.zarr written by `vidfilter run`")
    p.add_argument("--input", help="re-read this input and compare its frames' content hash with the one recorded")
    p.add_argument("--quick", action="store_true", help="check every chunk file against its checksum without decompressing it")
    p.add_argument("--missing-chunks", choices=["error", "fill"], help="policy for a Zarr --input (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prediction", help="OUT.zarr from `vidfilter run`, or a background image/stack (then --input)")
    p.add_argument("--input", help="the frames (default for OUT.zarr: the input it recorded)")
    p.add_argument("--masks", help="ground-truth masks: folder of PNG/TIFF, TIFF stack, Zarr array, or one image")
    p.add_argument("--boxes", help="ground-truth boxes: CSV frame,x0,y0,x1,y1 | COCO .json | YOLO .txt folder | VOC .xml")
    p.add_argument("--points", help="ground-truth points: CSV frame,x,y[,class] or a colour-coded PNG")
    p.add_argument("--mask-method", choices=["fixed", "otsu", "noise", "object", "stored"], default="fixed",
                   help="fixed: foreground > --threshold; noise: threshold from the residual noise; object: whole objects "
                   "(hysteresis from the noise level, closing; vidfilter.polarity.object_mask); stored: the run's mask")
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


def _track_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="OUT.zarr written by `vidfilter run` (with --mask, or its foreground above --threshold)")
    p.add_argument("--out", help="table to write: tracks.csv, or tracks.parquet (needs pyarrow)")
    p.add_argument("--into-store", action="store_true", help="also write the table into the store as its group `tracks` (replacing an earlier one)")
    p.add_argument("--source", choices=["auto", "mask", "foreground"], default="auto",
                   help="objects of the stored mask, or of foreground > --threshold (default auto: the mask where the store has one)")
    p.add_argument("--threshold", type=float, help="with the foreground: grey levels on the 8-bit scale (default: the run's mask threshold, else 10)")
    p.add_argument("--min-area", type=int, help="smallest object in px (default 50)")
    p.add_argument("--max-distance", type=float, help="largest move of an object between frames, in px (default 30)")
    p.add_argument("--max-gap", type=int, help="frames an object may be missing and keep its track (default 30)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
