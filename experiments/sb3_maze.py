"""Stable-Baselines3's PPO, DQN and A2C on the suite's maze, next to ours (issue 15; paper table ``sb3_maze``).

Each SB3 run takes the run config ``experiment=sb3_maze agent=<ours> seed=N`` composes (our side's
config: ``conf/experiment/sb3_maze.yaml``; DQN: ``experiment=sb3_maze_dqn``, which pins the plain-DQN
settings SB3's DQN shares), so everything but the learner is the suite's own:

- the env and observation: the run's :class:`~llmrl_bench.run_envs.RunEnvs` (``env=maze``, ``repr=vector``),
  its training envs in SB3's ``DummyVecEnv``;
- the hyperparameters: ``conf/agent/<ours>.yaml`` merged with ``conf/hparams/<ours>_maze.yaml``,
  translated to SB3's arguments by :func:`sb3_arguments` (A2C: SB3's defaults, 8 envs, see ``A2C_ENVS``);
- the budget: our agent's maze budget (A2C: REINFORCE's);
- the evaluation: the runner's own hooks (:class:`~llmrl_bench.hooks.RunHooks`) at the same steps, on the
  same episodes, greedy and sampled, with SB3's policy behind the agent interface they read (:class:`SB3Policy`).

One JSON per run in ``--out`` (``<algo>_seed<N>.json``): the settings, the curve (ours' format), the final
evaluation's per-episode returns and exact per-episode optimum of every split, and the ``run_id`` of our
run it is compared with. A run whose file exists is skipped. One process, one torch thread::

    python experiments/sb3_maze.py ppo dqn --seeds 0-4         # -> results/reference/sb3_maze/
    python experiments/sb3_maze.py a2c --seeds 0 --budget 20000 --out /tmp/sb3_timing   # a timing run
    python -m llmrl_bench -m experiment=sb3_maze               # our side: REINFORCE (PPO's are maze_rewards')
    python -m llmrl_bench -m experiment=sb3_maze_dqn           # our side: DQN
    python -m paper.build                                      # -> paper/tables/sb3_maze.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import stable_baselines3 as sb3
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from llmrl_bench import results
from llmrl_bench.agents.base import epsilon_greedy_probabilities
from llmrl_bench.agents.dqn import DQNConfig
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME, register_configs
from llmrl_bench.envs.base import EVAL_SEED_OFFSET, TRAIN
from llmrl_bench.evaluation import EVAL_MODES
from llmrl_bench.hooks import RunHooks
from llmrl_bench.progress import RunProgress
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.runner import experiment_config, seed_everything
from llmrl_bench.tracking import NullTracker

#: Each SB3 algorithm and our agent whose maze config (hyperparameters, budget) and results it is compared with.
OURS = {"ppo": "ppo", "dqn": "dqn", "a2c": "reinforce"}
#: The experiment that composes our side (the committed runs' settings): PPO's direct-reward runs of maze_rewards
#: (300k, constant step size), DQN's pins the plain-DQN settings SB3's DQN can share.
EXPERIMENTS = {"ppo": "maze_rewards", "dqn": "sb3_maze_dqn", "a2c": "sb3_maze"}
SB3_CLASSES = {"ppo": sb3.PPO, "dqn": sb3.DQN, "a2c": sb3.A2C}
#: A2C's parallel envs: SB3 has no default (it takes the env it is given); 8 as our PPO's and RL Zoo's usual A2C.
A2C_ENVS = 8
#: What differs between the two sides, in words (the paper table's settings column).
DIFFERENCES = {
    "ppo": "none: our hyperparameters (VecNormalize for normalize_obs/normalize_reward)",
    "dqn": "none: our hyperparameters",
    "a2c": f"A2C at SB3's defaults ({A2C_ENVS} envs, n_steps 5, RMSprop lr 7e-4, no entropy bonus) vs our REINFORCE "
           "(its maze hyperparameters); same budget",
}
DEFAULT_OUT = Path("results/reference/sb3_maze")
#: Our DQN's options with their off values: SB3's DQN has none of them.
DQN_OPTIONS_OFF = {"double_q": False, **DQNConfig.IDENTITY_NEUTRAL}


class LinearSchedule:
    """SB3's ``lin_<initial>`` schedule (RL Zoo): ``initial`` decayed linearly to 0 over the budget."""

    def __init__(self, initial: float):
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial

    def __repr__(self) -> str:
        return f"lin_{self.initial}"


