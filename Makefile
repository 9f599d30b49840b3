# Hibachi booking-assistant backend. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell scripts/find-python.sh)
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
# The locks (every package pinned, with hashes), written by `make lock` from the .in files beside them.
LOCKS  := requirements-dev.txt layers/common/requirements.txt functions/migrate/requirements.txt
STAMP  := $(VENV)/.installed-$(shell cat $(LOCKS) | cksum | cut -d' ' -f1)
# uv resolves for the Lambda (python3.12 on arm64 Linux) and, for the dev environment, any machine.
LOCK_ARGS := --quiet --generate-hashes --python-version 3.12 --custom-compile-command "make lock"

export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# uv comes from the dev lock too (hash-checked by pip), then installs exactly the lock.
$(STAMP): $(LOCKS)
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required (the Lambda runtime)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || { awk '/^uv==/{p=1;print;next} p&&/^ /{print;next} {p=0}' requirements-dev.txt >$(VENV)/uv.txt \
	  && $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(VENV)/uv.txt; }
	$(UV) pip sync --quiet --python $(PY) --require-hashes requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

.PHONY: install
install: $(STAMP) ## Create .venv (Python 3.12) with everything the app and the tests need

.PHONY: lock
lock: install ## Re-resolve the locks after editing a requirements .in file (UPGRADE=pkg to move one package)
	$(UV) pip compile $(LOCK_ARGS) --python-platform aarch64-manylinux_2_28 $(if $(UPGRADE),--upgrade-package $(UPGRADE)) \
	  layers/common/requirements.in -o layers/common/requirements.txt
	$(UV) pip compile $(LOCK_ARGS) --python-platform aarch64-manylinux_2_28 $(if $(UPGRADE),--upgrade-package $(UPGRADE)) \
	  functions/migrate/requirements.in -o functions/migrate/requirements.txt
	$(UV) pip compile $(LOCK_ARGS) --universal $(if $(UPGRADE),--upgrade-package $(UPGRADE)) \
	  requirements-dev.in -o requirements-dev.txt

.PHONY: run
run: install ## Run the whole app locally on :3000 (PostgreSQL, moto, gateway, worker, schedules); ARGS="--help" for options
	$(PY) -m local.run $(ARGS)

.PHONY: token
token: install ## Print a dev JWT for the local gateway (all scopes; SCOPES="a b" to choose)
	@$(PY) -m local.token $(if $(SCOPES),--scopes $(SCOPES))

# make test runs its three tiers on TEST_WORKERS processes (pytest-xdist; whole files per
# process, each process with its own database on the test server, its own moto and stacks; the
# files of a folder that shares a session stack all on one process, the longest first: the plan of
# tests/support/plan.py). 0: one process. With DATABASE_URL (one shared database) the default is 0.
TEST_WORKERS ?= $(if $(DATABASE_URL),0,2)
XDIST := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

# The tests start their PostgreSQL (.local/test-pg) once and keep it for the next run: each target
# that may start it says so when it ends, passed or failed; `make db-stop` stops it.
KEPT := $(PY) -m local.pg running

.PHONY: test
test: install clients ## Run the whole test suite, all three tiers (starts its own PostgreSQL; DATABASE_URL to use another)
	@# one run: each process runs its share of the unit tier (sockets blocked) before any other test
	@# (the plan of tests/support/plan.py hands the unit files out first)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS); status=$$?; $(KEPT); exit $$status

.PHONY: test-fast
test-fast: install ## The unit tier: no database, no sockets, a few seconds
	$(PY) -m pytest -m unit tests/unit -q -p no:schemathesis $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: install ## The integration tier: real PostgreSQL and moto, handlers in process
	$(PY) -m pytest -m integration -q $(XDIST) $(PYTEST_ARGS); status=$$?; $(KEPT); exit $$status

.PHONY: test-system
test-system: install clients ## The system tier: through the local gateway (HTTP, fuzz, security, reliability)
	$(PY) -m pytest -m system -q $(XDIST) $(PYTEST_ARGS); status=$$?; $(KEPT); exit $$status

.PHONY: lint
lint: install ## ruff, ruff format --check, mypy --strict, import contracts, function size gate (as CI)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m tools.function_gate

.PHONY: format
format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: migrate
migrate: install ## Apply the SQL migrations to DATABASE_URL (default: the local database)
	$(PY) -m hibachi.migrate $${DATABASE_URL:-$$($(PY) -m local.pg dsn)}

.PHONY: db
db: install ## Start the local PostgreSQL only and print its DSN
	$(PY) -m local.pg start

.PHONY: db-stop
db-stop: install ## Stop every PostgreSQL this checkout started (.local/pg, .local/test-pg, .local/test-pg-*)
	$(PY) -m local.pg stop-all

.PHONY: validate
validate: ## sam validate --lint and sam build (SAM CLI in its own .venv-sam)
	bash scripts/sam-check.sh

# The third-party clients CI runs against the API (clients/package.json, pinned by its package-lock.json):
# the MCP TypeScript SDK and Inspector CLI (tests/http/test_mcp_clients.py), Redocly and Spectral.
CLIENTS := clients/node_modules/.installed-$(shell cat clients/package-lock.json 2>/dev/null | cksum | cut -d' ' -f1)

$(CLIENTS): clients/package.json clients/package-lock.json
	@command -v npm >/dev/null || { echo "node and npm are required (the MCP and OpenAPI clients)"; exit 1; }
	cd clients && npm ci --no-audit --no-fund --loglevel=error
	@rm -f clients/node_modules/.installed-*; touch $@

.PHONY: clients
clients: $(CLIENTS) ## Install the npm clients (MCP SDK, MCP Inspector, Redocly, Spectral) from clients/package-lock.json

.PHONY: lint-api
lint-api: clients ## Lint the committed OpenAPI document with Redocly and Spectral (0 errors, 0 unjustified warnings)
	clients/node_modules/.bin/redocly lint functions/docs/openapi.json
	clients/node_modules/.bin/spectral lint functions/docs/openapi.json --fail-severity=warn

.PHONY: openapi
openapi: install ## Regenerate functions/docs/openapi.json from the code (a test fails when it is stale)
	$(PY) -m local.openapi

.PHONY: bench
bench: install ## Run the benchmark and rewrite BENCHMARKS.md
	$(PY) -m bench.run

.PHONY: bench-scale
bench-scale: install ## The scale benchmark (issue 22): loads 10M messages, 1M bookings; rewrites its BENCHMARKS.md section (ARGS="--scale 0.05" to try)
	$(PY) -m bench.scale $(ARGS)

.PHONY: clean
clean: ## Stop this checkout's PostgreSQL servers, remove build output and caches (keeps .venv and data)
	@if [ -x $(PY) ]; then $(PY) -m local.pg stop-all; fi
	rm -rf .aws-sam .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

export PYTHONPATH := $(CURDIR)/layers/common:$(CURDIR)
