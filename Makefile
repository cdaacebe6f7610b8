# All set-up is idempotent: `make lab` and `make test` each create .venv/,
# install, and fetch weights and faces on first use, then do their job.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facelab-installed

.PHONY: lab test fetch install bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# its declared pins (torch<2.3, numpy<2) would downgrade torch: install it alone
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

fetch: install
	$(VENV)/bin/facelab fetch --optional

lab: fetch
	$(VENV)/bin/jupyter lab notebooks/

test: fetch
	FACELAB_FAST=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider

bench: fetch
	$(PY) -m benchmarks

clean-venv:
	rm -rf $(VENV)
