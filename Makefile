# The README commands (serve, test) and `make check` create .venv on first use (Python 3.11+, from requirements*.lock).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where `make serve` listens: `make serve PORT=8300` when 8000 is taken.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test check bench install system-packages

$(BIN)/.installed: requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.lock
	touch $@

install: $(BIN)/.installed

serve: $(BIN)/.installed  ## run the API on $(HOST):$(PORT) (default 127.0.0.1:8000) with its own PostgreSQL and the demo seed
	$(BIN)/invoke serve --host $(HOST) --port $(PORT)

system-packages:  ## PostgreSQL, sshd, nginx, supervisor, zstd, cron, wrk, chromium (apt, when missing)
	bash .ci/system-packages

check: $(BIN)/.installed  ## static checks: ruff lint, ruff format, mypy (seconds; CI runs it before the tests)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-packages $(BIN)/.installed  ## run the whole test suite
	$(BIN)/invoke test

# make bench DATA=large|both (10 million purchases, cached; both prints large/small ratios),
# make bench SOAK=10 (the 10-minute soak; fewer minutes for a shorter one), PLANS=1 (query plans),
# make bench PASSES=4 (four passes back to back on the same database, then their medians and trend),
# make bench DATA=both PASSES=3 ALTERNATE=1 (rounds of one pass at each size, for the ratios),
# make bench STANDBY=sync|async (a streaming standby of the bench's PostgreSQL; sync: commits wait for it).
bench: $(BIN)/.installed  ## run the API benchmark and print its figures
	$(BIN)/invoke bench $(if $(DATA),--data-size $(DATA)) $(if $(SOAK),--soak --minutes $(SOAK)) $(if $(PLANS),--plans) $(if $(PASSES),--passes $(PASSES)) $(if $(ALTERNATE),--alternate) $(if $(STANDBY),--standby $(STANDBY))
