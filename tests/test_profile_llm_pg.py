"""``experiments/profile_llm_pg.py``: the split of an ``llm_pg`` run's time finds the functions it names."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO


def test_profile_splits_collection_and_update():
    proc = subprocess.run(
        [sys.executable, "experiments/profile_llm_pg.py", "64", "llm.model=tiny-random",
         "agent.n_envs=4", "agent.n_steps=8", "agent.batch_size=16"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.match(r"64 env steps in [\d.]+ s", proc.stdout), proc.stdout[:500]
    shares = {label.strip(): float(share) for label, share in
              re.findall(r"^(update \(PPO epochs\)|  backward passes|  optimizer steps|collection \(the rest\))\s+[\d.]+ s\s+([\d.]+)%$",
                         proc.stdout, re.M)}
    assert set(shares) == {"update (PPO epochs)", "backward passes", "optimizer steps", "collection (the rest)"}, proc.stdout
    # every named function was found (a renamed one would show 0.0%), and the parts add up
    assert 0 < shares["optimizer steps"] < shares["backward passes"] < shares["update (PPO epochs)"]
    assert abs(shares["update (PPO epochs)"] + shares["collection (the rest)"] - 100) < 0.2
