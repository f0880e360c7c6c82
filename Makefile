# editgate: `make demo` runs an edit on the embedded local stack; `make test` runs every check;
# `make batch-demo` runs a 20-image batch edit on the same stack; `make bench` runs the benchmarks.
# Both set up .venv themselves (Python 3.13 where the machine has it, else the newest 3.11+).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 python3.12 python3.11 python3; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# sam build looks for the runtime's python3.13 on PATH: the venv's, where it is 3.13.
export PATH := $(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
# The local targets' region (the local stack's resources live there; nothing reaches AWS). Not
# deploy's nor smoke's: those use the region saved in samconfig.toml, else the operator's AWS config.
LOCAL_TARGETS := demo batch-demo serve bench test lint typecheck template build build-native pytest
$(LOCAL_TARGETS): export AWS_DEFAULT_REGION ?= us-east-1
NATIVE_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
HAS_PY313 = $(shell $(BIN)/python -c 'import sys; print(int(sys.version_info[:2] == (3, 13)))')

.PHONY: help venv node-deps browser demo batch-demo bench serve test lint typecheck template build build-native pytest clean deploy smoke

help:
	@echo "make demo   - edit the bundled sample image on the local stack (no AWS, no fal key)"
	@echo "make test   - lint, types, template checks (cfn-lint, sam, checkov), sam build, artifact and pytest"
	@echo "make serve  - run the API locally on http://127.0.0.1:8000/v1 (key sk-local)"
	@echo "make batch-demo - a 20-image batch edit through the batch bucket on the local stack"
	@echo "make bench  - the benchmarks (not part of make test)"
	@echo "make deploy - build and deploy to AWS with SAM (guided the first time; docs/deploy.md)"
	@echo "make smoke  - check the deployed stack answers (STACK=editgate; nothing billed)"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python 3.11+ found"; exit 1; }
	@echo "Setting up $(VENV) with $(PYTHON) ($$($(PYTHON) --version)): once, about 3-5 minutes."
	@echo "It installs editgate and its development tools from PyPI (boto3, Powertools, Pillow, moto,"
	@echo "openai, the SAM CLI, cfn-lint, pytest, ruff, mypy, Playwright...): about 600 MB."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	@touch $@

# The Node SDK contract tests' dependencies (skipped, with a message, where npm is missing).
node-deps:
	@if command -v npm >/dev/null 2>&1; then cd tests/node && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "SKIPPED npm ci: no npm on this machine (the Node SDK tests will be skipped)"; fi

# The playground's browser tests drive Debian's Chromium (Playwright's own browser download cannot
# be reached here): installed when missing and this runs as root, else those tests are skipped.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the playground's browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	else echo "SKIPPED installing chromium: not root (the playground's browser tests will be skipped)"; fi

demo: venv
	@echo "Editing the bundled sample image on a local stack started for this edit (about 10 s)"
	$(BIN)/editgate edit --prompt "turn it into a snowy winter evening" --output out/demo.png

batch-demo: venv
	$(BIN)/editgate batch sample out/batch-demo/input --count 20
	$(BIN)/editgate batch run out/batch-demo/input --prompt "turn it into a snowy winter evening" \
		--concurrency 10 --fal-latency 1 --output out/batch-demo/results

# Each prints its figures with PASS/FAIL per target; one failing does not stop the others.
bench: venv build-native
	$(BIN)/python bench/run.py

serve: venv
	$(BIN)/editgate serve

test: venv node-deps browser lint typecheck template build build-native pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy layers/editgate/editgate local/editgate_local functions tests bench

# checkov in a venv of its own: it pins versions of boto3 and others that the project's don't follow.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'
	@touch $@

template: venv $(CHECKOV_VENV)/.installed
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --skip-download --quiet --compact

# The production artifact (arm64), and one for this machine's architecture that the artifact
# tests import and invoke (arm64 wheels cannot be imported on x86_64).
# Bytecode compiled into the artifact: Lambda's code and layers are read-only, so without it
# Python compiles every module again at each cold start (bench/cold_start.py: about 3x slower).
# unchecked-hash: the artifact is immutable, so Python need not stat each source file.
COMPILE = $(BIN)/python -m compileall -q -j 0 --invalidation-mode unchecked-hash

build: venv
	@if [ "$(HAS_PY313)" = 1 ]; then $(BIN)/sam build --build-dir .aws-sam/build && $(COMPILE) .aws-sam/build; \
	else echo "SKIPPED sam build: it needs Python 3.13 (the Lambda runtime) and this venv has $$($(BIN)/python --version)"; fi

build-native: venv
	@if [ "$(HAS_PY313)" = 1 ]; then $(BIN)/sam build --build-dir .aws-sam/build-native \
		--parameter-overrides Architecture=$(NATIVE_ARCH) && $(COMPILE) .aws-sam/build-native; \
	else echo "SKIPPED native sam build (needs Python 3.13)"; fi

# The first deploy asks (sam deploy --guided) and saves the answers in samconfig.toml under
# [$(DEPLOY_ENV).deploy.parameters]; later ones reuse them. docs/deploy.md: the permissions needed.
DEPLOY_ENV ?= default
SAMCONFIG = $(BIN)/python -c 'import sys, tomllib; c = tomllib.load(open("samconfig.toml", "rb")).get("$(DEPLOY_ENV)", {}); \
	p = {**c.get("global", {}).get("parameters", {}), **c.get("deploy", {}).get("parameters", {})}; print(eval(sys.argv[1]))'
STACK ?= $(shell $(SAMCONFIG) 'p.get("stack_name", "editgate")' 2>/dev/null || echo editgate)
DEPLOYED_BEFORE = $(shell $(SAMCONFIG) 'int("region" in p)' 2>/dev/null)

DEPLOYED_REGION = $(shell $(SAMCONFIG) 'p.get("region", "")' 2>/dev/null)
SMOKE_REGION = $(if $(DEPLOYED_REGION),--region $(DEPLOYED_REGION))

# sam build is skipped without Python 3.13 (see build): deploying then would send a stale or no
# artifact, so deploy refuses first.
deploy: venv
	@if [ "$(HAS_PY313)" != 1 ]; then echo "cannot deploy: sam build needs Python 3.13 (the Lambda runtime) and $(VENV) has $$($(BIN)/python --version); install 3.13, then rm -rf $(VENV) and run make deploy again"; exit 1; fi
	@$(MAKE) --no-print-directory build
	@if [ "$(DEPLOYED_BEFORE)" = 1 ]; then $(BIN)/sam deploy --config-env $(DEPLOY_ENV); \
	else echo "First deploy of config env '$(DEPLOY_ENV)': sam asks for the region (default: your AWS config's) and the parameters, then saves them."; \
		$(BIN)/sam deploy --guided --config-env $(DEPLOY_ENV); fi
	@echo "Next: $(BIN)/editgate smoke --stack $(STACK) $(SMOKE_REGION)  (checks it answers; nothing billed)"

smoke: venv
	$(BIN)/editgate smoke --stack $(STACK) $(SMOKE_REGION)

pytest: venv
	$(BIN)/pytest

clean:
	rm -rf .aws-sam out .pytest_cache .mypy_cache .ruff_cache tests/node/node_modules $(CHECKOV_VENV)
