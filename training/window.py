"""A GPU window: several time-budgeted training jobs at once on one GPU, packed so that what matters comes home.

    python -m training.window --plan training/plans/first_window.yaml --out OUT

A plan (YAML) names the data, a deadline and the jobs::

    data: [packed=.device/pack/fer2013]   # dataset specs for every job (a job may set its own `data`)
    deadline: 540                          # seconds from the start by which OUT must hold everything
    stagger: 20                            # the first job runs alone this long (its img/s alone vs. shared)
    common: {batch_size: 256, lr: 2.0e-3}  # fer-train settings for every job
    jobs:                                  # in order of priority: the first ones' weights come home first
      - {name: rt_atto112, budget: 400, train: {model: emonext_atto, img_size: 112}}

Each job is a ``fer-train --time-budget`` process of its own (they share the GPU), logging to
``WORK/<name>/log.txt``; one progress line per job is printed every ``--status-every`` seconds. When a job's
training ends it writes its best weights in float16, its teacher logits (every face, flip-averaged), an ONNX
export checked against PyTorch, and ``result.json``. Every ``--pack-every`` seconds and at the end the runner
packs into OUT, within the return limits (at most 8 files of 16 MiB):

- ``summary.json``: the plan, each job's status, figures and throughput, and the sha256 of every part;
- ``logs.tar.gz``: each job's log, config, metrics, report and result;
- ``bundle.tar.NN``: a tar of each job's weights and ``logits.npz`` (priority order; float16, or int8 for the
  lowest priorities when not all fit in ``--max-bundle-mib``), split into parts of ``--part-mib``.

The format is ``training/bundle.py``'s (it writes and reads both sides).

So a window cut short still brings home the best weights written so far. Shortly before the deadline, jobs
still running get SIGTERM (they save and stop). ``python -m training.ingest OUT`` takes the results in at home.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from training.bundle import MAX_BUNDLE_MIB, PART_MIB, fp16_weights, pack, write_atomic

log = logging.getLogger("training.window")

def load_plan(path: str | Path) -> dict[str, Any]:
    """Read and check a plan file.

    Raises:
        ValueError: a missing file, no jobs, a job without name or budget, duplicate names.
    """
    try:
        plan = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read plan {path}: {err}") from None
    jobs = plan.get("jobs") or []
    if not jobs:
        raise ValueError(f"plan {path} has no jobs")
    names = [j.get("name") for j in jobs]
    if None in names or len(set(names)) != len(names):
        raise ValueError(f"plan {path}: every job needs a unique name")
    for job in jobs:
        if not float(job.get("budget") or 0) > 0:
            raise ValueError(f"plan {path}: job {job['name']} needs a budget in seconds")
    return plan


def job_config(plan: dict[str, Any], job: dict[str, Any], work: Path, scale: float,
               overrides: dict[str, Any]) -> dict[str, Any]:
    """The fer-train settings of one job: common < job < window settings < command-line overrides."""
    cfg: dict[str, Any] = dict(plan.get("common") or {})
    cfg.update(job.get("train") or {})
    cfg.setdefault("data", list(job.get("data") or plan.get("data") or []))
    cfg.update(time_budget=float(job["budget"]) * scale, project=str(work), name=job["name"], exist_ok=True,
               progress=False, log_every=15.0, checkpoint_every=max(1.0, 60.0 * min(1.0, scale * 4)))
    cfg.update(overrides)
    return cfg


# --- one job (a process of its own) ------------------------------------------------------------------------------


def run_job(config_path: Path) -> int:
    """Train one job, then write its float16 weights, teacher logits, ONNX check and ``result.json``."""
    import torch

    from training.checkpoint import load_checkpoint
    from training.config import build_config, load_yaml
    from training.train import run_training

    def deadline(signum, frame):  # after training (during it, fer-train itself saves and stops)
        raise TimeoutError("stopped by the window's deadline")

    signal.signal(signal.SIGTERM, deadline)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    cfg = build_config(load_yaml(config_path))
    run_dir = Path(cfg.project) / cfg.name
    result: dict[str, Any] = {"name": cfg.name, "model": cfg.model, "img_size": cfg.img_size, "status": "failed"}
    t0 = time.time()
    try:
        summary = run_training(cfg)
        result.update(status="trained", best_val_acc=summary["best_acc"], best_weights=summary["best_weights"],
                      test=summary.get("test"), train_seconds=round(time.time() - t0, 1))
        write_result(run_dir, result)
        ckpt = load_checkpoint(run_dir / "best.pt")
        fp16_weights(ckpt, run_dir / "weights_fp16.pt")
        finish_job(cfg, ckpt, run_dir, result)
        result["status"] = "done"
    except Exception as exc:  # noqa: BLE001 - reported in result.json; the window goes on with the other jobs
        log.exception("job %s failed", cfg.name)
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["seconds"] = round(time.time() - t0, 1)
    if torch.cuda.is_available():
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    write_result(run_dir, result)
    return 0 if result["status"] == "done" else 1


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    write_atomic(run_dir / "result.json", json.dumps(result, indent=1).encode())


def finish_job(cfg: Any, ckpt: dict[str, Any], run_dir: Path, result: dict[str, Any]) -> None:
    """Teacher logits of every face, and an ONNX export checked against PyTorch on real faces."""
    import torch

    from fer_core.model_meta import ModelMeta
    from training.checkpoint import build_model_from_checkpoint
    from training.engine import Amp
    from training.export import export_onnx
    from training.teacher_logits import write_teacher_logits
    from training.train import load_run_data

    meta = ModelMeta.from_dict(ckpt["meta"])
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu")
    data = load_run_data(cfg, progress=False)  # as the training read it (skip_bad too)
    model = build_model_from_checkpoint(ckpt).to(device)
    t = time.time()
    write_teacher_logits(model, data, meta.input_size, run_dir / "logits.npz", device, meta.model, meta.mean,
                         meta.std, Amp.resolve("auto", device))
    result["logits_seconds"] = round(time.time() - t, 1)
    t = time.time()
    figures = export_onnx(run_dir / "best.pt", run_dir / f"{cfg.name}.onnx", verify_specs=cfg.data,
                          verify_images=256, progress=False)
    result["onnx"] = {"seconds": round(time.time() - t, 1), "verify": figures.get("verify")}
    (run_dir / f"{cfg.name}.onnx").unlink(missing_ok=True)  # rebuilt at home from the fp16 weights


# --- the runner ---------------------------------------------------------------------------------------------------


def job_status(run_dir: Path) -> dict[str, Any]:
    """What a job's files say now: last epoch row, last status line, result."""
    out: dict[str, Any] = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        rows = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
        if rows:
            out["last"] = json.loads(rows[-1])
            out["epochs"] = len(rows)
    result = run_dir / "result.json"
    if result.is_file():
        try:
            out["result"] = json.loads(result.read_text())
        except json.JSONDecodeError:
            pass
    logfile = run_dir / "log.txt"
    if logfile.is_file():
        lines = [ln for ln in logfile.read_text(errors="replace").splitlines() if ln.strip()]
        out["log_tail"] = lines[-1][-160:] if lines else ""
    return out


