# pqc developer and user entry points. `make demo` and `make test` set up a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PQC    := $(VENV)/bin/pqc
STAMP  := $(VENV)/.installed
# Debian packages the tests and the demo need: the data set, the compilers the generated C is
# checked with (gcc is assumed as the host compiler pip itself needs), valgrind for benchmarks, and
# QEMU for the bare-metal firmware runs.
SYS_PKGS := dataset-fashion-mnist clang gcc-riscv64-unknown-elf gcc-arm-none-eabi valgrind qemu-system-arm qemu-system-misc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install sysdeps demo firmware-demo test test-fast models supported-ops bench install-check clean help

help:
	@echo "make demo           set up (.venv, system packages) and run the main job on a bundled model"
	@echo "make test           set up if needed and run the test suite"
	@echo "make test-fast      the suite without tests marked slow"
	@echo "make firmware-demo  build, run and verify the generated C bare-metal on emulated Cortex-M0 and RV32I boards"
	@echo "make models         retrain the reference models (examples/models/*.onnx)"
	@echo "make supported-ops  regenerate SUPPORTED_OPS.md from the ONNX conformance cases"
	@echo "make bench          run the benchmark scripts that produce README's tables"
	@echo "make install-check  check that a regular (non-editable) 'pip install .' gives a working pqc"

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP) sysdeps

# Installs only what is missing, so it is quick on a prepared machine.
sysdeps:
	@missing=""; for p in $(SYS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	PQC=$(PQC) bash examples/demo.sh

firmware-demo: install
	$(PY) examples/firmware/figures.py
	$(VENV)/bin/pytest -q tests/backends/test_firmware.py

test: install
	$(VENV)/bin/pytest -q

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

models: install
	$(PY) examples/train_reference.py --model all --out examples/models

supported-ops: install
	$(PY) -m pqc.conformance --write SUPPORTED_OPS.md

bench: install
	$(PY) benchmarks/backend_benchmark.py

install-check: install
	$(VENV)/bin/pytest -q tests/test_packaging.py

clean:
	rm -rf build dist *.egg-info .pytest_cache
