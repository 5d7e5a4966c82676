"""Leaderboard: pack -> validate -> verify -> build on real smoke runs; tampering; escaping; Chromium.

The runs are made once per module by the real CLI (PPO x CartPole x seeds 0-9, ``debug=smoke``,
which is the ``smoke`` track's protocol). Each tampering test edits a copy of the packed
submission, re-hashes its manifest as a careful forger would (so the checksum cannot be
what catches it), and checks that validation names the problem and writes nothing.
"""

from __future__ import annotations

import contextlib
import copy
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
from llmrl_bench.leaderboard.bundle import SubmissionError, unpack
from llmrl_bench.leaderboard.pack import Metadata, PackError, pack
from llmrl_bench.leaderboard.identity import code_identity, package_source_sha256
from llmrl_bench.leaderboard.tracks import MIN_SEEDS, TrackError, env_spec, load_tracks
from llmrl_bench.leaderboard.validate import validate
from llmrl_bench.leaderboard.verify import _target_problems, compare_runs, select_runs
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


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> Path:
    results_dir = tmp_path_factory.mktemp("leaderboard-runs") / "results"
    proc = run_cli("-m", "agent=ppo", "env=cartpole", "seed=0-9", "debug=smoke", f"results_dir={results_dir}", cwd=results_dir.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((results_dir / "runs").glob("*/result.json"))) == 10
    return results_dir


@pytest.fixture(scope="module")
def packed(smoke_results, tmp_path_factory) -> Path:
    out, _ = pack(smoke_results, TRACK, tmp_path_factory.mktemp("packed") / "ppo-smoke", METADATA)
    return out


@pytest.fixture
def sandbox(packed, tmp_path) -> Path:
    """A copy of the packed submission at ``tmp_path/sandbox/ppo-smoke``."""
    submission = tmp_path / "sandbox" / "ppo-smoke"
    shutil.copytree(packed, submission)
    return submission


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
    steps["verify"] = (main(["verify", str(submission), "--runs", "2"]), "")
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
    assert sorted(p.name for p in submission.iterdir()) == ["runs", "submission.json", "summary.json", "verification.json"]
    assert all(sorted(p.name for p in run.iterdir()) == ["config.yaml", "episodes.npz", "result.json"] for run in (submission / "runs").iterdir())
    manifest = json.loads((submission / "submission.json").read_text())
    assert manifest["metadata"] == {"name": METADATA.name, "authors": METADATA.authors, "url": METADATA.url,
                                    "date": METADATA.date, "description": METADATA.description}
    assert manifest["code"]["agent_target"] == "llmrl_bench.agents.ppo.PPO" and manifest["code"]["external"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["code"]["package_sha256"])
    assert manifest["environment"]["envs"]["cartpole"]["gym_id"] == "CartPole-v1"
    assert "gymnasium" in manifest["environment"]["packages"] and len(manifest["files"]) == 31

    code, output = steps["validate"]
    assert code == 0 and "valid: ppo-smoke (track smoke, 10 runs, ppo/vector, not verified)" in output, output

    assert steps["verify"][0] == 0
    assert [rel for rel, _ in steps["verify_wrote"]] == ["submissions/ppo-smoke/verification.json"]  # nothing else written
    record = json.loads((submission / "verification.json").read_text())
    assert record["verified"] and record["tolerance"]["mode"] == "exact" and not record["mismatches"]
    assert record["runs"] == select_runs([p.name for p in (submission / "runs").iterdir()], 2, 0) and record["selection_seed"] == 0
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
    assert f"{summary['iqm']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]" in row and "yes (2 re-run)" in row
    index = (site / "index.html").read_text()
    assert 'href="submissions/ppo-smoke.html"' in index and index.count("<script>") == 1
    details = (site / "submissions" / "ppo-smoke.html").read_text()
    assert "CartPole-v1" in details and manifest["code"]["package_sha256"] in details and details.count("<tr>") > 20
    assert sorted(e.id for e in steps["build_all"].entries) == ["another", "ppo-smoke"]


