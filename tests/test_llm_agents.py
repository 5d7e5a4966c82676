"""The LLM agents (``llm_zero_shot``, ``llm_pg``) and ``repr=llm_embed``, on the ``tiny-random`` model.

Runs go through ``llmrl_bench.runner.run`` with tiny budgets; the whole module takes well
under a minute on two cores.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed (pip install -e .[llm])")

from omegaconf import OmegaConf

from llmrl_bench import results
from llmrl_bench.agents.base import NullHooks
from llmrl_bench.agents.llm_pg import LLMPG, _RolloutPrompts, novelty_bonus
from llmrl_bench.agents.llm_policy import CARTPOLE_GOAL, candidate_actions
from llmrl_bench.agents.llm_zero_shot import LLMZeroShot
from llmrl_bench.cli import check_command_line
from llmrl_bench.envs import MazeSuite
from llmrl_bench.representations import TextRepresentation
from llmrl_bench.representations.llm_embed import LLMEmbedRepresentation
from llmrl_bench.errors import ConfigError
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.llm import settings
from llmrl_bench.llm.settings import MODEL_FIELDS
from llmrl_bench.runner import experiment_config, run
from tests.conftest import build_agent
from tests.conftest import REPO, load_experiment, run_cli
from tests.test_agents import RecordingHooks

LLM_AGENTS = ("llm_zero_shot", "llm_pg")
TINY = "llm.model=tiny-random"
#: Rollouts of a few steps and one epoch keep llm_pg runs to seconds.
SMALL_PG = ("agent.n_envs=4", "agent.n_steps=4", "agent.batch_size=16", "agent.n_epochs=1")
SMALL_RUN = ("debug=smoke", "budget.env_steps=32", "budget.num_evals=1", "budget.eval_episodes=2", "budget.held_out_episodes=1")

MAZE_OBSERVATIONS = [
    "You face north. A wall 1 step ahead; a wall 3 steps left. Mission: get to the green goal square",
    "You face east. A wall 2 steps ahead; the green goal 1 step right and 1 step ahead. Mission: get to the green goal square",
    "You face south. Nothing in sight. Mission: get to the green goal square",
]


def agent_overrides(agent: str) -> tuple[str, ...]:
    return (f"agent={agent}", TINY, "agent.n_envs=4", *(SMALL_PG if agent == "llm_pg" else ()))


def maze_envs() -> RunEnvs:
    return RunEnvs(MazeSuite(train_sizes=[7], held_out_sizes=[7]), TextRepresentation())


def tiny_pg(seed: int = 0, **overrides) -> LLMPG:
    envs = maze_envs()
    settings = {"n_envs": 4, "n_steps": 4, "batch_size": 16, "n_epochs": 1, "learning_rate": 1e-3, **overrides}
    llm = {"model": "tiny-random", **settings.pop("llm", {})}
    return build_agent("llm_pg", envs, seed, llm=llm, **settings)


@pytest.mark.parametrize("env", ["maze", "cartpole"])
@pytest.mark.parametrize("agent", LLM_AGENTS)
def test_runs_through_the_runner(make_config, tmp_path, agent, env):
    cfg = make_config(*agent_overrides(agent), f"env={env}", *SMALL_RUN, f"results_dir={tmp_path}")
    assert cfg.repr.name == "text"  # the LLM agents switch the default representation
    metrics = run(cfg)
    assert metrics is not None
    [result_file] = tmp_path.glob("runs/*/result.json")
    result = json.loads(result_file.read_text())
    assert [point["step"] for point in result["curve"]] == [0, 32]
    assert set(result["curve"][-1]["held_out"]) == set(result["env_info"]["held_out_contexts"])
    provenance = result["provenance"]
    assert provenance["llm_tokens"] > 0 and provenance["llm_flops"] > 0
    assert provenance["llm_params"] == 164_608
    assert 0 < provenance["llm_seconds_per_env_step"] < provenance["wall_seconds"]
    assert 0 <= provenance["llm_score_cache_hit_rate"] <= 1
    assert provenance["llm_device"] == "cpu"
    assert provenance["llm_autocast"] == settings.autocast_name(settings.LLMModelConfig(), "cpu")  # auto, resolved


def test_llm_pg_is_deterministic(make_config, tmp_path):
    """Same seed, same training: identical scores, curves, training episodes and weights (SB3 test_deterministic)."""
    results = []
    for name in ("a", "b"):
        cfg = make_config(*agent_overrides("llm_pg"), "env=maze", *SMALL_RUN, "budget.env_steps=48", f"results_dir={tmp_path / name}")
        run(cfg)
        [run_dir] = (tmp_path / name).glob("runs/*")
        result = json.loads((run_dir / "result.json").read_text())
        episodes = dict(np.load(run_dir / "episodes.npz"))
        weights = torch.load(run_dir / "policy.pt", weights_only=True)
        results.append((result, episodes, weights))
    (first, first_episodes, first_weights), (second, second_episodes, second_weights) = results
    assert first["curve"] == second["curve"] and first["metrics"] == second["metrics"]
    assert first["provenance"]["llm_tokens"] == second["provenance"]["llm_tokens"]
    for key in first_episodes:
        np.testing.assert_array_equal(first_episodes[key], second_episodes[key])
    for name, value in first_weights["llm"].items():
        assert torch.equal(value, second_weights["llm"][name]), name


def test_same_seed_same_actions_and_scores():
    first, second = tiny_pg(seed=3), tiny_pg(seed=3)
    for agent in (first, second):
        agent.learn(maze_envs(), 16, NullHooks())
    prompts = first.policy.prompts(MAZE_OBSERVATIONS)
    assert torch.equal(first.policy.score(prompts), second.policy.score(prompts))
    np.testing.assert_array_equal(first.act(MAZE_OBSERVATIONS, greedy=False), second.act(MAZE_OBSERVATIONS, greedy=False))
    np.testing.assert_array_equal(first.act(MAZE_OBSERVATIONS), second.act(MAZE_OBSERVATIONS))


@pytest.mark.parametrize("finetune", ["head", "lora", "full"])
def test_training_changes_only_what_it_should(finetune):
    agent = tiny_pg(llm={"finetune": finetune, "trained_layers": 1})
    agent._build()
    before = {name: p.detach().clone() for name, p in agent.policy.model.named_parameters()}
    agent.learn(maze_envs(), 16, NullHooks())
    changed = {name for name, p in agent.policy.model.named_parameters() if not torch.equal(p, before[name])}
    assert changed, "nothing trained"
    if finetune == "head":
        assert all(name.startswith("model.layers.3.") for name in changed), changed
    if finetune == "lora":
        assert all("lora_" in name for name in changed), changed
    counters = agent.policy.scorer.counters
    # backward passes count twice their forward: more than 2 * params per token overall
    assert counters.llm_flops > 2 * counters.layer_params * counters.llm_tokens


def test_head_cache_gives_the_scores_of_a_full_forward():
    """Lower-layer states kept from collection, re-padded in another batch, give the same scores (fp32)."""
    agent = tiny_pg(llm={"trained_layers": 2, "autocast": None})
    agent._build()
    rollout = _RolloutPrompts(agent)
    prompts = agent.policy.prompts(MAZE_OBSERVATIONS)
    rollout.index(prompts[:1])
    rollout.index(prompts)  # other lengths, other padding
    with torch.no_grad():
        cached_scores, cached_values, _ = rollout.forward_with_grad(np.array([2, 0, 1]))
        full = agent.policy.scorer.score([prompts[2], prompts[0], prompts[1]], agent.actions)
    torch.testing.assert_close(cached_scores, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached_values, rollout.values[[2, 0, 1]], atol=1e-5, rtol=0)


def _forward_and_grads(fast: bool, autocast):
    agent = tiny_pg(fast_path=fast, llm={"trained_layers": 2, "autocast": autocast})
    agent._build()
    prompts = agent.policy.prompts(MAZE_OBSERVATIONS)
    scores, values, _ = agent._forward(prompts)
    (scores.sum() + values.sum()).backward()
    return scores.detach(), values.detach(), [p.grad.clone() for p in agent.llm_parameters]


def test_fast_path_gives_the_earlier_paths_scores_and_gradients():
    """fast_path (run-wide frozen states, eager attention, last layer only where read) = the earlier path, in fp32."""
    scores, values, grads = _forward_and_grads(False, None)
    fast_scores, fast_values, fast_grads = _forward_and_grads(True, None)
    torch.testing.assert_close(fast_scores, scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast_values, values, atol=1e-6, rtol=0)
    assert len(fast_grads) == len(grads) > 0
    for fast, earlier in zip(fast_grads, grads):
        torch.testing.assert_close(fast, earlier, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("autocast", [None, "bfloat16"])
def test_low_memory_changes_no_bit(autocast, monkeypatch):
    """low_memory (activation checkpointing) gives the same training, bit for bit, in fp32 and bf16. Its mapped
    blocks (process-wide, slower allocation) are left out here: tests/test_llm_scoring.py checks them alone."""
    monkeypatch.setattr("llmrl_bench.agents.llm_pg.map_large_blocks", lambda: True)
    trained = []
    for recompute in (False, True):
        agent = tiny_pg(low_memory=recompute, llm={"trained_layers": 2, "autocast": autocast})
        agent.learn(maze_envs(), 32, NullHooks())
        trained.append({name: p.detach().clone() for name, p in agent.policy.model.named_parameters() if p.requires_grad})
        trained[-1]["value_head"] = torch.cat([p.detach().flatten() for p in agent.value_head.parameters()])
    assert trained[0].keys() == trained[1].keys() and len(trained[0]) > 1
    assert all(torch.equal(trained[0][name], trained[1][name]) for name in trained[0])


def test_low_memory_keeps_less_for_the_backward(monkeypatch):
    """The autograd graph of one update forward saves less with low_memory."""
    monkeypatch.setattr("llmrl_bench.agents.llm_pg.map_large_blocks", lambda: True)
    sizes = []
    for recompute in (False, True):
        agent = tiny_pg(low_memory=recompute, llm={"trained_layers": 2, "autocast": None})
        agent._build()
        prompts = agent.policy.prompts(MAZE_OBSERVATIONS)
        saved: list[int] = []

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            saved.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            scores, values, _ = agent._forward(prompts)
        sizes.append(sum(saved))
    assert sizes[1] < 0.5 * sizes[0], sizes


def test_frozen_weights_in_bf16_give_autocasts_bits():
    """Holding the frozen linears in bf16 changes no bit under bf16 autocast, and the embedding keeps its dtype."""
    from llmrl_bench.llm import ActionScorer, load_model
    from llmrl_bench.llm.model import hold_frozen_weights_in

    model, tokenizer = load_model("tiny-random", device="cpu", cached=False)
    model.requires_grad_(False)
    scorer = ActionScorer(model, tokenizer)
    prompts = [f"Observation: {o}\nAction:" for o in MAZE_OBSERVATIONS]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = scorer.score(prompts, ["go forward", "turn left"])
        assert hold_frozen_weights_in(model, torch.bfloat16) > 0
        after = scorer.score(prompts, ["go forward", "turn left"])
    assert torch.equal(before, after)
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert model.get_output_embeddings().weight.dtype == torch.bfloat16


@pytest.mark.parametrize("autocast, held", [("bfloat16", torch.bfloat16), (None, torch.float32)])
def test_frozen_policy_holds_its_weights_in_the_autocast_dtype_with_the_same_scores(autocast, held):
    """A zero-shot policy's shared model keeps its linears in the autocast dtype; a private float32 copy scores alike."""
    from llmrl_bench.agents.llm_policy import LLMConfig, LLMPolicy
    from llmrl_bench.llm.model import count_parameters, load_model

    llm = LLMConfig(model="tiny-random", device="cpu", autocast=autocast)
    frozen = LLMPolicy(llm, ["go forward", "turn left"], [2, 0], "reach the goal", seed=0)
    private = LLMPolicy(llm, ["go forward", "turn left"], [2, 0], "reach the goal", seed=0, trainable=True)
    probabilities = frozen.action_probabilities(MAZE_OBSERVATIONS)
    assert np.array_equal(probabilities, private.action_probabilities(MAZE_OBSERVATIONS))
    assert frozen.model.get_output_embeddings().weight.dtype == held
    assert private.model.get_output_embeddings().weight.dtype == torch.float32
    assert count_parameters(frozen.model) == count_parameters(load_model("tiny-random", cached=False)[0])


