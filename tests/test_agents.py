"""The classic agents meet the Agent protocol: build from config, train, save/load, determinism, learning.

Environments here are built directly from Gymnasium (CartPole-v1) and Minigrid
(MiniGrid-Empty-5x5-v0 flattened to a Box), so these tests need no other part of the suite.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import minigrid  # noqa: F401  (registers the MiniGrid ids)
from llmrl_bench import registry
from llmrl_bench.agents.base import Agent, NullHooks
from llmrl_bench.config import CONFIG_DIR, group_options
from llmrl_bench.llm.settings import ACTION_FIELDS, MODEL_FIELDS
from tests.conftest import build_agent

torch.set_num_threads(1)

CARTPOLE_BINS = {"bins": [6, 6, 12, 12], "clip_low": [-2.4, -3.0, -0.21, -3.5], "clip_high": [2.4, 3.0, 0.21, 3.5]}

#: Small settings so a few hundred steps exercise every part of each loop (updates included).
FAST = {
    "q_learning": {},
    "dqn": {"learning_starts": 100, "train_freq": 50, "gradient_steps": 4, "batch_size": 16, "buffer_size": 200},
    "reinforce": {"episodes_per_batch": 2},
    "ppo": {"n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 2},
}


# ---------------------------------------------------------------- environments
class CartPoleEnvs:
    """EnvFactory over plain CartPole-v1."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def make(self) -> gym.Env:
        return gym.make("CartPole-v1")

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        return gym.make_vec("CartPole-v1", num_envs, vectorization_mode="vector_entry_point")


class FlatMiniGrid(gym.ObservationWrapper):
    """MiniGrid's egocentric view and direction one-hot as one float32 vector."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0.0, 255.0, (7 * 7 * 3 + 4,), np.float32)

    def observation(self, observation) -> np.ndarray:
        direction = np.eye(4, dtype=np.float32)[observation["direction"]]
        return np.concatenate([observation["image"].reshape(-1).astype(np.float32), direction])


class MiniGridEnvs:
    """EnvFactory over MiniGrid-Empty-5x5-v0 (3 useful actions: left, right, forward)."""

    observation_space = gym.spaces.Box(0.0, 255.0, (7 * 7 * 3 + 4,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def make(self) -> gym.Env:
        env = FlatMiniGrid(gym.make("MiniGrid-Empty-5x5-v0"))
        env.action_space = self.action_space
        return env

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        return gym.vector.SyncVectorEnv(
            [self.make for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
        )


class ThreeStepEnv(gym.Env):
    """Every episode lasts exactly 3 steps with reward 1 per step (checks the autoreset handling)."""

    observation_space = gym.spaces.Box(0.0, 3.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t == 3, False, {}


class ThreeStepEnvs:
    observation_space = ThreeStepEnv.observation_space
    action_space = ThreeStepEnv.action_space

    def make(self) -> gym.Env:
        return ThreeStepEnv()

    def make_vec(self, num_envs: int) -> gym.vector.VectorEnv:
        return gym.vector.SyncVectorEnv(
            [ThreeStepEnv for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
        )


ENVS = {"cartpole": CartPoleEnvs(), "minigrid": MiniGridEnvs()}


class RecordingHooks(NullHooks):
    def __init__(self):
        self.steps: list[int] = []
        self.episodes: list[tuple[int, float, int]] = []
        self.logs: list[tuple[int, dict]] = []

    def on_step(self, global_step: int) -> None:
        self.steps.append(global_step)

    def on_episode(self, global_step: int, episodic_return: float, episodic_length: int) -> None:
        self.episodes.append((global_step, episodic_return, episodic_length))

    def log(self, global_step: int, values: dict) -> None:
        self.logs.append((global_step, values))


AGENT_SCHEMAS = registry.schemas("agent")


build = build_agent


def make_agent(agent: str, env: str, seed: int = 0, **overrides):
    """Build from the agent's dataclass, as the runner does."""
    bins = CARTPOLE_BINS if agent == "q_learning" and env == "cartpole" else {}
    return build(agent, ENVS[env], seed, **{**FAST[agent], **bins, **overrides})


