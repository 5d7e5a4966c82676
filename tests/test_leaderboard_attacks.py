"""Red team: every attack on the leaderboard, as a submitter with bad intent would try it.

Each test builds the tampered submission from a copy of the packed smoke submission (the
manifest re-hashed, run ids recomputed and folders renamed as a careful forger would, so no
checksum is what catches it) and asserts the precise rejection. Attacks from issue 13's
table first, then the ones caught before it. The runs come from ``test_leaderboard``'s
session-wide sweep.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from llmrl_bench import checkpoint, results
from llmrl_bench.leaderboard import sandbox
from llmrl_bench.leaderboard.aggregate import RANKING_METRIC, UNDEFINED, recompute_run_metrics
from llmrl_bench.leaderboard.build import Entry, build, ranked, render_index, trust
from llmrl_bench.leaderboard.bundle import MAX_ARRAY_BYTES, MAX_FILE_BYTES, MAX_FILES, SubmissionError, unpack, verification_path
from llmrl_bench.leaderboard.tracks import env_spec, load_tracks
from llmrl_bench.leaderboard.validate import load_policy_state, validate
from llmrl_bench.leaderboard.verify import RECORD_VERSION
from tests.test_leaderboard import HOSTILE, TRACK, cli, edit_json, packed_submission, rehash, run_of_seed, tree

PACKAGE_DIR = Path(results.__file__).parent


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    return packed_submission(tmp_path_factory.getbasetemp())


@pytest.fixture
def sandbox_copy(packed, tmp_path) -> Path:
    """A copy of the packed submission at ``tmp_path/sandbox/ppo-smoke``."""
    submission = tmp_path / "sandbox" / "ppo-smoke"
    shutil.copytree(packed, submission)
    return submission


# ----------------------------------------------------------------------------- forging


def reid(run: Path) -> Path:
    """Make a run folder consistent after its config changed: new run_id, config.yaml, folder name."""
    record = json.loads((run / "result.json").read_text())
    record["run_id"] = results.run_id(record["config"])
    (run / "result.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(record["config"])))
    return run.rename(run.parent / record["run_id"])


def set_seed(run: Path, seed: int) -> Path:
    edit_json(run / "result.json", lambda r: (r.update(seed=seed), r["config"].update(seed=seed)))
    return reid(run)


def forge_curve(run: Path, change) -> None:
    """Change a run's curve and recompute its metrics, as a consistent forger would."""
    spec = env_spec("cartpole")

    def forge(record):
        change(record["curve"])
        record["metrics"] = recompute_run_metrics(record["curve"], spec)

    edit_json(run / "result.json", forge)


