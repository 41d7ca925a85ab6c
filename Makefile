# Baton's developer commands. Everything installs into .venv; nothing is needed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint demo sim extract-oai clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## test: lint, then the whole suite against real Redis (a private redis-server is started when none answers)
test: lint
	scripts/with-redis $(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff over the code and the tests
lint: $(STAMP)
	$(VENV)/bin/ruff check app baton workers simulator tests scripts

## demo: Baton (web + worker) against the built-in Twilio simulator with scripted agents
demo: $(STAMP)
	scripts/with-redis $(VENV)/bin/baton demo $(DEMO_ARGS)

## sim: the Twilio simulator alone, with the default scenario
sim: $(STAMP)
	$(VENV)/bin/baton sim

## extract-oai: regenerate simulator/twilio_oai/extract.json from ../shared/twilio-oai
extract-oai: $(STAMP)
	$(PY) scripts/extract_twilio_oai.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
