# dpersona: `make demo` runs the main job end to end on built-in synthetic data,
# `make test` runs every test, `make bench` prints the benchmark table, `make compare`
# trains every method of the paper's comparison and prints one table row per method.
#
# Set-up is automatic and idempotent: the Python environment (torch for libtorch, plus the
# independent references tests compare against) lives in a per-user cache keyed by the
# pinned torch version and the Python version, and `.venv` links to it, so fresh clones
# (CI) reuse the 4.7 GB environment instead of downloading it again; a change to
# requirements.txt is installed into it incrementally (stamp named after the file's hash).

SHELL := /bin/bash
PYTHON ?= python3
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-12)
TORCH_PIN := $(shell sed -n 's/^torch==//p' requirements.txt)
PY_VER := $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
CACHE_ROOT ?= $(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)/dpersona
# Keyed by what is costly to rebuild (torch and Python); the small packages are brought
# up to requirements.txt incrementally, recorded by a stamp named after its hash.
VENV_CACHE := $(CACHE_ROOT)/venv-torch$(TORCH_PIN)-py$(PY_VER)
VENV := $(CURDIR)/.venv
STAMP := $(VENV_CACHE)/.requirements-$(REQ_HASH)

# libtorch from the torch wheel; torch-sys finds it through the venv's python.
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(VENV)
export DPERSONA_PYTHON := $(VENV)/bin/python
CARGO ?= cargo

.PHONY: setup demo test bench compare fmt clippy fuzz

# No prerequisite on requirements.txt: its content is in the stamp's name, while its mtime is
# the clone's time in every fresh clone (which made each CI run re-check every package).
$(STAMP):
	@mkdir -p $(CACHE_ROOT)
	@if [ ! -x "$(VENV_CACHE)/bin/python" ]; then \
	  echo "setup: creating the Python environment $(VENV_CACHE) (once per machine; torch is large)"; \
	  $(PYTHON) -m venv "$(VENV_CACHE)"; \
	fi
	@echo "setup: installing requirements.txt into $(VENV_CACHE)"
	@"$(VENV_CACHE)/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

setup: $(STAMP)
	@if [ -e .venv ] && [ ! -L .venv ]; then echo "setup: .venv exists and is not a link; move it away" >&2; exit 1; fi
	@ln -sfn "$(VENV_CACHE)" .venv

demo: setup
	$(CARGO) build --release -p dpersona -p torch_commands
	@bash scripts/demo.sh

test: setup
	$(CARGO) test --workspace --no-fail-fast

# Every method of the paper's comparison on synthetic data (small preset; ~20 min on 2 cores).
compare: setup
	$(CARGO) build --release -p dpersona -p torch_commands
	@bash scripts/compare.sh

bench: setup
	$(CARGO) build --release -p dpersona -p torch_commands
	@bash bench/run.sh

# Coverage-guided fuzzing of the readers of untrusted files (not part of `make test` or CI):
# FUZZ_SECONDS per target; one target: scripts/fuzz.sh TARGET SECONDS. See README, "Fuzzing".
FUZZ_SECONDS ?= 120
fuzz:
	@bash scripts/fuzz.sh all $(FUZZ_SECONDS)

fmt:
	$(CARGO) fmt --all

clippy: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings
