# Two commands set everything up on a fresh machine: `make verify-all` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REPORTS ?= reports
JOBS ?= 2
# One worker for the canonical-size matrix: one INT8 calibration (ann at 769x769) peaks at 16.7 GB,
# so two at once do not fit in a 23 GB machine. A worker still uses every core.
VERIFY_JOBS ?= 1

.PHONY: install test verify-all readme clean

install: $(STAMP)

# torch from PyPI is the CUDA build; it runs on CPU-only machines (see README, "Installation").
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,rtx]"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -q

verify-all: install
	$(BIN)/netexport verify --all --precision fp32,fp16,int8 --backend installed -j $(VERIFY_JOBS) --report $(REPORTS)

readme: install
	$(BIN)/python -m netexport.docs README.md

clean:
	rm -rf $(VENV) $(REPORTS) build dist *.egg-info .pytest_cache
