"""End-to-end training engine tests on a small real FER2013 subset: run outputs, checkpoints, exact resume,
Ctrl-C, non-finite loss, fer-eval, CLI errors and config layering. Tiny models at 32-40 px, one CPU thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import training.data
import training.engine
import training.losses
import training.train
from training.checkpoint import build_model_from_checkpoint, load_checkpoint
from training.cli import eval_main, train_main, train_parser
from training.distributed import DistInfo, shard_indices

OUTPUTS = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt", "curves.png", "report.json", "confusion_matrix.png")
SUBSET = "64"
TIMING = ("seconds", "images_per_s", "elapsed_s")


@pytest.fixture(scope="module", autouse=True)
def fast_env():
    """One torch thread (tiny models on a shared CPU); each dataset subset listed and decoded once per module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    real, cache = training.data.load_data, {}

    def load_data_once(specs, **kwargs):
        key = (tuple(specs), tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(list(specs), **kwargs)
        return cache[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training.data, "load_data", load_data_once)
        yield
    torch.set_num_threads(threads)


def train_args(root: Path, project: Path, name: str, *extra: str, model: str = "ctan_test", epochs: int = 1,
               size: int = 32) -> list[str]:
    return ["--model", model, "--data", f"fer2013={root}", "--img-size", str(size), "--epochs", str(epochs),
            "--batch-size", "16", "--subset", SUBSET, "--warmup-epochs", "1", "--project", str(project),
            "--name", name, "--device", "cpu", "--no-progress", *extra]


@pytest.fixture(scope="module")
def main_run(fer2013_root, tmp_path_factory) -> Path:
    """One epoch of emonext_test with a YAML config whose epochs the command line overrides."""
    project = tmp_path_factory.mktemp("runs")
    cfg = project / "run.yaml"
    cfg.write_text(yaml.safe_dump({"model": "emonext_test", "img_size": 40, "epochs": 5, "lr": 0.002}))
    args = ["--config", str(cfg), "--epochs", "1", "--data", f"fer2013={fer2013_root}", "--batch-size", "16",
            "--subset", SUBSET, "--project", str(project), "--name", "main", "--device", "cpu", "--no-progress"]
    assert train_main(args) == 0
    return project / "main"


def test_run_writes_every_output(main_run):
    for name in OUTPUTS:
        assert (main_run / name).is_file() and (main_run / name).stat().st_size > 0, name
    assert not list(main_run.glob("*.tmp"))


def test_config_yaml_layering(main_run):
    cfg = yaml.safe_load((main_run / "config.yaml").read_text())
    assert cfg["model"] == "emonext_test" and cfg["img_size"] == 40 and cfg["lr"] == 0.002  # from the YAML
    assert cfg["epochs"] == 1  # the command line wins
    assert cfg["label_smoothing"] == 0.2  # EmoNeXt's default_train_cfg


def test_metrics_rows(main_run):
    rows = [json.loads(line) for line in (main_run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    for key in ("epoch", "train_loss", "val_loss", "val_acc", "val_f1", "ema_val_loss", "ema_val_acc", "ema_val_f1",
                "lr", "images_per_s", "seconds", "best_weights"):
        assert key in row, key
    assert row["epoch"] == 1 and 0.0 <= row["val_acc"] <= 1.0 and row["best_weights"] in ("raw", "ema")


def test_report_json(main_run):
    report = json.loads((main_run / "report.json").read_text())
    assert set(report["tta"]) == {"none", "flip", "tencrop"}
    n = report["n"]
    assert n == int(SUBSET)
    for res in report["tta"].values():
        cm = res["confusion_matrix"]
        assert len(cm) == 7 and sum(map(sum, cm)) == n
        assert set(res["per_class"]) == set(report["classes"])
        for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
            assert 0.0 <= res[key] <= 1.0


def test_checkpoints_load_weights_only(main_run):
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(main_run / name, map_location="cpu", weights_only=True)
        meta = ckpt["meta"]
        for key in ("labels", "input_size", "mean", "std", "gray", "equalize", "native_size", "model", "data",
                    "test_accuracy"):
            assert key in meta, key
        assert meta["input_size"] == 40 and meta["native_size"] == 48 and meta["model"] == "emonext_test"
        assert ckpt["config"]["model"] == "emonext_test" and ckpt["epoch"] == 1
    best = load_checkpoint(main_run / "best.pt")
    report = json.loads((main_run / "report.json").read_text())
    assert best["meta"]["test_accuracy"] == pytest.approx(report["tta"]["none"]["accuracy"])
    for weights in ("best", "ema", "raw"):
        model = build_model_from_checkpoint(best, weights)
        assert not model.training
        assert model(torch.zeros(2, 3, 40, 40)).shape == (2, 7)


def test_refuses_to_overwrite_a_run(main_run, fer2013_root, capsys):
    code = train_main(train_args(fer2013_root, main_run.parent, "main"))
    assert code == 2
    assert "already exists" in capsys.readouterr().err


def test_fer_eval_checkpoint(main_run, fer2013_root, tmp_path, capsys):
    out = tmp_path / "eval"
    code = eval_main(["--checkpoint", str(main_run / "best.pt"), "--data", f"fer2013={fer2013_root}", "--split",
                      "test", "--tta", "none,flip", "--subset", SUBSET, "--device", "cpu", "--out", str(out),
                      "--no-progress"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert (out / "confusion_matrix.png").is_file()
    assert set(report["tta"]) == {"none", "flip"}
    trained = json.loads((main_run / "report.json").read_text())
    assert report["tta"]["none"]["accuracy"] == pytest.approx(trained["tta"]["none"]["accuracy"])


def test_fer_eval_onnx(tiny_onnx, fer2013_root, tmp_path, capsys):
    out = tmp_path / "onnx_eval"
    code = eval_main(["--model", str(tiny_onnx), "--data", f"fer2013={fer2013_root}", "--subset", "32", "--out",
                      str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert set(report["tta"]) == {"none", "flip"} and report["n"] == 32


def test_fer_eval_missing_checkpoint(tmp_path, capsys):
    code = eval_main(["--checkpoint", str(tmp_path / "nope.pt"), "--data", "fer2013=x"])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint not found" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"hello\n", bytes(range(256)) * 2])
def test_fer_eval_damaged_checkpoint(content, tmp_path, capsys):
    bad = tmp_path / "best.pt"
    bad.write_bytes(content)
    code = eval_main(["--checkpoint", str(bad), "--data", "fer2013=x"])
    err = capsys.readouterr().err
    assert code == 2 and "not a PyTorch checkpoint" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_model_did_you_mean(fer2013_root, tmp_path, capsys):
    code = train_main(["--model", "emonext_tny", "--data", f"fer2013={fer2013_root}", "--project", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Did you mean 'emonext_tiny'" in err and "Traceback" not in err


def test_unknown_dataset_kind(fer2013_root, tmp_path, capsys):
    code = train_main(["--model", "ctan_test", "--data", f"fer2031={fer2013_root}", "--project", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "fer2013" in err and "Traceback" not in err


def test_bad_yaml_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epoch: 3\n")
    assert train_main(["--config", str(cfg), "--data", "fer2013=x"]) == 2
    assert "Did you mean 'epochs'" in capsys.readouterr().err


def test_help_and_list_models(capsys):
    assert "examples:" in train_parser().format_help()
    assert train_main(["--list-models", "--img-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "emonext_tiny" in out and "ctan_tiny" in out and "GFLOPs" in out


def _states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.parametrize("stop_after", [2, 4])
def test_interrupt_and_resume_match_an_uninterrupted_run(stop_after, fer2013_root, tmp_path, monkeypatch, capsys):
    """2 epochs straight == stopped by Ctrl-C (mid-epoch 1, or at its end before validation) + --resume."""
    assert train_main(train_args(fer2013_root, tmp_path, "straight", epochs=2)) == 0

    steps = {"n": 0}
    real_step = training.engine.train_step

    def counting_step(*args, **kwargs):
        steps["n"] += 1
        return real_step(*args, **kwargs)

    class FakeSigint:
        def __enter__(self):
            return lambda: steps["n"] >= stop_after

        def __exit__(self, *exc):
            return False

    with monkeypatch.context() as mp:
        mp.setattr(training.engine, "train_step", counting_step)
        mp.setattr(training.train, "stop_on_sigint", FakeSigint)
        code = train_main(train_args(fer2013_root, tmp_path, "resumed", epochs=2))
    err = capsys.readouterr().err
    assert code == 130 and "--resume" in err
    saved = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert saved["epoch"] == 0 and saved["step_in_epoch"] == stop_after

    assert train_main(["--resume", str(tmp_path / "resumed" / "last.pt"), "--no-progress"]) == 0
    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    _states_equal(a["model"], b["model"])
    _states_equal(a["ema"], b["ema"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    assert _metrics(tmp_path / "straight") == _metrics(tmp_path / "resumed")
    ra = json.loads((tmp_path / "straight" / "report.json").read_text())
    rb = json.loads((tmp_path / "resumed" / "report.json").read_text())
    assert ra["tta"] == rb["tta"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(fer2013_root, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}

    class PoisonedLoss(training.losses.FerLoss):
        def forward(self, logits, target):
            calls["n"] += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if calls["n"] > 5 else loss  # 4 steps per epoch: epoch 2 diverges

    monkeypatch.setattr(training.losses, "FerLoss", PoisonedLoss)
    code = train_main(train_args(fer2013_root, tmp_path, "nan", epochs=3))
    err = capsys.readouterr().err
    assert code == 1 and "non-finite" in err and "Traceback" not in err
    last = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert (tmp_path / "nan" / "best.pt").is_file()
    assert len((tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()) == 1


def test_shard_indices_cover_everything_evenly():
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    shards = [shard_indices(order, DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)
    assert set(torch.cat(shards).tolist()) == set(range(10))
    assert torch.equal(shard_indices(order, DistInfo()), order)


def test_schedule_warmup_cosine_floor_and_amp_settings():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-3)
    sched = training.engine.create_scheduler(opt, total_steps=100, warmup_steps=10, min_lr=1e-5)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05) and opt.param_groups[0]["lr"] == pytest.approx(1e-5)
    cpu = torch.device("cpu")
    assert not training.engine.Amp.resolve("auto", cpu).enabled
    fp16 = training.engine.Amp.resolve("fp16", cpu)
    assert fp16.enabled and fp16.scaler().is_enabled()
    assert not training.engine.Amp.resolve("bf16", cpu).scaler().is_enabled()
