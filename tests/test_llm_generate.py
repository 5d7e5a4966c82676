"""``llm.action_mode=generate`` on the ``tiny-random`` model: decoding, its memo, sequence log-probs, llm_pg, options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed (pip install -e .[llm])")

from omegaconf import OmegaConf

from llmrl_bench.agents.llm_policy import LLMConfig, LLMPolicy
from llmrl_bench.cli import check_command_line
from llmrl_bench.errors import ConfigError
from llmrl_bench.llm import load_model
from llmrl_bench.llm.generation import INSTRUCTION, ActionGenerator, NextTokenMemo
from llmrl_bench.llm.model import LLMCounters
from llmrl_bench.llm.scoring import ActionScorer, build_prompt
from llmrl_bench.results import run_id
from llmrl_bench.runner import run
from tests.conftest import run_cli

ACTIONS = ["go forward", "turn left", "turn right"]
OBSERVATIONS = ["You face north. A wall 1 step ahead.", "You face east. Nothing in sight.", "You face north. A wall 1 step ahead."]
PROMPTS = [build_prompt("reach the goal", o, ACTIONS, history_length=0, instruction=INSTRUCTION) for o in OBSERVATIONS]
#: Tiny generate-mode runs: short episodes (49 steps on the 7x7 maze), one short evaluation.
TINY_GENERATE = ("env=maze", "llm.model=tiny-random", "llm.action_mode=generate", "env.max_steps_factor=1", "debug=smoke",
                 "env.held_out_sizes=[7]", "budget.env_steps=32", "budget.num_evals=1", "budget.eval_episodes=1", "budget.held_out_episodes=1",
                 "agent.n_envs=4")
SMALL_PG = ("agent.n_steps=8", "agent.batch_size=16", "agent.n_epochs=1")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as runs use (``torch_threads=1``): on a shared 2-core machine more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


def decoder(tiny, memo: NextTokenMemo | None) -> ActionGenerator:
    model, tokenizer = tiny
    return ActionGenerator(model, tokenizer, LLMCounters.for_model(model), memo)


def sample(generator: ActionGenerator, seed: int, temperature: float = 1.0):
    return generator.generate(PROMPTS, generator.max_new_tokens(ACTIONS), temperature, torch.Generator().manual_seed(seed))


def test_score_mode_prompt_is_unchanged():
    policy = LLMPolicy(LLMConfig(model="tiny-random"), ACTIONS, [2, 0, 1], "reach the goal", seed=0)
    assert policy.prompt("obs") == "Goal: reach the goal\nPossible actions: go forward, turn left, turn right\nObservation: obs\nAction:"
    policy.llm.action_mode = "generate"
    assert policy.prompt("obs").splitlines()[2] == INSTRUCTION


def test_same_seed_same_generation_other_seed_differs(tiny):
    first, again, other = sample(decoder(tiny, None), 0), sample(decoder(tiny, None), 0), sample(decoder(tiny, None), 1)
    assert first.token_ids == again.token_ids and torch.equal(first.log_probs, again.log_probs)
    assert first.token_ids != other.token_ids
    assert first.token_ids[0] != first.token_ids[2]  # equal prompts, independent draws


def test_memoised_generation_equals_unmemoised(tiny):
    memo = NextTokenMemo()
    memoised = decoder(tiny, memo)
    first = sample(memoised, 5)
    misses = memo.misses
    second = sample(memoised, 5)  # every (prompt, prefix) is known now
    assert memo.misses == misses and memo.hits > 0
    plain = sample(decoder(tiny, None), 5)
    assert first.token_ids == second.token_ids == plain.token_ids
    torch.testing.assert_close(first.log_probs, plain.log_probs, rtol=0, atol=1e-5)
    greedy = memoised.generate(PROMPTS, memoised.max_new_tokens(ACTIONS), 1.0, None)
    assert greedy.token_ids == decoder(tiny, None).generate(PROMPTS, memoised.max_new_tokens(ACTIONS), 1.0, None).token_ids


def test_known_prompts_decode_new_branches_on_their_kept_kv_caches(tiny):
    """A later call's draws that leave the memo's branches run only their prefix tokens, with the same result."""
    memo = NextTokenMemo()
    memoised = decoder(tiny, memo)
    sample(memoised, 5)
    assert list(memo.prompt_states) == list(dict.fromkeys(PROMPTS))
    tokens = memoised.counters.llm_tokens
    prompt_tokens = len(memoised._ids(PROMPTS[0]))
    seeds = [seed for seed in range(6, 40) if sample(decoder(tiny, None), seed).token_ids != sample(decoder(tiny, None), 5).token_ids]
    later = sample(memoised, seeds[0])
    assert 0 < memoised.counters.llm_tokens - tokens < prompt_tokens  # no prompt ran again
    plain = sample(decoder(tiny, None), seeds[0])
    assert later.token_ids == plain.token_ids
    torch.testing.assert_close(later.log_probs, plain.log_probs, rtol=0, atol=1e-5)


def test_kept_kv_caches_serve_prompts_after_the_memo_is_emptied(tiny):
    """A memo emptied at its byte limit keeps the prompts' caches: their first tokens come from those."""
    memo = NextTokenMemo(max_bytes=1)  # every store empties the memo first
    memoised = decoder(tiny, memo)
    for seed in (5, 6, 7):
        generated, plain = sample(memoised, seed), sample(decoder(tiny, None), seed)
        assert generated.token_ids == plain.token_ids
        torch.testing.assert_close(generated.log_probs, plain.log_probs, rtol=0, atol=1e-5)
    assert len(memo.entries) <= 3 and len(memo.prompt_states) == 2


