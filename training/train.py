"""A full training run: data -> model -> epochs (train, validate raw + EMA, checkpoint) -> test report.

:func:`run_training` takes a resolved :class:`training.config.TrainConfig` and writes ``runs/<name>/``:
``config.yaml``, ``metrics.jsonl``, ``last.pt`` (every epoch), ``best.pt`` (best validation accuracy of the raw
or the EMA weights), ``curves.png``, then on the test split ``report.json`` and ``confusion_matrix.png``.

With ``time_budget`` the run trains for that many seconds instead of ``epochs``: warmup (the first 5%) and the
cosine decay follow the share of the budget used, and the run ends when it is spent, mid-epoch if need be, then
validates, saves and reports as usual. Checkpoints are written after the first epoch, then at most every
``checkpoint_every`` seconds and at the end; the best weights wait in memory in between.

Throughput: the step's forward + loss and the augmentation are compiled with ``torch.compile`` when ``compile``
says so ("auto": on CUDA; eager again, with one warning, if compiling fails); the time-budget schedule starts
after that first, compiling step (its seconds are logged). ``val_every_s`` validates only after the epochs that
end that long after the last validation (epochs of a second on a GPU); ``lr_scale`` scales the LR with the
global batch size (sqrt or linear, over 256).

Stops: Ctrl-C or SIGTERM finishes the current step, saves ``last.pt`` (resumable mid-epoch) and raises
:class:`RunInterrupted`; a non-finite loss raises :class:`engine.NonFiniteLossError` without touching the
checkpoints of the last good epoch.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer_core.cli import signal_name, stop_signals
from fer_core.model_meta import ModelMeta
from training import engine
from training.budget import BudgetClock
from training.checkpoint import (CheckpointError, build_model_from_checkpoint, load_checkpoint, rng_state,
                                 save_checkpoint, set_rng_state)
from training.config import ConfigError, TrainConfig, save_yaml
from training.distributed import (DistInfo, all_gather_objects, barrier, broadcast_object, cleanup,
                                  init_distributed)
from training.evaluate import test_report
from training.loader import TrainBatches
from training.progress import on_terminal
from training.report import append_jsonl, plot_curves, read_jsonl, truncate_metrics, write_report
from training.transforms import AugmentConfig

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt", "curves.png", "report.json", "confusion_matrix.png")


class RunInterrupted(Exception):
    """The run was stopped by Ctrl-C after saving ``last.pt``; ``message`` says how to continue."""


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """"auto" -> CUDA when available, else CPU; under DDP on CUDA, this rank's GPU.

    Raises:
        ConfigError: CUDA asked for but not available.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", info.local_rank)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_dir_for(cfg: TrainConfig) -> Path:
    """``project/name``; without a name, ``project/<model>_<img_size>`` plus a number if that exists."""
    project = Path(cfg.project)
    if cfg.name:
        return project / cfg.name
    base = f"{cfg.model}_{cfg.img_size}"
    path, n = project / base, 2
    while path.exists() and not cfg.exist_ok:
        path, n = project / f"{base}_{n}", n + 1
    return path


def resume_path(cfg: TrainConfig) -> Path | None:
    """The checkpoint ``--resume`` points at ("auto" = this run's ``last.pt``)."""
    if not cfg.resume:
        return None
    if cfg.resume in ("auto", "last", "true", "True"):
        return run_dir_for(cfg) / "last.pt"
    return Path(cfg.resume)


def check_run_dir(cfg: TrainConfig, resuming: bool) -> Path:
    """The run folder; refuse to reuse one that holds a run unless resuming or ``exist_ok`` (nothing is created yet).

    Raises:
        ConfigError: the folder exists and holds a run.
    """
    run_dir = run_dir_for(cfg)
    if run_dir.exists() and any(run_dir.iterdir()) and not (resuming or cfg.exist_ok):
        raise ConfigError(f"run folder {run_dir} already exists; pick another --name, add --exist-ok to overwrite "
                          "it, or --resume to continue it")
    cfg.project, cfg.name = str(run_dir.parent), run_dir.name  # a resumed run finds the same folder
    return run_dir


