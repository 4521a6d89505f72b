# GroSS reproduction — one entry point for environment, notebooks, tests and benchmarks.
#
#   make env                  virtualenv .venv with the pinned dependencies + Jupyter kernel "gross"
#   make reproduce            run every notebook in order (PROFILE=cpu by default)
#   make reproduce PROFILE=smoke|cpu|paper [WAIT=1]   (one run per runs/<profile>/ at a time)
#   make test                 unit tests + smoke run of every notebook
#   make lab | bench | clean | help
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

.PHONY: help env reproduce test lab bench clean distclean

help: ## Show this help
	@echo "GroSS reproduction. Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "Variables: PROFILE=smoke|cpu|paper (default cpu), GROSS_DATA=path to CIFAR-10 (offline),"
	@echo "           GROSS_RUNS=runs folder, GROSS_OUTPUTS=tables/figures/executed notebooks, WAIT=1,"
	@echo "           PYTHON=python3 (interpreter for the venv), PYTEST_ARGS, BENCH_ARGS"

env: $(STAMP) ## Create .venv (pinned deps, editable gross, Jupyter kernel "gross"); idempotent

# Rebuilt only when requirements.txt or pyproject.toml change (or .venv is missing).
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "gross needs Python >= 3.10, got " + sys.version.split()[0] + "; run make env PYTHON=python3.11")'
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

clean: ## Remove runs/, executed notebooks and caches (keeps .venv and committed results)
	rm -rf runs results/executed .pytest_cache
	find . -path ./$(VENV) -prune -o -type d \( -name __pycache__ -o -name .ipynb_checkpoints \) -print0 | xargs -0 rm -rf

distclean: clean ## clean, and remove .venv
	rm -rf $(VENV)
