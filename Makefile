# The two commands a new user runs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hwsnn demo

lint: $(STAMP)
	$(VENV)/bin/ruff check hwsnn sim tests examples benchmarks

test: $(STAMP) lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build
