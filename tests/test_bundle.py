"""The GPU window's return format (training/bundle.py): float16, int8 for what does not fit, checked parts."""

from __future__ import annotations

import io
import tarfile

import pytest
import torch

from training.bundle import (FP16, INT8, BundleError, choose_weights, dequantize_int8, load_travel_weights, pack,
                             quantize_int8, read_bundle)
from training.checkpoint import save_checkpoint
from training.models import create_model


def test_int8_round_trip_is_within_half_a_step_per_output_channel():
    torch.manual_seed(0)
    state = {"conv.weight": torch.randn(8, 4, 3, 3) * torch.logspace(-3, 0, 8).view(8, 1, 1, 1),
             "norm.bias": torch.randn(8), "steps": torch.tensor(5)}
    q, scales = quantize_int8(state)
    assert q["conv.weight"].dtype == torch.int8 and scales["conv.weight"].shape == (8, 1, 1, 1)
    assert q["norm.bias"].dtype == torch.float16 and q["steps"].dtype == torch.int64
    back = dequantize_int8(q, scales)
    step = scales["conv.weight"].float()
    assert ((back["conv.weight"] - state["conv.weight"]).abs() <= step / 2 + 1e-3 * step).all()
    # per channel: the smallest channel keeps its precision instead of rounding to zero
    assert back["conv.weight"][0].abs().max() > 0


def test_int8_weights_keep_a_model_s_answers(tmp_path):
    torch.manual_seed(0)
    model = create_model("emonext_test", num_classes=7).eval()
    x = torch.randn(4, 3, 64, 64)
    q, scales = quantize_int8(model.state_dict())
    copy = create_model("emonext_test", num_classes=7).eval()
    copy.load_state_dict(dequantize_int8(q, scales))
    with torch.no_grad():
        ref, got = model(x), copy(x)
    assert (ref.argmax(1) == got.argmax(1)).all()
    assert (ref - got).abs().max() < 0.05 * ref.abs().max()


def _job(work, name, mib):
    (work / name).mkdir(parents=True)
    weights = {"w": torch.zeros(int(mib * 2**20 / 2), dtype=torch.float16).view(-1, 64)}
    save_checkpoint({"model": weights, "meta": {}, "config": {}}, work / name / FP16)


def test_lowest_priorities_travel_as_int8_then_not_at_all(tmp_path):
    for name, mib in (("first", 2), ("second", 4), ("third", 4)):
        _job(tmp_path, name, mib)
    names = ["first", "second", "third"]
    assert choose_weights(tmp_path, names, 12 * 2**20) == {"first": FP16, "second": FP16, "third": FP16}
    assert choose_weights(tmp_path, names, 9 * 2**20) == {"first": FP16, "second": FP16, "third": INT8}
    assert choose_weights(tmp_path, names, 7 * 2**20) == {"first": FP16, "second": INT8, "third": INT8}
    assert choose_weights(tmp_path, names, 3 * 2**20) == {"first": FP16, "second": None, "third": None}


def test_packed_int8_weights_come_home_as_float32(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    for name, mib in (("first", 2), ("second", 4)):
        _job(work, name, mib)
    summary = pack(out, work, ["first", "second"], {"jobs": {}}, 5 * 2**20, 2**20)
    packed = {(c["job"], c["file"]) for c in summary["bundle"]["contents"] if c["packed"]}
    assert packed == {("first", FP16), ("second", INT8)}
    summary, bundle = read_bundle(out)
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        tar.extractall(tmp_path / "home")
    ckpt = load_travel_weights(tmp_path / "home" / "second" / INT8)
    assert ckpt["model"]["w"].dtype == torch.float32 and "scales" not in ckpt
    (out / summary["bundle"]["parts"][0]["file"]).write_bytes(b"damaged")
    with pytest.raises(BundleError, match="sha256"):
        read_bundle(out)


def test_ingest_refuses_a_job_the_window_did_not_run(tmp_path):
    from training.ingest import ingest

    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    _job(work, "rt_atto", 1)
    pack(out, work, ["rt_atto"], {"jobs": {"rt_atto": {}}}, 4 * 2**20, 2**20)
    with pytest.raises(BundleError, match="no job fp_atto in this window .jobs: rt_atto"):
        ingest(out, ["fer2013=unused"], tmp_path / "runs", jobs=["fp_atto"])
