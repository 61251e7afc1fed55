# The README's two commands: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt

.PHONY: demo test test-slow bench bench-decode bench-serve bench-sft install dev bench-deps clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/activate pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/instructgpt run run/demo

test: dev
	$(PY) -m pytest

test-slow: dev
	$(PY) -m pytest -m slow

# TRL (the bench extra) and, beside it, TRL 1.12: the last release with PPOTrainer (trl.experimental.ppo)
TRL_PPO := benchmarks/.trl-1.12
$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP) -e ".[bench]"
	$(PY) -m pip install -q --no-deps --target $(TRL_PPO) "trl==1.12.*"
	touch $@

bench-deps: $(VENV)/.installed-bench

# every stage side by side with TRL, one table: benchmarks/results/all.md
bench: bench-deps
	$(VENV)/bin/instructgpt bench all

# our decoder vs model.generate (tiny; SmolLM2-135M when models/smollm2-135m-instruct exists)
bench-decode: install
	$(VENV)/bin/instructgpt bench decode

# 50 concurrent chat clients against `instructgpt serve runs/demo/sft` (run `make demo` first)
bench-serve: install
	$(VENV)/bin/instructgpt bench serve

# The seed's claim (task_balanced vs token_mean vs one task alone); needs runs/demo from `make demo`.
bench-sft: install
	$(PY) benchmarks/seed_claim.py --run runs/demo

clean:
	rm -rf $(VENV) runs benchmarks/work $(TRL_PPO)
