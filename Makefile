# The two commands: `make run` (the whole system, end to end, locally) and `make test`.
# Both call `make setup` first, which is idempotent and takes about a second once installed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# include/ and plugins/ hold importable Airflow-side packages, as on Astro's PYTHONPATH.
export PYTHONPATH := $(CURDIR)/include:$(CURDIR)/plugins

.PHONY: setup class-archive run test test-fast up down status lint format bench docs payloads lock clean

setup:
	@setup/setup.sh

run: setup
	@$(PY) -m local.story $(ARGS)

# PYTEST_WORKERS=N runs the suite on N pytest-xdist workers (each test file whole on one worker,
# the e2e folder on one; tests/support/ordering.py); PYTEST_WORKERS=0 runs it in one process.
# The default is two workers (one process on a one-core machine): in one process a third of two
# cores sits idle while tests wait on the scheduler, a service or a JVM start (figures in
# docs/performance.md).
NPROC := $(shell nproc 2>/dev/null || echo 2)
PYTEST_WORKERS ?= $(if $(filter 1,$(NPROC)),0,2)
XDIST := $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)

# The tests' Spark JVMs map a class-data-sharing archive of Spark's classes, built here once
# (about 80 s; then under a second) and rebuilt when the JDK or the jars change
# (local/spark/class_archive.py).
class-archive: setup
	@$(PY) -m local.spark.class_archive

test: class-archive
	@$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: class-archive
	@$(PY) -m pytest $(XDIST) -m "not e2e" $(PYTEST_ARGS)

up: setup
	@$(PY) -m local.stack up $(ARGS)

down:
	@$(PY) -m local.stack down

status:
	@$(PY) -m local.stack status

lint: setup
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: setup
	@$(PY) -m bench $(ARGS)

# Render every runs/submit body of ENV (dev, prod) into .local/payloads/<env>/ and validate it
# against the Jobs API: `make payloads ENV=prod ARGS="--git-ref v1.4.0"`. Dev and prod are
# rendered twice: on job clusters and on serverless jobs compute (<env>-serverless/).
payloads: setup
	@$(PY) -m deploy.payloads render $(if $(ENV),--env $(ENV)) $(ARGS)
	@$(if $(filter dev prod,$(ENV)),$(PY) -m deploy.payloads render --env $(ENV) --compute serverless $(ARGS))

# Generated docs: the quality checks' table (docs/quality_checks.md) and the architecture
# diagram (docs/architecture.dot), both from the code; the diagram rendered to SVG by Graphviz.
docs: setup
	@$(PY) -m local.docs.quality_checks
	@$(PY) -m local.docs.architecture
	@command -v dot >/dev/null 2>&1 || { echo "make docs: Graphviz's 'dot' is not installed, so docs/architecture.svg was not rendered; install Graphviz (Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz) and run make docs again" >&2; exit 1; }
	@dot -Tsvg docs/architecture.dot -o docs/architecture.svg && echo "rendered docs/architecture.svg"

# Re-resolve the pinned requirements and rewrite the lock file (constraints.txt).
lock:
	@rm -rf .lock-venv && python3 -m venv .lock-venv \
	&& .lock-venv/bin/pip install -q -r requirements.txt -r requirements-local.txt \
		-r spark_jobs/requirements.txt -r requirements-dev.txt \
	&& { sed -n '1,2p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable | sort -f; } > constraints.txt.new \
	&& mv constraints.txt.new constraints.txt && rm -rf .lock-venv

clean: down
	rm -rf .local
