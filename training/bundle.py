"""What a GPU window brings home, in one place: written by ``training.window``, read by ``training.ingest``.

A window's ``OUT`` folder holds at most ``OUT_FILES`` files of at most ``OUT_FILE_MIB`` each (the device's return
limits):

- ``summary.json``: the plan, each job's status and figures, and the sha256 of the bundle and of every part;
- ``logs.tar.gz``: each job's log, config, metrics, report and result;
- ``bundle.tar.NN``: one tar, split into parts, of each job's weights and teacher logits, in plan (priority)
  order. Weights travel as float16 (``weights_fp16.pt``). When they do not all fit, the lowest-priority jobs'
  weights travel as int8 instead (``weights_int8.pt``: symmetric, one scale per output channel for every float
  tensor of two or more dimensions, the rest float16; about half the size), and only what still does not fit
  stays behind. ``summary.json`` lists what went how.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import torch

PART_PREFIX = "bundle.tar."
OUT_FILES = 8  # the device returns at most this many files ...
OUT_FILE_MIB = 16.0  # ... of at most this size each
PART_MIB = 15.9
MAX_BUNDLE_MIB = (OUT_FILES - 2) * PART_MIB  # summary.json and logs.tar.gz take two of the files
FP16, INT8 = "weights_fp16.pt", "weights_int8.pt"
LOGS = ("log.txt", "config.yaml", "metrics.jsonl", "report.json", "result.json", "curves.png",
        "confusion_matrix.png", "job.yaml")


class BundleError(RuntimeError):
    """Missing, damaged or incomplete window results."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- weights for travel ------------------------------------------------------------------------------------------


def fp16_weights(ckpt: dict[str, Any], path: Path) -> None:
    """The checkpoint's best weights in float16 as a small checkpoint (raw slot, no EMA, no optimiser)."""
    from training.checkpoint import save_checkpoint, select_weights

    state, which = select_weights(ckpt, "best")
    small = {"model": {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}, "ema": None,
             "best_weights": "raw", "source_weights": which, "best_acc": ckpt.get("best_acc"),
             "epoch": ckpt.get("epoch"), "elapsed_s": ckpt.get("elapsed_s"), "config": ckpt.get("config"),
             "meta": ckpt["meta"]}
    save_checkpoint(small, path)


def quantize_int8(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Symmetric int8 with one float16 scale per output channel for float tensors of 2+ dims; others float16."""
    q, scales = {}, {}
    for key, v in state.items():
        if v.is_floating_point() and v.dim() >= 2:
            v = v.float()
            scale = v.abs().amax(dim=tuple(range(1, v.dim())), keepdim=True).clamp_min(1e-12) / 127.0
            scale = scale.half()
            q[key] = torch.round(v / scale.float()).clamp(-127, 127).to(torch.int8)
            scales[key] = scale
        else:
            q[key] = v.half() if v.is_floating_point() else v
    return q, scales


def dequantize_int8(q: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 tensors back from :func:`quantize_int8`."""
    return {k: (v.float() * scales[k].float() if k in scales else (v.float() if v.is_floating_point() else v))
            for k, v in q.items()}


def int8_weights(fp16_path: Path, path: Path) -> None:
    """An int8 copy of a ``weights_fp16.pt`` file (the scales in ``"scales"``)."""
    from training.checkpoint import load_checkpoint, save_checkpoint

    small = load_checkpoint(fp16_path)
    small["model"], small["scales"] = quantize_int8(small["model"])
    save_checkpoint(small, path)


def load_travel_weights(path: Path) -> dict[str, Any]:
    """A ``weights_fp16.pt`` or ``weights_int8.pt`` file as a checkpoint with float32 weights."""
    from training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.get("scales"):
        ckpt["model"] = dequantize_int8(ckpt["model"], ckpt.pop("scales"))
    else:
        ckpt["model"] = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["model"].items()}
    return ckpt


def restore_checkpoint(small: Path, dest: Path) -> None:
    """A travel weights file back into a float32 ``best.pt`` that fer-export and fer-eval read."""
    from training.checkpoint import save_checkpoint

    save_checkpoint(load_travel_weights(small), dest)


def travel_weights(job_dir: Path) -> Path | None:
    """The weights file that came home for a job (float16 preferred), or None."""
    for name in (FP16, INT8):
        if (job_dir / name).is_file():
            return job_dir / name
    return None


# --- writing (on the GPU box) ------------------------------------------------------------------------------------


