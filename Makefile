# The README's two commands: `make run` (the main job) and `make test` (the tests). Each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1
NBDEV := nbdev==2.4.14 execnb==0.1.18 fastcore==1.12.4
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# Tests and notebooks run on every core, one thread each: two processes of two threads each on two cores spin on each other
# (06_gradcam's notebook took 51 s so beside 08_robustness, 13 s with one thread).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test coverage setup check-export readme docs clean-nbs nbs system-data

run: $(STAMP)
	$(BIN)/probing-sota run --preset quickstart

# /tmp is left as it was found: the notebooks' demo runs are scratch folders that their processes remove (nbdev_test's
# workers end without Python's exit handlers, so the sweep removes theirs), pytest's folders go when every test passes
# (one fixed folder, kept for a look when a test fails), torch's compile cache lives in the clone.
PYTEST_TMP := $(or $(TMPDIR),/tmp)/probing-sota-pytest-$(shell id -u)
SWEEP := $(BIN)/python -c "from probing_sota.core import sweep_scratch; sweep_scratch()"
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/torchinductor
# The tests' and notebooks' processes keep freed memory for reuse, as the stages' kernels do (pipeline.KERNEL_MALLOC's values:
# glibc otherwise hands each large block back and the next batch faults it in again, a third of a forward pass on 2 cores).
test nbs coverage: export MALLOC_MMAP_THRESHOLD_ = 33554432
test nbs coverage: export MALLOC_TRIM_THRESHOLD_ = 17179869184
test: $(STAMP) check-export
	$(BIN)/python tools/readme.py --check
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers $(JOBS) --timing; rc=$$?; $(SWEEP); exit $$rc
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -q -rs --durations=25 -n $(JOBS) --dist loadfile --basetemp=$(PYTEST_TMP); \
	  rc=$$?; $(SWEEP); if [ $$rc = 0 ]; then rm -rf $(PYTEST_TMP); else echo "the failed tests' folders: $(PYTEST_TMP)"; fi; exit $$rc

# Line coverage of probing_sota/ over what `make test` runs: nbdev_test's notebooks, pytest, and every Python process they
# start (papermill's stage kernels and the zygote's forks, torchrun's ranks, the CLI), through coverage.py's own patches
# (tools/coverage.ini); the notebooks' exported cells count as their modules' lines (tools/coverage_cells.py). Per module
# on screen and in .cache/coverage/coverage.json. A part: make coverage NB=nbs/05_hard_examples.ipynb TESTS=tests/test_cli.py
COVERAGE := coverage==7.18.0
TESTS ?= tests
COV_DIR := $(CURDIR)/.cache/coverage
coverage: export COVERAGE_RCFILE = $(CURDIR)/tools/coverage.ini
coverage: export PROBING_SOTA_COVERAGE_DIR = $(COV_DIR)
coverage: export PROBING_SOTA_COVERAGE_SOURCE = $(CURDIR)/probing_sota
coverage: export IPYTHONDIR = $(COV_DIR)/ipython
coverage: $(STAMP) check-export
	$(BIN)/python -m pip install -qq $(COVERAGE)
	rm -rf $(COV_DIR) && mkdir -p $(COV_DIR) && $(BIN)/python tools/coverage_cells.py startup $(IPYTHONDIR)
	OMP_NUM_THREADS=1 $(BIN)/coverage run tools/coverage_cells.py nbdev_test --n_workers $(JOBS) $(if $(NB),--path $(NB)); \
	  rc=$$?; $(SWEEP); exit $$rc
	OMP_NUM_THREADS=1 $(BIN)/coverage run -m pytest $(TESTS) -q -n $(JOBS) --dist loadfile \
	  --basetemp=$(PYTEST_TMP)-cov; rc=$$?; $(SWEEP); if [ $$rc = 0 ]; then rm -rf $(PYTEST_TMP)-cov; fi; exit $$rc
	$(BIN)/coverage combine -q
	$(BIN)/coverage report
	$(BIN)/coverage json -q -o $(COV_DIR)/coverage.json

setup: $(STAMP)

# A virtual environment, installed once (the stamp is remade when settings.ini or setup.py change).
$(STAMP): settings.ini setup.py
	@$(MAKE) --no-print-directory system-data
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq $(TORCH)
	$(BIN)/python -m pip install -qq $(NBDEV)
	$(BIN)/nbdev_export
	$(BIN)/python -m pip install -qq -e ".[dev]"
	$(BIN)/python -c "from probing_sota.why import compile_umap; compile_umap()"  # numba's cache: each run's map loads it
	touch $(STAMP)

# Debian packages (only as root on Debian): the real Fashion-MNIST offline, Chromium for the browser tests, npm for the docs' JavaScript.
APT_PKGS := dataset-fashion-mnist chromium npm
system-data:
	@missing=""; [ -f $(FMNIST) ] || missing="dataset-fashion-mnist"; command -v chromium >/dev/null || missing="$$missing chromium"; command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $$missing (apt)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; } || \
	  echo "could not install $$missing: Fashion-MNIST will be downloaded on first use; browser tests will be skipped"; \
	fi

# probing_sota/ must be exactly what nbdev_export makes of nbs/.
check-export: $(STAMP)
	@rm -rf .export-snapshot && cp -r probing_sota .export-snapshot
	@$(BIN)/nbdev_export
	@if diff -r -q -x __pycache__ .export-snapshot probing_sota; then rm -rf .export-snapshot; echo "export check: probing_sota/ matches nbs/"; \
	 else rm -rf .export-snapshot; echo "probing_sota/ was out of date with nbs/ (now re-exported): commit it"; exit 1; fi

# README.md from nbs/index.ipynb: nbdev_readme where Quarto is installed, else tools/readme.py.
readme: $(STAMP)
	@if command -v quarto >/dev/null; then $(BIN)/nbdev_readme && sed -i 's|](images/|](nbs/images/|g' README.md; \
	 else $(BIN)/python tools/readme.py; fi

# The docs site, from the notebooks' stored outputs (`make nbs`): nbdev_docs with Quarto; without it, tools/build_docs.py:
# a page per notebook as nbdev renders it, the quickstart run's report and gallery linked (run first if need be), widgets
# and MathJax served from the site itself (npm, once).
docs: $(STAMP) readme
	@if command -v quarto >/dev/null; then $(BIN)/nbdev_docs; \
	 else echo "quarto not found: building _docs/ with tools/build_docs.py from the notebooks' stored outputs"; \
	   $(BIN)/probing-sota run --preset quickstart >/dev/null && $(BIN)/python tools/build_docs.py; fi

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

# The notebooks with their outputs, as GitHub, Colab and Quarto show them: each executed in place in a fresh kernel (all,
# or NB="04_evaluate.ipynb 06_gradcam.ipynb"), figures shrunk to the size budget, cleaned, stamped with the digest of its
# code. `make test` fails while a notebook's outputs are older than its code.
nbs: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/python tools/notebooks.py run --jobs $(JOBS) $(NB)
	@$(MAKE) --no-print-directory readme
