"""Agents that fail on purpose, for fault-injection tests.

Registered as a plugin (``LLMRL_BENCH_PLUGINS=tests.fault_agents``) and selected with
``agent=ppo agent._target_=tests.fault_agents.CrashingPPO``: a registered target, PPO's settings.
"""

from dataclasses import dataclass

from llmrl_bench.agents.ppo import PPO, PPOConfig
from llmrl_bench.registry import register


@register("agent", "crashing_ppo")
@dataclass
class CrashingPPOConfig(PPOConfig):
    """PPO's settings; the agent crashes for odd seeds."""

    _target_: str = "tests.fault_agents.CrashingPPO"


class CrashingPPO(PPO):
    """PPO that raises mid-training for odd seeds, and trains normally for even ones."""

    def __init__(self, config, observation_space, action_space, seed: int):
        super().__init__(config, observation_space, action_space, seed)
        self.crash = seed % 2 == 1

    def learn(self, envs, total_steps, hooks):
        class CrashingHooks:
            def __getattr__(_, name):
                return getattr(hooks, name)

            def on_step(_, global_step):
                if self.crash and global_step > total_steps // 2:
                    raise RuntimeError("injected crash")
                hooks.on_step(global_step)

        super().learn(envs, total_steps, CrashingHooks())
