"""Models and layers: build, forward/backward, STN identity, block shapes, regulariser, pretrained loading, ONNX."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.layers import (
    AttentionRegularizer,
    BasicRFB,
    EfficientAttention,
    ShuffleAttention,
    SpatialTransformer,
    attention_variance,
    channel_shuffle,
)
from training.layers.stn import adaptive_avg_pool2d, affine_grid
from training.models import PretrainedWeightsError, create_model, list_models, model_info

TEST_MODELS = ["emonext_test", "ctan_test"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_list_models_has_every_size():
    names = list_models()
    for size in ("atto", "femto", "pico", "nano", "tiny", "small", "base", "large", "xlarge", "test"):
        assert f"emonext_{size}" in names
    assert "ctan_tiny" in names and "ctan_test" in names


def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError, match=r"(?i)did you mean 'emonext_tiny'.*Valid names: .*ctan_tiny"):
        create_model("emonext_tiyn", 7)


@pytest.mark.parametrize("size", [48, 64])
@pytest.mark.parametrize("name", TEST_MODELS + ["ctan_test+rfb"])
def test_test_variants_forward_backward(name, size):
    kwargs = {"use_rfb": True} if name.endswith("+rfb") else {}
    model = create_model(name.split("+")[0], num_classes=7, **kwargs).train()
    x = torch.randn(2, 3, size, size)
    logits, aux = model(x, return_aux=True)
    assert logits.shape == (2, 7) and aux.shape == ()
    (F.cross_entropy(logits, torch.arange(2)) + aux).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert model(x).shape == (2, 7)  # plain forward returns logits only
    feats = model.forward_features(x)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)


def test_emonext_aux_is_lambda_times_regulariser():
    model = create_model("emonext_test", 5, reg_lambda=2.5).eval()
    x = torch.randn(6, 3, 48, 48)
    with torch.no_grad():
        _, aux = model(x, return_aux=True)
        reg = model.attn_reg(model.forward_head(model.forward_features(x), pre_logits=True))
    assert reg > 0
    assert torch.allclose(aux, 2.5 * reg)
    _, aux1 = model(x[:1], return_aux=True)
    assert aux1.item() == pytest.approx(0.0, abs=1e-12)  # attention across a batch of one is uniform


def test_ctan_aux_is_zero_and_train_defaults():
    ctan = create_model("ctan_test", 7)
    assert ctan(torch.randn(2, 3, 48, 48), return_aux=True)[1].item() == 0.0
    assert ctan.default_train_cfg == {"class_weighted": True, "ema": True}
    assert create_model("emonext_test", 7).default_train_cfg["label_smoothing"] > 0


def test_drop_path_rate_kwarg():
    for name, default in (("emonext_test", 0.1), ("ctan_test", 0.3)):
        rates = [m.drop_prob for m in create_model(name, 7).modules() if type(m).__name__ == "DropPath"]
        assert max(rates) == pytest.approx(default)
        rates = [m.drop_prob for m in create_model(name, 7, drop_path_rate=0.5).modules()
                 if type(m).__name__ == "DropPath"]
        assert max(rates) == pytest.approx(0.5)


# --- STN -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [48, 64])
def test_stn_is_identity_at_init(size):
    stn = SpatialTransformer().eval()
    x = torch.rand(3, 3, size, size) * 2 - 1  # the model's input range (mean 0.5, std 0.5 normalisation)
    with torch.no_grad():
        assert torch.equal(stn.theta(x), torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3))
        # grid_sample's float32 coordinate rounding grows with the size (same with F.affine_grid)
        assert (stn(x) - x).abs().max() < (1e-5 if size == 48 else 3e-5)


def test_emonext_stn_identity_inside_model():
    model = create_model("emonext_test", 7).eval()
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        assert (model.stn(x) - x).abs().max() < 1e-5


def test_stn_helpers_match_torch():
    x = torch.randn(2, 10, 52, 37)
    for size in (1, 4, 8, 13, 60):
        assert torch.allclose(adaptive_avg_pool2d(x, size), F.adaptive_avg_pool2d(x, size), atol=1e-5)
    theta = torch.randn(3, 2, 3)
    assert torch.allclose(affine_grid(theta, 17, 23), F.affine_grid(theta, (3, 1, 17, 23), align_corners=True),
                          atol=1e-5)


def test_stn_learns_a_shift():
    stn = SpatialTransformer()
    with torch.no_grad():
        stn.fc_loc[-1].bias.copy_(torch.tensor([1.0, 0, 0.5, 0, 1.0, 0]))  # sample 0.5 (normalised) to the right
    x = torch.arange(33.0).repeat(1, 3, 33, 1)  # value = column index
    out = stn.eval()(x)
    assert torch.allclose(out[0, 0, 10, :8], x[0, 0, 10, 8:16], atol=1e-3)


# --- blocks -------------------------------------------------------------------------------------------------

def test_se_efficient_shuffle_rfb_shapes():
    model = create_model("emonext_test", 7)
    se = model.stages[1].downsample[-1]
    assert type(se).__name__ == "SEModule" and se.fc1.out_channels == 1  # 16 channels / reduction 16
    with torch.device("meta"):
        assert create_model("emonext_tiny", 7).stages[3].downsample[-1].fc1.out_channels == 768 // 16
    x = torch.randn(2, 64, 5, 5)
    assert se(torch.randn(2, 16, 6, 6)).shape == (2, 16, 6, 6)
    assert EfficientAttention(64)(x).shape == x.shape  # behaviour: test_efficient_attention_branches
    assert ShuffleAttention(64, groups=8)(x).shape == x.shape
    assert ShuffleAttention(768, groups=64)(torch.randn(1, 768, 2, 2)).shape == (1, 768, 2, 2)
    assert BasicRFB(96, 96)(torch.randn(2, 96, 12, 12)).shape == (2, 96, 12, 12)
    assert BasicRFB(8, 8)(torch.randn(2, 8, 12, 12)).shape == (2, 8, 12, 12)
    with pytest.raises(ValueError, match="divisible"):
        ShuffleAttention(64, groups=64)


def test_efficient_attention_branches():
    """Hand-computed: the fuse picks the global branch (ECA with a zero kernel gates by sigmoid(0) = 0.5), then
    the local branch (depthwise convs that pass the centre pixel: silu(silu(x)))."""
    att = EfficientAttention(4).eval()
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        att.global_branch.conv.weight.zero_()
        att.fuse.weight.zero_()
        att.fuse.bias.zero_()
        att.fuse.weight[:, :4, 0, 0] = torch.eye(4)
        assert torch.allclose(att(x), 0.5 * x, atol=1e-6)
        att.fuse.weight.zero_()
        att.fuse.weight[:, 4:, 0, 0] = torch.eye(4)
        for conv in (att.local_branch[0], att.local_branch[2]):
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[:, 0, 1, 1] = 1.0
        silu = torch.nn.functional.silu
        assert torch.allclose(att(x), silu(silu(x)), atol=1e-6)


def test_basic_rfb_shortcut_scale_and_receptive_fields():
    rfb = BasicRFB(8, 8).eval()
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        for m in rfb.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
        rfb.shortcut[0].weight[:, :, 0, 0] = torch.eye(8)
        eps = rfb.shortcut[1].eps
        assert torch.allclose(rfb(x), torch.relu(x / (1 + eps) ** 0.5), atol=1e-5)  # branches off: relu(shortcut)
        # receptive fields: an impulse through all-ones kernels spreads 1, 3 and 5 pixels (dilations 1, 2, 3)
        impulse = torch.zeros(1, 8, 21, 21)
        impulse[0, :, 10, 10] = 1.0
        for m in rfb.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0)
        reach = []
        for branch in (rfb.branch0, rfb.branch1, rfb.branch2):
            rows = torch.nonzero(branch(impulse)[0].abs().sum(0).sum(1) > 1e-6).flatten()
            reach.append(int(rows.max() - 10))
        assert reach == [1, 3, 5]


def test_channel_shuffle_interleaves():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_shuffle_attention_at_init_gates_everything_by_sigmoid_1():
    # weights 0, biases 1: every gate is sigmoid(1), then channels are shuffled
    x = torch.randn(1, 16, 3, 3)
    out = ShuffleAttention(16, groups=2)(x)
    assert torch.allclose(out, channel_shuffle(x * torch.sigmoid(torch.tensor(1.0)), 2), atol=1e-6)


# --- regulariser --------------------------------------------------------------------------------------------

def test_attention_variance_hand_computed():
    w = torch.tensor([[0.9, 0.1], [0.3, 0.7]])  # mean 0.5; deviations .4 -.4 -.2 .2
    assert attention_variance(w).item() == pytest.approx((0.16 + 0.16 + 0.04 + 0.04) / 4)


def test_attention_regulariser_hand_computed():
    reg = AttentionRegularizer(2)
    with torch.no_grad():
        for lin in (reg.query, reg.key):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # already zero-mean, unit-variance rows: LayerNorm keeps them
    # scores = x x^T / sqrt(2) = [[2, -2], [-2, 2]] / sqrt(2); softmax row = [a, 1 - a]; mean weight 0.5
    a = 1 / (1 + math.exp(-4 / math.sqrt(2)))
    expected = (a - 0.5) ** 2
    assert reg.attention(x)[0, 0].item() == pytest.approx(a, abs=1e-4)
    assert reg(x).item() == pytest.approx(expected, abs=1e-4)


# --- sizes, params, FLOPs -----------------------------------------------------------------------------------

def test_full_size_factories_build_with_plausible_params():
    params = {}
    for name in list_models():
        with torch.device("meta"):  # construct only: no memory, no init cost
            params[name] = sum(p.numel() for p in create_model(name, 7).parameters())
    assert 27e6 < params["emonext_tiny"] < 31e6
    assert 27e6 < params["ctan_tiny"] < 31e6
    assert 3e6 < params["emonext_atto"] < 4.5e6
    order = ["emonext_atto", "emonext_femto", "emonext_pico", "emonext_nano", "emonext_tiny",
             "emonext_small", "emonext_base", "emonext_large", "emonext_xlarge"]
    assert [params[n] for n in order] == sorted(params[n] for n in order)
    assert params["emonext_xlarge"] > 300e6


def test_model_info_flops_scale_with_resolution():
    a, b = model_info("emonext_tiny", 112), model_info("emonext_tiny", 224)
    assert a["params"] == b["params"] == pytest.approx(29.1e6, rel=0.02)
    assert 8.0 < b["gflops"] < 10.0  # ConvNeXt-T: 4.5 GMACs = 9 GFLOPs at 224 px
    assert b["gflops"] == pytest.approx(4 * a["gflops"], rel=0.1)
    assert b["gmacs"] == pytest.approx(b["gflops"] / 2)
    ctan = model_info("ctan_tiny", 224)  # a (meta-device) forward of the full-size CTAN: shapes fit at 64 groups
    assert 8.0 < ctan["gflops"] < 10.0


# --- pretrained weights -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def atto_state() -> dict:
    """A randomly initialised timm ConvNeXt-Atto state dict (same format as timm's ImageNet weights)."""
    import timm

    return timm.create_model("convnext_atto", pretrained=False).state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_path_loads_timm_convnext(tmp_path, suffix, atto_state):
    state = atto_state
    path = tmp_path / f"atto{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    model = create_model("emonext_atto", 7, pretrained_path=path)
    own = model.state_dict()
    for key in ("stem.0.weight", "stages.2.blocks.5.mlp.fc1.weight", "stages.3.downsample.1.weight",
                "head.norm.weight"):
        assert torch.equal(own[key], state[key]), key
    assert own["head.fc.weight"].shape == (7, 320)  # the 1000-class classifier is skipped


def test_pretrained_path_takes_the_best_weights_of_a_fer_train_checkpoint(tmp_path):
    source = create_model("emonext_test", 7)
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in source.state_dict().items()}
    path = tmp_path / "best.pt"
    for best in ("raw", "ema"):
        torch.save({"model": source.state_dict(), "ema": ema, "best_weights": best}, path)
        model = create_model("emonext_test", 8, pretrained_path=path)  # another class count: head skipped
        expected = ema if best == "ema" else source.state_dict()
        assert torch.equal(model.state_dict()["stem.0.weight"], expected["stem.0.weight"]), best
        assert model.state_dict()["head.fc.weight"].shape[0] == 8


