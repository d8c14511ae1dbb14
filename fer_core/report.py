"""Session reports: how each face's emotions moved over a recording, as one self-contained HTML file.

    fer-report faces.csv --out report.html        # fer-run's CSV/JSONL or the app's recording CSV

Per tracked face: a timeline of every emotion's probability, the share of time each emotion was on top, and a
summary table; for a folder of photos, one row per face and photo. Also writes ``summary.json`` beside the HTML.
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
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.labels import class_color
from fer_core.errors import FerError

PROG = "fer-report"


class ReportError(FerError):
    """A records file that is missing, empty or not fer-run / fer-app output."""


def read_records(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (numbers converted) and the class labels of a ``.csv`` or ``.jsonl`` records file.

    Raises:
        ReportError: missing file, unknown suffix, no ``p_<label>`` columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"records file not found: {path}")
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        else:
            raise ReportError(f"{path}: expected a .csv or .jsonl file from fer-run or fer-app")
    except (OSError, json.JSONDecodeError, csv.Error) as err:
        raise ReportError(f"cannot read {path}: {err}") from None
    keys = list(rows[0]) if rows else []
    labels = [k[2:] for k in keys if k.startswith("p_")]
    if rows and (not labels or "track_id" not in keys or "time_ms" not in keys):
        raise ReportError(f"{path}: not a fer-run / fer-app records file (no track_id, time_ms or p_<emotion>)")
    for r in rows:
        r["time_ms"] = float(r["time_ms"])
        r["track_id"] = int(r["track_id"])
        r["frame"] = int(r["frame"])
        for label in labels:
            r[f"p_{label}"] = float(r[f"p_{label}"])
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


def write_report(records: str | Path, out: str | Path | None = None) -> Path:
    """Read a records file and write ``out`` (default: ``<records>.html``) and ``summary.json`` beside it.

    Raises:
        ReportError: unreadable or empty records, matplotlib missing.
    """
    rows, labels = read_records(records)
    if not rows:
        raise ReportError(f"{records}: no faces were recorded, so there is nothing to report")
    summary = summarize(rows, labels)
    out = Path(out) if out else Path(records).with_suffix(".html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(summary, plots(rows, summary), f"Session report: {Path(records).name}"), encoding="utf-8")
    (out.parent / "summary.json").write_text(json.dumps(summary, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    """``fer-report``: 0 ok, 2 bad input."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("records", help="fer-run --csv/--jsonl output or the app's recording CSV")
    p.add_argument("--out", help="the HTML file to write (default: beside the records, .html)")
    args = p.parse_args(argv)
    try:
        out = write_report(args.records, args.out)
    except FerError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {out.parent / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
