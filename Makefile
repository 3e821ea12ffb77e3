# The two commands a new user needs:
#   make demo   sync + run the quickstart pipeline on the embedded engine, write a report
#   make test   run the test suite
# Both create .venv on first use and (re)install orch when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/orch validate
	$(BIN)/orch sync
	$(BIN)/orch run pipelines/quickstart.yml

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) .orch out