def probe_observations(env: str, count: int = 64) -> np.ndarray:
    """Observations from a fixed random rollout, to compare policies on."""
    rng = np.random.default_rng(123)
    environment = ENVS[env].make()
    observation, _ = environment.reset(seed=123)
    observations = []
    for _ in range(count):
        observations.append(observation)
        observation, _, terminated, truncated, _ = environment.step(int(rng.integers(environment.action_space.n)))
        if terminated or truncated:
            observation, _ = environment.reset()
    return np.stack(observations)


def greedy_return(agent, make_env, episodes: int) -> float:
    """Mean undiscounted return of the greedy policy over episodes seeded 10_000, 10_001, ..."""
    returns = []
    for episode in range(episodes):
        env = make_env()
        observation, _ = env.reset(seed=10_000 + episode)
        total, done = 0.0, False
        while not done:
            action = agent.act(observation[None], greedy=True)[0]
            observation, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def rng_states(agent) -> list:
    """Every RNG state an agent could consume, its own and the global ones."""
    states = [np.random.get_state()[1].copy(), torch.get_rng_state()]
    if hasattr(agent, "rng"):
        states.append(str(agent.rng.bit_generator.state))
    if hasattr(agent, "torch_rng"):
        states.append(agent.torch_rng.get_state())
    return states


AGENTS = sorted(FAST)


# ------------------------------------------------------------------------ tests
@pytest.mark.parametrize("agent", AGENTS)
def test_schema_instantiates_agent(agent):
    node = AGENT_SCHEMAS[agent]
    assert dataclasses.is_dataclass(node)
    built = build(agent, ENVS["minigrid"])  # every agent takes the MiniGrid vector without bins
    assert isinstance(built, Agent)
    assert built.name == agent
    assert "vector" in built.supported_reprs
    assert ("llm_embed" in built.supported_reprs) == (agent != "q_learning")


def test_schema_fields_have_one_line_docstrings():
    for node in (AGENT_SCHEMAS[agent] for agent in AGENTS):
        lines = [line.strip() for line in inspect.getsource(node).splitlines()]
        for field in dataclasses.fields(node):
            if field.name == "_target_":
                continue
            index = next(i for i, line in enumerate(lines) if line.startswith(f"{field.name}:"))
            docstring = lines[index + 1]
            assert docstring.startswith('"""') and docstring.endswith('"""') and len(docstring) > 6, field.name


@pytest.mark.parametrize("agent", group_options("agent"))
def test_agent_yaml_holds_no_defaults(agent, make_config):
    """Defaults live once, in the dataclass: conf/agent/<agent>.yaml names its schema and sets no value
    (an LLM agent only wires ``agent.llm.<field>`` to the top-level ``llm.<field>``), so the config a
    real run composes (no per-env hparams) equals the dataclass the agent tests build."""
    option = OmegaConf.load(CONFIG_DIR / "agent" / f"{agent}.yaml")
    assert option.defaults[0] == f"{agent}_schema" and option.defaults[-1] == "_self_"
    wiring = OmegaConf.to_container(option.llm) if "llm" in option else {}
    assert wiring == {} or wiring == {name: f"${{llm.{name}}}" for name in MODEL_FIELDS + ACTION_FIELDS}
    assert [key for key in option if key not in ("defaults", "llm")] == []
    cfg = make_config(f"agent={agent}", "env=cartpole", "~hparams")
    assert OmegaConf.to_object(cfg.agent) == AGENT_SCHEMAS[agent]()


CLASSIC_HPARAMS = sorted(p for a in AGENTS for p in (CONFIG_DIR / "hparams").glob(f"{a}_*.yaml"))


