"""Session reports: how each face's emotions moved over a recording, as one self-contained HTML file.

    fer-report faces.csv --out report.html        # fer-run's CSV/JSONL or the app's recording CSV

Per tracked face: a timeline of every emotion's probability, the share of time each emotion was on top, and a
summary table; for a folder of photos, one row per face and photo. Also writes ``<report>.summary.json`` beside
the HTML. A last row cut off (a recording that was killed) is skipped with a warning.
The plots are drawn with matplotlib (installed with the app; ``pip install matplotlib`` otherwise) and embedded,
so the file can be mailed or archived alone.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.labels import class_color
from fer_core.errors import FerError, os_reason, write_error

PROG = "fer-report"
log = logging.getLogger(__name__)


class ReportError(FerError):
    """A records file that is missing, empty or not fer-run / fer-app output."""


def _decode(path: Path) -> str:
    """The file's text; a multi-byte character cut off at the very end is dropped with its row."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReportError(f"cannot read {path}: {os_reason(err)}") from None
    try:
        if b"\x00" not in data:
            return data.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.reason == "unexpected end of data":
            return data[:err.start].decode("utf-8")
    raise ReportError(f"{path}: a binary file, not fer-run / fer-app records (CSV or JSON lines)")


def _raw_rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, Any] | None]]]:
    """The column names (the CSV header, or the first whole JSON row's keys) and (line number, row) pairs; a row
    is ``None`` where its line is not a whole row (too few or many fields, not JSON)."""
    out: list[tuple[int, dict[str, Any] | None]] = []
    if path.suffix.lower() == ".jsonl":
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                out.append((i, row if isinstance(row, dict) else None))
        return list(next((row for _, row in out if row), {})), out
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        for cells in reader:
            if cells:
                out.append((reader.line_num, dict(zip(header, cells)) if len(cells) == len(header) else None))
    except csv.Error as err:
        raise ReportError(f"{path}, line {reader.line_num}: {err}") from None
    return header, out


