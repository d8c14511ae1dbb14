"""Training throughput: images/s of the real training step (device augmentation + forward + backward + AdamW step,
AMP on CUDA) for each model at 64, 112 and 224 px on the current device.

Synthetic 48x48 uint8 faces stand in for the data (the step does not depend on pixel values). Prints a table,
the implied time of one FER2013 epoch (28,709 images), and writes JSON.

    python benchmarks/train_throughput.py --models emonext_atto emonext_tiny ctan_tiny --sizes 64 112 224
    python benchmarks/train_throughput.py --models emonext_tiny --sizes 224 --batch-size 256 --compile  # GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from training.engine import Amp, create_optimizer, train_step
from training.losses import FerLoss
from training.models import create_model
from training.transforms import train_transform

FER2013_TRAIN = 28709


def bench_one(name: str, size: int, batch: int, steps: int, warmup: int, device: torch.device, amp: Amp,
              channels_last: bool, compile_model: bool, augment: bool) -> dict:
    """Time ``steps`` training steps after ``warmup`` steps; returns a result row."""
    model = create_model(name, num_classes=7).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = create_optimizer(model, "adamw", 1e-4, 0.05)
    scaler = amp.scaler()
    crit = FerLoss(label_smoothing=0.1)
    step_model = torch.compile(model) if compile_model else model
    gen = torch.Generator(device=device).manual_seed(0)
    faces = torch.randint(0, 256, (batch, 48, 48), dtype=torch.uint8, device=device, generator=gen)
    labels = torch.randint(0, 7, (batch,), device=device, generator=gen)
    fixed = train_transform(faces, size, gen, channels_last=channels_last)

    def one() -> None:
        x = train_transform(faces, size, gen, channels_last=channels_last) if augment else fixed
        train_step(step_model, x, labels, crit, opt, scaler, amp, clip_grad=1.0)

    for _ in range(warmup):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    ips = batch * steps / sec
    return {"model": name, "img_size": size, "batch_size": batch, "steps": steps, "images_per_s": ips,
            "ms_per_step": 1000 * sec / steps, "fer2013_epoch_s": FER2013_TRAIN / ips}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["emonext_atto", "emonext_tiny", "ctan_tiny"])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 112, 224])
    p.add_argument("--batch-size", type=int, default=None, help="default 256 on CUDA, 32 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 30 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels_last memory format (default on, as in fer-train)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-augment", action="store_true", help="time the model step only (fixed batch)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default="benchmarks/train_throughput.json", help="output file")
    a = p.parse_args(argv)

    cuda = a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    if a.threads:
        torch.set_num_threads(a.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    batch = a.batch_size or (256 if cuda else 32)
    steps = a.steps or (30 if cuda else 3)
    warmup = a.warmup if a.warmup is not None else (10 if cuda else 1)
    channels_last = a.channels_last
    amp = Amp.resolve(a.amp, device)
    device_name = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or 'cpu'} " \
                                                                    f"({torch.get_num_threads()} threads)"
    rows = []
    print(f"device {device_name}, AMP {amp.name}, channels_last {channels_last}, compile {a.compile}, "
          f"batch {batch}, {steps} timed steps")
    print(f"{'model':<14} {'px':>4} {'img/s':>9} {'ms/step':>9} {'FER2013 epoch':>14}")
    for name in a.models:
        for size in a.sizes:
            row = bench_one(name, size, batch, steps, warmup, device, amp, channels_last, a.compile,
                            not a.no_augment)
            rows.append(row)
            print(f"{name:<14} {size:>4} {row['images_per_s']:>9.1f} {row['ms_per_step']:>9.1f} "
                  f"{row['fer2013_epoch_s']:>12.1f} s", flush=True)
    out = {"device": device_name, "amp": amp.name, "channels_last": channels_last, "compile": a.compile,
           "torch": torch.__version__, "results": rows}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
