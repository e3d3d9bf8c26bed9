# hcp: `make demo` and `make test` set up everything they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-console test explore deps venv lint bench bench-full screens voice faults clean help install-agent install-collector config-doc

help:
	@echo "make demo    set up and run the hall simulation, then open the web console on it (Ctrl-C stops)"
	@echo "make demo-console  the hall simulation, then the web console on it with a demo account (Ctrl-C stops)"
	@echo "make test    set up and run the test suite"
	@echo "make explore property tests with new random examples (EXPLORE_RUNS=5)"
	@echo "make lint    ruff"
	@echo "make bench   benchmarks (figures for docs/benchmarks.md)"
	@echo "make faults  the fault-injection suite, long run (figures for docs/reliability.md)"
	@echo "make screens render every touchscreen screen to docs/screens/"

deps:
	@bash scripts/install-deps.sh

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

# The console's chart library from the npm registry, pinned with its sha512 in package-lock.json (npm ci checks it).
CONSOLE_STATIC := collector/console/static
$(CONSOLE_STATIC)/node_modules/.package-lock.json: $(CONSOLE_STATIC)/package-lock.json
	cd $(CONSOLE_STATIC) && npm ci --no-audit --no-fund --ignore-scripts

venv: deps $(STAMP) $(CONSOLE_STATIC)/node_modules/.package-lock.json

# At a terminal the demo then serves the console on its database with a demo account (Ctrl-C stops);
# run by a script (no terminal on stdin) it ends after the simulation and says how to open the console.
demo: venv
	@if [ -t 0 ]; then $(VENV)/bin/hcp demo --console; else $(VENV)/bin/hcp demo; \
	  echo "the web console over a demo hall: make demo-console (or hcp demo --console)"; fi

demo-console: venv
	$(VENV)/bin/hcp demo --console

test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# `make test` draws the same property-test examples every run; this draws new ones, EXPLORE_RUNS times.
EXPLORE_RUNS ?= 5
explore: venv
	for run in $$(seq $(EXPLORE_RUNS)); do \
	  $(PY) -m pytest -q -p no:cacheprovider --hypothesis-profile=explore --hypothesis-seed=$$RANDOM \
	    $$(grep -l '^from hypothesis' tests/*.py) || exit 1; \
	done

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) bench/run_all.py

# The fault suite's long run (hours); `make test` runs it at CI size. FAULTS_ARGS=--only agent_kill ...
faults: venv
	$(PY) scripts/run_faults.py --long $(FAULTS_ARGS)

screens: venv
	SDL_VIDEODRIVER=dummy $(PY) scripts/render_screens.py

voice: venv
	$(PY) scripts/make_voice.py

# On a terminal or the collector host, as root, from the checkout in /opt/hcp (docs/install.md).
install-agent: venv
	$(VENV)/bin/hcp install-service agent

install-collector: venv
	$(VENV)/bin/hcp install-service collector

config-doc: venv
	$(PY) scripts/gen_config_doc.py

clean:
	rm -rf $(VENV) build *.egg-info