def choose_weights(work: Path, names: list[str], max_bytes: int) -> dict[str, str | None]:
    """Per job, which weights file travels: as many jobs as fit, then as many of them in float16 as fit.

    Priority is plan order: the first jobs are the ones that travel, and travel in float16; the others go as int8
    (about half the size) or, when even that does not fit, stay behind (None).
    """
    have = [n for n in names if (work / n / FP16).is_file()]
    fp16 = [(work / n / FP16).stat().st_size for n in have]
    int8 = [size // 2 + 64 * 1024 for size in fp16]  # int8 tensors + scales + pickle overhead
    logits = sum((work / n / "logits.npz").stat().st_size for n in names if (work / n / "logits.npz").is_file())
    budget = max_bytes - logits - 4096 * (2 * len(names) + 2)  # tar headers and end blocks
    for travel in range(len(have), -1, -1):
        for in_fp16 in range(travel, -1, -1):
            if sum(fp16[:in_fp16]) + sum(int8[in_fp16:travel]) <= budget:
                return {n: FP16 if i < in_fp16 else INT8 if i < travel else None for i, n in enumerate(have)}
    return {}


def build_bundle(work: Path, names: list[str], max_bytes: int) -> tuple[bytes, list[dict[str, Any]]]:
    """A tar of each job's weights (float16, else int8) and logits, in priority order, under ``max_bytes``."""
    choice = choose_weights(work, names, max_bytes)
    buf, contents = io.BytesIO(), []
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            weights = choice.get(name)
            fp16_path = work / name / FP16
            if weights == INT8:
                int8_path = work / name / INT8
                if not int8_path.is_file() or int8_path.stat().st_mtime < fp16_path.stat().st_mtime:
                    int8_weights(fp16_path, int8_path)
            for file in (weights or FP16, "logits.npz"):
                path = work / name / file
                if not path.is_file():
                    continue
                size = path.stat().st_size
                if buf.tell() + size + 2048 > max_bytes or (file == FP16 and weights is None):
                    contents.append({"job": name, "file": file, "bytes": size, "packed": False})
                    continue
                tar.add(path, arcname=f"{name}/{file}")
                contents.append({"job": name, "file": file, "bytes": size, "packed": True})
    return buf.getvalue(), contents


def logs_archive(work: Path, names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            for file in LOGS:
                path = work / name / file
                if path.is_file():
                    tar.add(path, arcname=f"{name}/{file}")
        for extra in ("window.log", "gpu.csv"):
            if (work / extra).is_file():
                tar.add(work / extra, arcname=extra)
    return buf.getvalue()


def pack(out: Path, work: Path, names: list[str], summary: dict[str, Any], max_bytes: int,
         part_bytes: int) -> dict[str, Any]:
    """Write summary.json, logs.tar.gz and the bundle parts into ``out`` (stale parts removed)."""
    bundle, contents = build_bundle(work, names, max_bytes)
    parts = [bundle[i:i + part_bytes] for i in range(0, len(bundle), part_bytes)] if bundle else []
    part_info = []
    for i, part in enumerate(parts):
        name = f"{PART_PREFIX}{i:02d}"
        write_atomic(out / name, part)
        part_info.append({"file": name, "bytes": len(part), "sha256": sha256(part)})
    for stale in out.glob(PART_PREFIX + "*"):
        if stale.name not in {p["file"] for p in part_info}:
            stale.unlink()
    write_atomic(out / "logs.tar.gz", logs_archive(work, names))
    summary = dict(summary, bundle={"sha256": sha256(bundle), "bytes": len(bundle), "parts": part_info,
                                    "contents": contents}, packed_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    write_atomic(out / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


# --- reading (at home) -------------------------------------------------------------------------------------------


def read_bundle(out: Path) -> tuple[dict[str, Any], bytes]:
    """``(summary, bundle bytes)`` with every part and the whole checked against their sha256.

    Raises:
        BundleError: no summary, a missing part, a checksum mismatch.
    """
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BundleError(f"{out}: no readable summary.json ({err})") from None
    chunks = []
    for part in summary["bundle"]["parts"]:
        path = out / part["file"]
        if not path.is_file():
            raise BundleError(f"{path}: part missing")
        data = path.read_bytes()
        if sha256(data) != part["sha256"]:
            raise BundleError(f"{path}: sha256 mismatch (damaged in transfer?)")
        chunks.append(data)
    bundle = b"".join(chunks)
    if sha256(bundle) != summary["bundle"]["sha256"]:
        raise BundleError(f"{out}: the joined bundle does not match its sha256")
    return summary, bundle


def extract(data: bytes, dest: Path, gz: bool = False) -> list[str]:
    """Unpack a tar held in memory into ``dest`` (no paths outside it). Returns the member names."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz" if gz else "r") as tar:
        names = tar.getnames()
        for name in names:
            if name.startswith("/") or ".." in Path(name).parts:
                raise BundleError(f"refusing the archive member {name}")
        tar.extractall(dest)  # members checked above
    return names
