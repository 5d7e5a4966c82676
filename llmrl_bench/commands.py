"""The suite's helpful commands: ``llmrl-bench list``, ``show`` and ``watch``, and ``--help``.

* ``list``: every agent, env, representation and experiment, one line each, read from
  ``conf/`` and the component registry (with the representations each agent accepts);
* ``show PATH``: a run's four headline metrics, or IQM [95 % CI] across seeds per
  agent × env × repr cell of a results folder (``llmrl_bench.stats``);
* ``watch RUN``: rebuilds a run's env and agent from its ``result.json``, loads its
  ``policy.pt`` and replays one evaluation episode as text frames (or a GIF).

Bad input (a missing path, a run without ``policy.pt``) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from llmrl_bench import metrics, registry, results
from llmrl_bench.config import CONFIG_DIR, CONFIG_NAME, RunConfig, group_options, register_configs
from llmrl_bench.envs.base import EVAL_SEED_OFFSET, TRAIN
from llmrl_bench.metrics import HEADLINE_METRICS
from llmrl_bench.agents.llm_policy import default_actions
from llmrl_bench.run_envs import RunEnvs
from llmrl_bench.runner import build_agent, experiment_config, run_with_status
from llmrl_bench.stats import iqm_across_seeds

PROG = "llmrl-bench"
SUBCOMMANDS = ("list", "show", "watch")
HELP_FLAGS = ("-h", "--help")
COMPONENT_GROUPS = {"agent": "agents", "env": "envs", "repr": "representations", "reward": "rewards"}
DESCRIPTION_WIDTH = 90  # descriptions are cut to keep one line per option

class CommandError(Exception):
    """Bad input to a command; its message is one line (exit code 2)."""


# ------------------------------------------------------------------- the registry


def _schema(group: str, option: str) -> type:
    """The registered schema that ``conf/<group>/<option>.yaml`` names in its defaults (``<name>_schema``)."""
    defaults = OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml").get("defaults", [])
    schema = next(item for item in defaults if isinstance(item, str) and item.endswith("_schema"))
    return registry.schemas(group)[schema.removesuffix("_schema")]


def _target_class(group: str, option: str) -> type:
    return get_class(_schema(group, option)._target_)


def _first_sentence(text: str) -> str:
    """The first sentence of a comment or docstring, without file references, cut to one line."""
    text = " ".join(text.replace("``", "").split())
    text = re.sub(r"\s*\([^()]*(?:\w/\w|\.py\b|\.md\b|\.yaml\b)[^()]*\)", "", text)
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    if len(sentence) > DESCRIPTION_WIDTH:
        head = re.split(r"[:;] ", sentence, maxsplit=1)[0]
        sentence = head if len(head) >= 20 else sentence
    return sentence if len(sentence) <= DESCRIPTION_WIDTH else sentence[: DESCRIPTION_WIDTH - 3] + "..."


def _yaml_comment(group: str, option: str) -> str:
    """The leading comment of an option's YAML file, up to its first indented (command) line."""
    lines = []
    for line in (CONFIG_DIR / group / f"{option}.yaml").read_text().splitlines():
        if not line.startswith("#") or line.startswith("#  "):
            break
        if "@package" not in line:
            lines.append(line.lstrip("# "))
    return " ".join(lines)


def describe(group: str, option: str) -> str:
    """One line about an option: the agent class's docstring, else the YAML's comment, else the schema's."""
    if group == "agent":
        return _first_sentence(_target_class(group, option).__doc__ or "")
    comment = _yaml_comment(group, option)
    if comment or group not in COMPONENT_GROUPS:
        return _first_sentence(comment)
    return _first_sentence(_schema(group, option).__doc__ or "")


def supported_reprs(agent: str) -> tuple[str, ...]:
    return tuple(_target_class("agent", agent).supported_reprs)


