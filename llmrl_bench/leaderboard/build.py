"""Build the leaderboard from the accepted submissions of a ``leaderboard/`` folder.

A submission in ``<root>/submissions/<folder>/`` is accepted when it validates and (unless
``allow_unverified``) holds a current, passing ``verification.json``. Every number comes
from the validation's recomputation, never from a submitted summary. Output, in ``out``:

* ``leaderboard.md``: one Markdown table per track;
* ``index.html``: the same tables, sortable (a small inline script; no network, and a
  Content-Security-Policy that allows only that script);
* ``submissions/<id>.html``: each submission's details (metadata, code identity, versions,
  verification, per-env aggregates, every run).

The output is deterministic: the same submissions give byte-identical files. Every text
that comes from a submission is escaped, so ``<script>alert(1)</script>`` renders as text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrl_bench.leaderboard.aggregate import ENV_METRICS, OVERALL_METRICS, RANKING_METRIC
from llmrl_bench.leaderboard.bundle import is_archive
from llmrl_bench.leaderboard.tracks import Track, load_tracks
from llmrl_bench.leaderboard.validate import URL, Report, validate
from llmrl_bench.results import atomic_write_bytes

SUBMISSIONS_DIR = "submissions"
INDEX_FILE = "index.html"
MARKDOWN_FILE = "leaderboard.md"
TITLE = "llmrl_bench leaderboard"
METRIC_LABELS = {
    "cumulative_reward_normalized": "Return",
    "generalization_normalized": "Held-out return",
    "learning_speed": "Learning speed",
    "policy_stability_normalized": "Instability ↓",
    "cumulative_reward": "Final return",
    "generalization": "Held-out return",
    "policy_stability": "Instability ↓",
    "generalization_gap": "Generalization gap ↓",
}
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem; color: #1b1f24; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid #d0d7de; padding: .35rem .5rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f6f8fa; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: inherit; }
th[aria-sort=ascending] button::after { content: " ▲"; } th[aria-sort=descending] button::after { content: " ▼"; }
.ci { color: #57606a; font-size: .85em; display: block; }
table.facts th { width: 14rem; background: none; font-weight: 600; }
.protocol, .note { color: #57606a; }
.verified { color: #1a7f37; font-weight: 600; } .unverified { color: #9a6700; }
code { font-size: .9em; } .description { white-space: pre-wrap; } .nowrap { white-space: nowrap; }
""".strip()
SCRIPT = """
(function () {
  "use strict";
  function sortTable(table, column, direction) {
    var header = table.tHead.rows[0].cells[column];
    var numeric = header.getAttribute("data-type") === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].getAttribute("data-sort"), y = b.cells[column].getAttribute("data-sort");
      var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return direction === "ascending" ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", direction);
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.querySelector("button").addEventListener("click", function () {
        var next = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        sortTable(table, column, next);
      });
    });
    table.setAttribute("data-sortable", "ready");
  });
  // index.html#sort=<column>[:asc|:desc] opens every table sorted by that column.
  var wanted = /sort=([a-z_]+)(?::(asc|desc))?/.exec(window.location.hash);
  if (wanted) {
    Array.prototype.forEach.call(tables, function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
        if (th.getAttribute("data-key") === wanted[1]) {
          sortTable(table, column, wanted[2] === "asc" ? "ascending" : "descending");
        }
      });
    });
  }
})();
""".strip()


@dataclass
class Entry:
    """One accepted submission, with everything recomputed by validation."""

    folder: str
    report: Report

    @property
    def submission(self) -> dict[str, Any]:
        return self.report.submission  # type: ignore[return-value]

    @property
    def id(self) -> str:
        return self.submission["id"]

    @property
    def summary(self) -> dict[str, Any]:
        return self.report.summary  # type: ignore[return-value]

    @property
    def score(self) -> float:
        return self.summary["overall"][RANKING_METRIC]["iqm"]


@dataclass
class BuildResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)


