# Two entry points for a new user: `make demo` and `make test`.
# Only Python 3.11+ and make are assumed; uv is installed into .venv from PyPI and
# installs the exact set pinned in uv.lock.
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
UV := $(VENV)/bin/uv
DEMO_DIR ?= demo-workspace
DEMO_TICKERS ?= 300

.PHONY: demo test lint

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# --inexact keeps uv itself in the venv it was bootstrapped into; --compile-bytecode
# because environments that set PYTHONDONTWRITEBYTECODE would otherwise recompile
# pandas and friends on every start of the command (seconds each time).
$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --extra test --compile-bytecode --quiet
	touch $@

demo: $(VENV)/.installed
	@if [ -e "$(DEMO_DIR)/tickers.json" ]; then \
		echo "Using the existing demo workspace at $(DEMO_DIR) (remove it to rebuild)."; \
	else \
		$(VENV)/bin/parqctl demo "$(DEMO_DIR)" --tickers $(DEMO_TICKERS) --stale-lock --no-open; \
	fi
	$(VENV)/bin/parqctl --workspace "$(DEMO_DIR)" console

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
