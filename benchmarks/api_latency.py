"""The Python API costs nothing over the pipeline: ``EmotionRecognizer.predict`` per frame against ``fer-bench``'s
per-frame time, on the same 640x480 frames with one real face, in one process, alternating rounds.

    python benchmarks/api_latency.py --seconds 10

Prints the median milliseconds of both and their ratio (the README's claim: within 10%).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core import EmotionRecognizer  # noqa: E402
from fer_core.bench import run_benchmark  # noqa: E402
from fer_core.synthetic import synthetic_clip  # noqa: E402
from fer_core.model_zoo import default_model_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="timing per side and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default=str(default_model_path()))
    args = p.parse_args(argv)
    frames = synthetic_clip(1, n_frames=30)
    api, bench = [], []
    with EmotionRecognizer(model=args.model, provider="cpu") as rec:
        for f in frames[:10]:
            rec.predict(f)  # warm-up
        for _ in range(args.rounds):
            row = run_benchmark([args.model], ["cpu"], [1], duration_s=args.seconds, warmup=10)[0]
            bench.append(row["total_median_ms"])
            times, start, i = [], time.perf_counter(), 0
            while time.perf_counter() - start < args.seconds:
                t0 = time.perf_counter()
                rec.predict(frames[i % len(frames)])
                times.append((time.perf_counter() - t0) * 1000)
                i += 1
            api.append(float(np.median(times)))
    a, b = float(np.median(api)), float(np.median(bench))
    print(f"EmotionRecognizer.predict: {a:.2f} ms/frame (median of {args.rounds} rounds: "
          f"{', '.join(f'{x:.2f}' for x in api)})")
    print(f"fer-bench pipeline:        {b:.2f} ms/frame ({', '.join(f'{x:.2f}' for x in bench)})")
    print(f"ratio {a / b:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
