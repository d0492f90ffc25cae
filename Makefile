# Every target bootstraps its own tooling on a fresh Debian machine: uv (installed with pip when missing),
# the locked virtual environment, and the example workloads.

PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PYTHON_PREFERENCE := only-system
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: all setup examples demo test bench lint clean

all: test

$(STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || { \
	  $(PYTHON) -m pip --version >/dev/null 2>&1 || apt-get install -y -q python3-pip >/dev/null; \
	  $(PYTHON) -m pip install --quiet --user "uv==0.13.8" 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet --user --break-system-packages "uv==0.13.8" 2>/dev/null \
	  || $(PYTHON) -m pip install --quiet "uv==0.13.8"; }
	$(UV) sync --frozen --quiet --compile-bytecode
	$(VENV)/bin/python -m compileall -q src
	@touch $@

setup: $(STAMP)

examples: setup
	VENV=$(VENV) bash examples/build.sh

demo: examples
	bash scripts/demo.sh

test: examples lint
	ENARX_REQUIRE_EXAMPLES=1 $(UV) run --frozen --no-sync pytest -q -n 2

bench: examples
	@command -v wrk >/dev/null || (apt-get install -y -q -o DPkg::Lock::Timeout=600 wrk >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q -o DPkg::Lock::Timeout=600 wrk >/dev/null)) || echo "wrk unavailable: the Steward bench falls back to Python clients"
	@status=0; $(UV) run --frozen --no-sync python bench/run.py $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY)) \
	  || status=$$?; $(UV) run --frozen --no-sync python bench/render.py || status=1; exit $$status

lint: setup
	$(UV) run --frozen --no-sync ruff check src tests bench

clean:
	rm -rf $(VENV) examples/build .pytest_cache