def test_kept_kv_caches_stay_within_their_byte_limit(tiny):
    memo = NextTokenMemo()
    sample(decoder(tiny, memo), 5)
    one = next(iter(memo.prompt_states.values())).nbytes
    memo.clear()
    memo.max_prompt_state_bytes = one
    sample(decoder(tiny, memo), 5)
    assert len(memo.prompt_states) == 1 and memo.prompt_state_bytes <= one
    memo.clear()
    assert not memo.prompt_states and memo.prompt_state_bytes == 0


def naive_sequence_stats(tiny, prompt: str, ids: tuple[int, ...], temperature: float) -> tuple[float, float]:
    """Plain HF forward of prompt + ids: summed log-softmax(logits / T) at the ids, and summed entropies."""
    model, tokenizer = tiny
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + list(ids)])).logits[0].float()
    log_probs = (logits / temperature).log_softmax(-1)[len(prompt_ids) - 1 : -1]
    entropy = -(log_probs.exp() * log_probs).sum(-1).sum()
    return float(log_probs[torch.arange(len(ids)), torch.tensor(ids)].sum()), float(entropy)


def test_sequence_log_probability_equals_a_naive_computation(tiny):
    temperature = 0.7
    generated = sample(decoder(tiny, NextTokenMemo()), 2, temperature)
    naive = [naive_sequence_stats(tiny, p, ids, temperature) for p, ids in zip(PROMPTS, generated.token_ids)]
    # The decoder's own log-probs (KV cache, memo) ...
    np.testing.assert_allclose(generated.log_probs.numpy(), [n[0] for n in naive], rtol=0, atol=1e-4)
    # ... and the PPO update's: the generated ids scored as candidates by the packed ActionScorer.
    scorer = ActionScorer(*tiny)
    batch = scorer.encode_ids(PROMPTS, [[list(ids)] for ids in generated.token_ids])
    with torch.no_grad():
        output = scorer.forward(batch, temperature, token_stats=True)
    np.testing.assert_allclose(output.scores[:, 0].numpy(), [n[0] for n in naive], rtol=0, atol=1e-4)
    np.testing.assert_allclose(output.entropies[:, 0].numpy(), [n[1] for n in naive], rtol=0, atol=1e-4)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_stats_equal_log_softmax_and_entropy_and_their_gradients(monkeypatch, temperature):
    """The chunked head of generate mode's update against plain autograd through the full logits."""
    from llmrl_bench.llm import scoring

    monkeypatch.setattr(scoring, "TOKEN_STATS_CHUNK", 3)  # 8 rows: three chunks, the last one short
    generator = torch.Generator().manual_seed(0)
    normed = torch.randn(8, 16, generator=generator).requires_grad_(True)
    weight = torch.randn(50, 16, generator=generator)
    sources, targets = torch.tensor([0, 0, 2, 3, 5, 7, 7, 7]), torch.tensor([1, 4, 4, 9, 49, 0, 0, 2])
    weights = [torch.randn(n, generator=generator) for n in (8, 8, 8)]

    log_norm, entropy, target = scoring.TokenStats.apply(normed, weight, temperature, sources, targets)
    logits = normed @ weight.T / temperature
    log_probs = logits.log_softmax(-1)
    expected = (logits.logsumexp(-1), -(log_probs.exp() * log_probs).sum(-1), logits[sources, targets])
    for value, reference in zip((log_norm, entropy, target), expected):
        torch.testing.assert_close(value, reference, rtol=0, atol=1e-5)
    grad = torch.autograd.grad(sum((w * v).sum() for w, v in zip(weights, (log_norm, entropy, target))), normed)[0]
    reference = torch.autograd.grad(sum((w * v).sum() for w, v in zip(weights, expected)), normed)[0]
    torch.testing.assert_close(grad, reference, rtol=0, atol=1e-4)  # float32 rounding of values near 3


