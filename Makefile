# The two commands: `make demo` and `make test`. Everything else is set up on demand.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: setup demo test lint typecheck pytest bench soak clean

setup: .venv/.synced

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

demo: setup
	$(RUN) python examples/demo.py

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: setup
	$(RUN) mypy

pytest: setup
	$(RUN) pytest -q

test: lint typecheck pytest

bench: setup
	$(RUN) python bench/source_throughput.py
	$(RUN) python bench/pipeline_cpu.py
	$(RUN) python bench/klaviyo_throughput.py
	$(RUN) python bench/mailchimp_throughput.py
	$(RUN) python bench/realtime_latency.py
	$(RUN) python bench/state_growth.py

soak: setup
	$(RUN) python bench/soak.py --schedule

clean:
	rm -rf .venv .tools .espbridge .pytest_cache .mypy_cache .ruff_cache
