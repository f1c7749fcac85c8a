# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
PYTEST ?= $(BIN)/pytest
# The browser the page tests drive (tests/browser.py); Debian's, never a downloaded build.
CHROMIUM ?= /usr/bin/chromium
# `make test-future`: the date the clock is moved to (any date `date -d` reads).
FUTURE ?= 2027-06-01 12:00:00
# Debian packages, with sudo when not root; waits for another apt run rather than failing.
APT := apt-get -o DPkg::Lock::Timeout=300
APT_INSTALL = SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	$$SUDO $(APT) update -qq && $$SUDO $(APT) install -y -qq

.PHONY: run test test-future browser translations setup services bench lint mutation clean

run: setup
	@echo "API on http://127.0.0.1:5000 (docs at /api/docs); mail sink on 127.0.0.1:1025 prints below"
	$(BIN)/honcho start -f Procfile

test: setup browser
	scripts/test-legs.sh "$(PYTEST)" "$(PG_TEST_URL)"

# Both legs with the clock of the test process, and of every Python process it starts, moved
# forward to FUTURE (tests/future_clock/sitecustomize.py): tests must not expire. Redis and
# PostgreSQL keep the real time. Not part of `make test`: it is the suite once more.
test-future:
	@echo "=== the clocks of the tests and of every process they start read $(FUTURE) UTC ==="
	PYTHONPATH=$(CURDIR)/tests/future_clock \
		TEST_CLOCK_SHIFT=$$(( $$(date -u -d '$(FUTURE)' +%s) - $$(date -u +%s) )) $(MAKE) test

# The page tests fail, never skip, without it: install it when it is missing.
browser:
	@test -x $(CHROMIUM) || { echo "installing chromium"; $(APT_INSTALL) chromium; }

# After changing a page's words: gather them, merge them into each language's catalogue
# (translate the new entries in leads/web/translations/*/LC_MESSAGES/messages.po), compile.
# The compiled .mo files are committed, so the app needs no build step.
translations: $(INSTALLED)
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext --no-location --omit-header \
		-o leads/web/translations/messages.pot leads
	$(BIN)/pybabel update -i leads/web/translations/messages.pot -d leads/web/translations \
		--no-fuzzy-matching
	$(BIN)/pybabel compile -d leads/web/translations

bench: setup
	$(BIN)/python -m bench

# Mutation testing of the pure domain modules (config in pyproject.toml), then of the
# transition tables, which mutmut leaves alone because they are data.
mutation: $(INSTALLED) services
	rm -rf mutants
	TEST_REDIS_DB=10 $(BIN)/mutmut run --max-children 2 >/dev/null 2>&1 || true
	@$(BIN)/mutmut results --all true 2>/dev/null | awk -F'[.:]' \
		'{n[$$2]++; if ($$NF ~ /killed/) k[$$2]++} END {for (m in n) \
		printf "mutmut: %s %d/%d killed (%.1f%%)\n", m, k[m], n[m], 100*k[m]/n[m]}'
	@$(BIN)/mutmut results 2>/dev/null | sed 's/^/  not killed: /'
	TEST_REDIS_DB=10 PYTHONPATH=. $(BIN)/python scripts/mutate_tables.py

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
		$(APT_INSTALL) python3-venv && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

clean:
	rm -rf $(VENV) .run instance/*.db
