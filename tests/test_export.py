"""fer-export: the written ONNX model against PyTorch (fp32, fp16, int8), its metadata, and the CLI's error path.

The tiny models are trained for a few steps on the real FER2013 faces they are then verified on, so their
predictions are clear (a random model's near-tied logits would make top-1 agreement a coin toss).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import make_tiny_onnx  # noqa: E402
from fer_core.labels import FER2013_CLASSES  # noqa: E402
from fer_core.model_meta import ModelMeta  # noqa: E402
from fer_core.preprocess import to_input  # noqa: E402
from training import export, onnx_graph  # noqa: E402
from training.cli import export_main as main  # noqa: E402
from training.export import VerificationError, export_onnx  # noqa: E402

SIZE = 32  # model input side: small keeps the CPU training below fast
N_FACES = 100  # FER2013 faces per split: trained on and verified with (test split), calibration (train split)
STEPS = 80  # enough to fit the 100 faces with clear margins (smallest top-1 margin > 2 logits)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread is ~10x faster than two fighting over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces(fer2013_root: Path) -> dict[str, np.ndarray]:
    """Real FER2013 faces through the shared preprocessing: test split (x, y) and train split (calib)."""
    from training.data import load_data

    data = load_data([f"fer2013={fer2013_root}"], subset=N_FACES, progress=False)
    prep = lambda images: np.stack([to_input(img, SIZE) for img in images])  # noqa: E731
    return {"x": prep(data.test.images), "y": data.test.labels, "calib": prep(data.train.images)}


def _checkpoint(name: str, raw: dict, ema: dict | None, test_accuracy: float | None = None) -> dict:
    """A checkpoint dict laid out as training writes it (see DESIGN.md / training.checkpoint)."""
    meta = dict(labels=list(FER2013_CLASSES), input_size=SIZE, mean=0.5, std=0.5, gray=True, equalize=True,
                native_size=48, model=name, data="fer2013", test_accuracy=test_accuracy)
    return {"model": raw, "ema": ema, "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 1, "best_acc": 0.0,
            "rng": {}, "config": {"model": name, "img_size": SIZE}, "meta": meta}


@pytest.fixture(scope="module", params=["emonext_test", "ctan_test"])
def trained(request, faces, tmp_path_factory) -> dict:
    """A tiny model trained for a few steps on the verification faces, saved as ``best.pt`` with the trained
    weights as EMA and the untrained ones as raw, plus a ``report.json`` next to it."""
    from training.models import create_model

    name = request.param
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(FER2013_CLASSES))
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.from_numpy(faces["x"]), torch.from_numpy(faces["y"])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(STEPS):
        idx = torch.randint(0, len(x), (32,))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    run = tmp_path_factory.mktemp(f"run_{name}")
    torch.save(_checkpoint(name, raw, model.state_dict()), run / "best.pt")
    report = {"model": name, "split": "test", "classes": list(FER2013_CLASSES),
              "tta": {"none": {"accuracy": 0.625}, "tencrop": {"accuracy": 0.65}}}
    (run / "report.json").write_text(json.dumps(report))
    return {"name": name, "ckpt": run / "best.pt", "model": model, "raw": raw}


@pytest.fixture(scope="module")
def fp32_export(trained, faces, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("models") / f"{trained['name']}.onnx"
    return out, export_onnx(trained["ckpt"], out, verify_faces=faces["x"], progress=False)


def _torch_logits(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def test_fp32_export_matches_torch(trained, faces, fp32_export):
    out, result = fp32_export
    fp32 = result["verify"]["fp32"]
    print(f"{trained['name']} fp32: {fp32}")
    assert result["passed"] and result["weights"] == "ema" and result["precision"] == "fp32"
    assert fp32["images"] == N_FACES and fp32["max_abs_diff"] <= 1e-3
    # independent check at other batch sizes (dynamic batch axis), against the EMA (= trained) weights
    for batch in (faces["x"][:1], faces["x"][:7]):
        np.testing.assert_allclose(_ort_logits(out, batch), _torch_logits(trained["model"], batch), atol=1e-3)

    model = onnx.load(str(out))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (outp,) = model.graph.input, model.graph.output
    assert (inp.name, outp.name) == ("input", "logits")
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE]
    if trained["name"].startswith("emonext"):
        assert "GridSample" in {n.op_type for n in model.graph.node}  # the Spatial Transformer is in the graph

    assert json.loads(Path(f"{out}.export.json").read_text()) == json.loads(json.dumps(result))
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, f"{out.name}.export.json",
                                                                   out.with_suffix(".safetensors").name])


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_agrees_with_torch(trained, faces, tmp_path, precision):
    out = tmp_path / f"{trained['name']}_{precision}.onnx"
    result = export_onnx(trained["ckpt"], out, fp16=precision == "fp16", int8=precision == "int8",
                         verify_faces=faces["x"], calib_faces=faces["calib"], progress=False)
    figures = result["verify"][precision]
    print(f"{trained['name']} {precision}: {figures}")
    assert figures["images"] == N_FACES and figures["top1_agreement"] >= 0.99 and result["passed"]
    # and the logits themselves stay close (their std is ~2 here): on average within 0.02 (fp16) / 0.1 (int8)
    assert figures["mean_abs_diff"] < (0.02 if precision == "fp16" else 0.1)
    agreement = np.mean(_ort_logits(out, faces["x"]).argmax(1) == _torch_logits(trained["model"], faces["x"]).argmax(1))
    assert agreement >= 0.99

    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io stays float32
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ops = {n.op_type for n in model.graph.node}
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    meta, missing = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    assert not missing and meta.extra["export_precision"] == precision
    from fer_core.session import EmotionClassifier

    probs = EmotionClassifier(out, provider="cpu").predict_batch(faces["x"][:5])
    assert probs.shape == (5, len(FER2013_CLASSES)) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_metadata_round_trip(trained, fp32_export):
    out, _ = fp32_export
    model = onnx.load(str(out))
    meta, missing = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    assert missing == []
    assert meta.labels == list(FER2013_CLASSES)
    assert (meta.input_size, meta.mean, meta.std, meta.gray, meta.equalize, meta.native_size) == (
        SIZE, 0.5, 0.5, True, True, 48)
    assert (meta.model, meta.data) == (trained["name"], "fer2013")
    assert meta.test_accuracy == pytest.approx(0.625)  # from report.json (no TTA): the checkpoint meta had None
    assert meta.extra["export_weights"] == "ema" and meta.extra["source_checkpoint"] == "best.pt"
    assert model.producer_name == "fer-export"


def test_session_gives_torch_probabilities(trained, faces, fp32_export):
    from fer_core.session import EmotionClassifier

    out, _ = fp32_export
    clf = EmotionClassifier(out, provider="cpu")
    assert clf.labels == list(FER2013_CLASSES) and clf.input_size == SIZE
    probs = clf.predict_batch(faces["x"])
    expected = torch.softmax(torch.from_numpy(_torch_logits(trained["model"], faces["x"])), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_raw_weights_and_checkpoint_without_ema(trained, tmp_path):
    from training.models import create_model

    raw_model = create_model(trained["name"], num_classes=len(FER2013_CLASSES))
    raw_model.load_state_dict(trained["raw"])
    raw_model.eval()
    x = np.random.default_rng(1).uniform(-1, 1, (4, 3, SIZE, SIZE)).astype(np.float32)

    out = tmp_path / "raw.onnx"
    result = export_onnx(trained["ckpt"], out, weights="raw", verify_images=8, progress=False)
    assert result["weights"] == "raw" and "random" in result["verify_data"]
    np.testing.assert_allclose(_ort_logits(out, x), _torch_logits(raw_model, x), atol=1e-3)

    no_ema = tmp_path / "no_ema.pt"
    torch.save(_checkpoint(trained["name"], trained["raw"], None, test_accuracy=0.5), no_ema)
    result = export_onnx(no_ema, tmp_path / "no_ema.onnx", verify_images=8, progress=False)
    assert result["weights"] == "raw" and any("no EMA" in n for n in result["notes"])
    assert result["test_accuracy"] == 0.5  # the checkpoint's own meta wins over a report


def test_cli_with_data_specs(trained, fer2013_root, tmp_path, capsys):
    """The CLI path: faces read with load_data from --calib-data (verification defaults to the same data)."""
    out = tmp_path / "cli_int8.onnx"
    rc = main(["--checkpoint", str(trained["ckpt"]), "--out", str(out), "--int8", "--calib-data",
               f"fer2013={fer2013_root}", "--verify-images", str(N_FACES), "--calib-images", str(N_FACES),
               "--no-progress"])
    text = capsys.readouterr().out
    print(text)
    assert rc == 0 and out.is_file()
    assert "int8" in text and "top-1 agreement" in text and f"on {N_FACES} images" in text


def test_failed_verification_leaves_nothing(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "FP32_MAX_ABS_DIFF", -1.0)  # impossible to meet: exercises the failure path
    out = tmp_path / "models" / "bad.onnx"
    with pytest.raises(VerificationError, match="verification failed"):
        export_onnx(trained["ckpt"], out, verify_images=4, progress=False)
    assert main(["--checkpoint", str(trained["ckpt"]), "--out", str(out), "--verify-images", "4", "--no-progress"]) == 1
    assert "verification failed" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []  # no model, no report, no temporary files


def test_affine_grid_exports_at_opset_17(tmp_path):
    """F.affine_grid has no ONNX op before opset 20: fer-export writes it as a MatMul graph there."""
    import torch.nn.functional as F

    class Warp(torch.nn.Module):
        def __init__(self, align_corners: bool):
            super().__init__()
            self.align_corners = align_corners

        def forward(self, x):
            theta = torch.stack([x.mean((1, 2, 3)) * 0.2 + 0.9, x.std((1, 2, 3)) * 0.1, x[:, 0, 0, :3].mean(1) * 0.1],
                                dim=1)
            theta = torch.stack([theta, theta.roll(1, dims=1)], dim=1)  # (B, 2, 3)
            grid = F.affine_grid(theta, list(x.shape), align_corners=self.align_corners)
            return F.grid_sample(x, grid, align_corners=self.align_corners).flatten(1)[:, :7]

    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 20, 20)).astype(np.float32)
    for align in (False, True):
        for opset in (17, 20):
            path = tmp_path / f"warp_{align}_{opset}.onnx"
            onnx_graph.torch_export(Warp(align).eval(), path, 20, opset)
            ops = {n.op_type for n in onnx.load(str(path)).graph.node}
            assert ("AffineGrid" in ops) == (opset >= 20)
            np.testing.assert_allclose(_ort_logits(path, x), _torch_logits(Warp(align), x), atol=1e-5)


@pytest.mark.parametrize("case", ["missing", "garbage", "random_bytes", "onnx", "not_a_checkpoint", "out_under_file",
                                  "out_not_onnx", "int8_no_calib"])
def test_cli_errors(case, tmp_path, capsys):
    ckpt, out, extra = tmp_path / "best.pt", tmp_path / "m.onnx", []
    if case == "garbage":
        ckpt.write_text("not a checkpoint")
    elif case == "random_bytes":
        ckpt.write_bytes(np.random.default_rng(0).bytes(100))
    elif case == "onnx":
        ckpt = make_tiny_onnx(tmp_path / "model.onnx")
    elif case == "not_a_checkpoint":
        torch.save({"weights": torch.zeros(3)}, ckpt)
    elif case != "missing":
        torch.save(_checkpoint("ctan_test", {}, None), ckpt)
    if case == "out_under_file":
        (tmp_path / "afile").write_text("")
        out = tmp_path / "afile" / "m.onnx"
    elif case == "out_not_onnx":
        out = tmp_path / "m.txt"
    elif case == "int8_no_calib":
        extra = ["--int8"]
    assert main(["--checkpoint", str(ckpt), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    print(err)
    assert err.startswith("fer-export: error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_console_script_error(tmp_path):
    script = shutil.which("fer-export", path=os.path.dirname(sys.executable))
    cmd = [script] if script else [sys.executable, "-c", "import sys; from training.cli import export_main; "
                                                        "sys.exit(export_main())"]
    proc = subprocess.run([*cmd, "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("fer-export: error: checkpoint not found")
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "fer-export --checkpoint runs/" in text and "--int8 --calib-data fer2013=" in text



def _three_layer_onnx(path: Path) -> Path:
    """A small float32 model: conv 3->16, conv 16->32 (most of the weights), global pool, linear 32->7."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"conv_w": (16, 3, 3, 3), "mid_w": (32, 16, 3, 3), "fc_w": (32, 7)}
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)
             for name, shape in weights.items()]
    inits.append(numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "conv_b"))
    nodes = [helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "mid_w"], ["m"], name="mid", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["m"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc_w"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "three", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 7])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="fer.model", value='"three"')
    onnx.save(model, str(path))
    return path


def test_store_fp16_halves_size_and_keeps_outputs(tmp_path):
    """The middle conv (the first and last compute layers stay float32) is stored as float16: the file about
    halves, the outputs stay within 1e-3 (rounded once, float32 arithmetic), the metadata stays."""
    src, dst = _three_layer_onnx(tmp_path / "three.onnx"), tmp_path / "three_fp16.onnx"
    assert onnx_graph.store_fp16_file(src, dst) == 1
    stored = onnx.load(str(dst))
    assert onnx_graph.fp16_stored(stored) and not onnx_graph.fp16_stored(onnx.load(str(src)))
    assert {p.key: p.value for p in stored.metadata_props} == {"fer.model": '"three"', "weights_storage": "fp16"}
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    x = np.random.default_rng(2).uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32)
    ref, out = _ort_logits(src, x), _ort_logits(dst, x)
    assert np.abs(ref - out).max() <= 1e-3 and not np.array_equal(ref, out)
    assert onnx_graph.store_fp16(stored) == 0  # stored already: nothing more to convert


def test_export_with_fp16_storage(trained, faces, tmp_path):
    out = tmp_path / f"{trained['name']}_stored.onnx"
    result = export_onnx(trained["ckpt"], out, fp16_storage=True, verify_faces=faces["x"], progress=False)
    checks = result["verify"]
    assert result["passed"] and result["precision"] == "fp32" and result["fp16_storage"]
    assert checks["fp16_storage"]["max_abs_diff"] <= export.FP16_STORAGE_MAX_ABS_DIFF
    assert checks["fp16_storage"]["top1_agreement"] >= 0.99
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert onnx_graph.fp16_stored(model) and props["weights_storage"] == "fp16" and props["fer.labels"]
    with pytest.raises(export.ExportError, match="fp16-storage"):
        export_onnx(trained["ckpt"], tmp_path / "x.onnx", fp16=True, fp16_storage=True, progress=False)
