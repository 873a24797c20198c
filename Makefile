# The two README commands: `make demo` and `make test`. Everything else is a helper target.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Pinned to the builds this project is tested with; pyproject.toml declares the admitted range.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: demo test lint app bench browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Re-install only when the project's declared dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet $(TORCH_PINS) || $(PIP) install --quiet "torch<2.15" "torchvision<0.30"
	$(PIP) install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/cancernet demo --data-dir data/demo --run-dir runs/demo

test: $(VENV)/.installed browser
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || true

app: $(VENV)/.installed
	$(BIN)/cancernet app --model runs/demo/ensemble

bench: $(VENV)/.installed
	$(BIN)/python -m bench

# Debian's Chromium for the Space's browser tests (Playwright drives /usr/bin/chromium; no browser downloads).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install chromium; browser tests will skip outside CI"; \
	else echo "note: /usr/bin/chromium missing and apt-get unavailable; browser tests skip outside CI"; fi

clean:
	rm -rf runs data/demo
