"""One training epoch and one evaluation pass (ConvNeXt-engine style), plus the optimiser and LR schedule.

``train_one_epoch`` and ``evaluate`` return plain dicts. AMP has one code path: ``torch.autocast`` with an
``enabled`` flag and a ``GradScaler`` that is only active for float16 (gradients are unscaled before clipping).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer_core.model_meta import DEFAULT_MEAN, DEFAULT_STD
from training.distributed import DistInfo, all_gather_objects, all_reduce_max, all_reduce_sum, eval_shard
from training.loader import TrainBatches
from training.progress import progress_bar
from training.report import classification_metrics
from training.transforms import tta_views

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """A stop was requested (Ctrl-C); carries how far the epoch got so the state can be saved and resumed.

    Attributes:
        progress: {"step", "loss_sum", "count", "seconds", "images"} of the unfinished epoch.
    """

    def __init__(self, progress: dict[str, float]):
        super().__init__("training interrupted")
        self.progress = progress


@dataclass
class Amp:
    """Mixed precision settings: ``torch.autocast(device, dtype, enabled)`` plus a scaler for float16."""

    enabled: bool
    dtype: torch.dtype
    device_type: str

    @classmethod
    def resolve(cls, mode: str, device: torch.device) -> "Amp":
        """mode: "auto" (bf16 on CUDA when supported, else fp16; off on the CPU), "bf16", "fp16" or "off"."""
        if mode == "auto":
            if device.type != "cuda":
                return cls(False, torch.float32, device.type)
            mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if mode == "off":
            return cls(False, torch.float32, device.type)
        return cls(True, torch.bfloat16 if mode == "bf16" else torch.float16, device.type)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype if self.enabled else torch.bfloat16,
                              enabled=self.enabled)

    def scaler(self) -> torch.amp.GradScaler:
        """A scaler that only scales for float16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.enabled and self.dtype == torch.float16)

    @property
    def name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "off") if self.enabled else "off"


