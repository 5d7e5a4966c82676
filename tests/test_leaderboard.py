"""Leaderboard: pack -> validate -> verify -> build on real smoke runs; escaping; Chromium.

The runs are made once per session by the real CLI (PPO x CartPole x seeds 0-9,
``debug=smoke``, which is the ``smoke`` track's protocol; :func:`smoke_runs`), shared with
``test_leaderboard_attacks.py``, which tampers with copies of the packed submission.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

import pytest
from omegaconf import OmegaConf

from llmrl_bench.leaderboard.__main__ import main
from llmrl_bench.leaderboard.aggregate import recompute_run_metrics
from llmrl_bench.leaderboard.build import Entry, build, render_details, render_index
from llmrl_bench.leaderboard.bundle import verification_path
from llmrl_bench.leaderboard.identity import code_identity, package_source_sha256
from llmrl_bench.leaderboard.pack import Metadata, PackError, pack
from llmrl_bench.leaderboard.tracks import MIN_SEEDS, TrackError, load_tracks
from llmrl_bench.leaderboard.validate import validate
from llmrl_bench.leaderboard.verify import compare_runs, select_retrain
from llmrl_bench.results import load_result

from tests.conftest import REPO, run_cli

TRACK = "smoke"
HOSTILE = "<script>alert(1)</script>"
METADATA = Metadata(name="PPO smoke", authors=["A. Author", "B. Author"], url="https://example.org/ppo", date="2026-01-02",
                    description="PPO with RL Zoo's CartPole hyperparameters, smoke budget.")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run")


# ----------------------------------------------------------------------------- helpers


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed) -> its content hash or link target."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                entries[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                entries[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                entries[rel] = "dir"
    return entries


def rehash(submission: Path) -> None:
    """Rewrite the manifest to match the files, as a forger who knows the format would."""
    path = submission / "submission.json"
    record = json.loads(path.read_text())
    record["files"] = {
        p.relative_to(submission).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(submission.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name not in ("submission.json", "verification.json")
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=True))


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2, sort_keys=True))


def run_of_seed(submission: Path, seed: int) -> Path:
    for result in sorted((submission / "runs").glob("*/result.json")):
        if json.loads(result.read_text())["seed"] == seed:
            return result.parent
    raise LookupError(seed)


def cli(capsys, *args: str) -> tuple[int, str]:
    """``python -m llmrl_bench.leaderboard ARGS`` in-process: exit code and stdout + stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def chromium_dom(page: Path, tmp_path: Path, fragment: str = "") -> str:
    """The DOM of ``page`` after its scripts ran, from headless Chromium."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (CI: apt-get update && apt-get install -y chromium)")
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    proc = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri() + fragment],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def row_ids(dom: str, table: str) -> list[str]:
    body = dom.split(f'id="table-{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-id="([^"]+)"', body)


# ---------------------------------------------------------------------------- fixtures


@functools.cache
def smoke_runs(base: Path) -> Path:
    """The smoke track's runs, made once per test session under ``base`` (the session's temp root).

    Pytest may import this module twice (as a test file, and from ``test_leaderboard_attacks``),
    so what is on disk decides, not only the cache.
    """
    results_dir = base / "leaderboard-runs" / "results"
    if len(list(results_dir.glob("runs/*/result.json"))) == 10:
        return results_dir
    results_dir.parent.mkdir(parents=True, exist_ok=True)
    proc = run_cli("-m", "agent=ppo", "env=cartpole", "seed=0-9", "debug=smoke", f"results_dir={results_dir}", cwd=results_dir.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((results_dir / "runs").glob("*/result.json"))) == 10
    return results_dir


@functools.cache
def packed_submission(base: Path) -> Path:
    out = base / "packed" / "ppo-smoke"
    if not out.is_dir():
        pack(smoke_runs(base), TRACK, out, METADATA)
    return out


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> Path:
    return smoke_runs(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    return packed_submission(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def published(smoke_results, tmp_path_factory):
    """The whole pipeline through the CLI: pack (a subprocess), then validate, verify, build in-process."""
    root = tmp_path_factory.mktemp("leaderboard-root")
    submission = root / "submissions" / "ppo-smoke"
    proc = subprocess.run(
        [sys.executable, "-m", "llmrl_bench.leaderboard", "pack", str(smoke_results), "--track", TRACK, "--out", str(submission),
         "--name", METADATA.name, "--authors", ", ".join(METADATA.authors), "--url", METADATA.url, "--date", METADATA.date,
         "--description", METADATA.description],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    steps = {"pack": (proc.returncode, proc.stdout + proc.stderr)}
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = main(["validate", str(submission)])
    steps["validate"] = (code, output.getvalue())
    before = tree(root)
    steps["verify"] = (main(["verify", str(submission), "--retrain", "2", "--seed", "0"]), "")
    steps["verify_wrote"] = sorted(set(tree(root).items()) - set(before.items()))
    # A second, valid but unverified entry, so that sorting has two rows to order.
    pack(smoke_results, TRACK, root / "submissions" / "another", Metadata(name="Another PPO", authors=["C. Author"], date="2026-01-03"), submission_id="another")
    site = root / "site"
    steps["build"] = build(root, site)
    first = {path: path.read_bytes() for path in site.rglob("*") if path.is_file()}
    build(root, site)
    steps["rebuild_identical"] = len(first) == 3 and first == {path: path.read_bytes() for path in site.rglob("*") if path.is_file()}
    steps["site_all"] = root / "site-all"
    steps["build_all"] = build(root, steps["site_all"], allow_unverified=True)
    return root, submission, site, steps


# ------------------------------------------------------------------------ end to end


def test_pack_validate_verify_build_end_to_end(published):
    root, submission, site, steps = published
    code, output = steps["pack"]
    assert code == 0 and f"packed {submission}" in output, output
    assert sorted(p.name for p in submission.iterdir()) == ["runs", "submission.json", "summary.json"]
    assert all(sorted(p.name for p in run.iterdir()) == ["config.yaml", "episodes.npz", "policy.pt", "result.json"] for run in (submission / "runs").iterdir())
    manifest = json.loads((submission / "submission.json").read_text())
    assert manifest["metadata"] == {"name": METADATA.name, "authors": METADATA.authors, "url": METADATA.url,
                                    "date": METADATA.date, "description": METADATA.description}
    assert manifest["code"]["agent_target"] == "llmrl_bench.agents.ppo.PPO" and manifest["code"]["external"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["code"]["package_sha256"])
    assert manifest["environment"]["envs"]["cartpole"]["gym_id"] == "CartPole-v1"
    assert "gymnasium" in manifest["environment"]["packages"] and len(manifest["files"]) == 41

    code, output = steps["validate"]
    assert code == 0 and "valid: ppo-smoke (track smoke, 10 runs, ppo/vector, not verified)" in output, output

    assert steps["verify"][0] == 0
    assert [rel for rel, _ in steps["verify_wrote"]] == ["submissions/ppo-smoke.verification.json"]  # beside; nothing else written
    record = json.loads(verification_path(submission).read_text())
    assert record["verified"] and record["tolerance"]["mode"] == "exact" and not record["mismatches"]
    report = validate(submission)
    assert record["re_evaluated"] == sorted(run.run_id for run in report.runs)
    assert record["retrained"] == select_retrain(report.runs, 2, 0) and record["selection_seed"] == 0
    best = max(report.runs, key=lambda run: run.result.metrics["cumulative_reward_normalized"]).run_id
    assert best in record["retrained"]
    assert record["submission_sha256"] == hashlib.sha256((submission / "submission.json").read_bytes()).hexdigest()
    assert validate(submission).verified

    result = steps["build"]
    assert sorted(p.relative_to(site).as_posix() for p in result.written) == ["index.html", "leaderboard.md", "submissions/ppo-smoke.html"]
    assert [e.id for e in result.entries] == ["ppo-smoke"]
    assert any("skip another: not verified" in line for line in result.skipped)
    assert steps["rebuild_identical"]
    markdown = (site / "leaderboard.md").read_text()
    summary = json.loads((submission / "summary.json").read_text())["overall"]["cumulative_reward_normalized"]
    row = next(line for line in markdown.splitlines() if "ppo-smoke.html" in line)
    assert row.startswith("| 1 | [PPO smoke](submissions/ppo-smoke.html) | A. Author, B. Author | ppo/vector | ")
    assert f"{summary['iqm']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]" in row
    assert "| validated | verified: 10 of 10 runs re-evaluated, 2 re-trained, exact match |" in row
    index = (site / "index.html").read_text()
    assert 'href="submissions/ppo-smoke.html"' in index and index.count("<script>") == 1
    details = (site / "submissions" / "ppo-smoke.html").read_text()
    assert "CartPole-v1" in details and manifest["code"]["package_sha256"] in details and details.count("<tr>") > 20
    assert sorted(e.id for e in steps["build_all"].entries) == ["another", "ppo-smoke"]


def test_a_stale_verification_is_not_trusted(published, tmp_path):
    _, submission, _, _ = published
    copy_ = tmp_path / "ppo-smoke"
    shutil.copytree(submission, copy_)
    shutil.copyfile(verification_path(submission), verification_path(copy_))
    assert validate(copy_).verified
    edit_json(copy_ / "submission.json", lambda r: r["metadata"].update(description="changed after verification"))
    report = validate(copy_)
    assert report.ok and not report.verified
    assert "ppo-smoke.verification.json: made for another submission.json (stale); verify again" in report.warnings


def test_rendered_rows_in_headless_chromium(published, tmp_path):
    root, _, site, steps = published
    dom = chromium_dom(site / "index.html", tmp_path)
    assert 'id="table-smoke" data-sortable="ready"' in dom  # the inline script ran under the page's CSP
    assert row_ids(dom, "smoke") == ["ppo-smoke"]
    assert "PPO smoke" in dom and "verified: 10 of 10 runs re-evaluated, 2 re-trained, exact match" in dom
    page = steps["site_all"] / "index.html"
    assert row_ids(chromium_dom(page, tmp_path), "smoke") == ["another", "ppo-smoke"]  # equal scores: by id
    assert row_ids(chromium_dom(page, tmp_path, "#sort=name:desc"), "smoke") == ["ppo-smoke", "another"]
    assert row_ids(chromium_dom(page, tmp_path, "#sort=authors:asc"), "smoke") == ["ppo-smoke", "another"]


def test_submission_text_is_escaped_in_the_page(published, tmp_path):
    _, submission, _, _ = published
    report = copy.deepcopy(validate(submission))
    report.submission["metadata"].update(name=HOSTILE, authors=[HOSTILE, "x\" onmouseover=\"alert(2)"],
                                          description=f"{HOSTILE} <img src=x onerror=alert(3)>", url="javascript:alert(4)")
    entry = Entry("hostile", report)
    tracks = load_tracks()
    index, details = render_index([entry], tracks), render_details(entry, tracks[TRACK])
    for page in (index, details):
        assert HOSTILE not in page and "<img" not in page and "javascript:" not in page and 'x" onmouseover' not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert index.count("<script") == 1 and details.count("<script") == 0
    path = tmp_path / "hostile.html"
    path.write_text(index)
    dom = chromium_dom(path, tmp_path)
    assert dom.count("<script") == 1 and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # shown as text


def test_code_identity_of_the_packed_agent(packed):
    internal = code_identity("ppo", "vector", "llmrl_bench.agents.ppo.PPO", "abc123")
    assert internal["external"] is False and internal["module"] is None
    assert internal["package_sha256"] == package_source_sha256()[0] and internal["package_files"] > 10
    assert json.loads((packed / "submission.json").read_text())["code"]["package_sha256"] == internal["package_sha256"]


def test_compare_runs_tolerance(packed):
    result = load_result(next((packed / "runs").glob("*/result.json")))
    nudged = copy.deepcopy(result)
    nudged.metrics["learning_speed"] *= 1 + 1e-9
    assert compare_runs(result, result, {"rtol": 0.0, "atol": 0.0}) == []
    assert compare_runs(result, nudged, {"rtol": 0.0, "atol": 0.0})[0].startswith("metrics.learning_speed is ")
    assert compare_runs(result, nudged, {"rtol": 1e-6, "atol": 1e-9}) == []


# -------------------------------------------------------------------------- archives


def test_packed_archive_validates_without_extraction_and_unpacks(smoke_results, tmp_path, capsys):
    archive, _ = pack(smoke_results, TRACK, tmp_path / "out" / "ppo-smoke.tar.gz", METADATA)
    again, _ = pack(smoke_results, TRACK, tmp_path / "again" / "ppo-smoke.tar.gz", METADATA)
    assert archive.read_bytes() == again.read_bytes()  # reproducible archives
    before = tree(tmp_path)
    code, output = cli(capsys, "validate", archive)
    assert code == 0 and "valid: ppo-smoke" in output
    assert tree(tmp_path) == before
    code, output = cli(capsys, "unpack", archive, "--into", tmp_path / "submissions")
    assert code == 0 and validate(tmp_path / "submissions" / "ppo-smoke").ok
    code, output = cli(capsys, "unpack", archive, "--into", tmp_path / "submissions")
    assert code == 1 and "exists" in output


# ------------------------------------------------------------------------ tracks, pack


def test_tracks_follow_the_protocol_and_their_sweeps_compose(make_config):
    tracks = load_tracks()
    assert {"classic", "llm", TRACK} <= set(tracks)
    for name, track in tracks.items():
        assert track.num_seeds >= MIN_SEEDS
        specs = track.env_specs()  # each env's pinned gym id is what conf/env/ makes
        assert [spec.gym_id for spec in specs.values()] == list(track.envs.values())
        overrides = track.sweep_overrides("ppo")  # the budget must win over conf/hparams/ppo_<env>.yaml
        for option, spec in zip(track.envs, specs.values()):
            job = [f"env={option}", "seed=0", *(o for o in overrides if not o.startswith(("env=", "seed=")))]
            cfg = make_config(*job)
            assert OmegaConf.to_container(cfg.budget) == track.budget, (name, option)
            assert OmegaConf.to_container(cfg.env, resolve=True) == spec.config


def test_a_track_with_too_few_seeds_is_refused(tmp_path):
    path = tmp_path / "tracks.yaml"
    path.write_text("tiny:\n  num_seeds: 3\n  budget: {env_steps: 1, num_evals: 1, eval_episodes: 1, held_out_episodes: 1}\n  envs: {cartpole: CartPole-v1}\n")
    with pytest.raises(TrackError, match="num_seeds=3 must be an integer >= 10"):
        load_tracks(path)


def test_pack_leaves_out_runs_of_another_protocol(smoke_results, tmp_path, capsys):
    with pytest.raises(PackError) as error:
        pack(smoke_results, "classic", tmp_path / "x", METADATA)
    assert "no completed runs of track classic match" in error.value.lines[0]
    assert "left out 10 run(s): another budget" in error.value.lines
    code, output = cli(capsys, "pack", smoke_results, "--track", TRACK, "--out", tmp_path / "y", "--name", "!!!", "--authors", "A")
    assert code == 1 and "is not a slug" in output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
