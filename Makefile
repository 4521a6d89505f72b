# GroSS reproduction — one entry point for environment, notebooks, tests and benchmarks.
#
#   make env                  virtualenv .venv with the pinned dependencies + Jupyter kernel "gross"
#   make reproduce            run every notebook in order (PROFILE=cpu by default)
#   make reproduce PROFILE=smoke|cpu|paper [WAIT=1]   (one run per runs/<profile>/ at a time)
#   make test                 unit tests + smoke run of every notebook
#   make lab | bench | clean | help
#   make device-prep          wheels (.whl/) + CIFAR-10 (data/) for scripts/device_gpu.sh on a lent GPU
#
# CIFAR-10 offline: GROSS_DATA=/path/to/cifar10-jpeg.tar.gz make reproduce

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
KERNEL  := gross

PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.gross-env.stamp
PIP_INSTALL := $(PY) -m pip install --quiet --progress-bar off
# pip warns once per package about this machine's partial local indexes; harmless, so hidden.
PIP_NOISE := is ignored: it is neither a file nor a directory

# Resolve kernel "gross" from *this* clone's .venv first: JUPYTER_PATH outranks the per-user
# kernel folder (~/.local/share/jupyter), where another clone may have left a kernel "gross".
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter$(if $(JUPYTER_PATH),:$(JUPYTER_PATH))
export MPLBACKEND ?= Agg
export PYTHONHASHSEED ?= 0
# GROSS_DATA (CIFAR-10 archive/folder), GROSS_RUNS (runs/ folder) and GROSS_OUTPUTS (tables, figures
# and executed notebooks) reach the notebooks whether given in the environment or on the make command line.
ifdef GROSS_DATA
export GROSS_DATA
endif
ifdef GROSS_RUNS
export GROSS_RUNS
endif
ifdef GROSS_OUTPUTS
export GROSS_OUTPUTS
endif

.PHONY: help env reproduce test lab bench device-prep clean distclean

help: ## Show this help
	@echo "GroSS reproduction. Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "Variables: PROFILE=smoke|cpu|paper (default cpu), GROSS_DATA=path to CIFAR-10 (offline),"
	@echo "           GROSS_RUNS=runs folder, GROSS_OUTPUTS=tables/figures/executed notebooks, WAIT=1,"
	@echo "           PYTHON=python3 (interpreter for the venv), PYTEST_ARGS, BENCH_ARGS"

env: $(STAMP) ## Create .venv (pinned deps, editable gross, Jupyter kernel "gross"); idempotent

# Rebuilt only when requirements.txt or pyproject.toml change (or .venv is missing).
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gross needs Python >= 3.11 (tomllib), got " + sys.version.split()[0] + "; run make env PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	$(PIP_INSTALL) --no-deps --no-build-isolation -e . 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (gross)" >/dev/null
	@$(PY) -c 'from jupyter_client.kernelspec import KernelSpecManager as K; import sys, os; \
	  exe = K().get_kernel_spec("$(KERNEL)").argv[0]; \
	  ok = os.path.dirname(exe) == os.path.dirname(os.path.abspath(sys.executable)); \
	  sys.exit(0 if ok else f"kernel $(KERNEL) resolves to {exe}, not {sys.executable}")'
	@touch $@
	@echo "environment ready: $(VENV) (kernel '$(KERNEL)')"

reproduce: $(STAMP) ## Run notebooks/0*.ipynb in order with papermill (PROFILE=cpu); stops at the first failure
	@# gross.pipeline.reproduce holds a lock on runs/<profile>/ (a second run on the same folder refuses;
	@# WAIT=1 waits instead) and writes executed copies under $$GROSS_OUTPUTS / $$GROSS_RUNS when set.
	$(PY) -m gross.pipeline.reproduce --profile $(PROFILE) $(if $(WAIT),--wait) --kernel $(KERNEL)

test: $(STAMP) ## Unit tests + papermill smoke run of every notebook
	$(PY) -m pytest -q $(PYTEST_ARGS)

lab: $(STAMP) ## Open JupyterLab on notebooks/ (kernel "Python (gross)")
	$(VENV)/bin/jupyter lab notebooks

bench: $(STAMP) ## Benchmarks -> results/benchmarks.csv (+ benchmarks_gpu.csv with CUDA); BENCH_ARGS=--quick
	$(PY) -m gross.bench --device cpu $(BENCH_ARGS)
	@if $(PY) -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then \
	  $(PY) -m gross.bench --device cuda $(BENCH_ARGS); fi

