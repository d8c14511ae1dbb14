"""Test reports for a trained network, a checkpoint file, or an exported ONNX model.

A report is ``{"classes", "n", "tta": {mode: classification_metrics}, ...}`` with modes from "none", "flip",
"tencrop"; :func:`training.report.write_report` turns it into ``report.json`` + ``confusion_matrix.png``.

Checkpoints are evaluated in torch (:mod:`training.transforms`); ONNX files through
:class:`fer_core.session.EmotionClassifier` with the inference preprocessing (:func:`fer_core.preprocess.to_input`),
so the ONNX numbers are the ones the app will see.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer_core.model_meta import ModelMeta
from training.checkpoint import build_model_from_checkpoint, load_checkpoint
from training.engine import Amp, evaluate
from training.progress import progress_bar
from training.report import classification_metrics, write_report
from training.transforms import TTA_MODES, tencrop_offsets, tencrop_size

log = logging.getLogger(__name__)


class EvalError(ValueError):
    """Data and model that cannot be evaluated together (no shared classes, bad split/mode)."""


def align_labels(data_classes: tuple[str, ...] | list[str], model_labels: list[str],
                 labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map data labels onto the model's output order by class name.

    Returns:
        (keep, mapped): indices of the images whose class the model knows, and their labels in model order.

    Raises:
        EvalError: no class in common.
    """
    pos = {name: i for i, name in enumerate(model_labels)}
    lut = np.array([pos.get(c, -1) for c in data_classes], dtype=np.int64)
    mapped = lut[np.asarray(labels, dtype=np.int64)]
    keep = np.flatnonzero(mapped >= 0)
    if keep.size == 0:
        raise EvalError(f"the model predicts {list(model_labels)}; the data has no image of these classes "
                        f"(its classes: {list(data_classes)})")
    if keep.size < len(labels):
        missing = sorted(set(data_classes) - set(model_labels))
        log.warning("skipping %d image(s) of classes the model does not predict: %s", len(labels) - keep.size,
                    ", ".join(missing))
    return keep, mapped[keep]


def test_report(model: nn.Module, images: torch.Tensor, labels: np.ndarray, classes: tuple[str, ...] | list[str],
                img_size: int, batch_size: int, modes: tuple[str, ...] | list[str] = TTA_MODES,
                **eval_kw: Any) -> dict[str, Any]:
    """Metrics for each TTA mode of a torch model on uint8 faces (N, S, S) with labels in the model's order."""
    out: dict[str, Any] = {"classes": list(classes), "n": int(len(labels)), "tta": {}}
    for mode in modes:
        res = evaluate(model, images, labels, classes, img_size, batch_size, mode, desc=f"test TTA {mode}",
                       **eval_kw)
        out["tta"][mode] = res["metrics"]
    return out


def parse_modes(tta: str) -> tuple[str, ...]:
    """"all" or a comma list such as "none,flip" -> checked modes.

    Raises:
        EvalError: unknown mode.
    """
    modes = TTA_MODES if tta == "all" else tuple(m.strip() for m in tta.split(",") if m.strip())
    bad = [m for m in modes if m not in TTA_MODES]
    if bad or not modes:
        raise EvalError(f"unknown TTA mode '{', '.join(bad) or tta}'; choose from {', '.join(TTA_MODES)} or all")
    return modes


def _load_split(specs: list[str], split: str, native_size: int, equalize: bool, subset: int | None,
                cache_dir: str | None, progress: bool, run_config: dict[str, Any] | None = None):
    """The data and its ``split``; with ``run_config`` (a checkpoint's) split as that run was (seed, rule)."""
    from training.data import load_data
    from training.data.splits import SplitRule

    run = run_config or {}
    rule = SplitRule(group_by=run.get("group_by"), folds=run.get("folds"), fold=run.get("fold"))
    data = load_data(specs, cache_size=native_size, equalize=equalize, subset=subset, cache_dir=cache_dir,
                     progress=progress, seed=int(run.get("seed") or 0), split_rule=rule)
    return data, data.split(split)


