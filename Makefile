# Two commands on a fresh machine: `make demo` (main job, no network) and `make test`.
# `make test` runs in .venv with what users install (huggingface_hub 2.x); the transformers parity
# tests need transformers 4.57, which holds huggingface_hub below 1.0: `make test-parity` runs
# them in their own environment, .venv-parity.
VENV ?= .venv
PY := $(VENV)/bin/python
PARITY_VENV ?= .venv-parity
export MUJOCO_GL ?= egl
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-slow test-parity lint bench

# torch first and pinned, so pip takes the local CPU wheel instead of a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,dev]"
	# a .venv made before the parity split holds transformers, which pins the hub below 1.0
	$(PY) -m pip uninstall -q -y transformers
	$(PY) -m pip install -q --upgrade "huggingface_hub>=1"
	touch $@

$(PARITY_VENV)/.installed: pyproject.toml
	python3 -m venv $(PARITY_VENV)
	$(PARITY_VENV)/bin/python -m pip install -q --upgrade pip
	$(PARITY_VENV)/bin/python -m pip install -q torch==2.13.0
	$(PARITY_VENV)/bin/python -m pip install -q -e ".[all,parity]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/seqagents enjoy dt/halfcheetah-medium --episodes 3 --video demo.mp4

test: install
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -m slow -p no:cacheprovider

test-parity: $(PARITY_VENV)/.installed
	$(PARITY_VENV)/bin/python -m pytest -q -m "parity and not slow" -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	$(PY) benchmarks/dt_predict.py