def test_invalid_outputs_fall_back_and_are_counted(tiny):
    for invalid_action, penalty, fallback in (("default", 0.0, 0), ("noop_penalty", 0.1, 2), ("resample", 0.0, 0)):
        llm = LLMConfig(model="tiny-random", action_mode="generate", invalid_action=invalid_action, format_penalty=penalty)
        policy = LLMPolicy(llm, ACTIONS + ["done"], [2, 0, 1, 3], "", seed=0)
        generated = policy.generate(PROMPTS, policy.generator, evaluation=False)
        assert generated.invalid.all()  # a random model writes no action
        assert (generated.choices == (3 if invalid_action == "noop_penalty" else fallback)).all()
        attempts = len(PROMPTS) * (2 if invalid_action == "resample" else 1)
        assert policy.parse_counts["invalid"] == attempts
        assert policy.counts()["llm_train_invalid_action_rate"] == 1.0


def test_llm_pg_generate_trains_and_records_invalid_actions(make_config, tmp_path):
    cfg = make_config("agent=llm_pg", *TINY_GENERATE, *SMALL_PG, "llm.format_penalty=0.1", f"results_dir={tmp_path}")
    run(cfg)
    [result_file] = tmp_path.glob("runs/*/result.json")
    result = json.loads(result_file.read_text())
    provenance = result["provenance"]
    assert provenance["llm_invalid_action_rate"] == 1.0  # tiny-random writes no action
    assert provenance["llm_parse_invalid"] >= 32 and provenance["llm_train_invalid_action_rate"] == 1.0
    assert 0 < provenance["llm_generation_cache_hit_rate"] < 1
    assert result["config"]["agent"]["llm"]["action_mode"] == "generate"


def test_llm_pg_generate_update_moves_the_sequence_log_probs(tiny):
    """One PPO update in generate mode changes the trained layers (the loss has a gradient path)."""
    from tests.test_llm_agents import tiny_pg

    agent = tiny_pg(llm={"action_mode": "generate", "trained_layers": 1})
    agent._build()
    before = {name: p.detach().clone() for name, p in agent.policy.model.named_parameters() if p.requires_grad}
    from llmrl_bench.agents.base import NullHooks
    from tests.test_llm_agents import maze_envs

    agent.learn(maze_envs(), 16, NullHooks())
    changed = [name for name, p in agent.policy.model.named_parameters() if p.requires_grad and not torch.equal(p, before[name])]
    assert changed


def test_score_is_identity_neutral_generate_is_not(make_config):
    def identity(*overrides):
        return run_id(OmegaConf.to_container(make_config("agent=llm_pg", *overrides), resolve=True))

    default = identity()
    assert identity("llm.action_mode=score", "llm.invalid_action=default", "llm.format_penalty=0") == default
    assert len({default, identity("llm.action_mode=generate"), identity("llm.invalid_action=resample"),
                identity("llm.format_penalty=0.1")}) == 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("agent=llm_pg", "llm.action_mode=banana"), "banana"),
        (("agent=llm_zero_shot", "llm.invalid_action=skip"), "skip"),
        (("agent=llm_pg", "llm.format_penalty=-1"), "llm.format_penalty=-1.0 must be a finite number >= 0"),
        (("agent=llm_pg", "llm.format_penalty=nan"), "llm.format_penalty=nan must be a finite number >= 0"),
        (("agent=llm_pg", "llm.invalid_action=noop_penalty"), "llm.invalid_action=noop_penalty needs llm.format_penalty > 0"),
        (("agent=llm_pg", "agent.llm.action_mode=generate"), "agent.llm.action_mode is set at the top level now: use llm.action_mode=generate"),
    ],
)
def test_bad_values_fail_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_command_line(list(overrides))
    assert message in str(error.value) and "\n" not in str(error.value)
    if message == "banana":
        assert "score" in str(error.value) and "generate" in str(error.value)
    if message == "skip":
        assert all(value in str(error.value) for value in ("default", "noop_penalty", "resample"))


