"""Every option of every config group composes, and the components instantiate."""

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class, instantiate
from omegaconf.errors import ConfigKeyError, ValidationError

from llmrl_bench.agents.base import Agent
from llmrl_bench.config import group_options
from llmrl_bench.envs.base import EnvSuite
from llmrl_bench.representations.base import Representation
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.runner import build_agent
from llmrl_bench.validation import check_config


@pytest.mark.parametrize("env", group_options("env"))
def test_every_env_option_instantiates(make_config, env):
    cfg = make_config(f"env={env}", "debug=smoke")
    suite = instantiate(cfg.env)
    assert isinstance(suite, EnvSuite)
    assert suite.name == env
    low, high = suite.score_range
    assert low < high
    assert suite.held_out_contexts, "every env needs a held-out split"


@pytest.mark.parametrize("repr_name", group_options("repr"))
def test_every_repr_option_instantiates(make_config, repr_name):
    cfg = make_config(f"repr={repr_name}", "debug=smoke")
    representation = instantiate(cfg.repr)
    assert isinstance(representation, Representation)
    assert representation.name == repr_name


@pytest.mark.parametrize("agent", group_options("agent"))
@pytest.mark.parametrize("env", ["cartpole", "maze"])
def test_every_agent_option_instantiates(make_config, agent, env):
    cfg = make_config(f"agent={agent}", f"env={env}", "debug=smoke")
    check_config(cfg)
    envs = RunEnvs(instantiate(cfg.env), instantiate(cfg.repr))
    built = build_agent(cfg.agent, envs, seed=0)
    assert isinstance(built, Agent)
    assert type(built) is get_class(cfg.agent._target_)


@pytest.mark.parametrize("group", ["budget", "logger", "debug", "experiment"])
def test_other_groups_compose(make_config, group):
    for option in group_options(group):
        make_config(f"{group}={option}")


def test_hparams_follow_agent_and_env(make_config):
    assert make_config("agent=dqn", "env=cartpole").budget.env_steps == 50_000
    assert make_config("agent=ppo", "env=cartpole").budget.env_steps == 100_000
    assert make_config("agent=dqn", "env=cartpole", "budget.env_steps=7").budget.env_steps == 7


def test_unknown_key_fails_at_composition(make_config):
    with pytest.raises(ConfigCompositionException):
        make_config("agent=dqn", "agent.not_a_hyperparameter=1")


def test_wrong_type_fails_at_composition(make_config):
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)):
        make_config("budget.env_steps=lots")