def list_command(_: argparse.Namespace) -> int:
    for group, title in (*COMPONENT_GROUPS.items(), ("experiment", "experiments")):
        options = group_options(group)
        usage = "-m experiment=NAME" if group == "experiment" else f"{group}=NAME"
        print(f"{title} ({usage}):")
        accepts = {option: f"repr={'|'.join(supported_reprs(option))}" for option in options} if group == "agent" else {}
        width = max(map(len, options))
        accepts_width = max(map(len, accepts.values()), default=0)
        for option in options:
            columns = [f"{option:<{width}}", *([f"{accepts[option]:<{accepts_width}}"] if accepts else []), describe(group, option)]
            print("  " + "  ".join(columns))
        print()
    others = ", ".join(f"{group}={'|'.join(group_options(group))}" for group in ("logger", "debug", "budget"))
    print(f"also: {others}; hparams=<agent>_<env> is chosen for you (conf/hparams/)")
    return 0


# ----------------------------------------------------------------------- show


def metric_direction(name: str) -> str:
    """``higher is better`` or ``lower is better``, from the metric registry."""
    return metrics.METRICS[name].direction


def _number(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def find_results(path: Path) -> tuple[Path, bool]:
    """``(path, is_one_run)``: a ``result.json``, or a results folder holding ``runs/*/result.json``."""
    if not path.exists():
        raise CommandError(f"{path}: no such file or directory")
    if path.is_file():
        return path, True
    if (path / results.RESULT_FILE).is_file():
        return path / results.RESULT_FILE, True
    for folder in (path, path.parent) if path.name == "runs" else (path,):
        if any(results.iter_result_paths(folder)):
            return folder, False
    raise CommandError(
        f"{path}: no {results.RESULT_FILE} and no runs/*/{results.RESULT_FILE}; give a run dir, a result.json or a results dir"
    )


def _load(path: Path) -> results.RunResult:
    try:
        return results.load_result(path)
    except results.ResultError as error:
        raise CommandError(str(error)) from None


def show_run(result: results.RunResult, path: Path) -> None:
    """The four headline metrics of one run, which way each is better, and where its files are."""
    print(f"{result.agent}/{result.repr}/{result.env} seed={result.seed}  run {result.run_id}  {result.status}")
    if result.error:
        print(f"error: {result.error}")
    width = max(map(len, HEADLINE_METRICS))
    for name in HEADLINE_METRICS:
        print(f"  {name:<{width}}  {_number(result.metrics.get(name)):>10}  {metric_direction(name)} ({metrics.METRICS[name].units})")
    provenance = result.provenance
    if "wall_seconds" in provenance:
        print(f"trained {provenance.get('env_steps', 0)} env steps in {provenance['wall_seconds']:.1f} s")
    policy = path.parent / results.POLICY_FILE
    print(f"result:  {path}")
    print(f"policy:  {policy} ({PROG} watch {path.parent})" if policy.is_file() else "policy:  none (committed reference runs ship no policy.pt)")
    wandb_dir = provenance.get("wandb_run_dir")
    if not wandb_dir:
        print("W&B run: none (logger=none)")
    else:
        missing = "" if Path(wandb_dir).is_dir() else " (not found here; committed reference runs carry none)"
        print(f"W&B run: {wandb_dir}{missing}")


def _identity(result: results.RunResult) -> str:
    """The experiment's config without its seed: runs of one cell should share it."""
    keys = [key for key in results.EXPERIMENT_KEYS if key != "seed"]
    if (result.config.get("reward") or {}).get("name", results.DIRECT_REWARD) != results.DIRECT_REWARD:
        keys.append("reward")  # as in the run_id: the env's own reward is left out
    return repr(sorted((key, repr(result.config.get(key))) for key in keys))


def cell_summaries(runs: Iterable[results.RunResult]) -> list[dict[str, Any]]:
    """Per agent × env × repr cell: its seeds, its distinct configs and, per headline metric,
    ``(IntervalEstimate | None, number of seeds where the metric is defined)``."""
    cells: dict[tuple[str, str, str], list[results.RunResult]] = defaultdict(list)
    for result in runs:
        cells[(result.agent, result.env, result.repr)].append(result)
    summaries = []
    for (agent, env, repr_), members in sorted(cells.items()):
        estimates = {}
        for name in HEADLINE_METRICS:
            values = [run.metrics.get(name) for run in members]
            defined = np.array([value for value in values if value is not None and math.isfinite(value)], dtype=float)
            estimate = iqm_across_seeds(defined) if defined.size else None
            estimates[name] = (estimate, int(defined.size))
        summaries.append({
            "agent": agent, "env": env, "repr": repr_, "runs": len(members),
            "seeds": len({run.seed for run in members}), "configs": len({_identity(run) for run in members}),
            "metrics": estimates,
        })
    return summaries


def _interval(estimate: Any, defined: int, runs: int) -> str:
    if estimate is None:
        return "n/a"
    text = f"{estimate.point:.3g} [{estimate.low:.3g}, {estimate.high:.3g}]"
    return text if defined == runs else f"{text} ({defined}/{runs})"


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def show_folder(folder: Path) -> None:
    """IQM [95 % CI] across seeds of each headline metric, per agent × env × repr cell."""
    loaded, errors = results.load_results(folder, include_failed=True)
    completed = [run for run in loaded if run.status == "completed"]
    failed = [run for run in loaded if run.status != "completed"]
    summaries = cell_summaries(completed)
    print(f"{folder}: {len(completed)} completed runs in {len(summaries)} cells; "
          "IQM [95% CI] across seeds (stratified bootstrap; (k/n): metric defined for k of n runs)")
    header = ["agent", "env", "repr", "seeds", *(f"{name} ({metric_direction(name).removesuffix(' is better')})" for name in HEADLINE_METRICS)]
    rows = [header]
    for cell in summaries:
        intervals = [_interval(estimate, defined, cell["runs"]) for estimate, defined in cell["metrics"].values()]
        rows.append([cell["agent"], cell["env"], cell["repr"], str(cell["seeds"]), *intervals])
    if summaries:
        _print_table(rows)
    for cell in summaries:
        if cell["configs"] > 1 or cell["runs"] > cell["seeds"]:
            print(f"note: {cell['agent']}/{cell['repr']}/{cell['env']} mixes {cell['configs']} configs "
                  f"({cell['runs']} runs, {cell['seeds']} seeds): budgets or hyperparameters differ")
    for run in failed:
        print(f"not counted: {run.agent}/{run.repr}/{run.env} seed={run.seed} [{run.run_id}] {run.status}: {run.error}")
    for error in errors:
        print(f"not counted: {error}")


def show_command(args: argparse.Namespace) -> int:
    path, one_run = find_results(Path(args.path))
    if one_run:
        show_run(_load(path), path)
    else:
        show_folder(path)
    return 0


# ---------------------------------------------------------------------- watch


def _registered_section(group: str, section: Any) -> DictConfig:
    """A stored config section, merged into the registered schema of its group that its ``_target_`` names.

    ``result.json`` is data: a ``_target_`` that the registry does not list for ``group`` is
    refused, so watching a run never imports or calls code from the file.
    """
    targets = registry.targets()
    target = section.get("_target_") if isinstance(section, dict) else None
    if targets.get(target) != group:
        allowed = sorted(name for name, its_group in targets.items() if its_group == group)
        raise CommandError(f"{group}._target_={target!r} is not a registered {group}; allowed: {', '.join(allowed)}")
    try:
        return OmegaConf.merge(OmegaConf.structured(registry.schema_of(target)), section)
    except Exception as error:  # noqa: BLE001 - OmegaConf's validation errors, as one line
        raise CommandError(f"{group} config does not match its schema: {str(error).splitlines()[0]}") from None


def rebuild(result: results.RunResult, policy: Path) -> tuple[RunEnvs, Any]:
    """``(envs, agent)`` of a run, built as the runner builds them, with the saved policy loaded."""
    sections = {group: _registered_section(group, result.config.get(group)) for group in ("agent", "env", "repr")}
    envs = RunEnvs(instantiate(sections["env"]), instantiate(sections["repr"]))
    agent = build_agent(sections["agent"], envs, result.seed)
    agent.load(policy)
    return envs, agent


def cartpole_line(state: Sequence[float], x_threshold: float = 2.4, width: int = 41) -> str:
    """CartPole's state as one line: the cart on its track, drawn as its pole (``/ | \\``)."""
    x, _, theta, _ = (float(value) for value in state)
    position = min(width - 1, max(0, round((x + x_threshold) / (2 * x_threshold) * (width - 1))))
    track = ["."] * width
    track[position] = "|" if abs(theta) < 0.02 else "/" if theta > 0 else "\\"
    return f"[{''.join(track)}] x={x:+.2f} angle={math.degrees(theta):+5.1f} deg"


def text_frame(env: Any) -> str:
    """The env's current state as text: MiniGrid's grid (several lines) or CartPole's track (one)."""
    base = env.unwrapped
    if hasattr(base, "pprint_grid"):
        return base.pprint_grid()
    state = getattr(base, "state", None)
    if state is not None and len(state) == 4:
        return cartpole_line(state, getattr(base, "x_threshold", 2.4))
    return f"state: {state!r}"


def play_episode(env: Any, agent: Any, is_text: bool, seed: int, on_frame: Callable[[int, int | None, float, float], None]) -> tuple[float, int, bool]:
    """One episode of the evaluation policy (``act(greedy=True)``), as the evaluator plays it.

    ``on_frame(step, action, reward, episode_return)`` is called after the reset (action
    ``None``) and after every step. Returns ``(episode_return, steps, terminated)``.
    """
    observation, _ = env.reset(seed=seed)
    total, step, terminated, truncated = 0.0, 0, False, False
    on_frame(step, None, 0.0, total)
    while not (terminated or truncated):
        batch = [observation] if is_text else np.stack([observation])
        action = int(agent.act(batch, greedy=True)[0])
        observation, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        step += 1
        on_frame(step, action, float(reward), total)
    return total, step, bool(terminated)


def _gif_path(value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() != ".gif":
        raise CommandError(f"--gif {value}: the file name must end in .gif")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise CommandError(f"--gif {value}: {path.parent} is not a writable folder")
    return path


def stored_run_config(result: results.RunResult, **overrides: Any) -> DictConfig:
    """The run config ``result`` was made with; sections it predates (e.g. ``checkpoint``) take today's defaults."""
    return OmegaConf.merge(OmegaConf.structured(RunConfig), result.config, overrides)


def retrain(result: results.RunResult, results_dir: str) -> Path:
    """Train ``result``'s run again from its stored config into ``results_dir``; the folder of the new run.

    Runs repeat bit for bit (``experiments/rerun_reference.py``), so its policy is the one the run ended with.
    """
    cfg = stored_run_config(result, results_dir=results_dir, overwrite=False, logger={"kind": "none"})
    print(f"no policy stored: training {result.agent}/{result.repr}/{result.env} seed={result.seed} again into {results_dir} ...", flush=True)
    run_with_status(cfg)
    return results.run_dir(results_dir, results.run_id(experiment_config(cfg)))


def _policy_of(run: str, train_to: str | None = None) -> tuple[results.RunResult, Path]:
    path, one_run = find_results(Path(run))
    if not one_run:
        raise CommandError(f"{run}: a results folder; watch takes one run dir, e.g. {next(results.iter_result_paths(path)).parent}")
    result = _load(path)
    if result.status != "completed":
        raise CommandError(f"{path.parent}: the run {result.status}, so it has no policy to watch")
    policy = path.parent / results.POLICY_FILE
    if not policy.is_file() and train_to is not None:
        policy = retrain(result, train_to) / results.POLICY_FILE
    if not policy.is_file():
        raise CommandError(f"no {results.POLICY_FILE} in {path.parent}: committed reference runs do not ship policies; "
                           f"add --train to train it again first, or {_rerun_hint(result)}")
    return result, policy


def _rerun_hint(result: results.RunResult) -> str:
    """The command that trains the same agent × env × repr × seed, and whether it gives this run_id."""
    overrides = [f"agent={result.agent}", f"env={result.env}", f"repr={result.repr}", f"seed={result.seed}"]
    command = f"{PROG} {' '.join(overrides)}"
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            same = results.run_id(experiment_config(compose(config_name=CONFIG_NAME, overrides=overrides))) == result.run_id
    finally:
        GlobalHydra.instance().clear()
    if same:
        return f"run it first with `{command}`, then `{PROG} watch {RunConfig.results_dir}/runs/{result.run_id}`"
    return f"run it first with `{command}` (today's config gives it a new run_id), then watch the run dir it prints"


def _action_names(count: int) -> list[str]:
    """The names the LLM agents' prompts use, or ``action i`` where an env has no default names."""
    try:
        return default_actions(count)
    except ValueError:
        return [f"action {i}" for i in range(count)]


def watch_command(args: argparse.Namespace) -> int:
    result, policy = _policy_of(args.run, args.results_dir if args.train else None)
    gif = _gif_path(args.gif)
    if args.episode < 0:
        raise CommandError(f"--episode {args.episode}: must be >= 0")
    if not args.fps > 0:
        raise CommandError(f"--fps {args.fps}: must be > 0")
    envs, agent = rebuild(result, policy)
    contexts = [TRAIN, *envs.suite.held_out_contexts]
    if args.context not in contexts:
        raise CommandError(f"--context {args.context}: not a context of {envs.suite.name}; allowed: {', '.join(contexts)}")
    names = _action_names(envs.action_space.n)
    name_width = max(map(len, names))
    env = envs.make(args.context)
    frames = []
    if gif is not None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array needs no display (and SDL complains without one)
        env.unwrapped.render_mode = "rgb_array"

    def on_frame(step: int, action: int | None, reward: float, episode_return: float) -> None:
        header = f"step {step:>3}  {'start' if action is None else names[action]:<{name_width}}  reward {reward:+.3g}  return {episode_return:.4g}"
        frame = text_frame(env)
        print(f"{header}\n{frame}\n" if "\n" in frame else f"{header}  {frame}", flush=True)
        if gif is not None:
            frames.append(env.unwrapped.render())
        if args.delay:
            time.sleep(args.delay)

    seed = EVAL_SEED_OFFSET + args.episode
    print(f"{result.agent}/{result.repr}/{result.env} seed={result.seed} [{result.run_id}]: evaluation episode {args.episode} of {args.context} (env seed {seed})")
    episode_return, steps, terminated = play_episode(env, agent, envs.representation.is_text, seed, on_frame)
    env.close()
    print(f"return {episode_return:.4g} in {steps} steps ({'terminated' if terminated else 'time limit'})")
    if gif is not None:
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(gif, save_all=True, append_images=images[1:], duration=max(20, round(1000 / args.fps)), loop=0)
        print(f"gif: {gif} ({len(images)} frames)")
    return 0


# ------------------------------------------------------------------- --help, main


def _default_choices() -> dict[str, str]:
    """The top-level config's default option per group (``conf/config.yaml``'s defaults list)."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{CONFIG_NAME}.yaml").defaults, resolve=False)
    return {key: value for item in defaults if isinstance(item, dict) for key, value in item.items()}


def usage() -> str:
    """The suite's own usage: commands, the common overrides (read from ``conf/``), examples."""
    chosen = _default_choices()
    options = {group: ", ".join(group_options(group)) for group in ("agent", "env", "repr", "experiment")}
    return f"""\
usage: {PROG} [-m] [key=value ...]      train one run, or a sweep with -m (--multirun)
       {PROG} list                      agents, envs, representations, experiments
       {PROG} show PATH                 a run's four metrics, or IQM [95% CI] per cell of a results dir
       {PROG} watch RUN [--gif FILE]    replay a run's saved policy on one evaluation episode
`python -m llmrl_bench` is the same command; `{PROG} COMMAND --help` explains each command.

common overrides (key=value):
  agent=NAME           {options['agent']} (default {chosen['agent']})
  env=NAME             {options['env']} (default {chosen['env']})
  repr=NAME            {options['repr']} (default {chosen['repr']}; text for LLM agents)
  seed=N               an integer; with -m also A-B (A..B inclusive), 1,3,5 or range(0,10)
  experiment=NAME      {options['experiment']} (with -m)
  debug=smoke          tiny budgets, no W&B: a check in seconds
  logger=none          no W&B run (default: wandb, offline)
  results_dir=PATH     where runs/<run_id>/ go (default {RunConfig.results_dir})
  budget.env_steps=N   training env steps; overwrite=true re-runs a finished run

examples:
  {PROG}                                      # the defaults: {chosen['agent']} on {chosen['env']}, seed 0
  {PROG} agent=dqn env=cartpole
  {PROG} -m agent=dqn,ppo env=cartpole seed=0-9
  {PROG} -m experiment=cartpole_classic
  {PROG} show {RunConfig.results_dir}
  {PROG} watch {RunConfig.results_dir}/runs/<run_id> --gif episode.gif

Hydra: --cfg job prints the composed config, --hydra-help lists Hydra's own flags."""


def _quiet_on_closed_pipe(command: Callable[..., Any]) -> Callable[..., Any]:
    """Stop quietly when the reader goes away (``llmrl-bench show DIR | head``)."""

    @functools.wraps(command)
    def wrapped(*args: Any) -> Any:
        try:
            return command(*args)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 0

    return wrapped


@_quiet_on_closed_pipe
def print_help(overrides: Sequence[str]) -> None:
    """``--help``: the suite's usage, then the config that ``overrides`` compose to."""
    print(usage())
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = compose(config_name=CONFIG_NAME, overrides=[item for item in overrides if not item.startswith("-")])
    except Exception as error:  # noqa: BLE001 - the usage is shown either way
        print(f"\n(config not shown: {str(error).splitlines()[0]})")
        return
    finally:
        GlobalHydra.instance().clear()
    print("\n== config: override any key with key=value ==\n")
    print(OmegaConf.to_yaml(cfg).rstrip())


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints the usage too
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description="The suite's helpful commands (training: llmrl-bench [-m] key=value ...).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    listing = commands.add_parser("list", help="agents, envs, representations and experiments, one line each")
    listing.set_defaults(handler=list_command)
    show = commands.add_parser("show", help="a run's four metrics, or IQM [95%% CI] per cell of a results folder")
    show.add_argument("path", help="a run dir, its result.json, or a results dir (holding runs/)")
    show.set_defaults(handler=show_command)
    watch = commands.add_parser("watch", help="replay a run's saved policy.pt on one evaluation episode")
    watch.add_argument("run", help="a run dir (results/local/runs/<run_id>) or its result.json")
    watch.add_argument("--gif", metavar="FILE", help="also write the episode as a GIF (the env's rgb_array render)")
    watch.add_argument("--context", default="train", help="train (default) or a held-out context of the env")
    watch.add_argument("--episode", type=int, default=0, help="which evaluation episode (its env seed), default 0")
    watch.add_argument("--delay", type=float, default=0.0, help="seconds to wait between frames, default 0")
    watch.add_argument("--fps", type=float, default=4.0, help="frames per second of the GIF, default 4")
    watch.add_argument("--train", action="store_true", help="a run without policy.pt (a committed reference run): train it again first")
    watch.add_argument("--results-dir", default=RunConfig.results_dir, help=f"where --train puts the run, default {RunConfig.results_dir}")
    watch.set_defaults(handler=watch_command)
    return parser


@_quiet_on_closed_pipe
def main(argv: Sequence[str]) -> int:
    """``llmrl-bench list|show|watch ...``; returns the exit code (2: bad input, one line on stderr)."""
    args = _parser().parse_args(list(argv))
    try:
        return args.handler(args)
    except CommandError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
