"""Build the leaderboard from the accepted submissions of a ``leaderboard/`` folder.

A submission in ``<root>/submissions/<folder>/`` is accepted when it validates and (unless
``allow_unverified``) its record beside it, ``<folder>.verification.json``, is current and
passing. Every number comes from the validation's recomputation, never from a submitted
summary; an undefined value (``None``) is shown "n/a" and ranks last. Each entry says in
words that it was validated, what verification did (runs re-evaluated, re-trained, the
tolerance met) and what it cannot vouch for (dirty tree, unknown commit, another platform).

Pages are Jinja2 templates (``templates/``, autoescaped), written to ``out``:

* ``leaderboard.md``: one Markdown table per track;
* ``index.html``: the same tables, sortable (one inline script; no network, and a
  Content-Security-Policy that allows only that script and the style);
* ``submissions/<id>.html``: each submission's details.

The output is deterministic: the same submissions give byte-identical files.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from llmrl_bench.leaderboard.aggregate import ENV_METRICS, OVERALL_METRICS, RANKING_METRIC, UNDEFINED
from llmrl_bench.leaderboard.bundle import VERIFICATION_SUFFIX, is_archive
from llmrl_bench.leaderboard.tracks import Track, load_tracks
from llmrl_bench.leaderboard.validate import URL, Report, validate
from llmrl_bench.results import atomic_write_bytes

SUBMISSIONS_DIR = "submissions"
INDEX_FILE = "index.html"
MARKDOWN_FILE = "leaderboard.md"
TITLE = "llmrl_bench leaderboard"
TEMPLATES_DIR = Path(__file__).with_name("templates")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
    def score(self) -> float | None:
        """The ranking score; ``None`` when undefined."""
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
        if child.name.startswith(".") or (child.name.endswith(VERIFICATION_SUFFIX) and child.is_file() and not child.is_symlink()):
            continue  # verification records live beside their folders
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
    """The track's entries, best ranking score first, undefined scores last (ties by id)."""
    return sorted((e for e in entries if e.submission["track"] == track), key=lambda e: (e.score is None, -(e.score or 0.0), e.id))


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


def md_escape(value: Any) -> str:
    """Text for a Markdown table cell: no markup, links, HTML or cell breaks."""
    text = " ".join(str(value).split())
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def cell(estimate: dict[str, Any], key: str = "") -> dict[str, Any]:
    """One estimate for a template: its text, CI text and sort key ("" when undefined)."""
    iqm = estimate["iqm"]
    ci = None if iqm is None else f"[{fmt(estimate['ci_low'])}, {fmt(estimate['ci_high'])}]"
    return {"key": key, "label": METRIC_LABELS.get(key, key), "iqm": iqm, "text": fmt(iqm), "ci": ci, "sort": "" if iqm is None else repr(iqm)}


@functools.cache
def known_commit(commit: str) -> bool:
    """Whether ``commit`` (40 hex digits) is a commit of this repository."""
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return False
    proc = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=PROJECT_ROOT, capture_output=True)
    return proc.returncode == 0


def trust(entry: Entry) -> dict[str, Any]:
    """What verification did, in words (``verified``, with a ``state``), and what it cannot vouch for (``warnings``)."""
    record, submission = entry.report.verification, entry.submission
    if record is None:
        state, verified = "unverified", "not verified"
    elif record["verified"]:
        tolerance = record["tolerance"]
        met = "exact match" if tolerance["mode"] == "exact" else f"match within rtol {tolerance['rtol']:g}, atol {tolerance['atol']:g}"
        state = "verified"
        verified = (f"verified: {len(record['re_evaluated'])} of {len(entry.report.runs)} runs re-evaluated, "
                    f"{len(record['retrained'])} re-trained, {met}")
    else:
        state, verified = "failed", f"verification failed: {len(record['mismatches'])} mismatch(es)"
    warnings = []
    commit = submission["code"]["git_commit"] or ""
    if commit.endswith("+dirty"):
        warnings.append("dirty tree: runs made with uncommitted changes")
    if not commit:
        warnings.append("unknown commit: the runs record none")
    elif not known_commit(commit.removesuffix("+dirty")):
        warnings.append(f"unknown commit: {commit.removesuffix('+dirty')[:8]} is not in this repository")
    if record is not None:
        if record["verifier"]["platform"] not in submission["environment"]["platforms"]:
            warnings.append("different platform: verified on another than the runs'")
        if not record["verifier"]["same_code"]:
            warnings.append("different code: verified with another llmrl_bench source")
    return {"state": state, "verified": verified, "warnings": warnings}


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    environment.filters["md"] = md_escape
    return environment


def _asset(name: str) -> str:
    return (TEMPLATES_DIR / name).read_text().strip()


def _render(template: str, title: str, script: bool, **context: Any) -> str:
    style, code = _asset("style.css"), _asset("sort.js") if script else ""
    policy = f"default-src 'none'; style-src {_csp_hash(style)}" + (f"; script-src {_csp_hash(code)}" if script else "")
    # The style and script are this package's own files, so not escaped; the CSP pins their hashes.
    return _environment().get_template(template).render(
        title=title, site_title=TITLE, policy=policy, style=markupsafe.Markup(style), script=markupsafe.Markup(code), **context
    )


def _tracks_view(entries: list[Entry], tracks: dict[str, Track]) -> list[dict[str, Any]]:
    views = []
    for name, track in tracks.items():
        rows = []
        for rank, entry in enumerate(ranked(entries, name), 1):
            meta, code = entry.submission["metadata"], entry.submission["code"]
            rows.append({
                "rank": rank, "id": entry.id, "name": meta["name"], "authors": ", ".join(meta["authors"]),
                "agent": f"{code['agent']}/{code['repr']}", "date": meta["date"], "runs": entry.summary["num_runs"],
                "metrics": [cell(entry.summary["overall"][m], m) for m in OVERALL_METRICS], "trust": trust(entry),
            })
        views.append({"name": name, "description": track.description, "protocol": track.protocol(), "rows": rows})
    return sorted(views, key=lambda view: not view["rows"])  # tracks with entries first


def render_markdown(entries: list[Entry], tracks: dict[str, Track]) -> str:
    return _render(MARKDOWN_FILE, TITLE, False, tracks=_tracks_view(entries, tracks), metrics=[cell(UNDEFINED, m) for m in OVERALL_METRICS])


def render_index(entries: list[Entry], tracks: dict[str, Track]) -> str:
    return _render(INDEX_FILE, TITLE, True, tracks=_tracks_view(entries, tracks), metrics=[cell(UNDEFINED, m) for m in OVERALL_METRICS])


def render_details(entry: Entry, track: Track) -> str:
    submission, summary = entry.submission, entry.summary
    meta = submission["metadata"]
    runs = [
        {"env": r.env, "seed": r.seed, "run_id": r.run_id, "cells": [fmt(r.metrics[m] if r.metrics else None) for m in ENV_METRICS]}
        for r in sorted(entry.report.runs, key=lambda r: (r.env, r.seed))
    ]
    return _render(
        "details.html", f"{meta['name']} · {TITLE}", False, meta=meta, code=submission["code"], environment=submission["environment"],
        url=meta["url"] if meta["url"] and URL.match(meta["url"]) else "", track=track, trust=trust(entry),
        overall=[cell(summary["overall"][m], m) for m in OVERALL_METRICS], env_labels=[METRIC_LABELS[m] for m in ENV_METRICS],
        envs=[{"name": env, "cells": [cell(values[m], m) for m in ENV_METRICS]} for env, values in sorted(summary["envs"].items())],
        verification=entry.report.verification, runs=runs,
    )
