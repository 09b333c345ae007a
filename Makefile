# Two commands on a fresh machine:  `make demo`  and  `make test`  (CI runs `make test` through .ci/run).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test check bench clean
setup: $(VENV)/.installed

# The development venv: finecliper editable, its dev extra, and the test-only references (--no-deps).
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) requirements/test-references.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --no-cache-dir -c $(CONSTRAINTS) -e ".[dev]"
	$(BIN)/pip install --no-cache-dir --no-deps -r requirements/test-references.txt
	touch $@

demo: setup
	$(BIN)/finecliper demo --out runs/demo

# What CI runs: the wheel installed as a user installs it (fresh venv, pip check, a smoke run outside
# the source tree, Python 3.10-3.13 resolution), then the whole test suite against that install.
test:
	PY=$(PY) .ci/wheel-test

# The test suite on the development venv (quick iteration).
check: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/encoders.py --batch-size 1

clean:
	rm -rf $(VENV) runs build dist
