# CAM Explorer — two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.PHONY: run test install install-dev browser bench peers load-test clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

## The requirements, then this project itself, editable and without dependencies (they are already in):
## it puts the `cam-explorer` command in .venv/bin; setuptools comes from the package registry.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements-ray.txt $(VENV)/.installed
	$(BIN)/python -m pip install -r requirements-dev.txt
	$(BIN)/python -m pip install -r requirements-ray.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Serve the app on the embedded default model (prints the local URL).
run: install
	$(BIN)/python -m streamlit run serve.py --server.port $(PORT)

## Debian's Chromium for the browser tests, when it is missing and apt is usable.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "note: /usr/bin/chromium missing and apt unusable: browser tests will be skipped"; fi; \
	fi

## Install the dev requirements (and Chromium), then run the whole suite.
test: install-dev browser
	$(BIN)/python -m pytest

## Timings (see docs/benchmarks.md); the peer libraries are a bench-only extra.
bench: install
	$(BIN)/python -m pip install -r requirements-bench.txt
	$(BIN)/python bench/bench_methods.py

## Our maps against captum's and pytorch-grad-cam's on the same input (see docs/benchmarks.md).
peers: install
	$(BIN)/python -m pip install -r requirements-bench.txt
	$(BIN)/python bench/peer_agreement.py

## 8 browser sessions against one local server (loopback only; stops by itself); see docs/benchmarks.md.
load-test: install-dev browser
	$(BIN)/python bench/load_test.py

clean:
	rm -rf $(VENV) test-output .pytest_cache

## Refresh the user guide's screenshots from the browser tests' output (run `make test` first).
screenshots:
	mkdir -p docs/screenshots
	cp test-output/screenshots/*.png docs/screenshots/
