"""Confidence you can trust: temperature scaling fitted on the validation split and folded into the ONNX model.

    python -m training.calibrate --model models/fer_realtime.onnx --data fer2013=../shared/data/fer2013

One number T divides the logits (``softmax(z / T)``): it does not change any prediction, only how sure the model
says it is. T is fitted on the validation split (the T whose expected calibration error, 15 equal-width confidence
bins, is lowest there), and the calibration error is measured on the test split before and after. The
model gets a ``Div`` by T on its output and ``fer.temperature`` in its metadata, so every consumer (the app,
``fer-run``, the API) reads calibrated probabilities. Writes ``<model>.calibration.json`` and a reliability diagram
``<model stem>_reliability.png``.

    python -m training.calibrate --model models/fer_realtime.onnx --data fer2013=../shared/data/fer2013 --flip

``--flip`` first builds mirror averaging into the model (each face and its mirror image, averaged; about two
points of accuracy for twice the classifier's work) and calibrates the averaged output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.probs import softmax

BINS = 15


def nll(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / t)``."""
    z = logits / t
    z = z - z.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """The T in [0.25, 8] whose expected calibration error on ``(logits, labels)`` is lowest (a fine grid on
    log T; among equally good values the one with the lower NLL)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 321))
    scores = [(round(reliability(softmax(logits / t), labels, bins)["ece"], 4), nll(logits, labels, t), t)
              for t in grid]
    return float(min(scores)[2])


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Expected calibration error and the per-bin figures of a reliability diagram (equal-width bins)."""
    conf, pred = probs.max(1), probs.argmax(1)
    right = (pred == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            gap = abs(right[m].mean() - conf[m].mean())
            ece += m.mean() * gap
            rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                         "confidence": float(conf[m].mean()), "accuracy": float(right[m].mean())})
    return {"ece": float(ece), "bins": rows, "accuracy": float(right.mean()), "mean_confidence": float(conf.mean())}


def plot_reliability(before: dict, after: dict, path: str | Path, title: str = "") -> None:
    """Reliability diagram: accuracy against confidence per bin, before and after scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    for res, name, color in ((before, "before", "tab:red"), (after, "after", "tab:blue")):
        xs = [r["confidence"] for r in res["bins"]]
        ys = [r["accuracy"] for r in res["bins"]]
        ax.plot(xs, ys, "o-", color=color, ms=4, label=f"{name}: ECE {res['ece']:.3f}")
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title or "reliability on the test split", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def model_logits(path: str | Path, specs: list[str], split: str, subset: int | None = None,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(log-probabilities as logits (N, C), labels (N,), classes) of an ONNX model on a data split."""
    from fer_core.session import EmotionClassifier
    from training.evaluate import _load_split, align_labels, onnx_probs

    clf = EmotionClassifier(path, provider="cpu")
    meta = clf.meta
    data, part = _load_split(specs, split, int(meta.native_size or 48), bool(meta.equalize), subset, None,
                             progress)
    keep, labels = align_labels(data.classes, list(clf.labels), part.labels)
    probs = onnx_probs(clf, part.images[keep], "none", progress=progress)
    return np.log(np.clip(probs, 1e-12, None)), np.asarray(labels), list(clf.labels)


def fold_temperature(path: str | Path, out: str | Path, t: float, figures: dict[str, Any]) -> None:
    """Write ``path`` with its logits divided by ``t`` (one ``Div`` at the output) and ``fer.temperature``.

    A model that already holds a temperature gets the product (its logits are divided once more). In a model with
    switchable mirror averaging the ``Div`` goes at the end of the averaging branch, whose outputs were measured:
    the single-view path keeps the temperature it had before the fold.
    """
    import onnx
    from onnx import helper, numpy_helper

    from training.mirror_fold import averaged_graph
    from training.onnx_graph import save_with_metadata

    model = onnx.load(str(path))
    graph = averaged_graph(model)
    name = graph.output[0].name
    k = sum(1 for i in model.graph.initializer if i.name.startswith("temperature"))
    raw, t_name = f"{name}_before_temperature{k or ''}", f"temperature{k or ''}"
    for node in graph.node:
        node.output[:] = [raw if o == name else o for o in node.output]
        node.input[:] = [raw if i == name else i for i in node.input]
    model.graph.initializer.append(numpy_helper.from_array(np.array(t, np.float32), t_name))
    graph.node.append(helper.make_node("Div", [raw, t_name], [name], name=f"calibration{k or ''}"))
    props = {p.key: p.value for p in model.metadata_props}
    total = float(json.loads(props.get("fer.temperature", "1.0"))) * t
    props.update({"fer.temperature": json.dumps(round(total, 6)),
                  "calibration": f"temperature {t:.4f} fitted on validation; test ECE (15 bins) "
                                 f"{figures['test']['before']['ece']:.4f} -> {figures['test']['after']['ece']:.4f}"})
    save_with_metadata(model, props, out)


def calibrate(path: str | Path, specs: list[str], out: str | Path | None = None, subset: int | None = None,
              progress: bool = False, flip: bool = False) -> dict[str, Any]:
    """Fit T on validation, measure ECE on test before/after, fold T into the model. Returns the figures.

    With ``flip``, mirror averaging is folded in first (:func:`training.mirror_fold.fold_flip`) and T is fitted
    for the averaged output, which is less sure of itself than either view.
    """
    path = Path(path)
    out = Path(out) if out else path
    if flip:
        from training.mirror_fold import fold_flip

        fold_flip(path, out)
        path = out
    val_z, val_y, classes = model_logits(path, specs, "val", subset, progress)
    t = fit_temperature(val_z, val_y)
    test_z, test_y, _ = model_logits(path, specs, "test", subset, progress)
    figures = {"model": path.name, "data": specs, "temperature": t, "bins": BINS, "flip": flip,
               "val": {"nll_before": nll(val_z, val_y, 1.0), "nll_after": nll(val_z, val_y, t)},
               "test": {"before": reliability(softmax(test_z), test_y), "after": reliability(softmax(test_z / t), test_y),
                        "n": int(len(test_y))}}
    fold_temperature(path, out, t, figures)
    out_json = out.with_name(out.name + ".calibration.json")
    out_json.write_text(json.dumps(figures, indent=1))
    plot_reliability(figures["test"]["before"], figures["test"]["after"], out.with_name(f"{out.stem}_reliability.png"),
                     f"{out.name}: T = {t:.2f}, test split")
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the ONNX model to calibrate")
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH", help="its dataset (val and test)")
    p.add_argument("--out", help="where to write the calibrated model (default: in place)")
    p.add_argument("--subset", type=int, help="faces per split (quick checks)")
    p.add_argument("--flip", action="store_true",
                   help="first build mirror averaging into the model (each face and its mirror image; twice the "
                        "classifier's work, usually 1-2 points of accuracy), then calibrate that")
    args = p.parse_args(argv)
    from fer_core.session import ModelLoadError
    from training.data import DataError

    try:
        f = calibrate(args.model, args.data, args.out, args.subset, progress=True, flip=args.flip)
    except (DataError, ModelLoadError, OSError, ValueError) as err:
        print(f"calibrate: error: {err}", file=sys.stderr)
        return 2
    before, after = f["test"]["before"], f["test"]["after"]
    print(f"temperature {f['temperature']:.3f} (fitted on validation); test ECE {before['ece']:.4f} -> "
          f"{after['ece']:.4f}, mean confidence {before['mean_confidence']:.3f} -> {after['mean_confidence']:.3f}, "
          f"accuracy {after['accuracy']:.4f}" + (" (with mirror averaging)" if args.flip else " (unchanged)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