def test_a_stale_or_incoming_verification_is_not_trusted(published, tmp_path):
    _, submission, _, _ = published
    copy_ = tmp_path / "ppo-smoke"
    shutil.copytree(submission, copy_)
    assert validate(copy_).verified
    edit_json(copy_ / "submission.json", lambda r: r["metadata"].update(description="changed after verification"))
    report = validate(copy_)
    assert report.ok and not report.verified and any("stale" in line for line in report.warnings)
    report = validate(copy_, incoming=True)
    assert any("verification.json: present in an incoming submission" in line for line in report.failures)


def test_rendered_rows_in_headless_chromium(published, tmp_path):
    root, _, site, steps = published
    dom = chromium_dom(site / "index.html", tmp_path)
    assert 'id="table-smoke" data-sortable="ready"' in dom  # the inline script ran under the page's CSP
    assert row_ids(dom, "smoke") == ["ppo-smoke"]
    assert "PPO smoke" in dom and "yes (2 re-run)" in dom
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


# ------------------------------------------------------------------------- tampering


def _metric_changed(sub: Path) -> None:
    edit_json(run_of_seed(sub, 0) / "result.json", lambda r: r["metrics"].update(cumulative_reward=r["metrics"]["cumulative_reward"] + 1))


def _seed_dropped(sub: Path) -> None:
    shutil.rmtree(run_of_seed(sub, 3))


def _config_altered(sub: Path) -> None:
    edit_json(run_of_seed(sub, 1) / "result.json", lambda r: r["config"]["agent"].update(learning_rate=0.01))


def _config_yaml_altered(sub: Path) -> None:
    path = run_of_seed(sub, 2) / "config.yaml"
    config = OmegaConf.load(path)
    config.budget.eval_episodes = 50
    path.write_text(OmegaConf.to_yaml(config))


def _env_version_swapped(sub: Path) -> None:
    edit_json(run_of_seed(sub, 4) / "result.json", lambda r: r["env_info"].update(gym_id="CartPole-v0"))


def _package_version_swapped(sub: Path) -> None:
    edit_json(sub / "submission.json", lambda r: r["environment"]["packages"].update(gymnasium="0.29.1"))


def _summary_disagrees(sub: Path) -> None:
    edit_json(sub / "summary.json", lambda r: r["overall"]["cumulative_reward_normalized"].update(iqm=0.99))


def _html_in_name(sub: Path) -> None:
    edit_json(sub / "submission.json", lambda r: r["metadata"].update(name=HOSTILE))


def _javascript_url(sub: Path) -> None:
    edit_json(sub / "submission.json", lambda r: r["metadata"].update(url="javascript:alert(1)"))


def _missing_metric(sub: Path) -> None:
    edit_json(run_of_seed(sub, 5) / "result.json", lambda r: r["metrics"].pop("generalization_gap_normalized"))


def _extra_seed(sub: Path) -> None:
    run = run_of_seed(sub, 6)
    edit_json(run / "result.json", lambda r: (r.update(seed=12), r["config"].update(seed=12)))


def _unexpected_file(sub: Path) -> None:
    (sub / "runs" / "notes.html").write_text(HOSTILE)


def _symlink_outside(sub: Path) -> None:
    (sub.parent / "outside.txt").write_text("secret")
    os.symlink("../../../outside.txt", run_of_seed(sub, 0) / "extra.json")


