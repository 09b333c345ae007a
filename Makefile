# Two commands on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/nodeps.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --no-cache-dir torch==2.13.0
	$(BIN)/pip install --no-cache-dir -e ".[dev,baselines]"
	$(BIN)/pip install --no-cache-dir --no-deps -r requirements/nodeps.txt
	touch $@

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/finecliper demo --out runs/demo

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/encoders.py --batch-size 1

clean:
	rm -rf $(VENV) runs
