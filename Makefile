# riskguard — the two set-up commands of the README are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/riskguard serve

demo: install
	$(BIN)/riskguard demo

lint: install
	$(BIN)/ruff check src tests bench

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/cel_runtime.py
	$(BIN)/python bench/decision.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/trace.py
	$(BIN)/python bench/cases.py
	$(BIN)/python bench/features_offline.py
	$(BIN)/python bench/device.py
	$(BIN)/python bench/account_security.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/consortium.py
	$(BIN)/python bench/graph.py
	$(BIN)/python bench/spark_graph.py
	$(BIN)/python bench/complaints.py
	$(BIN)/python bench/bus.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/fdh.py
	$(BIN)/python bench/privacy.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
