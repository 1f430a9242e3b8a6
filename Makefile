# Two commands on a fresh machine: `make demo` (main job, no network) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-slow lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so pip takes the local CPU wheel instead of a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/seqagents enjoy halfcheetah-medium --episodes 3 --video demo.mp4

test: install
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -m slow -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	$(PY) benchmarks/dt_predict.py
