# The README's two commands: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt

.PHONY: demo test test-slow bench bench-decode bench-serve bench-sft install dev clean

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

bench: install
	$(VENV)/bin/instructgpt bench pretrain

# our decoder vs model.generate (tiny; SmolLM2-135M when models/smollm2-135m-instruct exists)
bench-decode: install
	$(VENV)/bin/instructgpt bench decode

# 50 concurrent chat clients against `instructgpt serve runs/demo/sft` (run `make demo` first)
bench-serve: install
	$(VENV)/bin/instructgpt bench serve

# The seed's claim (task_balanced vs token_mean vs one task alone); needs runs/demo from `make demo`.
bench-sft: install
	$(PY) bench/seed_claim.py --run runs/demo

clean:
	rm -rf $(VENV) runs bench/results bench/work
