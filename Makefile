# edgeshuffle: the two commands that matter are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast arm-check clean

install: $(STAMP)

# Pinned versions tested together live in constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[convert,dev,import]'
	touch $(STAMP)

demo: install
	$(BIN)/edgeshuffle info --groups 3 --scale 1 --stem cifar
	$(BIN)/python -m edgeshuffle.demo --output-dir build/demo

# Two worker processes, one test file each at a time (module fixtures are built once): much of a test's time is
# single-threaded Python (graph tracing), so two of them share the 2-core machine well.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

# The board path on aarch64 under qemu-user (root; see docs/board.md). Needs `make demo` first.
arm-check: install
	bash tests/arm/arm_check.sh

clean:
	rm -rf build

# The property tests of tests/test_fuzz.py with many more examples (a few minutes).
.PHONY: fuzz
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_fuzz.py
