# paylink: the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen

.PHONY: run test demo lint format typecheck env bench asyncapi migrate clean

env: .venv/.synced
.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv
	$(UV) sync --frozen
	@touch $@

run: env ## Start the service (migrations, workers, relay, scheduler, exporter) and run the demo once
	$(RUN) paylink run --demo

demo: env ## Full scenario on a throwaway service with a 20 s link TTL (incl. an expiring link)
	$(RUN) paylink demo

test: env ## Unit, provider, deploy, integration and reliability tests (real RabbitMQ + PostgreSQL)
	$(RUN) pytest -q

lint: env
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy domain messages workers

format: env
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

migrate: env
	$(RUN) paylink migrate

asyncapi: env ## Regenerate docs/asyncapi.yaml from messages/
	$(RUN) paylink asyncapi --write

bench: env ## Benchmarks: floors and paylink throughput, latency, expiry; writes bench/results.md
	$(RUN) python -m bench

clean:
	rm -rf var .pytest_cache .hypothesis .mypy_cache .ruff_cache
