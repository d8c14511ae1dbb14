"""Write a shipped model's card (``models/<name>.md``) and metrics (``models/<name>.json``) from measured runs.

Every figure comes from a file a command wrote: the training runs (``runs/<name>/metrics.jsonl``), the
``fer-eval`` reports of the ONNX file, the ``fer-bench`` JSON (optional) and the ``fer-export`` figures. The card
repeats the commands, so anyone can measure the model again. ``python -m training.ingest`` writes one for every
model a GPU window brings home.

Example (the default model)::

    python -m training.model_card --model models/fer_realtime.onnx --title "Real-time default" \\
        --run runs/rt_atto64 --run runs/rt_atto64_ft \\
        --train-cmd "fer-train --model emonext_atto ..." --train-cmd "fer-train ... --pretrained-path ..." \\
        --export-cmd "fer-export ..." --eval runs/eval/fer_realtime_test --eval runs/eval/fer_realtime_val \\
        --eval-cmd "fer-eval ..." --bench runs/bench_realtime.json --bench-cmd "fer-bench ..."
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
from pathlib import Path

import onnx
import yaml

from fer_core.model_meta import ModelMeta

FER2013_LICENCE = ("FER2013 (Goodfellow et al., ICML 2013 challenge) has no open licence: it was published on Kaggle "
                   "for research, and its faces were collected from the web and remain their owners'. Treat models "
                   "trained on it as fit for research and non-commercial use.")
#: Per dataset: display names of the splits, how the split was used, and the data licence.
DATASETS = {
    "fer2013": {
        "splits": {"test": "PrivateTest (test)", "val": "PublicTest (validation)"},
        "split": "FER2013 official split (`Training_*` train, `PublicTest_*` validation for model selection, "
                 "`PrivateTest_*` test, never used for tuning).",
        "licence": FER2013_LICENCE,
    },
    "ferplus": {
        "splits": {"test": "FER+ test", "val": "FER+ validation"},
        "split": "FER+ official split (`FER2013Train` train, `FER2013Valid` validation for model selection, "
                 "`FER2013Test` test, never used for tuning). A face's label is the plurality of its ten votes; "
                 "faces whose plurality is *unknown* or *not a face* are dropped.",
        "licence": "The FER+ labels are Microsoft's, under the MIT licence; the images are FER2013's. "
                   + FER2013_LICENCE,
    },
}


def _dataset(name: str) -> dict:
    """The :data:`DATASETS` entry for a dataset name such as ``fer2013`` or ``ferplus_soft``."""
    return DATASETS.get(name.split("_")[0], {"splits": {}, "split": "", "licence": ""})


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run_summary(run: Path, data_name: str) -> dict:
    """A training stage's figures; a ``packed*=`` dataset (a GPU window's pack or its FER+ view) is named by the
    kind the run's ``report.json`` read from the pack, else by the model's data."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    report = run / "report.json"
    if report.is_file():
        data_name = json.loads(report.read_text()).get("data") or data_name
    best = max(rows, key=lambda r: r["best_acc"])
    return {"run": run.name, "epochs": len(rows), "hours": round(sum(r["seconds"] for r in rows) / 3600, 2),
            "best_val_acc": round(best["best_acc"], 4), "best_epoch": best["epoch"],
            "best_weights": best.get("best_weights", "raw"),
            "images_per_s": round(sorted(r["images_per_s"] for r in rows)[len(rows) // 2], 1),
            "data": [data_name if d.startswith("packed") else d.split("=")[0]
                     for d in yaml.safe_load((run / "config.yaml").read_text())["data"]]}


def _eval_summary(folder: Path) -> dict:
    report = json.loads((folder / "report.json").read_text())
    out = {"split": report.get("split"), "data": report.get("data", ""), "n": report["n"],
           "classes": report["classes"], "tta": {}}
    for name, r in report["tta"].items():
        out["tta"][name] = {"accuracy": round(r["accuracy"], 4), "macro_f1": round(r["macro_f1"], 4),
                            "recall": {c: round(v["recall"], 4) for c, v in r["per_class"].items()},
                            "confusion_matrix": r["confusion_matrix"]}
    return out


def _calibration(model_path: Path) -> dict | None:
    """The figures ``python -m training.calibrate`` wrote beside the model, if it was calibrated."""
    path = model_path.with_name(model_path.name + ".calibration.json")
    if not path.is_file():
        return None
    f = json.loads(path.read_text())
    return {"temperature": f["temperature"], "ece_before": f["test"]["before"]["ece"],
            "ece_after": f["test"]["after"]["ece"], "bins": f["bins"], "n": f["test"]["n"], "flip": f.get("flip", False)}


def _weights(model_path: Path) -> dict | None:
    """The fine-tunable weights beside the model (``<name>.safetensors``, :mod:`training.weights`), if any."""
    path = model_path.with_suffix(".safetensors")
    if not path.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": digest}


def _bench_summary(path: Path) -> dict:
    data = json.loads(path.read_text())
    rows = [r for r in data["results"] if r["status"] == "ok"]
    keep = ("provider_used", "faces", "fps", "faces_per_s", "detect_median_ms", "preprocess_median_ms",
            "inference_median_ms", "total_median_ms", "total_p95_ms")
    return {"system": data["system"], "results": [{k: r[k] for k in keep} for r in rows]}


def build(args: argparse.Namespace) -> tuple[dict, str]:
    """Gather the figures and render the card; returns (metrics dict, markdown)."""
    model_path = Path(args.model)
    proto = onnx.load(str(model_path))
    meta, _ = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props})
    params = sum(int(onnx.numpy_helper.to_array(t).size) for t in proto.graph.initializer)
    export = json.loads(Path(f"{model_path}.export.json").read_text()) if Path(f"{model_path}.export.json").is_file() \
        else json.loads(Path(args.export_json).read_text())
    data = meta.data if meta.data != "unknown" else "fer2013"
    metrics = {
        "model_file": model_path.name, "architecture": meta.model,
        "input_size": meta.input_size, "labels": meta.labels,
        "params": params, "onnx_bytes": model_path.stat().st_size, "precision": export["precision"],
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(), "data": data,
        "weights_storage": {p.key: p.value for p in proto.metadata_props}.get("weights_storage"),
        "training": [{**_run_summary(Path(r), data), "command": c} for r, c in zip(args.run, args.train_cmd)],
        "hardware": f"{_cpu_name()}, {args.cores} cores, no GPU" if args.cores else _cpu_name(),
        "train_hardware": args.train_hardware,
        "export": {"command": args.export_cmd, "weights": export["weights"], "verify": export["verify"]},
        "eval": {"command": args.eval_cmd, "splits": [_eval_summary(Path(e)) for e in args.eval]},
        "bench": {"command": args.bench_cmd, **_bench_summary(Path(args.bench))} if args.bench else None,
        "licence": _dataset(data)["licence"],
        "calibration": _calibration(model_path),
        "weights": _weights(model_path),
    }
    return metrics, render(metrics, args.title, args.notes)


