# Everything installs itself into .venv from the pinned constraints: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the extras installed: `make install EXTRAS=postgres` for a lean one (the tests need them all)
EXTRAS ?= dev,sandbox,postgres,s3,report,pii,dagster
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install demo test test-unit lint bench bench-100k bench-views bench-sandbox clean

# pip -qq: errors only (-q still shows the build backend's notices, e.g. setuptools' on editables)
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# the sandbox's campaigns are Indian: the demo's days and hours are Asia/Kolkata's unless set
demo: $(STAMP)
	SOURCES__NEURON__TIMEZONE=$${SOURCES__NEURON__TIMEZONE:-Asia/Kolkata} $(BIN)/neuron-calls demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 4 --dist worksteal  # 4 workers on 2 cores: the end-to-end tests mostly wait on processes, servers and rate limits

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

lint: $(STAMP)
	$(BIN)/ruff check pipelines tests bench
	$(BIN)/ruff format --check pipelines tests bench
	$(BIN)/mypy pipelines
	$(BIN)/sqlfluff lint pipelines/warehouse/sql

bench: $(STAMP)
	$(BIN)/python bench/bench_sync.py
	$(BIN)/python bench/bench_publish.py
	$(BIN)/python bench/bench_recordings.py
	$(BIN)/python bench/bench_ratelimit.py
	$(BIN)/python bench/bench_pii.py

# 100,000- and 300,000-call histories at 128 in flight: the full sync's peak RSS and dlt's working
# folder, then an unchanged run
bench-100k: $(STAMP)
	for calls in 100000 300000; do \
		$(BIN)/python bench/bench_sync.py --calls $$calls --concurrency 128 --skip-baseline \
			--skip-views --skip-postgres --efficiency --checkpoints --fixed-calls 0 --ladder \
			|| exit 1; \
	done

bench-views: $(STAMP)
	$(BIN)/python bench/bench_views.py

bench-sandbox: $(STAMP)
	$(BIN)/python bench/bench_sandbox.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
