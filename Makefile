# Two commands on a fresh machine: `make render` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: install render test lint typecheck pytest bench bench-100k bench-1m bench-state bench-publish-memory golden schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(TSTAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

install: $(STAMP)

render: $(STAMP)
	$(VENV)/bin/wellknown-build render examples/instances.yaml --out out

lint: $(TSTAMP)
	$(PY) -m ruff check wellknown_build tests bench
	$(PY) -m ruff format --check wellknown_build tests bench

typecheck: $(TSTAMP)
	$(PY) -m mypy

pytest: $(TSTAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: $(TSTAMP)
	$(PY) bench/run.py

# Render only, at fleet scale (minutes; the fixture is generated once into .bench/).
bench-100k: $(TSTAMP)
	BENCH_FLEET_INSTANCES=100000 BENCH_ONLY=fleet $(PY) bench/run.py

# A million issuers (tens of minutes; about 1 GB of fixture and output per place).
bench-1m: $(TSTAMP)
	BENCH_FLEET_INSTANCES=1000000 BENCH_ONLY=fleet BENCH_PLACES=disk $(PY) bench/run.py

# The state index at 2,000,000 objects (a few minutes, several GB of memory).
bench-state: $(TSTAMP)
	$(PY) bench/state_index.py

# Peak memory of publish (first, then nothing changed) of the 100,000-instance fleet to an
# in-memory bucket; BENCH_FLEET_INSTANCES=1000000 for a million (renders it once, minutes).
bench-publish-memory: $(TSTAMP)
	$(PY) bench/publish_memory.py

schema: $(STAMP)
	$(VENV)/bin/wellknown-build schema > wellknown_build/instances.schema.json

golden: $(STAMP)
	rm -rf tests/golden/example
	$(VENV)/bin/wellknown-build render examples/instances.yaml --out tests/golden/example
	rm -f tests/golden/example/.wellknown-build.lock tests/golden/example/.wellknown-build.cache

clean:
	rm -rf $(VENV) out .bench
