"""Move stored LLM runs to the top-level ``llm`` config (issue 16); re-running it changes nothing.

Before, a run's model settings were set and stored only inside ``agent.llm`` (LLM agents) or
``repr.llm`` (``repr=llm_embed``), and the hparams files forced ``autocast: bfloat16``. Now the
top-level ``llm`` node sets them, with ``llm.autocast=auto`` as the default. For each stored
run with a model this script

- adds the top-level ``llm`` section (the component's model settings);
- writes ``autocast: auto`` where the run used ``bfloat16`` (what ``auto`` picks on the AMX
  machine that made the committed runs), so today's default command finds them, and records
  the precision that actually ran in ``provenance.llm_autocast`` (and ``llm_device``);
- recomputes the run_id and renames the run's folder to it.

    python experiments/migrate_llm_config.py results/reference [--check]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmrl_bench import results
from llmrl_bench.llm.settings import ACTION_FIELDS, AUTO, MODEL_FIELDS

#: The explicit autocast the hparams files used to set, written as ``auto`` now.
FORMER_DEFAULT_AUTOCAST = "bfloat16"


def migrated(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (a ``result.json`` as a dict) in the new layout; unchanged if it has no model or is migrated."""
    config = record["config"]
    users = [section for section in ("agent", "repr") if isinstance(config.get(section, {}).get("llm"), dict)]
    if not users or "llm" in config:
        return record
    config = {**config}
    provenance = {**record["provenance"]}
    for section in users:
        llm = {**config[section]["llm"]}
        provenance.setdefault("llm_autocast", llm.get("autocast") or "off")
        provenance.setdefault("llm_device", "cpu")  # the committed runs ran on CPU
        if llm.get("autocast") == FORMER_DEFAULT_AUTOCAST:
            llm["autocast"] = AUTO
        config[section] = {**config[section], "llm": llm}
        config["llm"] = {name: llm[name] for name in MODEL_FIELDS + ACTION_FIELDS if name in llm}
    fresh = {**record, "config": config, "provenance": provenance}
    fresh["run_id"] = results.run_id(config)
    return fresh


def migrate(results_dir: Path, check: bool = False) -> list[str]:
    """Migrate every run under ``results_dir`` (``check``: only list them); one line per run that changes."""
    changed = []
    for path, result in results.read_results(results_dir):
        if isinstance(result, results.ResultError):
            raise result
        record = asdict(result)
        fresh = migrated(record)
        if fresh == record:
            continue
        changed.append(f"{result.run_id} -> {fresh['run_id']} ({result.agent}/{result.repr}/{result.env}/seed={result.seed})")
        if check:
            continue
        target = results.run_dir(results_dir, fresh["run_id"])
        if target.exists() and target != path.parent:
            raise FileExistsError(f"{target} exists: cannot move {path.parent} there")
        results.write_record(path, fresh)
        path.parent.rename(target)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="a results folder holding runs/<run_id>/result.json")
    parser.add_argument("--check", action="store_true", help="only list the runs that would change (exit 1 if any)")
    args = parser.parse_args(argv)
    changed = migrate(args.results_dir, args.check)
    print("\n".join(changed) or "nothing to migrate")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
