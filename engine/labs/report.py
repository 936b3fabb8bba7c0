"""The grader's HTML report: one self-contained file, no scripts, no fetched resources.

It shows the class's score distribution (an inline SVG histogram), the steps most students
missed (with the sentence most of them got), the files that could not be graded, and per
student every step with its sentence and every flag.  Everything a submission supplies (names,
sentences) is HTML-escaped: a student named ``<script>`` is shown, never run.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
import statistics
from collections import Counter
from pathlib import Path

from engine.labs.format import Lab
from engine.labs.grade import GradeRow

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:980px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.met{color:#1a7f37;font-weight:bold}.missed{color:#b42318;font-weight:bold}
.flag{background:#fff4e5;border-left:3px solid #f79009;padding:2px 8px;margin:3px 0}
.narrow{width:auto}.muted{color:#666}.student{margin-top:1.4em}.num{text-align:right;white-space:nowrap}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def histogram_svg(totals: list[float], max_points: float, width: int = 640, height: int = 220) -> str:
    """Counts of totals in bins over [0, max_points], as an inline SVG bar chart with axis labels."""
    top = max(max_points, max(totals, default=0.0), 1e-9)
    if float(top).is_integer() and top <= 20 and all(float(t).is_integer() for t in totals):
        edges = [(k - 0.5, k + 0.5) for k in range(int(top) + 1)]  # one bar per whole point
        labels = [str(k) for k in range(int(top) + 1)]
    else:
        step = top / 10
        edges = [(k * step, (k + 1) * step) for k in range(10)]
        labels = [f"{a:.3g}" for a, _ in edges]
    counts = [0] * len(edges)
    for t in totals:
        k = next((i for i, (a, b) in enumerate(edges) if a <= t < b), len(edges) - 1)
        counts[k] += 1
    peak = max(counts + [1])
    left, bottom, top_pad = 40, 40, 14
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    bar_w = plot_w / len(edges)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="Score distribution">',
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#444"/>']
    for i, c in enumerate(counts):
        h = plot_h * c / peak
        x = left + i * bar_w
        parts.append(f'<rect x="{x + 2:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
                     f'fill="#4c78a8"><title>{_e(labels[i])}: {c}</title></rect>')
        if c:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top_pad + plot_h - h - 3:.1f}" font-size="11" '
                         f'text-anchor="middle">{c}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top_pad + plot_h + 14}" font-size="11" '
                     f'text-anchor="middle">{_e(labels[i])}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="12" text-anchor="middle">'
                 f'total points (of {max_points:g})</text>')
    parts.append(f'<text x="12" y="{top_pad + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top_pad + plot_h / 2:.1f})">students</text>')
    parts.append("</svg>")
    return "".join(parts)


def missed_steps(lab: Lab, rows: list[GradeRow]) -> list[dict]:
    """Per step: how many graded students missed it and the sentence most of them got, most missed first."""
    graded = [r for r in rows if r.graded]
    out = []
    for step in lab.steps:
        sentences = [s["sentence"] for r in graded for s in r.steps if s["id"] == step.id and not s["met"]]
        common = Counter(sentences).most_common(1)
        out.append({"id": step.id, "title": step.title, "points": step.points, "missed": len(sentences),
                    "graded": len(graded), "sentence": common[0][0] if common else ""})
    return sorted(out, key=lambda d: (-d["missed"], lab.steps.index(lab.step(d["id"]))))


def report_html(lab: Lab, rows: list[GradeRow], reproduce: bool = False) -> str:
    graded = [r for r in rows if r.graded]
    totals = [r.total for r in graded]
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(lab.title)}: grades</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>{_e(lab.title)}</h1><p class='muted'>Lab <code>{_e(lab.id)}</code> · {len(rows)} files, "
           f"{len(graded)} graded · {now}{' · retrained with --reproduce' if reproduce else ''}</p>"]
    if totals:
        out.append(f"<p>Mean {statistics.mean(totals):.2f}, median {statistics.median(totals):g}, lowest "
                   f"{min(totals):g}, highest {max(totals):g} of {lab.max_points:g} points.</p>")
    out.append("<h2>Score distribution</h2>")
    out.append(histogram_svg(totals, lab.max_points) if totals else "<p>No submission could be graded.</p>")

    # every step, the most missed first (the heading said "most students missed" above steps nobody missed)
    out.append("<h2>Steps, the most missed first</h2><table><tr><th>step</th><th class='num'>points</th>"
               "<th class='num'>missed by</th><th>what most of them were told</th></tr>")
    for d in missed_steps(lab, rows):
        share = f"{d['missed']} of {d['graded']}"
        if d["graded"]:
            share += f" ({100 * d['missed'] / d['graded']:.0f}%)"
        told = _e(d["sentence"]) if d["missed"] else "<span class='muted'>every student met it</span>"
        out.append(f"<tr><td>{_e(d['title'])} <span class='muted'>({_e(d['id'])})</span></td>"
                   f"<td class='num'>{d['points']:g}</td><td class='num'>{share}</td><td>{told}</td></tr>")
    out.append("</table>")

    flag_counts = Counter(f.code for r in rows for f in r.flags)
    if flag_counts:
        out.append("<h2>Flags</h2><p>A flag is a reason to look, not a verdict; points are never taken off for one.</p>"
                   "<table class='narrow'><tr><th>flag</th><th class='num'>submissions</th></tr>")
        for code, n in sorted(flag_counts.items()):
            out.append(f"<tr><td><code>{_e(code)}</code></td><td class='num'>{n}</td></tr>")
        out.append("</table>")

    bad = [r for r in rows if not r.graded]
    if bad:
        out.append("<h2>Files not graded</h2><table><tr><th>file</th><th>student</th><th>status</th><th>why</th></tr>")
        for r in bad:
            out.append(f"<tr><td>{_e(Path(r.file).name)}</td><td>{_e(r.student or r.student_id)}</td>"
                       f"<td><code>{_e(r.status)}</code></td><td>{_e(r.message)}</td></tr>")
        out.append("</table>")

    out.append("<h2>Students</h2>")
    for r in sorted(graded, key=lambda r: r.name.lower()):
        sid = f" <span class='muted'>({_e(r.student_id)})</span>" if r.student and r.student_id else ""
        out.append(f"<div class='student'><h3>{_e(r.name)}{sid}: {r.total:g} / {lab.max_points:g}</h3>"
                   f"<p class='muted'>{_e(Path(r.file).name)}</p>")
        for f in r.flags:
            out.append(f"<div class='flag'><code>{_e(f.code)}</code> {_e(f.sentence)}</div>")
        out.append("<table><tr><th></th><th>step</th><th class='num'>points</th><th>goal</th></tr>")
        for s in r.steps:
            mark = "<span class='met'>✓</span>" if s["met"] else "<span class='missed'>✗</span>"
            out.append(f"<tr><td>{mark}</td><td>{_e(s['title'])}</td><td class='num'>{s['points']:g} / "
                       f"{s['max_points']:g}</td><td>{_e(s['sentence'])}</td></tr>")
        out.append("</table></div>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(path: str | os.PathLike, lab: Lab, rows: list[GradeRow], reproduce: bool = False) -> None:
    from engine.atomic import atomic_write_bytes

    atomic_write_bytes(path, report_html(lab, rows, reproduce).encode("utf-8"))