@contextmanager
def stop_on_sigint():
    """While active, the first Ctrl-C (or SIGTERM, SIGHUP) only sets a flag (checked between steps); the second
    aborts. Yields the check."""
    def first(signum: int) -> None:
        log.warning("%s: stopping after the current step and saving last.pt (Ctrl-C again to abort now)",
                    signal_name(signum))

    with stop_signals(first) as received:
        yield lambda: bool(received)


def cpu_copy(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint dict whose tensors (in nested dicts too) are copied to the CPU."""
    def copy(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().to("cpu", copy=True)
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        return value
    return {k: copy(v) for k, v in state.items()}


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Extra ``create_model`` arguments from the config."""
    kw: dict[str, Any] = dict(cfg.model_kwargs)
    if cfg.drop_path is not None:
        kw["drop_path_rate"] = cfg.drop_path
    return kw


def load_run_data(cfg: TrainConfig, progress: bool = True):
    """A run's data (:class:`training.data.FaceData`), read, cached and split as its config says: for the training
    and for what follows it (teacher logits, the export check), so both see the same faces."""
    from training.data import load_data

    return load_data(cfg.data, cache_size=cfg.cache_size, equalize=cfg.equalize, skip_bad=cfg.skip_bad,
                     seed=cfg.seed, subset=cfg.subset, cache_dir=cfg.cache_dir, progress=progress,
                     split_rule=cfg.split_rule())


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """``create_model`` with the config's options; an unknown name, a bad option or unavailable pretrained weights
    become a :class:`ConfigError`."""
    from training.models import PretrainedWeightsError, create_model, list_models

    try:
        return create_model(cfg.model, num_classes=num_classes, pretrained=cfg.pretrained,
                            pretrained_path=cfg.pretrained_path, **model_kwargs(cfg))
    except PretrainedWeightsError as exc:
        raise ConfigError(str(exc)) from None
    except TypeError as exc:  # an option the model does not take (--model-arg, --drop-path)
        raise ConfigError(f"model '{cfg.model}': {exc}") from None
    except ValueError as exc:
        if cfg.model not in list_models():
            raise ConfigError(str(exc)) from None
        raise


def load_teacher(path: str, student: ModelMeta, device: torch.device) -> nn.Module:
    """A frozen teacher from a checkpoint; its labels and input normalisation must be the student's."""
    ckpt = load_checkpoint(path)
    meta = ModelMeta.from_dict(ckpt["meta"])
    if meta.labels != student.labels:
        raise ConfigError(f"teacher {path} predicts {meta.labels} but the data has {student.labels}")
    if (meta.mean, meta.std) != (student.mean, student.std):
        raise ConfigError(f"teacher {path} expects inputs normalised with mean {meta.mean} / std {meta.std}, the "
                          f"student {student.mean} / {student.std}: train the student with the teacher's --mean/--std")
    teacher = build_model_from_checkpoint(ckpt).to(device)
    teacher.input_size = meta.input_size
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def restore(ckpt: dict[str, Any], model: nn.Module, ema: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: torch.amp.GradScaler, batches: TrainBatches,
            info: DistInfo) -> tuple[int, dict | None, float, str | None]:
    """Load a ``last.pt`` into the training objects and restore this rank's RNG states.

    Returns:
        (completed epochs, progress of an unfinished epoch or None, best accuracy, best weights).
    """
    model.load_state_dict(ckpt["model"])
    if ema is not None and ckpt.get("ema") is not None:
        ema.module.load_state_dict(ckpt["ema"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    rngs = ckpt.get("rng") or []
    if info.rank < len(rngs):
        set_rng_state(rngs[info.rank], batches.generators)
    progress = None
    if ckpt.get("step_in_epoch"):
        progress = dict(ckpt.get("epoch_progress") or {}, step=int(ckpt["step_in_epoch"]))
    return int(ckpt["epoch"]), progress, float(ckpt.get("best_acc", -1.0)), ckpt.get("best_weights")


def epoch_row(epoch: int, stats: dict, val: dict, ema_val: dict | None) -> dict[str, Any]:
    """One ``metrics.jsonl`` row (the caller adds the best-so-far fields)."""
    return {"epoch": epoch, "train_loss": stats["train_loss"], "val_loss": val["loss"], "val_acc": val["acc"],
            "val_f1": val["macro_f1"], "ema_val_loss": ema_val["loss"] if ema_val else None,
            "ema_val_acc": ema_val["acc"] if ema_val else None, "ema_val_f1": ema_val["macro_f1"] if ema_val else None,
            "lr": stats["lr"], "images_per_s": stats["images_per_s"], "seconds": stats["seconds"]}


def scaled_lr(lr: float, rule: str, global_batch: int) -> float:
    """The peak LR for ``global_batch`` images per step: ``lr`` as given ("none"), or scaled from batch 256 by
    ``sqrt(B / 256)`` ("sqrt", for AdamW) or ``B / 256`` ("linear")."""
    ratio = global_batch / 256
    return lr * {"none": 1.0, "sqrt": ratio ** 0.5, "linear": ratio}[rule]


def make_meta(cfg: TrainConfig, data: Any) -> ModelMeta:
    """The model's :class:`ModelMeta`, made once when the run starts: the loaders, the evaluation and every
    checkpoint take it from here."""
    return ModelMeta(labels=list(data.classes), input_size=cfg.img_size, mean=float(cfg.mean), std=float(cfg.std),
                     gray=True, equalize=bool(data.equalize), native_size=int(data.native_size), model=cfg.model,
                     data=data.name)


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train, validate, checkpoint and report as configured. Returns a summary dict.

    Raises:
        ConfigError, training.data.DataError, CheckpointError: bad settings, data or checkpoint.
        engine.NonFiniteLossError: the loss diverged (last good checkpoints are kept).
        RunInterrupted: Ctrl-C (``last.pt`` saved).
    """
    info = init_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    try:
        return _run(cfg, info)
    finally:
        cleanup(info)


def _run(cfg: TrainConfig, info: DistInfo) -> dict[str, Any]:
    from training.losses import FerLoss, class_weights, distillation_loss

    device = resolve_device(cfg.device, info)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if cfg.workers:
        torch.set_num_threads(cfg.workers)
    main = info.is_main
    progress = on_terminal(cfg.progress) and main  # no bars in a log file: status lines instead
    ckpt_path = resume_path(cfg)
    resume = load_checkpoint(ckpt_path) if ckpt_path else None
    run_dir = check_run_dir(cfg, resume is not None) if main else None
    run_dir = Path(broadcast_object(str(run_dir) if run_dir else None, info))  # rank 0 picks the folder
    cfg.project, cfg.name = str(run_dir.parent), run_dir.name
    seed_everything(cfg.seed + info.rank)

    # data (uint8 faces on the device)
    data = load_run_data(cfg, progress)
    classes, num_classes = tuple(data.classes), len(data.classes)
    meta = make_meta(cfg, data)
    train_split = data.train
    if cfg.soft_targets:
        from training.teacher_logits import soft_targets

        targets = torch.from_numpy(soft_targets(cfg.soft_targets, train_split, cfg.distill_alpha, cfg.distill_temp))
    else:
        targets = torch.from_numpy(train_split.soft if train_split.soft is not None else train_split.labels)
    channels_last = bool(cfg.channels_last)
    compiled = engine.use_compile(cfg.compile, device)
    batches = TrainBatches(
        torch.from_numpy(train_split.images).to(device), targets.to(device), num_classes, cfg.batch_size,
        cfg.img_size, cfg.seed, info, AugmentConfig(scale_min=cfg.scale_min, rotate=cfg.rotate, hflip=cfg.hflip,
                                                    erase=cfg.erase),
        cfg.mixup, cfg.cutmix, cfg.mix_prob, channels_last, meta.mean, meta.std, compile=compiled)
    val_images = torch.from_numpy(data.val.images).to(device)

    # model, loss, EMA, optimiser, schedule, AMP
    model = build_model(cfg, num_classes)
    if cfg.init and resume is None:  # fer-train --init: start from these weights, head rows mapped by class
        from training.weights import init_model
        init_model(model, cfg.init, classes)
    train_defaults = dict(getattr(model, "default_train_cfg", {}) or {})
    if cfg.class_weighted is None:
        cfg.class_weighted = bool(train_defaults.get("class_weighted", False))
    if cfg.label_smoothing is None:
        cfg.label_smoothing = float(train_defaults.get("label_smoothing", 0.1))
    weight = class_weights(train_split.class_counts()).to(device) if cfg.class_weighted else None
    criterion = FerLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    model.to(device=device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    ema = None
    if cfg.ema:
        ema = engine.ModelEma(model, decay=cfg.ema_decay, use_warmup=True)
    steps = batches.steps_per_epoch()
    lr = scaled_lr(cfg.lr, cfg.lr_scale, cfg.batch_size * info.world_size)
    if lr != cfg.lr and main:
        log.info("lr %.3g x %s(%d / 256) = %.3g", cfg.lr, cfg.lr_scale, cfg.batch_size * info.world_size, lr)
    optimizer = engine.create_optimizer(model, cfg.opt, lr, cfg.weight_decay)
    clock = BudgetClock(cfg.time_budget, float(resume.get("elapsed_s") or 0.0) if resume is not None else 0.0,
                        float(resume.get("excluded_s") or 0.0) if resume is not None else 0.0)
    if cfg.time_budget:
        scheduler = engine.create_time_scheduler(optimizer, clock.fraction, 0.05, cfg.min_lr)
    else:
        warmup = min(int(round(cfg.warmup_epochs * steps)), cfg.epochs * steps // 2)  # short runs: half at most
        scheduler = engine.create_scheduler(optimizer, cfg.epochs * steps, warmup, cfg.min_lr)
    amp = engine.Amp.resolve(cfg.amp, device)
    scaler = amp.scaler()
    teacher = load_teacher(cfg.teacher, meta, device) if cfg.teacher else None
    if resume is not None and list(resume["meta"]["labels"]) != list(classes):
        raise CheckpointError(f"{ckpt_path} was trained on {resume['meta']['labels']}, the data has {list(classes)}")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    # resume
    start_epoch, start_progress, best_acc, best_weights = 0, None, -1.0, None
    if resume is not None:
        start_epoch, start_progress, best_acc, best_weights = restore(resume, model, ema, optimizer, scheduler,
                                                                      scaler, batches, info)
        if main:
            truncate_metrics(run_dir / "metrics.jsonl", start_epoch)
            log.info("resumed %s at epoch %d%s", ckpt_path, start_epoch,
                     f", step {start_progress['step']}" if start_progress else "")
    elif main:  # a fresh run (or --exist-ok): no outputs of an earlier run may survive
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        (run_dir / "metrics.jsonl").write_text("")
    if main:
        save_yaml(cfg, run_dir / "config.yaml")

    # wrappers: DDP, compile; teacher
    train_model: nn.Module = model
    if info.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True)
    loss_fn = engine.CompiledLoss(train_model, criterion, amp, teacher, cfg.distill_alpha, cfg.distill_temp,
                                  distillation_loss, compile=compiled, fullgraph=not info.enabled) \
        if compiled else None

    warm = {"done": False}

    def first_step_done() -> None:  # the schedule's clock starts after the first (compiling) step
        warm["done"] = True
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = clock.mark_warm()
        if main:
            log.info("first step %s in %.1f s", "compiled" if loss_fn and loss_fn.compiled else "done", seconds)
    eval_bs = cfg.eval_batch_size or 2 * cfg.batch_size
    eval_kw = dict(amp=amp, mean=meta.mean, std=meta.std, channels_last=channels_last, info=info, progress=progress)

    def state(epoch: int, step: int = 0, progress_state: dict | None = None, full: bool = True) -> dict[str, Any]:
        return {"model": model.state_dict(), "ema": ema.module.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict() if full else None,
                "scheduler": scheduler.state_dict() if full else None,
                "scaler": scaler.state_dict() if full else None,
                "epoch": epoch, "step_in_epoch": step, "epoch_progress": progress_state,
                "best_acc": best_acc, "best_weights": best_weights, "elapsed_s": clock.elapsed(),
                "excluded_s": clock.excluded,
                "rng": rngs_all if full else None, "config": cfg.to_dict(), "meta": meta.to_dict()}

    n_epochs = cfg.epochs if not cfg.time_budget else 1 << 30
    log.info("training %s on %s (%d classes, %d train / %d val images) at %d px on %s, AMP %s, %d steps/epoch, %s",
             cfg.model, data.name, num_classes, len(train_split), len(data.val), cfg.img_size, device, amp.name,
             steps, f"{cfg.time_budget:.0f} s budget" if cfg.time_budget else f"{cfg.epochs} epochs")
    pending_best: dict[str, Any] | None = None  # best weights not yet written to best.pt
    last_save = -float("inf")  # the first epoch is always written, then at most every checkpoint_every seconds
    last_val = -float("inf")  # with val_every_s: the first epoch is validated, then at most every val_every_s
    epoch = start_epoch
    clock.start()
    # `final` alone ends the loop, so the epoch that ends a run is always the one that writes last.pt and best.pt
    # (checking the clock again at the top of the loop could end it after an epoch that saved nothing)
    final = epoch >= n_epochs or clock.done()
    with stop_on_sigint() as sigint:
        def stop_requested() -> bool:
            return sigint() or clock.done()

        while not final:
            budget_spent = False
            try:
                try:
                    stats = engine.train_one_epoch(
                        train_model, batches, criterion, optimizer, scheduler, scaler, amp, epoch, raw_model=model,
                        ema=ema, clip_grad=cfg.clip_grad, teacher=teacher, distill_alpha=cfg.distill_alpha,
                        distill_temp=cfg.distill_temp, distill_fn=distillation_loss, start=start_progress,
                        stop_requested=stop_requested, info=info, check_every=100 if device.type == "cuda" else 1,
                        progress=progress, desc=f"epoch {epoch + 1}" + ("" if cfg.time_budget else f"/{cfg.epochs}"),
                        log_every_s=cfg.log_every, loss_fn=loss_fn,
                        on_first_step=None if warm["done"] else first_step_done)
                except engine.TrainingInterrupted as stop:
                    if sigint():
                        raise
                    budget_spent = True  # the budget ran out mid-epoch: validate what was trained
                    stats = engine.epoch_stats(stop.progress, optimizer, steps)
                start_progress = None
                if not (budget_spent or clock.done() or epoch + 1 >= n_epochs or not cfg.val_every_s
                        or time.monotonic() - last_val >= cfg.val_every_s):
                    epoch += 1  # a short epoch: validate (and save) after a later one
                    continue
                last_val = time.monotonic()
                val = engine.evaluate(model, val_images, data.val.labels, classes, cfg.img_size, eval_bs,
                                      desc="val raw", stop_requested=sigint, **eval_kw)
                ema_val = engine.evaluate(ema.module, val_images, data.val.labels, classes, cfg.img_size, eval_bs,
                                          desc="val EMA", stop_requested=sigint, **eval_kw) \
                    if ema is not None else None
            except engine.NonFiniteLossError:
                if main and pending_best is not None:  # the best weights so far were good: keep them
                    save_checkpoint(pending_best, run_dir / "best.pt")
                raise
            except engine.TrainingInterrupted as stop:
                progress_state = stop.progress or dict(stats["progress"])
                rngs_all = all_gather_objects(rng_state(batches.generators), info)
                if main:
                    save_checkpoint(state(epoch, int(progress_state["step"]), progress_state), run_dir / "last.pt")
                    if pending_best is not None:
                        save_checkpoint(pending_best, run_dir / "best.pt")
                barrier(info)
                raise RunInterrupted(
                    f"interrupted at epoch {epoch + 1}, step {int(progress_state['step'])}/{steps}; saved "
                    f"{run_dir / 'last.pt'}; continue with: fer-train --resume {run_dir / 'last.pt'}") from None

            acc_raw = val["acc"]
            acc_ema = ema_val["acc"] if ema_val else -1.0
            epoch_best = "ema" if acc_ema >= acc_raw else "raw"
            is_best = max(acc_raw, acc_ema) > best_acc
            if is_best:
                best_acc, best_weights = max(acc_raw, acc_ema), epoch_best
            row = dict(epoch_row(epoch + 1, stats, val, ema_val), best=is_best, best_acc=best_acc,
                       best_weights=best_weights, elapsed_s=round(clock.elapsed(), 1))
            rngs_all = all_gather_objects(rng_state(batches.generators), info)
            epoch += 1
            final = budget_spent or clock.done() or epoch >= n_epochs
            if main:
                append_jsonl(run_dir / "metrics.jsonl", row)
                if is_best:
                    pending_best = cpu_copy(state(epoch, full=False))
                if final or time.monotonic() - last_save >= cfg.checkpoint_every:
                    save_checkpoint(state(epoch), run_dir / "last.pt")
                    if pending_best is not None:
                        save_checkpoint(pending_best, run_dir / "best.pt")
                        pending_best = None
                    plot_curves(read_jsonl(run_dir / "metrics.jsonl"), run_dir / "curves.png")
                    last_save = time.monotonic()
                ema_txt = f", EMA {acc_ema:.4f}" if ema_val else ""
                budget_txt = f", {clock.fraction():.0%} of the budget" if cfg.time_budget else ""
                log.info("epoch %d%s: train loss %.4f, val acc %.4f%s (best %.4f %s), %.0f img/s, %.0f s%s",
                         epoch, "" if cfg.time_budget else f"/{cfg.epochs}", stats["train_loss"], acc_raw, ema_txt,
                         best_acc, best_weights, stats["images_per_s"], stats["seconds"], budget_txt)

    barrier(info)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "best_acc": best_acc, "best_weights": best_weights}
    if (run_dir / "best.pt").exists():
        summary["test"] = final_report(run_dir, data, cfg, device, eval_bs, eval_kw, main)
    return summary


def final_report(run_dir: Path, data: Any, cfg: TrainConfig, device: torch.device, batch_size: int,
                 eval_kw: dict[str, Any], main: bool) -> dict[str, float]:
    """Test-split report of ``best.pt`` (its best weights; TTA none, flip, tencrop): writes ``report.json`` and
    ``confusion_matrix.png`` and records the plain test accuracy in ``best.pt``'s meta. Returns accuracy per mode."""
    best_path = run_dir / "best.pt"
    best = load_checkpoint(best_path)
    fmt = torch.channels_last if eval_kw.get("channels_last") else torch.preserve_format
    model = build_model_from_checkpoint(best, "best").to(device=device, memory_format=fmt)
    images = torch.from_numpy(data.test.images).to(device)
    report = test_report(model, images, data.test.labels, tuple(data.classes), cfg.img_size, batch_size,
                         ("none", "flip", "tencrop"), **eval_kw)
    report.update(model=cfg.model, data=data.name, split="test", checkpoint=str(best_path),
                  weights=best.get("best_weights"), epoch=best.get("epoch"))
    if main:
        write_report(report, run_dir, cm_mode="none")
        best["meta"]["test_accuracy"] = report["tta"]["none"]["accuracy"]
        save_checkpoint(best, best_path)
        log.info("test accuracy %s", ", ".join(f"{m} {r['accuracy']:.4f}" for m, r in report["tta"].items()))
    return {m: r["accuracy"] for m, r in report["tta"].items()}
