# Every target bootstraps its own tooling on a fresh Debian machine: uv (installed with pip when missing),
# the locked virtual environment, and the example workloads.

PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PYTHON_PREFERENCE := only-system
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: all setup examples vm-tools demo test bench mutants lint clean

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

# VM keeps (kvm under TCG in the tests): QEMU, and the tools that build the guest image. The guest kernel
# is Debian's cloud kernel, downloaded (never installed) by the image build into ~/.cache/enarx/vm.
VM_TOOLS := qemu-system-x86_64:qemu-system-x86 lz4:lz4 strip:binutils mke2fs:e2fsprogs dpkg-deb:dpkg
vm-tools:
	@missing=""; for pair in $(VM_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null && apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing >/dev/null); fi

demo: examples
	bash scripts/demo.sh

test: examples vm-tools lint
	ENARX_REQUIRE_EXAMPLES=1 ENARX_REQUIRE_CORPORA=1 $(UV) run --frozen --no-sync pytest -q -n 2

bench: examples vm-tools
	@command -v wrk >/dev/null || (apt-get install -y -q -o DPkg::Lock::Timeout=600 wrk >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q -o DPkg::Lock::Timeout=600 wrk >/dev/null)) || echo "wrk unavailable: the Steward bench falls back to Python clients"
	@status=0; $(UV) run --frozen --no-sync python bench/run.py $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY)) \
	  || status=$$?; $(UV) run --frozen --no-sync python bench/render.py || status=1; exit $$status

# Mutation testing of the trust-deciding code (not part of `make test`; under an hour): GROUPS="a b" picks
# groups of scripts/mutants.toml. Results in build/mutants/report.md; survivors explained in docs/mutants.md.
mutants: examples
	$(UV) sync --frozen --quiet --group mutants
	$(UV) run --frozen --no-sync python scripts/mutants.py $(GROUPS)

lint: setup
	$(UV) run --frozen --no-sync ruff check src tests bench scripts

clean:
	rm -rf $(VENV) examples/build .pytest_cache
