# s2i -- run `make help` for the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= toy

.DEFAULT_GOAL := help
.PHONY: help env repro test lint test-unit profile lab clean-smoke browser-deps fullsmoke

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-15s %s\n", $$1, $$2}'

env: $(VENV)/.installed ## create .venv and install every pinned dependency (requirements.txt) and s2i

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

repro: env ## set up, then run the whole pipeline (.venv/bin/dvc repro) on params.yaml's profile (toy by default)
	$(BIN)/dvc repro

fullsmoke: env ## the full profile's real-video stages on tiny random models and generated videos (VIDEOS=dir: yours)
	$(BIN)/python -m s2i.real all --profile fullsmoke $(if $(VIDEOS),--videos $(VIDEOS),)

# nbval runs the smoke run's notebooks in pipeline order (each feeds the next: the same six as
# tests/conftest.py's SMOKE_STAGES), then the notebooks that only read it two at a time, one
# torch thread each (on 2 cores 35 s instead of 51 s one after the other).
NBVAL := $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
	--nbval-sanitize-with tests/nbval_sanitize.cfg
NB_DIR := build/nbval_notebooks
NB_SMOKE := $(addprefix $(NB_DIR)/,00_world.ipynb 00_pretrain.ipynb 01_frame_selection.ipynb \
	02_extraction.ipynb 03_alignment.ipynb 03_prior.ipynb)
NB_READERS := $(filter-out $(NB_SMOKE),$(patsubst notebooks/%,$(NB_DIR)/%,$(wildcard notebooks/*.ipynb)))

test: lint ## run the whole test suite: lint, nbval over every notebook at smoke size, unit tests
	$(BIN)/python scripts/nbval_prepare.py
	$(NBVAL) $(NB_SMOKE)
	OMP_NUM_THREADS=1 $(NBVAL) -n 2 --dist loadfile $(NB_READERS)
	$(BIN)/python -m pytest tests -q -n auto --dist worksteal

lint: env ## ruff: lint and format check (configured in pyproject.toml)
	$(BIN)/ruff check s2i tests scripts notebooks/src
	$(BIN)/ruff format --check s2i tests scripts notebooks/src

browser-deps: env ## headless Chromium (Debian apt, needs root) + playwright for tests/test_browser.py (idempotent)
	PYTHON=$(BIN)/python scripts/install_browser.sh

test-unit: env ## unit tests only
	$(BIN)/python -m pytest tests -q -n auto --dist worksteal

profile: env ## switch the active profile: make profile PROFILE=smoke writes params.yaml = profiles/toy.yaml + the diff in profiles/smoke.yaml (PROFILE=toy: the default back)
	$(BIN)/python -m s2i.stage --profile $(PROFILE)
	@echo "run: make repro"

lab: env ## open JupyterLab on the notebooks (127.0.0.1 only)
	$(BIN)/jupyter lab --ip 127.0.0.1 notebooks/

clean-smoke: ## remove the nbval/smoke scratch outputs (build/)
	rm -rf build
