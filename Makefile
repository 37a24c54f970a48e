# Every target sets itself up on a fresh machine: the project venv (.venv) and checkov's own tool venv
# (.tools/checkov: its pins would drag openai/transformers back to old releases if it shared .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .tools/checkov
CHECKOV_VERSION := 3.3.30
POLICY_VENV := policy/venv
STACK ?= local
# Upstream CRD schemas and chart defaults live beside the project (../shared); users point these elsewhere.
export INFERSTACK_CRD_DIR ?= $(abspath ../shared/crds)
export INFERSTACK_CHART_DIR ?= $(abspath ../shared/charts)
export INFERSTACK_CHECKOV ?= $(abspath $(CHECKOV_VENV)/bin/checkov)
export BC_SKIP_MAPPING := TRUE

.PHONY: help runtime venv tools policy-pack test lint plan check schema fetch-schemas up destroy bench clean

help:
	@echo "make up STACK=local     deploy a stack to the current kube context (needs the Pulumi CLI)"
	@echo "make plan STACK=local   offline plan: build/plan/STACK/{resources.json,manifests.yaml,summary.md}"
	@echo "make check STACK=local  offline plan + manifest validation (kubernetes-validate, CRDs, checkov, values)"
	@echo "make test               lint + type check + the whole test suite"
	@echo "make fetch-schemas      released charts' values and CRDs for check, into build/upstream (needs helm)"

# The runtime (what `make up/plan/check` need) and the dev extra (tests: torch, transformers, emulators)
# are separate stamps, so deploying from a laptop does not pull the test stack.
$(BIN)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed: $(BIN)/.runtime
	# torch first and exactly: the CPU wheel on disk; anything looser pulls a multi-GB CUDA build. Where
	# PyPI's torch is the CUDA build (a hosted CI runner), TORCH_INDEX names PyTorch's CPU-only index.
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

runtime: $(BIN)/.runtime

# The virtualenv PulumiPolicy.yaml names, for `pulumi preview/up --policy-pack policy` (CI/CD workflows).
$(POLICY_VENV)/.installed: policy/requirements.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet -r policy/requirements.txt
	touch $@

policy-pack: $(POLICY_VENV)/.installed

venv: $(BIN)/.installed

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

tools: $(CHECKOV_VENV)/bin/checkov

# The policy pack's entry point is a second module named __main__, so mypy checks it in a run of its own.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy policy/__main__.py

test: venv tools lint
	$(BIN)/pytest -q

plan: runtime
	$(BIN)/inferstack plan $(STACK)

check: runtime tools
	$(BIN)/inferstack check $(STACK)

schema: runtime
	$(BIN)/inferstack schema

# Where ../shared is not beside the checkout (a CI runner): the released charts' values and CRDs for the
# pinned chart versions, via helm and the network. Then run check with
# INFERSTACK_CHART_DIR=$(UPSTREAM_DIR)/charts INFERSTACK_CRD_DIR=$(UPSTREAM_DIR)/crds.
UPSTREAM_DIR ?= build/upstream
fetch-schemas: runtime
	$(BIN)/python scripts/fetch_schemas.py $(UPSTREAM_DIR)

# No venv prerequisite: scripts/up.py runs on the system python3 (standard library only) so that it checks
# the Pulumi CLI, Docker, kind and kubectl (or the cloud CLIs) in seconds, before it builds the venv
# (make runtime-core for on-prem stacks, make runtime for aws/gcp). Then, for a side-loaded image: the
# kind cluster (deploy/kind/cluster.yaml), docker build, kind load; pulumi up; the endpoint check.
up:
	MAKE="$(MAKE)" $(PYTHON) scripts/up.py up $(STACK)

# pulumi destroy; offers to delete the kind cluster `make up` created (DELETE_CLUSTER=yes|no: no question).
destroy:
	MAKE="$(MAKE)" $(PYTHON) scripts/up.py destroy $(STACK)

bench: venv
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/fetch_bench.py --rounds 5

clean:
	rm -rf build $(POLICY_VENV) .pytest_cache .mypy_cache .ruff_cache
