"""Throughput probe: each job's real training step, alone on the device for a few seconds, in images/s.

    python -m training.probe --plan training/plans/ferplus_window.yaml --seconds 20      # at a window's start
    python -m training.probe --plan training/plans/ferplus_window.yaml --seconds 5 --set device=cpu

Each job's settings are the window's (:func:`training.window.job_config`); the model, loss, optimiser, EMA, AMP,
augmentation and ``torch.compile`` are built as ``fer-train`` builds them (:func:`build_job`), on synthetic faces
(the step's speed does not depend on the pixels). The first (compiling) step is timed apart. With a shared
``TORCHINDUCTOR_CACHE_DIR`` the jobs that follow find the probe's compiled graphs in the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training import engine
from training.config import TrainConfig, build_config
from training.loader import TrainBatches
from training.transforms import AugmentConfig


@dataclass
class ProbeJob:
    """One job's training step on synthetic data; :meth:`step` runs one (augmentation included)."""

    cfg: TrainConfig
    device: torch.device
    model: nn.Module
    batches: TrainBatches
    amp: engine.Amp
    loss_fn: engine.CompiledLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: Any
    ema: engine.ModelEma | None
    steps_done: int = 0

    def __post_init__(self) -> None:
        self._iter = iter(())
        self._epoch = 0

    @property
    def compiled(self) -> bool:
        return self.loss_fn.compiled

    def step(self) -> torch.Tensor:
        """One training step; returns the loss (on the device, not read back)."""
        batch = next(self._iter, None)
        if batch is None:
            self._iter = self.batches.batches(self._epoch)
            self._epoch += 1
            batch = next(self._iter)
        x, y = batch
        loss = engine.train_step(self.model, x, y, self.criterion, self.optimizer, self.scaler, self.amp,
                                 self.cfg.clip_grad, loss_fn=self.loss_fn)
        self.steps_done += 1
        if self.ema is not None:
            self.ema.update(self.model, step=self.steps_done)
        return loss

    def sync(self) -> None:
        """Wait for the device."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def num_classes_of(cfg: TrainConfig) -> int:
    """8 for FER+ data specs (contempt), else 7."""
    return 8 if any(str(spec).split("=")[0].startswith("ferplus") or "ferplus" in str(spec) for spec in cfg.data) \
        else 7


def build_job(cfg: TrainConfig, device: torch.device | None = None, fused_optimizer: bool | None = None) -> ProbeJob:
    """A job's model and training step as ``fer-train`` builds them, on ``4 * batch_size`` synthetic faces.

    ``fused_optimizer``: force the fused AdamW (the CUDA default) on or off, e.g. to profile the CUDA step's
    launches on a CPU.
    """
    from training.losses import FerLoss
    from training.train import build_model, resolve_device, scaled_lr
    from training.distributed import DistInfo

    device = device or resolve_device(cfg.device, DistInfo())
    compiled = engine.use_compile(cfg.compile, device)
    classes = num_classes_of(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = 4 * cfg.batch_size
    faces = torch.randint(0, 256, (n, cfg.cache_size, cfg.cache_size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    batches = TrainBatches(faces.to(device), labels.to(device), classes, cfg.batch_size, cfg.img_size, cfg.seed,
                           aug=AugmentConfig(scale_min=cfg.scale_min, rotate=cfg.rotate, hflip=cfg.hflip,
                                             erase=cfg.erase),
                           mixup=cfg.mixup, cutmix=cfg.cutmix, mix_prob=cfg.mix_prob, channels_last=cfg.channels_last,
                           mean=cfg.mean, std=cfg.std, compile=compiled)
    model = build_model(cfg, classes)
    smoothing = cfg.label_smoothing if cfg.label_smoothing is not None else \
        float((getattr(model, "default_train_cfg", {}) or {}).get("label_smoothing", 0.1))
    fmt = torch.channels_last if cfg.channels_last else torch.preserve_format
    model.to(device=device, memory_format=fmt).train()
    criterion = FerLoss(label_smoothing=smoothing)
    lr = scaled_lr(cfg.lr, cfg.lr_scale, cfg.batch_size)
    if fused_optimizer is None:
        optimizer = engine.create_optimizer(model, cfg.opt, lr, cfg.weight_decay)
    else:
        from timm.optim import create_optimizer_v2
        optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay,
                                        fused=fused_optimizer)
    amp = engine.Amp.resolve(cfg.amp, device)
    loss_fn = engine.CompiledLoss(model, criterion, amp, compile=compiled)
    ema = engine.ModelEma(model, decay=cfg.ema_decay) if cfg.ema else None
    return ProbeJob(cfg, device, model, batches, amp, loss_fn, optimizer, amp.scaler(), criterion, ema)


def probe_job(cfg: TrainConfig, seconds: float, device: torch.device | None = None) -> dict[str, Any]:
    """Build a job and time its steps for about ``seconds`` after the first (compiling) one.

    Returns:
        {"model", "img_size", "batch_size", "compiled", "first_step_s", "steps", "seconds", "images_per_s"}.
    """
    job = build_job(cfg, device)
    t0 = time.perf_counter()
    job.step()
    job.sync()
    first = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while True:  # the clock is read after each sync only: a step's launches run ahead of the device
        for _ in range(max(1, 2 ** min(steps.bit_length(), 5))):
            job.step()
            steps += 1
        job.sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    row = {"model": cfg.model, "img_size": cfg.img_size, "batch_size": cfg.batch_size, "compiled": job.compiled,
           "amp": job.amp.name, "device": str(job.device), "first_step_s": round(first, 2), "steps": steps,
           "seconds": round(elapsed, 2), "images_per_s": round(steps * cfg.batch_size / elapsed, 1)}
    del job
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def plan_configs(plan_path: str | Path, overrides: dict[str, Any] | None = None) -> list[tuple[str, TrainConfig]]:
    """(name, resolved config) of every job of a window plan, as the window would start them."""
    from training.window import job_config, load_plan

    plan = load_plan(plan_path)
    out = []
    for job in plan["jobs"]:
        cfg = job_config(plan, job, Path("runs/probe"), 1.0, overrides or {})
        out.append((job["name"], build_config(cfg)))
    return out


def main(argv: list[str] | None = None) -> int:
    from training.window import parse_overrides

    p = argparse.ArgumentParser(prog="python -m training.probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", required=True, help="window plan YAML")
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per job (after its first step)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fer-train setting for every job (e.g. device=cpu, batch_size=32)")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    overrides = parse_overrides(a.set)
    try:
        jobs = plan_configs(a.plan, overrides)
    except ValueError as err:  # a bad plan or setting (ConfigError is a ValueError)
        print(f"probe: error: {err}", file=sys.stderr)
        return 2
    rows = []
    for name, cfg in jobs:
        if cfg.workers:
            torch.set_num_threads(cfg.workers)
        row = dict(probe_job(cfg, a.seconds), job=name)
        rows.append(row)
        print(f"probe {name:<14} {row['model']} @{row['img_size']} batch {row['batch_size']} on {row['device']} "
              f"(AMP {row['amp']}, compiled {row['compiled']}): {row['images_per_s']:.0f} img/s "
              f"(first step {row['first_step_s']:.1f} s, {row['steps']} steps in {row['seconds']:.1f} s)", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