def collect(root: Path, tracks_path: str | Path | None = None, allow_unverified: bool = False) -> tuple[list[Entry], list[str]]:
    """The accepted submissions under ``root/submissions`` and one line per skipped folder."""
    entries: list[Entry] = []
    skipped: list[str] = []
    folder = root / SUBMISSIONS_DIR
    children = sorted(folder.iterdir()) if folder.is_dir() else []
    seen: dict[str, str] = {}
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_symlink() or not child.is_dir():
            reason = "an archive: unpack it first" if is_archive(child) else "not a submission folder"
            skipped.append(f"skip {child.name}: {reason}")
            continue
        report = validate(child, tracks_path)
        if not report.ok:
            skipped.append(f"skip {child.name}: invalid, {len(report.failures)} failure(s), first: {report.failures[0]}")
        elif report.summary is None:
            skipped.append(f"skip {child.name}: no aggregates could be recomputed")
        elif not report.verified and not allow_unverified:
            why = "its verification failed" if report.verification is not None else "not verified (run verify)"
            skipped.append(f"skip {child.name}: {why}")
        elif report.submission["id"] in seen:
            skipped.append(f"skip {child.name}: id {report.submission['id']} is already used by {seen[report.submission['id']]}")
        else:
            seen[report.submission["id"]] = child.name
            entries.append(Entry(child.name, report))
    return entries, skipped


def ranked(entries: list[Entry], track: str) -> list[Entry]:
    """The track's entries, best ranking score first (ties by id)."""
    return sorted((e for e in entries if e.submission["track"] == track), key=lambda e: (-e.score, e.id))


def build(root: str | Path, out: str | Path | None = None, tracks_path: str | Path | None = None, allow_unverified: bool = False) -> BuildResult:
    """Write ``leaderboard.md``, ``index.html`` and the details pages of ``root`` into ``out``."""
    root = Path(root)
    out = Path(out) if out is not None else root / "site"
    tracks = load_tracks(tracks_path)
    entries, skipped = collect(root, tracks_path, allow_unverified)
    result = BuildResult(skipped=skipped, entries=entries)
    pages = {out / MARKDOWN_FILE: render_markdown(entries, tracks), out / INDEX_FILE: render_index(entries, tracks)}
    for entry in entries:
        pages[out / SUBMISSIONS_DIR / f"{entry.id}.html"] = render_details(entry, tracks[entry.submission["track"]])
    details = out / SUBMISSIONS_DIR
    if details.is_dir():  # pages of submissions no longer accepted
        for stale in sorted(details.glob("*.html")):
            if stale not in pages:
                stale.unlink()
    for path, text in pages.items():
        atomic_write_bytes(path, text.encode())
        result.written.append(path)
    return result


# ------------------------------------------------------------------------------ helpers


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def md_escape(value: Any) -> str:
    """Text for a Markdown table cell: no markup, links, HTML or cell breaks."""
    text = " ".join(str(value).split())
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def estimate_text(estimate: dict[str, float]) -> str:
    return f"{fmt(estimate['iqm'])} [{fmt(estimate['ci_low'])}, {fmt(estimate['ci_high'])}]"


