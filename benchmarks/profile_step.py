"""Profile one training step (augmentation + forward + backward + clip + AdamW + EMA) with torch.profiler.

Counts per step: kernel-launching ops (leaf ATen ops that compute, plus Inductor's fused kernels of a compiled
step), views (ops that only make a new view of a tensor), autocast casts, host syncs (``.item()`` and friends,
``aten::_local_scalar_dense``; on CUDA also what ``torch.cuda.set_sync_debug_mode`` reports) and ms/step.

    python benchmarks/profile_step.py --model emonext_atto --img-size 112 --batch-size 256 --compile off --fused
    python benchmarks/profile_step.py --model emonext_atto --img-size 112 --batch-size 256 --compile on --fused

The step is built as ``fer-train`` builds it (:func:`training.probe.build_job`), on synthetic 48 px faces.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter
from pathlib import Path

import torch

VIEW_OPS = {
    "aten::view", "aten::_unsafe_view", "aten::as_strided", "aten::expand", "aten::permute", "aten::transpose",
    "aten::t", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::alias", "aten::detach",
    "aten::_reshape_alias", "aten::unflatten", "aten::flatten", "aten::reshape", "aten::narrow", "aten::unbind",
    "aten::split", "aten::chunk", "aten::view_as", "aten::expand_as", "aten::numpy_T", "aten::lift_fresh",
    "aten::_unsafe_split", "aten::split_with_sizes", "aten::diagonal", "aten::movedim", "aten::contiguous",
    "aten::result_type", "aten::is_nonzero", "aten::as_strided_", "aten::size", "aten::stride", "aten::_nested_tensor_from_mask_left_aligned",
}
ALLOC_OPS = {"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::resize_", "aten::set_",
             "aten::zeros_like", "aten::new_empty", "aten::new_empty_strided"}
NOOP_OPS = {"aten::to", "aten::resolve_conj", "aten::resolve_neg", "aten::dropout",
            "aten::_has_compatible_shallow_copy_type"}  # without children: they returned their input
SYNC_OPS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select"}
CAST_OPS = {"aten::_autocast_to_reduced_precision", "aten::_autocast_to_full_precision"}


def is_fused_kernel(name: str) -> bool:
    """An Inductor kernel of a compiled graph (CPU C++ with kernel profiling on, or Triton)."""
    return "cpp_fused" in name or name.startswith("triton_") or "_cpp_fused_" in name


def is_multi_tensor(name: str) -> bool:
    """A foreach or fused op: a few multi-tensor kernels on CUDA, however many tensors (the CPU loops over them,
    so its children are not counted)."""
    return name.startswith(("aten::_foreach_", "aten::_fused_"))


def inside_multi_tensor(ev) -> bool:
    parent = ev.cpu_parent
    while parent is not None:
        if is_multi_tensor(parent.name):
            return True
        parent = parent.cpu_parent
    return False


def count_events(events, steps: int) -> dict[str, float]:
    """Per-step counts from a profiler's ``events()``.

    A kernel-launching op is a leaf ATen op that computes (not a view or an allocation), a foreach/fused op
    (counted once), or an Inductor kernel. Host syncs: ``aten::_local_scalar_dense`` (``.item()``,
    ``float(t)``, ``bool(t)``) and the ops whose output size depends on the data.
    """
    kernels, views, syncs, casts, fused = Counter(), 0, 0, 0, 0
    for ev in events:
        name = ev.name
        if is_fused_kernel(name):
            fused += 1
            continue
        if not name.startswith("aten::") or inside_multi_tensor(ev):
            continue
        if name in SYNC_OPS:
            syncs += 1
        if name in CAST_OPS:
            casts += 1
        if name in VIEW_OPS:
            if ev.cpu_parent is None or not ev.cpu_parent.name.startswith("aten::") \
                    or ev.cpu_parent.name in VIEW_OPS:
                views += 1
            continue
        if not is_multi_tensor(name) and any(c.name.startswith("aten::") or is_fused_kernel(c.name)
                                             for c in ev.cpu_children):
            continue  # a composite op: its leaves are counted
        if name in ALLOC_OPS or name in NOOP_OPS:
            continue
        kernels[name] += 1
    return {"kernel_ops": (sum(kernels.values()) + fused) / steps, "aten_kernel_ops": sum(kernels.values()) / steps,
            "fused_kernels": fused / steps, "views": views / steps, "host_syncs": syncs / steps,
            "autocast_casts": casts / steps, "top_ops": dict(kernels.most_common(12))}


def main(argv: list[str] | None = None) -> int:
    from training.config import build_config
    from training.probe import build_job

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="emonext_atto")
    p.add_argument("--img-size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--compile", default="off", choices=("auto", "on", "off"))
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--steps", type=int, default=3, help="profiled steps")
    p.add_argument("--warmup", type=int, default=2, help="steps before profiling (the first one compiles)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="fused AdamW (the CUDA default) on the CPU too, so the CPU profile counts the CUDA step's "
                        "optimiser launches; default: as fer-train")
    p.add_argument("--json", default=None, help="also write the counts here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:  # name Inductor's CPU kernels in the profile so fused kernels are counted
        import torch._inductor.config as inductor_config
        inductor_config.cpp.enable_kernel_profile = True
    except (ImportError, AttributeError):
        pass
    cfg = build_config({"model": a.model, "img_size": a.img_size, "batch_size": a.batch_size, "compile": a.compile,
                        "amp": a.amp, "device": a.device})
    job = build_job(cfg, fused_optimizer=a.fused)
    t0 = time.perf_counter()
    for _ in range(a.warmup):
        job.step()
    job.sync()
    warm_s = time.perf_counter() - t0
    cuda = job.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(a.steps):
                job.step()
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
            job.sync()
    counts = count_events(prof.events(), a.steps)
    if cuda:
        counts["cuda_sync_warnings"] = sum("synchroniz" in str(w.message) for w in caught) / a.steps
    t0 = time.perf_counter()  # timed without the profiler's overhead
    for _ in range(a.steps):
        job.step()
    job.sync()
    counts["ms_per_step"] = 1000 * (time.perf_counter() - t0) / a.steps
    counts.update(model=a.model, img_size=a.img_size, batch_size=a.batch_size, compile=job.compiled,
                  device=str(job.device), amp=job.amp.name, warmup_s=round(warm_s, 1), threads=torch.get_num_threads())
    print(f"{a.model} @{a.img_size} batch {a.batch_size} on {job.device} (AMP {job.amp.name}, compiled "
          f"{job.compiled}, {torch.get_num_threads()} threads): {counts['kernel_ops']:.0f} kernel-launching ops/step "
          f"({counts['fused_kernels']:.0f} fused), {counts['views']:.0f} views, {counts['autocast_casts']:.0f} "
          f"autocast casts, {counts['host_syncs']:.1f} host syncs, {counts['ms_per_step']:.1f} ms/step "
          f"(warm-up {warm_s:.1f} s)")
    print("most frequent ops:", ", ".join(f"{k.removeprefix('aten::')} {v / a.steps:.0f}"
                                          for k, v in counts["top_ops"].items()))
    if a.json:
        Path(a.json).write_text(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
