"""Agents that fail on purpose, for fault-injection tests (selected with ``agent._target_=...``)."""

from llmrl_bench.agents.ppo import PPO


class CrashingPPO(PPO):
    """PPO that raises mid-training for odd seeds, and trains normally for even ones."""

    def __init__(self, *args, seed: int, **kwargs):
        super().__init__(*args, seed=seed, **kwargs)
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