@pytest.mark.parametrize("path", CLASSIC_HPARAMS, ids=lambda p: p.stem)
def test_hparams_files_override_known_fields(path):
    text = path.read_text()
    assert text.startswith("# @package _global_")
    option = OmegaConf.load(path)
    agent = next(a for a in AGENTS if path.stem.startswith(f"{a}_"))
    OmegaConf.merge(OmegaConf.structured(AGENT_SCHEMAS[agent]), option.get("agent", {}))
    assert option.budget.env_steps > 0


@pytest.mark.parametrize("env", sorted(ENVS))
@pytest.mark.parametrize("agent", AGENTS)
def test_train_is_deterministic_and_save_load_keeps_policy(agent, env, tmp_path):
    total_steps = 300
    runs = []
    for _ in range(2):
        learner = make_agent(agent, env, seed=3)
        hooks = RecordingHooks()
        learner.learn(ENVS[env], total_steps, hooks)
        runs.append((learner, hooks))
    (first, first_hooks), (second, second_hooks) = runs

    # on_step after every env step, monotone, up to the budget
    steps = first_hooks.steps
    assert steps == sorted(set(steps)) and steps[-1] >= total_steps
    if agent == "ppo":
        n_envs = first.config.n_envs
        assert np.all(np.diff(steps) <= n_envs) and steps[-1] < total_steps + n_envs * first.config.n_steps
    else:
        assert steps == list(range(1, total_steps + 1))
    assert first_hooks.episodes, "no episode ended in 300 steps"
    assert all(key.split("/")[0] in ("losses", "charts") for _, values in first_hooks.logs for key in values)
    assert all(np.isfinite(value) for _, values in first_hooks.logs for value in values.values())

    # same seed, same everything
    probe = probe_observations(env)
    assert first_hooks.episodes == second_hooks.episodes
    assert first_hooks.steps == second_hooks.steps
    np.testing.assert_array_equal(first.act(probe), second.act(probe))

    # save -> load into a differently seeded agent gives the same greedy policy
    path = tmp_path / "policy.pt"
    first.save(path)
    restored = make_agent(agent, env, seed=99)
    restored.load(path)
    actions = first.act(probe)
    assert actions.dtype == np.int64 and actions.shape == (len(probe),)
    np.testing.assert_array_equal(restored.act(probe), actions)


def test_q_learning_needs_bins_for_continuous_observations():
    from llmrl_bench.agents.q_learning import QLearning

    with pytest.raises(ValueError, match="bins"):
        build("q_learning", CartPoleEnvs)


@pytest.mark.parametrize("agent", AGENTS)
def test_greedy_act_uses_no_randomness(agent):
    learner = make_agent(agent, "cartpole", seed=0)
    learner.learn(ENVS["cartpole"], 200, NullHooks())
    probe = probe_observations("cartpole")
    before = rng_states(learner)
    actions = learner.act(probe, greedy=True)
    after = rng_states(learner)
    for a, b in zip(before, after):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
        else:
            assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
    np.testing.assert_array_equal(learner.act(probe, greedy=True), actions)
    sampled = learner.act(probe, greedy=False)
    assert sampled.shape == actions.shape and set(sampled.tolist()) <= {0, 1}


@pytest.mark.parametrize("agent", AGENTS)
def test_state_dict_resumes_identically(agent):
    """Training state round-trips: a copy restored mid-run continues exactly like the original."""
    original = make_agent(agent, "cartpole", seed=5)
    original.learn(ENVS["cartpole"], 200, NullHooks())
    copy = make_agent(agent, "cartpole", seed=6)
    copy.load_state_dict(original.state_dict())
    assert copy.global_step == original.global_step
    probe = probe_observations("cartpole")
    np.testing.assert_array_equal(copy.act(probe, greedy=False), original.act(probe, greedy=False))
    np.testing.assert_array_equal(copy.act(probe), original.act(probe))


