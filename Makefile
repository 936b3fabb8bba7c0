# LayerLab developer entry points.
#   make run    - open the app (creates/updates .venv first)
#   make test   - run the whole test suite
#   make bench  - run every bench/*.py (installs the [bench] extra)
#   make clean  - remove build outputs and caches (keeps .venv; `make distclean` removes it too)
#
# PYTHON picks the interpreter that creates .venv (3.10 or newer):  make test PYTHON=python3.12
# PYTEST_ARGS passes extra arguments to pytest:                      make test PYTEST_ARGS="-k graph -x"

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip install --progress-bar off

# Re-install only when the dependency declarations change.
REQUIREMENTS := $(wildcard requirements*.txt)
STAMP        := $(VENV)/.installed
BENCH_STAMP  := $(VENV)/.installed-bench

.PHONY: run test bench clean distclean venv

run: $(STAMP)
	$(VPY) main.py

# pytest exits 5 when it collected no tests: that is a failure, never a silent pass.
test: $(STAMP)
	@$(VPY) -m pytest -q $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; failing." >&2; fi; \
	  exit $$rc; }

bench: $(BENCH_STAMP)
	@set -e; found=0; \
	for f in bench/*.py; do \
	  [ -e "$$f" ] || continue; \
	  case "$$(basename "$$f")" in _*) continue;; esac; \
	  found=1; echo "== $$f"; $(VPY) "$$f"; \
	done; \
	if [ $$found -eq 0 ]; then echo "no benchmarks in bench/"; fi

venv: $(STAMP)

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || \
	  { echo "LayerLab needs Python 3.10 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1). Try: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(REQUIREMENTS) | $(VPY)
	$(PIP) $(addprefix -r ,$(REQUIREMENTS)) -e ".[dev]"
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(PIP) $(addprefix -r ,$(REQUIREMENTS)) -e ".[dev,bench]"
	@touch $@

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
