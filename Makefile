# Everything installs itself into .venv from the pinned constraints: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit lint bench bench-100k bench-views bench-sandbox clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,sandbox,postgres,s3,dagster]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/neuron-calls demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 --dist worksteal  # 3 workers on 2 cores: the end-to-end tests mostly wait on processes and servers

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

lint: $(STAMP)
	$(BIN)/ruff check pipelines tests bench
	$(BIN)/ruff format --check pipelines tests bench
	$(BIN)/mypy pipelines
	$(BIN)/sqlfluff lint sql

bench: $(STAMP)
	$(BIN)/python bench/bench_sync.py
	$(BIN)/python bench/bench_publish.py
	$(BIN)/python bench/bench_recordings.py
	$(BIN)/python bench/bench_ratelimit.py

# a 100,000-call history at 128 in flight: the full sync's peak RSS, then an unchanged run
bench-100k: $(STAMP)
	$(BIN)/python bench/bench_sync.py --calls 100000 --concurrency 128 --skip-baseline \
		--skip-views --skip-postgres --efficiency --fixed-calls 0 --ladder

bench-views: $(STAMP)
	$(BIN)/python bench/bench_views.py

bench-sandbox: $(STAMP)
	$(BIN)/python bench/bench_sandbox.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
