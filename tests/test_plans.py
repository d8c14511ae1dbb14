"""Every GPU-window plan in training/plans is valid before it meets a GPU: known settings, data kinds and models."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import build_config
from training.data.specs import check_kind
from training.models import list_models
from training.window import job_config, load_plan

PLANS = sorted((Path(__file__).parents[1] / "training" / "plans").glob("*.yaml"))


@pytest.mark.parametrize("plan_path", PLANS, ids=[p.stem for p in PLANS])
def test_every_job_of_every_plan_builds_its_config(plan_path, tmp_path):
    plan = load_plan(plan_path)
    for job in plan["jobs"]:
        cfg = build_config(job_config(plan, job, tmp_path, 1.0, {}))  # unknown keys or bad values raise here
        assert cfg.model in list_models(), f"{job['name']}: unknown model {cfg.model}"
        assert cfg.data, f"{job['name']}: no data"
        for spec in cfg.data:
            check_kind(str(spec).partition("=")[0])
        assert cfg.time_budget and cfg.time_budget < float(plan.get("deadline") or 540)


def test_window2_warm_starts_from_the_shipped_weights():
    plan = load_plan(Path(__file__).parents[1] / "training" / "plans" / "window2.yaml")
    inits = {job["name"]: (job.get("train") or {}).get("init") for job in plan["jobs"]}
    assert inits["rt_atto112_w2"] == "fer_realtime" and inits["fp_atto112_w2"] == "fer_ferplus"
    models = {(job.get("train") or {}).get("model") for job in plan["jobs"]}
    assert {"ctan_tiny", "emonext_tiny"} <= models