@pytest.mark.parametrize("agent", ["ppo", "reinforce", "dqn", "q_learning"])
def test_episode_accounting_with_autoreset(agent):
    """Episodes of exactly 3 steps are reported as such; autoreset steps are not counted."""
    learner = build(agent, ThreeStepEnvs, **FAST[agent])
    hooks = RecordingHooks()
    learner.learn(ThreeStepEnvs(), 120, hooks)
    assert {(ret, length) for _, ret, length in hooks.episodes} == {(3.0, 3)}
    assert hooks.steps[-1] - 3 * len(hooks.episodes) < 3 * getattr(learner.config, "n_envs", 1)


def test_ppo_learns_cartpole():
    """20k steps of PPO at its CartPole defaults clearly beat a random policy (about 22)."""
    envs = CartPoleEnvs()
    agent = build("ppo", envs)
    agent.learn(envs, 20_000, NullHooks())
    assert greedy_return(agent, envs.make, episodes=5) >= 150


def test_q_learning_learns_empty_minigrid():
    """Tabular Q-learning solves MiniGrid-Empty-5x5 (optimal return about 0.95) in 5k steps."""
    agent = make_agent("q_learning", "minigrid", seed=0, exploration_fraction=0.5)
    agent.learn(ENVS["minigrid"], 5_000, NullHooks())
    assert greedy_return(agent, ENVS["minigrid"].make, episodes=5) >= 0.9


@pytest.mark.parametrize("shape", [(), (3,)])
def test_running_mean_std_checkpoint_round_trip(shape):
    """Reward normalisation keeps a scalar (0-d) statistic; checkpoints must hold it too."""
    from llmrl_bench.agents.networks import RunningMeanStd

    stats = RunningMeanStd(shape)
    stats.update(np.random.default_rng(0).normal(3.0, 2.0, size=(64, *shape)))
    restored = RunningMeanStd(shape)
    restored.load_state_dict(stats.state_dict())
    np.testing.assert_array_equal(restored.mean, stats.mean)
    np.testing.assert_array_equal(restored.var, stats.var)
    assert restored.count == stats.count and np.shape(restored.mean) == shape


def test_running_mean_std_ignores_an_empty_batch():
    """PPO passes only the non-resetting envs; when all reset at once the batch is empty."""
    from llmrl_bench.agents.networks import RunningMeanStd

    stats = RunningMeanStd(())
    stats.update(np.array([1.0, 2.0, 4.0]))
    before = (stats.mean.copy(), stats.var.copy(), stats.count)
    stats.update(np.zeros((0,)))
    assert (stats.mean, stats.var, stats.count) == before and np.isfinite(stats.mean)


def test_q_learning_breaks_ties_at_random_while_training():
    """Unseen states have equal values; exploiting them must not always pick action 0 (spinning in place)."""
    from llmrl_bench.agents.base import NullHooks
    from llmrl_bench.agents.q_learning import QLearning
    from llmrl_bench.envs.maze import MazeSuite
    from llmrl_bench.representations.vector import VectorRepresentation
    from llmrl_bench.run_envs import RunEnvs

    envs = RunEnvs(MazeSuite(), VectorRepresentation())
    agent = build("q_learning", envs, exploration_initial_eps=0.0, exploration_final_eps=0.0)
    agent.learn(envs, 150, NullHooks())  # within one episode (196 steps)
    assert len(agent.table) > 5  # spinning on action 0 sees the 4 headings of one cell (5 keys with the next state)


# ------------------------------------------------------- DQN options (issue 15)
def test_n_step_returns_on_a_hand_built_sequence():
    """Windows stop at an episode end (terminated: no bootstrap; truncated: bootstrap) and at the write head."""
    from llmrl_bench.agents.dqn import n_step_returns

    gamma = 0.5
    rewards = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]], np.float32)
    dones = np.array([[0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]], bool)
    terminated = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]], np.float32)
    stored_ahead = np.array([5, 5, 5, 2])
    returns, steps, discounts = n_step_returns(rewards, dones, terminated, stored_ahead, gamma)
    np.testing.assert_allclose(returns, [1 + 1 + 1, 1 + 1, 1 + 1, 1 + 1])  # 1 + 0.5*2 + 0.25*4, ...
    np.testing.assert_array_equal(steps, [3, 2, 2, 2])
    np.testing.assert_allclose(discounts, [0.125, 0.0, 0.25, 0.25])


