"""Training configuration: one dataclass, YAML files, and the merge order defaults < YAML < command line.

A run's resolved configuration is written to ``runs/<name>/config.yaml`` and stored as a plain dict in every
checkpoint, so ``fer-train --config runs/x/config.yaml`` repeats a run.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fer_core.model_meta import DEFAULT_MEAN, DEFAULT_STD
from fer_core.suggest import did_you_mean

if TYPE_CHECKING:
    from training.data.splits import SplitRule


class ConfigError(ValueError):
    """A bad setting: unknown key, wrong type, unreadable YAML file, run folder clash."""


@dataclass
class TrainConfig:
    """Every setting of a training run (the command-line flags use dashes for the underscores)."""

    # what to train on
    model: str = "emonext_tiny"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    img_size: int = 224
    pretrained: bool = False
    pretrained_path: str | None = None
    init: str | None = None  # start from these weights (training.weights.init_model): name or file
    subset: int | None = None
    cache_size: int = 48
    cache_dir: str | None = None
    skip_bad: bool = False
    equalize: bool = True
    group_by: str | None = None  # regex on file names, first group = subject: no subject in two splits (data/splits.py)
    folds: int | None = None  # k-fold cross-validation: training/kfold.py runs one training per fold
    fold: int | None = None  # the fold (1..folds) held out as test; training/kfold.py sets it for each run
    mean: float = DEFAULT_MEAN
    std: float = DEFAULT_STD
    # schedule and optimiser
    epochs: int = 30
    time_budget: float | None = None
    batch_size: int = 128
    eval_batch_size: int | None = None
    opt: str = "adamw"
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup_epochs: float = 2.0
    lr_scale: str = "none"  # "sqrt": lr x sqrt(global batch / 256), "linear": x (global batch / 256)
    weight_decay: float = 0.05
    clip_grad: float | None = 1.0
    # regularisation
    drop_path: float | None = None
    label_smoothing: float | None = None
    class_weighted: bool | None = None
    ema: bool = True
    ema_decay: float = 0.999
    # augmentation
    scale_min: float = 0.75
    rotate: float = 20.0
    hflip: float = 0.5
    erase: float = 0.25
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    # distillation
    teacher: str | None = None
    distill_alpha: float = 0.5
    distill_temp: float = 4.0
    soft_targets: str | None = None
    # machine
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    compile: str = "auto"  # torch.compile the step: auto (on CUDA), on, off (YAML/CLI booleans mean on/off)
    workers: int | None = None
    seed: int = 0
    # run folder
    project: str = "runs"
    name: str | None = None
    exist_ok: bool = False
    resume: str | None = None
    progress: bool = True
    log_every: float = 60.0
    checkpoint_every: float = 120.0
    val_every_s: float | None = None  # validate after the first epoch that ends this long after the last one

    def split_rule(self) -> "SplitRule":
        """How the data's open splits are split: ``group_by``, and the held-out ``fold`` of ``folds``."""
        from training.data.splits import SplitRule

        return SplitRule(group_by=self.group_by, folds=self.folds, fold=self.fold)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (safe for YAML and ``weights_only`` checkpoints)."""
        return asdict(self)


CHOICES = {
    "opt": ("adamw", "adam"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "device": ("auto", "cpu", "cuda"),
    "compile": ("auto", "on", "off"),
    "lr_scale": ("none", "sqrt", "linear"),
}


def field_names() -> list[str]:
    """Names of all config keys."""
    return [f.name for f in fields(TrainConfig)]


def _check_key(key: str) -> str:
    key = key.replace("-", "_")
    names = field_names()
    if key not in names:
        raise ConfigError(f"unknown setting '{key}'.{did_you_mean(key, names)}")
    return key


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a run YAML file into a dict with checked keys.

    Raises:
        ConfigError: missing/unreadable file, not a mapping, unknown keys.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(raw).__name__}")
    try:
        return {_check_key(str(k)): v for k, v in raw.items()}
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def build_config(*layers: dict[str, Any]) -> TrainConfig:
    """Merge setting dicts in order (later wins) over the defaults and validate the result.

    Raises:
        ConfigError: unknown keys or invalid values.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({_check_key(k): v for k, v in layer.items()})
    if isinstance(merged.get("data"), str):
        merged["data"] = [merged["data"]]
    if merged.get("init") and not merged.get("resume"):  # fine-tuning: the source's model, size, a gentle schedule
        from training.weights import init_settings

        merged = {**init_settings(merged["init"]), **merged}
    cfg = TrainConfig(**merged)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Check value ranges and choices.

    Raises:
        ConfigError: naming the setting and the problem.
    """
    if isinstance(cfg.compile, bool):
        cfg.compile = "on" if cfg.compile else "off"
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got '{getattr(cfg, key)}'")
    if cfg.img_size < 32:
        raise ConfigError(f"img_size must be at least 32, got {cfg.img_size}")
    if cfg.epochs < 1 or cfg.batch_size < 2:
        raise ConfigError("epochs must be >= 1 and batch_size >= 2")
    if cfg.subset is not None and cfg.subset < 1:
        raise ConfigError(f"subset must be a positive number of images, got {cfg.subset}")
    if not 0.0 < cfg.scale_min <= 1.0:
        raise ConfigError(f"scale_min must be in (0, 1], got {cfg.scale_min}")
    if not 0.0 <= cfg.distill_alpha <= 1.0:
        raise ConfigError(f"distill_alpha must be in [0, 1], got {cfg.distill_alpha}")
    if not isinstance(cfg.model_kwargs, dict):
        raise ConfigError(f"model_kwargs must be a mapping, got {cfg.model_kwargs!r}")
    if cfg.time_budget is not None and cfg.time_budget <= 0:
        raise ConfigError(f"time_budget must be a positive number of seconds, got {cfg.time_budget}")
    if cfg.std <= 0:
        raise ConfigError(f"std must be positive, got {cfg.std}")
    if cfg.lr <= 0 or cfg.min_lr < 0:
        raise ConfigError("lr must be > 0 and min_lr >= 0")
    if cfg.val_every_s is not None and cfg.val_every_s < 0:
        raise ConfigError(f"val_every_s must be >= 0 seconds (0 or unset: every epoch), got {cfg.val_every_s}")
    if cfg.group_by is not None:
        try:
            re.compile(cfg.group_by)
        except re.error as err:
            raise ConfigError(f"group_by '{cfg.group_by}' is not a valid regular expression: {err}") from None
    if cfg.folds is not None and cfg.folds < 2:
        raise ConfigError(f"folds must be at least 2, got {cfg.folds}")
    if cfg.fold is not None and not (cfg.folds and 1 <= cfg.fold <= cfg.folds):
        raise ConfigError(f"fold must be between 1 and folds ({cfg.folds}), got {cfg.fold}")
    if cfg.init and (cfg.pretrained or cfg.pretrained_path):
        raise ConfigError("init and pretrained/pretrained_path exclude each other: --init already loads the backbone")


def save_yaml(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
