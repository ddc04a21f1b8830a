# streamcore: the two commands a new machine needs.
#   make run   sets up from nothing, then runs the broker (the main job)
#   make test  sets up from nothing, then runs every check
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Hypothesis example budgets for the fuzz tests (CI sets the issue's minimums).
export STREAMCORE_FUZZ_EXAMPLES ?= 100000

.PHONY: run test venv build lint typecheck rust-check interop-tools pytest-native pytest-ecosystem pytest-reference pytest-late run-ecosystem-pass run-reference-pass pytest-dist dist bench-history clean

$(VENV)/.deps: pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.deps

build: venv
	STREAMCORE_REQUIRE_EXTENSIONS=1 $(PIP) install -q --no-build-isolation --no-deps --force-reinstall .

rust-check:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -q -- -D warnings
	cargo test --workspace -q

lint: venv
	$(VENV)/bin/ruff check python tests tools benchmarks asv_benchmarks setup.py
	$(VENV)/bin/ruff format --check python tests tools benchmarks asv_benchmarks setup.py

# mypy over the package (config in pyproject.toml); the native stubs are checked against the
# built extensions by tests/test_stubs.py (mypy.stubtest).
typecheck: venv
	PYTHONPATH=python $(PY) -m mypy

# kcat (librdkafka 2.0 as Debian ships it) for the interop tests; java and mvn come with
# the machine. A missing tool makes its tests fail with a message naming it.
interop-tools:
	@command -v kcat >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null) \
		|| echo "warning: kcat not installed (as root: apt-get install kcat)"; }

# tests/distribution builds the sdist and wheels from scratch (minutes): once per run, on its own.
PYTEST_ARGS := -q --durations=25 --ignore=tests/distribution

pytest-native: build interop-tools
	$(PY) -m pytest $(PYTEST_ARGS) -p no:randomly -m "not ecosystem" tests

# The real-tool ecosystem cases (Kafka Connect, Streams, Quix, exactly-once loops; each
# against streamcore and the Apache Kafka control), native build only. Each case starts
# its own brokers and tools, so this pass runs beside the pure-Python pass (see
# pytest-late): mostly JVM start-up and waiting, it leaves the second core to the other.
pytest-ecosystem: build interop-tools
	$(MAKE) --no-print-directory run-ecosystem-pass

run-ecosystem-pass:
	$(PY) -m pytest $(PYTEST_ARGS) -p no:randomly -m ecosystem tests/ecosystem

# Real third-party tools and the Apache Kafka control (interop, ecosystem, *apache* cases) run
# once, in the native pass; the pure-Python pass keeps every unit, property, protocol and
# live-broker test.
pytest-reference: build
	$(MAKE) --no-print-directory run-reference-pass

run-reference-pass:
	STREAMCORE_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_ARGS) -m "not ecosystem and not interop" -k "not apache" tests

pytest-dist: build
	$(PY) -m pytest -q --durations=5 tests/distribution

# The ecosystem and pure-Python passes are independent: run side by side, each one's
# output printed whole when it ends.
pytest-late: build interop-tools
	$(MAKE) --no-print-directory -j2 --output-sync=target run-ecosystem-pass run-reference-pass

test: build rust-check lint typecheck interop-tools pytest-native pytest-late pytest-dist
	$(VENV)/bin/streamcore info

# The published artefacts: dist/streamcore_kafka-*.tar.gz and a manylinux wheel (auditwheel repair
# relabels the wheel built here with the oldest manylinux policy its symbols allow; no Docker).
dist: venv
	rm -rf dist
	$(PY) -m build --sdist --outdir dist .
	STREAMCORE_REQUIRE_EXTENSIONS=1 $(PIP) wheel --no-deps -w dist/raw dist/streamcore_kafka-*.tar.gz
	PATH=$(VENV)/bin:$$PATH $(PY) -m auditwheel repair --plat auto -w dist dist/raw/streamcore_kafka-*.whl
	rm -rf dist/raw
	$(PY) -m auditwheel show dist/streamcore_kafka-*.whl

# asv history of the last commits (docs/performance.md): each commit is built in a worktree
# under asv_benchmarks/env/history and measured with the .venv interpreter, offline; then
# `asv publish` writes asv_benchmarks/html/index.html. Deliberately not after `build`: it
# leaves the .venv's installed package alone. Bound it with e.g.
#   make bench-history BENCH_HISTORY_COMMITS=2 BENCH_HISTORY_ARGS="--quick --bench bench_codec"
bench-history:
	PY=$(abspath $(PY)) BENCH_HISTORY_COMMITS="$(BENCH_HISTORY_COMMITS)" \
		BENCH_HISTORY_ARGS="$(BENCH_HISTORY_ARGS)" asv_benchmarks/history.sh

run: build
	$(VENV)/bin/streamcore broker --data-dir ./streamcore-data --host 127.0.0.1 --port 9092

clean:
	rm -rf $(VENV) build dist target python/streamcore/*.so python/*.egg-info
