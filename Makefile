# Local development. `make run` starts everything; `make test` is what CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra pip arguments for the torch install, e.g. on a machine whose pip cannot find a CPU
# wheel of its own: TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: the worker extra's torch==2.13.0 is then already satisfied (the
	# CPU build stays), where an unpinned resolve would pull the newest CUDA build (GBs).
	$(PY) -m pip install $(TORCH_PIP_ARGS) torch==2.13.0
	# Everything `run` starts (the API and a worker) and the test tools. A client-only install
	# is `pip install 'trainability[client]'` (httpx, no torch).
	$(PY) -m pip install -e '.[api,worker,dev]'
	touch $(STAMP)

# make run [WORKERS=N] [TRAINABILITY_API_PORT=P]: every setting is read from the environment.
run: install
	$(VENV)/bin/trainability run

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy .

test: lint typecheck
	$(VENV)/bin/pytest

clean:
	rm -rf .local .mypy_cache .ruff_cache .pytest_cache
