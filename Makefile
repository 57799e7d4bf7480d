# Local development. `make run` starts everything; `make test` is what CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheels: torch from PyPI on Linux would pull the CUDA build (GBs). Set
# TORCH_INDEX_URL=https://pypi.org/simple on machines that want the default wheel.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first, pinned, so installing the project cannot replace it with another build
	$(PY) -m pip install --index-url $(TORCH_INDEX_URL) torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

run: install
	$(VENV)/bin/trainability run

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy .

test: lint typecheck
	$(VENV)/bin/pytest

clean:
	rm -rf .local .mypy_cache .ruff_cache .pytest_cache
