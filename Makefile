# The README's two commands: `make run` and `make test`. Each installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHECKOV_STAMP := $(VENV)/.checkov-installed

# Locks for Azure Functions' Python 3.11 on Linux, whatever machine resolves them; every file's hashes are kept.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" $(LOCK_ARGS)

.PHONY: run test lint bench mutation lock package clean

# `make run INSTANCES=3`: three worker processes over one data folder behind one port, as Functions instances;
# `make run AOS_CONFIG_DIR=my-config`: another config folder.
INSTANCES ?= 1
AOS_CONFIG_DIR ?= examples/config

run: $(PY_STAMP)
	AOS_CONFIG_DIR=$(AOS_CONFIG_DIR) $(BIN)/aos serve --instances $(INSTANCES)

test: $(PY_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(PY_STAMP)
	$(BIN)/ruff check .

bench: $(PY_STAMP)
	$(BIN)/python bench/dispatch.py

# Mutation score of the security and delivery core ([tool.mutmut] in pyproject.toml); minutes, not part of `test`.
mutation: $(PY_STAMP)
	$(BIN)/python -m tools.mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The locks, not the ranges: tests run the exact versions a deployment installs (requirements.txt).
# The editable install only adds the `aos` command; the app itself never needs it (tests/deploy).
$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# After editing requirements*.in: pin what changed (`make lock LOCK_ARGS=--upgrade` takes the newest releases).
lock: $(PY_STAMP)
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -c requirements.txt -o requirements-dev.txt

# The zip a deployment uploads (what .funcignore admits, with the hashed requirements.txt); prints size and count.
package: $(PY_STAMP)
	$(BIN)/python -m tools.package --out dist/functionapp.zip

# checkov pins packages that clash with the runtime ones, so it gets its own venv (tests/infra/checkov_env.py).
$(CHECKOV_STAMP): tests/infra/checkov-requirements.txt | $(PY_STAMP)
	$(BIN)/python tests/infra/checkov_env.py
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .aos .pytest_cache mutants