def test_one_step_returns_are_the_plain_td_target():
    from llmrl_bench.agents.dqn import n_step_returns

    rewards = np.array([[0.3], [0.7]], np.float32)
    returns, steps, discounts = n_step_returns(rewards, np.array([[0], [1]], bool), np.array([[0.0], [1.0]], np.float32), np.array([1, 1]), 0.99)
    np.testing.assert_array_equal(returns, rewards[:, 0])
    np.testing.assert_array_equal(steps, [1, 1])
    np.testing.assert_array_equal(discounts, np.array([0.99, 0.0], np.float32))


def test_n_step_training_samples_respect_the_write_head():
    """With n_step larger than the stored episode, targets only sum what is stored: finite and bounded."""
    learner = make_agent("dqn", "cartpole", seed=0, n_step=5, learning_starts=20, train_freq=10)
    hooks = RecordingHooks()
    learner.learn(ENVS["cartpole"], 60, hooks)
    q_values = [values["losses/q_values"] for _, values in hooks.logs]
    assert q_values and all(np.isfinite(q_values))


def test_double_dqn_target_uses_the_online_argmax(monkeypatch):
    """On a hand-built batch the Double DQN target is r + gamma * Q_target(s', argmax_a Q_online(s', a))."""
    class TwoActionEnvs:
        observation_space, action_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32), gym.spaces.Discrete(2)

    options = {"buffer_size": 4, "batch_size": 1, "gradient_steps": 1, "gamma": 0.5, "learning_rate": 0.0, "net_arch": [4]}
    agent = build("dqn", TwoActionEnvs, double_q=True, **options)
    def online(obs):  # prefers action 1
        return torch.tensor([1.0, 2.0]).expand(*obs.shape[:-1], 2).clone().requires_grad_(True)

    def target(obs):  # prefers action 0
        return torch.tensor([30.0, 7.0]).expand(*obs.shape[:-1], 2)

    agent.q_network, agent.target_network = online, target
    agent.buffer_rewards[:] = 1.0
    agent.buffer_pos, agent.buffer_full = 0, True
    agent.obs = np.zeros(2, np.float32)  # the newest transition's next observation (as inside learn)
    captured = {}

    def recording_loss(q_taken, td_target):
        captured["td_target"] = td_target.clone()
        return (q_taken - td_target).sum()

    monkeypatch.setattr("torch.nn.functional.smooth_l1_loss", recording_loss)
    agent._train_phase()
    np.testing.assert_allclose(captured["td_target"].numpy(), [1.0 + 0.5 * 7.0])  # plain DQN: 1 + 0.5 * 30