def test_frozen_states_are_kept_for_the_run_and_bounded():
    agent = tiny_pg(llm={"trained_layers": 1})
    agent._build()
    prompts = agent.policy.prompts(MAZE_OBSERVATIONS)
    first = agent.frozen.rows(prompts)
    assert agent.frozen.rows(prompts[::-1])[0] is first[-1]  # computed once, whatever the batch
    row_bytes = max(r.numel() * r.element_size() for r in first)
    agent.frozen.max_bytes = row_bytes
    agent.frozen.restore(dict(agent.frozen.states))
    assert len(agent.frozen.states) == 1 and agent.frozen.bytes <= row_bytes



@pytest.mark.parametrize("agent", ["llm_zero_shot", "llm_pg"])
def test_save_and_load(tmp_path, agent):
    envs = maze_envs()
    settings = {"n_envs": 4, "n_steps": 4, "batch_size": 16, "n_epochs": 1, "learning_rate": 1e-2} if agent == "llm_pg" else {"n_envs": 4}
    trained = build_agent(agent, envs, 0, llm={"model": "tiny-random"}, **settings)
    trained.learn(envs, 16, NullHooks())
    trained.save(tmp_path / "policy")
    restored = build_agent(agent, envs, 1, llm={"model": "tiny-random"}, **settings)
    restored.load(tmp_path / "policy")
    prompts = trained.policy.prompts(MAZE_OBSERVATIONS)
    torch.testing.assert_close(restored.policy.score(prompts), trained.policy.score(prompts), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(restored.act(MAZE_OBSERVATIONS), trained.act(MAZE_OBSERVATIONS))


def test_zero_shot_does_not_learn(make_config, tmp_path):
    cfg = make_config(*agent_overrides("llm_zero_shot"), "env=maze", *SMALL_RUN, "budget.num_evals=2", f"results_dir={tmp_path}")
    run(cfg)
    [result_file] = tmp_path.glob("runs/*/result.json")
    curve = json.loads(result_file.read_text())["curve"]
    assert len({(p["train_return"], p["held_out_return"]) for p in curve}) == 1


def test_candidate_actions():
    minigrid, cartpole = gym.spaces.Discrete(7), gym.spaces.Discrete(2)
    actions, ids, goal = candidate_actions(None, None, None, minigrid)
    assert actions[:3] == ["turn left", "turn right", "go forward"] and ids == list(range(7)) and goal == ""
    assert candidate_actions(None, None, None, cartpole) == (["push the cart left", "push the cart right"], [0, 1], CARTPOLE_GOAL)
    assert candidate_actions(["go forward", "turn left"], [2, 0], "g", minigrid) == (["go forward", "turn left"], [2, 0], "g")
    with pytest.raises(ValueError, match="action_ids"):
        candidate_actions(["go forward", "turn left"], [2, 7], None, minigrid)
    with pytest.raises(ValueError, match="action_ids"):
        candidate_actions(["go forward", "turn left"], None, None, gym.spaces.Discrete(1))


def test_acts_with_env_action_ids():
    envs = maze_envs()
    agent = build_agent("llm_zero_shot", envs, 0, llm={"model": "tiny-random", "temperature": 5.0},
                        actions=["go forward", "turn left"], action_ids=[2, 0])
    actions = agent.act(MAZE_OBSERVATIONS * 20, greedy=False)
    assert set(actions) == {0, 2}


def test_novelty_bonus_pays_first_visits_of_each_episode():
    seen = [{"a"}, {"x"}]
    steps = [  # (observations, autoreset) -> expected bonus
        ((["b", "x"], [False, False]), [0.5, 0.0]),  # env 0 moved somewhere new; env 1 bumped a wall
        ((["b", "y"], [False, False]), [0.0, 0.5]),
        ((["a", "x"], [False, False]), [0.0, 0.0]),  # back where each started
        ((["a", "x"], [True, False]), [0.0, 0.0]),  # env 0 reset: a new episode begins at "a"
        ((["b", "z"], [False, False]), [0.5, 0.5]),  # "b" is new again in env 0's new episode
    ]
    for (observations, autoreset), expected in steps:
        np.testing.assert_array_equal(novelty_bonus(observations, np.array(autoreset), seen, 0.5), expected)


def test_novelty_bonus_changes_training():
    trained, logs = {}, {}
    for bonus in (0.0, 0.1):
        agent = tiny_pg(novelty_bonus=bonus)
        hooks = RecordingHooks()
        agent.learn(maze_envs(), 32, hooks)
        trained[bonus] = {name: p.detach().clone() for name, p in agent.policy.model.named_parameters() if p.requires_grad}
        logs[bonus] = [values for _, values in hooks.logs]
    assert all("charts/novelty_bonus_per_step" not in values for values in logs[0.0])
    assert all(0 < values["charts/novelty_bonus_per_step"] <= 0.1 for values in logs[0.1])
    assert any(not torch.equal(value, trained[0.0][name]) for name, value in trained[0.1].items())


def test_eval_sampling_samples_from_its_own_generator():
    """``llm.eval_sampling``: evaluation samples the softmax, repeats per seed and leaves the training RNG alone."""
    envs = maze_envs()
    observations = MAZE_OBSERVATIONS * 30

    def zero_shot(eval_sampling: bool) -> LLMZeroShot:
        llm = {"model": "tiny-random", "temperature": 5.0, "eval_sampling": eval_sampling}
        return build_agent("llm_zero_shot", envs, 0, llm=llm)

    argmax, first, second = zero_shot(False), zero_shot(True), zero_shot(True)
    greedy_actions = argmax.act(observations)
    sampled = first.act(observations)
    assert len(set(sampled.tolist())) > len(set(greedy_actions.tolist()))  # the argmax repeats one action per prompt
    np.testing.assert_array_equal(sampled, second.act(observations))
    # Training draws match an agent that never evaluated by sampling.
    np.testing.assert_array_equal(first.act(observations, greedy=False), argmax.act(observations, greedy=False))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("agent=llm_pg", "repr=vector"), "repr=vector is not supported by agent=llm_pg; allowed: text"),
        (("agent=llm_zero_shot", "llm.model=no-such-model"), "llm.model='no-such-model' is not a known model"),
        (("agent=llm_pg", "llm.model=/no/such/model/dir"), "llm.model='/no/such/model/dir' is not a known model or an existing path"),
        (("agent=llm_pg", "llm.autocast=float64"), "llm.autocast='float64' is not one of auto, bfloat16, float16, null"),
        (("agent=llm_pg", "agent.llm.model=tiny-random"), "agent.llm.model is set at the top level now: use llm.model=tiny-random"),
        (("-m", "agent=llm_zero_shot,llm_pg", "agent.llm.device=cpu"), "agent.llm.device is set at the top level now: use llm.device=cpu"),
        (("agent=dqn", "repr=llm_embed", "repr.llm.model=tiny-random"), "repr.llm.model is set at the top level now: use llm.model=tiny-random"),
        (("agent=llm_pg", "agent.llm.finetune=banana"), "banana"),
        (("agent=llm_pg", "agent.llm.temperature=0"), "must be > 0 for llm_pg"),
        (("agent=llm_zero_shot", "agent.llm.eval_sampling=true", "agent.llm.temperature=0"), "eval_sampling=true needs agent.llm.temperature > 0, got 0"),
        (("agent=dqn", "repr=llm_embed", "llm.model=nope"), "llm.model='nope' is not a known model"),
    ],
)
def test_bad_input_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_command_line(list(overrides))
    assert message in str(error.value) and "\n" not in str(error.value)
    if "banana" in message:
        assert all(value in str(error.value) for value in ("full", "lora", "head"))


