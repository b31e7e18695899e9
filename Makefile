# Run `make help` for the list of targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Slither has its own virtualenv: it needs web3 7.x, and requirements.txt pins web3 8.
SLITHER_VENV := .venv-slither
# pyDVL, the KNN-Shapley benchmark's peer, has its own too: it pins numpy < 2, and requirements.txt pins numpy 2.
PYDVL_VENV := .venv-pydvl
# SecretFlow's PSI engine (psi_direct) has its own too, for the same reason; `make run` works without it.
SPU_VENV := .venv-spu
TEST_ENV := VAR_DIR=$(CURDIR)/var/test \
	DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dataxchange} \
	CELERY_BROKER_URL=$${TEST_BROKER_URL:-redis://127.0.0.1:6379/15}
# The chain test modules, run a second time on Anvil (a maintained dev chain) after the whole suite on Ganache.
CHAIN_TESTS := tests/contracts tests/audit/test_chain_outbox.py tests/audit/test_chain_transactions.py \
	tests/audit/test_chain_accounts.py tests/audit/test_chain_deploy.py tests/audit/test_chain_id.py \
	tests/audit/test_verify.py tests/audit/test_bundle_verifier.py

.PHONY: help install run test test-fast lint bench contracts chromium messages clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(SLITHER_VENV)/.installed: requirements-slither.txt
	test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SLITHER_VENV)/bin/python -m pip install --quiet -r requirements-slither.txt
	touch $@

$(PYDVL_VENV)/.installed: requirements-pydvl.txt
	test -x $(PYDVL_VENV)/bin/python || $(PYTHON) -m venv $(PYDVL_VENV)
	$(PYDVL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PYDVL_VENV)/bin/python -m pip install --quiet -r requirements-pydvl.txt
	touch $@

$(SPU_VENV)/.installed: requirements-spu.txt
	test -x $(SPU_VENV)/bin/python || $(PYTHON) -m venv $(SPU_VENV)
	$(SPU_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SPU_VENV)/bin/python -m pip install --quiet -r requirements-spu.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed ## Install Python and npm packages (once)

contracts: install ## Compile the Solidity contracts into var/build/contracts
	$(PY) -m contracts.compile

# The Simplified Chinese catalogue (config/locale): the UI's strings extracted, merged into it, compiled.
MESSAGES_IGNORE := $(foreach p,.venv* node_modules var staticfiles tests bench docs contracts,--ignore '$(p)')
messages: install ## Extract the UI's strings into the zh-Hans catalogue (translate the new ones) and compile it
	$(PY) manage.py makemessages -l zh_Hans --no-obsolete $(MESSAGES_IGNORE)
	$(PY) manage.py makemessages -d djangojs -l zh_Hans --no-obsolete $(MESSAGES_IGNORE)
	$(PY) manage.py compilemessages -l zh_Hans --ignore '.venv*' --ignore node_modules

chromium: ## Install Debian's Chromium and a Chinese font for the browser tests, if missing
	@{ command -v chromium >/dev/null && dpkg -s fonts-wqy-microhei >/dev/null 2>&1; } || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; }

run: install contracts ## Set up and run the marketplace on its embedded default at http://127.0.0.1:8000
	$(PY) manage.py run_embedded

test: install chromium lint $(SPU_VENV)/.installed ## Set up what is missing, lint, and run the whole suite (PostgreSQL, Redis, Ganache, Chromium)
	rm -rf var/test
	$(TEST_ENV) $(PY) -m contracts.compile
	$(TEST_ENV) $(PY) -m pytest
	$(TEST_ENV) TEST_CHAIN=anvil $(PY) -m pytest $(CHAIN_TESTS)

test-fast: install ## The suite without end-to-end and browser tests
	rm -rf var/test
	$(TEST_ENV) $(PY) -m pytest -m "not e2e and not browser"

lint: install $(SLITHER_VENV)/.installed ## ruff, mypy, and slither (fails on a high or medium finding)
	$(PY) -m ruff check .
	$(PY) -m mypy .
	$(SLITHER_VENV)/bin/slither contracts --config-file slither.config.json

bench: install contracts $(PYDVL_VENV)/.installed $(SPU_VENV)/.installed ## Benchmarks; results go to docs/benchmarks.md
	$(TEST_ENV) $(PY) -m bench

clean: ## Remove local state (database, chain, vaults) and build output
	rm -rf var staticfiles
