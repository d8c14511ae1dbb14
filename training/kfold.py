"""k-fold cross-validation (``fer-train --folds K``): one training run per fold, then their mean and spread.

The images whose split the layout leaves open (a class-per-folder dataset without split folders) are dealt into K
folds, by group with ``--group-by`` (no subject in two folds), else stratified by class (``training/data/splits.py``).
Run k (1..K) tests on fold k and validates on 10 % of the other folds; it is an ordinary run in
``runs/<name>/fold<k>/``. The test accuracy and macro-F1 of each run (its best weights, no TTA, from its
``report.json``), their mean, sample standard deviation, min and max are printed as one table and written to
``runs/<name>/folds.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from training.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("accuracy", "macro_f1")


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max())}


def run_folds(cfg: TrainConfig) -> dict[str, Any]:
    """Train one run per fold in ``runs/<name>/fold<k>/`` and summarise them in ``runs/<name>/folds.json``.

    Returns:
        The summary written to ``folds.json``: ``run_dir`` (``runs/<name>``), ``runs`` (per fold: run folder, test
        images, accuracy, macro-F1, best validation accuracy) and ``accuracy`` / ``macro_f1`` (mean, std, min, max).

    Raises:
        ConfigError: no ``folds``, ``--resume`` of the whole k-fold run, or a run folder that exists.
        training.data.DataError: bad data or split options (from the first fold, before anything trains).
    """
    from training.train import check_run_dir, run_training

    if not cfg.folds:
        raise ConfigError("run_folds needs folds (fer-train --folds K)")
    if cfg.resume:
        raise ConfigError("--resume continues one fold of a k-fold run: fer-train --resume runs/<name>/fold<k>/last.pt")
    base = check_run_dir(cfg, resuming=False)
    runs: list[dict[str, Any]] = []
    for k in range(1, cfg.folds + 1):
        log.info("fold %d of %d", k, cfg.folds)
        summary = run_training(dataclasses.replace(cfg, project=str(base), name=f"fold{k}", fold=k))
        run_dir = Path(summary["run_dir"])
        report_path = run_dir / "report.json"
        if not report_path.is_file():
            raise ConfigError(f"{run_dir}: the run wrote no test report (no best.pt), so its fold cannot be scored")
        plain = json.loads(report_path.read_text())["tta"]["none"]
        runs.append({"fold": k, "run_dir": str(run_dir), "test_images": plain["n"], "accuracy": plain["accuracy"],
                     "macro_f1": plain["macro_f1"], "best_val_acc": summary["best_acc"]})
    result: dict[str, Any] = {
        "run_dir": str(base), "folds": cfg.folds, "group_by": cfg.group_by, "seed": cfg.seed, "data": list(cfg.data),
        "model": cfg.model,
        "scored_on": "each fold's test split, best weights, no TTA", "runs": runs,
        **{m: spread([r[m] for r in runs]) for m in METRICS},
    }
    if os.environ.get("RANK", "0") == "0":
        (base / "folds.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def format_table(result: dict[str, Any]) -> str:
    """The per-fold test accuracy and macro-F1 with their mean, std and min-max, as one text table."""
    lines = [f"{'fold':<8} {'test images':>11} {'accuracy':>15} {'macro-F1':>15}"]
    for r in result["runs"]:
        lines.append(f"{r['fold']:<8} {r['test_images']:>11} {r['accuracy']:>15.4f} {r['macro_f1']:>15.4f}")
    acc, f1 = result["accuracy"], result["macro_f1"]
    lines.append(f"{'mean':<8} {'':>11} {acc['mean']:>15.4f} {f1['mean']:>15.4f}")
    lines.append(f"{'std':<8} {'':>11} {acc['std']:>15.4f} {f1['std']:>15.4f}")
    minmax = [f"{s['min']:.4f}-{s['max']:.4f}" for s in (acc, f1)]
    lines.append(f"{'min-max':<8} {'':>11} {minmax[0]:>15} {minmax[1]:>15}")
    return "\n".join(lines)
