"""The fast training step: compiled == eager, compile fallback, the time-budget schedule skipping the compiling
step, the foreach EMA, the augmentation as one graph, LR scaling, validation every N seconds and the probe.

Tiny models on the CPU. Most compiled tests use the "aot_eager" backend (Dynamo's graph capture and AOTAutograd,
without Inductor's C++ code generation, which takes minutes on a busy 2-core machine); one slow test uses Inductor.
"""

from __future__ import annotations

import copy
import json
import logging
import time

import pytest
import torch
import yaml

from training import engine
from training.budget import BudgetClock
from training.config import build_config
from training.loader import TrainBatches
from training.losses import FerLoss
from training.models import create_model
from training.train import scaled_lr
from training.transforms import AugmentConfig, augment_draws, augment_from_draws

# float32 on the CPU: the compiled graph computes the same ops, but decompositions may sum in another order
# (about 1e-7 relative per op); over 3 AdamW steps that stays far below 1e-4 of a loss near 2
LOSS_RTOL = 1e-4


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    yield
    torch.set_num_threads(threads)
    torch._dynamo.reset()


def tiny_setup(seed: int = 0):
    torch.manual_seed(seed)
    model = create_model("emonext_test", num_classes=7, drop_path_rate=0.0).train()
    gen = torch.Generator().manual_seed(seed)
    faces = torch.randint(0, 256, (24, 48, 48), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 7, (24,), generator=gen)
    batches = TrainBatches(faces, labels, 7, 8, 32, seed=seed)
    return model, list(batches.batches(0))


def run_steps(model, data, loss_fn_factory=None) -> tuple[list[float], object, list[torch.Tensor]]:
    """Losses of one step per batch, the loss function used, and the first step's gradients."""
    amp = engine.Amp.resolve("off", torch.device("cpu"))
    crit = FerLoss(label_smoothing=0.1)
    opt = engine.create_optimizer(model, "adamw", 1e-3, 0.05)
    loss_fn = loss_fn_factory(model, crit, amp) if loss_fn_factory else None
    losses, grads = [], []
    for x, y in data:
        losses.append(float(engine.train_step(model, x, y, crit, opt, amp.scaler(), amp, 1.0, loss_fn=loss_fn)))
        grads = grads or [p.grad.clone() for p in model.parameters()]
    return losses, loss_fn, grads


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_and_eager_steps_give_the_same_loss(backend):
    model, data = tiny_setup()
    twin = copy.deepcopy(model)
    eager, _, eager_grads = run_steps(model, data)
    compiled, loss_fn, grads = run_steps(twin, data, lambda m, c, a: engine.CompiledLoss(m, c, a, backend=backend))
    assert loss_fn.compiled, "the step fell back to eager: it no longer compiles as one graph"
    assert eager[0] != eager[-1]  # the weights did change between steps
    assert compiled == pytest.approx(eager, rel=LOSS_RTOL)
    # the first step's gradients (the weights after it are no test: AdamW moves a parameter whose gradient is
    # ~0 by a full step in the direction of the gradient's sign, which rounding decides)
    scale = max(g.abs().max() for g in eager_grads)
    for a, b in zip(eager_grads, grads):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * scale)


def test_compile_failure_falls_back_to_eager_with_one_warning(caplog):
    model, data = tiny_setup()
    twin = copy.deepcopy(model)

    class Breaking(torch.nn.Module):  # a graph break: fullgraph=True cannot compile this
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, return_aux=False):
            torch._dynamo.graph_break()
            return self.inner(x, return_aux=return_aux)

    eager, _, _ = run_steps(model, data[:2])
    with caplog.at_level(logging.WARNING, logger="training.engine"):
        losses, loss_fn, _ = run_steps(Breaking(twin), data[:2],
                                    lambda m, c, a: engine.CompiledLoss(m, c, a, backend="aot_eager"))
    assert not loss_fn.compiled
    warnings = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    assert losses == pytest.approx(eager, rel=1e-6)


def test_use_compile_and_config_values():
    assert engine.use_compile("auto", torch.device("cuda")) and not engine.use_compile("auto", torch.device("cpu"))
    assert engine.use_compile("on", torch.device("cpu")) and not engine.use_compile("off", torch.device("cuda"))
    assert build_config({"compile": True}).compile == "on" and build_config({"compile": False}).compile == "off"
    assert build_config({}).compile == "auto"
    with pytest.raises(ValueError, match="compile"):
        build_config({"compile": "sometimes"})


def test_budget_clock_leaves_the_first_step_out_of_the_schedule():
    clock = BudgetClock(10.0)
    clock.start()
    time.sleep(0.3)  # "compiling"
    assert clock.mark_warm() == pytest.approx(0.3, abs=0.1)
    assert clock.fraction() < 0.005 and clock.elapsed() >= 0.3
    time.sleep(0.2)
    assert clock.fraction() == pytest.approx(0.2 / (10.0 - clock.excluded), abs=0.01)
    resumed = BudgetClock(10.0, elapsed=5.0, excluded=clock.excluded)  # --resume keeps both
    assert resumed.fraction() == pytest.approx((5.0 - clock.excluded) / (10.0 - clock.excluded))