def test_pretrained_path_wrong_size_and_missing_file(tmp_path, atto_state):
    path = tmp_path / "atto.pth"
    torch.save({"model": atto_state}, path)  # wrapped like a checkpoint
    with pytest.raises(PretrainedWeightsError, match="wrong shape.*another ConvNeXt size"):
        create_model("emonext_test", 7, pretrained_path=path)
    with pytest.raises(PretrainedWeightsError, match="not found"):
        create_model("emonext_atto", 7, pretrained_path=tmp_path / "nope.pth")


def test_pretrained_hub_offline_error_names_hub_and_path_option(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast instead of retrying
    with pytest.raises(PretrainedWeightsError, match=r"(?s)convnext_atto\.d2_in1k.*huggingface\.co.*--pretrained-path"):
        create_model("emonext_atto", 7, pretrained=True)
    with pytest.raises(PretrainedWeightsError, match="no ImageNet weights"):
        create_model("emonext_test", 7, pretrained=True)


# --- ONNX ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TEST_MODELS)
def test_onnx_export_matches_torch(tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    from training.export import export_onnx

    model = create_model(name, 7).eval()
    ckpt = {"model": model.state_dict(), "ema": None, "config": {"model": name, "img_size": 48},
            "meta": {"labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], "input_size": 48,
                     "mean": 0.5, "std": 0.5, "gray": True, "equalize": True, "native_size": 48, "model": name,
                     "data": "fer2013", "test_accuracy": None}}
    torch.save(ckpt, tmp_path / "best.pt")
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(tmp_path / "best.pt", path, weights="raw", verify_images=4, progress=False)  # the project's
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
