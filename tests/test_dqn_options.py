"""DQN's exploration and input options for the maze (issue 15): the episodic novelty bonus and the fixed observation scaling."""

from __future__ import annotations

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch

from llmrl_bench.agents.base import NullHooks
from tests.conftest import build_agent

torch.set_num_threads(1)


class ScriptedEnv(gym.Env):
    """Each episode: observations 0 (reset), 1, 0, 1, 2 and rewards 0, 0, 0, 1 (terminates at 2)."""

    observation_space = gym.spaces.Box(0.0, 4.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)
    OBSERVATIONS = [1.0, 0.0, 1.0, 2.0]
    REWARDS = [0.0, 0.0, 0.0, 1.0]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        observation, reward = self.OBSERVATIONS[self.t], self.REWARDS[self.t]
        self.t += 1
        return np.array([observation], np.float32), reward, self.t == len(self.REWARDS), False, {}


class ScriptedEnvs:
    observation_space, action_space = ScriptedEnv.observation_space, ScriptedEnv.action_space

    def make(self):
        return ScriptedEnv()


class EpisodeHooks(NullHooks):
    def __init__(self):
        self.returns: list[float] = []

    def on_episode(self, global_step: int, episodic_return: float, episodic_length: int) -> None:
        self.returns.append(episodic_return)


def trained_on_two_episodes(**options):
    envs, hooks = ScriptedEnvs(), EpisodeHooks()
    agent = build_agent("dqn", envs, learning_starts=100, buffer_size=16, **options)  # no update within 8 steps
    agent.learn(envs, 8, hooks)
    return agent, hooks


def test_novelty_bonus_is_paid_once_per_new_observation_per_episode(monkeypatch):
    """First visits only (the reset observation counts as visited), afresh each episode; TD targets add the bonus."""
    agent, _ = trained_on_two_episodes(novelty_bonus=0.25, gamma=0.5, net_arch=[4], batch_size=1, gradient_steps=8)
    np.testing.assert_array_equal(agent.buffer_novel[:8], [1, 0, 0, 1] * 2)  # 1 new, 0 seen at reset, 1 seen, 2 new
    np.testing.assert_array_equal(agent.buffer_rewards[:8], ScriptedEnv.REWARDS * 2)  # the env's reward, kept apart

    agent.target_network = lambda obs: torch.zeros(*obs.shape[:-1], 2)  # targets are then the rewards alone
    agent.rng = np.random.default_rng(0)
    index = np.random.default_rng(0).integers(0, 8, size=(8, 1))  # the samples _train_phase will draw
    targets = []
    monkeypatch.setattr("torch.nn.functional.smooth_l1_loss", lambda q, target: targets.append(target.clone()) or (q - target).sum())
    agent._train_phase(bonus=0.25)
    expected = (agent.buffer_rewards + 0.25 * agent.buffer_novel)[index[:, 0]]
    np.testing.assert_allclose(torch.cat(targets).numpy(), expected)


def test_novelty_bonus_stays_out_of_the_reported_return_and_is_off_by_default():
    _, hooks = trained_on_two_episodes(novelty_bonus=0.25)
    assert hooks.returns == [1.0, 1.0]  # evaluation and the training curve see the env's reward only
    plain, _ = trained_on_two_episodes()
    assert not plain.buffer_novel.any() and plain._bonus(0.0) == 0.0


def test_novelty_anneal_decays_the_bonus_with_epsilon():
    agent, _ = trained_on_two_episodes(novelty_bonus=0.2, novelty_anneal=True, exploration_fraction=0.5)
    np.testing.assert_allclose([agent._bonus(p) for p in (0.0, 0.25, 0.5, 0.9)], [0.2, 0.1, 0.0, 0.0])
    constant, _ = trained_on_two_episodes(novelty_bonus=0.2, exploration_fraction=0.5)
    assert constant._bonus(0.9) == 0.2


def test_scale_obs_divides_stored_and_acted_observations_by_high():
    agent, _ = trained_on_two_episodes(scale_obs=True)
    np.testing.assert_allclose(agent._next_observations(np.arange(4))[:, 0], np.array(ScriptedEnv.OBSERVATIONS) / 4.0)
    raw = np.array([[2.0], [4.0]], np.float32)
    with torch.no_grad():
        expected = agent.q_network(torch.from_numpy(raw / 4.0)).argmax(-1).numpy()
    np.testing.assert_array_equal(agent.act(raw), expected)


def test_scale_obs_leaves_unbounded_features_and_rejects_a_negative_bound():
    class PartlyBoundedEnvs:
        observation_space = gym.spaces.Box(np.array([0, -np.inf]), np.array([4, np.inf]), dtype=np.float32)
        action_space = gym.spaces.Discrete(2)

    class NegativeBoundEnvs:
        observation_space, action_space = gym.spaces.Box(-2.0, -1.0, (2,), np.float32), gym.spaces.Discrete(2)

    agent = build_agent("dqn", PartlyBoundedEnvs, scale_obs=True)
    np.testing.assert_array_equal(agent._features(np.array([2.0, 7.0])), np.array([0.5, 7.0], np.float32))
    with pytest.raises(ValueError, match="scale_obs"):
        build_agent("dqn", NegativeBoundEnvs, scale_obs=True)