def test_bad_input_exits_before_writing(tmp_path):
    result = run_cli("agent=llm_pg", "agent.llm.finetune=banana", f"results_dir={tmp_path / 'results'}", timeout=120)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "results").exists()


def test_llm_embed_features_and_cache():
    suite = MazeSuite(train_sizes=[7], held_out_sizes=[7])
    representation = LLMEmbedRepresentation(llm={"model": "tiny-random"})
    assert representation.provenance() == {}  # nothing loaded yet
    env = representation.wrap(suite.make("train"), suite)
    assert env.observation_space.shape == (64,)
    first, _ = env.reset(seed=0)
    again, _ = env.reset(seed=0)
    assert first.dtype == np.float32 and env.observation_space.contains(first)
    np.testing.assert_array_equal(first, again)
    provenance = representation.provenance()
    assert provenance["llm_embed_cache_hit_rate"] == 0.5 and provenance["llm_tokens"] > 0


@pytest.mark.parametrize("env", ["maze", "cartpole"])
def test_llm_embed_feeds_classic_agents(make_config, tmp_path, env):
    cfg = make_config("agent=dqn", "repr=llm_embed", TINY, f"env={env}", *SMALL_RUN, f"results_dir={tmp_path}")
    assert run(cfg) is not None
    [result_file] = tmp_path.glob("runs/*/result.json")
    assert json.loads(result_file.read_text())["repr"] == "llm_embed"


