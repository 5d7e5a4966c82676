"""Run a verifier's jobs in a child process: no network, a wall-clock limit, a memory limit.

The parent (:func:`run_jobs`) writes the jobs as JSON, starts
``python -m llmrl_bench.leaderboard.sandbox JOBS OUT`` in a new session, inside a network
namespace with no interfaces (``unshare -rn``) when the kernel allows it, with
``RLIMIT_AS`` set, W&B disabled, Hugging Face offline and none of the caller's other
environment variables (no credentials), and kills the whole session at the deadline.
Without ``unshare`` the child still gets the offline variables and an unroutable proxy,
which stop the libraries the project uses, but not arbitrary code: the sandbox's strength
is then that no submitted code runs at all (``protocol``).

Jobs, each on a config rebuilt by :func:`protocol.rebuild_config`:

* ``initial``: the untrained agent of the run's seed, evaluated as the runner does at step 0;
* ``policy``: the submitted final policy (``torch.load(weights_only=True)``) evaluated at the last step;
* ``retrain``: the whole run, again, with the runner.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmrl_bench.results import atomic_write_bytes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PASSED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME")
OFFLINE = {
    "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "LLMRL_BENCH_JOBS": "1",
}


class SandboxError(RuntimeError):
    """The child failed, ran out of time or memory; the message is one line."""


@functools.cache
def network_isolation() -> str:
    """``unshare -rn`` when it works here (a child without network), else ``offline variables only``."""
    binary = shutil.which("unshare")
    if binary is not None and subprocess.run([binary, "-rn", "true"], capture_output=True).returncode == 0:
        return "unshare -rn"
    return "offline variables only"


def _limits(memory_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_jobs(jobs: list[dict[str, Any]], workdir: Path, timeout_s: float, memory_bytes: int) -> dict[str, Any]:
    """Run ``jobs`` in the sandboxed child; returns ``{job id: outcome}``. Raises :class:`SandboxError`."""
    jobs_path, out_path = workdir / "jobs.json", workdir / "outcomes.json"
    jobs_path.write_text(json.dumps(jobs))
    command = [sys.executable, "-m", "llmrl_bench.leaderboard.sandbox", str(jobs_path), str(out_path)]
    if network_isolation().startswith("unshare"):
        command = ["unshare", "-rn", *command]
    env = {key: os.environ[key] for key in PASSED_VARIABLES if key in os.environ}
    env.update(OFFLINE, PYTHONPATH=str(PROJECT_ROOT))
    proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=_limits(memory_bytes))
    try:
        output = proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise SandboxError(f"the re-runs took longer than the wall-clock limit of {timeout_s:g} s") from None
    if proc.returncode != 0 or not out_path.is_file():
        tail = " | ".join(output.strip().splitlines()[-3:])[-400:]
        raise SandboxError(f"the sandboxed re-runs failed (exit {proc.returncode}): {tail}")
    return json.loads(out_path.read_text())


# ------------------------------------------------------------------------------- child


def _agent_and_hooks(config: dict[str, Any]):
    """The agent and evaluation hooks of a run, built in the runner's order (so the RNGs match)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from llmrl_bench.hooks import RunHooks
    from llmrl_bench.progress import RunProgress
    from llmrl_bench.runner import RunEnvs, build_agent, seed_everything
    from llmrl_bench.tracking import NullTracker
    from llmrl_bench.validation import check_config

    cfg = OmegaConf.create(config)
    check_config(cfg)
    suite, representation = instantiate(cfg.env), instantiate(cfg.repr)
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    envs = RunEnvs(suite, representation)
    agent = build_agent(cfg.agent, envs, cfg.seed)
    progress = RunProgress("verify", cfg.budget.env_steps, enabled=False)
    return agent, RunHooks(agent, envs, cfg.budget, cfg.logger.log_every_steps, NullTracker(), progress)


def _evaluate(job: dict[str, Any]) -> dict[str, Any]:
    agent, hooks = _agent_and_hooks(job["config"])
    try:
        if job["kind"] == "policy":
            agent.load(Path(job["policy"]))  # every agent's load is torch.load(weights_only=True)
        hooks.evaluate(int(job["step"]))
    finally:
        hooks.close()
    return {"point": hooks.curve[-1]}


def _retrain(job: dict[str, Any]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from llmrl_bench import results
    from llmrl_bench.runner import run

    config = job["config"]
    run(OmegaConf.create(config))
    record = results.load_result(results.run_dir(config["results_dir"], job["run_id"]) / results.RESULT_FILE)
    return {"run_id": record.run_id, "metrics": record.metrics, "curve": record.curve}


def main(argv: list[str]) -> int:
    jobs = json.loads(Path(argv[0]).read_text())
    outcomes = {}
    for job in jobs:
        try:
            outcomes[job["id"]] = _retrain(job) if job["kind"] == "retrain" else _evaluate(job)
        except Exception as error:  # noqa: BLE001 - one failed job is one mismatch line, not a crash
            outcomes[job["id"]] = {"error": f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"}
        print(f"{job['id']}: {'failed' if 'error' in outcomes[job['id']] else 'done'}", flush=True)
    atomic_write_bytes(Path(argv[1]), json.dumps(outcomes).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