def _convert(path: Path, line: int, row: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """``row`` with its numbers as numbers; ReportError names the line and column of one that is not."""
    for column, kind in [("time_ms", float), ("track_id", int), ("frame", int)] + [(f"p_{x}", float) for x in labels]:
        value = row.get(column)
        try:
            row[column] = kind(value)
        except (TypeError, ValueError):
            raise ReportError(f"{path}, line {line}, column {column}: {value!r} is not a number") from None
    return row


def read_records(path: str | Path, warn: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (numbers converted) and the class labels of a ``.csv`` or ``.jsonl`` records file.

    A last row cut off (what a kill of the recorder leaves) is skipped with one ``warn`` message (default: a
    logged warning).

    Raises:
        ReportError: missing or binary file, unknown suffix, no ``p_<label>`` columns, a row that is not whole
            or a field that is not a number (naming the line and column).
    """
    path = Path(path)
    warn = warn or log.warning
    if not path.is_file():
        raise ReportError(f"records file not found: {path}")
    if path.suffix.lower() not in (".csv", ".jsonl"):
        raise ReportError(f"{path}: expected a .csv or .jsonl file from fer-run or fer-app")
    text = _decode(path)
    keys, body = _raw_rows(path, text)
    labels = [k[2:] for k in keys if k.startswith("p_")]
    if (keys or body) and (not labels or not {"track_id", "time_ms", "frame"} <= set(keys)):
        raise ReportError(f"{path}: not a fer-run / fer-app records file (no frame, track_id, time_ms or p_<emotion>)")
    rows = []
    for n, (line, row) in enumerate(body):
        last = n == len(body) - 1 and not text.endswith("\n")
        try:
            if row is None:
                raise ReportError(f"{path}, line {line}: not a whole row")
            rows.append(_convert(path, line, row, labels))
        except ReportError:
            if not last:
                raise
            warn(f"{path}, line {line}: the last row is cut off (the recording was interrupted?); skipped")
    return rows, labels


def group_faces(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by face: ``#<track>`` for a stream, ``<photo> #<track>`` for the photos of a folder."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[f"{Path(r['source']).name} #{r['track_id']}" if r.get("source") else f"#{r['track_id']}"].append(r)
    return groups


def summarize(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """Per face (track, or photo and face): frames, time span, share of frames each emotion was on top,
    mean probabilities."""
    faces = {}
    for key, rs in group_faces(rows).items():
        probs = np.array([[r[f"p_{label}"] for label in labels] for r in rs])
        top = probs.argmax(1)
        share = {label: float((top == i).mean()) for i, label in enumerate(labels)}
        t = [r["time_ms"] for r in rs]
        faces[key] = {"frames": len(rs), "start_s": min(t) / 1000, "end_s": max(t) / 1000,
                      "dominant": max(share, key=share.get), "share": share,
                      "mean": {label: float(v) for label, v in zip(labels, probs.mean(0))}}
    total = np.zeros(len(labels))
    for f in faces.values():
        total += np.array([f["share"][label] for label in labels]) * f["frames"]
    n = max(sum(f["frames"] for f in faces.values()), 1)
    return {"labels": labels, "rows": len(rows), "faces": faces,
            "share": {label: float(v / n) for label, v in zip(labels, total)}}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _rgb(label: str) -> tuple[float, float, float]:
    b, g, r = class_color(label)
    return r / 255, g / 255, b / 255


def plots(rows: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: ``"share"`` (all faces) and one timeline per face seen in several frames."""
    try:
        import matplotlib
    except ImportError:
        raise ReportError("the report's plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = summary["labels"]
    out = {}
    fig, ax = plt.subplots(figsize=(7, 2.6))
    shares = [summary["share"][label] for label in labels]
    ax.bar(labels, shares, color=[_rgb(label) for label in labels])
    ax.set_ylabel("share of face-frames on top")
    ax.set_ylim(0, 1)
    out["share"] = _png(fig)
    plt.close(fig)
    for key, rs in group_faces(rows).items():
        if len(rs) < 2:
            continue
        t = np.array([r["time_ms"] for r in rs]) / 1000
        fig, ax = plt.subplots(figsize=(9, 2.8))
        for label in labels:
            ax.plot(t, [r[f"p_{label}"] for r in rs], color=_rgb(label), lw=1.4, label=label)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("probability")
        ax.set_ylim(0, 1)
        ax.legend(ncol=len(labels), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.22), frameon=False)
        out[key] = _png(fig)
        plt.close(fig)
    return out


def render(summary: dict[str, Any], images: dict[str, str], title: str) -> str:
    """The self-contained HTML page."""
    labels = summary["labels"]
    esc = html.escape
    head = "".join(f"<th>{esc(label)}</th>" for label in labels)
    body = []
    for key, f in summary["faces"].items():
        cells = "".join(f"<td>{f['share'][label]:.0%}</td>" for label in labels)
        body.append(f"<tr><td>{esc(key)}</td><td>{f['frames']}</td><td>{f['start_s']:.1f}-{f['end_s']:.1f} s</td>"
                    f"<td><b>{esc(f['dominant'])}</b></td>{cells}</tr>")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
             "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}"
             "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child{text-align:left}h2{margin-top:28px}img{max-width:100%}"
             "</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p>{summary['rows']} face-frames, {len(summary['faces'])} faces. Share of frames on which each emotion "
             "was the most likely one:</p>",
             f"<img alt='share of time per emotion' src='data:image/png;base64,{images['share']}'>",
             "<h2>Faces</h2>", f"<table><tr><th>face</th><th>frames</th><th>time</th><th>mostly</th>{head}</tr>",
             *body, "</table>"]
    for key in summary["faces"]:
        if key in images:
            parts += [f"<h2>Face {esc(key)}</h2>",
                      f"<img alt='timeline of face {esc(key)}' src='data:image/png;base64,{images[key]}'>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def summary_path(out: str | Path) -> Path:
    """The summary file of the report ``out``: ``<report stem>.summary.json`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.summary.json")


def write_report(records: str | Path, out: str | Path | None = None,
                 warn: Callable[[str], None] | None = None) -> Path:
    """Read a records file and write ``out`` (default: ``<records>.html``) and its :func:`summary_path` beside it.

    Raises:
        ReportError: unreadable or empty records, an ``out`` that cannot be written, matplotlib missing.
    """
    rows, labels = read_records(records, warn)
    if not rows:
        raise ReportError(f"{records}: no faces were recorded, so there is nothing to report")
    summary = summarize(rows, labels)
    out = Path(out) if out else Path(records).with_suffix(".html")
    page = render(summary, plots(rows, summary), f"Session report: {Path(records).name}")
    for path, text in ((out, page), (summary_path(out), json.dumps(summary, indent=1))):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            raise write_error(path, err, ReportError) from None
    return out


def main(argv: list[str] | None = None) -> int:
    """``fer-report``: 0 ok, 2 bad input."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("records", help="fer-run --csv/--jsonl output or the app's recording CSV")
    p.add_argument("--out", help="the HTML file to write (default: beside the records, .html)")
    args = p.parse_args(argv)
    try:
        out = write_report(args.records, args.out, warn=lambda msg: print(f"{PROG}: warning: {msg}", file=sys.stderr))
    except FerError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {summary_path(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
