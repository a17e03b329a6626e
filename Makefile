# The two commands a new user needs: `make demo` and `make test`.
# Both create or reuse .venv and install the project with what it needs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-gm test test-fast lint typecheck check bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/govhub --home .govhub/demo demo

# The same scenario on the national suite: SM2 signatures over SM3, SM4 sealing (docs/gm.md).
demo-gm: $(STAMP)
	$(BIN)/govhub --home .govhub/demo-gm demo --suite gm

# Six workers on two cores: most tests wait on servers, disks and child processes rather than
# compute (the CPU is still half idle with four workers). On the 2-vCPU reference machine the
# suite took 565 s with two workers, 368-400 s with four and 328 s with six.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 6 --dist loadgroup

# The tests that start no server (parsers, codecs, Merkle proofs, CLI refusals): a few minutes.
# `make test` stays the full gate.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not servers"

lint: $(STAMP)
	$(BIN)/ruff check hub connectors adapters schemas ops tests
	$(BIN)/ruff format --check hub connectors adapters schemas ops tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# The whole signed and audited path next to raw nats-py (docs/performance.md); the `bench`
# extra brings matplotlib for the plot.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/govhub --home .govhub/bench bench pipeline --plot docs/perf/pipeline.png

clean:
	rm -rf .govhub .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
