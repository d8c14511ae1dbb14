"""Classification metrics, the run's metrics log, and the plots (training curves, confusion matrix)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predictions."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str] | tuple[str, ...]) -> dict:
    """Accuracy, macro precision/recall/F1, per-class precision/recall/F1/support and the confusion matrix.

    Classes without samples and predictions score 0 and still count in the macro averages (scikit-learn's
    ``zero_division=0`` convention).
    """
    cm = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion_matrix": cm.tolist(),
    }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Macro-averaged F1 (see :func:`classification_metrics`)."""
    return classification_metrics(y_true, y_pred, [str(i) for i in range(num_classes)])["macro_f1"]


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line."""
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a JSON-lines file ([] when missing)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: str | Path, last_epoch: int) -> None:
    """Drop rows after ``last_epoch`` (a resumed run rewrites the epochs it repeats)."""
    rows = [r for r in read_jsonl(path) if r.get("epoch", 0) <= last_epoch]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Loss and accuracy curves per epoch (train loss, validation loss/accuracy of raw and EMA weights)."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val (raw)"), ("ema_val_loss", "val (EMA)")):
        if any(r.get(key) is not None for r in rows):
            ax_loss.plot(epochs, [r.get(key) for r in rows], marker=".", label=label)
    for key, label in (("val_acc", "val acc (raw)"), ("ema_val_acc", "val acc (EMA)"),
                       ("val_f1", "val macro-F1 (raw)"), ("ema_val_f1", "val macro-F1 (EMA)")):
        if any(r.get(key) is not None for r in rows):
            ax_acc.plot(epochs, [r.get(key) for r in rows], marker=".", label=label,
                        linestyle="--" if "f1" in key else "-")
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="Validation", xlabel="epoch", ylabel="accuracy / macro-F1")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion_matrix(cm: list[list[int]] | np.ndarray, classes: list[str] | tuple[str, ...],
                          path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix (recall per true class) with class names and cell values."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    norm = _safe_div(cm, cm.sum(1, keepdims=True))
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 * n + 2.5, 1.0 * n + 1.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(classes))
    ax.set(xlabel="predicted", ylabel="true", title=title or "Confusion matrix (row-normalised)")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | Path, cm_mode: str | None = None) -> Path:
    """Write ``report.json`` and ``confusion_matrix.png`` (for ``cm_mode``, default the first TTA mode).

    ``report`` holds ``classes`` and ``tta``: {mode: classification_metrics(...)}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2))
    mode = cm_mode or next(iter(report["tta"]))
    res = report["tta"][mode]
    title = f"{report.get('model', '')} {report.get('split', '')} (TTA {mode}): accuracy {res['accuracy']:.4f}"
    plot_confusion_matrix(res["confusion_matrix"], report["classes"], out_dir / "confusion_matrix.png", title.strip())
    return path
