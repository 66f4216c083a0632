# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: wheel test test-fast demo lint format c-test clean default-bundle bench browser readme-figures

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first: a looser requirement would pull several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,tflite,e5]'
	touch $(STAMP)

test: $(STAMP) c-test
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

c-test:
	$(MAKE) -C firmware_bridge/c test

# Debian's headless Chromium for the web view's browser test (tests/test_webview_browser.py skips without it)
# and a Japanese font for its screenshots (test-output/webview/). Needs root and apt-get; CI runs it.
browser:
	@if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -q "Noto Sans CJK"; then \
		echo "chromium and Noto CJK already installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk; \
	else \
		echo "make browser: needs root and apt-get (apt-get install chromium fonts-noto-cjk)" >&2; exit 1; \
	fi

# The demo needs only the device side (numpy, cobs, pyserial, onnxruntime, ecgdatakit: about 20 s from a warm
# package cache, no torch), so it has its own stamp in the same .venv; `make test` adds the rest later.
EDGE_STAMP := $(VENV)/.installed-edge
$(EDGE_STAMP): pyproject.toml
	@echo "== make demo: installing the device side only (numpy, cobs, pyserial, onnxruntime) into $(VENV) =="
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on --no-compile -e '.[edge]'  # --no-compile: imports compile lazily
	@touch $(EDGE_STAMP)
	@echo "== installed: activate with 'source $(VENV)/bin/activate', or call $(VENV)/bin/ecg-edge directly =="

# make demo [RHYTHM=afib] [DURATION=60] [RECORD=path/to/wfdb] [VIEW=127.0.0.1:8080 | VIEW=0.0.0.0:9000 | VIEW=127.0.0.1:0]
#           [NO_BROWSER=1]: VIEW is the web view's HOST:PORT (default 127.0.0.1:8080, port 0: any free port).
RHYTHM   ?= lbbb
DURATION ?= 30
VIEW     ?=
demo: $(EDGE_STAMP)
	$(PY) -m edge.cli.demo --rhythm $(RHYTHM) --duration $(DURATION) $(if $(RECORD),--record $(RECORD)) $(if $(VIEW),--view $(VIEW)) $(if $(NO_BROWSER),--no-browser)

# The wheel for a board: `pip install dist/ecg_clip_ja-*.whl[edge]` there (docs/deploy.md).
wheel: $(EDGE_STAMP)
	rm -rf build/lib build/bdist.*
	$(PY) -m pip wheel --no-deps -w dist .
	@ls -l dist/ecg_clip_ja-*.whl

DATA ?= ../shared/data
default-bundle: $(STAMP)
	scripts/build_default_bundle.sh $(DATA)

bench: $(STAMP)
	$(PY) bench/bench_accuracy.py --data $(DATA)
	$(PY) bench/bench_edge.py --bundle edge/bundles/default --checkpoint runs/default/checkpoint.pt
	$(PY) bench/bench_redecide.py
	$(PY) scripts/update_readme_figures.py  # the README's edge table from BENCHMARKS.md and the bundle

readme-figures:
	$(PY) scripts/update_readme_figures.py

lint: $(STAMP)
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) firmware_bridge/c/build .pytest_cache
