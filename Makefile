# montpipe: `make demo` runs the main job, `make test` the test suite. Both (re)create .venv
# from pyproject.toml first; nothing else needs installing by hand (see README).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.montpipe-installed
EXTRAS ?= test,bench,fl,hdl,sim,toolchain

.PHONY: all venv test fuzz demo walkthrough bench lint verilog sim simboard synth \
	program selftest clean

all: test

# Re-install when the project description or the C kernels change.
$(STAMP): pyproject.toml driver/_native.c driver/_ifma.h
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "montpipe needs Python >= 3.11; set PYTHON=python3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing montpipe [$(EXTRAS)] into $(VENV) (log: $(VENV)/install.log)"
	@{ $(PY) -m pip install --upgrade pip && $(PY) -m pip install -e '.[$(EXTRAS)]'; } \
		> $(VENV)/install.log 2>&1 || { tail -n 30 $(VENV)/install.log; \
		echo "pip failed: the whole log is $(VENV)/install.log"; exit 1; }
	@$(PY) -c 'from montpipe.driver.backends.cpu import native_available as n; print("montpipe installed; GMP kernels:", "built" if n() else "NOT built (no GMP headers?) - gmpy2 fallback, one core")'
	@touch $(STAMP)

venv: $(STAMP)

# on every core (TEST_JOBS=0: in one process); tests that share a costly fixture or Ray stay
# together (their xdist_group)
TEST_JOBS ?= auto
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup

# the property tests (JSON loaders, wire codec and parser, encoder) with FUZZ_EXAMPLES examples
# each instead of make test's few dozen: ~1.5 minutes at the default 4000
FUZZ_EXAMPLES ?= 4000
fuzz: $(STAMP)
	MONTPIPE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q --hypothesis-profile=fuzz -k property \
		tests/test_driver_serialization.py tests/test_driver_encoding.py tests/test_device_wire.py

# the main job: vertical logistic regression, 2048-bit keys, 30 iterations, parties on Ray;
# DEMO=secureboost runs vertical SecureBoost instead (report in build/fl_demo/secureboost/)
demo: $(STAMP)
	$(PY) -m montpipe.fl_demo $(DEMO) $(DEMO_ARGS)

# a tour of the Paillier API alone
walkthrough: $(STAMP)
	$(PY) -m montpipe.driver.walkthrough

bench: $(STAMP)
	$(PY) -m montpipe.bench.cpu $(BENCH_ARGS)
	$(PY) -m montpipe.bench.kernels $(BENCH_ARGS)
	$(PY) -m montpipe.bench.fl $(BENCH_ARGS)
	$(PY) -m montpipe.bench.ops $(if $(filter --update-readme,$(BENCH_ARGS)),--update-readme)
	$(PY) -m montpipe.bench.secureboost $(if $(filter --update-readme,$(BENCH_ARGS)),--update-readme)
	$(PY) -m montpipe.bench.device $(BENCH_ARGS)
	$(PY) -m montpipe.bench.sim $(if $(filter --update-readme,$(BENCH_ARGS)),--update-readme)

# the gateware as Verilog, for cocotb and other flows
verilog: $(STAMP)
	$(PY) -m montpipe.hdl.export build/verilog

# cocotb on Icarus Verilog and Verilator against gmpy2, full set (the Paillier shapes at full
# size on Verilator: ~10 minutes); SIM=icarus|verilator picks one, WAVES=1 writes waveforms,
# SEED=n replays vectors. Reports: build/sim/<simulator>/report.json. Then (without SIM or
# ONLY) one iteration of the hetero-LR demo on the simulated board, every device result checked
# (~2 minutes; build/sim/fl/report.json)
# LEVEL=gate: the ECP5 netlists instead (synth_ecp5's and nextpnr's, with the cell models, on
# Verilator): the reference lane (alone, and with its sequencer on the Paillier shapes), the
# small board top, and the reference ULX3S build through its pins on a CRT half and 4096-bit
# exponentiations (about two hours in all: ONLY=lane|sequencer|board|reference picks one;
# ONLY=board-routed the board top as nextpnr routed it: docs/gate-level.md). Report:
# build/sim/gate/report.json
LEVEL ?= rtl
sim: $(STAMP)
	$(PY) -m montpipe.sim --level $(LEVEL) --set full $(if $(SIM),--sim $(SIM)) $(if $(WAVES),--waves) $(if $(SEED),--seed $(SEED)) $(if $(ONLY),--only $(ONLY))
	$(if $(filter rtl,$(LEVEL)),$(if $(ONLY)$(SIM),,$(PY) -m montpipe.fl_demo.sim_check))

# the simulated board (Verilator) behind a pseudo-terminal, linked at build/sim/board/tty, until
# Ctrl-C: MONTPIPE_BACKEND=fpga MONTPIPE_FPGA_PORT=build/sim/board/tty talks to it
simboard: $(STAMP)
	$(PY) -m montpipe.sim.board $(SIMBOARD_ARGS)

# bitstream and report with the open toolchain (YoWASP, from PyPI): build/synth/<board>/
# BOARD=ulx3s-85f|ecpix5-85|orangecrab-85f. The default is the configuration sized for the 85F
# at the clock, link rate and seed of the board's committed report (so it rebuilds that
# report); SYNTH_ARGS overrides fields ("--lanes 8", "--seed 5", "--small": python -m
# montpipe.hdl.synth --help); SEEDS="1 2 3 4" builds with each placement seed, as many at once
# as there are cores, and keeps the best that meets timing. Each committed report under
# reports/synth/ holds the command that rebuilds it; a rebuild says whether its bitstream's
# SHA-256 matches the report's. Build times and seeds tried are in docs/gateware-plan.md.
BOARD ?= ulx3s-85f
synth: $(STAMP)
	$(PY) -m montpipe.hdl.synth --board $(BOARD) $(if $(SEEDS),--seeds $(SEEDS)) $(SYNTH_ARGS)

# load build/synth/$(BOARD)/montpipe.bit with openFPGALoader: SRAM, or FLASH=1 for the flash
program: $(STAMP)
	$(PY) -m montpipe.driver.program --board $(BOARD) $(if $(filter 1,$(FLASH)),--flash) \
		$(if $(LOADER_BOARD),--loader-board $(LOADER_BOARD))

# the board's self-test over its serial port (PORT=/dev/ttyUSB0), or PORT=sim for the
# simulated board; writes build/selftest.json
selftest: $(STAMP)
	$(PY) -m montpipe.driver.selftest $(if $(filter sim,$(PORT)),--sim,--port $(PORT) --board $(BOARD)) --json build/selftest.json

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf build $(VENV) *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -name '*.so' -path './driver/*' -delete