@pytest.mark.parametrize("double_q", [False, True])
def test_advantage_learning_lowers_the_target_of_a_non_greedy_action_by_alpha_times_its_gap(monkeypatch, double_q):
    class TwoActionEnvs:
        observation_space, action_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32), gym.spaces.Discrete(2)

    agent = build_agent("dqn", TwoActionEnvs, advantage_learning=0.5, double_q=double_q, buffer_size=2, batch_size=1,
                        gradient_steps=1, gamma=0.5, learning_rate=0.0, net_arch=[4])
    values = torch.tensor([30.0, 7.0])  # both networks: action 0 is greedy, action 1 is 23 below it
    agent.q_network = lambda obs: values.expand(*obs.shape[:-1], 2).clone().requires_grad_(True)
    agent.target_network = lambda obs: values.expand(*obs.shape[:-1], 2)
    agent.buffer_rewards[:] = 1.0
    agent.buffer_actions[:] = 1
    agent.buffer_pos, agent.buffer_full = 0, True
    agent.obs = np.zeros(2, np.float32)  # the newest transition's next observation (as inside learn)
    targets = []
    monkeypatch.setattr("torch.nn.functional.smooth_l1_loss", lambda q, target: targets.append(target.clone()) or (q - target).sum())
    agent._train_phase()
    np.testing.assert_allclose(targets[0].numpy(), [1.0 + 0.5 * 30.0 - 0.5 * 23.0])  # without it: 1 + 0.5 * 30


class SnapshotAt(NullHooks):
    """Keeps a pickled ``state_dict`` taken mid-episode at env step ``step``."""

    def __init__(self, agent, step: int):
        self.agent, self.step, self.snapshot = agent, step, None

    def checkpoint_point(self, global_step: int) -> None:
        if global_step == self.step:
            self.snapshot = cloudpickle.dumps(self.agent.state_dict())


def test_novelty_bonus_run_resumes_mid_episode_identically():
    """The episode's visited set is loop state: a run resumed from step 2 (mid-episode) replays the same bonuses."""
    options = {"novelty_bonus": 0.25, "scale_obs": True, "learning_starts": 2, "train_freq": 2, "buffer_size": 16,
               "batch_size": 4, "net_arch": [4]}
    envs = ScriptedEnvs()
    whole = build_agent("dqn", envs, **options)
    hooks = SnapshotAt(whole, 2)
    whole.learn(envs, 12, hooks)
    resumed = build_agent("dqn", envs, seed=5, **options)
    resumed.load_state_dict(cloudpickle.loads(hooks.snapshot))
    resumed.learn(envs, 12, NullHooks())
    np.testing.assert_array_equal(resumed.buffer_novel, whole.buffer_novel)
    for name, values in whole.q_network.state_dict().items():
        torch.testing.assert_close(resumed.q_network.state_dict()[name], values, rtol=0, atol=0)


class RecordedCartPoleEnvs:
    """CartPole cut at 7 steps (truncations as well as terminations); ``next_obs`` lists what every step returned."""

    observation_space, action_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(2)

    def __init__(self):
        self.next_obs: list[np.ndarray] = []

    def make(self):
        recorded = self.next_obs

        class Recording(gym.Wrapper):
            def step(self, action):
                result = self.env.step(action)
                recorded.append(np.array(result[0], np.float32))
                return result

        return Recording(gym.make("CartPole-v1", max_episode_steps=7))


class CheckNextObservationsAt(NullHooks):
    """At env step ``step`` (mid-learn), the next observations of every stored transition."""

    def __init__(self, agent, step: int):
        self.agent, self.step, self.seen = agent, step, None

    def checkpoint_point(self, global_step: int) -> None:
        if global_step == self.step:
            self.seen = self.agent._next_observations(np.arange(self.step))


def test_the_buffer_gives_each_transitions_own_next_observation():
    """Next observations are not stored beside observations: they are the following transition's, or kept apart at
    episode ends (truncated or terminated) and where a learn call ended. Checked against what the env returned,
    mid-learn, after a learn call, after a second call that wraps the buffer, and after a checkpoint round trip."""
    envs = RecordedCartPoleEnvs()
    options = {"learning_starts": 10, "train_freq": 5, "batch_size": 4, "buffer_size": 64, "net_arch": [4], "n_step": 3}
    agent = build_agent("dqn", envs, **options)
    hooks = CheckNextObservationsAt(agent, 30)
    agent.learn(envs, 40, hooks)
    np.testing.assert_array_equal(hooks.seen, np.stack(envs.next_obs[:30]))
    np.testing.assert_array_equal(agent._next_observations(np.arange(40)), np.stack(envs.next_obs))
    agent.learn(envs, 100, NullHooks())  # a new episode starts; positions 0-35 now hold steps 64-99
    expected = np.stack(envs.next_obs[64:100] + envs.next_obs[36:64])
    np.testing.assert_array_equal(agent._next_observations(np.arange(64)), expected)
    assert agent.buffer_kept.sum() == len(agent.kept_next_obs) < 30  # kept apart: episode ends only, not every transition
    restored = build_agent("dqn", envs, seed=3, **options)
    restored.load_state_dict(cloudpickle.loads(cloudpickle.dumps(agent.state_dict())))
    np.testing.assert_array_equal(restored._next_observations(np.arange(64)), expected)
    earlier_format = agent.state_dict()  # as checkpoints stored it before: every next observation
    earlier_format["buffer"]["next_obs"] = torch.from_numpy(expected)
    del earlier_format["kept_positions"], earlier_format["kept_next_obs"]
    restored.load_state_dict(earlier_format)
    np.testing.assert_array_equal(restored._next_observations(np.arange(64)), expected)
    assert restored.kept_next_obs.keys() == agent.kept_next_obs.keys()
