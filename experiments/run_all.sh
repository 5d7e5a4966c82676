#!/usr/bin/env bash
# Every sweep the paper needs, sized for 2 CPU cores (one job per core), then `make paper`.
#   experiments/run_all.sh                       # all sweeps into results/reference/, then make paper
#   experiments/run_all.sh budget.eval_episodes=5   # extra overrides go to every sweep
#   RESULTS=/tmp/r PAPER_OUT=/tmp/p experiments/run_all.sh debug=smoke   # a quick dry run elsewhere
# Runs whose result exists are skipped, so an interrupted call resumes where it stopped.
# LOGGER=wandb keeps offline W&B runs (results/**/wandb/ is git-ignored); the default is none.
set -euo pipefail
cd "$(dirname "$0")/.."

RESULTS="${RESULTS:-results/reference}"
PAPER_OUT="${PAPER_OUT:-paper}"
LOGGER="${LOGGER:-none}"
export LLMRL_BENCH_JOBS="${LLMRL_BENCH_JOBS:-2}"
PY=.venv/bin/python
EXPERIMENTS=(reproduce_rlzoo_cartpole reproduce_rlzoo_minigrid maze_classic maze_llm empty_llm)

make venv
for experiment in "${EXPERIMENTS[@]}"; do
  echo "== experiment=$experiment ($(date -u +%H:%M:%S) UTC)"
  "$PY" -m llmrl_bench -m "experiment=$experiment" "results_dir=$RESULTS" "logger=$LOGGER" "$@"
done

if [[ "$RESULTS" == results/reference && "$PAPER_OUT" == paper ]]; then
  make paper
else
  "$PY" -m paper.build --results "$RESULTS" --out "$PAPER_OUT"   # what `make paper` runs, elsewhere
fi
