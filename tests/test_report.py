"""fer-report: per-face summary, share of time per emotion, a self-contained HTML page and <report>.summary.json, from
fer-run's CSV and JSONL (tracks of a video, and photos of a folder)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_core.records import FaceRecordWriter
from fer_core.report import ReportError, main, read_records, summarize, write_report

LABELS = ["angry", "happy", "neutral"]


class _Face:
    def __init__(self, track_id, probs):
        self.track_id, self.box, self.probs = track_id, (10, 20, 30, 30), dict(zip(LABELS, map(float, probs)))
        self.label, self.score, self.uncertain = LABELS[int(np.argmax(probs))], max(probs), False


def _records(path, with_source=False):
    with FaceRecordWriter(path, LABELS, with_source=with_source) as rec:
        for i in range(10):  # face 1: happy for 7 frames then neutral; face 2: angry throughout
            rec.write(i, i * 100.0, [_Face(1, [0.1, 0.8, 0.1] if i < 7 else [0.1, 0.2, 0.7]),
                                     _Face(2, [0.6, 0.2, 0.2])], source=f"p{i}.jpg" if with_source else "")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_summary_of_a_recording(tmp_path, suffix):
    rows, labels = read_records(_records(tmp_path / f"faces{suffix}"))
    assert labels == LABELS and len(rows) == 20
    s = summarize(rows, labels)
    one, two = s["faces"]["#1"], s["faces"]["#2"]
    assert one["frames"] == 10 and one["share"]["happy"] == pytest.approx(0.7) and one["dominant"] == "happy"
    assert one["end_s"] == pytest.approx(0.9) and two["share"]["angry"] == 1.0
    assert s["share"]["angry"] == pytest.approx(0.5) and s["share"]["neutral"] == pytest.approx(0.15)


def test_html_and_summary_files(tmp_path, capsys):
    records = _records(tmp_path / "faces.csv")
    assert main([str(records), "--out", str(tmp_path / "out" / "report.html")]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # the share chart and one timeline per face
    assert "<b>happy</b>" in page and "<b>angry</b>" in page
    summary = json.loads((tmp_path / "out" / "report.summary.json").read_text())
    assert set(summary["faces"]) == {"#1", "#2"}


def test_photos_are_faces_of_their_own(tmp_path):
    out = write_report(_records(tmp_path / "photos.jsonl", with_source=True))
    summary = json.loads((out.parent / "photos.summary.json").read_text())
    assert len(summary["faces"]) == 20 and "p3.jpg #1" in summary["faces"]


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "missing.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReportError, match="not a fer-run"):
        read_records(tmp_path / "other.csv")
    empty = tmp_path / "empty.csv"
    FaceRecordWriter(empty, LABELS).close()
    with pytest.raises(ReportError, match="no faces"):
        write_report(empty)


def test_each_report_has_its_own_summary(tmp_path, capsys):
    records = _records(tmp_path / "faces.csv")
    assert main([str(records), "--out", str(tmp_path / "a.html")]) == 0
    assert main([str(records), "--out", str(tmp_path / "b.html")]) == 0
    assert (tmp_path / "a.summary.json").is_file() and (tmp_path / "b.summary.json").is_file()
    assert not (tmp_path / "summary.json").exists()
    assert "b.summary.json" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_cut_off_last_row_is_skipped_with_one_warning(tmp_path, capsys, suffix):
    records = _records(tmp_path / f"faces{suffix}")
    data = records.read_bytes()
    records.write_bytes(data[:-25])  # what a kill mid-write leaves: half a row, no newline
    assert main([str(records), "--out", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and "cut off" in err[0]
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["rows"] == 19


def test_a_non_numeric_field_names_file_line_and_column(tmp_path, capsys):
    records = _records(tmp_path / "faces.csv")
    lines = records.read_text().splitlines(keepends=True)
    head = lines[0].rstrip().split(",")
    cells = lines[3].rstrip("\r\n").split(",")
    cells[head.index("p_happy")] = "abc"
    lines[3] = ",".join(cells) + "\r\n"
    records.write_text("".join(lines))
    assert main([str(records)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "faces.csv" in err[0] and "line 4" in err[0] and "p_happy" in err[0]
    assert "'abc'" in err[0]


def test_a_binary_file_is_one_line(tmp_path, capsys):
    blob = tmp_path / "faces.csv"
    blob.write_bytes(bytes(range(256)) * 8)
    assert main([str(blob)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "faces.csv" in err[0] and "Traceback" not in err[0]


def test_an_unwritable_out_is_one_line(tmp_path, capsys):
    records = _records(tmp_path / "faces.csv")
    (tmp_path / "afile").write_text("x")
    assert main([str(records), "--out", str(tmp_path / "afile" / "report.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0] and "report.html" in err[0]
