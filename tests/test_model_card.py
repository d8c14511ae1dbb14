"""Model cards: ``--refresh`` re-renders a card after its file changed, taking new evaluation and speed figures
while keeping the title, the notes and where the model was trained."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from conftest import make_tiny_onnx
from training import model_card

REPO = Path(__file__).resolve().parents[1]


def _eval_folder(folder: Path, split: str, accuracy: float) -> Path:
    folder.mkdir(parents=True)
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    report = {"split": split, "data": "fer2013", "n": 100, "classes": classes,
              "tta": {"none": {"accuracy": accuracy, "macro_f1": 0.5,
                               "per_class": {c: {"recall": 0.5} for c in classes},
                               "confusion_matrix": [[1] * 7] * 7}}}
    (folder / "report.json").write_text(json.dumps(report))
    shutil.copyfile(REPO / "models" / "fer_realtime_confusion.png", folder / "confusion_matrix.png")
    return folder


def test_refresh_takes_new_figures_and_keeps_the_rest(tmp_path):
    model = make_tiny_onnx(tmp_path / "m.onnx")
    metrics = json.loads((REPO / "models" / "fer_realtime.json").read_text())
    metrics.update(model_file="m.onnx", hardware="Old CPU, 2 cores, no GPU", train_hardware=None, calibration=None)
    model.with_suffix(".json").write_text(json.dumps(metrics))
    model.with_suffix(".md").write_text(model_card.render(metrics, "a test model", ["first note"]))
    bench = tmp_path / "bench.json"
    row = {"status": "ok", "provider_used": "CPUExecutionProvider", "faces": 1, "fps": 123.4, "faces_per_s": 123.4,
           "detect_median_ms": 1.0, "preprocess_median_ms": 0.5, "inference_median_ms": 7.0,
           "total_median_ms": 8.5, "total_p95_ms": 9.9}
    bench.write_text(json.dumps({"system": {"platform": "test"}, "results": [row]}))
    args = argparse.Namespace(
        eval=[str(_eval_folder(tmp_path / "e_test", "test", 0.6453)), str(_eval_folder(tmp_path / "e_val", "val", 0.61))],
        eval_cmd="fer-eval --new", bench=str(bench), bench_cmd="fer-bench --new", cores=2, notes=["second note"])
    card = model_card.refresh(model, args).read_text()
    assert card.startswith("# m.onnx: a test model")
    assert "| 100 | none | 64.53% |" in card and "fer-eval --new" in card and "| 123.4 |" in card
    assert "first note" in card and "second note" in card
    saved = json.loads(model.with_suffix(".json").read_text())
    assert saved["train_hardware"] == "Old CPU, 2 cores, no GPU" and saved["hardware"].endswith("2 cores, no GPU")
    assert (tmp_path / "m_confusion.png").is_file()


def test_a_packed_stage_is_named_by_the_dataset_in_its_pack(tmp_path):
    """A window stage trained on ``packed=`` data shows the pack's dataset (from its report), not the final one."""
    run = tmp_path / "rt_atto112"
    run.mkdir()
    (run / "config.yaml").write_text("data:\n- packed=.device/pack/fer2013\n")
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "best_acc": 0.6, "seconds": 36.0,
                                                   "images_per_s": 3000.0}) + "\n")
    (run / "report.json").write_text(json.dumps({"data": "fer2013", "split": "test"}))
    assert model_card._run_summary(run, "ferplus_soft")["data"] == ["fer2013"]
    (run / "report.json").unlink()  # a stage cut short before its report: the model's data
    assert model_card._run_summary(run, "ferplus_soft")["data"] == ["ferplus_soft"]
