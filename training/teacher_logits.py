"""Teacher logits: a trained model's flip-averaged logits for every face of a dataset, kept small for distillation.

A GPU window writes one file per model; it travels home and lives in the repo (``models/teachers/``), so CPU
training can distil from it later without the teacher's weights (``fer-train --soft-targets FILE``).

File (``.npz``, compressed): ``files`` (each face's file name, the key, as bytes), ``logits_q`` uint8 (N, C) with
``logits_low`` and ``logits_step`` (logit = low + q * step), ``classes``, ``split`` (0 train, 1 val, 2 test),
``model``. Older files with float16 ``logits`` still read. Eight bits cost at most half a step (0.018-0.023 logits
for the shipped teachers): their distillation targets softmax(logits / T) move by at most 0.010 at T = 1 and 0.002
at the default T = 4 (mean 0.0003), where two teachers of the same faces (EmoNeXt-atto and -femto) differ by 0.013
on average at T = 4, so the tolerance is 0.01 at T = 1. A FER2013 file is 0.40 MB instead of 0.64 MB.

    python -m training.teacher_logits --checkpoint runs/x/best.pt --data fer2013=../shared/data/fer2013 --out t.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer_core.model_meta import DEFAULT_MEAN, DEFAULT_STD, ModelMeta
from fer_core.probs import softmax
from training.config import ConfigError
from training.data import FaceData, FaceSplit
from training.data.facedata import SPLITS
from training.transforms import tta_views


def face_key(file: str) -> str:
    """The key of a face: its file name without folders (FER2013 and FER+ names are unique across splits)."""
    return Path(file).name


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, img_size: int, batch_size: int = 512,
                   mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD, amp: Any = None, channels_last: bool = False) -> np.ndarray:
    """Flip-averaged logits (N, C) float32 of uint8 faces (N, S, S) on the model's device."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        views = tta_views(images[i:i + batch_size], img_size, "flip", mean, std, channels_last)
        total = 0.0
        for v in views:
            if amp is not None:
                with amp.autocast():
                    total = total + model(v).float()
            else:
                total = total + model(v).float()
        out.append((total / len(views)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def write_teacher_logits(model: nn.Module, data: FaceData, img_size: int, path: str | Path, device: torch.device,
                         model_name: str = "", mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD, amp: Any = None,
                         channels_last: bool = False) -> dict[str, int]:
    """Predict every split of ``data`` and write the logits file. Returns images per split."""
    files, logits, split = [], [], []
    for code, name in enumerate(SPLITS):
        part: FaceSplit = data.split(name)
        images = torch.from_numpy(part.images).to(device)
        logits.append(predict_logits(model, images, img_size, mean=mean, std=std, amp=amp,
                                     channels_last=channels_last))
        files += [face_key(f) for f in part.files]
        split.append(np.full(len(part), code, np.int8))
    save_teacher_logits(path, files, np.concatenate(logits), data.classes, np.concatenate(split), model_name)
    return {name: len(data.split(name)) for name in SPLITS}


def quantize_logits(logits: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(q uint8, low, step)`` with ``logits ~= low + q * step``: 256 even steps over the logits' range."""
    logits = np.asarray(logits, np.float32)
    low = float(logits.min()) if logits.size else 0.0
    step = (float(logits.max()) - low) / 255 if logits.size else 0.0
    step = step or 1.0  # all logits equal
    q = np.clip(np.round((logits - low) / step), 0, 255).astype(np.uint8)
    return q, low, step


def save_teacher_logits(path: str | Path, files: list[str], logits: np.ndarray, classes: Any, split: np.ndarray,
                        model_name: str = "") -> None:
    """Write a logits file (see the module docstring): 8-bit logits, file names as bytes, compressed."""
    q, low, step = quantize_logits(logits)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, files=np.array([f.encode() for f in files], dtype="S"), logits_q=q,
                        logits_low=np.float32(low), logits_step=np.float32(step), classes=np.array(classes),
                        split=np.asarray(split, np.int8), model=np.array(model_name))


def read_teacher_logits(path: str | Path) -> dict[str, Any]:
    """``{"files", "logits" (float32), "classes", "split", "model"}`` of a logits file (8-bit or older float16).

    Raises:
        ConfigError: missing or unreadable file.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            files = z["files"]
            if "logits_q" in z.files:
                logits = float(z["logits_low"]) + z["logits_q"].astype(np.float32) * float(z["logits_step"])
            else:  # the older float16 files
                logits = z["logits"].astype(np.float32)
            return {"files": (np.char.decode(files, "utf-8") if files.dtype.kind == "S" else files).tolist(),
                    "logits": logits.astype(np.float32), "classes": tuple(z["classes"].tolist()),
                    "split": z["split"], "model": str(z["model"])}
    except FileNotFoundError:
        raise ConfigError(f"teacher logits not found: {path}") from None
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"cannot read teacher logits {path}: {err}") from None


def soft_targets(paths: str | Path, split: FaceSplit, alpha: float, temp: float) -> np.ndarray:
    """Training targets ``(1 - alpha) * label + alpha * softmax(teacher logits / temp)`` (N, C) float32.

    ``paths`` is one logits file, or several separated by commas: their logits are averaged (an ensemble
    teacher). The label part is the split's soft target when it has one (FER+ votes), else one-hot.

    Raises:
        ConfigError: other classes than the data's, or faces the teacher never saw.
    """
    files = [p for p in str(paths).split(",") if p.strip()]
    keys = [face_key(f) for f in split.files]
    total = np.zeros((len(split), len(split.classes)), np.float32)
    for file in files:
        t = read_teacher_logits(file.strip())
        if tuple(t["classes"]) != tuple(split.classes):
            raise ConfigError(f"teacher logits {file} are for {list(t['classes'])}, the data has {list(split.classes)}")
        row = {k: i for i, k in enumerate(t["files"])}
        missing = [k for k in keys if k not in row]
        if missing:
            raise ConfigError(f"teacher logits {file} lack {len(missing)} of the training faces, e.g. {missing[0]}")
        total += t["logits"][[row[k] for k in keys]]
    teacher = softmax(total / len(files) / temp)
    if split.soft is not None:
        label = split.soft
    else:
        label = np.eye(len(split.classes), dtype=np.float32)[split.labels]
    return ((1.0 - alpha) * label + alpha * teacher).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.teacher_logits``: write a checkpoint's logits for every face of a dataset."""
    from training.checkpoint import CheckpointError, build_model_from_checkpoint, load_checkpoint
    from training.data import DataError, load_data

    p = argparse.ArgumentParser(prog="python -m training.teacher_logits", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        meta = ModelMeta.from_dict(ckpt["meta"])
        data = load_data(args.data, cache_size=meta.native_size, equalize=meta.equalize, progress=False)
        model = build_model_from_checkpoint(ckpt).to(args.device)
        counts = write_teacher_logits(model, data, meta.input_size, args.out, torch.device(args.device), meta.model,
                                      meta.mean, meta.std)
    except (CheckpointError, DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
