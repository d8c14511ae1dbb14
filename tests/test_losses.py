"""Losses: CTAN class weights against the paper, hard/soft cross-entropy, distillation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.losses import FerLoss, class_weights, distillation_loss

# All 35,887 FER2013 images per class (angry, disgust, fear, happy, sad, surprise, neutral).
FER2013_COUNTS = [4953, 547, 5121, 8989, 6077, 4002, 6198]


def test_class_weights_match_ctan_table_2():
    assert sum(FER2013_COUNTS) == 35887
    assert 35887 / 4953 == pytest.approx(7.2455, abs=1e-4)  # Angry before normalisation
    w = class_weights(FER2013_COUNTS)
    assert w.dtype == torch.float32 and w.shape == (7,)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert w[0].item() == pytest.approx(0.0693, abs=5e-5)  # Angry after normalisation
    assert int(w.argmax()) == 1 and int(w.argmin()) == 3  # disgust rarest, happy most common


def test_class_weights_zero_count_and_bad_input():
    w = class_weights([10, 0, 30])
    assert w[1] == 0 and w.sum().item() == pytest.approx(1.0)
    assert w[0].item() == pytest.approx(0.75)  # 4 and 4/3 -> 0.75, 0.25
    with pytest.raises(ValueError):
        class_weights([])
    with pytest.raises(ValueError):
        class_weights([3, -1])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_one_hot_equals_hard(smoothing, weighted):
    torch.manual_seed(0)
    logits = torch.randn(8, 7)
    target = torch.randint(0, 7, (8,))
    weight = class_weights(FER2013_COUNTS) if weighted else None
    loss = FerLoss(weight, smoothing)
    hard = loss(logits, target)
    assert hard.item() == pytest.approx(F.cross_entropy(logits, target, weight=weight,
                                                        label_smoothing=smoothing).item(), rel=1e-6)
    assert loss(logits, F.one_hot(target, 7).float()).item() == pytest.approx(hard.item(), rel=1e-5)


def test_soft_targets_are_mixtures():
    torch.manual_seed(1)
    logits = torch.randn(4, 3, requires_grad=True)
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.1, 0.9]])
    loss = FerLoss()(logits, soft)
    expected = -(soft * F.log_softmax(logits, 1)).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert logits.grad is not None
    with pytest.raises(ValueError, match="shape"):
        FerLoss()(logits, soft[:, :2])


def test_loss_weight_is_a_buffer():
    loss = FerLoss(class_weights([1, 2, 3])).to(torch.float64)  # moves with .to(device/dtype)
    assert loss.weight.dtype == torch.float64 and "weight" in dict(loss.named_buffers())
    assert loss(torch.randn(2, 3), torch.tensor([0, 2])).dtype == torch.float32


def test_distillation_loss():
    torch.manual_seed(2)
    s, t = torch.randn(5, 7, requires_grad=True), torch.randn(5, 7)
    assert distillation_loss(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    temp = 3.0
    p_t = F.softmax(t / temp, 1)
    expected = (p_t * (p_t.log() - F.log_softmax(s / temp, 1))).sum(1).mean() * temp**2
    loss = distillation_loss(s, t, temp)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert s.grad is not None
