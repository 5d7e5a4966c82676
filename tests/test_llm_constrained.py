"""``llm.action_mode=constrained`` on the ``tiny-random`` model: decoding restricted to the listed actions.

An action's probability is the product, over its tokens, of the token's probability renormalised over the
tokens that continue some listed action after the same prefix (what a decoder masked to the listed actions
samples). The scorer computes it from its one shared-prefix forward; these tests check it against decoding
token by token.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed (pip install -e .[llm])")

from omegaconf import OmegaConf

from llmrl_bench.agents.base import NullHooks
from llmrl_bench.cli import check_command_line
from llmrl_bench.errors import ConfigError
from llmrl_bench.llm import load_model
from llmrl_bench.llm.scoring import ActionScorer, build_prompt
from llmrl_bench.results import run_id
from llmrl_bench.runner import run

#: MiniGrid's actions: "turn left"/"turn right" and "drop"/"done" share their first tokens.
ACTIONS = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done"]
OBSERVATIONS = ["You face north. A wall 1 step ahead.", "You face east. Nothing in sight, a door far away.", "A key."]
PROMPTS = [build_prompt("reach the goal", o, ACTIONS, history_length=0) for o in OBSERVATIONS]
TINY_RUN = ("env=maze", "llm.model=tiny-random", "llm.action_mode=constrained", "env.max_steps_factor=1", "debug=smoke",
            "env.held_out_sizes=[7]", "budget.env_steps=32", "budget.num_evals=1", "budget.eval_episodes=1",
            "budget.held_out_episodes=1", "agent.n_envs=4")


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


def decoded_log_probs(tiny, prompt: str, actions: list[str]) -> torch.Tensor:
    """Each action's log-probability under decoding masked to the actions, one plain forward per token."""
    model, tokenizer = tiny
    prompt_ids = tokenizer(prompt)["input_ids"]
    sequences = [tokenizer(" " + a, add_special_tokens=False)["input_ids"] for a in actions]
    totals = []
    for sequence in sequences:
        total = 0.0
        for t, token in enumerate(sequence):
            allowed = sorted({other[t] for other in sequences if len(other) > t and other[:t] == sequence[:t]})
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([prompt_ids + sequence[:t]])).logits[0, -1].float()
            total += float(logits[token] - logits[allowed].logsumexp(-1))
        totals.append(total)
    return torch.tensor(totals)


def test_constrained_scores_are_masked_decodings_log_probs(tiny):
    scorer = ActionScorer(*tiny, constrained=True)
    with torch.no_grad():
        scores = scorer.score(PROMPTS, ACTIONS)
        unconstrained = ActionScorer(*tiny).score(PROMPTS, ACTIONS)
    for row, prompt in enumerate(PROMPTS):
        torch.testing.assert_close(scores[row], decoded_log_probs(tiny, prompt, ACTIONS), atol=1e-4, rtol=0)
    torch.testing.assert_close(scores.exp().sum(-1), torch.ones(len(PROMPTS)), atol=1e-5, rtol=0)
    assert (unconstrained.exp().sum(-1) < 0.5).all()  # the full-vocabulary scores are not a distribution


@pytest.mark.parametrize("needed_only", [False, True])
def test_constrained_split_forward_equals_plain_forward(tiny, needed_only):
    """llm_pg's fast path (frozen lower layers, the last layer only where read) scores the same."""
    scorer = ActionScorer(*tiny, constrained=True)
    batch = scorer.encode(PROMPTS, ACTIONS)
    with torch.no_grad():
        plain = scorer.forward(batch)
        lower = scorer.forward_lower(batch, 2)
        split = scorer.forward_upper(batch, lower, 2, needed_only=needed_only)
    torch.testing.assert_close(split.scores, plain.scores, atol=1e-5, rtol=0)


def test_constrained_scoring_rejects_actions_that_start_one_another(tiny):
    with pytest.raises(ValueError, match="no other one starts with"):
        ActionScorer(*tiny, constrained=True).score(PROMPTS[:1], ["turn", "turn left"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("agent=llm_zero_shot", "llm.action_mode=constrained", "agent.actions=[turn,turn left]", "agent.action_ids=[0,1]"),
         "llm.action_mode=constrained: agent.actions lists 'turn' and 'turn left'"),
        (("agent=llm_pg", "llm.action_mode=constrained", "agent.llm.prefix_cache=false"),
         "llm.action_mode=constrained needs agent.llm.prefix_cache=true"),
    ],
)
def test_bad_constrained_settings_fail_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_command_line(list(overrides))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_constrained_is_its_own_run_identity(make_config):
    def identity(*overrides):
        return run_id(OmegaConf.to_container(make_config("agent=llm_zero_shot", *overrides), resolve=True))

    assert len({identity(), identity("llm.action_mode=constrained"), identity("llm.action_mode=generate")}) == 3


@pytest.mark.parametrize("agent", ["llm_zero_shot", "llm_pg"])
def test_constrained_runs_record_both_evaluation_modes(make_config, tmp_path, agent):
    extra = ("agent.n_steps=8", "agent.batch_size=16", "agent.n_epochs=1") if agent == "llm_pg" else ()
    run(make_config(f"agent={agent}", *TINY_RUN, *extra, f"results_dir={tmp_path}"))
    [result_file] = tmp_path.glob("runs/*/result.json")
    result = json.loads(result_file.read_text())
    assert result["config"]["agent"]["llm"]["action_mode"] == "constrained"
    assert set(result["curve"][-1]["modes"]) == {"greedy", "sampled"}


def test_llm_pg_constrained_update_changes_the_trained_layers():
    from tests.test_llm_agents import maze_envs, tiny_pg

    agent = tiny_pg(llm={"action_mode": "constrained", "trained_layers": 1})
    agent._build()
    assert agent.policy.scorer.constrained and agent._fast
    before = {name: p.detach().clone() for name, p in agent.policy.model.named_parameters() if p.requires_grad}
    agent.learn(maze_envs(), 16, NullHooks())
    assert [name for name, p in agent.policy.model.named_parameters() if p.requires_grad and not torch.equal(p, before[name])]
    probabilities = agent.action_probabilities(["You face north. A wall 1 step ahead."])
    assert abs(probabilities.sum() - 1.0) < 1e-6
