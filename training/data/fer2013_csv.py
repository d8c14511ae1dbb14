"""FER2013 as the original challenge CSV: ``emotion,pixels,Usage``.

``emotion`` is 0..6 in FER2013_CLASSES order (angry, disgust, fear, happy, sad, surprise, neutral);
``pixels`` holds 48*48 space-separated grey values; ``Usage`` is Training / PublicTest (val) /
PrivateTest (test). Without a ``Usage`` column the rows get a seeded stratified 8:1:1 split.
Items are named ``<csv path>:<row>`` with the 0-based data row (the row number FER+ uses).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fer_core.labels import FER2013_CLASSES

from .errors import DataError
from .listing import TEST, TRAIN, UNASSIGNED, VAL, Listing

EXPECTED_COLUMNS: tuple[str, ...] = ("emotion", "pixels", "Usage")
USAGE: dict[str, int] = {"training": TRAIN, "publictest": VAL, "privatetest": TEST}


def read_fer2013_csv(path: Path) -> Listing:
    """List a ``fer2013.csv`` (pixel strings are parsed later, when decoding).

    Raises:
        DataError: missing columns, an emotion outside 0..6 or an unknown Usage, naming file and row.
    """
    expected = ",".join(EXPECTED_COLUMNS)
    labels: list[int] = []
    split: list[int] = []
    pixels: list[str] = []
    files: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None) or []
            cols = {name.strip().lower(): i for i, name in enumerate(header)}
            if "emotion" not in cols or "pixels" not in cols:
                raise DataError(f"{path}: wrong columns {header}; expected columns: {expected}")
            i_emo, i_pix, i_use = cols["emotion"], cols["pixels"], cols.get("usage")
            for row_no, row in enumerate(reader):
                if not row:
                    continue
                where = f"{path}: line {row_no + 2}"
                if len(row) < len(header):
                    raise DataError(f"{where}: {len(row)} fields, expected {len(header)} ({expected})")
                try:
                    emotion = int(row[i_emo])
                except ValueError:
                    emotion = -1
                if not 0 <= emotion < len(FER2013_CLASSES):
                    raise DataError(f"{where}: emotion '{row[i_emo]}' is not 0..{len(FER2013_CLASSES) - 1}")
                usage = UNASSIGNED if i_use is None else USAGE.get(row[i_use].strip().lower())
                if usage is None:
                    raise DataError(f"{where}: unknown Usage '{row[i_use]}' (expected Training, PublicTest, PrivateTest)")
                labels.append(emotion)
                split.append(usage)
                pixels.append(row[i_pix])
                files.append(f"{path}:{row_no}")
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read the CSV: {err}") from None
    if not files:
        raise DataError(f"{path}: the CSV holds no rows")
    return Listing(
        classes=FER2013_CLASSES,
        files=files,
        labels=np.array(labels, dtype=np.int64),
        split=np.array(split, dtype=np.int8),
        pixels=pixels,
    )