def test_empty_batch():
    envs = maze_envs()
    agent = build_agent("llm_zero_shot", envs, 0, llm={"model": "tiny-random"})
    assert agent.act([]).shape == (0,)


def test_evaluate_argmax_replays_a_finished_run(make_config, tmp_path):
    """experiments/evaluate_argmax.py: an eval_sampling run's final policy, re-evaluated by its argmax."""
    module = load_experiment("evaluate_argmax")
    run(make_config(*agent_overrides("llm_pg"), "env=maze", *SMALL_RUN, "agent.llm.eval_sampling=true", f"results_dir={tmp_path}"))
    [run_dir] = tmp_path.glob("runs/*")
    first, second = module.argmax_returns(run_dir), module.argmax_returns(run_dir)
    assert first == second  # the argmax has no randomness
    agent, seed, train, held_out = first
    assert (agent, seed) == ("llm_pg", 0) and 0.0 <= train <= 1.0 and 0.0 <= held_out <= 1.0


@pytest.mark.parametrize("overrides, section", [(("agent=llm_pg",), "agent"), (("agent=llm_zero_shot",), "agent"),
                                                 (("agent=dqn", "repr=llm_embed"), "repr")])
def test_top_level_llm_reaches_every_model_user(make_config, overrides, section):
    """Every field of the top-level ``llm`` node is wired into the component that runs the model."""
    values = {"model": "tiny-random", "device": "cpu", "dtype": "bfloat16", "autocast": "float16"}
    assert set(values) == set(MODEL_FIELDS)
    cfg = make_config(*overrides, *(f"llm.{key}={value}" for key, value in values.items()))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert {key: resolved[section]["llm"][key] for key in MODEL_FIELDS} == values