def test_dueling_network_shapes_and_aggregation():
    from llmrl_bench.agents.networks import DuelingQNetwork

    net = DuelingQNetwork(5, [8, 8], 3)
    obs = torch.randn(4, 5)
    q = net(obs)
    assert q.shape == (4, 3)
    features = net.trunk(obs)
    advantage = net.advantage(features)
    np.testing.assert_allclose(q.mean(-1).detach().numpy(), net.value(features)[:, 0].detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((q - q.mean(-1, keepdim=True)).detach().numpy(),
                               (advantage - advantage.mean(-1, keepdim=True)).detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="hidden layer"):
        DuelingQNetwork(5, [], 3)


@pytest.mark.parametrize("options", [{"n_step": 3}, {"dueling": True}, {"double_q": True, "n_step": 2, "dueling": True},
                                     {"double_q": True, "novelty_bonus": 0.01, "advantage_learning": 0.9, "scale_obs": True}])
def test_dqn_options_are_deterministic_and_resume_identically(options):
    runs = []
    for _ in range(2):
        learner = make_agent("dqn", "minigrid", seed=1, **options)
        learner.learn(ENVS["minigrid"], 300, NullHooks())
        runs.append(learner)
    probe = probe_observations("minigrid")
    np.testing.assert_array_equal(runs[0].act(probe), runs[1].act(probe))
    copy = make_agent("dqn", "minigrid", seed=2, **options)
    copy.load_state_dict(runs[0].state_dict())
    np.testing.assert_array_equal(copy.act(probe), runs[0].act(probe))


# ------------------------------------------------- Q-learning options (issue 15)
class RewardChainEnv(gym.Env):
    """Observation t = 0, 1, 2, ...; reward ``rewards[t]``; terminates (or truncates) after ``len(rewards)`` steps."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(1)

    def __init__(self, rewards, truncate=False):
        self.rewards, self.truncate = rewards, truncate

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        reward, self.t = self.rewards[self.t], self.t + 1
        end = self.t == len(self.rewards)
        return np.array([self.t], np.float32), reward, end and not self.truncate, end and self.truncate, {}


class RewardChainEnvs:
    observation_space, action_space = RewardChainEnv.observation_space, RewardChainEnv.action_space

    def __init__(self, rewards, truncate=False):
        self.rewards, self.truncate = rewards, truncate

    def make(self):
        return RewardChainEnv(self.rewards, self.truncate)


def chain_values(n_step: int, steps: int, truncate: bool = False, **options) -> list[float]:
    envs = RewardChainEnvs([1.0, 2.0, 4.0], truncate)
    agent = build("q_learning", envs, gamma=0.5, learning_rate=1.0, n_step=n_step, **options)
    agent.learn(envs, steps, NullHooks())
    values = [agent.table.get(np.array([t], np.float32).tobytes()) for t in range(4)]
    return [None if v is None else float(v[0]) for v in values]  # None: never met as a non-terminal state


def test_q_learning_n_step_returns_on_a_hand_built_chain():
    """One episode with learning rate 1: n-step targets sum the rewards to the end; one-step ones see one reward."""
    assert chain_values(n_step=3, steps=3) == [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0, None]
    assert chain_values(n_step=2, steps=3) == [1 + 0.5 * 2, 2 + 0.5 * 4, 4.0, None]
    assert chain_values(n_step=1, steps=3) == [1.0, 2.0, 4.0, None]


def test_q_learning_n_step_bootstraps_a_truncated_episode():
    """Truncation is not termination: the last n-step target adds gamma ** k times the final state's value."""
    values = chain_values(n_step=3, steps=3, truncate=True, initial_value=8.0)
    assert values == [1 + 0.5 * 2 + 0.25 * 4 + 0.125 * 8, 2 + 0.5 * 4 + 0.25 * 8, 4 + 0.5 * 8, 8.0]


def test_q_learning_optimistic_initial_values():
    """Unseen state-actions start at initial_value, so untried actions look better than tried ones."""
    envs = RewardChainEnvs([0.0, 0.0, 0.0])
    envs.action_space = gym.spaces.Discrete(2)
    agent = build("q_learning", envs, initial_value=1.0, learning_rate=0.5, gamma=0.5)
    agent.learn(envs, 1, NullHooks())
    (first, values), (second, unseen) = agent.table.items()
    assert sorted(values.tolist()) == [0.75, 1.0] and unseen.tolist() == [1.0, 1.0]  # 0.5 * 1 + 0.5 * (0 + 0.5 * 1)


def test_q_learning_anneal_lr_decays_the_step_size_linearly():
    """Step sizes 1, 2/3, 1/3 over a 3-step budget: each value moves that share of the way to its target."""
    np.testing.assert_allclose(chain_values(n_step=1, steps=3, anneal_lr=True)[:3], [1.0, 2 * 2 / 3, 4 / 3])
