"""``fer-bench``: frames/s and per-stage latency of the pipeline for each model x provider x face count.

Runs on a given video or on the built-in synthetic clip made from real face photos; prints a table
and optionally writes JSON/CSV. ``--batch N`` measures the classifier alone (faces/s at batch N).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from fer_core.bench import rate_text
from fer_core.cli import PROVIDER_CHOICES, CliError, provider_arg, run_guarded
from fer_core.settings import QUALITIES

PROG = "fer-bench"

EPILOG = """examples:
  fer-bench --model models/fer_realtime.onnx --providers cpu --faces 1,4
  fer-bench --quality best,balanced,fastest --faces 1,4,8        # one row per quality and face count
  fer-bench --source group.jpg --quality best                     # a photo, read as fer-run and the API read it
  fer-bench --model models/a.onnx models/b.onnx --providers cpu,cuda,tensorrt --faces 1,4 --json bench.json
  fer-bench --model models/a.onnx --source clip.mp4 --duration 10 --repeats 5 --csv bench.csv
  fer-bench --model models/emonext_tiny.onnx --providers cuda,tensorrt --batch 32   # classifier only, faces/s

Each configuration is timed in --repeats repeats: frames/s (faces/s with --batch) is the median of the repeats,
with their range in brackets. Latencies are per frame in ms (median / p90 / p99, over all repeats) for the stages
detect, preprocess, inference and total. "found" is the mean number of faces found per frame; when it is below
"faces", the status says so. "read" is how many of them were classified in their frame: fewer when --quality
balanced or fastest reads the faces of a frame over its time budget in turn (the others show their last reading).
fastest searches for faces in every other frame only, so its "detect" is a median over frames that search and frames
that do not; --json has each stage's mean too (detect_mean_ms).
A provider that is not available on this machine is listed as skipped with the reason.
"""


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"'{text}': give face counts >= 0, e.g. 1,4")
    return values


def _quality_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in QUALITIES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"'{text}': give one or more of {', '.join(QUALITIES)}, comma-separated")
    return names


def _provider_list(text: str) -> list[str]:
    names = [provider_arg(v) for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one provider, e.g. cpu or cpu,cuda")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Benchmark the face-expression pipeline or classifier.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", metavar="ONNX", help="one or more ONNX models (default: the shipped default)")
    p.add_argument("--providers", type=_provider_list, default=["cpu"],
                   help=f"comma-separated: {', '.join(PROVIDER_CHOICES)} (default: cpu)")
    p.add_argument("--faces", type=_int_list, default=[1, 4], help="faces per frame of the synthetic clip (1,4)")
    p.add_argument("--source", help="time on this video (or image/folder) instead of the synthetic clip")
    p.add_argument("--quality", type=_quality_list, default=["best"], metavar="Q[,Q...]",
                   help=f"comma-separated qualities to time, one row each: {', '.join(QUALITIES)} (best)")
    p.add_argument("--warmup", type=int, default=10, metavar="N", help="untimed frames (or batches) first (10)")
    p.add_argument("--repeats", type=int, default=3, metavar="R",
                   help="timed repeats per configuration; the median frames/s of them is reported (3)")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--iterations", type=int, default=100, metavar="N",
                        help="timed frames (or batches) in each repeat (100)")
    amount.add_argument("--duration", type=float, default=None, metavar="S",
                        help="time each configuration for S s in all, split evenly over the repeats")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="classifier only: time predict_batch on N real face crops per run (faces/s)")
    p.add_argument("--face-model", help="MediaPipe BlazeFace .tflite (default: the usual lookup)")
    p.add_argument("--small-faces", action="store_true", help="include the tiled search for small faces (fer-run "
                                                              "--small-faces) in the detection time")
    p.add_argument("--json", help="write system info, settings and results to this JSON file")
    p.add_argument("--csv", help="write the results, one row per configuration, to this CSV file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows: list[dict[str, Any]], batch: bool = False) -> str:
    """A plain-text table of benchmark rows."""
    if batch:
        header = ["model", "provider", "batch", "faces/s (range)", "batch ms med/p90/p99", "status"]
        body = [[r["model"], r["provider"], str(r.get("batch", "")), rate_text(r, "faces_per_s"),
                 "/".join(_fmt(r.get(f"batch_{k}_ms"), 2) for k in ("median", "p90", "p99")),
                 r["status"] + (f": {r['reason']}" if r.get("reason") else "")] for r in rows]
    else:
        header = ["model", "provider", "quality", "faces", "found", "read", "frames/s (range)", "faces/s", "detect ms",
                  "preproc ms", "infer ms", "total ms (med/p90/p99)", "status"]
        body = []
        for r in rows:
            total = "/".join(_fmt(r.get(f"total_{k}_ms")) for k in ("median", "p90", "p99"))
            body.append([r["model"], r["provider"], str(r.get("quality", "")), str(r.get("faces", "")),
                         _fmt(r.get("faces_found"), 2), _fmt(r.get("faces_read"), 2), rate_text(r),
                         _fmt(r.get("faces_per_s")), _fmt(r.get("detect_median_ms"), 2),
                         _fmt(r.get("preprocess_median_ms"), 2), _fmt(r.get("inference_median_ms"), 2), total,
                         r["status"] + (f": {r['reason']}" if r.get("reason") else "")])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    widths[-1] = len(header[-1])  # the status column may be long; do not pad the others for it
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args``; returns the exit status."""
    from tqdm import tqdm

    from fer_core.bench import run_benchmark, run_classifier_benchmark, write_csv, write_json

    models = args.model
    if not models:
        from fer_core.model_zoo import default_model_path

        models = [str(default_model_path())]
    missing = [m for m in models if not Path(m).is_file()]
    if missing:
        raise CliError(f"model file not found: {', '.join(missing)}")
    if args.warmup < 0 or args.repeats < 1 or args.iterations < 1 or (args.duration is not None and args.duration <= 0):
        raise CliError("--warmup must be >= 0, --repeats and --iterations >= 1 and --duration > 0")
    if args.batch is not None and args.batch < 1:
        raise CliError("--batch must be at least 1")
    if args.source is not None and not str(args.source).strip():
        raise CliError("--source is empty")

    # disable=None: no bar when stderr is not a terminal (a log file, a pipe), where its updates would pile up
    bar = tqdm(total=1, desc=PROG, unit="step", leave=False, disable=True if args.no_progress else None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    common = dict(model_paths=models, providers=args.providers, warmup=args.warmup, iterations=args.iterations,
                  repeats=args.repeats, duration_s=args.duration, progress_cb=progress)
    try:
        if args.batch is not None:
            rows = run_classifier_benchmark(batch=args.batch, **common)
        else:
            rows = run_benchmark(face_counts=args.faces, source=args.source, face_model=args.face_model,
                                small_faces=args.small_faces, qualities=args.quality, **common)
    finally:
        bar.close()

    print(format_table(rows, batch=args.batch is not None))
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "csv", "no_progress")}
    settings["model"] = models
    settings["mode"] = "classifier" if args.batch is not None else "pipeline"
    if args.json:
        write_json(args.json, rows, settings)
        print(f"wrote {args.json}")
    if args.csv:
        write_csv(args.csv, rows)
        print(f"wrote {args.csv}")
    return 0 if any(r["status"] == "ok" for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fer-bench``; returns the exit status (0 ok, 1 nothing could run, 2 fatal error)."""
    return run_guarded(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
