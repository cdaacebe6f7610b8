# All set-up is idempotent: `make lab` and `make test` each create .venv/,
# install, and fetch weights and faces on first use, then do their job.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facelab-installed

LOCK   := requirements-lock.txt

.PHONY: lab test test-fast fetch install bench lock test-latest binder-check clean-venv

# Installs exactly the versions in the committed lock (requirements-lock.txt);
# the requirement files keep lower bounds only, for Colab and other users.
$(STAMP): requirements.txt requirements-dev.txt $(LOCK) pyproject.toml binder/overrides.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c $(LOCK)
	# its declared pins (torch<2.3, numpy<2) would downgrade torch: install it alone
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	# JupyterLab defaults: save widget state, so a reopened notebook shows its players' last frames
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp binder/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

install: $(STAMP)

fetch: install
	$(VENV)/bin/facelab fetch --optional

lab: fetch
	$(VENV)/bin/jupyter lab notebooks/

test: fetch
	bash tools/ensure_chromium.sh  # the browser widget test's Chromium (tests/browser)
	FACELAB_FAST=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider

# The fast loop while editing: unit and conformance tests, no fetched weights or faces needed
# (tests marked weights/faces are left out; `make test` runs everything).
test-fast: install
	$(PY) -m pytest -m "not weights and not faces" -q -p no:cacheprovider tests

bench: fetch
	$(PY) -m benchmarks

# Refresh the lock from requirements-lock.in (after changing a requirement, or
# to move to newer releases); then run `make test` and commit both files.
lock: install
	CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile --quiet --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --output-file $(LOCK).new requirements-lock.in
	mv $(LOCK).new $(LOCK)

# The suite against the newest releases the lower bounds admit (no lock), in a
# separate venv: what a user installing today gets. Not run by CI.
test-latest:
	$(MAKE) VENV=.venv-latest LOCK=/dev/null test

# Binder's environment built the way binder/postBuild builds it, with pip in a
# fresh venv (no conda or docker here), then a smoke test of the result.
binder-check:
	rm -rf .venv-binder && $(PYTHON) -m venv .venv-binder
	PATH="$(CURDIR)/.venv-binder/bin:$$PATH" bash binder/postBuild
	.venv-binder/bin/facelab --version
	.venv-binder/bin/python -c "from facelab import models; m = models.load('mobileface'); print('binder env ok:', m)"

clean-venv:
	rm -rf $(VENV)

# Every notebook executed and rendered to a static HTML site in site/ (mkdocs + mkdocs-jupyter, mkdocs.yml),
# at full scale; `FACELAB_FAST=1 make site` for a quick check. The source notebooks stay output-free.
.PHONY: site
site: fetch
	FACELAB_NO_WIDGETS=1 $(VENV)/bin/mkdocs build --clean  # players as static figures on the pages
