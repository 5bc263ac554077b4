# Two entry points, each installs what it needs on first use:
#   make test    run the test suite        make smoke   render presets/smoke.yaml
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-slow test-all smoke clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so no dependency resolution pulls a second build
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev,pose,cluster]'
	# no deps: mediapipe would pull opencv-contrib-python (a second cv2), jax and sounddevice
	$(BIN)/python -m pip install -q --no-deps mediapipe==0.10.14
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

smoke: $(STAMP)
	$(BIN)/python render.py presets/smoke.yaml

clean:
	rm -rf $(VENV) outputs .pytest_cache .hypothesis
