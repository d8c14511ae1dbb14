"""Export a training checkpoint to a self-describing ONNX model, then check what was written.

``fer-export`` (:func:`training.cli.export_main`) and :func:`export_onnx` do, in order:

1. load the checkpoint and build the model from the weights that won validation (``--weights ema|raw`` to
   choose; EMA falls back to raw with a note when the checkpoint holds none);
2. export it with the TorchScript ONNX exporter (``dynamo=False``; still present and working in torch
   2.14): input ``input`` (batch, 3, S, S) with a dynamic batch axis, output ``logits``.
   ``grid_sample`` becomes ONNX ``GridSample`` (opset 16+). EmoNeXt's Spatial Transformer builds its
   affine grid from MatMuls itself; a model calling ``F.affine_grid`` exports too: ONNX's ``AffineGrid``
   arrived in opset 20, so for opsets 17-19 it is written as the same small graph
   (:func:`training.onnx_graph.affine_grid_symbolic`);
3. write :class:`fer_core.model_meta.ModelMeta` into ``metadata_props`` (labels in output order,
   input size, mean/std, grey/equalisation, native size, model name, training data, test accuracy
   from the checkpoint's meta or the ``report.json`` next to it) plus producer information;
4. optionally convert to fp16 (onnxruntime's ``convert_float_to_float16``, float32 inputs and outputs
   kept) or to int8 (``quant_pre_process`` + ``quantize_static``: QDQ, per-channel, Conv/MatMul/Gemm,
   calibrated on real faces from ``--calib-data``; the Spatial Transformer, stem and classifier stay float);
   or, ``--fp16-storage``, keep the float32 arithmetic but store the weights as float16 with Casts that ONNX
   Runtime folds at load (half the file; the default for files that ship, see ``training.ingest``);
5. verify: ``onnx.checker``, then ONNX Runtime (CPU) against PyTorch on real faces: fp32 max
   absolute logit difference <= 1e-3 (1e-2 with fp16 storage); fp16 / int8 top-1 agreement >= 99%;
6. only then move the model into place (``os.replace``), write its weights beside it as ``<out>.safetensors``
   (float16, for ``fer-train --init``, :mod:`training.weights`) and ``<out>.export.json`` with the
   figures. Nothing is left at ``--out`` when a step fails.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.model_meta import ModelMeta
from training.onnx_graph import set_metadata, store_fp16_file, to_fp16, to_int8, torch_export

logger = logging.getLogger(__name__)

FP32_MAX_ABS_DIFF = 1e-3
"""Largest allowed |logit(ONNX Runtime) - logit(PyTorch)| for an fp32 export."""
MIN_TOP1_AGREEMENT = 0.99
"""Smallest allowed share of images where the fp16 / int8 model's top-1 class equals PyTorch's."""
FP16_STORAGE_MAX_ABS_DIFF = 1e-2
"""Largest allowed |logit difference| of an fp32 model with float16-stored weights (``fp16_storage``) against
PyTorch: the weights are rounded to float16 once, the arithmetic stays float32 (the shipped FER+ model: 4.2e-3 on
its log probabilities, 1.0e-3 on its probabilities, the same accuracy)."""
VERIFY_BATCH = 64

EXIT_VERIFY_FAILED = 1
EXIT_USAGE = 2


class ExportError(RuntimeError):
    """A problem with the inputs of an export (checkpoint, output path, data); the message says which."""


class VerificationError(ExportError):
    """The written model does not match PyTorch closely enough; ``figures`` holds the measurements."""

    def __init__(self, message: str, figures: dict[str, Any]):
        super().__init__(message)
        self.figures = figures


# --------------------------------------------------------------------------------------------------
# Checkpoint and metadata
# --------------------------------------------------------------------------------------------------


def _load_checkpoint(ckpt_path: Path) -> dict:
    """:func:`training.checkpoint.load_checkpoint`, its errors as :class:`ExportError` (and a hint for an .onnx)."""
    if ckpt_path.suffix.lower() == ".onnx":
        raise ExportError(f"{ckpt_path} is already an ONNX model; --checkpoint takes a fer-train checkpoint (.pt)")
    from training.checkpoint import CheckpointError, load_checkpoint  # torch: imported only when needed

    try:
        return load_checkpoint(ckpt_path)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc


def _report_accuracy(report_path: Path) -> float | None:
    """Plain (no-TTA) test accuracy from a run's ``report.json`` (``{"split": "test", "tta": {"none":
    {"accuracy": ...}}}``, written by :func:`training.report.write_report`), or ``None``."""
    try:
        report = json.loads(report_path.read_text())
        if report.get("split", "test") != "test":
            return None
        return float(report["tta"]["none"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def meta_from_checkpoint(ckpt: dict, ckpt_path: Path) -> ModelMeta:
    """Build the model's :class:`ModelMeta` from ``ckpt["meta"]`` (falling back to the config / report.json).

    Raises:
        ExportError: when the checkpoint does not say its input size.
    """
    meta = ModelMeta.from_dict(dict(ckpt.get("meta") or {}))
    config = ckpt.get("config") or {}
    if not meta.input_size:
        meta.input_size = int(config.get("img_size") or 0)
    if not meta.input_size:
        raise ExportError(f"{ckpt_path}: the checkpoint does not record its input size (meta.input_size)")
    if meta.model == "unknown" and config.get("model"):
        meta.model = str(config["model"])
    if meta.test_accuracy is None:
        meta.test_accuracy = _report_accuracy(ckpt_path.parent / "report.json")
    return meta


def _producer_version() -> str:
    try:
        from importlib.metadata import version

        return version("fer-app")
    except Exception:  # not installed as a distribution
        return "0"


def _write_metadata(model, meta: ModelMeta) -> None:
    """Replace ``model.metadata_props`` with ``meta`` and set producer information (in place)."""
    set_metadata(model, meta.to_props())
    model.producer_name = "fer-export"
    model.producer_version = _producer_version()
    model.doc_string = f"{meta.model} facial expression classifier; outputs logits for {', '.join(meta.labels)}"


# --------------------------------------------------------------------------------------------------
# Faces for calibration and verification
# --------------------------------------------------------------------------------------------------


def read_faces(specs: Sequence[str], meta: ModelMeta, count: int, progress: bool = True):
    """Read face data for calibration / verification: ``load_data`` with ``count`` images per split, stored
    (grey, equalised) at the model's native size."""
    from training.data import DataError, load_data

    try:
        return load_data(list(specs), cache_size=meta.native_size or meta.input_size, equalize=meta.equalize,
                         subset=count, progress=progress)
    except (DataError, OSError) as exc:
        raise ExportError(f"cannot read face data {', '.join(specs)}: {exc}") from exc


