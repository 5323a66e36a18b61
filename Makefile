# Two commands set everything up on a fresh machine: `make verify-all` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REPORTS ?= reports
JOBS ?= 2
# auto: one worker per core, started while their memory estimates fit in 20 GB (less if the machine
# has less available); a model too large to share the machine runs alone with every core.
VERIFY_JOBS ?= auto

# The tested toolchain: every package (default install and the dev, rtx, docs and lock extras) at an
# exact version with its hashes. pyproject.toml keeps the compatible ranges for other environments.
LOCK := requirements.lock

.PHONY: install lock test verify-all readme clean

install: $(STAMP)

# torch from PyPI is the CUDA build; it runs on CPU-only machines (see README, "Installation").
# netexport itself goes in without dependencies or build isolation, so nothing outside the lock is resolved.
$(STAMP): $(LOCK) pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

# Refresh the lock to the newest releases (less what lock-hold.txt holds back, with its reasons);
# then run `make test` and commit the lock with the results.
lock: install
	$(BIN)/uv pip compile pyproject.toml --upgrade --extra dev --extra rtx --extra docs --extra lock \
		--constraint lock-hold.txt --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" --output-file $(LOCK)

test: install
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -q

verify-all: install
	$(BIN)/netexport verify --all --precision fp32,fp16,int8 --backend installed -j $(VERIFY_JOBS) --report $(REPORTS)

readme: install
	$(BIN)/python -m netexport.docs README.md

clean:
	rm -rf $(VENV) $(REPORTS) build dist *.egg-info .pytest_cache
