# Two entry points, each installs what it needs on first use:
#   make test    run the test suite        make smoke   render presets/smoke.yaml
# Installs come from the committed lock (requirements/lock.txt: every package, exact version, sha256 hashes).
SHELL   := /bin/bash
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
LOCK    := requirements/lock.txt
# The lock is made for the machines we render on (Linux x86_64, CPython 3.11) by uv, from pyproject's ranges,
# requirements/extra.in (mediapipe, the installers), torch pinned by requirements/torch.txt and mediapipe's
# clashing dependencies dropped by requirements/overrides.txt.
LOCK_IN := pyproject.toml requirements/extra.in --all-extras -c requirements/torch.txt \
           --override requirements/overrides.txt --python-version 3.11 \
           --python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package anim
DRIFT   := .drift

.PHONY: install browser test test-slow test-all smoke lint lock drift clean

install: $(STAMP)

# --no-deps + --require-hashes: pip installs exactly the lock, nothing resolved on the day.
# pip (not uv) installs, because pip takes torch from the machine's wheel cache instead of a 3 GB download.
$(STAMP): $(LOCK) pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Headless Chromium for the dashboard's browser tests (tests/serve/), from Debian; only when chromedriver is missing.
browser:
	@command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

test: lint browser
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP) browser
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q

smoke: $(STAMP)
	$(BIN)/python render.py presets/smoke.yaml

lint: $(STAMP)
	$(BIN)/lint-imports --no-cache

# Refresh the lock after changing a dependency in pyproject (keeps every other pin; `make lock UPGRADE=1`
# moves all to the newest the ranges allow). Then `make test`: the pins in the lock are those the suite passed with.
lock: $(STAMP)
	$(BIN)/uv pip compile $(LOCK_IN) $(if $(UPGRADE),--upgrade) -o $(LOCK)

# Drift check (not in CI): resolve the newest versions the ranges allow into a scratch venv and run the
# default suite there, so the next upstream break is found by us, on purpose. The diff shows what moved.
drift: $(STAMP)
	rm -rf $(DRIFT) && mkdir -p $(DRIFT)
	$(BIN)/uv pip compile $(LOCK_IN) --upgrade --no-header -o $(DRIFT)/lock.txt
	-diff <(grep -E '^[a-z0-9]' $(LOCK)) <(grep -E '^[a-z0-9]' $(DRIFT)/lock.txt)
	$(PY) -m venv $(DRIFT)/venv
	$(DRIFT)/venv/bin/python -m pip install -q --no-deps --require-hashes -r $(DRIFT)/lock.txt
	$(DRIFT)/venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	$(DRIFT)/venv/bin/python -m pytest -q -m "not slow" -p no:cacheprovider

clean:
	rm -rf $(VENV) $(DRIFT) outputs .pytest_cache .hypothesis