def status_line(name: str, proc: subprocess.Popen | None, status: dict[str, Any], elapsed: float) -> str:
    last = status.get("last") or {}
    state = "running" if proc and proc.poll() is None else (status.get("result") or {}).get("status", "ended")
    if last:
        ema = last.get("ema_val_acc")
        return (f"[{elapsed:5.0f}s] {name:<14} {state:<8} ep {last['epoch']:>3} {last.get('elapsed_s', 0):5.0f}s "
                f"loss {last['train_loss']:.3f} val {last['val_acc']:.4f}" + (f"/ema {ema:.4f}" if ema else "") +
                f" best {last['best_acc']:.4f} {last['images_per_s']:.0f} img/s")
    return f"[{elapsed:5.0f}s] {name:<14} {state:<8} {status.get('log_tail', '')}"


def run_window(plan_path: str | Path, out: str | Path, work: str | Path, scale: float = 1.0,
               overrides: dict[str, Any] | None = None, status_every: float = 15.0, pack_every: float = 60.0,
               max_bundle_mib: float = MAX_BUNDLE_MIB, part_mib: float = PART_MIB,
               probe: float | None = None) -> dict[str, Any]:
    """Run a plan's jobs at once, report, pack. Returns the final summary (also in ``out/summary.json``).

    ``probe`` (or the plan's ``probe: SECONDS``): first time each job's training step alone for that long
    (:mod:`training.probe`; its compiled graphs are then cached for the jobs); counted in the deadline.
    """
    t0 = time.time()
    plan = load_plan(plan_path)
    if (Path.cwd() / ".git").exists():  # in a checkout: what travelled must have fitted (a box has no .git)
        log.info(check_travel(plan))
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    deadline = float(plan.get("deadline") or 540) * scale
    names = [j["name"] for j in plan["jobs"]]
    threads = max(1, (os.cpu_count() or 2) // len(names))
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads))
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str((work / "inductor_cache").resolve()))  # shared by all jobs
    probe_rows = run_probe(plan_path, work, float(probe if probe is not None else plan.get("probe") or 0),
                           overrides or {}, env)
    procs: dict[str, subprocess.Popen] = {}
    stagger = float(plan.get("stagger") or 0) * scale
    for i, job in enumerate(plan["jobs"]):
        if i == 1 and stagger:  # the first job alone for a while: its img/s alone vs. shared
            log.info("the first job runs alone for %.0f s", stagger)
            time.sleep(stagger)
        cfg = job_config(plan, job, work, scale, overrides or {})
        run_dir = work / job["name"]
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "job.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        with open(run_dir / "log.txt", "w") as logf:
            procs[job["name"]] = subprocess.Popen(
                [sys.executable, "-m", "training.window", "--job", str(run_dir / "job.yaml")], stdout=logf,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.info("started %s: %s at %s px, budget %.0f s", job["name"], cfg.get("model"), cfg.get("img_size"),
                 cfg["time_budget"])

    summary: dict[str, Any] = {"plan": plan, "scale": scale, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "host": host_info(), "probe": probe_rows}
    max_bytes, part_bytes = int(max_bundle_mib * 2**20), int(part_mib * 2**20)
    last_status = last_pack = time.time()
    stopped = False
    while any(p.poll() is None for p in procs.values()):
        time.sleep(1.0)
        now = time.time()
        if now - last_status >= status_every:
            last_status = now
            for name in names:
                log.info(status_line(name, procs[name], job_status(work / name), now - t0))
        if not stopped and now - t0 >= deadline - 25 * scale:
            stopped = True
            for name, proc in procs.items():
                if proc.poll() is None:
                    log.warning("deadline near: stopping %s (SIGTERM)", name)
                    os.killpg(proc.pid, signal.SIGTERM)
        if stopped and now - t0 >= deadline - 5 * scale:
            for proc in procs.values():
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        if now - last_pack >= pack_every:
            last_pack = now
            snapshot(work, names)
            pack(out, work, names, dict(summary, jobs=jobs_summary(work, names, procs), final=False), max_bytes,
                 part_bytes)
    snapshot(work, names)
    summary = pack(out, work, names, dict(summary, jobs=jobs_summary(work, names, procs), final=True,
                                          seconds=round(time.time() - t0, 1)), max_bytes, part_bytes)
    for name in names:
        log.info(status_line(name, procs[name], job_status(work / name), time.time() - t0))
    log.info("packed into %s in %.0f s: %s", out, time.time() - t0,
             ", ".join(f"{p['file']} {p['bytes'] / 2**20:.1f} MiB" for p in summary["bundle"]["parts"]))
    return summary


def run_probe(plan_path: str | Path, work: Path, seconds: float, overrides: dict[str, Any],
              env: dict[str, str]) -> list[dict[str, Any]] | None:
    """``python -m training.probe`` over the plan (each job alone, ``seconds`` each); its rows, None if not run."""
    if seconds <= 0:
        return None
    out = work / "probe.json"
    cmd = [sys.executable, "-m", "training.probe", "--plan", str(plan_path), "--seconds", str(seconds),
           "--json", str(out)] + [f"--set={k}={json.dumps(v)}" for k, v in overrides.items()]
    log.info("probe: each job's step alone for %g s", seconds)
    with open(work / "probe.log", "w") as logf:
        code = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env).returncode
    for line in (work / "probe.log").read_text(errors="replace").splitlines():
        if line.startswith("probe "):
            log.info(line)
    if code != 0 or not out.is_file():
        log.warning("probe failed (exit %d), see %s", code, work / "probe.log")
        return None
    return json.loads(out.read_text())