def test_bad_action_mode_exits_2_before_writing(tmp_path):
    result = run_cli("agent=llm_pg", "llm.action_mode=banana", f"results_dir={tmp_path / 'results'}", timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "banana" in result.stderr and not (tmp_path / "results").exists()


def test_action_modes_table_compares_the_modes_per_agent():
    """The paper's table on the committed maze_llm runs plus generate-mode copies of them."""
    import copy
    from pathlib import Path

    from llmrl_bench import results
    from paper import tables

    loaded, _ = results.load_results(Path(__file__).resolve().parent.parent / "results" / "reference")
    scored = [run for run in loaded if run.sweep == "maze_llm"]  # score mode, both agents
    assert {run.agent for run in scored} == {"llm_pg", "llm_zero_shot"} and not tables.has_action_mode_runs(scored)
    generated = []
    for run in scored:
        copied = copy.deepcopy(run)
        copied.sweep = "maze_llm_actions"
        copied.config["agent"]["llm"]["action_mode"] = "generate"
        copied.provenance |= {"llm_invalid_action_rate": 0.5, "llm_eval_invalid_action_rate": 0.25}
        generated.append(copied)
        if run.agent == "llm_zero_shot":
            constrained = copy.deepcopy(copied)
            constrained.config["agent"]["llm"]["action_mode"] = "constrained"
            generated.append(constrained)
    assert tables.has_action_mode_runs(scored + generated)
    table = tables.action_modes_table(scored + generated, n_resamples=200)
    assert [row[1:3] for row in table.rows] == [("llm_pg", "generate"), ("llm_pg", "score"), ("llm_zero_shot", "constrained"),
                                                ("llm_zero_shot", "generate"), ("llm_zero_shot", "score")]
    by_mode = {row[1:3]: row for row in table.rows}
    assert by_mode[("llm_zero_shot", "score")][5] == str(len(scored[0].curve)) == "5"  # evaluations per run
    assert by_mode[("llm_pg", "generate")][6:10] == by_mode[("llm_pg", "score")][6:10]  # same returns copied
    assert by_mode[("llm_pg", "generate")][10].startswith("0.500") and by_mode[("llm_pg", "generate")][11].startswith("0.250")
    assert by_mode[("llm_pg", "score")][10:] == ("0 (score)", "0 (score)")
    assert by_mode[("llm_zero_shot", "constrained")][10:] == ("0 (constrained)", "0 (constrained)")
    # the protocol columns: final normalized greedy and sampled returns, as the equal-budget table reads them
    zero_shot = [run for run in scored if run.agent == "llm_zero_shot"]
    from paper import equal_budget
    sampled = [equal_budget.normalized_curve(run, "sampled")[1][-1] for run in zero_shot]
    assert by_mode[("llm_zero_shot", "score")][7].startswith(f"{np.mean(sorted(sampled)[1:-1]):.3f}")


class _StateAt:
    """Hooks that keep the agent's checkpoint state (encoded, saved and read back as a checkpoint is) at ``step``."""

    def __init__(self, agent, step: int):
        self.agent, self.step, self.state = agent, step, None

    def checkpoint_point(self, global_step: int) -> None:
        if global_step == self.step:
            import io

            from llmrl_bench import checkpoint

            buffer = io.BytesIO()
            torch.save(checkpoint.encode_state(self.agent.state_dict()), buffer)
            buffer.seek(0)
            self.state = checkpoint.decode_state(torch.load(buffer, weights_only=True))

    def on_step(self, *args) -> None: ...
    def on_episode(self, *args) -> None: ...
    def log(self, *args) -> None: ...


def test_llm_pg_generate_resumes_bit_exact():
    """Training interrupted after one rollout and resumed from its checkpoint state ends with the same weights."""
    from llmrl_bench.agents.base import NullHooks
    from tests.test_llm_agents import maze_envs, tiny_pg

    settings = {"llm": {"action_mode": "generate", "trained_layers": 1, "format_penalty": 0.1}}
    straight = tiny_pg(seed=4, **settings)
    straight.learn(maze_envs(), 48, NullHooks())
    interrupted = tiny_pg(seed=4, **settings)
    interrupted._build()
    hooks = _StateAt(interrupted, 16)
    interrupted.learn(maze_envs(), 48, hooks)
    resumed = tiny_pg(seed=4, **settings)
    resumed.load_state_dict(hooks.state)
    assert resumed.policy.memo.entries.keys() == hooks.state["policy"]["memo"].keys()
    resumed.learn(maze_envs(), 48, NullHooks())
    for (name, value), other in zip(straight._trained_weights().items(), resumed._trained_weights().values()):
        assert torch.equal(value, other), name
    assert straight.policy.counts()["llm_parse_invalid"] == resumed.policy.counts()["llm_parse_invalid"]


def test_llm_pg_generate_holds_its_frozen_weights_in_bf16_without_changing_a_bit(monkeypatch):
    """finetune=head in generate mode: the frozen linears are stored in the autocast dtype; training ends bit-identical."""
    import llmrl_bench.agents.llm_pg as llm_pg_module
    from llmrl_bench.agents.base import NullHooks
    from tests.test_llm_agents import maze_envs, tiny_pg

    settings = {"llm": {"action_mode": "generate", "trained_layers": 1, "autocast": "bfloat16"}}
    held = tiny_pg(seed=4, **settings)
    held.learn(maze_envs(), 32, NullHooks())
    assert held.policy.model.get_output_embeddings().weight.dtype == torch.bfloat16
    monkeypatch.setattr(llm_pg_module, "hold_frozen_weights_in", lambda model, dtype: 0)
    plain = tiny_pg(seed=4, **settings)
    plain.learn(maze_envs(), 32, NullHooks())
    assert plain.policy.model.get_output_embeddings().weight.dtype == torch.float32
    for (name, value), other in zip(held._trained_weights().items(), plain._trained_weights().values()):
        assert torch.equal(value, other), name
    untrained = tiny_pg(seed=4, **settings)
    untrained._build()
    assert not all(torch.equal(a, b) for a, b in zip(held._trained_weights().values(), untrained._trained_weights().values()))


def test_generate_fast_path_gives_the_earlier_paths_terms_and_gradients():
    """The rollout's frozen-layer table, laid out per minibatch (with eager upper layers and unpadded candidate
    lists), against the frozen layers run on the minibatch itself: same log-probs, entropies, values and gradients."""
    from llmrl_bench.agents.llm_pg import _GeneratedRows, _RolloutPrompts
    from tests.test_llm_agents import maze_envs, tiny_pg

    agent = tiny_pg(seed=2, llm={"action_mode": "generate", "trained_layers": 1, "autocast": None})  # float32
    agent._build()
    observations = [maze_envs().make().reset(seed=seed)[0] for seed in range(3)]
    prompts = agent.policy.prompts(observations)
    draws = [agent.policy.generate(prompts, agent.policy.generator, evaluation=False).token_ids for _ in range(2)]
    rollout = _RolloutPrompts(agent)
    positions = rollout.index(prompts + prompts + prompts[:1])
    sequences = draws[0] + draws[1] + draws[0][:1]  # two draws per prompt, one pair repeated
    assert len({(p, ids) for p, ids in zip(positions.tolist(), sequences)}) > len(prompts)

    results = []
    for table in (_GeneratedRows(agent, rollout.prompts, positions, sequences), None):
        agent.optimizer.zero_grad(set_to_none=True)
        terms = agent._generated_terms(rollout, positions, sequences, table)
        sum(term.sum() for term in terms).backward()
        results.append(([term.detach() for term in terms], [p.grad.clone() for p in agent.llm_parameters]))
    for fast, earlier in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(fast, earlier, rtol=1e-5, atol=1e-5)
    for fast, earlier in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(fast, earlier, rtol=1e-4, atol=1e-6)
