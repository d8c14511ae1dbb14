"""Take a GPU window's results in at home: check and join the parts, rebuild the models, measure them again.

    python -m training.ingest OUT --data fer2013=../shared/data/fer2013 --runs runs/window1 --teachers models/teachers

For each job whose weights came home: ``<runs>/<job>/best.pt`` (the float16 or int8 weights back in float32), an ONNX
file checked against PyTorch on the original faces (``fer-export``, which writes ``<job>.safetensors`` beside it for
``fer-train --init``), calibrated (``training.calibrate``: a
temperature fitted on validation), ``fer-eval`` of it on the validation and test splits (plain and flip), and a
model card. With ``--flip`` mirror averaging is built into each ONNX file before it is calibrated, as in the
shipped models (``training.calibrate --flip``), and its figures are reported as the flip ones. Teacher logits
are copied to ``--teachers`` (they are small and live
in the repo, for ``fer-train --soft-targets``). The figures go to ``<runs>/ingest.json`` and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from training.bundle import BundleError, extract, read_bundle, restore_checkpoint, travel_weights


def write_job_card(onnx_path: Path, job_dir: Path, data: list[str], summary: dict[str, Any], out: Path,
                   flip: bool = False) -> Path:
    """The model card of one job (without speed figures: ``fer-bench`` them on the target machine)."""
    import argparse

    from training.model_card import write_card

    gpu = (summary.get("host") or {}).get("gpu")
    where = f"one {gpu}" if gpu else "the window's CPU"
    jobs = len(summary.get("jobs") or {})
    specs = " ".join(f"--data {d}" for d in data)
    args = argparse.Namespace(
        model=str(onnx_path), title=f"{job_dir.name}, from a GPU window", run=[str(job_dir)],
        train_cmd=[f"python -m training.window --plan PLAN --out OUT   # job {job_dir.name} (plan in summary.json)"],
        export_cmd=f"python -m training.ingest {out} {specs} --runs {job_dir.parent}" + (" --flip" if flip else ""),
        export_json=None, eval=[str(job_dir / "eval_test"), str(job_dir / "eval_val")],
        eval_cmd=f"fer-eval --model {onnx_path.name} {specs} --split test --tta {tta_modes(flip)}   # and --split val",
        bench=None, bench_cmd="", cores=None, notes=[],
        train_hardware=f"{where}, shared by the {jobs} jobs of a GPU window")
    return write_card(args)


def tta_modes(flip_built_in: bool) -> str:
    """The ``fer-eval --tta`` modes worth measuring: mirroring a model that already averages mirrors adds nothing."""
    return "none" if flip_built_in else "none,flip"


def ingest(out: str | Path, data: list[str], runs: str | Path, teachers: str | Path | None = None,
           prefix: str = "", verify_images: int = 500, subset: int | None = None,
           progress: bool = False, flip: bool = False, fp16_storage: bool = True,
           jobs: list[str] | None = None) -> dict[str, Any]:
    """Check, unpack, rebuild and measure a window's results. Returns the figures per job.

    With ``flip`` each ONNX file gets mirror averaging built in before calibration; its accuracy is then
    reported under ``"flip"`` only (a plain pass no longer exists in the file). With ``fp16_storage`` (the default
    for files that ship) the weights are stored as float16 and cast back at load: half the file, fp32 arithmetic.
    ``jobs``: only these jobs (those trained on other labels are ingested in another call, with their data).
    """
    from training.calibrate import calibrate
    from training.evaluate import evaluate_onnx
    from training.export import export_onnx

    out, runs = Path(out), Path(runs)
    summary, bundle = read_bundle(out)
    extract(bundle, runs)
    if (out / "logs.tar.gz").is_file():
        extract((out / "logs.tar.gz").read_bytes(), runs, gz=True)
    results: dict[str, Any] = {}
    unknown = sorted(set(jobs or ()) - set(summary.get("jobs", {})))
    if unknown:
        raise BundleError(f"{out}: no job {', '.join(unknown)} in this window (jobs: "
                          f"{', '.join(summary.get('jobs', {}))})")
    for name, job in summary.get("jobs", {}).items():
        if jobs and name not in jobs:
            continue
        job_dir = runs / name
        row: dict[str, Any] = {"window": {k: (job.get("result") or {}).get(k) for k in
                                          ("status", "best_val_acc", "test", "model", "img_size")},
                               "epochs": job.get("epochs")}
        if (job_dir / "logits.npz").is_file() and teachers:
            dest = Path(teachers) / f"{prefix}{name}.npz"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job_dir / "logits.npz", dest)
            row["teacher_logits"] = str(dest)
        weights = travel_weights(job_dir)
        if weights is None:
            row["status"] = "weights did not come home"
            results[name] = row
            continue
        row["travel"] = weights.name
        restore_checkpoint(weights, job_dir / "best.pt")
        onnx_path = job_dir / f"{name}.onnx"
        figures = export_onnx(job_dir / "best.pt", onnx_path, verify_specs=data, verify_images=verify_images,
                              progress=progress, fp16_storage=fp16_storage)  # half the file, fp32 arithmetic
        row["verify"] = figures.get("verify")
        row["weights"] = figures.get("weights_file")  # <job>.safetensors, for fer-train --init
        cal = calibrate(onnx_path, data, subset=subset, progress=progress, flip=flip)
        row["calibration"] = {"temperature": cal["temperature"], "ece_before": cal["test"]["before"]["ece"],
                              "ece_after": cal["test"]["after"]["ece"]}
        row["eval"] = {}
        for split in ("val", "test"):
            report, _ = evaluate_onnx(onnx_path, data, split, tta_modes(flip), job_dir / f"eval_{split}",
                                      subset=subset, progress=progress)
            accs = {mode: r["accuracy"] for mode, r in report["tta"].items()}
            row["eval"][split] = {"flip": accs["none"]} if flip else accs
        row["onnx"] = str(onnx_path)
        row["card"] = str(write_job_card(onnx_path, job_dir, data, summary, out, flip))
        row["status"] = "ok"
        results[name] = row
    (runs / "ingest.json").write_text(json.dumps(results, indent=1))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.ingest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the folder the window wrote (summary.json, bundle.tar.NN, logs.tar.gz)")
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH",
                   help="the original dataset, for the ONNX checks and fer-eval")
    p.add_argument("--runs", default="runs/window", help="where the jobs' folders go")
    p.add_argument("--teachers", help="folder for the teacher logits, e.g. models/teachers")
    p.add_argument("--prefix", default="", help="prefix of the teacher-logit file names, e.g. fer2013_")
    p.add_argument("--jobs",
                   help="only these jobs, comma-separated (e.g. the FER+ ones, with --data ferplus_majority=...)")
    p.add_argument("--subset", type=int, help="evaluate N faces per split only (quick checks)")
    p.add_argument("--flip", action="store_true",
                   help="build mirror averaging into each model before calibrating it, as the shipped models have "
                        "(twice the classifier's work, usually 1-2 points)")
    args = p.parse_args(argv)
    import logging

    from training.data import DataError
    from training.evaluate import EvalError
    from training.export import ExportError, VerificationError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        results = ingest(args.out, args.data, args.runs, args.teachers, args.prefix, subset=args.subset,
                         flip=args.flip, jobs=[j.strip() for j in args.jobs.split(",")] if args.jobs else None)
    except (BundleError, DataError, EvalError, ExportError, VerificationError) as err:
        print(f"ingest: error: {err}", file=sys.stderr)
        return 2
    print(f"{'job':<16} {'status':<26} {'val':>7} {'val+flip':>9} {'test':>7} {'test+flip':>10}")
    for name, row in results.items():
        ev = row.get("eval") or {}
        cells = [ev.get(s, {}).get(m) for s in ("val", "test") for m in ("none", "flip")]
        print(f"{name:<16} {row['status']:<26} " + " ".join(f"{c:>{w}.4f}" if c is not None else f"{'-':>{w}}"
                                                          for c, w in zip(cells, (7, 9, 7, 10))))
    print(f"figures: {Path(args.runs) / 'ingest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
