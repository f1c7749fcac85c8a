# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: run test setup services bench lint clean

run: setup
	@echo "API on http://127.0.0.1:5000 (docs at /api/docs); mail sink on 127.0.0.1:1025 prints below"
	$(BIN)/honcho start -f Procfile

test: setup
	@echo "=== test leg 1/2: SQLite ==="
	TEST_REDIS_DB=11 $(BIN)/pytest
	@if scripts/ensure-postgres.sh; then \
		echo "=== test leg 2/2: PostgreSQL (a fresh database on 127.0.0.1:5432) ==="; \
		TEST_DATABASE_URL=$(PG_TEST_URL) TEST_REDIS_DB=12 $(BIN)/pytest; \
	else \
		echo ""; \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
		echo "!!! SKIPPED: the PostgreSQL leg. No PostgreSQL answers on 127.0.0.1:5432 and   !!!"; \
		echo "!!! none could be started. Only the SQLite leg ran.                            !!!"; \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	fi

bench: setup
	$(BIN)/python -m bench

lint: $(INSTALLED)
	$(BIN)/ruff check .

# The set-up both commands share: the virtualenv, a Redis, the schema and the demo catalogue.
setup: $(INSTALLED) services
	@mkdir -p instance .run
	$(FLASK) db upgrade
	$(FLASK) seed-demo

services:
	@scripts/ensure-redis.sh

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		echo "installing python3-venv"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3-venv && \
		rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

clean:
	rm -rf $(VENV) .run instance/*.db
