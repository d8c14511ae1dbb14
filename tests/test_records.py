"""Per-face record files (CSV / JSON lines)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fer_core.labels import CANONICAL_CLASSES, FER2013_CLASSES
from fer_core.records import FaceRecordWriter, record_columns
from fer_core.results import Face


def faces(n: int, classes: int = 7) -> list[Face]:
    out = []
    for i in range(n):
        p = np.full(classes, 0.5 / (classes - 1), np.float32)
        p[i % classes] = 0.5
        probs = {f"class{k}": float(v) for k, v in enumerate(p)}
        out.append(Face(i + 1, (10 * i, 20, 30, 31), FER2013_CLASSES[i % 7], 0.5, probs))
    return out


def test_csv_rows_and_columns(tmp_path):
    path = tmp_path / "deep" / "dir" / "faces.csv"
    held = faces(2)
    held[1].age_ms = 41.67  # its reading waited its turn (quality balanced / fastest)
    with FaceRecordWriter(path, list(FER2013_CLASSES)) as rec:
        rec.write(0, 0.0, held)
        rec.write(1, 33.3, [])
        rec.write(2, 66.7, faces(1))
    assert rec.rows == 3
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["frame", "time_ms", "track_id", "x", "y", "w", "h", "label", "score", "uncertain",
                             "age_ms"] + [f"p_{c}" for c in FER2013_CLASSES]
    assert [r["age_ms"] for r in rows] == ["0.0", "41.7", "0.0"]
    assert [r["frame"] for r in rows] == ["0", "0", "2"]
    assert rows[1]["track_id"] == "2" and rows[1]["x"] == "10" and rows[1]["h"] == "31"
    assert rows[0]["label"] == "angry" and float(rows[0]["p_angry"]) == pytest.approx(0.5)
    assert sum(float(rows[0][f"p_{c}"]) for c in FER2013_CLASSES) == pytest.approx(1.0, abs=1e-4)


def test_jsonl_and_inferred_labels(tmp_path):
    path = tmp_path / "faces.jsonl"
    with FaceRecordWriter(path) as rec:  # labels inferred from 8 probabilities
        rec.write(5, 12.5, faces(2, classes=8))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 2 and list(lines[0]) == record_columns(CANONICAL_CLASSES)
    assert lines[0]["frame"] == 5 and lines[0]["time_ms"] == 12.5 and "p_contempt" in lines[0]


def test_bad_suffix_and_mismatch(tmp_path):
    with pytest.raises(ValueError, match=r"\.txt"):
        FaceRecordWriter(tmp_path / "faces.txt", list(FER2013_CLASSES))
    with FaceRecordWriter(tmp_path / "x.csv", list(FER2013_CLASSES)) as rec:
        with pytest.raises(ValueError, match="8 probabilities"):
            rec.write(0, 0.0, faces(1, classes=8))
    with pytest.raises(ValueError, match="closed"):
        rec.write(0, 0.0, faces(1))