def _verified(entry: Entry) -> str:
    verification = entry.report.verification
    if verification and verification["verified"]:
        return f"yes ({len(verification['runs'])} re-run)"
    return "no"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _page(title: str, body: str, script: bool) -> str:
    policy = f"default-src 'none'; style-src {_csp_hash(STYLE)}" + (f"; script-src {_csp_hash(SCRIPT)}" if script else "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}"
        + (f"<script>{SCRIPT}</script>\n" if script else "")
        + "</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------- Markdown


def render_markdown(entries: list[Entry], tracks: dict[str, Track]) -> str:
    lines = [
        f"# {TITLE}", "",
        "IQM across seeds × envs with 95 % stratified-bootstrap CIs, recomputed from every run "
        "(normalized by each env's score range). Built by `python -m llmrl_bench.leaderboard build`.", "",
    ]
    for name, track in tracks.items():
        rows = ranked(entries, name)
        lines += [f"## Track `{name}`", "", md_escape(track.description), "", f"Protocol: {md_escape(track.protocol())}.", ""]
        if not rows:
            lines += ["No accepted submissions yet.", ""]
            continue
        header = ["#", "Submission", "Authors", "Agent", *(METRIC_LABELS[m] for m in OVERALL_METRICS), "Runs", "Verified", "Date"]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        for rank, entry in enumerate(rows, 1):
            meta, code = entry.submission["metadata"], entry.submission["code"]
            cells = [
                str(rank), f"[{md_escape(meta['name'])}]({SUBMISSIONS_DIR}/{entry.id}.html)", md_escape(", ".join(meta["authors"])),
                md_escape(f"{code['agent']}/{code['repr']}"), *(estimate_text(entry.summary["overall"][m]) for m in OVERALL_METRICS),
                str(entry.summary["num_runs"]), _verified(entry), md_escape(meta["date"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- HTML


def _th(key: str, label: str, kind: str, sort: str | None = None) -> str:
    aria = f' aria-sort="{sort}"' if sort else ""
    cls = ' class="num"' if kind == "number" else ""
    return f'<th data-key="{key}" data-type="{kind}"{cls}{aria}><button type="button">{esc(label)}</button></th>'


def render_index(entries: list[Entry], tracks: dict[str, Track]) -> str:
    parts = [
        f"<h1>{esc(TITLE)}</h1>\n",
        "<p class=\"note\">IQM across seeds × envs with 95 % stratified-bootstrap CIs, recomputed from every run "
        "(normalized by each env's score range; ↓ marks lower-is-better). Click a column header to sort.</p>\n",
    ]
    for name, track in tracks.items():
        rows = ranked(entries, name)
        parts.append(f'<section id="track-{esc(name)}">\n<h2>Track <code>{esc(name)}</code></h2>\n')
        parts.append(f"<p>{esc(track.description)}</p>\n<p class=\"protocol\">Protocol: {esc(track.protocol())}.</p>\n")
        if not rows:
            parts.append("<p>No accepted submissions yet.</p>\n</section>\n")
            continue
        headers = [
            _th("rank", "#", "number", "ascending"), _th("name", "Submission", "text"), _th("authors", "Authors", "text"),
            _th("agent", "Agent", "text"), *(_th(m, METRIC_LABELS[m], "number") for m in OVERALL_METRICS),
            _th("runs", "Runs", "number"), _th("verified", "Verified", "text"), _th("date", "Date", "text"),
        ]
        parts.append(f'<table class="sortable" id="table-{esc(name)}">\n<thead><tr>{"".join(headers)}</tr></thead>\n<tbody>\n')
        for rank, entry in enumerate(rows, 1):
            meta, code = entry.submission["metadata"], entry.submission["code"]
            authors = ", ".join(meta["authors"])
            agent = f"{code['agent']}/{code['repr']}"
            verified = _verified(entry)
            cells = [
                f'<td class="num" data-sort="{rank}">{rank}</td>',
                f'<td data-sort="{esc(meta["name"])}"><a href="{SUBMISSIONS_DIR}/{esc(entry.id)}.html">{esc(meta["name"])}</a></td>',
                f'<td data-sort="{esc(authors)}">{esc(authors)}</td>',
                f'<td data-sort="{esc(agent)}"><code>{esc(agent)}</code></td>',
            ]
            for metric in OVERALL_METRICS:
                estimate = entry.summary["overall"][metric]
                cells.append(
                    f'<td class="num" data-sort="{estimate["iqm"]!r}">{fmt(estimate["iqm"])} '
                    f'<span class="ci">[{fmt(estimate["ci_low"])}, {fmt(estimate["ci_high"])}]</span></td>'
                )
            cells += [
                f'<td class="num" data-sort="{entry.summary["num_runs"]}">{entry.summary["num_runs"]}</td>',
                f'<td data-sort="{esc(verified)}" class="nowrap {"verified" if verified != "no" else "unverified"}">{esc(verified)}</td>',
                f'<td data-sort="{esc(meta["date"])}" class="nowrap">{esc(meta["date"])}</td>',
            ]
            parts.append(f'<tr data-id="{esc(entry.id)}">{"".join(cells)}</tr>\n')
        parts.append("</tbody>\n</table>\n</section>\n")
    return _page(TITLE, "".join(parts), script=True)


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """A table; ``rows`` hold HTML already escaped, columns from ``numeric_from`` on align right."""
    num = ' class="num"'
    head = "".join(f"<th{num if i >= numeric_from else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{num if i >= numeric_from else ''}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>\n"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def _facts(rows: list[tuple[str, str]]) -> str:
    """A key/value table; values hold HTML already escaped."""
    body = "".join(f'<tr><th scope="row">{esc(key)}</th><td>{value}</td></tr>\n' for key, value in rows)
    return f'<table class="facts">\n<tbody>\n{body}</tbody>\n</table>\n'


def render_details(entry: Entry, track: Track) -> str:
    submission, summary = entry.submission, entry.summary
    meta, code, environment = submission["metadata"], submission["code"], submission["environment"]
    url = meta["url"]
    link = f'<a href="{esc(url)}" rel="nofollow noopener noreferrer">{esc(url)}</a>' if url and URL.match(url) else "–"
    parts = [
        f'<p><a href="../{INDEX_FILE}">← {esc(TITLE)}</a></p>\n',
        f"<h1>{esc(meta['name'])}</h1>\n",
        _facts([
            ("Authors", esc(", ".join(meta["authors"]))), ("Date", esc(meta["date"])), ("URL", link),
            ("Track", f"<code>{esc(track.name)}</code>: {esc(track.protocol())}"),
            ("Agent", f"<code>{esc(code['agent'])}</code> with <code>{esc(code['repr'])}</code> observations"),
            ("Verified", esc(_verified(entry))),
        ]),
        f'<p class="description">{esc(meta["description"])}</p>\n' if meta["description"] else "",
        "<h2>Scores (IQM across seeds × envs, 95 % CI)</h2>\n",
        _table(["Metric (normalized)", "IQM", "95 % CI"], [
            [esc(METRIC_LABELS[m]), fmt(summary["overall"][m]["iqm"]), f"[{fmt(summary['overall'][m]['ci_low'])}, {fmt(summary['overall'][m]['ci_high'])}]"]
            for m in OVERALL_METRICS
        ]),
        "<h2>Per env (IQM across seeds, 95 % CI, raw units)</h2>\n",
        _table(["Env", *(METRIC_LABELS[m] for m in ENV_METRICS)], [
            [f"<code>{esc(env)}</code>", *(esc(estimate_text(values[m])) for m in ENV_METRICS)] for env, values in sorted(summary["envs"].items())
        ]),
        "<h2>Code</h2>\n",
        _facts([
            ("Agent _target_", f"<code>{esc(code['agent_target'])}</code>" + (" (external)" if code["external"] else "")),
            ("Agent module SHA-256", f"<code>{esc(code['module']['name'])}</code> <code>{esc(code['module']['sha256'])}</code>" if code["module"] else "–"),
            ("Git commit of the runs", f"<code>{esc(code['git_commit'])}</code>"),
            ("llmrl_bench source SHA-256", f"<code>{esc(code['package_sha256'])}</code> ({esc(code['package_files'])} files)"),
        ]),
        "<h2>Environment</h2>\n",
        _table(["Package", "Version"], [[f"<code>{esc(k)}</code>", esc(v)] for k, v in sorted(environment["packages"].items())], numeric_from=99),
        _table(["Env", "Gym id", "Held-out contexts"], [
            [f"<code>{esc(env)}</code>", f"<code>{esc(info['gym_id'])}</code>", esc(", ".join(info["held_out_contexts"]))]
            for env, info in sorted(environment["envs"].items())
        ], numeric_from=99),
        f'<p class="note">Platforms: {esc("; ".join(environment["platforms"]))}</p>\n',
    ]
    verification = entry.report.verification
    if verification:
        parts += [
            "<h2>Verification</h2>\n",
            _facts([
                ("Result", "all re-runs match" if verification["verified"] else esc(f"{len(verification['mismatches'])} mismatch(es)")),
                ("Runs re-run", " ".join(f"<code>{esc(r)}</code>" for r in verification["runs"])),
                ("Tolerance", esc(f"{verification['tolerance']['mode']} (rtol {verification['tolerance']['rtol']}, atol {verification['tolerance']['atol']})")),
                ("Verifier platform", esc(verification["verifier"]["platform"])),
                ("Same llmrl_bench source", "yes" if verification["verifier"]["same_code"] else "no"),
            ]),
        ]
    run_rows = sorted(entry.report.runs, key=lambda r: (r.env, r.seed))
    parts += [
        "<h2>Runs</h2>\n",
        _table(["Env", "Seed", "Run id", *(METRIC_LABELS[m] for m in ENV_METRICS)], [
            [f"<code>{esc(r.env)}</code>", str(r.seed), f"<code>{esc(r.run_id)}</code>", *(fmt(r.metrics[m]) for m in ENV_METRICS)]
            for r in run_rows
        ], numeric_from=1),
    ]
    return _page(f"{meta['name']} · {TITLE}", "".join(parts), script=False)
