"""Render the latest result of every claim into ``OUT/report.md`` and a self-contained
``OUT/report.html`` (plots embedded as base64), one section per paper of the catalog.
Papers without results appear as planned (or "not run yet" when implemented)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from paperlab import __version__, catalog
from paperlab.catalog import PaperInfo
from paperlab.claims import Result, write_text_atomic
from paperlab.runner import latest_results, measured_str, result_dir

VERDICT_COLOR = {
    "holds": "#1a7f37",
    "fails": "#cf222e",
    "inconclusive": "#9a6700",
    "skipped": "#6e7781",
}


def _status(slug: str, results: Mapping[str, Result] | None) -> str:
    if results:
        counts: dict[str, int] = {}
        for r in results.values():
            counts[r.shown_verdict] = counts.get(r.shown_verdict, 0) + 1
        return ", ".join(f"{n} {v}" for v, n in counts.items())
    return "not run yet" if catalog.is_implemented(slug) else "planned"


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(out: Path, found: Mapping[str, Mapping[str, Result]]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# paperlab report",
        "",
        f"paperlab {__version__}, rendered {now}.",
        "",
        "| paper | arXiv | status |",
        "|---|---|---|",
    ]
    for slug, info in catalog.PAPERS.items():
        lines.append(
            f"| [{slug}](#{slug}) | [{info.arxiv}]({info.url}) | {_status(slug, found.get(slug))} |"
        )
    section = None
    for slug, info in catalog.PAPERS.items():
        if info.section != section:
            section = info.section
            lines += ["", f"## {section}"]
        lines += [
            "",
            f'<a id="{slug}"></a>',
            f"### {slug}: {info.title}",
            "",
            f"arXiv [{info.arxiv}]({info.url}) · `paperlab reproduce {slug}`",
            "",
        ]
        results = found.get(slug)
        if not results:
            lines.append(f"_{_status(slug, results)}_")
            continue
        lines += [
            "| claim | paper | ours | verdict | scale, seed, device, time |",
            "|---|---|---|---|---|",
        ]
        for r in results.values():
            lines.append(
                f"| {_md_cell(r.claim_id)}: {_md_cell(r.statement)} | "
                f"{_md_cell(r.paper_figure)} | {_md_cell(r.ours)} | **{r.shown_verdict}** | "
                f"{r.scale}, {r.seed}, {r.device}, {r.seconds:.0f}s |"
            )
        for r in results.values():
            lines += [
                "",
                f"**{r.claim_id}** — criterion: `{r.criterion}` → **{r.shown_verdict}**"
                + (f" ({r.reason})" if r.reason else ""),
                "",
                f"measured: {measured_str(r.measured, limit=12)}",
            ]
            rel = result_dir(Path("."), r)
            for a in r.artifacts:
                if a.endswith(".png"):
                    lines += ["", f"![{r.claim_id} {a}]({(rel / a).as_posix()})"]
    lines.append("")
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1f2328}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;
padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}th{background:#f6f8fa}
.v{color:#fff;padding:1px 7px;border-radius:10px;font-size:13px;white-space:nowrap}
.planned{color:#6e7781;font-style:italic}img{max-width:100%;border:1px solid #d0d7de;margin:4px 0}
code{background:#f6f8fa;padding:1px 4px}.detail{font-size:14px;margin:.3em 0 .8em 0}"""


def _badge(verdict: str, smoke: bool = False) -> str:
    if smoke:  # grey whatever the verdict: a smoke run's verdict is not a finding
        return f'<span class="v" style="background:#6e7781">{html.escape(verdict)} (smoke)</span>'
    color = VERDICT_COLOR.get(verdict, "#6e7781")
    return f'<span class="v" style="background:{color}">{html.escape(verdict)}</span>'


def _embed_png(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _paper_html(out: Path, info: PaperInfo, results: Mapping[str, Result] | None) -> list[str]:
    e = html.escape
    parts = [
        f'<h3 id="{info.slug}">{e(info.slug)}: {e(info.title)}</h3>',
        f'<p>arXiv <a href="{info.url}">{info.arxiv}</a> · '
        f"<code>paperlab reproduce {info.slug}</code></p>",
    ]
    if not results:
        return parts + [f'<p class="planned">{_status(info.slug, results)}</p>']
    parts.append(
        "<table><tr><th>claim</th><th>paper</th><th>ours</th><th>verdict</th>"
        "<th>scale · seed · device · time</th></tr>"
    )
    for r in results.values():
        parts.append(
            f"<tr><td><b>{e(r.claim_id)}</b>: {e(r.statement)}</td>"
            f"<td>{e(r.paper_figure)}</td><td>{e(r.ours)}</td><td>{_badge(r.verdict, r.smoke)}"
            f"</td><td>{e(r.scale)} · {r.seed} · {e(r.device)} · {r.seconds:.0f}s</td></tr>"
        )
    parts.append("</table>")
    for r in results.values():
        reason = f" ({e(r.reason)})" if r.reason else ""
        parts.append(
            f'<div class="detail"><b>{e(r.claim_id)}</b>: criterion '
            f"<code>{e(r.criterion)}</code> → {_badge(r.verdict, r.smoke)}{reason}<br>"
            f"measured: {e(measured_str(r.measured, limit=12))}</div>"
        )
        for a in r.artifacts:
            path = result_dir(out, r) / a
            if a.endswith(".png") and path.is_file():
                parts.append(_embed_png(path))
    return parts


def render_html(out: Path, found: Mapping[str, Mapping[str, Result]]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>paperlab report</h1><p>paperlab {__version__}, rendered {now}.</p>",
        "<table><tr><th>paper</th><th>arXiv</th><th>status</th></tr>",
    ]
    for slug, info in catalog.PAPERS.items():
        body.append(
            f'<tr><td><a href="#{slug}">{slug}</a></td><td><a href="{info.url}">'
            f"{info.arxiv}</a></td><td>{html.escape(_status(slug, found.get(slug)))}"
            "</td></tr>"
        )
    body.append("</table>")
    section = None
    for slug, info in catalog.PAPERS.items():
        if info.section != section:
            section = info.section
            body.append(f"<h2>{html.escape(section)}</h2>")
        body += _paper_html(out, info, found.get(slug))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>paperlab report</title>"
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def _in_claim_order(found: dict[str, dict[str, Result]]) -> dict[str, dict[str, Result]]:
    """Each paper's results in the order its claims.py declares them (unknown ones last)."""
    ordered = {}
    for slug, results in found.items():
        order = []
        if catalog.is_implemented(slug):
            order = [c.id for c in catalog.load_paper(slug).claims]
        rank = {cid: i for i, cid in enumerate(order)}
        ordered[slug] = dict(sorted(results.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    return ordered


def write_report(out: Path) -> tuple[Path, Path, int]:
    """Write ``out/report.md`` and ``out/report.html``; return their paths and #results."""
    found = _in_claim_order(latest_results(out))
    md_path, html_path = out / "report.md", out / "report.html"
    write_text_atomic(md_path, render_markdown(out, found))
    write_text_atomic(html_path, render_html(out, found))
    return md_path, html_path, sum(len(v) for v in found.values())