def create_optimizer(model: nn.Module, opt: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW or Adam through timm (no weight decay on biases and norm weights); the fused kernels on CUDA."""
    from timm.optim import create_optimizer_v2

    on_cuda = next(model.parameters()).is_cuda
    extra = {"fused": True} if on_cuda else {}
    return create_optimizer_v2(model, opt=opt, lr=lr, weight_decay=weight_decay, **extra)


def lr_factor(progress: float, warmup: float, floor: float) -> float:
    """Linear warmup over ``[0, warmup)``, then cosine decay from 1 to ``floor`` at ``progress`` = 1."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    t = (progress - warmup) / max(1.0 - warmup, 1e-9)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def create_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                     min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule: linear warmup to the base LR, then cosine decay down to the floor ``min_lr``."""
    base = optimizer.param_groups[0]["lr"]
    floor = min(min_lr / base, 1.0) if base > 0 else 0.0

    total = max(1, total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return lr_factor(step / total, warmup_steps / total, floor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def create_time_scheduler(optimizer: torch.optim.Optimizer, fraction: Callable[[], float], warmup: float,
                          min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """The same warmup + cosine shape over a time budget: ``fraction()`` is the share of the budget used."""
    base = optimizer.param_groups[0]["lr"]
    floor = min(min_lr / base, 1.0) if base > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: lr_factor(fraction(), warmup, floor))


def forward_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor, criterion: Callable, amp: Amp,
                 teacher: nn.Module | None = None, distill_alpha: float = 0.0, distill_temp: float = 4.0,
                 distill_fn: Callable | None = None) -> torch.Tensor:
    """The training loss of one batch (the part of a step that :class:`CompiledLoss` compiles).

    Loss = task loss (or ``(1 - alpha) * task + alpha * distillation`` with a teacher) + the model's auxiliary
    loss (EmoNeXt's attention regulariser, already weighted by the model).
    """
    with amp.autocast():
        logits, aux = model(x, return_aux=True)
        loss = criterion(logits.float(), target)
        if teacher is not None:
            with torch.no_grad():
                tx = x
                size = getattr(teacher, "input_size", None)
                if size and size != x.shape[-1]:
                    tx = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                t_logits = teacher(tx)
            loss = (1.0 - distill_alpha) * loss + distill_alpha * distill_fn(logits.float(), t_logits.float(),
                                                                             distill_temp)
        return loss + aux.float()


def use_compile(mode: str | bool, device: torch.device) -> bool:
    """``compile`` setting -> whether to compile: "auto" compiles on CUDA only, "on"/"off" (or a bool) as said."""
    if isinstance(mode, bool):
        return mode
    return device.type == "cuda" if mode == "auto" else mode == "on"


class CompiledLoss:
    """:func:`forward_loss` for fixed models, compiled with ``torch.compile`` (static shapes), with a fallback.

    If compiling fails (on the first step, or on a recompile for a new shape) one warning line is logged and
    every later step runs eagerly. ``compiled`` says which path is in use.

    Args:
        model, criterion, amp, teacher, distill_alpha, distill_temp, distill_fn: as :func:`forward_loss`.
        compile: compile at all (False: always eager).
        fullgraph: demand one graph (no graph breaks); off under DDP, whose optimiser splits the graph.
        backend: ``torch.compile`` backend ("inductor"; tests use "aot_eager", which skips code generation).
    """

    def __init__(self, model: nn.Module, criterion: Callable, amp: Amp, teacher: nn.Module | None = None,
                 distill_alpha: float = 0.0, distill_temp: float = 4.0, distill_fn: Callable | None = None,
                 compile: bool = True, fullgraph: bool = True, backend: str = "inductor") -> None:
        def loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return forward_loss(model, x, target, criterion, amp, teacher, distill_alpha, distill_temp, distill_fn)

        self.eager = loss
        self.compiled = compile
        self.calls = 0
        self._fn = torch.compile(loss, fullgraph=fullgraph, dynamic=False, backend=backend) if compile else loss

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self._fn(x, target)

    def may_fall_back(self, exc: BaseException) -> bool:
        """True (and eager from now on) if ``exc`` is a compile failure: any error of the first compiled call,
        later only the compiler's own errors (a recompile)."""
        if not self.compiled or not isinstance(exc, Exception):
            return False
        from torch._dynamo.exc import TorchDynamoException

        if self.calls > 1 and not isinstance(exc, TorchDynamoException):
            return False
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        log.warning("torch.compile failed (%s: %s); training eagerly", type(exc).__name__, first)
        self.compiled, self._fn = False, self.eager
        return True


class ModelEma:
    """EMA of a model's weights (timm's ``ModelEmaV3`` decay and warmup) updated with one ``_foreach_lerp_`` over
    tensor lists made once, instead of rebuilding both state_dicts every step.

    Floating-point parameters and buffers: ``ema = decay * ema + (1 - decay) * model``; other buffers (BatchNorm's
    step counts) are copied. ``module`` is the averaged model, ``get_decay(step)`` timm's warmup formula.

    Args:
        model: the trained model (its tensors are updated in place by the optimiser, so the lists stay valid).
        decay: the decay at the end of warmup.
        use_warmup: timm's ``1 - (1 + step / gamma) ** -power`` warmup of the decay.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, use_warmup: bool = True) -> None:
        from timm.utils import ModelEmaV3

        self._timm = ModelEmaV3(model, decay=decay, use_warmup=use_warmup)
        self.module = self._timm.module
        self._model: nn.Module | None = None
        self._lists: tuple[list[torch.Tensor], ...] = ()

    def get_decay(self, step: int | None = None) -> float:
        return self._timm.get_decay(step)

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], ...]:
        if model is not self._model:
            ema_float, model_float, ema_other, model_other = [], [], [], []
            for e, m in zip(self.module.state_dict(keep_vars=True).values(),
                            model.state_dict(keep_vars=True).values()):
                e, m = e.detach(), m.detach()
                (ema_float if e.is_floating_point() else ema_other).append(e)
                (model_float if e.is_floating_point() else model_other).append(m)
            self._model, self._lists = model, (ema_float, model_float, ema_other, model_other)
        return self._lists

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """One EMA step towards ``model``'s current weights."""
        ema_float, model_float, ema_other, model_other = self._pairs(model)
        torch._foreach_lerp_(ema_float, model_float, 1.0 - self.get_decay(step))
        if ema_other:
            torch._foreach_copy_(ema_other, model_other)


def train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, criterion: Callable,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, amp: Amp,
               clip_grad: float | None = None, teacher: nn.Module | None = None, distill_alpha: float = 0.0,
               distill_temp: float = 4.0, distill_fn: Callable | None = None,
               loss_fn: CompiledLoss | None = None) -> torch.Tensor:
    """Forward, backward and optimiser step for one batch. Returns the (detached) loss, on the device.

    ``loss_fn``: a (compiled) :class:`CompiledLoss` of the same model and loss settings, else :func:`forward_loss`
    runs eagerly. Gradients are clipped with the foreach implementation; nothing here waits for the device
    (except a float16 ``GradScaler``'s overflow check).
    """
    def forward_backward() -> torch.Tensor:
        if loss_fn is not None:
            loss = loss_fn(x, target)
        else:
            loss = forward_loss(model, x, target, criterion, amp, teacher, distill_alpha, distill_temp, distill_fn)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        return loss

    try:
        loss = forward_backward()
    except Exception as exc:  # noqa: BLE001 - only a compile failure is caught, anything else is raised again
        if loss_fn is None or not loss_fn.may_fall_back(exc):
            raise
        loss = forward_backward()
    if clip_grad:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad, foreach=True)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def train_one_epoch(model: nn.Module, batches: TrainBatches, criterion: Callable,
                    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler, amp: Amp,
                    epoch: int, *, raw_model: nn.Module | None = None, ema: Any = None, clip_grad: float | None = None,
                    teacher: nn.Module | None = None, distill_alpha: float = 0.0, distill_temp: float = 4.0,
                    distill_fn: Callable | None = None, start: dict[str, float] | None = None,
                    stop_requested: Callable[[], bool] = lambda: False, info: DistInfo | None = None,
                    check_every: int = 1, progress: bool = True, desc: str = "",
                    log_every_s: float = 60.0, loss_fn: CompiledLoss | None = None,
                    on_first_step: Callable[[], None] | None = None) -> dict[str, float]:
    """Train for one epoch (or its remainder, from ``start["step"]``).

    Without a progress bar (``progress=False``, e.g. a run logging to a file) a status line is logged every
    ``log_every_s`` seconds instead.

    The loss is summed on the device; only every ``check_every`` steps (and at the epoch's end) is it read back
    (the one host sync) and checked (non-finite -> :class:`NonFiniteLossError`). A stop request is honoured after
    every step (-> :class:`TrainingInterrupted` at a clean step boundary); with DDP the ranks agree on it every
    ``check_every`` steps. ``loss_fn``: the (compiled) forward + loss (see :func:`train_step`);
    ``on_first_step``: called once after the first step (e.g. to start a time budget after compiling).

    Returns:
        {"train_loss", "lr", "images_per_s", "seconds", "steps", "images", "progress" (this rank's sums, for
        saving a run stopped before the epoch's validation)}.
    """
    info = info or DistInfo()
    raw_model = raw_model or model
    model.train()
    steps = batches.steps_per_epoch()
    start = start or {}
    first = int(start.get("step", 0))
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches.images.device)
    count = int(start.get("count", 0))
    prior_loss, prior_sec, images = float(start.get("loss_sum", 0.0)), float(start.get("seconds", 0.0)), \
        int(start.get("images", 0))
    t0 = last_log = time.perf_counter()

    def progress_dict(step: int) -> dict[str, float]:
        return {"step": step, "loss_sum": prior_loss + float(loss_sum), "count": count,
                "seconds": prior_sec + time.perf_counter() - t0, "images": images}

    bar = progress_bar(steps, desc or f"epoch {epoch + 1} train", progress, initial=first, dynamic_ncols=True,
                       mininterval=1.0)
    for step, (x, y) in enumerate(batches.batches(epoch, first), start=first):
        loss = train_step(model, x, y, criterion, optimizer, scaler, amp, clip_grad, teacher, distill_alpha,
                          distill_temp, distill_fn, loss_fn=loss_fn)
        if on_first_step is not None:
            on_first_step()
            on_first_step = None
        scheduler.step()
        if ema is not None:
            ema.update(raw_model, step=epoch * steps + step + 1)
        loss_sum += loss
        count += 1
        images += x.shape[0]
        bar.update(1)
        checkpoint = (step + 1) % check_every == 0 or step + 1 == steps
        if not checkpoint and not info.enabled and stop_requested():
            checkpoint = True  # a stop without DDP: no need to wait for the next check
        if checkpoint:
            total = prior_loss + float(loss_sum)
            bad = 0.0 if math.isfinite(total) else 1.0
            stop = 1.0 if stop_requested() else 0.0
            bad, stop = (all_reduce_max(v, info, batches.images.device) for v in (bad, stop))
            if bad:
                bar.close()
                raise NonFiniteLossError(f"non-finite training loss at epoch {epoch + 1}, step {step + 1}/{steps}")
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                            refresh=False)
            now = time.perf_counter()
            if not progress and info.is_main and now - last_log >= log_every_s:
                last_log = now
                log.info("%s: step %d/%d, loss %.4f, lr %.2e, %.1f img/s", desc or f"epoch {epoch + 1}", step + 1,
                         steps, total / max(count, 1), optimizer.param_groups[0]["lr"],
                         (images - int(start.get("images", 0))) / max(now - t0, 1e-9))
            if stop and step + 1 < steps:
                bar.close()
                raise TrainingInterrupted(progress_dict(step + 1))
    bar.close()
    done = progress_dict(steps)
    loss_total, n_steps, n_images = all_reduce_sum([done["loss_sum"], done["count"], done["images"]], info,
                                                   batches.images.device)
    return epoch_stats(dict(done, loss_sum=loss_total, count=n_steps, images=n_images), optimizer, steps, done)