TAMPERING = {
    "metric changed": (_metric_changed, "(cartpole seed 0): metrics.cumulative_reward is", "but its curve gives"),
    "seed dropped": (_seed_dropped, "env cartpole: seed 3 missing; track smoke needs seeds 0-9", ""),
    "config altered": (_config_altered, "(cartpole seed 1): run_id", "does not match the hash of its config"),
    "config.yaml altered": (_config_yaml_altered, "(cartpole seed 2): config.yaml.budget.eval_episodes is 50", "config.yaml and result.json disagree"),
    "env version swapped": (_env_version_swapped, "(cartpole seed 4): env_info.gym_id is 'CartPole-v0'", "but track smoke pins 'CartPole-v1'"),
    "package version swapped": (_package_version_swapped, "submission.json: environment.packages.gymnasium is '0.29.1', against '", "in the runs' provenance: the versions disagree"),
    "summary disagrees": (_summary_disagrees, "summary.json: overall.cumulative_reward_normalized.iqm is 0.99 but the runs give", "the summary disagrees with the runs"),
    "HTML in the name": (_html_in_name, "submission.json: metadata.name contains HTML markup ('<script>')", "plain text"),
    "javascript URL": (_javascript_url, "metadata.url must be empty or an http(s) URL, not 'javascript:alert(1)'", ""),
    "missing metric": (_missing_metric, "(cartpole seed 5): metrics.generalization_gap_normalized is missing", ""),
    "extra seed": (_extra_seed, "env cartpole: seed 12 is not one of the track's seeds 0-9", ""),
    "unexpected file": (_unexpected_file, "runs/notes.html: unexpected file", ""),
    "symlink outside": (_symlink_outside, "extra.json: is a symlink to '../../../outside.txt', outside the submission", ""),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_rejected_naming_the_problem(case, sandbox, capsys):
    tamper, message, detail = TAMPERING[case]
    tamper(sandbox)
    if case != "symlink outside":
        rehash(sandbox)
    before = tree(sandbox.parent)
    code, output = cli(capsys, "validate", sandbox)
    assert code == 1, output
    failures = [line for line in output.splitlines() if line.startswith("FAIL ")]
    assert any(message in line and detail in line for line in failures), output
    assert "invalid:" in output
    assert tree(sandbox.parent) == before  # validation writes nothing anywhere


def test_an_edit_without_rehashing_fails_the_checksum(sandbox, capsys):
    _metric_changed(sandbox)
    code, output = cli(capsys, "validate", sandbox)
    assert code == 1
    assert re.search(r"^FAIL runs/[0-9a-f]{16}/result\.json: checksum mismatch: its SHA-256 is \w+… but the manifest says \w+…$", output, re.M), output


def test_verify_rejects_runs_that_do_not_reproduce(sandbox, capsys, monkeypatch):
    """Forged curves with consistent metrics pass validation; re-running exposes them."""
    spec = env_spec("cartpole")
    for result in (sandbox / "runs").glob("*/result.json"):
        def forge(record):
            record["curve"][-1]["train_return"] += 100.0
            record["metrics"] = recompute_run_metrics(record["curve"], spec)
        edit_json(result, forge)
    (sandbox / "summary.json").unlink()
    rehash(sandbox)
    assert validate(sandbox).ok
    monkeypatch.chdir(sandbox.parent)  # any stray write to the working dir would show in the snapshot
    before = tree(sandbox.parent)
    code, output = cli(capsys, "verify", sandbox, "--runs", "1")
    assert code == 1
    assert re.search(r"^FAIL runs/[0-9a-f]{16} \(cartpole seed \d\): metrics\.cumulative_reward is [\d.]+; the re-run gives [\d.]+$", output, re.M), output
    assert "NOT verified" in output
    after = tree(sandbox.parent)
    assert sorted(set(after) - set(before)) == ["ppo-smoke/verification.json"] and {k: after[k] for k in before} == before
    record = json.loads((sandbox / "verification.json").read_text())
    assert record["verified"] is False and record["mismatches"]
    assert not validate(sandbox).verified


def test_verify_refuses_an_invalid_or_archived_submission(sandbox, tmp_path, capsys):
    _metric_changed(sandbox)
    rehash(sandbox)
    code, output = cli(capsys, "verify", sandbox, "--runs", "1")
    assert code == 1 and "FAIL the submission is invalid (run validate):" in output
    assert not (sandbox / "verification.json").exists()
    code, output = cli(capsys, "verify", tmp_path / "x.tar.gz")
    assert code == 1 and "verify needs the unpacked folder" in output


def test_verify_never_executes_an_external_target_unreviewed(packed):
    report = validate(packed)
    run = copy.deepcopy(report.runs[0])
    run.result.config["agent"]["_target_"] = "os.system"
    problems = _target_problems(run, report.submission["code"], allow_external=False)
    assert len(problems) == 1 and "config.agent._target_ is 'os.system', outside llmrl_bench; re-running executes it" in problems[0]
    problems = _target_problems(run, report.submission["code"], allow_external=True)
    assert "which the code identity does not cover" in problems[0]


def test_code_identity_of_an_external_agent_and_its_review(packed):
    external = code_identity("mine", "vector", "tests.conftest.MyAgent", "abc123")
    conftest_sha256 = hashlib.sha256((REPO / "tests" / "conftest.py").read_bytes()).hexdigest()
    assert external["external"] is True and external["module"] == {"name": "tests.conftest", "sha256": conftest_sha256}
    internal = code_identity("ppo", "vector", "llmrl_bench.agents.ppo.PPO", "abc123")
    assert internal["external"] is False and internal["module"] is None
    assert internal["package_sha256"] == package_source_sha256()[0] and internal["package_files"] > 10
    run = copy.deepcopy(validate(packed).runs[0])
    run.result.config["agent"]["_target_"] = "tests.conftest.MyAgent"
    assert _target_problems(run, external, allow_external=True) == []  # reviewed, installed, same file
    tampered = {**external, "module": {"name": "tests.conftest", "sha256": "0" * 64}}
    assert "the installed tests.conftest has SHA-256" in _target_problems(run, tampered, allow_external=True)[0]


def test_compare_runs_tolerance(packed):
    result = load_result(next((packed / "runs").glob("*/result.json")))
    nudged = copy.deepcopy(result)
    nudged.metrics["learning_speed"] *= 1 + 1e-9
    assert compare_runs(result, result, {"rtol": 0.0, "atol": 0.0}) == []
    assert compare_runs(result, nudged, {"rtol": 0.0, "atol": 0.0})[0].startswith("metrics.learning_speed is ")
    assert compare_runs(result, nudged, {"rtol": 1e-6, "atol": 1e-9}) == []


# -------------------------------------------------------------------------- archives


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"{}") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


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