def evaluate_checkpoint(path: str | Path, specs: list[str], split: str = "test", tta: str = "all",
                        out_dir: str | Path | None = None, device: str = "auto", weights: str = "best",
                        batch_size: int = 256, subset: int | None = None, cache_dir: str | None = None,
                        progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Evaluate a training checkpoint on a data split and write the report.

    Returns:
        (report, folder written to; default ``<checkpoint folder>/eval_<split>``).
    """
    modes = parse_modes(tta)
    ckpt = load_checkpoint(path)
    meta = ModelMeta.from_dict(ckpt["meta"])
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    if device == "cuda" and dev.type != "cuda":
        raise EvalError("--device cuda: no CUDA device is available")
    model = build_model_from_checkpoint(ckpt, weights).to(device=dev, memory_format=torch.channels_last)
    which = model.weights_used
    data, part = _load_split(specs, split, meta.native_size, meta.equalize, subset, cache_dir, progress,
                             ckpt.get("config"))
    keep, labels = align_labels(data.classes, meta.labels, part.labels)
    images = torch.from_numpy(part.images[keep]).to(dev)
    amp = Amp.resolve("auto", dev)
    report = test_report(model, images, labels, meta.labels, meta.input_size, batch_size, modes, amp=amp,
                         mean=meta.mean, std=meta.std, channels_last=True, progress=progress)
    report.update(model=meta.model, data=data.name, split=split, checkpoint=str(path), weights=which,
                  epoch=ckpt.get("epoch"))
    out = Path(out_dir) if out_dir else Path(path).parent / f"eval_{split}"
    write_report(report, out)
    return report, out


def onnx_probs(clf: Any, faces: np.ndarray, mode: str, batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """Probabilities from an :class:`fer_core.session.EmotionClassifier` for uint8 faces (N, S, S), averaged over
    the TTA views; each face goes through :func:`fer_core.preprocess.to_input` as at inference time."""
    from fer_core.preprocess import to_input

    size, mean, std = clf.input_size, clf.meta.mean, clf.meta.std
    out = []
    with progress_bar(len(faces), f"onnx TTA {mode}", progress, unit="img") as bar:
        for i in range(0, len(faces), batch_size):
            chunk = faces[i:i + batch_size]
            if mode == "tencrop":
                big = np.stack([to_input(f, tencrop_size(size), mean, std) for f in chunk])
                views = [np.ascontiguousarray(big[..., t:t + size, l:l + size]) for t, l in tencrop_offsets(size)]
                views += [np.ascontiguousarray(v[..., ::-1]) for v in views]
            else:
                x = np.stack([to_input(f, size, mean, std) for f in chunk])
                views = [x] if mode == "none" else [x, np.ascontiguousarray(x[..., ::-1])]
            out.append(sum(clf.predict_batch(v) for v in views) / len(views))
            bar.update(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, len(clf.labels)), np.float32)


def evaluate_onnx(path: str | Path, specs: list[str], split: str = "test", tta: str = "none,flip",
                  out_dir: str | Path | None = None, provider: str = "auto", batch_size: int = 256,
                  subset: int | None = None, cache_dir: str | None = None,
                  progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Evaluate an exported ONNX model on a data split and write the report.

    Returns:
        (report, folder written to; default ``runs/eval/<model file stem>_<split>``).
    """
    from fer_core.session import EmotionClassifier

    modes = parse_modes(tta)
    clf = EmotionClassifier(path, provider=provider)
    meta = clf.meta
    data, part = _load_split(specs, split, meta.native_size, meta.equalize, subset, cache_dir,
                             progress)
    keep, labels = align_labels(data.classes, list(clf.labels), part.labels)
    faces = part.images[keep]
    report: dict[str, Any] = {"classes": list(clf.labels), "n": int(len(labels)), "tta": {}}
    for mode in modes:
        probs = onnx_probs(clf, faces, mode, batch_size, progress)
        report["tta"][mode] = classification_metrics(labels, probs.argmax(1), clf.labels)
    report.update(model=meta.model, data=data.name, split=split, onnx=str(path), provider=clf.provider)
    out = Path(out_dir) if out_dir else Path("runs") / "eval" / f"{Path(path).stem}_{split}"
    write_report(report, out)
    return report, out
