# Every target sets up .venv itself (CPU builds; see README "CUDA" for GPU installs).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The pinned CPU torch lies on local disk here; an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
WD_BACKENDS ?= torch,jax
export WD_BACKENDS

.PHONY: demo test lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt "$(TORCH_PIN)"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e ".[all,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/weight-decay demo

test: lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
