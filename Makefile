# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# They share one .venv, installed in levels with a stamp file each: `make demo` installs what
# segmenting needs (torch + the package); `make test` adds the test extras (pytest, ruff,
# slicer-core, vtk, PySide6, MONAI), also after an earlier `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# `make slicer-package`: one archive per Slicer minor version, for Extensions Manager > Install
# from file (scripts/slicer_package.py). SLICER_OS: linux, win or macosx (macosx also needs
# SLICER_REVISION, shown in Slicer's Help > About, and SLICER_ARCH=arm64 on Apple silicon).
SLICER_VERSIONS ?= 5.8 5.10 5.12
SLICER_OS ?= linux
SLICER_ARCH ?= amd64
SLICER_REVISION ?=
# `make test` runs pytest on TEST_WORKERS pytest-xdist workers: auto is one per usable CPU,
# capped by memory and at 8 (Testing/parallel.py); 0 runs the suite in one process.
# worksteal hands each worker a contiguous half of the suite and moves tests only when one
# runs dry, so most test files (and their module fixtures) stay on one worker.
TEST_WORKERS ?= auto
# The CPU build of torch, pinned for tests and CI (a plain `pip install torch` pulls CUDA, several GB).
TORCH_PIN ?= torch==2.13.0

.PHONY: venv venv-test prepare-demo demo test lint format bench slicer-package clean

venv: $(VENV)/.installed-demo
venv-test: $(VENV)/.installed-test

$(VENV)/.installed-demo: pyproject.toml
	@# torch 2.13.0 has no wheel for Python 3.9: say so, not pip's "ResolutionImpossible"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "$(PYTHON) is Python " + sys.version.split()[0] + "; UNet++ needs 3.10 or newer ($(TORCH_PIN) has no wheel for older ones): run make PYTHON=python3.12 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-demo
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# the liver model's OpenVINO graphs exported, compiled and probed (`unetpp models prepare`), so
# the demo's segmentation does not pay them (docs/BENCHMARK_E2E.md, session 20). Run every time:
# on a prepared model it reads its stamp and returns in about 0.3 s, and it notices a cleared
# or changed graph cache, which a stamp file here would not. A failed preparation (e.g. an
# unwritable graph cache) does not stop the demo: the segmentation then runs on our executor.
prepare-demo: venv
	@$(VENV)/bin/unetpp models prepare liver || \
		echo "note: 'unetpp models prepare liver' failed (above); the demo runs unprepared"

demo: venv prepare-demo
	mkdir -p demo-output
	$(VENV)/bin/unetpp segment Resources/Examples/example_ct.nii.gz --task liver \
		-o demo-output/example_ct.seg.nrrd --preview demo-output/example_ct_preview.png

test: venv-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# byte-compiled once (1.4 s): where PYTHONDONTWRITEBYTECODE is set, every pytest worker and
	@# every CLI or engine process a test starts would compile the package from source again
	$(PY) -m compileall -q UNetPlusPlus Testing
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

format: venv-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv-test
	$(PY) -m pip install -q -e ".[bench]"
	bench/run --quick

slicer-package:
	$(PYTHON) scripts/slicer_package.py $(foreach v,$(SLICER_VERSIONS),--slicer-version $(v)) \
		--os $(SLICER_OS) --arch $(SLICER_ARCH) --slicer-revision "$(SLICER_REVISION)" --out dist

clean:
	rm -rf $(VENV) demo-output dist