def test_classic_agents_ignore_the_llm_node(make_config):
    """``llm.*`` changes neither a classic run's config sections nor its run_id."""
    plain = experiment_config(make_config("agent=dqn"))
    with_llm = experiment_config(make_config("agent=dqn", "llm.device=cpu", "llm.model=tiny-random"))
    assert results.run_id(plain) == results.run_id(with_llm)
    llm_run = experiment_config(make_config("agent=llm_pg"))
    assert results.run_id(llm_run) != results.run_id(experiment_config(make_config("agent=llm_pg", "llm.device=cpu")))


@pytest.mark.parametrize("argv", [
    ["-m", "agent=dqn,llm_pg", "llm.device=cpu", "seed=0"],
    ["-m", "agent=llm_zero_shot,llm_pg", "llm.model=tiny-random", "seed=0", "debug=smoke"],
])
def test_sweeps_set_the_llm_node(argv):
    _, jobs = check_command_line(argv)
    assert jobs == 2


@pytest.mark.parametrize("fast_bf16, expected", [(True, torch.bfloat16), (False, None)])
def test_autocast_auto_follows_the_cpu(monkeypatch, fast_bf16, expected):
    monkeypatch.setattr(settings, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert settings.resolve_autocast("auto", "cpu") is expected
    assert settings.resolve_autocast("bfloat16", "cpu") is torch.bfloat16
    assert settings.resolve_autocast(None, "cpu") is None
    assert settings.autocast_name(settings.LLMModelConfig(), "cpu") == ("bfloat16" if fast_bf16 else "off")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    for index, (flags, expected) in enumerate((("fpu sse avx512f", False), ("fpu avx512_bf16", True), ("fpu amx_bf16", True))):
        cpuinfo = tmp_path / f"cpuinfo-{index}"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert settings.cpu_has_fast_bf16(cpuinfo) is expected
    assert settings.cpu_has_fast_bf16(tmp_path / "missing") is False


def test_migration_to_the_top_level_llm_node(make_config):
    """experiments/migrate_llm_config.py: an old-layout run gets today's config and run_id; the committed ones are migrated."""
    module = load_experiment("migrate_llm_config")
    config = experiment_config(make_config("agent=llm_pg", "env=maze"))
    old = {**config, "agent": {**config["agent"], "llm": {**config["agent"]["llm"], "autocast": "bfloat16"}}}
    del old["llm"]
    record = {"run_id": results.run_id(old), "config": old, "provenance": {}}
    fresh = module.migrated(record)
    assert fresh["config"] == config and fresh["run_id"] == results.run_id(config) != record["run_id"]
    assert fresh["provenance"] == {"llm_autocast": "bfloat16", "llm_device": "cpu"}
    assert module.migrated(fresh) == fresh
    assert module.migrate(REPO / "results" / "reference", check=True) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("agent", LLM_AGENTS)
def test_llm_agents_run_on_the_gpu(make_config, tmp_path, agent):
    """``llm.device=cuda``: model, scoring and the PPO update run on the GPU; the run completes with finite numbers."""
    cfg = make_config(*agent_overrides(agent), "llm.device=cuda", "env=maze", *SMALL_RUN, f"results_dir={tmp_path}")
    assert run(cfg) is not None
    [result_file] = tmp_path.glob("runs/*/result.json")
    provenance = json.loads(result_file.read_text())["provenance"]
    assert provenance["llm_device"].startswith("cuda") and provenance["llm_tokens"] > 0
    assert provenance["llm_autocast"] in ("bfloat16", "float16")
    if agent == "llm_pg":
        pg = tiny_pg(llm={"device": "cuda"})
        pg.learn(maze_envs(), 32, NullHooks())
        assert {p.device.type for p in pg.llm_parameters} == {"cuda"}
        assert {p.device.type for p in pg.value_head.parameters()} == {"cuda"}
        assert all(torch.isfinite(p).all() for p in pg.llm_parameters)
        assert all(float(state["step"]) > 0 for state in pg.optimizer.state_dict()["state"].values())  # it trained