def faces_as_inputs(data, meta: ModelMeta, count: int, splits: Sequence[str]) -> np.ndarray:
    """Up to ``count`` faces of ``data`` (a :class:`training.data.FaceData`), taken from ``splits`` in order, as
    model inputs (N, 3, S, S) float32 through :func:`fer_core.preprocess.to_input` (as in evaluation/inference)."""
    from fer_core.preprocess import to_input

    images = [img for name in splits for img in getattr(data, name).images][:count]
    if not images:
        raise ExportError(f"no face images found in {data.name}")
    return np.stack([to_input(img, meta.input_size, meta.mean, meta.std) for img in images])


# --------------------------------------------------------------------------------------------------
# Export, conversion, verification
# --------------------------------------------------------------------------------------------------


def _batches(n: int) -> Iterator[slice]:
    """One single-image batch first (what the app runs for one face), then batches of ``VERIFY_BATCH``."""
    yield slice(0, min(1, n))
    for start in range(1, n, VERIFY_BATCH):
        yield slice(start, min(start + VERIFY_BATCH, n))


def _progress(n: int, desc: str, enabled: bool):
    from training.progress import progress_bar

    return progress_bar(n, desc, enabled, unit="img")


def torch_logits(model, faces: np.ndarray, progress: bool = False) -> np.ndarray:
    """PyTorch logits (N, C) for preprocessed faces, in batches."""
    import torch

    out = []
    with torch.no_grad(), _progress(len(faces), "PyTorch", progress) as bar:
        for s in _batches(len(faces)):
            out.append(model(torch.from_numpy(faces[s])).float().numpy())
            bar.update(len(out[-1]))
    return np.concatenate(out)


