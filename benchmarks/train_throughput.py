"""Training throughput: images/s of the real training step (device augmentation + forward + backward + clip +
AdamW + EMA, AMP on CUDA) for each model at 64, 112 and 224 px on the current device, eager or compiled.

The step is built as ``fer-train`` builds it (:func:`training.probe.build_job`) on synthetic 48x48 uint8 faces
(the step does not depend on pixel values). Prints a table, the implied time of one FER2013 epoch (28,709
images), and writes JSON.

    python benchmarks/train_throughput.py --models emonext_atto emonext_tiny ctan_tiny --sizes 64 112 224
    python benchmarks/train_throughput.py --models emonext_atto --sizes 112 --batch-size 256 512 1024 --compile on
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from training.config import build_config
from training.probe import build_job

FER2013_TRAIN = 28709


def bench_one(name: str, size: int, batch: int, steps: int, warmup: int, device: str, amp: str,
              channels_last: bool, compile_mode: str, ema: bool) -> dict:
    """Time ``steps`` training steps after ``warmup`` steps (the first compiles); returns a result row."""
    cfg = build_config({"model": name, "img_size": size, "batch_size": batch, "device": device, "amp": amp,
                        "channels_last": channels_last, "compile": compile_mode, "ema": ema})
    job = build_job(cfg)
    t0 = time.perf_counter()
    for _ in range(warmup):
        job.step()
    job.sync()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        job.step()
    job.sync()
    sec = time.perf_counter() - t0
    ips = batch * steps / sec
    return {"model": name, "img_size": size, "batch_size": batch, "steps": steps, "compiled": job.compiled,
            "warmup_s": round(warm, 1), "images_per_s": ips, "ms_per_step": 1000 * sec / steps,
            "fer2013_epoch_s": FER2013_TRAIN / ips}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["emonext_atto", "emonext_tiny", "ctan_tiny"])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 112, 224])
    p.add_argument("--batch-size", nargs="+", type=int, default=None, help="one or more; default 256 on CUDA, "
                                                                            "32 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 30 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels_last memory format (default on, as in fer-train)")
    p.add_argument("--compile", default="off", choices=("auto", "on", "off"),
                   help="torch.compile the step as fer-train does (default off; auto = on CUDA)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="EMA update in the step")
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
    batches = a.batch_size or [256 if cuda else 32]
    steps = a.steps or (30 if cuda else 3)
    warmup = a.warmup if a.warmup is not None else (10 if cuda else 1)
    device_name = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or 'cpu'} " \
                                                                    f"({torch.get_num_threads()} threads)"
    rows = []
    print(f"device {device_name}, AMP {a.amp}, channels_last {a.channels_last}, compile {a.compile}, "
          f"{steps} timed steps")
    print(f"{'model':<14} {'px':>4} {'batch':>6} {'img/s':>9} {'ms/step':>9} {'FER2013 epoch':>14} {'warm-up':>8}")
    for name in a.models:
        for size in a.sizes:
            for batch in batches:
                row = bench_one(name, size, batch, steps, warmup, device.type, a.amp, a.channels_last, a.compile,
                                a.ema)
                rows.append(row)
                print(f"{name:<14} {size:>4} {batch:>6} {row['images_per_s']:>9.1f} {row['ms_per_step']:>9.1f} "
                      f"{row['fer2013_epoch_s']:>12.1f} s {row['warmup_s']:>6.1f} s", flush=True)
    out = {"device": device_name, "amp": a.amp, "channels_last": a.channels_last, "compile": a.compile,
           "torch": torch.__version__, "results": rows}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