def render(m: dict, title: str, notes: list[str]) -> str:
    """Markdown model card from the metrics dict."""
    name = Path(m["model_file"]).stem
    dataset = _dataset(m["data"])
    split_names = dataset["splits"]
    stages = list(dict.fromkeys("+".join(t["data"]) for t in m["training"]))
    hours = sum(t["hours"] for t in m["training"])
    epochs = sum(t["epochs"] for t in m["training"])
    lines = [f"# {m['model_file']}: {title}", "",
             f"`{m['architecture']}` at {m['input_size']} px, {len(m['labels'])} classes "
             f"({', '.join(m['labels'])}), {m['params'] / 1e6:.2f} M parameters, {m['precision']} ONNX of "
             f"{m['onnx_bytes'] / 1e6:.1f} MB"
             + (", weights stored as float16 and cast to float32 by ONNX Runtime at load"
                if m.get("weights_storage") == "fp16" else "")
             + f" (sha256 `{m['sha256'][:16]}...`). Trained from scratch on "
             f"{', then '.join(stages)} ({epochs} epochs, {hours:.2f} h on {m.get('train_hardware') or m['hardware']}).",
             "",
             "## Accuracy", "", "Measured on the exported ONNX file, exactly as the app runs it.", "",
             "| split | images | TTA | accuracy | macro-F1 |", "|---|---|---|---|---|"]
    for s in m["eval"]["splits"]:
        for tta, r in s["tta"].items():
            rule = " (strict-majority labels)" if s.get("data", "").endswith("_majority") else ""
            lines.append(f"| {split_names.get(s['split'], s['split'])}{rule} | {s['n']} | {tta} | "
                         f"{r['accuracy']:.2%} | {r['macro_f1']:.3f} |")
    test = next((s for s in m["eval"]["splits"] if s["split"] == "test"), m["eval"]["splits"][0])
    plain = test["tta"].get("none") or next(iter(test["tta"].values()))
    lines += ["", f"Per-class recall on {split_names.get(test['split'], test['split'])}, no TTA:", "",
              "| " + " | ".join(plain["recall"]) + " |", "|" + "---|" * len(plain["recall"]),
              "| " + " | ".join(f"{v:.1%}" for v in plain["recall"].values()) + " |", "",
              f"![confusion matrix]({name}_confusion.png)", "", "```", m["eval"]["command"], "```", "",
              "## Speed", ""]
    if m["bench"]:
        lines += [f"`fer-bench` on {m['hardware']} ({m['bench']['system'].get('platform', '')}, "
                  f"onnxruntime {m['bench']['system'].get('onnxruntime', '')}), 640x480 frames of real faces, "
                  "milliseconds per frame (median):", "",
                  "| provider | faces | frames/s | detect | preprocess | inference | inference per face | total | "
                  "total p95 |", "|---|---|---|---|---|---|---|---|---|"]
        for r in m["bench"]["results"]:
            per_face = r["inference_median_ms"] / max(r["faces"], 1)
            lines.append(f"| {r['provider_used']} | {r['faces']} | {r['fps']:.1f} | {r['detect_median_ms']:.2f} | "
                         f"{r['preprocess_median_ms']:.2f} | {r['inference_median_ms']:.2f} | {per_face:.2f} | "
                         f"{r['total_median_ms']:.2f} | {r['total_p95_ms']:.2f} |")
        lines += ["", "No GPU latency was measured for this file.", "", "```", m["bench"]["command"], "```", ""]
    else:
        lines += ["Not measured yet: `fer-bench --model <this file> --providers cpu --faces 1,4 --json bench.json`.",
                  ""]
    lines += ["## Training", "", "| stage | data | epochs | best validation accuracy | wall time | images/s |",
              "|---|---|---|---|---|---|"]
    for t in m["training"]:
        lines.append(f"| `{t['run']}` | {'+'.join(t['data'])} | {t['epochs']} | {t['best_val_acc']:.2%} "
                     f"(epoch {t['best_epoch']}, {t['best_weights']} weights) | {t['hours']:.2f} h | "
                     f"{t['images_per_s']} |")
    used = dict.fromkeys(_dataset(d)["split"] for t in m["training"] for d in t["data"])
    lines += [""] + [line for text in used if text for line in (f"Data: {text}", "")] + ["```"]
    lines += [t["command"] for t in m["training"]] + [m["export"]["command"], "```", ""]
    v = m["export"]["verify"]
    checks = "; ".join(f"{k}: max abs logit difference {r['max_abs_diff']:.1e}, top-1 agreement "
                       f"{r['top1_agreement']:.1%} on {r['images']} faces" for k, r in v.items())
    lines += [f"Export check against PyTorch ({m['export']['weights']} weights): {checks}.", ""]
    cal = m.get("calibration")
    if cal:
        flip = ("Mirror averaging is built into the file: each face also goes through the network flipped "
                "left-right and the two probability vectors are averaged (twice the classifier's work; the TTA "
                "\"none\" rows above include it). Its boolean input `mirror` (on unless fed) turns that off: each "
                "face read once, as the qualities balanced and fastest do. ") if cal.get("flip") else ""
        lines += ["## Calibration", "",
                  f"{flip}Temperature {cal['temperature']:.3f}, fitted on the validation split and folded into the output. "
                  f"Expected calibration error on the test split ({cal['n']} faces, {cal['bins']} bins): "
                  f"{cal['ece_before']:.3f} before, {cal['ece_after']:.3f} after.", "",
                  f"![reliability diagram]({name}_reliability.png)", ""]
    w = m.get("weights")
    if w:
        lines += ["## Weights", "",
                  f"Weights: `{w['file']}` ({w['bytes'] / 1e6:.1f} MB, float16 safetensors with the model's metadata, "
                  f"sha256 `{w['sha256'][:16]}...`). Fine-tune them on your own faces with `fer-train --init {name} "
                  "--data folder=PATH` (classes matched by name, new ones start fresh; see the README's "
                  "*Fine-tune on your own data*).", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Licence", "", m["licence"], ""]
    return "\n".join(lines)


def refresh(model_path: str | Path, args: argparse.Namespace | None = None) -> Path:
    """Re-render a card from its metrics JSON after the file changed without retraining (e.g. calibrated): the
    size, sha256 and calibration are read again; title, figures and notes are kept, except what ``args`` brings
    anew (``eval`` folders with ``eval_cmd``, a ``bench`` file with ``bench_cmd``, more ``notes``)."""
    model_path = Path(model_path)
    card, metrics_path = model_path.with_suffix(".md"), model_path.with_suffix(".json")
    m = json.loads(metrics_path.read_text())
    text = card.read_text()
    title = text.splitlines()[0].split(": ", 1)[1]
    notes = []
    if "\n## Notes\n" in text:
        block = text.split("\n## Notes\n", 1)[1].split("\n## ", 1)[0]
        notes = [line[2:] for line in block.splitlines() if line.startswith("- ")]
    props = {p.key: p.value for p in onnx.load(str(model_path)).metadata_props}
    m.update(onnx_bytes=model_path.stat().st_size, sha256=hashlib.sha256(model_path.read_bytes()).hexdigest(),
             weights_storage=props.get("weights_storage"), calibration=_calibration(model_path),
             weights=_weights(model_path))
    if args is not None and args.eval:
        m["eval"] = {"command": args.eval_cmd or m["eval"]["command"],
                     "splits": [_eval_summary(Path(e)) for e in args.eval]}
        test = next((e for e in args.eval if "test" in Path(e).name), args.eval[0])
        shutil.copyfile(Path(test) / "confusion_matrix.png", model_path.parent / f"{model_path.stem}_confusion.png")
    if args is not None and args.bench:
        m["bench"] = {"command": args.bench_cmd or m["bench"]["command"], **_bench_summary(Path(args.bench))}
        m["train_hardware"] = m.get("train_hardware") or m["hardware"]  # the old figure named where it trained
        m["hardware"] = f"{_cpu_name()}, {args.cores} cores, no GPU" if args.cores else _cpu_name()  # measured here
    notes += args.notes if args is not None else []
    metrics_path.write_text(json.dumps(m, indent=1) + "\n")
    card.write_text(render(m, title, notes))
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the shipped ONNX file, e.g. models/fer_realtime.onnx")
    p.add_argument("--refresh", action="store_true",
                   help="re-render the card from its metrics JSON after the file changed without retraining "
                        "(calibrated, say); --eval, --bench and --notes given with it replace or add figures")
    p.add_argument("--title")
    p.add_argument("--run", action="append", help="training run folder (repeat per stage)")
    p.add_argument("--train-cmd", action="append", help="the command of each --run, in order")
    p.add_argument("--export-cmd")
    p.add_argument("--export-json", help="fer-export figures (default: <model>.export.json)")
    p.add_argument("--eval", action="append", help="fer-eval output folder (report.json)")
    p.add_argument("--eval-cmd")
    p.add_argument("--bench", help="fer-bench --json file (without it the card has no speed figures)")
    p.add_argument("--bench-cmd", default="")
    p.add_argument("--cores", type=int, default=None, help="CPU cores of the training/benchmark machine")
    p.add_argument("--train-hardware", help="where it was trained, when not on the benchmark machine "
                                            "(e.g. a GPU window)")
    p.add_argument("--notes", action="append", default=[], help="a line for the card's notes (repeatable)")
    args = p.parse_args(argv)
    if args.refresh:
        print(f"wrote {refresh(args.model, args)}")
        return 0
    missing = [flag for flag in ("title", "run", "train_cmd", "export_cmd", "eval", "eval_cmd")
               if not getattr(args, flag)]
    if missing:
        p.error("needed without --refresh: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if len(args.run) != len(args.train_cmd):
        p.error("give one --train-cmd per --run")
    write_card(args)
    model = Path(args.model)
    print(f"wrote {model.with_suffix('.md')}, {model.with_suffix('.json')}, {model.stem}_confusion.png")
    return 0


def write_card(args: argparse.Namespace) -> Path:
    """Write ``<model>.md``, ``<model>.json`` and ``<model>_confusion.png`` beside the ONNX file; returns the card."""
    metrics, card = build(args)
    model = Path(args.model)
    model.with_suffix(".json").write_text(json.dumps(metrics, indent=1) + "\n")
    model.with_suffix(".md").write_text(card)
    test = next((e for e in args.eval if "test" in Path(e).name), args.eval[0])
    shutil.copyfile(Path(test) / "confusion_matrix.png", model.parent / f"{model.stem}_confusion.png")
    return model.with_suffix(".md")


if __name__ == "__main__":
    raise SystemExit(main())