def linear(initial: float, anneal: bool) -> LinearSchedule | float:
    """A ``lin_`` schedule when ``anneal``, else the constant."""
    return LinearSchedule(initial) if anneal else initial


def sb3_arguments(algo: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """SB3's constructor arguments (no env, seed or device) for our agent config ``cfg`` (SB3's names).

    ``a2c`` ignores ``cfg``: SB3's defaults. PPO's observation and reward normalization are not
    constructor arguments: :func:`training_envs` wraps the envs in ``VecNormalize`` for them.
    """
    if algo == "a2c":
        return {}
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[cfg["activation"]]
    learning_rate = linear(cfg["learning_rate"], cfg["anneal_lr"])
    if algo == "ppo":
        return {
            "n_steps": cfg["n_steps"], "batch_size": cfg["batch_size"], "n_epochs": cfg["n_epochs"],
            "learning_rate": learning_rate, "clip_range": linear(cfg["clip_range"], cfg["anneal_clip_range"]),
            "gamma": cfg["gamma"], "gae_lambda": cfg["gae_lambda"], "ent_coef": cfg["ent_coef"],
            "vf_coef": cfg["vf_coef"], "max_grad_norm": cfg["max_grad_norm"],
            "normalize_advantage": cfg["normalize_advantage"],
            "policy_kwargs": {"net_arch": {"pi": cfg["net_arch"], "vf": cfg["net_arch"]}, "activation_fn": activation},
        }
    unsupported = {key: cfg[key] for key, off in DQN_OPTIONS_OFF.items() if cfg.get(key, off) != off}
    if cfg["loss"] != "huber" or unsupported:
        raise ValueError(f"SB3's DQN has no {unsupported or {'loss': cfg['loss']}}; allowed: huber loss, options off")
    return {
        "learning_rate": learning_rate, "buffer_size": cfg["buffer_size"], "learning_starts": cfg["learning_starts"],
        "batch_size": cfg["batch_size"], "tau": cfg["tau"], "gamma": cfg["gamma"], "train_freq": cfg["train_freq"],
        "gradient_steps": cfg["gradient_steps"], "target_update_interval": cfg["target_update_interval"],
        "exploration_fraction": cfg["exploration_fraction"], "exploration_initial_eps": cfg["exploration_initial_eps"],
        "exploration_final_eps": cfg["exploration_final_eps"], "max_grad_norm": cfg["max_grad_norm"],
        "policy_kwargs": {"net_arch": cfg["net_arch"], "activation_fn": activation},
    }


def run_config(algo: str, seed: int, overrides: Sequence[str] = ()) -> DictConfig:
    """Our side's run config for ``algo``: ``experiment=<EXPERIMENTS[algo]> agent=<ours> seed=<seed>``, as the CLI composes it."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=CONFIG_NAME,
                       overrides=[f"experiment={EXPERIMENTS[algo]}", f"agent={OURS[algo]}", f"seed={seed}", *overrides])


def training_envs(algo: str, cfg: dict[str, Any], envs: RunEnvs):
    """SB3's training envs: the run's training envs in a ``DummyVecEnv`` (``VecNormalize`` where PPO normalizes)."""
    num_envs = {"ppo": cfg.get("n_envs"), "dqn": 1, "a2c": A2C_ENVS}[algo]
    vec_env = DummyVecEnv([envs.make] * num_envs)
    if algo == "ppo" and (cfg["normalize_obs"] or cfg["normalize_reward"]):
        vec_env = VecNormalize(vec_env, norm_obs=cfg["normalize_obs"], norm_reward=cfg["normalize_reward"], gamma=cfg["gamma"])
    return vec_env


class SB3Policy:
    """A trained SB3 model behind the interface the suite's evaluation reads (``act``, ``action_probabilities``).

    DQN's distribution is the epsilon-greedy policy at the final epsilon, as our DQN's; PPO's and A2C's
    the softmax they sample. Observations are normalized with the training statistics, never updated here.
    """

    def __init__(self, model, final_epsilon: float | None = None):
        self.model = model
        self.final_epsilon = final_epsilon

    def _observations(self, observations: np.ndarray) -> np.ndarray:
        normalizer = self.model.get_vec_normalize_env()
        observations = np.asarray(observations, np.float32)
        return normalizer.normalize_obs(observations) if normalizer is not None else observations

    def act(self, observations: np.ndarray, greedy: bool = True) -> np.ndarray:
        """The deterministic action SB3's ``predict`` gives (argmax of Q or of the policy)."""
        if not greedy:
            raise ValueError("SB3Policy plays only the greedy evaluation policy; sampled is action_probabilities'")
        return self.model.predict(self._observations(observations), deterministic=True)[0]

    @torch.no_grad()
    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        """``(batch, num_actions)``: epsilon-greedy over Q (DQN) or the policy's softmax."""
        obs_tensor = torch.as_tensor(self._observations(observations))
        if isinstance(self.model, sb3.DQN):
            greedy = self.model.q_net(obs_tensor).argmax(-1).numpy()
            return epsilon_greedy_probabilities(greedy, int(self.model.action_space.n), self.final_epsilon)
        return self.model.policy.get_distribution(obs_tensor).distribution.probs.double().numpy()


class EvaluationCallback(BaseCallback):
    """Drives the runner's hooks from SB3's loop, and keeps the per-episode returns of the last evaluation."""

    def __init__(self, hooks: RunHooks, policy: SB3Policy):
        super().__init__()
        self.hooks = hooks
        self.policy = policy
        self.final_returns: dict[str, dict[str, list[float]]] = {}
        self.evaluation_seconds = 0.0

    def _on_step(self) -> bool:
        started = time.perf_counter()
        self.hooks.on_step(self.num_timesteps)
        self.evaluation_seconds += time.perf_counter() - started
        if self.hooks.next_eval == len(self.hooks.eval_steps) and not self.final_returns:
            self.final_returns = final_episode_returns(self.hooks, self.policy)
        return True


def final_episode_returns(hooks: RunHooks, policy: SB3Policy) -> dict[str, dict[str, list[float]]]:
    """Per split and mode, the returns ``(episodes,)`` of the policy the last curve point evaluated (played again:
    the evaluation is deterministic, so their means are that point's ``modes``)."""
    evaluators = {TRAIN: hooks.train_evaluator, **hooks.held_out_evaluators}
    returns = {split: {mode: evaluator.evaluate_mode(policy, mode).tolist() for mode in EVAL_MODES}
               for split, evaluator in evaluators.items()}
    last = hooks.curve[-1]["modes"]
    mismatched = [(split, mode) for split in returns for mode in EVAL_MODES if np.mean(returns[split][mode]) != last[mode][split]]
    if mismatched:
        raise RuntimeError(f"evaluation is not deterministic: {mismatched} differ from the last curve point")
    return returns


def optimal_returns(suite, budget) -> dict[str, list[float]]:
    """Per split, the exact best return of each evaluation episode (seed ``EVAL_SEED_OFFSET + i``)."""
    episodes = {TRAIN: budget.eval_episodes} | {context: budget.held_out_episodes for context in suite.held_out_contexts}
    return {split: [suite.optimal_return(split, EVAL_SEED_OFFSET + i) for i in range(count)] for split, count in episodes.items()}


def train_and_evaluate(algo: str, seed: int, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """One SB3 run on the maze: its record (see the module docstring); ``overrides`` change our side's config."""
    cfg = run_config(algo, seed, overrides)
    agent_cfg = OmegaConf.to_container(cfg.agent, resolve=True)
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(seed)
    suite, representation = instantiate(cfg.env), instantiate(cfg.repr)
    envs = RunEnvs(suite, representation)
    arguments = sb3_arguments(algo, agent_cfg)
    model = SB3_CLASSES[algo]("MlpPolicy", training_envs(algo, agent_cfg, envs), **arguments, seed=seed, device="cpu")
    policy = SB3Policy(model, agent_cfg.get("exploration_final_eps"))
    hooks = RunHooks(policy, envs, cfg.budget, cfg.logger.log_every_steps, NullTracker(),
                     RunProgress(f"sb3 {algo} seed={seed}", cfg.budget.env_steps, enabled=False))
    callback = EvaluationCallback(hooks, policy)
    started = time.perf_counter()
    hooks.on_step(0)  # the untrained policy, as the runner does
    callback.evaluation_seconds = time.perf_counter() - started
    model.learn(cfg.budget.env_steps, callback=callback)
    seconds = time.perf_counter() - started
    hooks.close()
    return {
        "algo": algo, "library": f"stable_baselines3 {sb3.__version__}", "seed": seed,
        "budget": int(cfg.budget.env_steps), "env_steps": int(model.num_timesteps),
        "settings": {"sb3_arguments": {key: _plain(value) for key, value in arguments.items()},
                     "num_envs": model.n_envs, "differences": DIFFERENCES[algo]},
        "ours": {"agent": OURS[algo], "run_id": results.run_id(experiment_config(cfg)),
                 "config": {key: experiment_config(cfg)[key] for key in ("agent", "env", "repr", "budget")}},
        "curve": hooks.curve,
        "final_returns": callback.final_returns,
        "optimal_returns": optimal_returns(suite, cfg.budget),
        "provenance": {"wall_seconds": seconds, "evaluation_seconds": callback.evaluation_seconds,
                       "training_steps_per_second": model.num_timesteps / (seconds - callback.evaluation_seconds),
                       "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
    }


def _plain(value: Any) -> Any:
    """A JSON value for an SB3 argument: schedules and activation classes by name."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, type):
        return value.__name__
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,2,3``."""
    if "-" in text:
        first, last = text.split("-", 1)
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/sb3_maze.py", description=__doc__.splitlines()[0])
    parser.add_argument("algos", nargs="+", help=f"SB3 algorithms, of {sorted(OURS)}")
    parser.add_argument("--seeds", default="0-4", help="seeds: 0-4 or 0,2,3 (default 0-4)")
    parser.add_argument("--budget", type=int, default=None, help="env steps (default: our agent's maze budget)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where the JSON files go (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    bad = [algo for algo in args.algos if algo not in OURS]
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError:
        seeds = []
    if bad or not seeds or min(seeds) < 0 or (args.budget is not None and args.budget < 1):
        print(f"sb3_maze: bad arguments algos={bad or args.algos} seeds={args.seeds!r} budget={args.budget}; allowed: "
              f"algos of {sorted(OURS)}, seeds like 0-4 or 0,2, a positive budget", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for algo in args.algos:
        for seed in seeds:
            path = args.out / f"{algo}_seed{seed}.json"
            if path.exists():
                print(f"skip {path}: exists")
                continue
            record = train_and_evaluate(algo, seed, [f"budget.env_steps={args.budget}"] if args.budget else [])
            results.atomic_write_bytes(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
            final = record["curve"][-1]["modes"]
            print(f"{algo} seed {seed}: {record['env_steps']} steps in {record['provenance']['wall_seconds']:.0f}s "
                  f"({record['provenance']['training_steps_per_second']:.0f} training steps/s); final "
                  f"greedy/sampled train return {final['greedy'][TRAIN]:.3f}/{final['sampled'][TRAIN]:.3f} -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