def recompute_summary(sub: Path) -> None:
    """Rewrite summary.json from the (forged) runs, then the manifest."""
    rehash(sub)
    summary = validate(sub).summary
    (sub / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    rehash(sub)


def claimed(sub: Path) -> dict[int, float]:
    """Seed -> claimed ranking score of each run."""
    records = [json.loads(p.read_text()) for p in (sub / "runs").glob("*/result.json")]
    return {r["seed"]: r["metrics"][RANKING_METRIC] for r in records}


def fail_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAIL ")]


def invalid(capsys, sub: Path, *options: str) -> list[str]:
    """Validate through the CLI; assert exit 1 and that nothing was written; the FAIL lines."""
    before = tree(sub.parent)
    code, output = cli(capsys, "validate", sub, *options)
    assert code == 1 and "invalid:" in output, output
    assert tree(sub.parent) == before
    return fail_lines(output)


class Payload:
    """A pickle that, when unpickled with code allowed, creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def malicious_file(path: Path, marker: Path) -> Path:
    torch.save({"actor": Payload(marker)}, path)
    with pytest.raises(Exception):  # sanity: the payload is live when code is allowed
        torch.load(path, weights_only=True)
    return path


# ------------------------------------------------------------- the attacks of issue 13


def test_a_nested_target_chain_is_refused_and_nothing_runs(sandbox_copy, capsys, monkeypatch):
    """``Path.write_text`` writes a pickle, ``checkpoint.load_checkpoint`` would load it."""
    marker = sandbox_copy.parent / "pwned.pt"
    chain = {"_target_": "llmrl_bench.runner.Path.write_text",
             "_args_": [{"_target_": "llmrl_bench.runner.Path", "_args_": [str(marker)]}, "payload"]}

    def attack(record):
        record["config"]["agent"]["net_arch"] = chain
        record["config"]["repr"] = {"_target_": "llmrl_bench.checkpoint.load_checkpoint", "path": str(marker), "run_id": "x"}

    run = run_of_seed(sandbox_copy, 0)
    edit_json(run / "result.json", attack)
    run = reid(run)
    rehash(sandbox_copy)
    called = []
    monkeypatch.setattr("hydra.utils.instantiate", lambda *a, **k: called.append(("instantiate", a)))
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda *a, **k: called.append(("load_checkpoint", a)))
    monkeypatch.setattr(sandbox, "run_jobs", lambda *a, **k: called.append(("sandbox", a)))
    label = f"runs/{run.name} (cartpole seed 0)"
    failures = invalid(capsys, sandbox_copy)
    refused = "is refused: only agent, env, repr, reward name a _target_, at the top of their section"
    assert f"FAIL {label}: config.agent.net_arch._target_ {refused}" in failures
    assert f"FAIL {label}: config.agent.net_arch._args_ {refused}" in failures
    assert f"FAIL {label}: config.agent.net_arch._args_[0]._target_ {refused}" in failures
    assert any(line.startswith(f"FAIL {label}: config.repr._target_ is 'llmrl_bench.checkpoint.load_checkpoint', not a registered repr; allowed: ") for line in failures)
    before = tree(sandbox_copy.parent)
    code, output = cli(capsys, "verify", sandbox_copy)
    assert code == 1 and "FAIL the submission is invalid (run validate):" in output
    assert tree(sandbox_copy.parent) == before and not marker.exists() and not verification_path(sandbox_copy).exists()
    assert called == []  # nothing was instantiated, loaded or re-run


@pytest.mark.parametrize("target", ["llmrl_bench.agents.ppo.PPO.save", "llmrl_bench.agents.ppo", "llmrl_bench.agents.ppo.PPOConfig", "os.system", "tests.conftest.MyAgent"])
def test_a_target_must_equal_a_registered_component(target, sandbox_copy, capsys):
    run = run_of_seed(sandbox_copy, 1)
    edit_json(run / "result.json", lambda r: r["config"]["agent"].update(_target_=target))
    run = reid(run)
    rehash(sandbox_copy)
    failures = invalid(capsys, sandbox_copy)
    assert any(f"(cartpole seed 1): config.agent._target_ is {target!r}, not a registered agent; allowed: " in line
               and "llmrl_bench.agents.ppo.PPO," in line for line in failures), failures


def _nan_in_curve(sub: Path) -> str:
    path = run_of_seed(sub, 2) / "result.json"
    record = json.loads(path.read_text())
    record["curve"][1]["train_return"] = float("nan")
    path.write_text(json.dumps(record))  # Python's json writes NaN, which JSON does not have
    return f"runs/{path.parent.name}/result.json: holds NaN; every number must be finite"


def _infinity_in_metrics(sub: Path) -> str:
    path = run_of_seed(sub, 2) / "result.json"
    record = json.loads(path.read_text())
    record["metrics"]["cumulative_reward_normalized"] = float("inf")
    path.write_text(json.dumps(record))
    return f"runs/{path.parent.name}/result.json: holds Infinity; every number must be finite"


def _nan_in_episodes(sub: Path) -> str:
    run = run_of_seed(sub, 2)
    with np.load(run / "episodes.npz") as npz:
        columns = {name: npz[name].astype(np.float64) for name in npz.files}
    columns["return"][0] = -np.inf
    np.savez_compressed(run / "episodes.npz", **columns)
    return f"runs/{run.name} (cartpole seed 2): episodes.npz holds non-numeric or non-finite values"


@pytest.mark.parametrize("attack", [_nan_in_curve, _infinity_in_metrics, _nan_in_episodes], ids=lambda f: f.__name__)
def test_non_finite_numbers_are_rejected(attack, sandbox_copy, capsys):
    message = attack(sandbox_copy)
    rehash(sandbox_copy)
    assert f"FAIL {message}" in invalid(capsys, sandbox_copy)


def test_results_loading_rejects_non_finite_numbers(packed, tmp_path):
    run = tmp_path / "runs" / "0123456789abcdef"
    run.mkdir(parents=True)
    (run / "result.json").write_text((run_of_seed(packed, 0) / "result.json").read_text().replace('"train_return": ', '"train_return": -Infinity, "x": ', 1))
    with pytest.raises(results.ResultError, match="holds -Infinity; every number must be finite"):
        results.load_result(run / "result.json")
    np.savez(run / "episodes.npz", step=np.array([1, 2]), **{"return": np.array([1.0, np.nan])}, length=np.array([1, 1]))
    with pytest.raises(results.ResultError, match="holds NaN or infinite values"):
        results.load_episodes(tmp_path, run.name)


def test_build_on_a_board_seeded_with_a_nan_submission_still_ranks_correctly(packed, tmp_path):
    root = tmp_path / "board"
    good, lower, nan = (root / "submissions" / name for name in ("good", "lower", "nan"))
    for sub, name in ((good, "good"), (lower, "lower"), (nan, "nan")):
        shutil.copytree(packed, sub)
        edit_json(sub / "submission.json", lambda r, name=name: (r.update(id=name), r["metadata"].update(name=name)))
    for run in (lower / "runs").iterdir():  # a valid entry with a lower score
        forge_curve(run, lambda curve: curve[-1].update(train_return=curve[-1]["train_return"] / 2))
    recompute_summary(lower)
    _nan_in_curve(nan)
    edit_json(run_of_seed(nan, 3) / "result.json", lambda r: r["metrics"].update(cumulative_reward_normalized=1e9))  # would rank 1st
    rehash(good)
    rehash(nan)
    result = build(root, allow_unverified=True)
    assert [entry.id for entry in ranked(result.entries, TRACK)] == ["good", "lower"]
    assert any(line.startswith("skip nan: invalid") and "holds NaN; every number must be finite" in line for line in result.skipped)
    markdown = (root / "site" / "leaderboard.md").read_text()
    assert markdown.index("[good]") < markdown.index("[lower]") and "[nan]" not in markdown

    undefined = Entry("undefined", validate(good))
    undefined.report.submission.update(id="undefined")
    undefined.report.summary["overall"][RANKING_METRIC] = dict(UNDEFINED)  # e.g. a metric no run defines
    order = ranked([undefined, *result.entries], TRACK)
    assert [entry.id for entry in order] == ["good", "lower", "undefined"]  # undefined ranks last, not as a number
    page = render_index(order, load_tracks())
    row = page.split('data-id="undefined"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num na" data-sort="">n/a</td>' in row


def test_a_forged_curve_in_one_seed_is_caught_by_default_verify(sandbox_copy, capsys):
    """The forged run is the one least likely to be re-trained: every run's policy and step 0 are checked."""
    scores = claimed(sandbox_copy)
    seed = min(scores, key=scores.get)
    run = run_of_seed(sandbox_copy, seed)
    forge_curve(run, lambda curve: [point.update(train_return=point["train_return"] + 50.0) for point in curve])
    recompute_summary(sandbox_copy)
    assert validate(sandbox_copy).ok  # consistent, so only re-running can tell
    code, output = cli(capsys, "verify", sandbox_copy)
    assert code == 1 and "NOT verified" in output
    label = f"FAIL runs/{run.name} (cartpole seed {seed}): "
    assert re.search(rf"^{re.escape(label)}curve\[2\]\.train_return is [\d.]+; the re-run gives [\d.]+ \(the submitted final policy's evaluation\)$", output, re.M), output
    assert re.search(rf"^{re.escape(label)}curve\[0\]\.train_return is [\d.]+; the re-run gives [\d.]+ \(the untrained agent's step-0 evaluation\)$", output, re.M), output
    record = json.loads(verification_path(sandbox_copy).read_text())
    assert record["verified"] is False and len(record["re_evaluated"]) == 10 and len(record["retrained"]) == 3
    assert not validate(sandbox_copy).verified


def test_swapped_seeds_are_caught_by_verify(sandbox_copy, capsys):
    starts = {seed: json.loads((run_of_seed(sandbox_copy, seed) / "result.json").read_text())["curve"][0]["train_return"] for seed in range(10)}
    a, b = next((a, b) for a in range(10) for b in range(a + 1, 10) if starts[a] != starts[b])
    run_a = run_of_seed(sandbox_copy, a).rename(sandbox_copy / "runs" / "moving")  # its new run_id is b's old one
    run_b = set_seed(run_of_seed(sandbox_copy, b), a)
    run_a = set_seed(run_a, b)
    recompute_summary(sandbox_copy)
    assert validate(sandbox_copy).ok
    code, output = cli(capsys, "verify", sandbox_copy)
    assert code == 1
    for run, seed in ((run_a, b), (run_b, a)):
        assert f"FAIL runs/{run.name} (cartpole seed {seed}): curve[0].train_return is " in output
        assert re.search(rf"runs/{run.name} \(cartpole seed {seed}\): curve\[0\]\.train_return .* \(the untrained agent's step-0 evaluation\)", output), output


@pytest.mark.parametrize("what", ["episodes", "curve"])
def test_the_best_run_duplicated_under_another_seed_is_rejected(what, sandbox_copy, capsys):
    scores = claimed(sandbox_copy)
    best, other = max(scores, key=scores.get), min(scores, key=scores.get)
    source, target = run_of_seed(sandbox_copy, best), run_of_seed(sandbox_copy, other)
    names = ["result.json"] + (["episodes.npz"] if what == "episodes" else [])
    for name in names:
        shutil.copyfile(source / name, target / name)
    if what == "episodes":
        forge_curve(target, lambda curve: curve[1].update(train_return=curve[1]["train_return"] + 1.0))  # only the episodes repeat
    target = set_seed(target, other)
    recompute_summary(sandbox_copy)
    failures = invalid(capsys, sandbox_copy)
    kind = "per-episode data" if what == "episodes" else "curve"
    first, second = sorted([(best, source.name), (other, target.name)])
    assert f"FAIL runs/{second[1]} (cartpole seed {second[0]}): identical {kind} to runs/{first[1]} (cartpole seed {first[0]}): one run submitted under two seeds" in failures


def test_a_seed_that_is_not_its_configs_is_rejected(sandbox_copy, capsys):
    run = run_of_seed(sandbox_copy, 5)
    edit_json(run / "result.json", lambda r: r.update(seed=7))
    rehash(sandbox_copy)
    assert f"FAIL runs/{run.name} (cartpole seed 7): seed 7 differs from config.seed 5" in invalid(capsys, sandbox_copy)


def test_fake_commit_dirty_tree_and_another_platform_are_warned_in_words(packed, tmp_path):
    sub = tmp_path / "ppo-smoke"
    shutil.copytree(packed, sub)
    fake = "0" * 40
    edit_json(sub / "submission.json", lambda r: r["code"].update(git_commit=fake, package_sha256="f" * 64))
    for run in (sub / "runs").iterdir():
        edit_json(run / "result.json", lambda r: r["provenance"].update(git_commit=fake))
    rehash(sub)
    report = validate(sub)
    assert report.ok  # a claim only a page can qualify
    report.verification = {"verified": True, "re_evaluated": [r.run_id for r in report.runs], "retrained": ["0" * 16] * 3,
                           "tolerance": {"mode": "cross-platform", "rtol": 1e-6, "atol": 1e-9}, "mismatches": [],
                           "verifier": {"platform": "Another-OS-1.0", "same_code": False}}
    entry = Entry("ppo-smoke", report)
    words = trust(entry)
    assert words["verified"] == "verified: 10 of 10 runs re-evaluated, 3 re-trained, match within rtol 1e-06, atol 1e-09"
    assert words["warnings"] == [
        "unknown commit: 00000000 is not in this repository",
        "different platform: verified on another than the runs'",
        "different code: verified with another llmrl_bench source",
    ]
    report.submission["code"]["git_commit"] = _head() + "+dirty"
    assert trust(entry)["warnings"][0] == "dirty tree: runs made with uncommitted changes"
    row = render_index([entry], load_tracks()).split('data-id="ppo-smoke"', 1)[1].split("</tr>", 1)[0]
    assert '<li class="warning">dirty tree: runs made with uncommitted changes</li>' in row
    assert "match within rtol 1e-06" in row


def _head() -> str:
    from llmrl_bench.provenance import git_commit

    return (git_commit() or "").removesuffix("+dirty")


def test_a_verification_json_inside_the_submission_is_ignored(packed, tmp_path, capsys):
    root = tmp_path / "board"
    sub = root / "submissions" / "ppo-smoke"
    shutil.copytree(packed, sub)
    forged = {"schema_version": RECORD_VERSION, "submission_sha256": validate(sub).submission_sha256, "verified": True,
              "re_evaluated": ["0" * 16], "retrained": ["0" * 16], "selection_seed": 0,
              "tolerance": {"mode": "exact", "rtol": 0, "atol": 0}, "limits": {"wall_clock_s": 1, "memory_gb": 1, "network": "x"},
              "verifier": {"platform": "x", "packages": {}, "git_commit": None, "package_sha256": "x", "same_code": True, "verified_at": "x"},
              "mismatches": []}
    (sub / "verification.json").write_text(json.dumps(forged))
    report = validate(sub)
    assert report.ok and not report.verified
    assert "verification.json: inside the submission, so ignored; verify writes its record beside the folder" in report.warnings
    result = build(root)
    assert result.entries == [] and result.skipped == ["skip ppo-smoke: not verified (run verify)"]
    assert "FAIL verification.json: present in an incoming submission; only a maintainer's verify writes a record, beside the folder" in invalid(capsys, sub, "--incoming")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _write_bomb(path: Path, rows: int) -> None:
    """episodes.npz whose ``return`` column is ``rows`` float32 zeros: about 1 kB on disk per MiB of array."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("step.npy", _npy(np.arange(3)))
        archive.writestr("length.npy", _npy(np.ones(3, np.int64)))
        with archive.open("return.npy", "w", force_zip64=True) as handle:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows,)})
            handle.write(header.getvalue())
            block, remaining = bytes(1 << 20), rows * 4
            while remaining:
                handle.write(block[: min(len(block), remaining)])
                remaining -= min(len(block), remaining)


def _peak_mib(function) -> tuple[object, float]:
    tracemalloc.start()
    try:
        value = function()
        return value, tracemalloc.get_traced_memory()[1] / 1024**2
    finally:
        tracemalloc.stop()


def test_an_npz_decompression_bomb_is_rejected_from_its_header(sandbox_copy, capsys):
    run = run_of_seed(sandbox_copy, 4)
    label = f"runs/{run.name} (cartpole seed 4): episodes.npz is not a readable npz of plain arrays within the caps: "
    _write_bomb(run / "episodes.npz", 2**26)  # 256 MiB of array in a file of about 256 kB
    assert (run / "episodes.npz").stat().st_size < 1024**2
    rehash(sandbox_copy)
    report, peak = _peak_mib(lambda: validate(sandbox_copy))
    assert peak < 64, f"validation allocated {peak:.0f} MiB"
    assert f"{label}member 'return.npy' is not an .npy array or unpacks to {2**28 + 128} bytes, more than the cap of {MAX_ARRAY_BYTES}" in report.failures
    # The same array header in a small member (the zip's sizes may lie): the header alone decides.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**28,)})
    with zipfile.ZipFile(run / "episodes.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("step.npy", _npy(np.arange(3)))
        archive.writestr("length.npy", _npy(np.ones(3, np.int64)))
        archive.writestr("return.npy", header.getvalue() + bytes(64))
    rehash(sandbox_copy)
    report, peak = _peak_mib(lambda: validate(sandbox_copy))
    assert peak < 64, f"validation allocated {peak:.0f} MiB"
    assert f"{label}array 'return.npy' of shape (268435456,) and dtype float32 would take {2**30} bytes, more than the cap of {MAX_ARRAY_BYTES}" in report.failures


def test_more_episodes_than_env_steps_are_rejected_from_the_header(sandbox_copy):
    run = run_of_seed(sandbox_copy, 4)
    rows = 100_000  # 800 kB: under the array cap, but a run of N steps has at most N episodes
    np.savez_compressed(run / "episodes.npz", step=np.zeros(rows, np.int64), length=np.ones(rows, np.int64), **{"return": np.zeros(rows)})
    rehash(sandbox_copy)
    steps = json.loads((run / "result.json").read_text())["provenance"]["env_steps"]
    assert f"runs/{run.name} (cartpole seed 4): episodes.npz holds 100000 episodes, more than the run's {steps} env steps allow" in validate(sandbox_copy).failures


def test_an_oversized_file_is_rejected_before_it_is_read(sandbox_copy):
    run = run_of_seed(sandbox_copy, 6)
    with open(run / "episodes.npz", "wb") as handle:
        handle.truncate(400 * 1024**2)  # sparse: 400 MiB that take no disk
    report, peak = _peak_mib(lambda: validate(sandbox_copy))
    assert peak < 16, f"validation allocated {peak:.0f} MiB"
    assert report.failures == [f"runs/{run.name}/episodes.npz: {400 * 1024**2} bytes, more than the cap of {MAX_FILE_BYTES} per file"]


def test_too_many_files_are_rejected_before_any_is_read(sandbox_copy):
    extra = sandbox_copy / "runs" / "0000000000000000"
    extra.mkdir()
    for i in range(MAX_FILES):
        (extra / f"f{i}").write_bytes(b"")
    report = validate(sandbox_copy)
    assert report.failures == [f"ppo-smoke: {MAX_FILES + 1} files, more than the cap of {MAX_FILES}"]


# --------------------------------------------------------------- pickles, never loaded


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line:
                calls.append((f"{path.relative_to(PACKAGE_DIR)}:{number}", line))
    assert len(calls) >= 6  # checkpoint, the agents, the leaderboard
    assert [where for where, line in calls if "weights_only=True" not in line] == []


def test_a_malicious_pickle_is_refused_by_every_load_path(sandbox_copy, tmp_path, make_config, caplog):
    from hydra.utils import instantiate

    from llmrl_bench.runner import RunEnvs, build_agent

    marker = tmp_path / "pwned"
    evil = malicious_file(tmp_path / "evil.pt", marker)
    # 1. a checkpoint in a results dir: ignored with a warning, the run restarts
    assert checkpoint.load_checkpoint(evil, "x") is None
    assert "ignoring unreadable checkpoint" in caplog.text and "UnpicklingError" in caplog.text
    # 2. each agent's policy load
    for agent in ("ppo", "dqn", "reinforce"):
        cfg = make_config(f"agent={agent}", "env=cartpole", "debug=smoke")
        envs = RunEnvs(instantiate(cfg.env), instantiate(cfg.repr))
        policy = build_agent(cfg.agent, envs, 0)
        with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
            policy.load(evil)
    # 3. the leaderboard: a submitted policy.pt
    with pytest.raises(pickle.UnpicklingError):
        load_policy_state(evil.read_bytes())
    run = run_of_seed(sandbox_copy, 8)
    shutil.copyfile(evil, run / "policy.pt")
    rehash(sandbox_copy)
    assert any(line.startswith(f"runs/{run.name} (cartpole seed 8): policy.pt is not a weights-only torch file") for line in validate(sandbox_copy).failures)
    assert not marker.exists()


def test_a_checkpoint_naming_code_outside_the_allowlists_is_refused(tmp_path):
    def saved(entry) -> Path:
        path = tmp_path / "checkpoint.pt"
        torch.save({"format": checkpoint.FORMAT_VERSION, "state": {"__codec__": "dict", "id": 0, "items": [["run_id", "x"], ["agent", entry]]}}, path)
        return path

    for entry, message in [
        ({"__codec__": "object", "id": 1, "class": "os:_wrap_close", "attrs": {}}, "outside the allowed modules"),
        ({"__codec__": "function", "name": "builtins:exec"}, "outside the allowed modules"),
        ({"__codec__": "function", "name": "gymnasium.envs.registration:make"}, "outside the allowed modules"),
        ({"__codec__": "ndarray", "id": 1, "dtype": "|O", "shape": [1], "data": torch.zeros(8, dtype=torch.uint8)}, "dtype object"),
    ]:
        with pytest.raises(checkpoint.UnsafeCheckpoint, match=message):
            checkpoint.decode_state(torch.load(saved(entry), weights_only=True)["state"])
        assert checkpoint.load_checkpoint(saved(entry), "x") is None


def test_the_sandbox_enforces_its_wall_clock_and_memory_limits(packed, tmp_path):
    from llmrl_bench.leaderboard.protocol import rebuild_config

    report = validate(packed)
    run = report.runs[0]
    config = rebuild_config(run.result.config, env_spec("cartpole").config, report.track.budget, tmp_path / "results")
    job = {"id": "r/retrain", "kind": "retrain", "config": config, "run_id": run.run_id}
    with pytest.raises(sandbox.SandboxError, match="longer than the wall-clock limit of 0.5 s"):
        sandbox.run_jobs([job], tmp_path, timeout_s=0.5, memory_bytes=8 * 1024**3)
    with pytest.raises(sandbox.SandboxError, match=r"failed \(exit 1\)"):
        sandbox.run_jobs([job], tmp_path, timeout_s=120, memory_bytes=64 * 1024**2)  # too little to even import torch
    assert sandbox.network_isolation() in ("unshare -rn", "offline variables only")


# ---------------------------------------------------------------- attacks caught before


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


def _budget_changed(sub: Path) -> None:
    run = run_of_seed(sub, 7)
    edit_json(run / "result.json", lambda r: r["config"]["budget"].update(env_steps=1024))
    reid(run)


def _hyperparameter_changed(sub: Path) -> None:
    run = run_of_seed(sub, 8)
    edit_json(run / "result.json", lambda r: r["config"]["agent"].update(learning_rate=0.01))
    reid(run)


def _extra_run(sub: Path) -> None:
    copy = sub / "runs" / "copy"
    shutil.copytree(run_of_seed(sub, 9), copy)
    set_seed(copy, 10)


def _wrong_schema_version(sub: Path) -> None:
    edit_json(sub / "submission.json", lambda r: r.update(schema_version=2))


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
    "budget changed": (_budget_changed, "(cartpole seed 7): budget.env_steps is 1024 but track smoke requires 512", ""),
    "hyperparameter changed": (_hyperparameter_changed, "(cartpole seed 8): agent config differs from seed 0's: config.agent.learning_rate is 0.01", ""),
    "extra run": (_extra_run, "env cartpole: seed 10 is not one of the track's seeds 0-9", ""),
    "wrong schema version": (_wrong_schema_version, "submission.json: does not match submission-v1.json at schema_version: 1 was expected", ""),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_rejected_naming_the_problem(case, sandbox_copy, capsys):
    tamper, message, detail = TAMPERING[case]
    tamper(sandbox_copy)
    if case != "symlink outside":
        rehash(sandbox_copy)
    before = tree(sandbox_copy.parent)
    code, output = cli(capsys, "validate", sandbox_copy)
    assert code == 1, output
    failures = [line for line in output.splitlines() if line.startswith("FAIL ")]
    assert any(message in line and detail in line for line in failures), output
    assert "invalid:" in output
    assert tree(sandbox_copy.parent) == before  # validation writes nothing anywhere


def test_an_edit_without_rehashing_fails_the_checksum(sandbox_copy, capsys):
    _metric_changed(sandbox_copy)
    code, output = cli(capsys, "validate", sandbox_copy)
    assert code == 1
    assert re.search(r"^FAIL runs/[0-9a-f]{16}/result\.json: checksum mismatch: its SHA-256 is \w+… but the manifest says \w+…$", output, re.M), output


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


def _hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


ARCHIVES = {
    "member ../../x": ([_file("ppo-smoke/submission.json"), _file("../../x", b"owned")],
                       "archive member '../../x' has a '..' component that leaves the submission"),
    "absolute member": ([_file("ppo-smoke/submission.json"), _file("/tmp/llmrl-absolute-x", b"owned")],
                        "archive member '/tmp/llmrl-absolute-x' has an absolute path"),
    "symlink outside": ([_file("ppo-smoke/submission.json"), _symlink("ppo-smoke/runs/link", "../../../x")],
                        "archive member 'ppo-smoke/runs/link' is a symlink to '../../../x', outside the submission"),
    "hard link": ([_file("ppo-smoke/submission.json"), _hardlink("ppo-smoke/runs/link", "../../etc/passwd")],
                  "archive member 'ppo-smoke/runs/link' is a hard link to '../../etc/passwd', outside the submission"),
    "absolute symlink": ([_file("ppo-smoke/submission.json"), _symlink("ppo-smoke/passwd", "/etc/passwd")],
                         "archive member 'ppo-smoke/passwd' is a symlink to '/etc/passwd', outside the submission"),
}


@pytest.mark.parametrize("case", list(ARCHIVES))
def test_unsafe_archives_are_rejected_before_anything_is_written(case, tmp_path, capsys):
    members, message = ARCHIVES[case]
    folder = tmp_path / "sandbox"
    archive = _tar(folder / "a" / "b" / "evil.tar.gz", members)
    before = tree(tmp_path)
    for command in (("validate", archive), ("unpack", archive)):
        code, output = cli(capsys, *command)
        assert code == 1 and any(line.startswith(f"FAIL {message}") for line in output.splitlines()), output
    with pytest.raises(SubmissionError, match=re.escape(message)):
        unpack(archive, folder / "a" / "b")
    assert tree(tmp_path) == before
    assert not Path("/tmp/llmrl-absolute-x").exists()


def test_a_reward_section_is_checked_like_a_component_and_may_be_absent():
    from llmrl_bench.leaderboard.protocol import config_problems

    def config(**sections):
        base = {"agent": {"_target_": "llmrl_bench.agents.ppo.PPO"}, "env": {"_target_": "llmrl_bench.envs.cartpole.CartPoleSuite"},
                "repr": {"_target_": "llmrl_bench.representations.vector.VectorRepresentation"}, "seed": 0}
        return {**base, **sections}

    assert config_problems(config()) == []  # recorded before reward= existed: the env's own reward
    assert config_problems(config(reward={"_target_": "llmrl_bench.rewards.learned_irl.LearnedIRLReward"})) == []
    (problem,) = config_problems(config(reward={"_target_": "os.system", "name": "direct"}))
    assert problem.startswith("config.reward._target_ is 'os.system', not a registered reward; allowed: ")
