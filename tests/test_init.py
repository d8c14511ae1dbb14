"""``fer-train --init`` (training.weights.init_model / init_settings): the same classes give the source's logits
exactly, other class names keep the matched classifier rows (synonyms count) and log one line, every kind of
source loads, bad sources give one clear error, and a tiny run fine-tunes from a weights file."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from fer_core.labels import FER2013_CLASSES, match_classes
from fer_core.model_meta import ModelMeta
from training.checkpoint import build_model_from_checkpoint, save_checkpoint
from training.cli import train_main
from training.config import ConfigError, build_config
from training.models import create_model
from training.weights import WeightsError, init_model, load_weights, read_source, save_weights

SIZE = 40


def _source(tmp_path: Path, labels: tuple[str, ...] = FER2013_CLASSES, name: str = "src.safetensors") -> Path:
    torch.manual_seed(0)
    model = create_model("emonext_test", num_classes=len(labels))
    with torch.no_grad():
        model.head.fc.bias.normal_()  # distinct rows, so a wrong mapping shows
    meta = ModelMeta(labels=list(labels), input_size=SIZE, model="emonext_test", data="fer2013")
    return save_weights(tmp_path / name, model.state_dict(), meta)


def _logits(model: torch.nn.Module) -> torch.Tensor:
    x = torch.linspace(-1, 1, 2 * 3 * SIZE * SIZE).reshape(2, 3, SIZE, SIZE)
    with torch.no_grad():
        return model.eval()(x)


def test_match_classes_by_synonym():
    assert match_classes(["angry", "sad", "happy"], ["anger", "sadness", "contempt", "Happiness"]) == [0, 1, None, 2]
    assert match_classes(["afraid", "surprised", "pain"], ["fear", "surprise", "pain", "disgusted"]) == [0, 1, 2, None]


def test_same_classes_reproduce_the_source_logits(tmp_path):
    path = _source(tmp_path)
    torch.manual_seed(123)  # another initialisation than the source's
    model = create_model("emonext_test", num_classes=7)
    line = init_model(model, path, FER2013_CLASSES)
    assert line.startswith("init from src.safetensors: 7 of 7 classes mapped (angry, disgust,")
    assert line.endswith("new: none; dropped: none")
    assert torch.equal(_logits(model), _logits(build_model_from_checkpoint(load_weights(path))))


def test_other_classes_keep_the_matched_rows(tmp_path, caplog):
    source_labels = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    path = _source(tmp_path, source_labels)
    source = load_weights(path)["model"]
    model = create_model("emonext_test", num_classes=3)
    fresh = model.head.fc.weight[2].detach().clone()
    with caplog.at_level(logging.INFO, logger="training.weights"):
        init_model(model, path, ("angry", "sad", "contempt"))
    assert [r.getMessage() for r in caplog.records] == [
        "init from src.safetensors: 2 of 3 classes mapped (angry<-anger, sad<-sadness), new: contempt; "
        "dropped: disgust, fear, happiness, surprise, neutral"]
    for row, src in ((0, 0), (1, 4)):
        assert torch.equal(model.head.fc.weight[row], source["head.fc.weight"][src])
        assert torch.equal(model.head.fc.bias[row], source["head.fc.bias"][src])
    assert torch.equal(model.head.fc.weight[2], fresh)  # the new class keeps its fresh initialisation
    assert torch.equal(model.stem[0].weight, source["stem.0.weight"])


def test_checkpoints_and_window_weights_load(tmp_path):
    from training.bundle import fp16_weights

    torch.manual_seed(1)
    raw, ema = create_model("emonext_test", 7).state_dict(), create_model("emonext_test", 7).state_dict()
    meta = ModelMeta(input_size=SIZE, model="emonext_test").to_dict()
    ckpt = {"model": raw, "ema": ema, "best_weights": "ema", "meta": meta,
            "config": {"model": "emonext_test", "model_kwargs": {}}}
    save_checkpoint(ckpt, tmp_path / "best.pt")
    assert torch.equal(read_source(tmp_path / "best.pt")["model"]["stem.0.weight"], ema["stem.0.weight"])
    fp16_weights(ckpt, tmp_path / "weights_fp16.pt")
    got = read_source(tmp_path / "weights_fp16.pt")["model"]["stem.0.weight"]
    assert got.dtype == torch.float32 and torch.allclose(got, ema["stem.0.weight"], atol=1e-3)


def test_bad_sources_give_one_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="Did you mean 'fer_realtime'"):
        read_source("fer_realtme")
    with pytest.raises(WeightsError, match="no such file or shipped model"):
        read_source(tmp_path / "nothing.safetensors")
    with pytest.raises(WeightsError, match="not an ONNX file"):
        read_source("elsewhere/model.onnx")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        read_source(tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="holds emonext_test weights, which do not fit"):
        init_model(create_model("ctan_test", 7), _source(tmp_path), FER2013_CLASSES)


def test_cli_bad_init_is_one_line(capsys):
    assert train_main(["--init", "fer_realtme", "--data", "fer2013=nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fer-train: error: --init fer_realtme") and "Did you mean" in err[0]


def test_init_settings_fill_only_what_is_unset(tmp_path):
    path = str(_source(tmp_path))
    cfg = build_config({"init": path, "data": ["fer2013=x"]})
    assert (cfg.model, cfg.img_size, cfg.lr, cfg.warmup_epochs, cfg.epochs) == ("emonext_test", SIZE, 3e-4, 0.5, 10)
    cfg = build_config({"init": path, "data": ["fer2013=x"]}, {"lr": 1e-3, "img_size": 64, "epochs": 2})
    assert (cfg.lr, cfg.img_size, cfg.epochs) == (1e-3, 64, 2)
    with pytest.raises(ConfigError, match="exclude each other"):
        build_config({"init": path, "pretrained": True})


def test_fer_train_init_fine_tunes(tmp_path, fer2013_root, caplog):
    """A 3-class folder set with other class names, one epoch from 7-class weights."""
    root = tmp_path / "faces"
    for folder, source in (("anger", "angry"), ("sadness", "sad"), ("contempt", "neutral")):
        (root / folder).mkdir(parents=True)
        for f in sorted((fer2013_root / "train" / source).glob("*.jpg"))[:10]:
            shutil.copy(f, root / folder / f.name)
    path = _source(tmp_path)
    args = ["--init", str(path), "--data", f"folder={root}", "--epochs", "1", "--batch-size", "8",
            "--project", str(tmp_path / "runs"), "--name", "ft", "--device", "cpu", "--no-progress", "--workers", "1"]
    with caplog.at_level(logging.INFO):
        assert train_main(args) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("init from")]
    assert lines == ["init from src.safetensors: 2 of 3 classes mapped (angry, sad), new: contempt; dropped: "
                     "disgust, fear, happy, surprise, neutral"]
    cfg = yaml.safe_load((tmp_path / "runs" / "ft" / "config.yaml").read_text())
    assert (cfg["model"], cfg["img_size"], cfg["lr"], cfg["init"]) == ("emonext_test", SIZE, 3e-4, str(path))


def test_shipped_fer_realtime_init_reproduces_it():
    from training.weights import shipped_weights

    if "fer_realtime" not in shipped_weights():
        pytest.skip("models/fer_realtime.safetensors not present")
    model = create_model("emonext_atto", num_classes=7)
    line = init_model(model, "fer_realtime", FER2013_CLASSES)
    assert line.startswith("init from fer_realtime: 7 of 7 classes mapped")
    reference = build_model_from_checkpoint(load_weights(shipped_weights()["fer_realtime"]))
    x = torch.zeros(1, 3, 112, 112).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference(x))