# ---------------------------------------------------------------- lent GPU machine (scripts/device_gpu.sh)
# The device machine has Python 3.12 with its own torch, torchvision, numpy, scipy, pandas, matplotlib,
# seaborn, tabulate, tqdm and pytest (the device tool's description of the machine) and no network. Of what gross imports,
# only tensorly (gross.method.btd_hooi: method "hooi", used by the CUDA BTD test) is missing there, so only it travels,
# as a wheel pinned to requirements.txt. Everything goes to git-ignored folders named in the run's carry.
DEVICE_PKGS     ?= tensorly
DEVICE_DATA_SRC ?= ../shared/data/cifar10-jpeg.tar.gz
DEVICE_PIP      ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m pip
DEVICE_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64
DEVICE_MAX_MIB  ?= 60

device-prep: ## Wheels (.whl/) + CIFAR-10 archive (data/) + commit id for scripts/device_gpu.sh; DEVICE_DATA_SRC=path
	@git check-ignore -q .whl/x.whl && git check-ignore -q data/x || { echo "device-prep: .whl/ and data/ must be git-ignored (see .gitignore)"; exit 1; }
	@test -f "$(DEVICE_DATA_SRC)" || { echo "device-prep: no CIFAR-10 archive at $(DEVICE_DATA_SRC); run: make device-prep DEVICE_DATA_SRC=/path/to/cifar10-jpeg.tar.gz"; exit 1; }
	rm -rf .whl && mkdir -p .whl data
	@pins="$$(for p in $(DEVICE_PKGS); do grep -iE "^$$p==" requirements.txt || { echo "device-prep: $$p is not pinned in requirements.txt" >&2; exit 1; }; done)"; \
	  echo "pip download --no-deps --only-binary=:all: --python-version 3.12 (cp, manylinux x86_64): $$pins"; \
	  $(DEVICE_PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    $(foreach p,$(DEVICE_PLATFORMS),--platform $(p)) -d .whl $$pins 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@for w in .whl/*.whl; do unzip -p "$$w" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
	  | sed "s|^|  $$(basename $$w) needs: |" || true; done
	rm -f data/cifar10-jpeg.tar.gz && cp "$(DEVICE_DATA_SRC)" data/cifar10-jpeg.tar.gz && chmod 644 data/cifar10-jpeg.tar.gz
	@if test -f "$(DEVICE_DATA_SRC).sha256"; then \
	  want=$$(cut -d' ' -f1 "$(DEVICE_DATA_SRC).sha256"); got=$$(sha256sum data/cifar10-jpeg.tar.gz | cut -d' ' -f1); \
	  test "$$want" = "$$got" || { echo "device-prep: data/cifar10-jpeg.tar.gz sha256 $$got != $$want"; exit 1; }; \
	  echo "data/cifar10-jpeg.tar.gz: sha256 ok"; fi
	@{ echo "commit=$$(git rev-parse HEAD)$$(test -z "$$(git status --porcelain --untracked-files=no)" || echo +dirty)"; \
	   echo "prepared=$$(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
	   for f in .whl/*.whl data/cifar10-jpeg.tar.gz; do echo "file=$$f $$(stat -c %s $$f) $$(sha256sum $$f | cut -d' ' -f1)"; done; \
	 } > data/device-prep.txt
	@cat data/device-prep.txt
	@total=$$( { git ls-files -co --exclude-standard -z; find .whl data -type f -print0; } | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1 || true ); \
	  echo "travels: $$((total / 1048576)) MiB (tree + .whl + data; limit 64 MiB, checked <= $(DEVICE_MAX_MIB))"; \
	  test "$$total" -le $$(( $(DEVICE_MAX_MIB) * 1048576 )) || { echo "device-prep: over $(DEVICE_MAX_MIB) MiB; largest files:"; \
	    { git ls-files -co --exclude-standard; find .whl data -type f; } | xargs -d '\n' du -b 2>/dev/null | sort -rn | head -5; \
	    echo "(a decoded CIFAR-10 cache data/cifar10-*.pt from a CPU run is 180 MB: move it out of data/)"; exit 1; }
	@echo "ready: run scripts/device_gpu.sh on the device with carry [\".whl\", \"data\"] (README: Running at paper scale)"

clean: ## Remove runs/ and caches (keeps .venv, committed results and executed notebooks)
	rm -rf runs .pytest_cache
	find . -path ./$(VENV) -prune -o -type d \( -name __pycache__ -o -name .ipynb_checkpoints \) -print0 | xargs -0 rm -rf

distclean: clean ## clean, and remove .venv
	rm -rf $(VENV)
