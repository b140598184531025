# The two Quickstart commands and a few helpers. Every target bootstraps first,
# so each works from a fresh clone.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

setup:
	@bash scripts/bootstrap.sh

# The whole system on the embedded sandbox: managed Redis, sandbox gateways,
# hub, one worker per strategy. Ctrl-C stops everything. Watch it with
# `.venv/bin/multialpha status` in a second terminal.
demo: setup
	$(BIN)/multialpha config check
	$(BIN)/multialpha sandbox --precompute
	$(BIN)/multialpha up

test: setup
	$(BIN)/python -m pytest

# One table: every figure beside its floor measured in the same run (bench/RESULTS.md).
bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .multialpha .pytest_cache
