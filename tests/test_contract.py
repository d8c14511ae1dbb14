"""One model contract (``ModelMeta``): change a tiny model's input size and normalisation at training time, and
the checkpoint, the ONNX file, the ``fer_core`` session and ``fer-eval`` all follow with no other edit."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.model_meta import ModelMeta
from fer_core.preprocess import DEFAULT_MEAN, DEFAULT_STD
from fer_core.session import EmotionClassifier
from training.checkpoint import load_checkpoint
from training.cli import train_main
from training.evaluate import evaluate_checkpoint, evaluate_onnx
from training.export import export_onnx


def test_meta_round_trips():
    meta = ModelMeta(labels=["happy", "sad"], input_size=40, mean=0.4, std=0.3, model="x", temperature=1.5)
    assert ModelMeta.from_dict(meta.to_dict()) == meta
    assert ModelMeta.from_props(meta.to_props())[0] == meta
    assert (ModelMeta().mean, ModelMeta().std) == (DEFAULT_MEAN, DEFAULT_STD)


def test_input_size_and_normalisation_follow_the_model(fer2013_root, tmp_path):
    spec = f"fer2013={fer2013_root}"
    args = ["--model", "emonext_test", "--data", spec, "--img-size", "40", "--mean", "0.4", "--std", "0.3",
            "--epochs", "1", "--batch-size", "16", "--subset", "48", "--project", str(tmp_path), "--name", "c",
            "--device", "cpu", "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    assert train_main(args) == 0
    meta = ModelMeta.from_dict(load_checkpoint(tmp_path / "c" / "best.pt")["meta"])
    assert (meta.input_size, meta.mean, meta.std) == (40, 0.4, 0.3)
    onnx_path = tmp_path / "c.onnx"
    figures = export_onnx(tmp_path / "c" / "best.pt", onnx_path, verify_specs=[spec], verify_images=48, progress=False)
    assert figures["verify"]["fp32"]["passed"]  # the export's own check ran with 40 px and 0.4 / 0.3
    clf = EmotionClassifier(onnx_path, provider="cpu")
    assert (clf.input_size, clf.meta.mean, clf.meta.std) == (40, 0.4, 0.3)
    torch_report, _ = evaluate_checkpoint(tmp_path / "c" / "best.pt", [spec], "test", "none", tmp_path / "e1",
                                          "cpu", "best", 64, 48, str(tmp_path / "cache"), False)
    onnx_report, _ = evaluate_onnx(onnx_path, [spec], "test", "none", tmp_path / "e2", "cpu", 64, 48,
                                   str(tmp_path / "cache"), False)
    a, b = torch_report["tta"]["none"], onnx_report["tta"]["none"]
    # the same faces, preprocessed by torch (training) and by fer_core (inference) from the same contract
    agree = np.mean(np.array(a["confusion_matrix"]) == np.array(b["confusion_matrix"]))
    assert a["accuracy"] == pytest.approx(b["accuracy"], abs=2 / 48) and agree > 0.9