def onnx_logits(path: Path, faces: np.ndarray, progress: bool = False) -> np.ndarray:
    """ONNX Runtime (CPU) logits (N, C) for preprocessed faces, in batches."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = []
    with _progress(len(faces), "ONNX Runtime", progress) as bar:
        for s in _batches(len(faces)):
            out.append(session.run(None, {name: faces[s]})[0])
            bar.update(len(out[-1]))
    return np.concatenate(out).astype(np.float32)


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Max / mean absolute difference and top-1 agreement of two (N, C) logit arrays."""
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    agree = reference.argmax(1) == candidate.argmax(1)
    return {"images": int(len(reference)), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "top1_agreement": float(agree.mean())}


def verify_onnx(path: Path, reference: np.ndarray, faces: np.ndarray, precision: str,
                progress: bool = False) -> dict[str, Any]:
    """Check one written model: ``onnx.checker``, then its logits against PyTorch's ``reference``.

    Returns the figures plus ``passed`` and ``criterion``; fp32 must stay within ``FP32_MAX_ABS_DIFF``,
    fp16 / int8 must reach ``MIN_TOP1_AGREEMENT``; ``fp16_storage`` within ``FP16_STORAGE_MAX_ABS_DIFF``.
    """
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError, shape inference errors
        raise VerificationError(f"onnx.checker rejected the exported {precision} model: {exc}", {}) from exc
    figures: dict[str, Any] = compare_logits(reference, onnx_logits(path, faces, progress))
    if precision in ("fp32", "fp16_storage"):
        limit = FP32_MAX_ABS_DIFF if precision == "fp32" else FP16_STORAGE_MAX_ABS_DIFF
        figures["criterion"] = f"max_abs_diff <= {limit:g}"
        figures["passed"] = figures["max_abs_diff"] <= limit
    else:
        figures["criterion"] = f"top1_agreement >= {MIN_TOP1_AGREEMENT:.0%}"
        figures["passed"] = figures["top1_agreement"] >= MIN_TOP1_AGREEMENT
    return figures


def figures_line(figures: dict[str, Any]) -> str:
    """One line of verification figures."""
    return (f"max |dlogit| {figures['max_abs_diff']:.2e}, mean {figures['mean_abs_diff']:.2e}, "
            f"top-1 agreement {figures['top1_agreement']:.2%} on {figures['images']} images")


def _check_output_path(out_path: Path) -> None:
    if out_path.suffix.lower() != ".onnx":
        raise ExportError(f"output must be an .onnx file: {out_path}")
    if out_path.is_dir():
        raise ExportError(f"output is a directory: {out_path}")
    if out_path.parent.exists() and not out_path.parent.is_dir():
        raise ExportError(f"cannot write {out_path}: {out_path.parent} is a file, not a folder")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create output directory {out_path.parent}: {exc.strerror or exc}") from exc
    if not os.access(out_path.parent, os.W_OK):
        raise ExportError(f"output directory is not writable: {out_path.parent}")


