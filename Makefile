# Baton's developer commands. Everything installs into .venv; nothing is needed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint browser plugin demo sim bench extract-oai clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## test: lint, the Flex UI plugin, then the whole suite against real Redis (a private redis-server is started when
## none answers); the suite's browser tests use the plugin's test page that `plugin` builds
test: lint browser plugin
	scripts/with-redis $(PY) -m pytest $(PYTEST_ARGS)

## plugin: the Flex UI plugin in flex-plugin/, with Node.js 20 and npm. `npm ci` installs exactly what its committed
## package-lock.json lists into flex-plugin/node_modules (again only when package.json or the lock changes):
## @twilio/flex-plugin-scripts 7 (Twilio's build tooling: webpack 4, Babel, Jest 27), @twilio/flex-plugin,
## @twilio/flex-ui 2.17 (its types, and the React version the tooling checks; never bundled), React 17,
## Twilio Paste, TypeScript, React Testing Library, jest-axe and esbuild (for the browser test's page).
## Then: the type check, the Jest tests, the production bundle (flex-plugin/build/plugin-baton.js) and the page.
NPM ?= npm
PLUGIN_STAMP := flex-plugin/node_modules/.installed
$(PLUGIN_STAMP): flex-plugin/package.json flex-plugin/package-lock.json
	@command -v $(NPM) >/dev/null 2>&1 || { echo "npm is missing: install Node.js 20 and npm (the Flex UI plugin needs them)"; exit 1; }
	cd flex-plugin && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $(PLUGIN_STAMP)

plugin: $(PLUGIN_STAMP)
	cd flex-plugin && $(NPM) run --silent typecheck
	cd flex-plugin && $(NPM) test --silent
	cd flex-plugin && $(NPM) run --silent build
	cd flex-plugin && $(NPM) run --silent build:harness

## lint: ruff over the code, the tests and the bench; then import-linter's contracts on the layering (setup.cfg)
lint: $(STAMP)
	$(VENV)/bin/ruff check app baton workers simulator tests scripts bench gunicorn.conf.py
	$(VENV)/bin/lint-imports --no-logo

## browser: Debian's chromium for the browser tests, installed only when missing and only as root. Without it the
## browser tests skip themselves, except in CI (CI=true), where a missing chromium fails this target (and the tests)
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u 2>/dev/null)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "$(CHROMIUM) is missing: apt-get update && apt-get install -y chromium (for the browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi; \
	if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	problem="$(CHROMIUM) is missing and could not be installed (as root: apt-get install -y chromium; or set CHROMIUM)"; \
	if [ "$(CI)" = true ]; then echo "$$problem: CI=true runs the browser tests, so this fails" >&2; exit 1; fi; \
	echo "$$problem: the browser tests will be skipped"

## demo: Baton (web + worker) against the built-in Twilio simulator with scripted agents
demo: $(STAMP)
	scripts/with-redis $(VENV)/bin/baton demo $(DEMO_ARGS)

## sim: the Twilio simulator alone, with the default scenario
sim: $(STAMP)
	$(VENV)/bin/baton sim

## bench: performance figures on this machine (docs/benchmarks.md): the Procfile's processes against the simulator,
## load from wrk and a separate process; prints one table, writes bench/results.json; under 10 minutes.
## wrk comes from Debian's package, installed when missing and only as root. BENCH_ARGS: see python -m bench.run -h
bench: $(STAMP)
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "wrk is missing: apt-get install -y wrk"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
	    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }; \
	else \
	  echo "wrk is missing and cannot be installed here (needs root and apt-get): apt-get install -y wrk"; exit 1; \
	fi
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is missing: apt-get install -y redis-server"; exit 1; }
	$(PY) -m bench.run $(BENCH_ARGS)

## extract-oai: regenerate simulator/twilio_oai/extract.json from ../shared/twilio-oai
extract-oai: $(STAMP)
	$(PY) scripts/extract_twilio_oai.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info flex-plugin/node_modules flex-plugin/build flex-plugin/harness/dist
