"""Build a small class-per-folder dataset with other class names than FER2013's, for the README's fine-tuning
example: FER+ faces by their strict-majority label, in folders named as FER+ names them (anger, happiness,
sadness, contempt, ...), with FER+'s own split (train from FER2013Train, val from FER2013Valid, test from
FER2013Test = FER2013's PrivateTest, which no shipped model was trained on)::

    python scripts/make_finetune_folder.py --ferplus ../shared/data/ferplus --out runs/finetune_demo

writes ``runs/finetune_demo/{train,val,test}/<class>/fer<row>.png`` (links to the originals, or copies with
``--copy``). By default seven classes: FER2013's without neutral, plus contempt, which the default model
does not have, so ``fer-train --init fer_realtime`` maps six classes, starts contempt fresh and drops neutral.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data.errors import DataError  # noqa: E402
from training.data.ferplus import N_EMOTIONS, VOTE_COLUMNS, majority, read_votes  # noqa: E402

SPLITS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
DEFAULT_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "contempt")


def make_folder(ferplus: Path, out: Path, classes: list[str], per_split: dict[str, int], seed: int = 0,
                copy: bool = False) -> dict[str, dict[str, int]]:
    """Write up to ``per_split[split]`` faces of each class into ``out/<split>/<class>/``. Returns the counts.

    Raises:
        ValueError: a class that is not a FER+ emotion column.
    """
    unknown = [c for c in classes if c not in VOTE_COLUMNS[:N_EMOTIONS]]
    if unknown:
        raise ValueError(f"not FER+ classes: {', '.join(unknown)} (FER+ has {', '.join(VOTE_COLUMNS[:N_EMOTIONS])})")
    rng = np.random.default_rng(seed)
    counts: dict[str, dict[str, int]] = {}
    for split, folder in SPLITS.items():
        names, votes = read_votes(ferplus / folder / "label.csv")
        label, keep = majority(votes, strict=True)
        counts[split] = {}
        for name in classes:
            rows = np.flatnonzero(keep & (label == VOTE_COLUMNS.index(name)))
            chosen = rng.permutation(rows)[:per_split[split]]
            dest = out / split / name
            dest.mkdir(parents=True, exist_ok=True)
            for i in sorted(chosen):
                src, target = (ferplus / folder / names[i]).resolve(), dest / names[i]
                if not target.exists():
                    shutil.copyfile(src, target) if copy else target.symlink_to(src)
            counts[split][name] = len(chosen)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ferplus", required=True, help="the FER+ folder (FER2013Train, FER2013Valid, FER2013Test)")
    p.add_argument("--out", default="runs/finetune_demo", help="folder to write (default runs/finetune_demo)")
    p.add_argument("--classes", default=",".join(DEFAULT_CLASSES), help="FER+ class names, comma-separated")
    p.add_argument("--train", type=int, default=100, help="training faces per class (default 100)")
    p.add_argument("--val", type=int, default=25, help="validation faces per class (default 25)")
    p.add_argument("--test", type=int, default=40, help="test faces per class (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--copy", action="store_true", help="copy the images instead of linking them")
    args = p.parse_args(argv)
    try:
        counts = make_folder(Path(args.ferplus), Path(args.out), args.classes.split(","),
                             {"train": args.train, "val": args.val, "test": args.test}, args.seed, args.copy)
    except (ValueError, OSError, DataError) as exc:
        print(f"make_finetune_folder: error: {exc}", file=sys.stderr)
        return 2
    for split, per_class in counts.items():
        print(f"{split:5s} {sum(per_class.values()):5d}: " + ", ".join(f"{k} {v}" for k, v in per_class.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
