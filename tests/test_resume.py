"""Pre-emption through the real command line: SIGTERM a run and resume it; SIGKILL a sweep and finish it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llmrl_bench import checkpoint, results
from llmrl_bench.runner import run
from tests.conftest import REPO, run_cli

# Small budgets that still train past several checkpoints (DQN learns from step 500; llm_pg's rollouts are 128 steps).
RESUMABLE = {
    "dqn": ["env=cartpole", "budget.env_steps=3000", "agent.learning_starts=500", "agent.gradient_steps=16", "agent.net_arch=[64,64]"],
    "ppo": ["env=cartpole", "budget.env_steps=4096", "agent.n_epochs=4"],
    "llm_pg": ["env=maze", "llm.model=tiny-random", "budget.env_steps=1024", "agent.n_envs=8", "agent.n_steps=16",
               "agent.batch_size=64", "agent.n_epochs=2", "budget.eval_episodes=4"],
}
COMMON = ["debug=smoke", "budget.num_evals=4", "checkpoint.every_steps=300"]
ENV = {**os.environ, "LLMRL_BENCH_JOBS": "2", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """``python -m llmrl_bench ARGS`` in its own process group (so a kill reaches every worker)."""
    return subprocess.Popen(
        [sys.executable, "-m", "llmrl_bench", *args], cwd=cwd, env=ENV, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc={proc.returncode}) before the test could interrupt it:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("timed out waiting for the run")
        time.sleep(0.02)


def only_result(results_dir: Path) -> results.RunResult:
    loaded, errors = results.load_results(results_dir)
    assert errors == [] and len(loaded) == 1
    return loaded[0]


def start_after_reference(args: list[str], tmp_path: Path, make_config, name: str):
    """An uninterrupted reference run; then the same run through the CLI, running once its first checkpoint exists."""
    run(make_config(*args, f"results_dir={tmp_path / 'reference'}"))
    reference = only_result(tmp_path / "reference")
    out = tmp_path / name
    checkpoint_path = results.run_dir(out, reference.run_id) / checkpoint.CHECKPOINT_FILE
    proc = start_cli(*args, f"results_dir={out}", cwd=tmp_path)
    wait_for(checkpoint_path.exists, proc)
    return reference, out, checkpoint_path, proc


def rerun_resumes(args: list[str], out: Path, tmp_path: Path) -> int:
    """The same command again: it succeeds and says from which step it resumed."""
    again = run_cli(*args, f"results_dir={out}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = re.search(r"resume .* from step (\d+)", again.stdout + again.stderr)
    assert resumed, again.stderr[-3000:]
    return int(resumed.group(1))


@pytest.mark.parametrize("agent", sorted(RESUMABLE))
def test_sigterm_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path, make_config, agent):
    args = [f"agent={agent}", *COMMON, *RESUMABLE[agent]]
    reference, out, checkpoint_path, proc = start_after_reference(args, tmp_path, make_config, "interrupted")
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    stopped = re.search(r"checkpoint .* at step (\d+) \(SIGTERM\): stopping", output)
    assert stopped, output[-3000:]
    assert checkpoint_path.exists() and results.completed_result(out, reference.run_id) is None

    assert rerun_resumes(args, out, tmp_path) == int(stopped.group(1)) and 0 < int(stopped.group(1)) < reference.provenance["env_steps"]
    result = only_result(out)
    assert result.metrics == reference.metrics
    assert result.curve == reference.curve
    for key, values in results.load_episodes(out, result.run_id).items():
        np.testing.assert_array_equal(values, results.load_episodes(tmp_path / "reference", result.run_id)[key], err_msg=key)
    assert not checkpoint_path.exists()


def test_sigkill_then_rerun_resumes_llm_pg_and_matches_an_uninterrupted_run(tmp_path, make_config):
    """kill -9 after a checkpoint: the same command resumes from it and ends as an uninterrupted run."""
    args = ["agent=llm_pg", *COMMON, *RESUMABLE["llm_pg"]]
    reference, out, checkpoint_path, proc = start_after_reference(args, tmp_path, make_config, "killed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and results.completed_result(out, reference.run_id) is None
    assert 0 < rerun_resumes(args, out, tmp_path) < reference.provenance["env_steps"]
    result = only_result(out)
    assert (result.metrics, result.curve) == (reference.metrics, reference.curve)
    assert result.provenance["llm_env_steps"] == reference.provenance["llm_env_steps"]  # counters carried over


SWEEP = ["-m", "agent=ppo", "env=cartpole", "seed=0-9", "debug=smoke", "checkpoint.every_steps=128"]


def test_sigkill_halfway_through_a_sweep_then_rerun_finishes_only_the_missing_runs(tmp_path, make_config):
    out = tmp_path / "results"
    proc = start_cli(*SWEEP, f"results_dir={out}", cwd=tmp_path)
    wait_for(lambda: len(list(results.iter_result_paths(out))) >= 4, proc, timeout=240)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its joblib workers, mid-sweep
    proc.communicate(timeout=60)
    finished = {path.parent.name for path in results.iter_result_paths(out)}
    assert 4 <= len(finished) < 10

    again = run_cli(*SWEEP, f"results_dir={out}", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert len(re.findall(r"\[INFO\] - run ", log)) == 10 - len(finished)
    assert len(re.findall(r"\[INFO\] - skip ", log)) == len(finished)

    # Every result equals an uninterrupted run's, killed or not.
    loaded, errors = results.load_results(out)
    assert errors == [] and sorted(r.seed for r in loaded) == list(range(10))
    for result in loaded:
        reference_dir = tmp_path / "reference" / str(result.seed)
        run(make_config(*[a for a in SWEEP[1:] if not a.startswith("seed=")], f"seed={result.seed}", f"results_dir={reference_dir}"))
        reference = only_result(reference_dir)
        assert (result.run_id, result.metrics, result.curve) == (reference.run_id, reference.metrics, reference.curve), result.seed
    assert not list(out.glob(f"runs/*/{checkpoint.CHECKPOINT_FILE}"))


def test_agents_without_checkpoint_support_never_checkpoint(tmp_path, make_config):
    cfg = make_config("agent=q_learning", "env=maze", "debug=smoke", "checkpoint.every_steps=1", f"results_dir={tmp_path}")
    run(cfg)
    assert not list(tmp_path.glob(f"runs/*/{checkpoint.CHECKPOINT_FILE}"))
    assert only_result(tmp_path).status == "completed"


class _StopAt:
    """Training hooks that stop ``learn`` at its ``count``-th checkpoint point."""

    def __init__(self, count: int):
        self.count = count

    def on_step(self, global_step: int) -> None: ...
    def on_episode(self, *args) -> None: ...
    def log(self, *args) -> None: ...

    def checkpoint_point(self, global_step: int) -> None:
        self.count -= 1
        if self.count == 0:
            raise KeyboardInterrupt


#: The part of each agent's ``state_dict`` that training changes.
TRAINED = {"ppo": "actor", "dqn": "q_network", "llm_pg": "llm"}


@pytest.mark.parametrize("agent,env,small", [("ppo", "maze", ["agent.n_envs=2", "agent.n_steps=16", "agent.n_epochs=1"]),
                                              ("dqn", "MiniGrid-DoorKey-5x5-v0", []),
                                              ("llm_pg", "MiniGrid-DoorKey-5x5-v0", ["llm.model=tiny-random", "agent.n_envs=4", "agent.n_steps=16",
                                                                                    "agent.batch_size=32", "agent.n_epochs=1"])])
def test_the_safe_checkpoint_format_restores_grid_world_env_stacks_exactly(agent, env, small, make_config, tmp_path):
    """A checkpoint holds the training env (MiniGrid grids, maze layouts) as data; training continues identically."""
    import torch
    from hydra.utils import instantiate

    from llmrl_bench.runner import RunEnvs, build_agent

    cfg = make_config(f"agent={agent}", f"env={env}", "debug=smoke", *small)
    envs = RunEnvs(instantiate(cfg.env), instantiate(cfg.repr))
    original = build_agent(cfg.agent, envs, 0)
    with pytest.raises(KeyboardInterrupt):
        original.learn(envs, 10**6, _StopAt(2))
    path = tmp_path / checkpoint.CHECKPOINT_FILE
    checkpoint.save_checkpoint(path, {"run_id": "x", "agent": original.state_dict(), "rng": checkpoint.rng_state()})
    saved = checkpoint.load_checkpoint(path, "x")
    assert saved is not None and saved["agent"]["loop"] is not None  # the env is in it
    restored = build_agent(cfg.agent, envs, 0)
    restored.load_state_dict(saved["agent"])
    finals, total = [], original.global_step + 300  # PPO rollouts and DQN steps past the checkpoint
    for agent_ in (original, restored):
        checkpoint.set_rng_state(saved["rng"])
        agent_.learn(envs, total, _StopAt(10**9))
        finals.append({k: v.clone() for k, v in agent_.state_dict()[TRAINED[agent]].items()})
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])