ARCHIVES = {
    "member ../../x": ([_file("ppo-smoke/submission.json"), _file("../../x", b"owned")],
                       "archive member '../../x' has a '..' component that leaves the submission"),
    "absolute member": ([_file("ppo-smoke/submission.json"), _file("/tmp/llmrl-absolute-x", b"owned")],
                        "archive member '/tmp/llmrl-absolute-x' has an absolute path"),
    "symlink outside": ([_file("ppo-smoke/submission.json"), _symlink("ppo-smoke/runs/link", "../../../x")],
                        "archive member 'ppo-smoke/runs/link' is a symlink to '../../../x', outside the submission"),
    "absolute symlink": ([_file("ppo-smoke/submission.json"), _symlink("ppo-smoke/passwd", "/etc/passwd")],
                         "archive member 'ppo-smoke/passwd' is a symlink to '/etc/passwd', outside the submission"),
}


@pytest.mark.parametrize("case", list(ARCHIVES))
def test_unsafe_archives_are_rejected_before_anything_is_written(case, tmp_path, capsys):
    members, message = ARCHIVES[case]
    sandbox = tmp_path / "sandbox"
    archive = _tar(sandbox / "a" / "b" / "evil.tar.gz", members)
    before = tree(tmp_path)
    for command in (("validate", archive), ("unpack", archive)):
        code, output = cli(capsys, *command)
        assert code == 1 and any(line.startswith(f"FAIL {message}") for line in output.splitlines()), output
    with pytest.raises(SubmissionError, match=re.escape(message)):
        unpack(archive, sandbox / "a" / "b")
    assert tree(tmp_path) == before
    assert not Path("/tmp/llmrl-absolute-x").exists()


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
