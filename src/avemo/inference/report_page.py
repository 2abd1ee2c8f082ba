"""``report.html``: a folder run's results as one page to open in a browser or send on: the overview picture,
a table of every input (its dominant emotions, or why it failed) and each file's timeline figure, all linked to
the files beside it (relative links: the folder can be moved or zipped whole). Plain HTML, no script, nothing
fetched from elsewhere."""

from __future__ import annotations

import html
import json
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avemo.labels import emotion_color

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d2329; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e2e5e9; vertical-align: top; }
.chip { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: .3em;
        vertical-align: -.05em; }
.failed { color: #b3261e; } .muted { color: #66707a; } img { max-width: 100%; }
"""
_FILES = (("timeline.csv", "CSV"), ("timeline.json", "JSON"), ("timeline.vtt", "subtitles"),
          ("annotated.mp4", "annotated video"), ("annotated.png", "annotated photo"))


def _href(*parts: str) -> str:
    return "/".join(urllib.parse.quote(p) for p in parts)


def _emotion(name: str | None) -> str:
    if not name:
        return '<span class="muted">—</span>'
    return f'<span class="chip" style="background:{emotion_color(name)}"></span>{html.escape(name)}'


def _summary(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def write_report(rows: Sequence[dict[str, Any]], out_dir: Path, *, overview: bool = False) -> Path:
    """Write ``out_dir/report.html`` from a run's result rows (:data:`~avemo.inference.batch.RESULT_COLUMNS`);
    ``overview``: show ``overview.png``."""
    esc = html.escape
    done = [r for r in rows if r["status"] != "failed"]
    failed = [r for r in rows if r["status"] == "failed"]
    lines = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>avemo: {len(rows)} input{'s' * (len(rows) != 1)}</title><style>{_STYLE}</style></head><body>",
             "<h1>avemo results</h1>",
             f'<p class="muted">{len(done)} analysed, {len(failed)} failed · written '
             f'{esc(time.strftime("%Y-%m-%d %H:%M"))} · the table as CSV: <a href="results.csv">results.csv</a></p>']
    if overview:
        lines.append('<img src="overview.png" alt="every file\'s fused emotion over time">')
    lines += ["<table><thead><tr><th>input</th><th>length</th><th>fused</th><th>face</th><th>voice</th>"
              "<th>uncertain</th><th>files</th></tr></thead><tbody>"]
    for r in rows:
        name = esc(Path(str(r["input"])).name or str(r["input"]))
        if r["status"] == "failed":
            lines.append(f'<tr><td>{name}</td><td colspan="6" class="failed">failed: {esc(str(r["error"]))}</td></tr>')
            continue
        folder = out_dir / str(r["folder"])
        links = [f'<a href="{_href(str(r["folder"]), f)}">{label}</a>' for f, label in _FILES
                 if (folder / f).is_file()]
        duration = f"{float(r['duration']):.1f} s" if r.get("duration") is not None else ""
        uncertain = f"{100 * float(r['uncertain_share']):.0f} %" if r.get("uncertain_share") is not None else ""
        lines.append(f'<tr><td><a href="#{esc(str(r["folder"]))}">{name}</a></td><td>{duration}</td>'
                     f"<td>{_emotion(r.get('dominant'))}</td><td>{_emotion(r.get('face_dominant'))}</td>"
                     f"<td>{_emotion(r.get('voice_dominant'))}</td><td>{uncertain}</td>"
                     f"<td>{' · '.join(links)}</td></tr>")
    lines.append("</tbody></table>")
    for r in done:
        folder = str(r["folder"])
        s = _summary(out_dir / folder)
        cover = (f"face in {100 * s['face_coverage']:.0f} % of the windows, speech in "
                 f"{100 * s['speech_coverage']:.0f} %") if "face_coverage" in s else ""
        lines += [f'<h2 id="{esc(folder)}">{esc(Path(str(r["input"])).name)}</h2>',
                  f'<p class="muted">{esc(str(r["input"]))}{" · " + cover if cover else ""}</p>',
                  f'<img loading="lazy" src="{_href(folder, "timeline.png")}" alt="timeline of {esc(folder)}">']
    lines.append("</body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
