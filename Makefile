# fleetmon: `make run` starts the local stack, `make test` runs every test.
# Both install what is missing first (Debian packages as root, then a .venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEB_STAMP := $(VENV)/.debs
# Real servers the tests and the local stack run (Debian 12 packages).
DEB_PKGS := prometheus prometheus-alertmanager zookeeper prometheus-node-exporter mtail \
            chromium victoria-metrics openssl systemd-journal-remote
# What `make deb` needs to build and check fleetmon's own Debian packages.
DEB_BUILD_PKGS := debhelper dh-virtualenv dpkg-dev build-essential fakeroot lintian python3-venv python3-dev
DEB_OUT ?= build/deb
PYTEST_ARGS ?=
BENCH ?=

.PHONY: install debs deb-build-deps deb wheel test run stop status bench lint dashboards recording-rules schemas screenshots clean

install: $(STAMP)

# Debian packages: only the missing ones, non-interactively; apt-get update only when needed.
debs:
	@$(MAKE) --no-print-directory need-debs PKGS="$(DEB_PKGS)"

deb-build-deps:
	@$(MAKE) --no-print-directory need-debs PKGS="$(DEB_BUILD_PKGS)"

.PHONY: need-debs
need-debs:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(DEB_STAMP): Makefile
	@$(MAKE) --no-print-directory debs
	@mkdir -p $(VENV) && touch $@

$(STAMP): setup.cfg pyproject.toml $(DEB_STAMP)
	@if [ ! -x $(PY) ]; then \
	  $(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }; \
	fi
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	@touch $@

test: install
	@# Service daemons Debian may have started at install time are not used: tests start their own.
	$(PY) -m pytest $(PYTEST_ARGS)

run: install
	$(PY) -m fleetmon.stack start

stop:
	@if [ -x $(PY) ]; then $(PY) -m fleetmon.stack stop; else echo "nothing to stop"; fi

status:
	@$(PY) -m fleetmon.stack status

bench: install
	$(PY) -m bench $(BENCH)

dashboards: install
	$(PY) -m grafana.build

# prometheus/rules/recording.yml from the signals table (fleetmon/signals.py).
recording-rules: install
	$(PY) -m fleetmon.signals --write

# Regenerate fleetmon/validators/ after editing docs/schemas/*.schema.json (tests/test_schemas.py
# fails until you do).
schemas: install
	$(PY) -m fleetmon.schema --write

# Refresh the console screenshots docs/dashboards.md shows (a real Chromium on real data).
screenshots: install
	FLEETMON_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/dashboards/test_consoles.py

# Wheel and sdist in dist/ (python -m build: the sdist, then the wheel built from it).
wheel: install
	$(PY) -m build --outdir dist .

# fleetmon-exporter and fleetmon-server .debs in $(DEB_OUT)/ (dh-virtualenv; docs/deploy.md), then
# lintian. Built from a copy of the checkout (tracked and new files), because dpkg-buildpackage
# writes its results beside the source tree. PATH is Debian's own: no pyenv shim or venv python.
deb: deb-build-deps
	rm -rf $(DEB_OUT) && mkdir -p $(DEB_OUT)/src
	git ls-files -z --cached --others --exclude-standard | \
	  (while IFS= read -r -d '' f; do [ -e "$$f" ] && printf '%s\0' "$$f"; done) | \
	  xargs -0 cp -P --parents -t $(DEB_OUT)/src
	cd $(DEB_OUT)/src && env -u VIRTUAL_ENV -u PYTHONPATH PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	  dpkg-buildpackage -us -uc -b
	lintian --fail-on error $(DEB_OUT)/*.changes
	@ls -l $(DEB_OUT)/*.deb

lint: install
	$(VENV)/bin/ruff check .

clean: stop
	rm -rf $(VENV) .run .pytest_cache .ruff_cache