def test_schedule_does_not_advance_during_the_compiling_step():
    """train_one_epoch with a first step that takes 0.5 s of a 5 s budget: the LR after it is still warmup's
    first value, as if no time had passed (without mark_warm it would be at 0.1 of the budget, past warmup)."""
    model, _ = tiny_setup()
    gen = torch.Generator().manual_seed(0)
    batches = TrainBatches(torch.randint(0, 256, (24, 48, 48), dtype=torch.uint8, generator=gen),
                           torch.randint(0, 7, (24,), generator=gen), 7, 8, 32)
    amp = engine.Amp.resolve("off", torch.device("cpu"))
    crit = FerLoss()
    opt = engine.create_optimizer(model, "adamw", 1e-3, 0.05)
    clock = BudgetClock(5.0)
    sched = engine.create_time_scheduler(opt, clock.fraction, 0.05, 1e-6)
    lrs = []

    class SlowFirst(engine.CompiledLoss):
        def __call__(self, x, target):
            if self.calls == 0:
                time.sleep(0.5)
            return super().__call__(x, target)

    real_step = sched.step

    def step_and_record():
        real_step()
        lrs.append(opt.param_groups[0]["lr"])

    sched.step = step_and_record
    clock.start()
    engine.train_one_epoch(model, batches, crit, opt, sched, amp.scaler(), amp, 0, progress=False,
                           loss_fn=SlowFirst(model, crit, amp, compile=False), on_first_step=clock.mark_warm)
    assert clock.excluded >= 0.5
    assert lrs[0] == pytest.approx(1e-3 * 1e-3, rel=0.05)  # lr_factor(0) = 1e-3 of the peak
    assert len(lrs) == 3 and lrs[-1] > lrs[0]


def test_ema_foreach_update_equals_the_reference_formula():
    model, _ = tiny_setup()
    ema = engine.ModelEma(model, decay=0.9, use_warmup=False)
    for _ in range(2):  # twice: the cached tensor lists must follow in-place changes of the model
        before = {k: v.clone() for k, v in ema.module.state_dict().items()}
        with torch.no_grad():
            for v in model.state_dict().values():
                v.add_(torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else 1)
        ema.update(model, step=100)
        now = model.state_dict()
        for k, v in ema.module.state_dict().items():
            expected = 0.9 * before[k] + 0.1 * now[k] if v.is_floating_point() else now[k]
            assert torch.allclose(v, expected, rtol=1e-6, atol=1e-7), k
    from timm.utils import ModelEmaV3
    ref = ModelEmaV3(model, decay=0.999, use_warmup=True)
    warm = engine.ModelEma(model, decay=0.999, use_warmup=True)
    assert [warm.get_decay(s) for s in (1, 10, 1000)] == [ref.get_decay(s) for s in (1, 10, 1000)]


def test_augmentation_compiles_as_one_graph_and_matches_eager():
    cfg = AugmentConfig(erase=0.5)
    faces = torch.randint(0, 256, (6, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    u, noise = augment_draws(6, 40, cfg, torch.Generator().manual_seed(2), faces.device)
    assert u.shape == (6, 11) and noise.shape == (6, 1, 40, 40)
    eager = augment_from_draws(faces, u, noise, 40, cfg)
    compiled = torch.compile(augment_from_draws, fullgraph=True, dynamic=False, backend="aot_eager")
    assert torch.allclose(compiled(faces, u, noise, 40, cfg), eager, atol=1e-5)


def test_lr_scale():
    assert scaled_lr(1e-3, "none", 1024) == 1e-3
    assert scaled_lr(1e-3, "sqrt", 1024) == pytest.approx(2e-3)
    assert scaled_lr(1e-3, "linear", 512) == pytest.approx(2e-3)
    assert build_config({"lr_scale": "sqrt"}).lr_scale == "sqrt"


def test_validation_every_n_seconds(fer2013_root, tmp_path):
    """val_every_s longer than the run: the first and the last of 3 epochs are validated, not the middle one."""
    from training.cli import train_main

    args = ["--model", "ctan_test", "--data", f"fer2013={fer2013_root}", "--img-size", "32", "--epochs", "3",
            "--batch-size", "16", "--subset", "32", "--project", str(tmp_path), "--name", "v", "--device", "cpu",
            "--no-progress", "--val-every-s", "3600", "--no-ema"]
    assert train_main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 3]


def test_probe_runs_a_plan_on_cpu_and_prints_img_s(tmp_path, capsys):
    from training.probe import main

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"data": ["fer2013=unused"], "common": {"batch_size": 8, "device": "cpu",
                                                                           "compile": "off"},
                                    "jobs": [{"name": "a", "budget": 10,
                                              "train": {"model": "emonext_test", "img_size": 32}}]}))
    assert main(["--plan", str(plan), "--seconds", "0.3", "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "probe a" in out and "img/s" in out
    row = json.loads((tmp_path / "p.json").read_text())[0]
    assert row["job"] == "a" and row["images_per_s"] > 0 and row["steps"] >= 1 and not row["compiled"]
    assert main(["--plan", str(tmp_path / "missing.yaml")]) == 2
