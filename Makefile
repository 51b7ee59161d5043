# attnverify: `make verify` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: verify test strict bench clean

# Create the virtual environment if missing and install the project with exact pins
# (constraints.txt), once per change of pyproject.toml or the pins.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,models]'
	touch $(STAMP)

## verify: run every registered claim; write docs/report.md, docs/report.html, docs/results.json
verify: $(STAMP)
	$(BIN)/attnverify verify

## strict: as verify, but exit 1 if any claim is refuted or inconclusive
strict: $(STAMP)
	$(BIN)/attnverify verify --strict

## test: the test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q

## bench: the dual-solver benchmark, side by side with SciPy and CVXPY; writes docs/bench.md
bench: $(STAMP)
	$(BIN)/python -m attnverify.bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
