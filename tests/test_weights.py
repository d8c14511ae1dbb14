"""Weights files (training.weights) and their rebuild from ONNX (training.onnx_weights): a fp16 safetensors round
trip keeps the meta and the tensors, a model exported like the shipped ones (BatchNorm folded, temperature and
mirror averaging in the graph) comes back with the graph's own logits, and the shipped weights match the shipped
ONNX files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_core.model_meta import ModelMeta
from training.checkpoint import build_model_from_checkpoint
from training.models import create_model
from training.onnx_weights import graph_logits, main as onnx_weights_main, max_logit_diff, module_path, rebuild_state
from training.weights import WeightsError, load_weights, save_weights

REPO = Path(__file__).resolve().parents[1]
SIZE = 40


def _test_model(seed: int = 0) -> torch.nn.Module:
    """emonext_test with non-trivial STN and BatchNorm statistics (at init the STN is the identity)."""
    torch.manual_seed(seed)
    model = create_model("emonext_test", num_classes=7).eval()
    with torch.no_grad():
        model.stn.fc_loc[-1].weight.normal_(0, 0.01)
        for bn in (model.stn.localization[1], model.stn.localization[5]):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_(1, 0.1)
            bn.bias.normal_(0, 0.1)
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.normal_(0.5, 0.1)
    return model


def _inputs(n: int = 6) -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (n, 3, SIZE, SIZE)).astype(np.float32)


def test_round_trip_keeps_meta_and_tensors(tmp_path):
    model = _test_model()
    meta = ModelMeta(input_size=SIZE, model="emonext_test", data="fer2013", test_accuracy=0.5, extra={"a": "b"})
    path = save_weights(tmp_path / "m.safetensors", model.state_dict(), meta, {"reg_lambda": 0.5})
    ckpt = load_weights(path)
    assert ModelMeta.from_dict(ckpt["meta"]) == meta
    assert ckpt["config"] == {"model": "emonext_test", "model_kwargs": {"reg_lambda": 0.5}}
    state = model.state_dict()
    assert ckpt["model"].keys() == state.keys()
    for key, value in state.items():
        got = ckpt["model"][key]
        if value.is_floating_point():
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, value.half().float(), rtol=0, atol=0)
        else:
            assert torch.equal(got, value)
    rebuilt = build_model_from_checkpoint(ckpt)
    assert rebuilt.reg_lambda == 0.5
    with torch.no_grad():
        x = torch.from_numpy(_inputs())
        assert torch.allclose(rebuilt(x), model(x), atol=5e-3)
    assert path.stat().st_size < 2 * sum(v.numel() for v in state.values()) + 20_000  # float16


def test_load_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(bad)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(WeightsError, match="no 'fer.meta'"):
        load_weights(plain)


def test_module_path():
    assert module_path("/stages/stages.0/blocks/blocks.1/Mul") == "stages.0.blocks.1"
    assert module_path("/stn/localization/localization.4/Conv") == "stn.localization.4"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """emonext_test exported as fer-export does, then a temperature and mirror averaging built in (as shipped)."""
    import onnx

    from training.calibrate import fold_temperature
    from training.mirror_fold import fold_flip
    from training.onnx_graph import set_metadata, torch_export

    folder = tmp_path_factory.mktemp("onnx")
    model = _test_model()
    plain = folder / "plain.onnx"
    torch_export(model, plain, SIZE, 17)
    proto = onnx.load(str(plain))
    set_metadata(proto, ModelMeta(input_size=SIZE, model="emonext_test", data="fer2013").to_props())
    onnx.save(proto, str(plain))
    figures = {"test": {"before": {"ece": 0.1}, "after": {"ece": 0.05}}}
    fold_temperature(plain, folder / "t.onnx", 1.2, figures)
    fold_flip(folder / "t.onnx", folder / "tf.onnx")
    fold_temperature(folder / "tf.onnx", folder / "shipped.onnx", 0.8, figures)
    return model, folder / "shipped.onnx"


def test_rebuild_matches_the_graph(exported):
    model, path = exported
    rebuilt, meta, folded = rebuild_state(path)
    assert folded == ["stn.localization.0", "stn.localization.4"]  # the BatchNorms the exporter folded
    assert meta.temperature == 1.0 and meta.extra["source_tta"] == "flip"
    assert abs(float(meta.extra["source_temperature"]) - 0.96) < 1e-6
    x = _inputs()
    assert max_logit_diff(rebuilt, path, x) < 1e-4
    with torch.no_grad():  # the graph's classifier logits are the original model's
        np.testing.assert_allclose(graph_logits(path, x), model(torch.from_numpy(x)).numpy(), atol=1e-4)
    own = {k: v for k, v in model.state_dict().items() if "localization" not in k and not k.startswith("attn_reg")}
    for key, value in own.items():
        assert torch.allclose(rebuilt.state_dict()[key].float(), value.float(), atol=1e-6), key


def test_rebuild_command_writes_weights(exported, tmp_path, capsys):
    _, path = exported
    out = tmp_path / "w.safetensors"
    assert onnx_weights_main([str(path), "--out", str(out), "--check-faces", "8"]) == 0
    assert "max |logit difference|" in capsys.readouterr().out
    model = build_model_from_checkpoint(load_weights(out))
    assert max_logit_diff(model, path, _inputs()) < 2e-2  # float16 weights


def test_rebuild_refuses_a_foreign_graph(tmp_path):
    from tests.conftest import make_tiny_onnx

    path = make_tiny_onnx(tmp_path / "tiny.onnx")
    assert onnx_weights_main([str(path), "--out", str(tmp_path / "x.safetensors")]) == 2


@pytest.mark.parametrize("name", ["fer_realtime", "fer_ferplus"])
def test_shipped_weights_match_the_shipped_onnx(name, data_root):
    """The shipped fp16 weights give the shipped file's own classifier logits on real test faces."""
    weights, onnx_path = REPO / "models" / f"{name}.safetensors", REPO / "models" / f"{name}.onnx"
    ckpt = load_weights(weights)
    meta = ModelMeta.from_dict(ckpt["meta"])
    assert meta.model == "emonext_atto" and meta.input_size == 112 and meta.temperature == 1.0
    props = json.loads(json.dumps(meta.extra))
    assert props["source_onnx"] == f"{name}.onnx" and props["source_tta"] == "flip"
    from fer_core.preprocess import to_input
    import cv2

    files = sorted((data_root / "fer2013" / "test").glob("*/PrivateTest_*.jpg"))[:32]
    faces = np.stack([to_input(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), 112, meta.mean, meta.std) for f in files])
    model = build_model_from_checkpoint(ckpt)
    with torch.no_grad():
        ours = model(torch.from_numpy(faces)).numpy()
    theirs = graph_logits(onnx_path, faces)
    assert np.abs(ours - theirs).max() < 0.05
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("name", ["fer_realtime", "fer_ferplus"])
def test_cards_list_the_shipped_weights(name):
    import hashlib

    weights = REPO / "models" / f"{name}.safetensors"
    card = (REPO / "models" / f"{name}.md").read_text()
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"Weights: `{weights.name}` ({weights.stat().st_size / 1e6:.1f} MB" in card
    assert f"sha256 `{digest[:16]}...`" in card and f"fer-train --init {name}" in card
