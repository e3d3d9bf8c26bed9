# hcp: `make demo` and `make test` set up everything they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test deps venv lint bench bench-full screens voice faults clean help

help:
	@echo "make demo    set up and run the hall simulation"
	@echo "make test    set up and run the test suite"
	@echo "make lint    ruff"
	@echo "make bench   benchmarks (figures for docs/benchmarks.md)"
	@echo "make screens render every touchscreen screen to docs/screens/"

deps:
	@bash scripts/install-deps.sh

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: deps $(STAMP)

demo: venv
	$(VENV)/bin/hcp demo

test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) bench/run_all.py

screens: venv
	SDL_VIDEODRIVER=dummy $(PY) scripts/render_screens.py

voice: venv
	$(PY) scripts/make_voice.py

clean:
	rm -rf $(VENV) build *.egg-info
