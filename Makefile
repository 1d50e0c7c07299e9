# Everyday commands. `make run` and `make test` create what they need (.venv, editable install).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv lint format run serve test test-unit test-integration mutate services services-stop services-status bench capacity capacity-measure clean

venv: $(STAMP)

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: venv  ## ruff: lint, import order and the format (ruff.toml); make test runs it first
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv  ## ruff format: the one code layout (line length of ruff.toml)
	$(BIN)/ruff format .

run: venv  ## the app on its embedded default (mongomock store, feign transport to itself) on :5000
	$(BIN)/flask --app dailyfeed run --port 5000

serve: venv  ## the production server (waitress, threads)
	$(BIN)/dailyfeed serve

test: venv  ## every tier; starts the real services when this machine can, stops them afterwards
	bash scripts/test.sh

test-unit: venv  ## only the tiers that need no server
	$(BIN)/pytest -m "not integration"

test-integration: venv  ## only the integration tier, against running services (make services)
	bash scripts/test.sh --integration-only

mutate: venv  ## mutation testing of the core modules against the fast tiers (slow; MODULES=..., MUTATE_CHILDREN=1)
	bash scripts/mutate.sh

services:
	bash scripts/services.sh start all

services-stop:
	bash scripts/services.sh stop all

services-status:
	bash scripts/services.sh status

bench: venv
	bash bench/run.sh

capacity: venv  ## the capacity model on the committed results, no service needed (ARGS="--members 5000000 ...")
	$(BIN)/python -m bench.capacity $(ARGS)

capacity-measure: venv  ## what the model reads from the store: document and index sizes, the followings feed's cost
	BENCH_MODULE=bench.storage bash bench/run.sh
	BENCH_MODULE=bench.feed bash bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info mutants mutants.log