def epoch_stats(sums: dict[str, float], optimizer: torch.optim.Optimizer, steps: int,
                progress: dict[str, float] | None = None) -> dict[str, Any]:
    """``train_one_epoch``'s result from an epoch's sums (``loss_sum``, ``count``, ``images``, ``seconds``); also
    for an epoch cut short by a time budget. ``progress``: this rank's sums (default ``sums``)."""
    return {
        "train_loss": sums["loss_sum"] / max(sums["count"], 1),
        "lr": optimizer.param_groups[0]["lr"],
        "images_per_s": sums["images"] / max(sums["seconds"], 1e-9),
        "seconds": sums["seconds"],
        "steps": steps,
        "images": int(sums["images"]),
        "progress": progress if progress is not None else sums,
    }


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, img_size: int, batch_size: int, tta: str = "none",
                  amp: Amp | None = None, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD, channels_last: bool = False,
                  info: DistInfo | None = None, progress: bool = True, desc: str = "eval",
                  stop_requested: Callable[[], bool] = lambda: False) -> np.ndarray:
    """Class probabilities (N, C) for uint8 faces (N, S, S), averaged over the TTA views.

    With DDP each rank predicts a share and the results are gathered (every rank gets all N rows).
    """
    info = info or DistInfo()
    amp = amp or Amp(False, torch.float32, images.device.type)
    model.eval()
    idx_all = eval_shard(len(images), info)
    out: list[torch.Tensor] = []
    bar = progress_bar(len(idx_all), desc, progress, dynamic_ncols=True, mininterval=1.0)
    for i in range(0, len(idx_all), batch_size):
        if not info.enabled and stop_requested():  # with DDP, ranks agree on stopping between training steps
            bar.close()
            raise TrainingInterrupted({})
        idx = idx_all[i:i + batch_size].to(images.device)
        views = tta_views(images[idx], img_size, tta, mean, std, channels_last)
        probs = 0.0
        for v in views:
            with amp.autocast():
                logits = model(v)
            probs = probs + logits.float().softmax(-1)
        out.append((probs / len(views)).cpu())
        bar.update(len(idx))
    bar.close()
    probs = torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
    if info.enabled:
        parts = all_gather_objects(probs, info)
        full = np.zeros((len(images), parts[0].shape[1]), np.float32)
        for r, part in enumerate(parts):
            full[r::info.world_size] = part
        probs = full
    return probs


def evaluate(model: nn.Module, images: torch.Tensor, labels: np.ndarray, classes: tuple[str, ...] | list[str],
             img_size: int, batch_size: int, tta: str = "none", **kwargs: Any) -> dict[str, Any]:
    """Evaluate on uint8 faces with integer labels.

    Returns:
        {"loss" (mean NLL of the averaged probabilities), "acc", "macro_f1", "probs", "preds", "metrics"
        (full :func:`training.report.classification_metrics`)}.
    """
    probs = predict_probs(model, images, img_size, batch_size, tta, **kwargs)
    labels = np.asarray(labels)
    preds = probs.argmax(1)
    nll = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()) if len(labels) else 0.0
    metrics = classification_metrics(labels, preds, classes)
    return {"loss": nll, "acc": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "probs": probs,
            "preds": preds, "metrics": metrics}
