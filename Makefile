# Two entry points (see README):
#   make minif2f  - install everything, set up Lean + Mathlib + the REPL, prove miniF2F-test with Llemma-7B
#   make test     - create the test environment and run ruff, mypy and the whole test suite
#   make demo     - install the package and run `prover demo` (stand-ins for Lean and the model; no Lean needed)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
TEST_EXTRAS := hf,openai,dojo,ray,report,service,dev
RUN_EXTRAS := hf,openai,dojo,ray,report,service
DEMO_EXTRAS := report
OUT ?= runs/llemma7b-minif2f-test

.PHONY: test lint typecheck pytest minif2f demo clean-venv

$(VENV)/.installed-%:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls whatever build the index prefers.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[$*]'
	touch $@

lint: $(VENV)/.installed-$(TEST_EXTRAS)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

typecheck: $(VENV)/.installed-$(TEST_EXTRAS)
	$(PY) -m mypy

pytest: $(VENV)/.installed-$(TEST_EXTRAS)
	# exit 5 means "no tests collected" (e.g. a filtered run); not a failure of the suite.
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

test: lint typecheck pytest

minif2f: $(VENV)/.installed-$(RUN_EXTRAS)
	$(VENV)/bin/prover setup --yes
	$(VENV)/bin/prover eval minif2f --split test --backend hf --model EleutherAI/llemma_7b \
		--samples 32 --expansions 100 --timeout 600 --out $(OUT) --resume
	$(VENV)/bin/prover report $(OUT)

demo: $(VENV)/.installed-$(DEMO_EXTRAS)
	$(VENV)/bin/prover demo $(if $(DEMO_OUT),--out $(DEMO_OUT))

clean-venv:
	rm -rf $(VENV)
