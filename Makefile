# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The feature metrics use ImageNet weights from $NEURALSIGHT_WEIGHTS, else ../shared/weights
# where the project sits beside one; without any the demo skips them and says so.
WEIGHTS_FOLDER := $(or $(NEURALSIGHT_WEIGHTS),$(wildcard ../shared/weights))

demo: $(STAMP)
	NEURALSIGHT_WEIGHTS='$(WEIGHTS_FOLDER)' $(BIN)/neuralsight demo --out outputs/demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache .mypy_cache
