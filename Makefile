# Baton's developer commands. Everything installs into .venv; nothing is needed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint browser demo sim extract-oai clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## test: lint, then the whole suite against real Redis (a private redis-server is started when none answers)
test: lint browser
	scripts/with-redis $(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff over the code and the tests
lint: $(STAMP)
	$(VENV)/bin/ruff check app baton workers simulator tests scripts gunicorn.conf.py

## browser: Debian's chromium for the admin page's browser test, installed only when missing and only as root
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "$(CHROMIUM) is missing: apt-get update && apt-get install -y chromium (for the browser test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    || echo "Could not install chromium: the browser test will be skipped"; \
	else \
	  echo "$(CHROMIUM) is missing and cannot be installed here (needs root and apt-get): the browser test will be skipped"; \
	fi

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