def export_onnx(
    ckpt_path: str | Path,
    out_path: str | Path,
    weights: str = "best",
    fp16: bool = False,
    int8: bool = False,
    fp16_storage: bool = False,
    calib_specs: Sequence[str] | None = None,
    opset: int = 17,
    verify_specs: Sequence[str] | None = None,
    verify_images: int = 500,
    calib_images: int = 500,
    progress: bool = True,
    verify_faces: np.ndarray | None = None,
    calib_faces: np.ndarray | None = None,
) -> dict[str, Any]:
    """Export a checkpoint to ONNX, verify it against PyTorch, and move it to ``out_path``.

    Args:
        ckpt_path: training checkpoint (``runs/<name>/best.pt``).
        out_path: ``.onnx`` file to write (parent directories are created).
        weights: ``"best"`` (default: the ones recorded as reaching the best validation accuracy), ``"ema"``
            (falls back to raw with a note when there is no EMA) or ``"raw"``.
        fp16: write a float16 model (float32 inputs/outputs).
        int8: write a statically quantised int8 model (QDQ, per-channel); needs calibration faces.
        fp16_storage: store an fp32 model's weights as float16 with Casts that ONNX Runtime folds at load
            (:func:`training.onnx_graph.store_fp16`): half the file, the same float32 arithmetic and speed.
        calib_specs: data specs (``["fer2013=PATH"]``) for int8 calibration (train split faces first).
        opset: ONNX opset, at least 17.
        verify_specs: data specs for the parity check (test split faces first); default ``calib_specs``;
            random inputs (with a note) when there are no faces at all.
        verify_images: number of faces for the parity check.
        calib_images: number of faces for int8 calibration.
        progress: show progress bars while reading data.
        verify_faces: already preprocessed faces (N, 3, S, S) float32 for the parity check, instead of
            ``verify_specs`` (for callers that hold the data in memory).
        calib_faces: already preprocessed calibration faces, instead of ``calib_specs``.

    Returns:
        The figures (also written to ``<out_path>.export.json``): paths, precision, weights, opset, labels,
        ``verify`` = {"fp32": {...}, "fp16"|"int8": {...}} with max/mean abs diff and top-1 agreement, notes.

    Raises:
        ExportError: bad checkpoint, output path, data or options.
        VerificationError: the written model failed a check (nothing is left at ``out_path``).
    """
    started = time.perf_counter()
    ckpt_path, out_path = Path(ckpt_path), Path(out_path)
    if weights not in ("best", "ema", "raw"):
        raise ExportError(f"unknown weights '{weights}': choose 'ema', 'raw' or 'best'")
    if fp16 and int8:
        raise ExportError("choose one of --fp16 and --int8")
    if fp16_storage and (fp16 or int8):
        raise ExportError("--fp16-storage is for float32 models: leave out --fp16 / --int8")
    if int8 and not calib_specs and calib_faces is None:
        raise ExportError("--int8 needs real faces for calibration: add --calib-data fer2013=PATH")
    if opset < 17:
        raise ExportError(f"opset {opset} is too old: use 17 or newer")
    if verify_images < 1 or calib_images < 1:
        raise ExportError("--verify-images and --calib-images must be at least 1")
    _check_output_path(out_path)
    precision = "fp16" if fp16 else "int8" if int8 else "fp32"
    notes: list[str] = []

    def note(text: str, level: int = logging.WARNING) -> None:
        notes.append(text)
        logger.log(level, text)

    ckpt = _load_checkpoint(ckpt_path)
    import onnx  # heavy imports after the cheap checks, so a wrong path fails at once
    import torch

    from training.checkpoint import build_model_from_checkpoint

    meta = meta_from_checkpoint(ckpt, ckpt_path)
    try:
        model = build_model_from_checkpoint(ckpt, weights=weights)  # picks the weights (select_weights)
    except Exception as exc:  # unknown architecture name, state dict mismatch
        raise ExportError(f"{ckpt_path}: cannot build the model ({exc})") from exc
    asked, weights = weights, model.weights_used
    if asked == "best":
        note(f"exporting the {weights} weights, the ones that reached the best validation accuracy", logging.INFO)
    if weights == "raw" and ckpt.get("ema") is None and (asked == "ema" or not ckpt.get("best_weights")):
        note("the checkpoint holds no EMA weights: exporting the raw weights")
    model = model.float().cpu().eval()
    with torch.no_grad():
        num_outputs = model(torch.zeros(1, 3, meta.input_size, meta.input_size)).shape[-1]
    if num_outputs != len(meta.labels):
        raise ExportError(f"{ckpt_path}: the model has {num_outputs} outputs but its meta lists "
                          f"{len(meta.labels)} labels ({', '.join(meta.labels)})")
    meta.extra.update({"export_weights": weights, "export_precision": precision, "export_opset": str(opset),
                       "source_checkpoint": ckpt_path.name, "torch_version": torch.__version__})

    datasets: dict[tuple[str, ...], Any] = {}  # specs -> FaceData, read once for calibration and verification

    def faces_from(specs: Sequence[str], count: int, splits: Sequence[str]) -> np.ndarray:
        if tuple(specs) not in datasets:
            per_split = max(verify_images, calib_images if int8 else 0)
            datasets[tuple(specs)] = read_faces(specs, meta, per_split, progress)
        return faces_as_inputs(datasets[tuple(specs)], meta, count, splits)

    verify_specs = list(verify_specs or calib_specs or [])
    if verify_faces is not None:
        faces = np.ascontiguousarray(verify_faces[:verify_images], dtype=np.float32)
        verify_source = f"{len(faces)} given faces"
    elif verify_specs:
        faces = faces_from(verify_specs, verify_images, ("test", "val", "train"))
        verify_source = f"{len(faces)} faces of {'+'.join(verify_specs)} (test split first)"
    else:
        shape = (verify_images, 3, meta.input_size, meta.input_size)
        faces = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
        verify_source = f"{verify_images} random inputs"
        note("no --verify-data or --calib-data: verifying on random inputs, not real faces")
    expected = (3, meta.input_size, meta.input_size)
    if faces.ndim != 4 or faces.shape[1:] != expected:
        raise ExportError(f"verification faces have shape {faces.shape}, expected (N, {', '.join(map(str, expected))})")
    logger.info("verifying on %s", verify_source)
    reference = torch_logits(model, faces, progress)

    try:
        work_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    except OSError as exc:
        raise ExportError(f"cannot write to {out_path.parent}: {exc.strerror or exc}") from exc
    try:
        fp32_path = work_dir / "model_fp32.onnx"
        logger.info("exporting %s (%s weights, opset %d)", ckpt_path, weights, opset)
        try:
            torch_export(model, fp32_path, meta.input_size, opset)
        except Exception as exc:  # an operator without an ONNX translation, tracing failure
            raise ExportError(f"torch.onnx.export failed for {meta.model}: {exc}") from exc
        onnx_model = onnx.load(str(fp32_path))
        _write_metadata(onnx_model, meta)
        onnx.save(onnx_model, str(fp32_path))
        checks = {"fp32": verify_onnx(fp32_path, reference, faces, "fp32", progress)}
        final = fp32_path
        if precision != "fp32":
            final = work_dir / f"model_{precision}.onnx"
            logger.info("converting to %s", precision)
            if fp16:
                to_fp16(fp32_path, final)
            else:
                if calib_faces is None:
                    calib_faces = faces_from(calib_specs, calib_images, ("train", "val", "test"))
                    note(f"int8 calibrated on {len(calib_faces)} faces of {'+'.join(calib_specs)} (train split)",
                         logging.INFO)
                else:
                    note(f"int8 calibrated on {len(calib_faces)} given faces", logging.INFO)
                to_int8(fp32_path, final, np.asarray(calib_faces, dtype=np.float32), work_dir)
            reduced = onnx.load(str(final))
            _write_metadata(reduced, meta)  # conversion tools may drop or keep metadata: write it again
            onnx.save(reduced, str(final))
            checks[precision] = verify_onnx(final, reference, faces, precision, progress)
        elif fp16_storage:
            final = work_dir / "model_fp16_storage.onnx"
            store_fp16_file(fp32_path, final)
            checks["fp16_storage"] = verify_onnx(final, reference, faces, "fp16_storage", progress)
        result = {
            "out": str(out_path), "checkpoint": str(ckpt_path), "model": meta.model, "weights": weights,
            "precision": precision, "fp16_storage": fp16_storage, "opset": opset, "input_size": meta.input_size,
            "labels": meta.labels,
            "test_accuracy": meta.test_accuracy, "verify_data": verify_source, "verify": checks,
            "passed": all(c["passed"] for c in checks.values()), "notes": notes,
            "size_bytes": final.stat().st_size, "seconds": round(time.perf_counter() - started, 2),
        }
        failed = [f"{name}: {c['criterion']} not met ({figures_line(c)})" for name, c in checks.items()
                  if not c["passed"]]
        if failed:
            raise VerificationError(f"verification failed, nothing written to {out_path}: " + "; ".join(failed),
                                    result)
        os.replace(final, out_path)
        from training.weights import save_beside  # the weights too, for fer-train --init

        kwargs = (ckpt.get("config") or {}).get("model_kwargs")
        result["weights_file"] = str(save_beside(out_path, model, meta, kwargs))
        Path(f"{out_path}.export.json").write_text(json.dumps(result, indent=2) + "\n")
        return result
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