def snapshot(work: Path, names: list[str]) -> None:
    """For a job still training (or cut short), make ``weights_fp16.pt`` from its newest ``best.pt``."""
    from training.checkpoint import CheckpointError, load_checkpoint

    for name in names:
        best, small = work / name / "best.pt", work / name / "weights_fp16.pt"
        if best.is_file() and (not small.is_file() or small.stat().st_mtime < best.stat().st_mtime):
            try:
                fp16_weights(load_checkpoint(best), small)
            except (CheckpointError, OSError) as err:
                log.warning("%s: no snapshot of best.pt yet (%s)", name, err)


def jobs_summary(work: Path, names: list[str], procs: dict[str, subprocess.Popen]) -> dict[str, Any]:
    jobs = {}
    for name in names:
        st = job_status(work / name)
        jobs[name] = {"returncode": procs[name].poll(), "epochs": st.get("epochs"), "last": st.get("last"),
                      "result": st.get("result")}
    return jobs


def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


TRAVEL_LIMIT_MIB = 60.0
"""What may travel to a GPU window: 64 MiB carry limit, less room for what the runner adds."""


def travel_items(plan: dict[str, Any], root: Path) -> dict[str, int]:
    """Bytes per path of what travels to a GPU box: git-tracked files, untracked files git does not ignore, and
    the plan's data paths inside ``root`` (``packed=.device/pack/...``: ignored, carried on purpose).

    Raises:
        ValueError: a pack the plan names inside ``root`` does not exist.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    items = {name: (root / name).stat().st_size for name in listed if name and (root / name).is_file()}
    specs = list(plan.get("data") or []) + [d for job in plan.get("jobs") or [] for d in job.get("data") or []]
    for spec in specs:
        kind, _, where = str(spec).partition("=")
        path = (root / where.split(":")[0]).resolve()
        if not path.is_relative_to(root.resolve()):
            continue
        if not path.exists():
            if kind.startswith("packed"):
                raise ValueError(f"the plan's pack {where} is missing: build it first (python -m training.data.pack "
                                 "--help; the plan's comments give the command)")
            continue
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        for f in files:
            items[str(f.relative_to(root.resolve()))] = f.stat().st_size
    return items


def check_travel(plan: str | Path | dict[str, Any], root: str | Path = ".", limit_mib: float = TRAVEL_LIMIT_MIB) -> str:
    """One line with what would travel for a plan (its file or :func:`load_plan`'s dict); raises ``ValueError``
    naming the biggest items over the limit."""
    items = travel_items(plan if isinstance(plan, dict) else load_plan(plan), Path(root))
    total = sum(items.values())
    biggest = ", ".join(f"{name} {size / 2**20:.1f}" for name, size in sorted(items.items(), key=lambda kv: -kv[1])[:4])
    line = f"travel {total / 2**20:.1f} MiB of {limit_mib:g} MiB ({len(items)} files; biggest, MiB: {biggest})"
    if total > limit_mib * 2**20:
        raise ValueError(f"too much to travel: {line}")
    return line


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as fer-train settings (values read as YAML: numbers, booleans, lists)."""
    overrides = {}
    for item in items:
        key, _, value = item.partition("=")
        overrides[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return overrides


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.window", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", help="plan YAML")
    p.add_argument("--out", help="folder for what must come home")
    p.add_argument("--work", default="runs/window", help="working folder (run folders of the jobs)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply budgets and deadline (CPU rehearsals)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fer-train setting for every job, overriding the plan (e.g. device=cpu, subset=32)")
    p.add_argument("--status-every", type=float, default=15.0)
    p.add_argument("--pack-every", type=float, default=60.0)
    p.add_argument("--max-bundle-mib", type=float, default=MAX_BUNDLE_MIB,
                   help="what the weights and logits may take (default: the device's return limits)")
    p.add_argument("--part-mib", type=float, default=PART_MIB)
    p.add_argument("--probe", type=float, default=None, metavar="SECONDS",
                   help="first time each job's step alone this long (default: the plan's probe, else none)")
    p.add_argument("--check-travel", metavar="PLAN",
                   help="say what would travel to the GPU box for PLAN (tracked + untracked files + its packs inside "
                        f"the repo) and exit 2 over {TRAVEL_LIMIT_MIB:g} MiB")
    p.add_argument("--job", help=argparse.SUPPRESS)  # internal: run one job's config
    args = p.parse_args(argv)
    if args.job:
        return run_job(Path(args.job))
    if args.check_travel:
        try:
            print(check_travel(args.check_travel))
        except (ValueError, subprocess.CalledProcessError, OSError) as err:
            print(f"window: error: {err}", file=sys.stderr)
            return 2
        return 0
    if not args.plan or not args.out:
        p.error("--plan and --out are required")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    logging.getLogger().addHandler(logging.FileHandler(work / "window.log"))
    overrides = parse_overrides(args.set)
    try:
        summary = run_window(args.plan, args.out, work, args.scale, overrides, args.status_every, args.pack_every,
                             args.max_bundle_mib, args.part_mib, args.probe)
    except ValueError as err:
        print(f"window: error: {err}", file=sys.stderr)
        return 2
    failed = [n for n, j in summary["jobs"].items() if (j.get("result") or {}).get("status") != "done"]
    if failed:
        log.warning("jobs not done: %s", ", ".join(failed))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
